/* Vectorisable exp and log1p for the Cython kernels: the same formulas as
 * src/fastgd/backends/_vecmath.py (see its docstring), written in C.
 *
 * Only multiply-adds, a compare and an integer add and shift, so gcc vectorises a loop that
 * calls them. Every step is an explicit fma() so that -fassociative-math (on for the kernels'
 * reductions) cannot merge the two-part range reduction (x - k ln2_hi) - k ln2_lo.
 */
#ifndef FASTGD_VECMATH_H
#define FASTGD_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FGD_LN2_HI 6.93147180369123816490e-01
#define FGD_LN2_LO 1.90821492927058770002e-10
#define FGD_INV_LN2 1.44269504088896338700e+00
#define FGD_EXP_MIN (-708.0)
/* 1.5 * 2**52: fma(v, 1/ln2, this) rounds v/ln2 to the nearest integer k and holds k in the
 * low mantissa bits, so neither floor() nor a float-to-integer conversion is needed. */
#define FGD_ROUND_MAGIC 6755399441055744.0

/* 1 where the kernels are compiled for AMD Zen (gcc's -march=native names the CPU
 * znver*): some loops take other steps there, each measured on the 2-core AMD EPYC (Zen 4)
 * test VM (fastgd_fused_rows.c). */
#if defined(__znver1__) || defined(__znver2__) || defined(__znver3__) || defined(__znver4__) || defined(__znver5__)
#define FGD_ZEN 1
#else
#define FGD_ZEN 0
#endif

/* Row i of logistic's targets y as a double: y in X's dtype T, or uint8 labels 0/1 (one
 * byte a row) where labels is set (a constant where the caller is inlined). */
#define FGD_TARGET(y, T, labels, i) \
    ((labels) ? (double)((const unsigned char *)(y))[i] : (double)((const T *)(y))[i])

/* exp(r) ~ 1 + r + r^2 q(r) for |r| <= ln2/2: q of degree 9 fitted on Chebyshev nodes
 * (relative error 1.6e-17 with these float64 coefficients; degree 11 in all, against 2.3e-16
 * for the degree-12 Taylor polynomial this replaced). The same numbers as
 * src/fastgd/backends/_vecmath.py; the last two are the fixed 1 + r. */
static const double FGD_EXP_POLY[12] = {
    2.510038549551032e-08, 2.7620088445409746e-07, 2.7557268459997064e-06,
    2.4801521295954376e-05, 0.00019841269863053618, 0.0013888888917213717,
    0.008333333333330062, 0.04166666666662413, 0.16666666666666669, 0.5000000000000001,
    1.0, 1.0};

/* 2**k from km = fma(v, 1/ln2, FGD_ROUND_MAGIC), k (-1021 <= k <= 0) in km's low bits:
 * 2**k's exponent bits, k + 1023, are the low bits of km's bits + 1023. */
