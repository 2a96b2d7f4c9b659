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
 * exponentials but the maximum's (see fgd_log1p_split). Without
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
        __m512d top = _mm512_maskz_loadu_pd(rm, z);
        for (ptrdiff_t q = 1; q < k; q++)
            top = _mm512_max_pd(_mm512_maskz_loadu_pd(rm, z + q * ldz), top); /* a NaN score is skipped */
        __m512d zy = _mm512_setzero_pd(), sum = _mm512_setzero_pd(), rest = _mm512_setzero_pd();
        __m512d ties = _mm512_setzero_pd(); /* classes at the maximum */
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
            sum = _mm512_add_pd(sum, e);
            rest = _mm512_mask_add_pd(rest, _mm512_cmp_pd_mask(zq, top, _CMP_LT_OQ), rest, e);
            ties = _mm512_mask_add_pd(ties, _mm512_cmp_pd_mask(zq, top, _CMP_EQ_OQ), ties, _mm512_set1_pd(1.0));
        }
        rest = _mm512_add_pd(rest, _mm512_sub_pd(ties, _mm512_set1_pd(1.0))); /* ties past the first: 1 each */
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

/* The float32 steps: as fgd_softmax_steps_d, sixteen rows a vector, in float32; the loss
 * terms, the products of sums and the sums of residuals are added up in float64. */
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
    __m512d rs[64];
    double *rs_mem = NULL;
    /* Two float64 vectors of sums of residuals a class: on the stack for k <= 32. */
    __m512d *rsv = k <= 32 ? rs : (__m512d *)(rs_mem = (double *)aligned_alloc(64, (size_t)k * 128));
    for (ptrdiff_t q = 0; q < 2 * k; q++)
        rsv[q] = _mm512_setzero_pd();
    if (fold < 1)
        fold = 1;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 16) {
        int rows = (int)(m - i0 < 16 ? m - i0 : 16);
        __mmask16 rm = (__mmask16)((1u << rows) - 1);
        float *z = ZT + i0;
        __m512 wt = sw ? _mm512_maskz_loadu_ps(rm, sw + i0) : _mm512_maskz_mov_ps(rm, _mm512_set1_ps(1.0f));
        __m512i ylo = _mm512_maskz_loadu_epi64((__mmask8)rm, y + i0);
        __m512i yhi = _mm512_maskz_loadu_epi64((__mmask8)(rm >> 8), y + i0 + 8);
        if (kq < k)
            _mm512_mask_storeu_ps(z + kq * ldz, rm, _mm512_setzero_ps());
        __m512 top = _mm512_maskz_loadu_ps(rm, z);
        for (ptrdiff_t q = 1; q < k; q++)
            top = _mm512_max_ps(_mm512_maskz_loadu_ps(rm, z + q * ldz), top); /* a NaN score is skipped */
        __m512 zy = _mm512_setzero_ps(), sum = _mm512_setzero_ps(), rest = _mm512_setzero_ps();
        __m512 ties = _mm512_setzero_ps(); /* classes at the maximum */
        ptrdiff_t pf_tile = pf_per_tile < pf_lines ? pf_per_tile : pf_lines;
        pf_lines -= pf_tile;
        for (ptrdiff_t q = 0; q < k; q++) {
            if (pf_tile > 0) {
                __builtin_prefetch(pfc, 0, FGD_PF_LOC);
                pfc += 64;
                pf_tile--;
            }
            __m512 zq = _mm512_maskz_loadu_ps(rm, z + q * ldz);
            __m512i qv = _mm512_set1_epi64(q);
            __mmask16 mq = (__mmask16)(_mm512_cmpeq_epi64_mask(ylo, qv) | (_mm512_cmpeq_epi64_mask(yhi, qv) << 8));
            zy = _mm512_mask_mov_ps(zy, mq, zq);
            __m512 e = fgd_expf_nonpositive_v16(_mm512_sub_ps(zq, top));
            _mm512_mask_storeu_ps(z + q * ldz, rm, e);
            sum = _mm512_add_ps(sum, e);
            rest = _mm512_mask_add_ps(rest, _mm512_cmp_ps_mask(zq, top, _CMP_LT_OQ), rest, e);
            ties = _mm512_mask_add_ps(ties, _mm512_cmp_ps_mask(zq, top, _CMP_EQ_OQ), ties, _mm512_set1_ps(1.0f));
        }
        rest = _mm512_add_ps(rest, _mm512_sub_ps(ties, _mm512_set1_ps(1.0f))); /* ties past the first */
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
            __m512i qv = _mm512_set1_epi64(q);
            __mmask16 mq = (__mmask16)(_mm512_cmpeq_epi64_mask(ylo, qv) | (_mm512_cmpeq_epi64_mask(yhi, qv) << 8));
            __m512 p = _mm512_maskz_mul_ps(rm, _mm512_maskz_loadu_ps(rm, z + q * ldz), scale);
            p = _mm512_mask_sub_ps(p, mq & rm, p, wt);
            _mm512_mask_storeu_ps(z + q * ldz, rm, p);
            fgd_widen16(p, &lo, &hi);
            rsv[2 * q] = _mm512_add_pd(rsv[2 * q], lo);
            rsv[2 * q + 1] = _mm512_add_pd(rsv[2 * q + 1], hi);
        }
    }
    if (tiles_in_prod > 0) {
        double pl[16];
        _mm512_storeu_pd(pl, prod_lo);
        _mm512_storeu_pd(pl + 8, prod_hi);
        for (int r = 0; r < 16; r++)
            loss_logs += log(pl[r]);
    }
    for (ptrdiff_t q = 0; q < k; q++)
        r_sum[q] += _mm512_reduce_add_pd(_mm512_add_pd(rsv[2 * q], rsv[2 * q + 1]));
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
