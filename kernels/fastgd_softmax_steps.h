/* The softmax steps of one block (kernels/cython_kernels.pyx, _softmax_chunk) with AVX-512:
 * from the block's class scores to its residuals, in place, a vector of rows at a time
 * (eight float64 rows, sixteen float32 ones), both dtypes from one source,
 * fastgd_softmax_steps_impl.h.
 *
 * ZT holds the block's scores class-major (ZT[q * ldz + i], i < m, q < k; with kq < k the
 * last class scores 0 and its row is written here). Per tile (a vector of rows): the row maxima
 * (one pass over the k score vectors), then per class the exponential of the score minus
 * the maximum, its sum over the classes and the label's score (selected by a compare of the
 * labels), then per class the residual p - onehot, weighted, stored over the score and
 * added to the class's sum of residuals. Everything of a tile stays in vectors; the rows
 * past m are masked out of every sum. The Cython loops this replaces (still taken without
 * AVX-512) run over the block's rows once per step, with 256-bit vectors and the labels one
 * row at a time: 2M x 64, k = 10, their share of the call 14.5% -> 11.9% (perf), the call
 * 62.2 -> 61.0 ms in one process; with the share of the next block's lines these steps
 * then ask for (cython_kernels.pyx), 54.5 ms.
 *
 * The loss terms: -w (z_y - max) per row, plus w log1p(rest), rest the sum of the
 * exponentials but the maximum's (see fgd_log1p_split): the exponentials below 1, plus 1
 * for each class past the first whose exponential is 1 (the maximum and its ties: k less
 * the count of those below 1, one compare a class for both). Without weights the
 * logarithms are of per-lane products of 1 + rest (each in [1, k]), folded every
 * FGD_STEPS_PRODUCT_BITS / log2(k) tiles and carried from block to block (fgd_steps_logs);
 * with weights one logarithm per row.
 *
 * A tile's steps are one long chain (maximum, exponentials, sum, division, residuals), and
 * a tile's instructions fill most of the CPU's reorder window, so one tile's chain hardly
 * overlaps the next one's: the loop takes FGD_STEPS_TILES tiles a step, their
 * instructions interleaved. Against one tile a step with the maximum, the sum, rest and
 * the count as two chains each (even and odd classes), and the logarithms of the products
 * taken at the end of every block (sixteen scalar logarithms a 128-row block in float32):
 * one core of the 2-core AMD EPYC (Zen 4) test machine, a C harness, 1M rows in blocks of
 * 128, k = 10, float32 6.41 -> 5.41 ms (two tiles) -> 4.92 (without the logarithms a
 * block), k = 3 3.49 -> 2.69 -> 2.23; four tiles a step were no faster. The whole call,
 * 2M x 64, k = 10, two builds in one process: float32 33.2 -> 31.8 ms, float64 62.0 -> 59.8.
 *
 * The float64 exponential is fgd_exp_nonpositive of fastgd_vecmath.h on eight lanes, with
 * its polynomial evaluated by Estrin's scheme (four dependent steps instead of eleven: the
 * exponentials of a tile's classes were bound by the latency of their chains; the steps
 * of 1M rows, k = 10, in a C harness 11.3 -> 8.8 ms); float32's is fgd_expf_nonpositive_v16.
 * Their results may differ from the scalar functions' in the last bit. */
#ifndef FASTGD_SOFTMAX_STEPS_H
#define FASTGD_SOFTMAX_STEPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fastgd_prefetch.h"
#include "fastgd_vecmath.h"

/* A lane's product of sums of exponentials stays below 2**FGD_STEPS_PRODUCT_BITS. */
#define FGD_STEPS_PRODUCT_BITS 1000.0
/* Tiles a step of the loop, their instructions interleaved (see above). */
#define FGD_STEPS_TILES 2

/* The unweighted loss's logarithms, carried from block to block of one thread: per lane
 * the product of 1 + rest (float32's sixteen lanes, float64's first eight) and the sum of
 * the rest below 2**-20, and the tiles in the products. fgd_steps_logs_init before the
 * first block; fgd_steps_logs_sum, the loss terms they hold, after the last. */
typedef struct {
    double prod[16], tiny[8];
    int tiles, fold; /* fold: the most tiles in a product */
} fgd_steps_logs;

static inline void fgd_steps_logs_init(fgd_steps_logs *s, ptrdiff_t k)
{
    for (int r = 0; r < 16; r++)
        s->prod[r] = 1.0;
    for (int r = 0; r < 8; r++)
        s->tiny[r] = 0.0;
    s->tiles = 0;
    s->fold = (int)(FGD_STEPS_PRODUCT_BITS / log2((double)(k > 2 ? k : 2)));
    if (s->fold < FGD_STEPS_TILES)
        s->fold = FGD_STEPS_TILES;
}

