/* One dtype's softmax steps (see fastgd_softmax_steps.h, which includes this once per
 * dtype). Needs FGD_T, FGD_NAME, FGD_OP(op) (the dtype's _mm512_<op>_pd / _ps),
 * FGD_STEPS_CMP, FGD_STEPS_V, FGD_STEPS_MASK, FGD_STEPS_LANES (rows a tile: a vector's
 * lanes), FGD_STEPS_SUM_TILES (tiles between foldings of the residual sums into r_sum; 0:
 * only at the end) and the hooks FGD_NAME(fgd_steps_labels / _is_label / _exp / _widen /
 * _add_sums). Undefines the eight FGD_ macros at its end, for the next dtype's. */

/* The steps for the block's m rows (see fastgd_softmax_steps.h): ZT (k rows of stride ldz)
 * from scores to residuals, r_sum[q] += the sum of class q's residuals; returns the block's
 * loss sum. y: the block's labels; sw: its weights or NULL. Asks for the pf_bytes from pf
 * on the way, spread over the tiles. */
__attribute__((noinline)) static double FGD_NAME(fgd_softmax_steps)(FGD_T *restrict ZT, ptrdiff_t ldz, ptrdiff_t m,
                                                                    ptrdiff_t k, ptrdiff_t kq,
                                                                    const ptrdiff_t *restrict y,
                                                                    const FGD_T *restrict sw, double *restrict r_sum,
                                                                    const void *pf, ptrdiff_t pf_bytes)
{
    enum { HALVES = FGD_STEPS_LANES / 8 }; /* the float64 vectors a tile's lanes widen to */
    const FGD_STEPS_V one = FGD_OP(set1)(1.0);
    const char *pfc = (const char *)pf;
    ptrdiff_t pf_lines = (pf_bytes + 63) / 64, tiles = (m + FGD_STEPS_LANES - 1) / FGD_STEPS_LANES;
    ptrdiff_t pf_per_tile = tiles > 0 ? (pf_lines + tiles - 1) / tiles : 0;
    __m512d loss = _mm512_setzero_pd(), tiny = _mm512_setzero_pd(), prod[HALVES];
    for (int h = 0; h < HALVES; h++)
        prod[h] = _mm512_set1_pd(1.0);
    double loss_logs = 0.0;
    int fold = (int)(FGD_STEPS_PRODUCT_BITS / log2((double)(k > 2 ? k : 2)));
    int tiles_in_prod = 0, tiles_in_sums = 0;
    if (fold < 1)
        fold = 1;
    /* A vector of sums of residuals a class: on the stack for k <= 64, else on the heap. */
    FGD_STEPS_V rs[64];
    void *rs_mem = k <= 64 ? NULL : aligned_alloc(64, (size_t)k * 64);
    FGD_STEPS_V *rsv = k <= 64 ? rs : (FGD_STEPS_V *)rs_mem;
    for (ptrdiff_t q = 0; q < k; q++)
        rsv[q] = FGD_OP(setzero)();
    for (ptrdiff_t i0 = 0; i0 < m; i0 += FGD_STEPS_LANES) {
        int rows = (int)(m - i0 < FGD_STEPS_LANES ? m - i0 : FGD_STEPS_LANES);
        FGD_STEPS_MASK rm = (FGD_STEPS_MASK)((1u << rows) - 1);
        FGD_T *z = ZT + i0;
        FGD_STEPS_V wt = sw ? FGD_OP(maskz_loadu)(rm, sw + i0) : FGD_OP(maskz_mov)(rm, one); /* 0 past m */
        __m512i labels = FGD_NAME(fgd_steps_labels)(y + i0, rm);
        if (kq < k)
            FGD_OP(mask_storeu)(z + kq * ldz, rm, FGD_OP(setzero)());
        FGD_STEPS_V top = FGD_OP(maskz_loadu)(rm, z), top1 = top; /* two chains */
        for (ptrdiff_t q = 1; q < k; q++) {
            FGD_STEPS_V zq = FGD_OP(maskz_loadu)(rm, z + q * ldz);
            if (q & 1)
                top1 = FGD_OP(max)(zq, top1); /* a NaN score is skipped */
            else
                top = FGD_OP(max)(zq, top);
        }
        top = FGD_OP(max)(top1, top);
        FGD_STEPS_V zy = FGD_OP(setzero)(), sum = zy, rest = zy;
        FGD_STEPS_V sum1 = zy, rest1 = zy, below_n = zy, below_n1 = zy; /* below: classes below 1 */
        ptrdiff_t pf_tile = pf_per_tile < pf_lines ? pf_per_tile : pf_lines;
        pf_lines -= pf_tile;
        for (ptrdiff_t q = 0; q < k; q++) {
            if (pf_tile > 0) {
                __builtin_prefetch(pfc, 0, FGD_PF_LOC);
                pfc += 64;
                pf_tile--;
            }
            FGD_STEPS_V zq = FGD_OP(maskz_loadu)(rm, z + q * ldz);
            zy = FGD_OP(mask_mov)(zy, FGD_NAME(fgd_steps_is_label)(rm, labels, q), zq);
            FGD_STEPS_V e = FGD_NAME(fgd_steps_exp)(FGD_OP(sub)(zq, top));
            FGD_OP(mask_storeu)(z + q * ldz, rm, e);
            FGD_STEPS_MASK below = FGD_STEPS_CMP(e, one, _CMP_LT_OQ);
            if (q & 1) {
                sum1 = FGD_OP(add)(sum1, e);
                rest1 = FGD_OP(mask_add)(rest1, below, rest1, e);
                below_n1 = FGD_OP(mask_add)(below_n1, below, below_n1, one);
            } else {
                sum = FGD_OP(add)(sum, e);
                rest = FGD_OP(mask_add)(rest, below, rest, e);
                below_n = FGD_OP(mask_add)(below_n, below, below_n, one);
            }
        }
        for (; pf_tile > 0; pf_tile--, pfc += 64)
            __builtin_prefetch(pfc, 0, FGD_PF_LOC);
        sum = FGD_OP(add)(sum, sum1);
        /* the classes whose exponential is 1 (the maximum, its ties: k less those below 1;
         * exact in float32 up to 2**24 classes), 1 each past the first */
        below_n = FGD_OP(add)(below_n, below_n1);
        FGD_STEPS_V at_top = FGD_OP(sub)(FGD_OP(set1)((FGD_T)(k - 1)), below_n);
        rest = FGD_OP(add)(FGD_OP(add)(rest, rest1), at_top);
        __m512d half[HALVES];
        FGD_NAME(fgd_steps_widen)(FGD_OP(maskz_mul)(rm, wt, FGD_OP(sub)(zy, top)), half);
        for (int h = 0; h < HALVES; h++)
            loss = _mm512_sub_pd(loss, half[h]);
        FGD_NAME(fgd_steps_widen)(FGD_OP(maskz_mov)(rm, rest), half);
        if (sw) {
            double s[FGD_STEPS_LANES], w[FGD_STEPS_LANES];
            __m512d wh[HALVES];
            FGD_NAME(fgd_steps_widen)(wt, wh);
            for (int h = 0; h < HALVES; h++) {
                _mm512_storeu_pd(s + 8 * h, half[h]);
                _mm512_storeu_pd(w + 8 * h, wh[h]);
            }
            for (int r = 0; r < rows; r++)
                loss_logs += w[r] * log1p(s[r]);
        } else {
            for (int h = 0; h < HALVES; h++)
                fgd_log1p_split(half[h], (__mmask8)(rm >> (8 * h)), &prod[h], &tiny);
            if (++tiles_in_prod == fold) {
                loss_logs += fgd_sum_logs(prod, HALVES);
                tiles_in_prod = 0;
            }
        }
        FGD_STEPS_V scale = FGD_OP(div)(wt, FGD_OP(mask_mov)(one, rm, sum)); /* 0 past m */
        for (ptrdiff_t q = 0; q < k; q++) {
            FGD_STEPS_V p = FGD_OP(mul)(FGD_OP(maskz_loadu)(rm, z + q * ldz), scale);
            p = FGD_OP(mask_sub)(p, FGD_NAME(fgd_steps_is_label)(rm, labels, q), p, wt);
            FGD_OP(mask_storeu)(z + q * ldz, rm, p);
            rsv[q] = FGD_OP(add)(rsv[q], p);
        }
        if (FGD_STEPS_SUM_TILES > 0 && ++tiles_in_sums == FGD_STEPS_SUM_TILES) {
            FGD_NAME(fgd_steps_add_sums)(rsv, k, r_sum);
            tiles_in_sums = 0;
        }
    }
    if (tiles_in_prod > 0)
        loss_logs += fgd_sum_logs(prod, HALVES);
    FGD_NAME(fgd_steps_add_sums)(rsv, k, r_sum);
    free(rs_mem);
    return _mm512_reduce_add_pd(loss) + (loss_logs + _mm512_reduce_add_pd(tiny));
}

#undef FGD_T
#undef FGD_NAME
#undef FGD_OP
#undef FGD_STEPS_CMP
#undef FGD_STEPS_V
#undef FGD_STEPS_MASK
#undef FGD_STEPS_LANES
#undef FGD_STEPS_SUM_TILES
