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
                                                                    fgd_steps_logs *restrict logs, const void *pf,
                                                                    ptrdiff_t pf_bytes)
{
    enum { HALVES = FGD_STEPS_LANES / 8 }; /* the float64 vectors a tile's lanes widen to */
    enum { U = FGD_STEPS_TILES };
    const FGD_STEPS_V one = FGD_OP(set1)(1.0);
    const char *pfc = (const char *)pf;
    ptrdiff_t pf_lines = (pf_bytes + 63) / 64, tiles = (m + FGD_STEPS_LANES - 1) / FGD_STEPS_LANES;
    ptrdiff_t pf_per_tile = tiles > 0 ? (pf_lines + tiles - 1) / tiles : 0;
    __m512d loss = _mm512_setzero_pd(), tiny, prod[2];
    fgd_steps_logs_load(logs, prod, &tiny);
    double loss_logs = 0.0;
    int fold = logs->fold, tiles_in_sums = 0;
    /* A vector of sums of residuals a class: on the stack for k <= 64, else on the heap. */
    FGD_STEPS_V rs[64];
    void *rs_mem = k <= 64 ? NULL : aligned_alloc(64, (size_t)k * 64);
    FGD_STEPS_V *rsv = k <= 64 ? rs : (FGD_STEPS_V *)rs_mem;
    for (ptrdiff_t q = 0; q < k; q++)
        rsv[q] = FGD_OP(setzero)();
    for (ptrdiff_t i0 = 0; i0 < m; i0 += U * FGD_STEPS_LANES) {
        FGD_STEPS_MASK rm[U];
        FGD_T *z[U];
        FGD_STEPS_V wt[U], top[U], zy[U], sum[U], rest[U], below_n[U];
        __m512i labels[U];
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            ptrdiff_t r0 = i0 + u * FGD_STEPS_LANES;
            int rows = (int)(m - r0 < FGD_STEPS_LANES ? (m - r0 > 0 ? m - r0 : 0) : FGD_STEPS_LANES);
            rm[u] = (FGD_STEPS_MASK)((1u << rows) - 1);
            z[u] = ZT + r0;
            wt[u] = sw ? FGD_OP(maskz_loadu)(rm[u], sw + r0) : FGD_OP(maskz_mov)(rm[u], one); /* 0 past m */
            labels[u] = FGD_NAME(fgd_steps_labels)(y + r0, rm[u]);
            if (kq < k)
                FGD_OP(mask_storeu)(z[u] + kq * ldz, rm[u], FGD_OP(setzero)());
            top[u] = FGD_OP(maskz_loadu)(rm[u], z[u]);
            zy[u] = sum[u] = rest[u] = below_n[u] = FGD_OP(setzero)();
        }
        for (ptrdiff_t q = 1; q < k; q++)
#pragma GCC unroll 4
            for (int u = 0; u < U; u++)
                top[u] = FGD_OP(max)(FGD_OP(maskz_loadu)(rm[u], z[u] + q * ldz), top[u]); /* a NaN score is skipped */
        ptrdiff_t pf_tile = pf_per_tile * U < pf_lines ? pf_per_tile * U : pf_lines;
        pf_lines -= pf_tile;
        for (ptrdiff_t q = 0; q < k; q++) {
            if (pf_tile > 0) {
                __builtin_prefetch(pfc, 0, FGD_PF_LOC);
                pfc += 64;
                pf_tile--;
            }
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) {
                FGD_STEPS_V zq = FGD_OP(maskz_loadu)(rm[u], z[u] + q * ldz);
                zy[u] = FGD_OP(mask_mov)(zy[u], FGD_NAME(fgd_steps_is_label)(rm[u], labels[u], q), zq);
                FGD_STEPS_V e = FGD_NAME(fgd_steps_exp)(FGD_OP(sub)(zq, top[u]));
                FGD_OP(mask_storeu)(z[u] + q * ldz, rm[u], e);
                FGD_STEPS_MASK below = FGD_STEPS_CMP(e, one, _CMP_LT_OQ);
                sum[u] = FGD_OP(add)(sum[u], e);
                rest[u] = FGD_OP(mask_add)(rest[u], below, rest[u], e);
                below_n[u] = FGD_OP(mask_add)(below_n[u], below, below_n[u], one);
            }
        }
        for (; pf_tile > 0; pf_tile--, pfc += 64)
            __builtin_prefetch(pfc, 0, FGD_PF_LOC);
        FGD_STEPS_V scale[U];
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) {
            /* the classes whose exponential is 1 (the maximum, its ties: k less those below 1;
             * exact in float32 up to 2**24 classes), 1 each past the first */
            FGD_STEPS_V at_top = FGD_OP(sub)(FGD_OP(set1)((FGD_T)(k - 1)), below_n[u]);
            rest[u] = FGD_OP(add)(rest[u], at_top);
            __m512d half[HALVES];
            FGD_NAME(fgd_steps_widen)(FGD_OP(maskz_mul)(rm[u], wt[u], FGD_OP(sub)(zy[u], top[u])), half);
            for (int h = 0; h < HALVES; h++)
                loss = _mm512_sub_pd(loss, half[h]);
            FGD_NAME(fgd_steps_widen)(FGD_OP(maskz_mov)(rm[u], rest[u]), half);
            if (sw) {
                double s[FGD_STEPS_LANES], w[FGD_STEPS_LANES];
                __m512d wh[HALVES];
                FGD_NAME(fgd_steps_widen)(wt[u], wh);
                for (int h = 0; h < HALVES; h++) {
                    _mm512_storeu_pd(s + 8 * h, half[h]);
                    _mm512_storeu_pd(w + 8 * h, wh[h]);
                }
                for (int r = 0; r < FGD_STEPS_LANES; r++)
                    if (rm[u] >> r & 1)
                        loss_logs += w[r] * log1p(s[r]);
            } else {
                for (int h = 0; h < HALVES; h++)
                    fgd_log1p_split(half[h], (__mmask8)(rm[u] >> (8 * h)), &prod[h], &tiny);
            }
            scale[u] = FGD_OP(div)(wt[u], FGD_OP(mask_mov)(one, rm[u], sum[u])); /* 0 past m */
        }
        if (!sw && (logs->tiles += U) + U > fold)
            loss_logs += fgd_steps_logs_fold(logs, prod, HALVES);
        for (ptrdiff_t q = 0; q < k; q++) {
#pragma GCC unroll 4
            for (int u = 0; u < U; u++) {
                FGD_STEPS_V p = FGD_OP(mul)(FGD_OP(maskz_loadu)(rm[u], z[u] + q * ldz), scale[u]);
                p = FGD_OP(mask_sub)(p, FGD_NAME(fgd_steps_is_label)(rm[u], labels[u], q), p, wt[u]);
                FGD_OP(mask_storeu)(z[u] + q * ldz, rm[u], p);
                rsv[q] = FGD_OP(add)(rsv[q], p);
            }
        }
        if (FGD_STEPS_SUM_TILES > 0 && (tiles_in_sums += U) + U > FGD_STEPS_SUM_TILES) {
            FGD_NAME(fgd_steps_add_sums)(rsv, k, r_sum);
            tiles_in_sums = 0;
        }
    }
    fgd_steps_logs_store(logs, prod, tiny);
    FGD_NAME(fgd_steps_add_sums)(rsv, k, r_sum);
    free(rs_mem);
    return _mm512_reduce_add_pd(loss) + loss_logs;
}

#undef FGD_T
#undef FGD_NAME
#undef FGD_OP
#undef FGD_STEPS_CMP
#undef FGD_STEPS_V
#undef FGD_STEPS_MASK
#undef FGD_STEPS_LANES
#undef FGD_STEPS_SUM_TILES
