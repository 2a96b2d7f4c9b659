"""Vectorisable ``exp`` and ``log1p`` for the Numba CPU kernels.

``math.exp`` and ``math.log1p`` compile to calls into the C maths library, and a loop
with a call in it is not vectorised: at one scalar call per sample, the logistic and
softmax kernels were bound by these calls, not by reading X. The functions here use only
multiply-adds, a compare and an integer add and shift, so LLVM turns a loop over a block of
samples into SIMD code. They cover exactly the ranges the kernels need and are accurate
to a few units in the last place of float64 there (``tests/test_vecmath.py``):

- :func:`exp_nonpositive` -- ``exp(x)`` for ``x <= 0`` (arguments are ``-|z|`` or
  ``z - max(z)``, so results lie in ``(0, 1]`` and never overflow), one value at a time
  inside a kernel's loop; :func:`exp_nonpositive_f32` the same in float32 arithmetic;
  :func:`exp_nonpositive_as` picks one of the two by the argument's dtype;
- :func:`exp_ratio_nonpositive` -- ``exp(x)`` for ``x <= 0`` as a ratio of two numbers,
  for the d = 1 logistic loop, which divides by ``1 + exp(x)`` anyway;
- :func:`log1p_unit` -- ``log(1 + e)`` for ``0 <= e <= 1``;
- :func:`logistic_pair` -- two rows' unweighted logistic terms in one two-lane vector
  (exp_nonpositive's steps written as LLVM vector code), for the fused-row kernel, whose
  rows come two at a time and whose scalar residuals do not vectorise.

The Cython kernels implement the same formulas in C (``kernels/fastgd_vecmath.h``).

These functions are compiled with ``contract`` (fused multiply-add) only, never with
``reassoc``: reassociation could fold the two-part range reduction
``(x - k ln2_hi) - k ln2_lo`` into one product and lose the digits it exists to keep.
"""

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
#: 1.5 * 2**52: ``v / ln2 + ROUND_MAGIC`` rounds to the nearest integer k and holds k in
#: the low mantissa bits, so neither ``floor`` nor a float-to-integer conversion is needed.
ROUND_MAGIC = 6755399441055744.0

#: The float32 counterparts (k * LN2_HI_F32 is exact for |k| < 2**9); below EXP_MIN_F32,
#: 2**k would leave the normal float32 range. float32 globals stay float32 in the kernels.
LN2_HI_F32 = np.float32(6.93145751953125e-01)
LN2_LO_F32 = np.float32(1.42860682030941723212e-06)
INV_LN2_F32 = np.float32(1.44269504088896341)
EXP_MIN_F32 = np.float32(-87.0)
ROUND_MAGIC_F32 = np.float32(12582912.0)  # 1.5 * 2**23

#: exp(r) ~ 1 + r + r**2 q(r) for |r| <= ln(2)/2, q fitted on Chebyshev nodes: the
#: polynomial's coefficients, highest degree first (the last two are the fixed 1 + r).
#: float64: q of degree 9, relative error 1.6e-17 with these float64 coefficients (the
#: degree-12 Taylor polynomial it replaced: 2.3e-16). float32: q of degree 4, 1.1e-8.
#: kernels/fastgd_vecmath.h holds the same numbers.
EXP_POLY = (
    2.510038549551032e-08,
    2.7620088445409746e-07,
    2.7557268459997064e-06,
    2.4801521295954376e-05,
    0.00019841269863053618,
    0.0013888888917213717,
    0.008333333333330062,
    0.04166666666662413,
    0.16666666666666669,
    0.5000000000000001,
    1.0,
    1.0,
)
_EXP_Q_F32 = (0.0013926184037700295, 0.008363178931176662, 0.041666556149721146, 0.16666576266288757, 0.5)
EXP_POLY_F32 = tuple(np.float32(c) for c in _EXP_Q_F32 + (1.0, 1.0))

