/* d = 1 (the textbook case) with AVX-512 (F and DQ): mse (weighted or not) and unweighted
 * logistic, a 64-byte line of x a step (eight float64 or sixteen float32 rows), every
 * per-row value in registers. Each step asks for the lines of x and y (and weights)
 * FGD_ONE_FEATURE_AHEAD_BYTES ahead, into L1.
 *
 * Both loops read x and y, twice the bytes of the read of X, so 0.5 of that read is their
 * bound if they read at its speed. On the 2-core Intel Xeon test VM that is hard at
 * 10,000,000 rows: a repeated streaming read runs at 48-52 GB/s up to 96 MB and 35 GB/s
 * from 160 MB, so X alone (80 MB float64) is read from L3 but x and y together (160 MB)
 * partly from memory; mse, with next to no arithmetic, reads at 0.49-0.56 of the read of
 * X. Measured there, in one process, fractions of the read of X:
 * - the requests: the loops of kernels/cython_kernels.pyx ask for 2 KB of rows at the
 *   start of each part of 2 KB, into L2 (fgd_prefetch_stream). One request per step
 *   instead, into L1, 4 KB ahead: logistic float64 0.37 -> 0.52, float32 0.34 -> 0.50 (3
 *   to 8 KB ahead alike; into L2 0.48 / 0.47); mse, with its float32 values widened,
 *   float64 0.47 -> 0.67, float32 0.40 -> 0.59 (the read ran slowly in that run: in other
 *   runs the same loops read 0.45-0.49 and 0.53-0.59).
 * - logistic's arithmetic: gcc vectorised the pyx loops with 256-bit vectors (its tuning
 *   for this CPU); these 512-bit ones, with 2**k as one vscalef (not an integer add, a
 *   shift and a multiply) and max(z, 0) as one masked add, went from 0.28 to 0.35-0.39
 *   (float64) and from 0.32-0.33 to 0.34-0.36 (float32) before the requests above.
 * - fewer operations a step: the scores in units of ln 2 (float64: t = z / ln 2, w0 and b
 *   divided once; float32: t = z (1 / ln 2), z kept for the loss terms, which float32
 *   units of ln 2 would round by 2**-24 of themselves), so that vrange and vreduce
 *   (AVX-512DQ) give -min(|t|, clamp) = k + f in three operations where the clamp, |z|
 *   and the range reduction took six; the log1p terms as one product of 1 - q (q =
 *   sigmoid(-|z|), one multiply-add) where two products took two multiplies; sigmoid(z)
 *   as 1 - q or q. With the data in L2 one core took 0.71-0.74 -> 0.60-0.62 ns a row
 *   (float64) and 0.34-0.35 -> 0.29-0.30 (float32); in one process, 10M rows, of the
 *   read: float64 0.47-0.50 -> 0.52-0.55, float32 0.44-0.47 -> 0.51-0.57.
 *   float64 is now bound by its division (vdivpd: 16 cycles for eight lanes; without it
 *   the loop takes 0.47 ns a row). One division for two vectors (a product of the two
 *   denominators, then multiplies) took 0.57 ns a row in L2 but was no faster from L3;
 *   a reciprocal (vrcp14, 2 cycles a vector here, and Newton steps) was slower.
 *   float32 is bound by the multiply-add pipes (about 16 of its operations use them): its
 *   polynomial by Horner's scheme (fastgd_vecmath.h), two of them fewer, took one core, in
 *   L2, from 0.342 to 0.334 ns a row. t = x (w0 / ln 2) + b / ln 2 in one multiply-add
 *   as well (0.318 ns, 1.09x faster in the kernels) was dropped: w0 / ln 2 rounded to
 *   float32 moved the loss by about 1e-8 of itself where the float32 scores are exact
 *   (the README's guarantee, tests/test_hardening.py).
 * - float32, two operations fewer a vector and no test a vector: 2**-|t| from f = v -
 *   floor(v) in [0, 1), which vscalef's own 2**floor(v) makes whole (no k = v - f), by a
 *   degree-5 polynomial (fgd_exp2f_neg_abs_v16); and 64 rows a step (four vectors, a line
 *   of labels) where the part's lines ahead lie before hi, so that the requests take no
 *   test and the labels' no test a vector. One core, in one process, X in L3 (5M rows),
 *   ns a row: 0.353 -> 0.332 (polynomial) -> 0.317 (steps of 64 rows); numba's loop, with
 *   the same steps and its labels' mask from vptestmb (_simd._label_mask), from 1.06x to
 *   1.01-1.04x the C loop's time. fastgd bench, 10M x 1 float32 logistic, two threads:
 *   numba / cython 0.43-0.46 of the read, where they took 0.34-0.42 / 0.37-0.45 before on
 *   the same day. A division of 1 by 1 + e (or vrcp14 and a Newton step) with sigmoid as
 *   a masked multiply and the product of the 1 / (1 + e) was 5% slower.
 * - float32, the divider: vdivps takes about 10 cycles a vector on this VM's divider (four
 *   independent ones 13.5 ns; eight multiply-adds fit beside one), which bound the loop
 *   with one a vector. The 64-row steps take one division for their four vectors: r = 1 /
 *   (d0 d1 d2 d3) of the denominators d = 1 + e (each in [1, 2]), u0 = r (d2 d3) d1 and so
 *   on, sigmoid(z) = u or e u (a masked multiply), the product of the u times r: as many
 *   operations, a quarter of the divider (fgd_one_quad_f); eight vectors a division, a
 *   chain of seven multiplies, and the next step's exponentials before this step's sums
 *   were slower. And x aligned: NumPy's large arrays start 16 bytes past a 64-byte line, so
 *   that every vector load spanned two lines (the C loop loads x twice a step; numba's
 *   once, and lost little): the rows before the first line boundary are a part of their
 *   own (fgd_part_end). Parts of 4 KB of x, not 2. One core, in one process, 2M rows: the C
 *   loop 0.309-0.313 -> 0.275-0.276 ns a row (262,144 rows: quad 0.96-0.97, aligned 0.92 of
 *   the time, 4 KB parts 0.975); numba's 0.314-0.317 -> 0.300-0.308, 1.07x the C loop's
 *   (its masked multiply in inline assembly, _simd._multiply_where_not: from a select LLVM
 *   made a multiply and a blend, 2-4% slower). Results within 5e-7 of float64 arithmetic
 *   on the same values, as before (1.6e-8 at 200,001 rows).
 *
 * Logistic sums as in fastgd_narrow.h: sum l, sum (sigmoid(z) - y) x, sum (sigmoid(z) -
 * y), each lane summing its rows, the loss's max(z, 0) - y z in units of ln 2 (float64).
 * float64:
 * e^-|z| = 2**-|t| as the Pade ratio num / den of fgd_exp2_neg_abs_ratio_v8d
 * (fastgd_vecmath.h), q = num / (num + den), the log1p terms as -log of the product of 1 -
 * q, each lane's product brought back to [1, 2) after every part of
 * FGD_ONE_FEATURE_PART_BYTES of x (its exponents summed apart). float32: float32
 * arithmetic, the exponential of fgd_exp2f_neg_abs_v16, the part's sums then float64; the
 * log1p terms alike as a float32 product. A partial last step is masked. Rounding z / ln 2
 * costs a relative error of up to |z| 2**-52 in e^-|z| (float32: |z| 2**-23), as much as
 * computing z = x w0 + b itself may.
 */
#ifndef FASTGD_ONE_FEATURE_H
#define FASTGD_ONE_FEATURE_H

#include <stddef.h>

/* The sums of rows lo..hi of x (n,) and y (n,) with score z = x w0 + b into *g, *dz_sum
 * and *loss_sum (written, not added to); y in x's dtype, or uint8 labels 0/1 where labels
 * is set (at d = 1 a row of float64 x and labels is 9 bytes instead of 16). Return 0,
 * having done nothing, without AVX-512: the caller's own loop takes those. */
int fgd_logistic_one_feature_d(const double *x, const void *y, int labels, double w0, double b, ptrdiff_t lo,
                               ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum);
int fgd_logistic_one_feature_f(const float *x, const void *y, int labels, float w0, float b, ptrdiff_t lo,
                               ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum);

/* mse for d = 1 on rows lo..hi, weighted by sw (NULL: no weights): sum s r^2, 2 sum s r x,
 * 2 sum s r with r = x w0 + b - y, in float64 (float32 values widened), into *loss_sum, *g
 * and *dz_sum. Return 0, having done nothing, without AVX-512. */
int fgd_mse_one_feature_d(const double *x, const double *y, const double *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum);
int fgd_mse_one_feature_f(const float *x, const float *y, const float *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum);

#endif
