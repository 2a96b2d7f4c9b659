"""Vectorisable ``exp`` and ``log1p`` for the Numba CPU kernels.

``math.exp`` and ``math.log1p`` compile to calls into the C maths library, and a loop
with a call in it is not vectorised: at one scalar call per sample, the logistic and
softmax kernels were bound by these calls, not by reading X. The functions here use only
multiplies, adds, ``floor`` and an integer shift, so LLVM turns a loop over a block of
samples into SIMD code. They cover exactly the ranges the kernels need and are accurate
to a few units in the last place of float64 there (``tests/test_vecmath.py``):

- :func:`exp_nonpositive` -- ``exp(x)`` for ``x <= 0`` (arguments are ``-|z|`` or
  ``z - max(z)``, so results lie in ``(0, 1]`` and never overflow), one value at a time
  inside a kernel's loop; :func:`exp_nonpositive_f32` the same in float32 arithmetic;
  :func:`exp_nonpositive_as` picks one of the two by the argument's dtype;
- :func:`log1p_unit` -- ``log(1 + e)`` for ``0 <= e <= 1``.

The Cython kernels implement the same formulas in C (``kernels/fastgd_vecmath.h``).

These functions are compiled with ``contract`` (fused multiply-add) only, never with
``reassoc``: reassociation could fold the two-part range reduction
``(x - k ln2_hi) - k ln2_lo`` into one product and lose the digits it exists to keep.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

#: ln 2 split in a high part with trailing zero bits (k * LN2_HI is exact for |k| < 2**11)
#: and the rest.
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
#: Below this, exp(x) < 2.3e-308: clamped so 2**k stays a normal float64.
EXP_MIN = -708.0

#: The float32 counterparts (k * LN2_HI_F32 is exact for |k| < 2**9); below EXP_MIN_F32,
#: 2**k would leave the normal float32 range. float32 globals stay float32 in the kernels.
LN2_HI_F32 = np.float32(6.93145751953125e-01)
LN2_LO_F32 = np.float32(1.42860682030941723212e-06)
INV_LN2_F32 = np.float32(1.44269504088896341)
EXP_MIN_F32 = np.float32(-87.0)
_HALF_F32 = np.float32(0.5)
_ONE_F32 = np.float32(1.0)
#: 1/7!, ..., 1/2! as float32 (1/1! and 1/0! are _ONE_F32).
_EXP_TAYLOR_F32 = tuple(np.float32(1.0 / math.factorial(i)) for i in range(7, 1, -1))

_MATH = {"contract"}


@numba.njit(cache=True, fastmath=_MATH, inline="always")
def _exp_reduced(r):
    """exp(r) for |r| <= ln(2)/2: Taylor polynomial of degree 12 (error < 3e-16)."""
    p = 2.08767569878680989792e-09  # 1/12!
    p = p * r + 2.50521083854417187751e-08  # 1/11!
    p = p * r + 2.75573192239858906526e-07  # 1/10!
    p = p * r + 2.75573192239858906526e-06  # 1/9!
    p = p * r + 2.48015873015873015873e-05  # 1/8!
    p = p * r + 1.98412698412698412698e-04  # 1/7!
    p = p * r + 1.38888888888888888889e-03  # 1/6!
    p = p * r + 8.33333333333333333333e-03  # 1/5!
    p = p * r + 4.16666666666666666667e-02  # 1/4!
    p = p * r + 1.66666666666666666667e-01  # 1/3!
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0


@numba.njit(cache=True, fastmath=_MATH, inline="always")
def _reduce(v):
    """(k, r) with exp(v) = 2**k exp(r), |r| <= ln(2)/2, for v <= 0; v below EXP_MIN is
    clamped to it, and NaN stays NaN."""
    v = v if v > EXP_MIN else (v if v != v else EXP_MIN)
    k = math.floor(v * INV_LN2 + 0.5)
    return k, (v - k * LN2_HI) - k * LN2_LO


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float whose IEEE bits are ``bits``: float64 from int64, float32 from int32 (a
    register move, no memory)."""
    floats = {types.int64: (types.float64, ir.DoubleType()), types.int32: (types.float32, ir.FloatType())}
    if bits not in floats:
        return None
    result, llvm_type = floats[bits]

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llvm_type)

    return result(bits), codegen


