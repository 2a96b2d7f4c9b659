/* Unweighted logistic for d = 1 (the textbook case) with AVX-512: eight float64 or
 * sixteen float32 rows a 512-bit vector, the whole chain from score to gradient terms in
 * registers.
 *
 * At d = 1 the loop is bound by its arithmetic (an exponential and a division a row against
 * 8 or 16 bytes read) and by the reads of x and y together. gcc vectorised the loops of
 * kernels/cython_kernels.pyx with 256-bit vectors (its tuning for this CPU); written with
 * 512-bit intrinsics, with the exponent's 2**k as one vscalef (instead of an integer add,
 * a shift and a multiply) and the loss's max(z, 0) as one masked add, 10,000,000 rows on
 * the 2-core Intel Xeon test VM (X and y in its L3 cache), in one process, went from 0.28
 * to 0.35-0.39 of the read of X in float64 and from 0.32-0.33 to 0.34-0.36 in float32.
 * With the data in L2 this loop takes 0.68 (float64) and 0.34 (float32) ns a row on one
 * core; a reciprocal (vrcp14 and Newton steps) instead of the division was no faster, nor
 * were prefetches 1 to 16 KB ahead or into L1. Both loops read x and y, twice the bytes of
 * the read of X, so 0.5 of that read is their bound with no arithmetic at all.
 *
 * Sums as in fastgd_narrow.h: sum l, sum (sigmoid(z) - y) x, sum (sigmoid(z) - y), each
 * lane summing its rows. float64: e^-|z| as the Pade ratio num / den of
 * fgd_exp_ratio_nonpositive (fastgd_vecmath.h), and the log1p terms as the logarithm of the
 * products of num + den and of den, each lane's products brought back to [1, 2) after
 * every part of the rows (their exponents summed apart). float32: float32 arithmetic, the
 * exponential of fgd_expf_nonpositive, the part's sums then float64; the log1p terms as
 * the logarithm of a float32 product of 1 + e, brought back to [1, 2) after every part.
 * Rows are taken in parts of FGD_ONE_FEATURE_PART_BYTES of x, each asking for the rows
 * FGD_STREAM_AHEAD_BYTES ahead (fastgd_prefetch.h); a partial last vector is masked.
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

#endif
