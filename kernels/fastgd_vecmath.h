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

/* exp(x) for x <= 0; NaN stays NaN, x < -708 gives exp(-708). */
static inline double fgd_exp_nonpositive(double x)
{
    double v = x > FGD_EXP_MIN ? x : (x != x ? x : FGD_EXP_MIN);
    double k = floor(fma(v, FGD_INV_LN2, 0.5));
    double r = fma(-k, FGD_LN2_LO, fma(-k, FGD_LN2_HI, v));
    double p = 2.08767569878680989792e-09;          /* 1/12! ... 1/0!: Taylor, |r| <= ln2/2 */
    p = fma(p, r, 2.50521083854417187751e-08);
    p = fma(p, r, 2.75573192239858906526e-07);
    p = fma(p, r, 2.75573192239858906526e-06);
    p = fma(p, r, 2.48015873015873015873e-05);
    p = fma(p, r, 1.98412698412698412698e-04);
    p = fma(p, r, 1.38888888888888888889e-03);
    p = fma(p, r, 8.33333333333333333333e-03);
    p = fma(p, r, 4.16666666666666666667e-02);
    p = fma(p, r, 1.66666666666666666667e-01);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
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

#endif