#: The Pade [6/6] approximant exp(r) ~ N(r) / N(-r) of exp_ratio_nonpositive, N(r) =
#: even(r**2) + r odd(r**2) with N's coefficients 6! (12 - j)! / (12! j! (6 - j)!) of r**j,
#: highest degree first (the C header holds the same numbers).
PADE_EVEN = (1.0 / 665280.0, 1.0 / 792.0, 5.0 / 44.0, 1.0)
PADE_ODD = (1.0 / 15840.0, 1.0 / 66.0, 0.5)

#: For scores in units of ln 2 (t = z / ln 2: the d = 1 logistic loops of
#: kernels/fastgd_one_feature.c and _simd.logistic_one_feature), 2**f for |f| <= 1/2:
#: PADE_EVEN / PADE_ODD with their r = f ln 2 folded into the coefficients (the coefficient
#: of f**j times ln2**j), highest degree first; fastgd_vecmath.h holds the same numbers
#: (FGD_PADE_EXP2_EVEN, FGD_PADE_EXP2_ODD).
PADE_EXP2_EVEN = (1.6670487438724684e-07, 0.0002914584578069236, 0.054596933399795614, 1.0)
PADE_EXP2_ODD = (1.0101180413960942e-05, 0.005045828060438326, 0.34657359027997264)

#: float32, the same loops: 2**f for 0 <= f < 1 (f = v - floor(v), vscalef then multiplying
#: by 2**floor(v)), 1 + f r(f) with r of degree 4 fitted for the least largest relative
#: error, rounded to float32 and nudged by a few units in their last place: within 1.41e-7
#: of 2**f evaluated in float32 by Horner's scheme; highest degree first.
#: kernels/fastgd_vecmath.h holds the same numbers (FGD_EXP2_FLOOR_POLY_F).
EXP2_FLOOR_POLY_F32 = tuple(
    np.float32(c)
    for c in (
        0.0018671306315809488,
        0.009017032571136951,
        0.055799905210733414,
        0.24016448855400085,
        0.6931512951850891,
        1.0,
    )
)

_MATH = {"contract"}


@numba.njit(cache=True, fastmath=_MATH, inline="always")
def _horner(coefs, r):
    """The polynomial with coefficients ``coefs`` (highest degree first) at r, by Horner's
    rule in r's dtype; the tuple's length is fixed when compiling, so the loop unrolls."""
    p = coefs[0]
    for c in coefs[1:]:
        p = p * r + c
    return p


def _bitcast(targets):
    """An intrinsic that reinterprets its argument's bits (a register move, no memory):
    ``targets`` maps an argument type to (result type, LLVM type)."""

    def typer(typingctx, value):
        if value not in targets:
            return None
        result, llvm_type = targets[value]

        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], llvm_type)

        return result(value), codegen

    return intrinsic(typer)


#: The float whose IEEE bits are the argument: float64 from int64, float32 from int32.
_float_from_bits = _bitcast(
    {types.int64: (types.float64, ir.DoubleType()), types.int32: (types.float32, ir.FloatType())}
)
#: The IEEE bits of a float: int64 for a float64, int32 for a float32.
_bits_from_float = _bitcast(
    {types.float64: (types.int64, ir.IntType(64)), types.float32: (types.int32, ir.IntType(32))}
)


@numba.njit(cache=True, fastmath=_MATH, inline="always")
def _pow2(km):
    """2**k from ``km = v / ln2 + ROUND_MAGIC`` (k, -1021 <= k <= 0, in km's low bits): its
    exponent bits, k + 1023, are the low 11 bits of km's bits + 1023."""
    return _float_from_bits(((_bits_from_float(km) + 1023) & 0x7FF) << 52)


@numba.njit(cache=True, fastmath=_MATH, inline="always")
def _pow2_f32(km):
    """:func:`_pow2` for float32: 2**k (-126 <= k <= 0) from ``v / ln2 + ROUND_MAGIC_F32``."""
    return _float_from_bits(np.int32(((_bits_from_float(km) + 127) & 0xFF) << 23))


