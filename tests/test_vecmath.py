"""The vectorisable exp and log1p of the CPU kernels against extended-precision NumPy."""

import re
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastgd._config import NUMBA_FASTMATH
from fastgd.backends._vecmath import (
    EXP2_FLOOR_POLY_F32,
    EXP_MIN,
    EXP_MIN_F32,
    PADE_EVEN,
    PADE_EXP2_EVEN,
    PADE_EXP2_ODD,
    PADE_ODD,
    exp_nonpositive,
    exp_nonpositive_as,
    exp_nonpositive_f32,
    exp_ratio_nonpositive,
    log1p_unit,
    logistic_pair,
)

_log1p_array = numba.njit(lambda e: np.array([log1p_unit(v) for v in e]))
# Called from loops compiled with the kernels' reassociating flags, as the kernels call
# them: the two-part range reduction must survive those flags.
_exp_kernel = numba.njit(fastmath=set(NUMBA_FASTMATH))(lambda x: np.array([exp_nonpositive(v) for v in x]))


def _exp(x):
    return _exp_kernel(np.asarray(x, dtype=np.float64))


def test_exp_nonpositive_is_accurate_over_its_whole_range():
    x = -np.concatenate([np.linspace(0.0, -EXP_MIN, 400_001), np.geomspace(1e-300, 1.0, 1001), [0.0, 5e-324]])
    got = _exp(x)
    want = np.exp(x.astype(np.longdouble))
    assert np.max(np.abs(got - want) / want) < 2e-16  # 1.44e-16 measured
    assert got[-2] == 1.0  # exp(0) exactly


_expf_array = numba.njit(fastmath=set(NUMBA_FASTMATH))(
    lambda x: np.array([exp_nonpositive_f32(v) for v in x])
)


def test_exp_nonpositive_float32_is_accurate_over_its_whole_range():
    """Every float32 in [-87, 0] within 1.5 units in the last place (2**-24 relative), in
    float32 arithmetic from end to end; below -87 it is exp(-87), NaN stays NaN."""
    x = -np.arange(0, 0x42AE0000 + 1, 997, dtype=np.uint32).view(np.float32)  # bits of 0 .. 87
    got = _expf_array(x)
    assert got.dtype == np.float32
    want = np.exp(x.astype(np.longdouble))
    assert np.max(np.abs(got - want) / want) < 1.5 * 2.0**-24
    assert got[0] == 1.0
    tail = _expf_array(np.array([-87.5, -1e30, -np.inf, np.nan], np.float32))
    np.testing.assert_allclose(tail[:3], np.exp(np.float64(EXP_MIN_F32)), rtol=2.0**-23)
    assert np.isnan(tail[3])


@numba.njit(fastmath=set(NUMBA_FASTMATH))
def _exp_ratio(x):
    num = np.empty_like(x)
    den = np.empty_like(x)
    for i in range(x.size):
        num[i], den[i] = exp_ratio_nonpositive(x[i])
    return num, den


def test_exp_ratio_nonpositive_is_accurate_over_its_whole_range():
    """num / den = exp(x), each part rounded once more than exp_nonpositive's one result;
    den, the divisor of the d = 1 logistic loop's products, stays in [0.83, 1.19]."""
    x = -np.concatenate([np.linspace(0.0, -EXP_MIN, 400_001), np.geomspace(1e-300, 1.0, 1001), [0.0]])
    num, den = _exp_ratio(x)
    want = np.exp(x.astype(np.longdouble))
    assert np.max(np.abs(num.astype(np.longdouble) / den - want) / want) < 2.5e-16  # 2.29e-16 measured
    sigmoid = num / (num + den)  # as the kernels use it: exp(x) / (1 + exp(x)), x <= 0
    assert np.max(np.abs(sigmoid - want / (1 + want)) / (want / (1 + want))) < 3.5e-16  # 3.23e-16
    assert 0.83 < den.min() and den.max() < 1.19
    assert (num[-1], den[-1]) == (1.0, 1.0)  # exp(0) exactly
    num, den = _exp_ratio(np.array([-800.0, -np.inf, np.nan]))
    assert np.all((0 < num[:2] / den[:2]) & (num[:2] / den[:2] < 1e-300))
    assert np.isnan(num[2])


