/* The softmax steps of one block (kernels/cython_kernels.pyx, _softmax_chunk) with AVX-512:
 * from the block's class scores to its residuals, in place, eight float64 rows (a vector)
 * at a time.
 *
 * ZT holds the block's scores class-major (ZT[q * ldz + i], i < m, q < k; with kq < k the
 * last class scores 0 and its row is written here). Per tile of eight rows: the row maxima
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
 * the count of those below 1, one compare a class for both). The maximum, the sum, rest
 * and the count run as two chains each (even and odd classes). Without
 * weights the logarithms are of per-lane products of 1 + rest (each in [1, k]), folded
 * every FGD_STEPS_PRODUCT_BITS / log2(k) tiles; with weights one logarithm per row.
 *
 * The exponential is fgd_exp_nonpositive of fastgd_vecmath.h on eight lanes, with its
 * polynomial evaluated by Estrin's scheme (four dependent steps instead of eleven: the
 * exponentials of a tile's classes were bound by the latency of their chains; the steps
 * of 1M rows, k = 10, in a C harness 11.3 -> 8.8 ms). Its results may differ from the
 * scalar function's in the last bit. */
#ifndef FASTGD_SOFTMAX_STEPS_H
#define FASTGD_SOFTMAX_STEPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fastgd_prefetch.h"
#include "fastgd_vecmath.h"

#if defined(__AVX512F__) && defined(__GNUC__)
#include <immintrin.h>
#define FGD_SOFTMAX_STEPS 1
/* A lane's product of sums of exponentials stays below 2**FGD_STEPS_PRODUCT_BITS. */
#define FGD_STEPS_PRODUCT_BITS 1000.0

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

/* The steps for the block's m rows (see above): ZT (k rows of stride ldz) from scores to
 * residuals, r_sum[q] += the sum of class q's residuals; returns the block's loss sum.
 * y: the block's labels; sw: its weights or NULL. */
