/* mse/logistic sums for rows of 9 to 128 float64 values (9 to 256 float32: up to sixteen
 * 512-bit vectors) in one pass over X, four rows at a time: each row's vectors are loaded once, for its score and, after
 * the four residuals, for its gradient terms. Needs AVX-512.
 *
 * The block kernel of kernels/cython_kernels.pyx (a block's scores, then its residuals,
 * then its gradient update) reached 0.64-0.72 of the read at 2M x 64 on the 2-core Intel
 * Xeon test VM (AVX-512, 2 MB L2 a core); this loop, in a C harness in the same process:
 * float64 mse 0.87-0.91, logistic 0.83; float32 mse 0.98-0.99, logistic 0.86-0.87.
 * What it took, each measured there (fractions of the read, float64 unless said):
 * - four rows a step (two: mse 0.81-0.86, logistic 0.81-0.82), each row's products in
 *   one sum (two sums a row: 0.78-0.81, 0.76-0.78);
 * - the loops over a row's vectors kept rolled (#pragma GCC unroll 1), the vectors going
 *   through the stack: unrolled, with the vectors pinned to registers, mse 0.64-0.76 and
 *   logistic 0.55-0.72 (the reason is not measured: this VM has no hardware counters);
 * - each load of a row's vector asks for the line FGD_FUSED_AHEAD_BYTES(nv) ahead into L1
 *   (without: mse 0.78, logistic 0.55-0.61, float32 mse 0.63). Asked for in a burst at
 *   the start of each step instead, the lines came later: harness and kernel in one
 *   process, of the read, burst -> one at a time: 2M x 64 float32 logistic 0.88-0.91 ->
 *   0.96-0.97, mse 0.96 -> 1.00; float64 logistic 0.88-0.91 -> 0.90-0.91, mse 0.93 ->
 *   0.93; 4M x 32 float32 logistic 0.77 -> 0.87-0.88, mse 0.80 -> 0.97; 8M x 16 float64
 *   logistic 0.72 -> 0.85; 1.28M x 100 float64 logistic 0.83 -> 0.91;
 * - unweighted logistic's four residuals in one vector (fgd_logistic_rows4; row by row,
 *   float32 0.66-0.71);
 * - float64 rows of five vectors or more: each step's scores before the previous step's
 *   gradient terms (fastgd_fused_rows_impl.h).
 * Rows of 9 to 16 vectors against the block kernel (harness and kernel, same process):
 * 1.28M x 100 float64 mse 0.66 -> 0.76-0.81, logistic 0.60 -> 0.75-0.79; 1M x 128 0.71 ->
 * 0.80, 0.66 -> 0.77; 500,000 x 256 float32 0.70 -> 0.86-0.87, 0.68 -> 0.80-0.85.
 *
 * Sums as fastgd_narrow.h's: mse sum s r^2, 2 sum s r x, 2 sum s r; logistic sum s l,
 * sum s (sigmoid(z) - y) x, sum s (sigmoid(z) - y), the unweighted log1p terms as the
 * logarithm of products. Scores and gradient sums are in X's dtype, as in the block
 * kernel; losses and residuals in float64; the gradient sums go into float64 every
 * FGD_FUSED_PART_ROWS rows.
 */
#ifndef FASTGD_FUSED_ROWS_H
#define FASTGD_FUSED_ROWS_H

#include <stddef.h>

/* The sums of rows lo..hi of X (n, d) into g (d,), *dz_sum and *loss_sum (written, not
 * added to); y in X's dtype, or uint8 labels 0/1 where labels is set (logistic); sw NULL
 * for no weights; w (d,) in X's dtype. Returns 0, having done nothing,
 * without AVX-512 or for d outside FGD_NARROW_D_MAX + 1 .. sixteen vectors (128 float64,
 * 256 float32 values): the caller's block kernel takes those. */
int fgd_fused_rows_d(const double *X, const void *y, const double *sw, const double *w, double b, int logistic,
                     int labels, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum);
int fgd_fused_rows_f(const float *X, const void *y, const float *sw, const float *w, double b, int logistic,
                     int labels, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum);

#endif
