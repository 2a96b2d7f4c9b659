/* Vectorisable exp and log1p for the Cython kernels: the same formulas as
 * src/fastgd/backends/_vecmath.py (see its docstring), written in C.
 *
 * Only multiplies, adds, floor and an integer shift, so gcc vectorises a loop that calls
 * them. Every step is an explicit fma() so that -fassociative-math (on for the kernels'
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

/* 1/12!, ..., 1/1!, 1/0!: the Taylor polynomial of exp, |r| <= ln2/2. */
static const double FGD_EXP_TAYLOR[13] = {
    2.08767569878680989792e-09, 2.50521083854417187751e-08, 2.75573192239858906526e-07,
    2.75573192239858906526e-06, 2.48015873015873015873e-05, 1.98412698412698412698e-04,
    1.38888888888888888889e-03, 8.33333333333333333333e-03, 4.16666666666666666667e-02,
    1.66666666666666666667e-01, 0.5, 1.0, 1.0};

/* exp(x) for x <= 0; NaN stays NaN, x < -708 gives exp(-708). */
static inline double fgd_exp_nonpositive(double x)
{
    double v = x > FGD_EXP_MIN ? x : (x != x ? x : FGD_EXP_MIN);
    double k = floor(fma(v, FGD_INV_LN2, 0.5));
    double r = fma(-k, FGD_LN2_LO, fma(-k, FGD_LN2_HI, v));
    double p = FGD_EXP_TAYLOR[0];
#pragma GCC unroll 16
    for (int t = 1; t < 13; t++)      /* unrolled: a loop here stops gcc vectorising callers */
        p = fma(p, r, FGD_EXP_TAYLOR[t]);
    int64_t bits = ((int64_t)k + 1023) << 52;      /* 2**k */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
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


/* exp(x) for float32 x <= 0, the same steps in float: k = round(x / ln 2) with ln 2 split
 * for float (k * FGD_LN2_HI_F is exact for |k| < 2**9), Taylor to r^7 (error < 6e-9 for
 * |r| <= ln2/2); below -87, where 2**k would leave the normal floats, exp(-87). Within
 * 1.5 units in the last place of float32 (tests/test_vecmath.py). */
#define FGD_LN2_HI_F 6.93145751953125e-01f
#define FGD_LN2_LO_F 1.42860682030941723212e-06f
#define FGD_INV_LN2_F 1.44269504088896341f
#define FGD_EXPF_MIN (-87.0f)
static const float FGD_EXPF_TAYLOR[8] = {        /* 1/7!, ..., 1/0! */
    1.98412698412698412698e-04f, 1.38888888888888888889e-03f, 8.33333333333333333333e-03f,
    4.16666666666666666667e-02f, 1.66666666666666666667e-01f, 0.5f, 1.0f, 1.0f};

static inline float fgd_expf_nonpositive(float x)
{
    float v = x > FGD_EXPF_MIN ? x : (x != x ? x : FGD_EXPF_MIN);
    float k = floorf(fmaf(v, FGD_INV_LN2_F, 0.5f));
    float r = fmaf(-k, FGD_LN2_LO_F, fmaf(-k, FGD_LN2_HI_F, v));
    float p = FGD_EXPF_TAYLOR[0];
#pragma GCC unroll 16
    for (int t = 1; t < 8; t++)       /* as in fgd_exp_nonpositive */
        p = fmaf(p, r, FGD_EXPF_TAYLOR[t]);
    int32_t bits = ((int32_t)k + 127) << 23;       /* 2**k */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