__attribute__((noinline)) static double fgd_softmax_steps_d(double *restrict ZT, ptrdiff_t ldz, ptrdiff_t m,
                                                            ptrdiff_t k, ptrdiff_t kq, const ptrdiff_t *restrict y,
                                                            const double *restrict sw, double *restrict r_sum,
                                                            const void *pf, ptrdiff_t pf_bytes)
{
    const char *pfc = (const char *)pf;
    ptrdiff_t pf_lines = (pf_bytes + 63) / 64, tiles = (m + 7) / 8;
    ptrdiff_t pf_per_tile = tiles > 0 ? (pf_lines + tiles - 1) / tiles : 0;
    __m512d loss = _mm512_setzero_pd(), prod = _mm512_set1_pd(1.0), tiny = _mm512_setzero_pd();
    double loss_logs = 0.0;
    int fold = (int)(FGD_STEPS_PRODUCT_BITS / log2((double)(k > 2 ? k : 2)));
    int tiles_in_prod = 0;
    __m512d rs[64];
    double *rs_mem = NULL;
    /* Sums of residuals in registers' worth of stack for k <= 64, else on the heap. */
    __m512d *rsv = k <= 64 ? rs : (__m512d *)(rs_mem = (double *)aligned_alloc(64, (size_t)k * 64));
    for (ptrdiff_t q = 0; q < k; q++)
        rsv[q] = _mm512_setzero_pd();
    if (fold < 1)
        fold = 1;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 8) {
        int rows = (int)(m - i0 < 8 ? m - i0 : 8);
        __mmask8 rm = (__mmask8)((1u << rows) - 1);
        double *z = ZT + i0;
        __m512d wt = sw ? _mm512_maskz_loadu_pd(rm, sw + i0) : _mm512_maskz_mov_pd(rm, _mm512_set1_pd(1.0));
        __m512i yv = _mm512_maskz_loadu_epi64(rm, y + i0);
        if (kq < k)
            _mm512_mask_storeu_pd(z + kq * ldz, rm, _mm512_setzero_pd());
        __m512d top = _mm512_maskz_loadu_pd(rm, z), top1 = top; /* two chains */
        for (ptrdiff_t q = 1; q < k; q++) {
            if (q & 1)
                top1 = _mm512_max_pd(_mm512_maskz_loadu_pd(rm, z + q * ldz), top1); /* a NaN score is skipped */
            else
                top = _mm512_max_pd(_mm512_maskz_loadu_pd(rm, z + q * ldz), top);
        }
        top = _mm512_max_pd(top1, top);
        __m512d zy = _mm512_setzero_pd(), sum = _mm512_setzero_pd(), rest = _mm512_setzero_pd();
        __m512d sum1 = sum, rest1 = rest, below_n = sum, below_n1 = sum; /* classes below 1 */
        ptrdiff_t pf_tile = pf_per_tile < pf_lines ? pf_per_tile : pf_lines;
        pf_lines -= pf_tile;
        for (ptrdiff_t q = 0; q < k; q++) {
            if (pf_tile > 0) {
                __builtin_prefetch(pfc, 0, FGD_PF_LOC);
                pfc += 64;
                pf_tile--;
            }
            __m512d zq = _mm512_maskz_loadu_pd(rm, z + q * ldz);
            __mmask8 mq = _mm512_cmpeq_epi64_mask(yv, _mm512_set1_epi64(q));
            zy = _mm512_mask_mov_pd(zy, mq, zq);
            __m512d e = fgd_exp_nonpositive_v8d(_mm512_sub_pd(zq, top));
            _mm512_mask_storeu_pd(z + q * ldz, rm, e);
            __mmask8 below = _mm512_cmp_pd_mask(e, _mm512_set1_pd(1.0), _CMP_LT_OQ);
            if (q & 1) {
                sum1 = _mm512_add_pd(sum1, e);
                rest1 = _mm512_mask_add_pd(rest1, below, rest1, e);
                below_n1 = _mm512_mask_add_pd(below_n1, below, below_n1, _mm512_set1_pd(1.0));
            } else {
                sum = _mm512_add_pd(sum, e);
                rest = _mm512_mask_add_pd(rest, below, rest, e);
                below_n = _mm512_mask_add_pd(below_n, below, below_n, _mm512_set1_pd(1.0));
            }
        }
        sum = _mm512_add_pd(sum, sum1);
        /* the classes whose exponential is 1 (the maximum, its ties, k less those below 1):
         * 1 each past the first */
        below_n = _mm512_add_pd(below_n, below_n1);
        rest = _mm512_add_pd(_mm512_add_pd(rest, rest1), _mm512_sub_pd(_mm512_set1_pd((double)(k - 1)), below_n));
        loss = _mm512_mask3_fnmadd_pd(wt, _mm512_sub_pd(zy, top), loss, rm);
        if (sw) {
            double s[8], w[8];
            _mm512_storeu_pd(s, rest);
            _mm512_storeu_pd(w, wt);
            for (int r = 0; r < rows; r++)
                loss_logs += w[r] * log1p(s[r]);
        } else {
            fgd_log1p_split(rest, rm, &prod, &tiny);
            if (++tiles_in_prod == fold) {
                double p[8];
                _mm512_storeu_pd(p, prod);
                for (int r = 0; r < 8; r++)
                    loss_logs += log(p[r]);
                prod = _mm512_set1_pd(1.0);
                tiles_in_prod = 0;
            }
        }
        __m512d scale = _mm512_div_pd(wt, _mm512_mask_mov_pd(_mm512_set1_pd(1.0), rm, sum));
        for (; pf_tile > 0; pf_tile--, pfc += 64)
            __builtin_prefetch(pfc, 0, FGD_PF_LOC);
        for (ptrdiff_t q = 0; q < k; q++) {
            __mmask8 mq = _mm512_mask_cmpeq_epi64_mask(rm, yv, _mm512_set1_epi64(q));
            __m512d p = _mm512_mul_pd(_mm512_maskz_loadu_pd(rm, z + q * ldz), scale);
            p = _mm512_mask_sub_pd(p, mq, p, wt);
            _mm512_mask_storeu_pd(z + q * ldz, rm, p);
            rsv[q] = _mm512_mask_add_pd(rsv[q], rm, rsv[q], p);
        }
    }
    if (tiles_in_prod > 0) {
        double p[8];
        _mm512_storeu_pd(p, prod);
        for (int r = 0; r < 8; r++)
            loss_logs += log(p[r]);
    }
    for (ptrdiff_t q = 0; q < k; q++)
        r_sum[q] += _mm512_reduce_add_pd(rsv[q]);
    free(rs_mem);
    return _mm512_reduce_add_pd(loss) + (loss_logs + _mm512_reduce_add_pd(tiny));
}