static inline double fgd_steps_logs_sum(const fgd_steps_logs *s)
{
    double sum = 0.0;
    for (int r = 0; r < 16; r++)
        sum += log(s->prod[r]);
    for (int r = 0; r < 8; r++)
        sum += s->tiny[r];
    return sum;
}

#if defined(__AVX512F__) && defined(__GNUC__)
#include <immintrin.h>
#define FGD_SOFTMAX_STEPS 1

/* log(1 + rest) for the lanes in m, rest = the sum of a row's exponentials but the one of its
 * maximum (the whole sum is 1 + rest): rest below 2**-20 adds rest - rest^2 / 2 to *tiny
 * (within 1e-13 of log1p), other lanes multiply *prod by 1 + rest. Taking log(1 + rest) of
 * the rounded sum instead lost every rest below the sum's rounding (1e-16 in float64, 6e-8
 * in float32): a row predicted that surely scored a loss of 0. */
static inline __attribute__((always_inline)) void fgd_log1p_split(__m512d rest, __mmask8 m, __m512d *prod,
                                                                  __m512d *tiny)
{
    __mmask8 small = _mm512_mask_cmp_pd_mask(m, rest, _mm512_set1_pd(0x1p-20), _CMP_LT_OQ);
    __m512d series = _mm512_fnmadd_pd(_mm512_mul_pd(rest, rest), _mm512_set1_pd(0.5), rest);
    *tiny = _mm512_mask_add_pd(*tiny, small, *tiny, series);
    *prod = _mm512_mask_mul_pd(*prod, m & (__mmask8)~small, *prod, _mm512_add_pd(_mm512_set1_pd(1.0), rest));
}

/* The per-lane products of the logarithms' terms from the state (see fgd_steps_logs), and
 * back. */
static inline __attribute__((always_inline)) void fgd_steps_logs_load(const fgd_steps_logs *s, __m512d prod[2],
                                                                      __m512d *tiny)
{
    prod[0] = _mm512_loadu_pd(s->prod);
    prod[1] = _mm512_loadu_pd(s->prod + 8);
    *tiny = _mm512_loadu_pd(s->tiny);
}

static inline __attribute__((always_inline)) void fgd_steps_logs_store(fgd_steps_logs *s, const __m512d prod[2],
                                                                       __m512d tiny)
{
    _mm512_storeu_pd(s->prod, prod[0]);
    _mm512_storeu_pd(s->prod + 8, prod[1]);
    _mm512_storeu_pd(s->tiny, tiny);
}

/* The sum of the logarithms of the lanes of prod[0 .. halves - 1], which become 1 again;
 * the state's tile count starts again. */
static inline double fgd_steps_logs_fold(fgd_steps_logs *s, __m512d prod[2], int halves)
{
    double sum = 0.0, p[8];
    for (int h = 0; h < halves; h++) {
        _mm512_storeu_pd(p, prod[h]);
        for (int r = 0; r < 8; r++)
            sum += log(p[r]);
        prod[h] = _mm512_set1_pd(1.0);
    }
    s->tiles = 0;
    return sum;
}

/* The dtypes' parts of the steps (fastgd_softmax_steps_impl.h writes the steps once for
 * both): the labels of a tile as one integer vector and the mask of the lanes labelled q,
 * the exponential, a vector's lanes as float64 vectors (float32: two), and the sums of
 * residuals into float64 r_sum.
 *
 * float64 takes eight labels as 64-bit lanes. float32 takes its sixteen as one vector of
 * 32-bit lanes (one compare a class, where two 64-bit halves took two compares and two mask
 * operations), and sums its residuals in float32 over FGD_STEPS_SUM_TILES_F tiles (at most
 * 16 terms a lane of magnitude at most the largest weight) before they go into float64.
 * Against the float32 steps that widened the residual sums at every tile, took two
 * compares a class for rest and the classes at the maximum, and ran the maximum, the sum
 * and rest as one chain each: 2M x 64, k = 10, both builds in one process, softmax against
 * logistic 1.71 -> 1.65 (float64, with the compares and chains alone: 1.75 -> 1.75). */
#define FGD_STEPS_SUM_TILES_D 0 /* float64 sums stay in their vectors to the end */
#define FGD_STEPS_SUM_TILES_F 16

static inline __attribute__((always_inline)) __m512i fgd_steps_labels_d(const ptrdiff_t *y, __mmask8 m)
{
    return _mm512_maskz_loadu_epi64(m, y);
}