@numba.njit(cache=True, fastmath=_MATH)
def exp_nonpositive(v):
    """``exp(v)`` for one ``v <= 0``: ``2**k exp(r)`` with ``k = round(v / ln 2)`` and
    ``|r| <= ln(2)/2``, ``2**k`` assembled from its exponent bits. NaN stays NaN (it
    compares false and flows through the polynomial); below EXP_MIN it gives exp(EXP_MIN).

    Not ``inline="always"``: that would compile it with the caller's reassociating flags,
    which could fold ``(v / ln 2 + ROUND_MAGIC) - ROUND_MAGIC`` or the two-part range
    reduction. LLVM still inlines it (and the caller's loop vectorises), keeping these
    contract-only flags. A loop that calls it keeps each value in registers: one pass, no
    scratch array.
    """
    v = EXP_MIN if v < EXP_MIN else v
    km = v * INV_LN2 + ROUND_MAGIC
    k = km - ROUND_MAGIC
    r = (v - k * LN2_HI) - k * LN2_LO
    return _horner(EXP_POLY, r) * _pow2(km)


@numba.njit(cache=True, fastmath=_MATH)
def exp_ratio_nonpositive(v):
    """``(a, b)`` with ``exp(v) = a / b`` for one ``v <= 0``, for kernels that divide by
    ``1 + exp(v)`` anyway: ``a = 2**k N(r)``, ``b = N(-r)``, the Pade [6/6] approximant of
    ``exp(r) = N(r) / N(-r)``, with k and r as in :func:`exp_nonpositive`. N(r) is
    PADE_EVEN(r**2) + r PADE_ODD(r**2), 8 multiply-adds where exp_nonpositive's polynomial
    takes 11; the approximant's error is 2e-19 for |r| <= ln(2)/2, and b lies in
    [0.84, 1.19]. Below EXP_MIN it is exp(EXP_MIN); NaN gives NaN."""
    v = EXP_MIN if v < EXP_MIN else v
    km = v * INV_LN2 + ROUND_MAGIC
    k = km - ROUND_MAGIC
    r = (v - k * LN2_HI) - k * LN2_LO
    s = r * r
    even = _horner(PADE_EVEN, s)
    odd = r * _horner(PADE_ODD, s)
    return (even + odd) * _pow2(km), even - odd


@numba.njit(cache=True, fastmath=_MATH)
def exp_nonpositive_f32(v):
    """``exp(v)`` for one float32 ``v <= 0`` in float32 arithmetic: the steps of
    exp_nonpositive with float32 constants and EXP_POLY_F32 (error < 1.1e-8 for
    |r| <= ln(2)/2); within 1.5 units in the last place of float32. Below EXP_MIN_F32 it
    gives exp(-87); NaN stays NaN."""
    v = EXP_MIN_F32 if v < EXP_MIN_F32 else v
    km = v * INV_LN2_F32 + ROUND_MAGIC_F32
    k = km - ROUND_MAGIC_F32
    r = (v - k * LN2_HI_F32) - k * LN2_LO_F32
    return _horner(EXP_POLY_F32, r) * _pow2_f32(km)


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


#: The constants of exp_nonpositive / exp_nonpositive_f32 for _logistic_pair_codegen, by
#: the float type: (EXP_MIN, INV_LN2, ROUND_MAGIC, LN2_HI, LN2_LO, polynomial, exponent
#: bias, exponent mask, mantissa bits, LLVM float type, LLVM integer type of its width).
_PAIR_CONSTANTS = {
    types.float64: (
        EXP_MIN,
        INV_LN2,
        ROUND_MAGIC,
        LN2_HI,
        LN2_LO,
        EXP_POLY,
        1023,
        0x7FF,
        52,
        ir.DoubleType(),
        ir.IntType(64),
    ),
    types.float32: (
        float(EXP_MIN_F32),
        float(INV_LN2_F32),
        float(ROUND_MAGIC_F32),
        float(LN2_HI_F32),
        float(LN2_LO_F32),
        tuple(float(c) for c in EXP_POLY_F32),
        127,
        0xFF,
        23,
        ir.FloatType(),
        ir.IntType(32),
    ),
}


