/* Register-tiled block products of the softmax kernels (kernels/cython_kernels.pyx), and
 * for the mse/logistic kernels the four-row dot products of wide rows and the row passes
 * of the gradient.
 *
 * The softmax loss needs two products per block of m rows: the class scores
 * Z = X_b Wt^T (m x k) and the gradient update Gb += R^T X_b (k x d), 2 m d k multiply-
 * adds in all, ten times those of logistic at k = 10. The scores are tiled four rows by
 * four classes: each step along d loads four values of X and four of Wt and does sixteen
 * multiply-adds, so the loops are bound by arithmetic, not by loads. Leftover classes and
 * rows take smaller tiles. The gradient, from seven classes on and with AVX-512, takes
 * panels of columns by classes whose sums stay in registers over the block's rows
 * (fgd_class_accumulate_panels); with fewer classes, four-by-four tiles as the scores.
 *
 * Scores and residuals are stored class-major (ZT[q * ld + i]), so that the per-row
 * softmax steps in the caller run over the rows of a block and vectorise.
 *
 * The restrict qualifiers tell the compiler that the tile's rows of Gb do not overlap X;
 * without them it must check at run time, and with sixteen pairs to check gcc gives up
 * vectorising. fastgd_tiles_impl.h is included once per dtype.
 */
#ifndef FASTGD_TILES_H
#define FASTGD_TILES_H

#include <stddef.h>
#include <string.h>

#include "fastgd_prefetch.h"

/* Explicit vectors (GCC/Clang vector extensions) for the full-width parts of the tiles on
 * x86-64 with AVX; the plain loops below them take the rest and every other target. Each
 * loaded vector of X (and of Wt) is pinned to a register (FGD_IN_REGISTER, an empty asm):
 * left to itself gcc folds the load into every multiply-add that uses it, four loads of
 * the same values per step, and the tiles were bound by loads. On the 2-core AMD EPYC test
 * machine (gcc 12, -march=native, one core, rows in cache), float64: scores 13.4 -> 18.5
 * and gradient tiles 17.5 -> 25.6 billion multiply-adds a second (the peak is 27); float32
 * scores 29 -> 32.5, and float32 gradient tiles 21 -> 33 with d known only at run time, as
 * in the kernels (gcc's own vectorisation reached 52 only with d a compile-time constant). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__AVX512F__)
#define FGD_VEC_BYTES 64
#define FGD_SCORES_VEC_BYTES 32
#elif defined(__GNUC__) && defined(__x86_64__) && defined(__AVX__)
#define FGD_VEC_BYTES 32
#define FGD_SCORES_VEC_BYTES 32
#else
#define FGD_VEC_BYTES 0
#endif
#if FGD_VEC_BYTES
#define FGD_IN_REGISTER(v) __asm__("" : "+v"(v))
#endif

/* The score tiles end in sixteen horizontal sums: with 256-bit vectors those cost half
 * the shuffles of 512-bit ones, and on the 2-core AMD EPYC test machine (which splits a
 * 512-bit operation in two) the tile did 17.5 instead of 11.4 billion multiply-adds a second
 * from cache (gcc 12, -march=native). Other compilers keep their default width. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FGD_SCORES_ATTR __attribute__((noinline, target("prefer-vector-width=256")))
#else
#define FGD_SCORES_ATTR
#endif

/* Inlined into the caller's large OpenMP function, the gradient loops ran out of registers:
 * gcc spilled the pinned vectors of X and the row pointers to the stack and reloaded them
 * at every step. Kept out of line (A/B in one process, 2M x 64: softmax k = 10 float64
 * 110 -> 101 ms; logistic float32 12.9 -> 11.8 ms, mse 10.4 -> 9.6 ms, X read at 60 GB/s). */
#if defined(__GNUC__)
#define FGD_ACCUMULATE_ATTR __attribute__((noinline))
#else
#define FGD_ACCUMULATE_ATTR
#endif

/* The gradient tiles ask for the next block of rows while they work (fgd_prefetch, in
 * fastgd_prefetch.h: into L2), each tile (and the leftover classes as one more) an equal
 * share of four rows' lines, at most FGD_AHEAD_LINES, so the requests keep pace with the
 * rows read whatever k is; a fixed 16 lines a tile fell behind when a block had fewer than
 * two tiles per four rows (the two tile functions in a C harness, 2M x 64 float64, two
 * threads: 4 classes 55-56 -> 40-44 ms, 7 classes 68 -> 51-53, 8 unchanged). Asking for a
 * whole block at once stalled on the CPU's miss buffers. Locality 2 (prefetcht1), not 3;
 * the likely cause: lines asked into L1 hold the core's few L1 miss buffers until they
 * arrive from memory, and the tiles' own loads from L2 wait behind them. 2M x 64 float64,
 * k = 10: 116/115 -> 100/101 ms (float32 82/83 -> 71/73 ms), alternating builds; the
 * products alone (the harness) 74 -> 60 ms, while asking for the lines during the score
 * tiles instead made it slower (94-101 ms). */
#define FGD_AHEAD_LINES 32