/* Tiles of sixteen float32 rows whose residuals a float32 lane sums before they go into
 * float64 (at most 16 terms of magnitude at most the largest weight). */
#define FGD_STEPS_F32_SUM_TILES 16

/* r_sum[q] += the sixteen lanes of v[q] (in float64), for q < k; v[q] = 0 again. */
static inline void fgd_add_sums16(__m512 *v, ptrdiff_t k, double *r_sum)
{
    for (ptrdiff_t q = 0; q < k; q++) {
        __m512d lo, hi;
        fgd_widen16(v[q], &lo, &hi);
        r_sum[q] += _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
        v[q] = _mm512_setzero_ps();
    }
}

/* The float32 steps: as fgd_softmax_steps_d, sixteen rows a vector, in float32; the loss
 * terms and the products of sums are added up in float64, the sums of residuals in float32
 * over FGD_STEPS_F32_SUM_TILES tiles, then in float64. The sixteen labels are one vector
 * of 32-bit lanes (one compare a class, where two 64-bit halves took two compares and two
 * mask operations). Against the steps that widened the residual sums at every tile, took
 * two compares a class for rest and the classes at the maximum, and ran the maximum, the
 * sum and rest as one chain each: 2M x 64, k = 10, both builds in one process, softmax
 * against logistic 1.71 -> 1.65 (float64, with the compares and chains alone: 1.75 ->
 * 1.75). */