static inline __attribute__((always_inline)) __m512i fgd_steps_labels_f(const ptrdiff_t *y, __mmask16 m)
{
    /* the labels are below k: their low 32 bits are the label */
    __m256i lo = _mm512_cvtepi64_epi32(_mm512_maskz_loadu_epi64((__mmask8)m, y));
    __m256i hi = _mm512_cvtepi64_epi32(_mm512_maskz_loadu_epi64((__mmask8)(m >> 8), y + 8));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

static inline __attribute__((always_inline)) __mmask8 fgd_steps_is_label_d(__mmask8 m, __m512i labels, ptrdiff_t q)
{
    return _mm512_mask_cmpeq_epi64_mask(m, labels, _mm512_set1_epi64(q));
}

static inline __attribute__((always_inline)) __mmask16 fgd_steps_is_label_f(__mmask16 m, __m512i labels, ptrdiff_t q)
{
    return _mm512_mask_cmpeq_epi32_mask(m, labels, _mm512_set1_epi32((int)q));
}

#define fgd_steps_exp_d fgd_exp_nonpositive_v8d
#define fgd_steps_exp_f fgd_expf_nonpositive_v16

static inline __attribute__((always_inline)) void fgd_steps_widen_d(__m512d v, __m512d *half)
{
    half[0] = v;
}

static inline __attribute__((always_inline)) void fgd_steps_widen_f(__m512 v, __m512d *half)
{
    fgd_widen16(v, &half[0], &half[1]);
}

/* r_sum[q] += the lanes of v[q] (in float64), for q < k; v[q] = 0 again. */
static inline void fgd_steps_add_sums_d(__m512d *v, ptrdiff_t k, double *r_sum)
{
    for (ptrdiff_t q = 0; q < k; q++) {
        r_sum[q] += _mm512_reduce_add_pd(v[q]);
        v[q] = _mm512_setzero_pd();
    }
}

static inline void fgd_steps_add_sums_f(__m512 *v, ptrdiff_t k, double *r_sum)
{
    for (ptrdiff_t q = 0; q < k; q++) {
        __m512d lo, hi;
        fgd_widen16(v[q], &lo, &hi);
        r_sum[q] += _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
        v[q] = _mm512_setzero_ps();
    }
}

/* fgd_softmax_steps_d and fgd_softmax_steps_f, from one source: FGD_OP(op) is the
 * dtype's _mm512_<op>_pd / _ps intrinsic. */
#define FGD_T double
#define FGD_NAME(name) name##_d
#define FGD_OP(op) _mm512_##op##_pd
#define FGD_STEPS_CMP _mm512_cmp_pd_mask
#define FGD_STEPS_V __m512d
#define FGD_STEPS_MASK __mmask8
#define FGD_STEPS_LANES 8
#define FGD_STEPS_SUM_TILES FGD_STEPS_SUM_TILES_D
#include "fastgd_softmax_steps_impl.h" /* undefines the eight above */
#define FGD_T float
#define FGD_NAME(name) name##_f
#define FGD_OP(op) _mm512_##op##_ps
#define FGD_STEPS_CMP _mm512_cmp_ps_mask
#define FGD_STEPS_V __m512
#define FGD_STEPS_MASK __mmask16
#define FGD_STEPS_LANES 16
#define FGD_STEPS_SUM_TILES FGD_STEPS_SUM_TILES_F
#include "fastgd_softmax_steps_impl.h" /* undefines the eight above */
#else
#define FGD_SOFTMAX_STEPS 0
/* Never called (FGD_SOFTMAX_STEPS is 0): the Cython loops take the steps. */
static inline double fgd_softmax_steps_d(double *ZT, ptrdiff_t ldz, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kq,
                                         const ptrdiff_t *y, const double *sw, double *r_sum, fgd_steps_logs *logs,
                                         const void *pf, ptrdiff_t pf_bytes)
{
    (void)ZT, (void)ldz, (void)m, (void)k, (void)kq, (void)y, (void)sw, (void)r_sum, (void)logs, (void)pf,
        (void)pf_bytes;
    return 0.0;
}
static inline double fgd_softmax_steps_f(float *ZT, ptrdiff_t ldz, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kq,
                                         const ptrdiff_t *y, const float *sw, double *r_sum, fgd_steps_logs *logs,
                                         const void *pf, ptrdiff_t pf_bytes)
{
    (void)ZT, (void)ldz, (void)m, (void)k, (void)kq, (void)y, (void)sw, (void)r_sum, (void)logs, (void)pf,
        (void)pf_bytes;
    return 0.0;
}
#endif
#endif