/* The last step of a score tile: the four rows' sums of one class, each a 256-bit vector
 * of partial sums, added up across their lanes together (horizontal adds of pairs, then
 * of the two 128-bit halves) and stored, plus the class's bias (added in double), as four
 * consecutive scores z[0..3]. One horizontal sum at a time took about six shuffles and
 * adds per score: the two tile functions in a C harness, 2M x 64, 9 classes, two threads,
 * scores alone with the rows in cache float64 26.4 -> 23.0-24.3 ms, float32 18.7 ->
 * 15.4-15.5 ms; both products with X read from memory float64 58-60 -> 53-56 ms, float32
 * 35 -> 32-33 ms. Used where d is a multiple of the vector (else the one-at-a-time sums). */
#if FGD_VEC_BYTES && defined(__AVX__)
#include <immintrin.h>
#define FGD_REDUCE4 1
static inline void fgd_reduce4_d(__m256d s0, __m256d s1, __m256d s2, __m256d s3, double b, double *z)
{
    __m256d h01 = _mm256_hadd_pd(s0, s1);   /* s0 01, s1 01 | s0 23, s1 23 */
    __m256d h23 = _mm256_hadd_pd(s2, s3);
    __m256d lo = _mm256_permute2f128_pd(h01, h23, 0x20), hi = _mm256_permute2f128_pd(h01, h23, 0x31);
    _mm256_storeu_pd(z, _mm256_add_pd(_mm256_add_pd(lo, hi), _mm256_set1_pd(b)));
}
static inline void fgd_reduce4_f(__m256 s0, __m256 s1, __m256 s2, __m256 s3, double b, float *z)
{
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    _mm_storeu_ps(z, _mm256_cvtpd_ps(_mm256_add_pd(_mm256_cvtps_pd(sum), _mm256_set1_pd(b))));
}
#else
#define FGD_REDUCE4 0
#endif

/* The gradient panels (fgd_class_accumulate_panels) with AVX-512: 512-bit vectors, masked
 * loads and stores for the columns past the last whole vector; at most 24 registers of sums
 * (FGD_PANEL_CLASSES_MAX classes by two vectors, or six by four) beside those of X and the
 * broadcast. For any number of classes: the tiles took k below seven while the gradient
 * asked for all of the next block's lines (the slower tiles spread them over a longer
 * loop); with the lines shared among the block's three steps (cython_kernels.pyx) the
 * panels are faster at every k (1M x 64, in one process, k = 3 / 5 / 7: float64 30.1 /
 * 29.2 / 34.3 -> 21.4 / 24.2 / 24.2 ms, float32 14.9 / 17.5 / 23.5 -> 14.7 / 16.5 / 19.0). */
#if FGD_VEC_BYTES && defined(__AVX512F__)
#define FGD_PANELS 1
#define FGD_PANEL_CLASSES_MAX 12
#define FGD_PANEL_VECS_MAX 4
#define FGD_PANEL_SUMS_MAX 24
#else
#define FGD_PANELS 0
#endif
/* The rows per block of the softmax kernels (fastgd._config.CPU_SOFTMAX_BLOCK_ROWS), the
 * stride of their residuals: the gradient panels have a case compiled for it (a test checks
 * that the two agree). */
#define FGD_PANEL_LDR 384

#if FGD_PANELS
#define FGD_V __m512d
#define FGD_MASK __mmask8
#define FGD_VZERO _mm512_setzero_pd
#define FGD_VLOAD _mm512_loadu_pd
#define FGD_VMASKLOAD _mm512_maskz_loadu_pd
#define FGD_VSTORE _mm512_storeu_pd
#define FGD_VMASKSTORE _mm512_mask_storeu_pd
#define FGD_VSET1 _mm512_set1_pd
#define FGD_VFMA _mm512_fmadd_pd
#define FGD_VADD _mm512_add_pd
#endif
#define FGD_T double
#define FGD_NAME(name) name##_d
#include "fastgd_tiles_impl.h"
#undef FGD_T
#undef FGD_NAME

#if FGD_PANELS
#undef FGD_V
#undef FGD_MASK
#undef FGD_VZERO
#undef FGD_VLOAD
#undef FGD_VMASKLOAD
#undef FGD_VSTORE
#undef FGD_VMASKSTORE
#undef FGD_VSET1
#undef FGD_VFMA
#undef FGD_VADD
#define FGD_V __m512
#define FGD_MASK __mmask16
#define FGD_VZERO _mm512_setzero_ps
#define FGD_VLOAD _mm512_loadu_ps
#define FGD_VMASKLOAD _mm512_maskz_loadu_ps
#define FGD_VSTORE _mm512_storeu_ps
#define FGD_VMASKSTORE _mm512_mask_storeu_ps
#define FGD_VSET1 _mm512_set1_ps
#define FGD_VFMA _mm512_fmadd_ps
#define FGD_VADD _mm512_add_ps
#endif
#define FGD_T float
#define FGD_NAME(name) name##_f
#include "fastgd_tiles_impl.h"
#undef FGD_T
#undef FGD_NAME

#include "fastgd_score_groups.h"

#endif
