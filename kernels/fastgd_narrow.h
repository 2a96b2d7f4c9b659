/* mse/logistic sums for narrow X (2 <= d <= FGD_NARROW_D_MAX) in one pass over the rows:
 * each row's score, residual, loss and gradient terms in registers, the loop vectorised
 * over rows. d is a compile-time constant in each case of fgd_narrow_rows' switch, so the
 * loops over a row's d values unroll, the d gradient sums stay in registers, and gcc loads
 * d interleaved columns with shuffles. With d known only at run time the same loop does
 * not vectorise, and the block kernel of kernels/cython_kernels.pyx (scores, losses,
 * gradient as three passes over a block) spends more on its passes than on reading X:
 * 10M values of X, float64 logistic, of the read: d = 2 0.27 -> 0.64, d = 4 0.23 -> 0.81,
 * d = 8 0.39 -> 0.77 (a C harness of this loop on the 2-core AMD EPYC test machine).
 *
 * Arithmetic is float64 whatever X's dtype (float32 values are widened as they are
 * loaded); sums as in the block kernel: mse sum s r^2, 2 sum s r x, 2 sum s r; logistic
 * sum s l, sum s (sigmoid(z) - y) x, sum s (sigmoid(z) - y). Unweighted logistic takes
 * e^-|z| as a ratio (fgd_exp_ratio_nonpositive) and its log1p terms as the logarithm of
 * products, as the d = 1 loop does. The loops are in fastgd_narrow_impl.h, included once
 * per dtype by fastgd_narrow.c.
 */
#ifndef FASTGD_NARROW_H
#define FASTGD_NARROW_H

#include <stddef.h>

#define FGD_NARROW_D_MAX 8

/* The sums of rows lo..hi of X (n, d) into g (d,), *dz_sum and *loss_sum (written, not
 * added to); y in X's dtype, or for logistic with labels set uint8 labels 0/1; sw NULL for
 * no weights; w (d,) in float64. Returns 0, having done nothing,
 * for d outside 2 .. FGD_NARROW_D_MAX. Defined in fastgd_narrow.c, a translation unit of
 * its own: inside the Cython-generated C file gcc left half of the logistic loops
 * scalar ("control flow in loop"; 5M x 2 float64: 24 ms against 3.3 ms). */
int fgd_narrow_rows_d(const double *X, const void *y, const double *sw, const double *w, double b, int logistic,
                      int labels, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum,
                      double *loss_sum);
int fgd_narrow_rows_f(const float *X, const void *y, const float *sw, const double *w, double b, int logistic,
                      int labels, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum,
                      double *loss_sum);

/* Softmax's block products for narrow rows (fastgd_tiles.h's fgd_class_scores and
 * fgd_class_accumulate for d up to FGD_NARROW_D_MAX, without the prefetch): ZT[q * ldz + i]
 * = b[q] + X[i] . Wt[q] for i < m, q < k, and Gb[q] += the sum over i < m of
 * RT[q * ldr + i] X[i]. Each returns 0, having done nothing, for d outside
 * 2 .. FGD_NARROW_D_MAX. */
int fgd_narrow_class_scores_d(const double *X, const double *Wt, const double *b, ptrdiff_t m, ptrdiff_t d,
                              ptrdiff_t k, ptrdiff_t ldz, double *ZT);
int fgd_narrow_class_scores_f(const float *X, const float *Wt, const double *b, ptrdiff_t m, ptrdiff_t d,
                              ptrdiff_t k, ptrdiff_t ldz, float *ZT);
int fgd_narrow_class_accumulate_d(const double *X, const double *RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
                                  ptrdiff_t ldr, double *Gb);
int fgd_narrow_class_accumulate_f(const float *X, const float *RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
                                  ptrdiff_t ldr, float *Gb);

#endif