@numba.njit(cache=True, fastmath=_MATH)
def exp_nonpositive(v):
    """``exp(v)`` for one ``v <= 0``: ``2**k exp(r)`` with ``k = round(v / ln 2)``, ``2**k``
    assembled from its exponent bits. NaN stays NaN; below EXP_MIN it gives exp(EXP_MIN).

    Not ``inline="always"``: that would compile it with the caller's reassociating flags.
    LLVM still inlines it (and the caller's loop vectorises), keeping these contract-only
    flags. A loop that calls it keeps each value in registers: one pass, no scratch array
    (this replaced an in-place array form that took two passes and int64 scratch).
    """
    k, r = _reduce(v)
    return _exp_reduced(r) * _float_from_bits((np.int64(k) + 1023) << 52)


@numba.njit(cache=True, fastmath=_MATH)
def exp_nonpositive_f32(v):
    """``exp(v)`` for one float32 ``v <= 0`` in float32 arithmetic: the steps of
    :func:`exp_nonpositive` with float32 constants and a Taylor polynomial of degree 7
    (error < 6e-9 for |r| <= ln(2)/2); within 1.5 units in the last place of float32.
    Below EXP_MIN_F32 it gives exp(-87); NaN stays NaN."""
    v = v if v > EXP_MIN_F32 else (v if v != v else EXP_MIN_F32)
    k = np.floor(v * INV_LN2_F32 + _HALF_F32)
    r = (v - k * LN2_HI_F32) - k * LN2_LO_F32
    c7, c6, c5, c4, c3, c2 = _EXP_TAYLOR_F32
    p = c7 * r + c6
    p = p * r + c5
    p = p * r + c4
    p = p * r + c3
    p = p * r + c2
    p = p * r + _ONE_F32
    p = p * r + _ONE_F32
    return p * _float_from_bits(np.int32((np.int64(k) + 127) << 23))


def exp_nonpositive_as(v):
    """``exp(v)`` for ``v <= 0`` in v's own precision: :func:`exp_nonpositive_f32` for a
    float32 ``v``, :func:`exp_nonpositive` otherwise, chosen when the calling kernel is
    compiled. Callable from compiled code only."""
    raise TypeError("exp_nonpositive_as is for Numba-compiled kernels only")


@overload(exp_nonpositive_as)
def _exp_nonpositive_as(v):
    if v == types.float32:
        return lambda v: exp_nonpositive_f32(v)
    return lambda v: exp_nonpositive(v)


@numba.njit(cache=True, fastmath=_MATH, inline="always")
def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1, as 2 atanh(s) with s = e / (2 + e) <= 1/3.

    The atanh series ``s (1 + s^2/3 + s^4/5 + ...)`` to s^31 (error < 2e-17 relative).
    """
    s = e / (2.0 + e)
    t = s * s
    p = 1.0 / 31.0
    p = p * t + 1.0 / 29.0
    p = p * t + 1.0 / 27.0
    p = p * t + 1.0 / 25.0
    p = p * t + 1.0 / 23.0
    p = p * t + 1.0 / 21.0
    p = p * t + 1.0 / 19.0
    p = p * t + 1.0 / 17.0
    p = p * t + 1.0 / 15.0
    p = p * t + 1.0 / 13.0
    p = p * t + 1.0 / 11.0
    p = p * t + 1.0 / 9.0
    p = p * t + 1.0 / 7.0
    p = p * t + 1.0 / 5.0
    p = p * t + 1.0 / 3.0
    p = p * t + 1.0
    return 2.0 * s * p