def test_exp2_coefficients_are_the_exp_ones_in_units_of_ln2():
    """The float64 d = 1 loops' 2**f (scores in units of ln 2, |f| <= 1/2;
    kernels/fastgd_vecmath.h holds the same numbers): PADE_EVEN / PADE_ODD with f ln 2 for
    r, and as accurate: the Pade ratio within 3e-16 of 2**f (evaluated here without fused
    multiply-adds)."""
    ln2 = np.log(np.longdouble(2))
    for got, base, odd in [(PADE_EXP2_EVEN, PADE_EVEN, 0), (PADE_EXP2_ODD, PADE_ODD, 1)]:
        degrees = [2 * (len(base) - 1 - i) + odd for i in range(len(base))]
        want = [np.longdouble(c) * ln2**j for c, j in zip(base, degrees, strict=True)]
        np.testing.assert_allclose(np.array(got, np.longdouble), want, rtol=2e-16)
    f = np.linspace(-0.5, 0.5, 100_001)
    s = f * f
    even = np.polyval(PADE_EXP2_EVEN, s)
    odd = np.polyval(PADE_EXP2_ODD, s)
    exact = np.exp2(f.astype(np.longdouble))
    assert np.max(np.abs((even + f * odd) / (even - f * odd) - exact) / exact) < 3e-16  # 2.65e-16


def _exp2_floor_poly_f32(f):
    """EXP2_FLOOR_POLY_F32 at float32 f by Horner's scheme with fused multiply-adds, as the
    kernels evaluate it (the product of two float32 values is exact in float64)."""
    p = np.full_like(f, EXP2_FLOOR_POLY_F32[0])
    for c in EXP2_FLOOR_POLY_F32[1:]:
        p = (p.astype(np.float64) * f + np.float64(c)).astype(np.float32)
    return p


def test_float32_exp2_on_zero_one_is_accurate():
    """The float32 d = 1 loops' 2**f for f = v - floor(v) in [0, 1): within 1.45e-7 of 2**f
    (1.41e-7 measured), exactly 1 at f = 0 (so that 2**-|t| is exact at integers and
    sigmoid(0) is 1/2); and 2**-|t| as the loops make it from v = -min(|t|, clamp),
    f = v - floor(v), p(f) 2**floor(v), within 1.6e-7 over the whole range (the fraction
    rounds to float32 where floor(v) < -1)."""
    f = np.concatenate([np.linspace(0.0, 1.0, 400_001)[:-1], np.geomspace(1e-30, 0.999, 2001)])
    f32 = np.unique(f.astype(np.float32))
    f32 = f32[f32 < 1]
    exact = np.exp2(f32.astype(np.longdouble))
    assert np.max(np.abs(_exp2_floor_poly_f32(f32) - exact) / exact) < 1.45e-7
    assert _exp2_floor_poly_f32(np.zeros(1, np.float32))[0] == 1.0
    clamp = np.float32(-EXP_MIN_F32 / np.log(2.0))
    t = np.concatenate([np.linspace(-130.0, 130.0, 200_001), np.arange(-125, 126)]).astype(np.float32)
    v = -np.minimum(np.abs(t), clamp)
    k = np.floor(v)
    e = _exp2_floor_poly_f32((v - k).astype(np.float32)).astype(np.longdouble) * np.exp2(
        k.astype(np.longdouble)
    )
    want = np.exp2(v.astype(np.longdouble))
    assert np.max(np.abs(e - want) / want) < 1.6e-7
    integral = (t == np.round(t)) & (np.abs(t) <= clamp)
    assert np.array_equal(e[integral], want[integral])


def test_float32_exp2_coefficients_are_the_c_kernels_ones():
    """kernels/fastgd_vecmath.h's FGD_EXP2_FLOOR_POLY_F holds EXP2_FLOOR_POLY_F32's numbers
    (the numba and C loops evaluate the same polynomial)."""
    header = Path(__file__).resolve().parents[1] / "kernels" / "fastgd_vecmath.h"
    if not header.exists():
        pytest.skip("the C sources are not beside this test (an installed copy of fastgd)")
    text = header.read_text()
    body = re.search(r"FGD_EXP2_FLOOR_POLY_F\[6\] = \{([^}]*)\}", text).group(1)
    got = [np.float32(c.strip().rstrip("f")) for c in body.split(",")]
    assert got == list(EXP2_FLOOR_POLY_F32)


