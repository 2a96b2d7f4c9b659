/* One dtype's softmax scores by groups (see fastgd_score_groups.h). Needs FGD_T, FGD_NAME,
 * FGD_GROUP_W and FGD_GROUP_LDW. */

#if FGD_SCORE_GROUPS
/* ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m, q < k, by tiles of eight rows: the
 * classes in groups of eight (one vector; the last group masked), except that where
 * k = 8 g + 1 the last class is taken by dot products in the first group's pass. W: the
 * groups' coefficients (float64: Wt transposed, (d, k); float32: by column pairs, from
 * fgd_pair_coefficients_f). Asks for the pf_bytes from pf (rows of the next block) on the
 * way, spread over the row steps. */
__attribute__((noinline, unused)) static void FGD_NAME(fgd_class_scores_groups)(
    const FGD_T *restrict X, const FGD_T *restrict Wt, const FGD_T *restrict W, const double *restrict b,
    ptrdiff_t m, ptrdiff_t d, ptrdiff_t k, ptrdiff_t ldz, FGD_T *restrict ZT, const void *pf, ptrdiff_t pf_bytes)
{
    int dot = k % 8 == 1;
    ptrdiff_t kg = dot ? k - 1 : k;               /* classes in groups */
    ptrdiff_t groups = kg > 0 ? (kg + 7) / 8 : 1; /* k = 1: one pass, of dot products alone */
    ptrdiff_t ldw = FGD_GROUP_LDW(k);
    ptrdiff_t tiles = (m + 7) / 8;
    ptrdiff_t lines = (pf_bytes + 63) / 64;
    ptrdiff_t per_tile = tiles > 0 ? (lines + tiles - 1) / tiles : 0;
    const char *p = (const char *)pf;
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 8) {
        int rows = (int)(m - i0 < 8 ? m - i0 : 8);
        const FGD_T *x = X + i0 * d;
        FGD_T *z = ZT + i0;
        ptrdiff_t left = per_tile < lines ? per_tile : lines;
        lines -= left;
        for (ptrdiff_t g = 0; g < groups; g++) {
            ptrdiff_t q0 = 8 * g;
            int nq = (int)(kg - q0 < 8 ? kg - q0 : 8);
            const FGD_T *wg = FGD_GROUP_W(W, g, k, d);
            if (kg == 0)
                FGD_NAME(fgd_score_group_tile)(x, d, rows, wg, ldw, 0, 0, 0, Wt, b, z, ldz, 0, 1, &p, &left);
            else if (dot && g == 0)
                FGD_NAME(fgd_score_group_tile)(x, d, rows, wg, ldw, nq, q0, k - 1, Wt, b, z, ldz, 1, 1, &p, &left);
            else
                FGD_NAME(fgd_score_group_tile)(x, d, rows, wg, ldw, nq, q0, 0, Wt, b, z, ldz, 1, 0, &p, &left);
        }
        for (; left > 0; left--, p += 64)
            __builtin_prefetch(p, 0, FGD_PF_LOC);
    }
}
#endif

/* The scores of the block (without AVX-512 the tiles of fastgd_tiles_impl.h). Returns the
 * bytes from pf it asked for: pf_bytes, or 0 (the tiles ask for none). */
__attribute__((noinline)) static ptrdiff_t FGD_NAME(fgd_class_scores)(
    const FGD_T *restrict X, const FGD_T *restrict Wt, const FGD_T *restrict W, const double *restrict b,
    ptrdiff_t m, ptrdiff_t d, ptrdiff_t k, ptrdiff_t ldz, FGD_T *restrict ZT, const void *pf, ptrdiff_t pf_bytes)
{
#if FGD_SCORE_GROUPS
#if FGD_SCORE_BY_ROWS
    (void)Wt;
    fgd_class_scores_rows_f(X, W, b, m, d, k, ldz, ZT, pf, pf_bytes);
#else
    FGD_NAME(fgd_class_scores_groups)(X, Wt, W, b, m, d, k, ldz, ZT, pf, pf_bytes);
#endif
    return pf_bytes;
#else
    (void)W;
    (void)pf;
    (void)pf_bytes;
    FGD_NAME(fgd_class_scores_tiles)(X, Wt, b, m, d, k, ldz, ZT);
    return 0;
#endif
}
