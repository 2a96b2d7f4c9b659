/* d = 1 (the textbook case) with AVX-512: mse (weighted or not) and unweighted logistic,
 * a 64-byte line of x a step (eight float64 or sixteen float32 rows), every per-row value
 * in registers. Each step asks for the lines of x and y (and weights)
 * FGD_ONE_FEATURE_AHEAD_BYTES ahead, into L1.
 *
 * Both loops read x and y, twice the bytes of the read of X, so 0.5 of that read is their
 * bound if they read at its speed. Measured on the 2-core Intel Xeon test VM, 10,000,000
 * rows (X and y in its L3 cache), in one process, fractions of the read of X:
 * - the requests: the loops of kernels/cython_kernels.pyx ask for 2 KB of rows at the
 *   start of each part of 2 KB, into L2 (fgd_prefetch_stream). One request per step
 *   instead, into L1, 4 KB ahead: logistic float64 0.37 -> 0.52, float32 0.34 -> 0.50 (3
 *   to 8 KB ahead alike; into L2 0.48 / 0.47); mse, with its float32 values widened,
 *   float64 0.47 -> 0.67, float32 0.40 -> 0.59 (the read ran slowly in that run: in other
 *   runs the same loops read 0.45-0.49 and 0.53-0.59).
 * - logistic's arithmetic: gcc vectorised the pyx loops with 256-bit vectors (its tuning
 *   for this CPU); these 512-bit ones, with 2**k as one vscalef (not an integer add, a
 *   shift and a multiply) and max(z, 0) as one masked add, went from 0.28 to 0.35-0.39
 *   (float64) and from 0.32-0.33 to 0.34-0.36 (float32) before the requests above. With
 *   the data in L2 the loop takes 0.68 (float64) and 0.34 (float32) ns a row on one
 *   core: it is bound by its vector operations, about 30 a step. A reciprocal (vrcp14 and
 *   Newton steps) instead of the division, or two steps unrolled, were no faster.
 *
 * Logistic sums as in fastgd_narrow.h: sum l, sum (sigmoid(z) - y) x, sum (sigmoid(z) -
 * y), each lane summing its rows. float64: e^-|z| as the Pade ratio num / den of
 * fgd_exp_ratio_nonpositive_v8d (fastgd_vecmath.h), the log1p terms as the logarithm of the
 * products of num + den and of den, each lane's products brought back to [1, 2) after
 * every part of FGD_ONE_FEATURE_PART_BYTES of x (their exponents summed apart). float32:
 * float32 arithmetic, the exponential of fgd_expf_nonpositive_v16, the part's sums then
 * float64; the log1p terms as the logarithm of a float32 product of 1 + e, brought back to
 * [1, 2) after every part. A partial last step is masked.
 */
#ifndef FASTGD_ONE_FEATURE_H
#define FASTGD_ONE_FEATURE_H

#include <stddef.h>

/* The sums of rows lo..hi of x (n,) and y (n,) with score z = x w0 + b into *g, *dz_sum
 * and *loss_sum (written, not added to). Return 0, having done nothing, without AVX-512:
 * the caller's own loop takes those. */
int fgd_logistic_one_feature_d(const double *x, const double *y, double w0, double b, ptrdiff_t lo, ptrdiff_t hi,
                               double *g, double *dz_sum, double *loss_sum);
int fgd_logistic_one_feature_f(const float *x, const float *y, float w0, float b, ptrdiff_t lo, ptrdiff_t hi,
                               double *g, double *dz_sum, double *loss_sum);

/* mse for d = 1 on rows lo..hi, weighted by sw (NULL: no weights): sum s r^2, 2 sum s r x,
 * 2 sum s r with r = x w0 + b - y, in float64 (float32 values widened), into *loss_sum, *g
 * and *dz_sum. Return 0, having done nothing, without AVX-512. */
int fgd_mse_one_feature_d(const double *x, const double *y, const double *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum);
int fgd_mse_one_feature_f(const float *x, const float *y, const float *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum);

#endif