static inline double fgd_pow2(double km)
{
    uint64_t kbits;
    memcpy(&kbits, &km, sizeof kbits);
    uint64_t bits = (kbits + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

/* exp(x) for x <= 0; NaN stays NaN (it compares false and flows through the
 * polynomial), x < -708 gives exp(-708). */
static inline double fgd_exp_nonpositive(double x)
{
    double v = x < FGD_EXP_MIN ? FGD_EXP_MIN : x;
    double km = fma(v, FGD_INV_LN2, FGD_ROUND_MAGIC);
    double k = km - FGD_ROUND_MAGIC;
    double r = fma(-k, FGD_LN2_LO, fma(-k, FGD_LN2_HI, v));
    double p = FGD_EXP_POLY[0];
#pragma GCC unroll 16
    for (int t = 1; t < 12; t++)      /* unrolled: a loop here stops gcc vectorising callers */
        p = fma(p, r, FGD_EXP_POLY[t]);
    return p * fgd_pow2(km);
}

/* exp(x) = *num / *den for x <= 0, for loops that divide by 1 + exp(x) anyway:
 * *num = 2**k N(r), *den = N(-r), the Pade [6/6] approximant exp(r) ~ N(r) / N(-r) (error
 * 2e-19 for |r| <= ln2/2), k and r as in fgd_exp_nonpositive. N(r) = even(r^2) +
 * r odd(r^2), 8 multiply-adds where fgd_exp_nonpositive's polynomial takes 11; *den lies
 * in [0.84, 1.19]. The same numbers as exp_ratio_nonpositive in
 * src/fastgd/backends/_vecmath.py. */
static const double FGD_PADE_EVEN[4] = {1.0 / 665280.0, 1.0 / 792.0, 5.0 / 44.0, 1.0};
static const double FGD_PADE_ODD[3] = {1.0 / 15840.0, 1.0 / 66.0, 0.5};
static inline void fgd_exp_ratio_nonpositive(double x, double *num, double *den)
{
    double v = x < FGD_EXP_MIN ? FGD_EXP_MIN : x;
    double km = fma(v, FGD_INV_LN2, FGD_ROUND_MAGIC);
    double k = km - FGD_ROUND_MAGIC;
    double r = fma(-k, FGD_LN2_LO, fma(-k, FGD_LN2_HI, v));
    double s = r * r;
    double even = fma(fma(fma(FGD_PADE_EVEN[0], s, FGD_PADE_EVEN[1]), s, FGD_PADE_EVEN[2]), s, FGD_PADE_EVEN[3]);
    double odd = r * fma(fma(FGD_PADE_ODD[0], s, FGD_PADE_ODD[1]), s, FGD_PADE_ODD[2]);
    *num = (even + odd) * fgd_pow2(km);
    *den = even - odd;
}

/* log(1 + e) for 0 <= e <= 1: 2 atanh(s), s = e / (2 + e) <= 1/3, series to s^31. */
static inline double fgd_log1p_unit(double e)
{
    double s = e / (2.0 + e);
    double t = s * s;
    double p = 1.0 / 31.0;
    p = fma(p, t, 1.0 / 29.0);
    p = fma(p, t, 1.0 / 27.0);
    p = fma(p, t, 1.0 / 25.0);
    p = fma(p, t, 1.0 / 23.0);
    p = fma(p, t, 1.0 / 21.0);
    p = fma(p, t, 1.0 / 19.0);
    p = fma(p, t, 1.0 / 17.0);
    p = fma(p, t, 1.0 / 15.0);
    p = fma(p, t, 1.0 / 13.0);
    p = fma(p, t, 1.0 / 11.0);
    p = fma(p, t, 1.0 / 9.0);
    p = fma(p, t, 1.0 / 7.0);
    p = fma(p, t, 1.0 / 5.0);
    p = fma(p, t, 1.0 / 3.0);
    p = fma(p, t, 1.0);
    return 2.0 * s * p;
}


/* exp(x) for float32 x <= 0, the same steps in float: ln 2 split for float (k * FGD_LN2_HI_F
 * is exact for |k| < 2**9), 1.5 * 2**23 to round, and 1 + r + r^2 q(r) with q of degree 4
 * fitted on Chebyshev nodes (relative error 1.1e-8 for |r| <= ln2/2); below -87, where 2**k
 * would leave the normal floats, exp(-87). Within 1.5 units in the last place of float32
 * (tests/test_vecmath.py). */
#define FGD_LN2_HI_F 6.93145751953125e-01f
#define FGD_LN2_LO_F 1.42860682030941723212e-06f
#define FGD_INV_LN2_F 1.44269504088896341f
#define FGD_EXPF_MIN (-87.0f)
#define FGD_ROUND_MAGIC_F 12582912.0f
static const float FGD_EXPF_POLY[7] = {
    0.0013926184037700295f, 0.008363178931176662f, 0.041666556149721146f,
    0.16666576266288757f, 0.5f, 1.0f, 1.0f};

static inline float fgd_expf_nonpositive(float x)
{
    float v = x < FGD_EXPF_MIN ? FGD_EXPF_MIN : x;
    float km = fmaf(v, FGD_INV_LN2_F, FGD_ROUND_MAGIC_F);
    float k = km - FGD_ROUND_MAGIC_F;
    float r = fmaf(-k, FGD_LN2_LO_F, fmaf(-k, FGD_LN2_HI_F, v));
    float p = FGD_EXPF_POLY[0];
#pragma GCC unroll 16
    for (int t = 1; t < 7; t++)       /* as in fgd_exp_nonpositive */
        p = fmaf(p, r, FGD_EXPF_POLY[t]);
    uint32_t kbits;
    memcpy(&kbits, &km, sizeof kbits);
    uint32_t bits = (kbits + 127) << 23;           /* 2**k */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#if defined(__GNUC__)
#define FGD_LOGISTIC_INLINE inline __attribute__((always_inline))
#else
#define FGD_LOGISTIC_INLINE inline
#endif

/* One row's logistic terms from its score z, label y and weight s (1 unweighted): r =
 * s (sigmoid(z) - y) and the loss term. Weighted, loss = s l. Unweighted, loss = l less
 * its log1p term, which the caller adds up as the logarithm of a product: e^-|z| = num /
 * den (fgd_exp_ratio_nonpositive), sigmoid(z) is den / (num + den) or num / (num + den),
 * and log1p(e^-|z|) = log(t / den) with t = num + den. Returned by value (a struct), so
 * that the caller's sums stay in registers: through pointers gcc left the loop scalar
 * (fastgd_narrow.c; fastgd_fused_rows.c calls it too). Always inlined, so that the weighted
 * and loss cases fold away. */
typedef struct {
    double r, loss, t, den;
} fgd_logistic_terms;

static FGD_LOGISTIC_INLINE fgd_logistic_terms fgd_logistic_row(double z, double y, double s, int weighted)
{
    fgd_logistic_terms q;
    if (weighted) { /* log(1 + e^z) - y z = max(z, 0) + log1p(e^-|z|) - y z */
        double e = fgd_exp_nonpositive(-fabs(z));
        q.loss = s * ((z > 0.0 ? z : 0.0) + fgd_log1p_unit(e) - y * z);
        q.r = s * ((z >= 0.0 ? 1.0 : e) / (1.0 + e) - y);
        q.t = q.den = 1.0;
        return q;
    }
    double num, den;
    fgd_exp_ratio_nonpositive(-fabs(z), &num, &den);
    q.t = num + den;
    q.den = den;
    q.loss = (z > 0.0 ? z : 0.0) - y * z;
    q.r = (z >= 0.0 ? den : num) / q.t - y;
    return q;
}

#if defined(__AVX512F__) && defined(__GNUC__)
#include <immintrin.h>

/* The same on 512-bit vectors of lanes (the softmax steps of fastgd_softmax_steps.h, the
 * d = 1 loops of fastgd_one_feature.c). 2**k is one vscalef. */

/* x = k ln2 + r, |r| <= ln2 / 2, for x <= 0 clamped to FGD_EXP_MIN (with one NaN operand
 * vmaxpd returns its second, so NaN stays NaN): returns r, k in *k. */
static inline __attribute__((always_inline)) __m512d fgd_exp_reduce_v8d(__m512d x, __m512d *k)
{
    __m512d v = _mm512_max_pd(_mm512_set1_pd(FGD_EXP_MIN), x);
    __m512d magic = _mm512_set1_pd(FGD_ROUND_MAGIC);
    *k = _mm512_sub_pd(_mm512_fmadd_pd(v, _mm512_set1_pd(FGD_INV_LN2), magic), magic);
    __m512d r = _mm512_fnmadd_pd(*k, _mm512_set1_pd(FGD_LN2_HI), v);
    return _mm512_fnmadd_pd(*k, _mm512_set1_pd(FGD_LN2_LO), r);
}

/* fgd_exp_nonpositive on eight lanes, the polynomial by Estrin's scheme. */
static inline __attribute__((always_inline)) __m512d fgd_exp_nonpositive_v8d(__m512d x)
{
    __m512d k, r = fgd_exp_reduce_v8d(x, &k);
#define C(i) _mm512_set1_pd(FGD_EXP_POLY[11 - (i)])
    __m512d r2 = _mm512_mul_pd(r, r), r4 = _mm512_mul_pd(r2, r2), r8 = _mm512_mul_pd(r4, r4);
    __m512d p01 = _mm512_fmadd_pd(C(1), r, C(0)), p23 = _mm512_fmadd_pd(C(3), r, C(2));
    __m512d p45 = _mm512_fmadd_pd(C(5), r, C(4)), p67 = _mm512_fmadd_pd(C(7), r, C(6));
    __m512d p89 = _mm512_fmadd_pd(C(9), r, C(8)), pab = _mm512_fmadd_pd(C(11), r, C(10));
    __m512d q0 = _mm512_fmadd_pd(p23, r2, p01), q1 = _mm512_fmadd_pd(p67, r2, p45), q2 = _mm512_fmadd_pd(pab, r2, p89);
    __m512d p = _mm512_fmadd_pd(q2, r8, _mm512_fmadd_pd(q1, r4, q0));
#undef C
    return _mm512_scalef_pd(p, k);
}

/* fgd_exp_ratio_nonpositive on eight lanes: e^x = *num / *den. */
static inline __attribute__((always_inline)) void fgd_exp_ratio_nonpositive_v8d(__m512d x, __m512d *num,
                                                                               __m512d *den)
{
    __m512d k, r = fgd_exp_reduce_v8d(x, &k);
    __m512d s = _mm512_mul_pd(r, r);
#define E(i) _mm512_set1_pd(FGD_PADE_EVEN[i])
#define O(i) _mm512_set1_pd(FGD_PADE_ODD[i])
    __m512d even = _mm512_fmadd_pd(_mm512_fmadd_pd(_mm512_fmadd_pd(E(0), s, E(1)), s, E(2)), s, E(3));
    __m512d odd = _mm512_mul_pd(r, _mm512_fmadd_pd(_mm512_fmadd_pd(O(0), s, O(1)), s, O(2)));
#undef E
#undef O
    *num = _mm512_scalef_pd(_mm512_add_pd(even, odd), k);
    *den = _mm512_sub_pd(even, odd);
}

/* The degree-6 polynomial with coefficients c (highest degree first) at r on sixteen
 * lanes, by Horner's scheme: six multiply-adds, where Estrin's took two multiplies more.
 * Its users have independent vectors to overlap the longer chain with (the softmax steps'
 * classes and tiles, the d = 1 loop's steps), and the d = 1 loop is bound by its vector
 * operations: one core of the 2-core AMD EPYC (Zen 4) test machine, a C harness, in L2,
 * 0.342 -> 0.334 ns a row; the softmax steps of 1M rows, k = 10, 4.9-5.7 -> 4.8-5.1 ms. */
static inline __attribute__((always_inline)) __m512 fgd_poly6_v16(const float *c, __m512 r)
{
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(c[0]), r, _mm512_set1_ps(c[1]));
#pragma GCC unroll 5
    for (int i = 2; i <= 6; i++)
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c[i]));
    return p;
}