def _logistic_pair_codegen(context, builder, sig, args):
    """LLVM code for _logistic_pair: the steps of exp_nonpositive (or _f32) and the
    unweighted logistic row terms on a vector of the two rows' scores, multiply-adds
    contracted, nothing reassociated (the instructions carry only ``contract``)."""
    minimum, inv_ln2, magic, ln2_hi, ln2_lo, poly, bias, mask, bits, ft, it = _PAIR_CONSTANTS[sig.args[0]]
    vt = ir.VectorType(ft, 2)
    ivt = ir.VectorType(it, 2)
    i32 = ir.IntType(32)

    def const(c, t=vt):
        return ir.Constant(t, [c, c])

    def contracted(instruction):
        instruction.flags.append("contract")
        return instruction

    def fma(a, b, c):  # a b + c, one rounding where the target has multiply-adds
        return contracted(builder.fadd(contracted(builder.fmul(a, b)), c))

    def pair(x0, x1):
        return builder.insert_element(
            builder.insert_element(ir.Constant(vt, ir.Undefined), x0, i32(0)), x1, i32(1)
        )

    z = pair(args[0], args[1])
    z_ty = sig.args[0]
    y = pair(*(context.cast(builder, args[i], sig.args[i], z_ty) for i in (2, 3)))  # uint8 labels
    zero = const(0.0)
    one = const(1.0)
    v = builder.select(builder.fcmp_ordered(">", z, zero), builder.fsub(const(-0.0), z), z)  # -|z|
    v = builder.select(builder.fcmp_ordered("<", v, const(minimum)), const(minimum), v)
    km = fma(v, const(inv_ln2), const(magic))
    k = builder.fsub(km, const(magic))
    r = fma(builder.fsub(zero, k), const(ln2_lo), fma(builder.fsub(zero, k), const(ln2_hi), v))
    p = const(poly[0])
    for c in poly[1:]:
        p = fma(p, r, const(c))
    exponent = builder.shl(
        builder.and_(builder.add(builder.bitcast(km, ivt), const(bias, ivt)), const(mask, ivt)),
        const(bits, ivt),
    )
    e = builder.fmul(p, builder.bitcast(exponent, vt))
    one_plus_e = builder.fadd(one, e)
    residual = builder.fsub(
        builder.fdiv(builder.select(builder.fcmp_ordered(">=", z, zero), one, e), one_plus_e), y
    )
    term = builder.fsub(builder.select(builder.fcmp_ordered(">", z, zero), z, zero), builder.fmul(y, z))
    f64 = ir.DoubleType()

    def lane(vector, i):
        x = builder.extract_element(vector, i32(i))
        return x if ft == f64 else builder.fpext(x, f64)

    out = [lane(residual, 0), lane(residual, 1)]
    out.append(builder.fadd(lane(term, 0), lane(term, 1)))
    out.append(builder.fmul(lane(one_plus_e, 0), lane(one_plus_e, 1)))
    return context.make_tuple(builder, sig.return_type, out)


@intrinsic
def _logistic_pair(typingctx, z0, z1, y0, y1):
    """See logistic_pair."""
    if z0 not in _PAIR_CONSTANTS or z1 != z0 or any(t not in (z0, types.uint8) for t in (y0, y1)):
        return None
    return types.UniTuple(types.float64, 4)(z0, z1, y0, y1), _logistic_pair_codegen


@numba.njit(cache=True, fastmath=_MATH)
def logistic_pair(z0, z1, y0, y1):
    """Two rows' unweighted logistic terms at once, from their scores and labels (all
    float64 or all float32, or uint8 labels; computed in the scores' precision in one
    two-lane vector): (sigmoid(z0) - y0, sigmoid(z1) - y1, the sum of max(z, 0) - y z, the
    product of 1 + e^-|z|), as float64. The exponential takes exp_nonpositive's steps
    (exp_nonpositive_f32's for float32), so each lane equals the one-row formulas up to
    contraction. A separate function with contract-only flags, as exp_nonpositive, so that a calling kernel's
    reassociating flags never reach its range reduction."""
    return _logistic_pair(z0, z1, y0, y1)