__attribute__((noinline)) static double fgd_softmax_steps_f(float *restrict ZT, ptrdiff_t ldz, ptrdiff_t m,
                                                            ptrdiff_t k, ptrdiff_t kq, const ptrdiff_t *restrict y,
                                                            const float *restrict sw, double *restrict r_sum,
                                                            const void *pf, ptrdiff_t pf_bytes)
{
    const char *pfc = (const char *)pf;
    ptrdiff_t pf_lines = (pf_bytes + 63) / 64, tiles = (m + 15) / 16;
    ptrdiff_t pf_per_tile = tiles > 0 ? (pf_lines + tiles - 1) / tiles : 0;
    __m512d loss = _mm512_setzero_pd(), prod_lo = _mm512_set1_pd(1.0), prod_hi = _mm512_set1_pd(1.0);
    __m512d tiny = _mm512_setzero_pd();
    double loss_logs = 0.0;
    int fold = (int)(FGD_STEPS_PRODUCT_BITS / log2((double)(k > 2 ? k : 2)));
    int tiles_in_prod = 0;
    __m512 rs[64];
    float *rs_mem = NULL;
    /* A float32 vector of sums of residuals a class, added into float64 r_sum every
     * FGD_STEPS_F32_SUM_TILES tiles and at the end: on the stack for k <= 64. */
    __m512 *rsv = k <= 64 ? rs : (__m512 *)(rs_mem = (float *)aligned_alloc(64, (size_t)k * 64));
    int tiles_in_rsv = 0;
    for (ptrdiff_t q = 0; q < k; q++)
        rsv[q] = _mm512_setzero_ps();
    if (fold < 1)
        fold = 1;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 16) {
        int rows = (int)(m - i0 < 16 ? m - i0 : 16);
        __mmask16 rm = (__mmask16)((1u << rows) - 1);
        float *z = ZT + i0;
        __m512 wt = sw ? _mm512_maskz_loadu_ps(rm, sw + i0) : _mm512_maskz_mov_ps(rm, _mm512_set1_ps(1.0f));
        /* the sixteen labels as 32-bit lanes (they are below k): one compare a class */
        __m512i yv = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_maskz_loadu_epi64((__mmask8)rm, y + i0))),
            _mm512_cvtepi64_epi32(_mm512_maskz_loadu_epi64((__mmask8)(rm >> 8), y + i0 + 8)), 1);
        if (kq < k)
            _mm512_mask_storeu_ps(z + kq * ldz, rm, _mm512_setzero_ps());
        __m512 top = _mm512_maskz_loadu_ps(rm, z), top1 = top; /* two chains */
        for (ptrdiff_t q = 1; q < k; q++) {
            __m512 zq = _mm512_maskz_loadu_ps(rm, z + q * ldz);
            if (q & 1)
                top1 = _mm512_max_ps(zq, top1); /* a NaN score is skipped */
            else
                top = _mm512_max_ps(zq, top);
        }
        top = _mm512_max_ps(top1, top);
        __m512 zy = _mm512_setzero_ps(), sum = _mm512_setzero_ps(), rest = _mm512_setzero_ps();
        __m512 sum1 = sum, rest1 = rest, below_n = sum, below_n1 = sum; /* classes below 1 */
        ptrdiff_t pf_tile = pf_per_tile < pf_lines ? pf_per_tile : pf_lines;
        pf_lines -= pf_tile;
        for (ptrdiff_t q = 0; q < k; q++) {
            if (pf_tile > 0) {
                __builtin_prefetch(pfc, 0, FGD_PF_LOC);
                pfc += 64;
                pf_tile--;
            }
            __m512 zq = _mm512_maskz_loadu_ps(rm, z + q * ldz);
            __mmask16 mq = _mm512_cmpeq_epi32_mask(yv, _mm512_set1_epi32((int)q));
            zy = _mm512_mask_mov_ps(zy, mq, zq);
            __m512 e = fgd_expf_nonpositive_v16(_mm512_sub_ps(zq, top));
            _mm512_mask_storeu_ps(z + q * ldz, rm, e);
            __mmask16 below = _mm512_cmp_ps_mask(e, _mm512_set1_ps(1.0f), _CMP_LT_OQ);
            if (q & 1) {
                sum1 = _mm512_add_ps(sum1, e);
                rest1 = _mm512_mask_add_ps(rest1, below, rest1, e);
                below_n1 = _mm512_mask_add_ps(below_n1, below, below_n1, _mm512_set1_ps(1.0f));
            } else {
                sum = _mm512_add_ps(sum, e);
                rest = _mm512_mask_add_ps(rest, below, rest, e);
                below_n = _mm512_mask_add_ps(below_n, below, below_n, _mm512_set1_ps(1.0f));
            }
        }
        sum = _mm512_add_ps(sum, sum1);
        /* the classes whose exponential is 1 (the maximum, its ties, k less those below 1):
         * 1 each past the first (counts are exact in float32 up to 2**24 classes) */
        below_n = _mm512_add_ps(below_n, below_n1);
        rest = _mm512_add_ps(_mm512_add_ps(rest, rest1), _mm512_sub_ps(_mm512_set1_ps((float)(k - 1)), below_n));
        for (; pf_tile > 0; pf_tile--, pfc += 64)
            __builtin_prefetch(pfc, 0, FGD_PF_LOC);
        __m512d lo, hi;
        fgd_widen16(_mm512_maskz_mul_ps(rm, wt, _mm512_sub_ps(zy, top)), &lo, &hi);
        loss = _mm512_sub_pd(loss, _mm512_add_pd(lo, hi));
        fgd_widen16(_mm512_maskz_mov_ps(rm, rest), &lo, &hi);
        if (sw) {
            double sl[16], w[16];
            __m512d wlo, whi;
            fgd_widen16(wt, &wlo, &whi);
            _mm512_storeu_pd(sl, lo);
            _mm512_storeu_pd(sl + 8, hi);
            _mm512_storeu_pd(w, wlo);
            _mm512_storeu_pd(w + 8, whi);
            for (int r = 0; r < rows; r++)
                loss_logs += w[r] * log1p(sl[r]);
        } else {
            fgd_log1p_split(lo, (__mmask8)rm, &prod_lo, &tiny);
            fgd_log1p_split(hi, (__mmask8)(rm >> 8), &prod_hi, &tiny);
            if (++tiles_in_prod == fold) {
                double pl[16];
                _mm512_storeu_pd(pl, prod_lo);
                _mm512_storeu_pd(pl + 8, prod_hi);
                for (int r = 0; r < 16; r++)
                    loss_logs += log(pl[r]);
                prod_lo = prod_hi = _mm512_set1_pd(1.0);
                tiles_in_prod = 0;
            }
        }
        __m512 scale = _mm512_maskz_div_ps(rm, wt, _mm512_mask_mov_ps(_mm512_set1_ps(1.0f), rm, sum));
        for (ptrdiff_t q = 0; q < k; q++) {
            __mmask16 mq = _mm512_mask_cmpeq_epi32_mask(rm, yv, _mm512_set1_epi32((int)q));
            __m512 p = _mm512_maskz_mul_ps(rm, _mm512_maskz_loadu_ps(rm, z + q * ldz), scale);
            p = _mm512_mask_sub_ps(p, mq, p, wt);
            _mm512_mask_storeu_ps(z + q * ldz, rm, p);
            rsv[q] = _mm512_add_ps(rsv[q], p);
        }
        if (++tiles_in_rsv == FGD_STEPS_F32_SUM_TILES) {
            fgd_add_sums16(rsv, k, r_sum);
            tiles_in_rsv = 0;
        }
    }
    if (tiles_in_prod > 0) {
        double pl[16];
        _mm512_storeu_pd(pl, prod_lo);
        _mm512_storeu_pd(pl + 8, prod_hi);
        for (int r = 0; r < 16; r++)
            loss_logs += log(pl[r]);
    }
    fgd_add_sums16(rsv, k, r_sum);
    free(rs_mem);
    return _mm512_reduce_add_pd(loss) + (loss_logs + _mm512_reduce_add_pd(tiny));
}
#else
#define FGD_SOFTMAX_STEPS 0
/* Never called (FGD_SOFTMAX_STEPS is 0): the Cython loops take the steps. */
static inline double fgd_softmax_steps_d(double *ZT, ptrdiff_t ldz, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kq,
                                         const ptrdiff_t *y, const double *sw, double *r_sum, const void *pf,
                                         ptrdiff_t pf_bytes)
{
    (void)ZT, (void)ldz, (void)m, (void)k, (void)kq, (void)y, (void)sw, (void)r_sum, (void)pf, (void)pf_bytes;
    return 0.0;
}
static inline double fgd_softmax_steps_f(float *ZT, ptrdiff_t ldz, ptrdiff_t m, ptrdiff_t k, ptrdiff_t kq,
                                         const ptrdiff_t *y, const float *sw, double *r_sum, const void *pf,
                                         ptrdiff_t pf_bytes)
{
    (void)ZT, (void)ldz, (void)m, (void)k, (void)kq, (void)y, (void)sw, (void)r_sum, (void)pf, (void)pf_bytes;
    return 0.0;
}
#endif
#endif