/* fgd_expf_nonpositive on sixteen lanes. */
static inline __attribute__((always_inline)) __m512 fgd_expf_nonpositive_v16(__m512 x)
{
    __m512 v = _mm512_max_ps(_mm512_set1_ps(FGD_EXPF_MIN), x); /* NaN stays NaN, as above */
    __m512 magic = _mm512_set1_ps(FGD_ROUND_MAGIC_F);
    __m512 k = _mm512_sub_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(FGD_INV_LN2_F), magic), magic);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(FGD_LN2_HI_F), v);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(FGD_LN2_LO_F), r);
    return _mm512_scalef_ps(fgd_poly6_v16(FGD_EXPF_POLY, r), k);
}

#if defined(__AVX512DQ__)
/* For scores in units of ln 2 (t = z / ln 2, the d = 1 loops of fastgd_one_feature.c):
 * 2**-|t| = e^-|z|. vrange gives -min(|t|, m) in one instruction and vreduce the
 * fraction f = -|t| - k, |f| <= 1/2, k an integer, so the clamp, the absolute value and
 * the range reduction (five operations above) take three. float64's Pade ratio is
 * fgd_exp_ratio_nonpositive_v8d's with its r = f ln 2 folded into the coefficients
 * (src/fastgd/backends/_vecmath.py: PADE_EXP2_EVEN, PADE_EXP2_ODD hold the same numbers).
 * Multiplying t by 1 / ln 2 rounds: the relative error of 2**-|t| is within |t| 2**-53
 * (float32: |t| 2**-24, as the rounding of z itself). */
