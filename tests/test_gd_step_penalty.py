"""gd_step and penalty on every backend against the formulas written out in float64."""

import numpy as np
import pytest

import fastgd
from fastgd import _registry

from naive import gd_step as naive_gd_step
from naive import penalty as naive_penalty

RTOL = {np.float64: 1e-12, np.float32: 1e-6}


@pytest.mark.parametrize("shape", [(1,), (7,), (5, 3)], ids=["d1", "d7", "d5k3"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.7), (0.2, 0.5)])
def test_gd_step_formula(backend, shape, dtype, l1, l2, rng):
    w = rng.normal(size=shape).astype(dtype)
    g = rng.normal(size=shape).astype(dtype)
    expected = naive_gd_step(w, g, 0.25, l1, l2)
    w_before, g_before = w.copy(), g.copy()
    new = fastgd.gd_step(w, g, 0.25, l1=l1, l2=l2, backend=backend)
    assert new is not w and new.dtype == dtype and new.shape == shape
    np.testing.assert_allclose(new, expected, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_array_equal(w, w_before)  # inputs are never modified
    np.testing.assert_array_equal(g, g_before)
    # out=w: the same step in place, no new array
    assert fastgd.gd_step(w, g, 0.25, l1=l1, l2=l2, out=w, backend=backend) is w
    np.testing.assert_array_equal(w, new)
    # out elsewhere: written there, w untouched
    dest = np.full(shape, 7.0, dtype)
    assert fastgd.gd_step(w_before, g, 0.25, l1=l1, l2=l2, out=dest, backend=backend) is dest
    np.testing.assert_array_equal(dest, new)


def test_gd_step_hand_computed(backend):
    # v = w - lr g = [0.95, -1.95, 0.05]; threshold lr l1 = 0.1.
    w = fastgd.gd_step([1.0, -2.0, 0.05], [0.5, -0.5, 0.0], 0.1, l1=1.0, backend=backend)
    np.testing.assert_allclose(w, [0.85, -1.85, 0.0], rtol=1e-14)
    # pure ridge: w <- w - lr (g + 2 l2 w) = 1 - 0.5 (1 + 2) = -0.5
    w = fastgd.gd_step(np.array([1.0]), np.array([1.0]), 0.5, l2=1.0, backend=backend)
    np.testing.assert_allclose(w, [-0.5], rtol=1e-14)
    # a large l1 zeroes everything; integer weights are taken as float64
    w = fastgd.gd_step([3, -2, 1], np.zeros(3), 1.0, l1=10.0, backend=backend)
    assert w.dtype == np.float64
    np.testing.assert_array_equal(w, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(1,), (9,), (4, 3)], ids=["d1", "d9", "d4k3"])
def test_penalty_formula(backend, shape, dtype, rng):
    w = rng.normal(size=shape).astype(dtype)
    for l1, l2 in [(0.0, 0.0), (0.5, 0.0), (0.0, 2.0), (0.1, 0.3)]:
        got = fastgd.penalty(w, l1=l1, l2=l2, backend=backend)
        assert isinstance(got, float)
        assert got == pytest.approx(naive_penalty(w, l1, l2), rel=1e-12, abs=1e-15)


def test_penalty_hand_computed(backend):
    w = np.array([1.0, -2.0, 0.5])
    assert fastgd.penalty(w, l1=0.1, l2=0.2, backend=backend) == pytest.approx(0.1 * 3.5 + 0.2 * 5.25)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-0.1), "lr must be > 0"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(lr=0.1, l1=-1.0), "l1 must be >= 0"),
        (dict(lr=0.1, l2=float("nan")), "l2 must be finite"),
        (dict(lr="fast"), "lr must be a real number"),
    ],
)
def test_gd_step_rejects_bad_parameters(backend, kwargs, message):
    w = np.ones(3)
    with pytest.raises((ValueError, TypeError), match=message):
        fastgd.gd_step(w, np.ones(3), **kwargs, backend=backend)
    np.testing.assert_array_equal(w, 1.0)


def test_gd_step_rejects_arrays_it_cannot_update(backend):
    with pytest.raises(ValueError, match="shape"):
        fastgd.gd_step(np.ones(3), np.ones(4), 0.1, backend=backend)
    with pytest.raises(TypeError, match="out must be a numpy array of w's dtype float64"):
        fastgd.gd_step(np.ones(2), np.zeros(2), 0.1, out=[0.0, 0.0], backend=backend)
    with pytest.raises(TypeError, match="out must be a numpy array of w's dtype float32"):
        fastgd.gd_step(np.ones(2, np.float32), np.zeros(2), 0.1, out=np.ones(2), backend=backend)
    with pytest.raises(ValueError, match=r"out has shape \(3,\) but w has shape \(2,\)"):
        fastgd.gd_step(np.ones(2), np.zeros(2), 0.1, out=np.ones(3), backend=backend)
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fastgd.gd_step(ro, np.ones(3), 0.1, out=ro, backend=backend)
    np.testing.assert_array_equal(fastgd.gd_step(ro, np.ones(3), 0.1, backend=backend), 0.9)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        fastgd.gd_step(np.ones(3), np.ones(3), 0.1, out=np.ones(6)[::2], backend=backend)
    with pytest.raises(ValueError, match="w is empty"):
        fastgd.gd_step(np.ones(0), np.ones(0), 0.1, backend=backend)


def test_gd_step_keeps_nan_visible(backend):
    """A NaN gradient (a diverging run) must give NaN weights, as the numpy reference does,
    never a silent 0 from the soft-threshold."""
    module = _registry.load(backend)
    w = np.array([0.5, -0.5, 0.01, 2.0])
    g = np.array([np.nan, 1.0, np.nan, 0.0])
    module.gd_step(w, g, 0.1, 0.5, 0.1)
    reference = _registry.load("numpy").gd_step(np.array([0.5, -0.5, 0.01, 2.0]), g, 0.1, 0.5, 0.1)
    np.testing.assert_array_equal(np.isnan(w), [True, False, True, False])
    np.testing.assert_allclose(w[~np.isnan(w)], reference[~np.isnan(reference)], rtol=1e-15)