def test_exp_nonpositive_clamps_underflow_and_keeps_nan():
    got = _exp([-800.0, -np.inf, np.nan])
    assert 0.0 < got[0] < 1e-300 and 0.0 < got[1] < 1e-300  # tiny, never inf or negative
    assert np.isnan(got[2])


def test_log1p_unit_is_accurate_on_zero_one():
    e = np.concatenate([np.linspace(0.0, 1.0, 200_001), np.geomspace(1e-300, 1.0, 1001)])
    got = _log1p_array(e)
    want = np.log1p(e.astype(np.longdouble))
    nonzero = e > 0
    assert np.max(np.abs(got[nonzero] - want[nonzero]) / want[nonzero]) < 1e-15
    assert got[~nonzero].tolist() == [0.0]


@given(st.floats(min_value=-745.0, max_value=0.0))
def test_exp_nonpositive_property(v):
    want = float(np.exp(np.longdouble(max(v, EXP_MIN))))
    assert abs(_exp([v])[0] - want) <= 2e-16 * want


_exp_as_array = numba.njit(fastmath=set(NUMBA_FASTMATH))(
    lambda x: np.array([exp_nonpositive_as(v) for v in x])
)


def test_exp_nonpositive_as_follows_the_argument_dtype():
    """The softmax kernels' exponential: float32 arithmetic for float32 scores (the same
    bits as exp_nonpositive_f32), float64 for float64 (the same bits as exp_nonpositive)."""
    x = -np.linspace(0.0, 80.0, 10_001)
    got32 = _exp_as_array(x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32, _expf_array(x.astype(np.float32)))
    got64 = _exp_as_array(x)
    assert got64.dtype == np.float64
    np.testing.assert_array_equal(got64, _exp(x))
    want = _exp(x.astype(np.float32).astype(np.float64))  # exp of the same float32 values
    assert np.max(np.abs(got32 - want) / want) < 5e-7  # within a few float32 roundings


def test_exp_nonpositive_as_is_not_callable_from_python():
    with pytest.raises(TypeError, match="Numba-compiled kernels only"):
        exp_nonpositive_as(-1.0)


# Called, as the fused-row kernel calls it, from a loop compiled with reassociating flags.
_pairs = numba.njit(fastmath=set(NUMBA_FASTMATH))(
    lambda z, y: [logistic_pair(z[i], z[i + 1], y[i], y[i + 1]) for i in range(0, z.shape[0] - 1, 2)]
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logistic_pair_against_extended_precision(dtype, rng):
    """Two rows' sigmoid(z) - y, the sum of max(z, 0) - y z and the product of 1 + e^-|z|,
    from scores of both signs over the whole range (and past the exponential's clamp),
    against long-double NumPy: float64 within a few units in the last place, float32
    within float32's."""
    z = np.concatenate([rng.normal(scale=s, size=2000) for s in (0.1, 3.0, 40.0, 2000.0)] + [[0.0, -0.0]])
    z = z.astype(dtype)
    y = (rng.random(z.size) < 0.5).astype(dtype)
    got = np.array(_pairs(z, y))
    zl, yl = z.astype(np.longdouble), y.astype(np.longdouble)
    e = np.exp(-np.abs(zl))
    r = np.where(zl >= 0, 1 / (1 + e), e / (1 + e)) - yl
    terms = np.maximum(zl, 0) - yl * zl
    tol = {np.float64: 4e-16, np.float32: 3e-7}[dtype]
    np.testing.assert_allclose(got[:, 0], r[0::2], rtol=0, atol=tol)  # |sigmoid| <= 1
    np.testing.assert_allclose(got[:, 1], r[1::2], rtol=0, atol=tol)
    np.testing.assert_allclose(got[:, 2], terms[0::2] + terms[1::2], rtol=tol, atol=tol * np.abs(terms).max())
    # 1 + e^-|z| where exp(-|z|) is not below the clamp exp(EXP_MIN)
    floor = np.exp(np.longdouble(EXP_MIN if dtype == np.float64 else EXP_MIN_F32))
    factors = (1 + np.maximum(e, floor))[0::2] * (1 + np.maximum(e, floor))[1::2]
    np.testing.assert_allclose(got[:, 3], factors, rtol=tol)


def test_logistic_pair_keeps_nan():
    got = _pairs(np.array([np.nan, 1.0]), np.array([1.0, 0.0]))[0]
    assert np.isnan(got[0]) and np.isnan(got[2]) and np.isnan(got[3]) and not np.isnan(got[1])