static const double FGD_PADE_EXP2_EVEN[4] = {1.6670487438724684e-07, 0.0002914584578069236, 0.054596933399795614,
                                             1.0};
static const double FGD_PADE_EXP2_ODD[3] = {1.0101180413960942e-05, 0.005045828060438326, 0.34657359027997264};
/* float32: 2**f for 0 <= f < 1 as 1 + f r(f), r of degree 4 fitted for the least largest
 * relative error (Lawson's iteration, the coefficients then rounded to float32 and nudged
 * by a few units in their last place): within 1.41e-7 of 2**f, evaluated in float32 by
 * Horner's scheme (src/fastgd/backends/_vecmath.py: EXP2_FLOOR_POLY_F32, the same numbers;
 * tests/test_vecmath.py). */
static const float FGD_EXP2_FLOOR_POLY_F[6] = {0.0018671306315809488f, 0.009017032571136951f, 0.055799905210733414f,
                                               0.24016448855400085f, 0.6931512951850891f, 1.0f};

/* 2**-|t| = *num / *den with |t| clamped to -FGD_EXP_MIN / ln 2 (e^-|z| clamped where
 * fgd_exp_nonpositive clamps it) */
static inline __attribute__((always_inline)) void fgd_exp2_neg_abs_ratio_v8d(__m512d t, __m512d *num, __m512d *den)
{
    __m512d v = _mm512_range_pd(t, _mm512_set1_pd(-FGD_EXP_MIN / M_LN2), 0x0E); /* smaller magnitude, sign set */
    __m512d f = _mm512_reduce_pd(v, 0x08);                         /* v - round(v), no exceptions */
    __m512d k = _mm512_sub_pd(v, f);
    __m512d s = _mm512_mul_pd(f, f);
#define E(i) _mm512_set1_pd(FGD_PADE_EXP2_EVEN[i])
#define O(i) _mm512_set1_pd(FGD_PADE_EXP2_ODD[i])
    __m512d even = _mm512_fmadd_pd(_mm512_fmadd_pd(_mm512_fmadd_pd(E(0), s, E(1)), s, E(2)), s, E(3));
    __m512d odd = _mm512_fmadd_pd(_mm512_fmadd_pd(O(0), s, O(1)), s, O(2));
#undef E
#undef O
    *num = _mm512_scalef_pd(_mm512_fmadd_pd(odd, f, even), k);
    *den = _mm512_fnmadd_pd(odd, f, even);
}

/* 2**-|t| in float32, |t| clamped to -FGD_EXPF_MIN / ln 2 (as fgd_expf_nonpositive).
 * vreduce rounding down gives f = v - floor(v) in [0, 1), and vscalef multiplies by
 * 2**floor(v) itself, so that k = v - f takes no subtraction; with the degree-5 polynomial
 * (Horner's scheme; 0 <= f < 1 takes no higher degree than |f| <= 1/2 for the same relative
 * error) two operations fewer than a degree-6 one on f = v - round(v). The d = 1 float32
 * logistic loop, one core of the 2-core Intel Xeon test VM, a C harness, X in L2 and in
 * L3: 0.33-0.35 -> 0.30-0.31 ns a row. */
static inline __attribute__((always_inline)) __m512 fgd_exp2f_neg_abs_v16(__m512 t)
{
    const float *c = FGD_EXP2_FLOOR_POLY_F;
    __m512 v = _mm512_range_ps(t, _mm512_set1_ps((float)(-FGD_EXPF_MIN / M_LN2)), 0x0E);
    __m512 f = _mm512_reduce_ps(v, 0x09); /* v - floor(v), no exceptions */
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(c[0]), f, _mm512_set1_ps(c[1]));
#pragma GCC unroll 4
    for (int i = 2; i <= 5; i++)
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c[i]));
    return _mm512_scalef_ps(p, v);
}
#endif

/* The lanes of v as two vectors of float64 (lanes 0-7, 8-15). */
static inline __attribute__((always_inline)) void fgd_widen16(__m512 v, __m512d *lo, __m512d *hi)
{
    *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
#endif

#endif
