/* One dtype's loop of fastgd_fused_rows.c (see fastgd_fused_rows.h), for rows of
 * FGD_VECS_LO to FGD_VECS_HI vectors (FGD_VECS_HI sizes its arrays). Needs FGD_T,
 * FGD_NAME, FGD_FUSED_PIPELINE, FGD_ZEN and the 512-bit vector of X's dtype: FGD_V, FGD_LANES,
 * FGD_MASK, FGD_LOAD, FGD_MASKZ_LOAD, FGD_STORE, FGD_ZERO, FGD_SET1, FGD_FMA, FGD_REDUCE. */

/* The first half of a step of R consecutive rows from row i (R = 4, or 1 for the rows
 * left over): each row's NV vectors loaded once, into A (not on AMD Zen), for its score; the R residuals
 * into r, their loss terms into acc. The loop over the vectors stays rolled, as
 * measured best (see fastgd_fused_rows.h). R, NV, logistic and weighted are constants
 * where this is inlined. */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_fused_scores)(
    const FGD_T *restrict X, const void *restrict y, const FGD_T *restrict sw, const FGD_T *w, ptrdiff_t i,
    int R, int NV, FGD_MASK first, FGD_MASK last, int shift, double b, int logistic, int weighted,
    FGD_V (*A)[FGD_VECS_HI + 1], double *r, fgd_fused_sums *acc)
{
    const ptrdiff_t d = acc->d;
    const FGD_T *x = X + i * d - shift;
    FGD_V s[4];
    double z[4];
    FGD_HIDE(w); /* w from the L1 cache in every step: held in registers it pushed G out */
    for (int q = 0; q < R; q++)
        s[q] = FGD_ZERO();
    if (FGD_ZEN) { /* row after row, nothing stored (see FGD_ZEN) */
        for (int q = 0; q < R; q++) {
#pragma GCC unroll 1
            for (int v = 0; v < NV; v++) {
                const FGD_T *p = x + q * d + v * FGD_LANES;
                FGD_V a = v == NV - 1 ? FGD_MASKZ_LOAD(last, p) : shift && v == 0 ? FGD_MASKZ_LOAD(first, p) : FGD_LOAD(p);
                s[q] = FGD_FMA(a, FGD_LOAD(w + v * FGD_LANES), s[q]);
            }
        }
    } else {
#pragma GCC unroll 1
        for (int v = 0; v < NV; v++) {
            for (int q = 0; q < R; q++) {
                const FGD_T *p = x + q * d + v * FGD_LANES;
                __builtin_prefetch((const char *)p + FGD_FUSED_AHEAD_BYTES(NV), 0, 3);
                A[q][v] = v == NV - 1 ? FGD_MASKZ_LOAD(last, p) : shift && v == 0 ? FGD_MASKZ_LOAD(first, p) : FGD_LOAD(p);
                s[q] = FGD_FMA(A[q][v], FGD_LOAD(w + v * FGD_LANES), s[q]);
            }
        }
    }
    for (int q = 0; q < R; q++)
        z[q] = (double)FGD_REDUCE(s[q]) + b;
    if (logistic && !weighted && R == 4) {
        const int labels = acc->labels;
        double yq[4] = {FGD_TARGET(y, FGD_T, labels, i), FGD_TARGET(y, FGD_T, labels, i + 1),
                        FGD_TARGET(y, FGD_T, labels, i + 2), FGD_TARGET(y, FGD_T, labels, i + 3)};
        fgd_logistic_rows4(z, yq, r, acc);
    } else {
        for (int q = 0; q < R; q++) {
            double sq = weighted ? (double)sw[i + q] : 1.0, yq = FGD_TARGET(y, FGD_T, acc->labels, i + q);
            if (!logistic) {
                double res = z[q] - yq;
                r[q] = sq * res;
                acc->loss += r[q] * res;
            } else {
                fgd_logistic_terms t = fgd_logistic_row(z[q], yq, sq, weighted);
                r[q] = t.r;
                acc->loss += t.loss;
                acc->p_sum *= t.t;
                acc->p_den *= t.den;
            }
            acc->dz += r[q];
        }
    }
}

/* The second half: G += r[q] A[q] for the R rows. */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_fused_update)(int R, int NV, FGD_V (*A)[FGD_VECS_HI + 1], const double *r,
                                                        FGD_V *G)
{
    FGD_V rv[4];
    for (int q = 0; q < R; q++)
        rv[q] = FGD_SET1((FGD_T)r[q]);
#pragma GCC unroll 1
    for (int v = 0; v < NV; v++)
        for (int q = 0; q < R; q++)
            G[v] = FGD_FMA(rv[q], A[q][v], G[v]);
}

/* The second half on AMD Zen (FGD_ZEN): the R rows read again from X (in L1). */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_fused_update_rows)(int R, int NV, const FGD_T *x, ptrdiff_t d,
                                                             FGD_MASK first, FGD_MASK last, int shift,
                                                             const double *r, FGD_V *G)
{
    FGD_V rv[4];
    for (int q = 0; q < R; q++)
        rv[q] = FGD_SET1((FGD_T)r[q]);
#pragma GCC unroll 1
    for (int v = 0; v < NV; v++)
        for (int q = 0; q < R; q++) {
            const FGD_T *p = x - shift + q * d + v * FGD_LANES;
            FGD_V a = v == NV - 1 ? FGD_MASKZ_LOAD(last, p) : shift && v == 0 ? FGD_MASKZ_LOAD(first, p) : FGD_LOAD(p);
            G[v] = FGD_FMA(rv[q], a, G[v]);
        }
}

/* One step, both halves. */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_fused_step)(
    const FGD_T *restrict X, const void *restrict y, const FGD_T *restrict sw, const FGD_T *w, ptrdiff_t i,
    int R, int NV, FGD_MASK first, FGD_MASK last, int shift, double b, int logistic, int weighted, FGD_V *G,
    fgd_fused_sums *acc)
{
    FGD_V A[4][FGD_VECS_HI + 1];
    double r[4];
    FGD_NAME(fgd_fused_scores)(X, y, sw, w, i, R, NV, first, last, shift, b, logistic, weighted, A, r, acc);
    if (FGD_ZEN)
        FGD_NAME(fgd_fused_update_rows)(R, NV, X + i * acc->d, acc->d, first, last, shift, r, G);
    else
        FGD_NAME(fgd_fused_update)(R, NV, A, r, G);
}

/* Rows lo..hi, NV vectors a row (the last one masked to d); NV, weighted and shifted
 * constants where this is inlined. Shifted (rows of whole 64-byte lines, X `shift` values
 * past a line's start, shift > 0): each row read in NV + 1 windows from the line before its
 * start, the first and last masked to the row, each window one line; w, and the gradient
 * sums, shifted to match (see FGD_FUSED_SHIFT in fastgd_fused_rows.c). */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_fused_impl)(
    const FGD_T *restrict X, const void *restrict y, const FGD_T *restrict sw, const FGD_T *restrict w,
    double b, int logistic, int labels, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, int NV, int weighted, int shifted,
    int shift, double *restrict g_out, double *restrict dz_sum, double *restrict loss_sum)
{
    /* windows a row, the lanes the first and the last take */
    const int NW = NV + shifted;
    shift = shifted ? shift : 0;
    FGD_MASK first = (FGD_MASK)(~(((unsigned long long)1 << shift) - 1));
    FGD_MASK last = shifted ? (FGD_MASK)(((unsigned long long)1 << shift) - 1)
                            : (FGD_MASK)(((unsigned long long)1 << (d - (NV - 1) * FGD_LANES)) - 1);
    FGD_V G[FGD_VECS_HI + 1];
    /* w at shift, 0 elsewhere */
    FGD_T part_g[(FGD_VECS_HI + 1) * FGD_LANES], w_padded[(FGD_VECS_HI + 1) * FGD_LANES] = {0};
    double g[FGD_VECS_HI * FGD_LANES] = {0};
    double prod = 1.0;
    fgd_fused_sums acc = {0.0, 0.0, 1.0, 1.0, d, labels, _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_set1_pd(1.0),
                          _mm256_set1_pd(1.0)};
    for (ptrdiff_t j = 0; j < d; j++)
        w_padded[shift + j] = w[j];
    for (int v = 0; v < NW; v++)
        G[v] = FGD_ZERO();
    for (ptrdiff_t part = lo, part_end; part < hi; part = part_end) {
        part_end = hi < part + FGD_FUSED_PART_ROWS ? hi : part + FGD_FUSED_PART_ROWS;
        ptrdiff_t i = part;
        if (FGD_FUSED_PIPELINE && !FGD_ZEN && NV > 4 && i + 4 <= part_end) {
            /* Rows of five vectors or more (float64, FGD_FUSED_PIPELINE): each step's
             * scores before the previous step's update, so that the residuals' latency
             * overlaps the next rows' loads (C harness, 2M x 64 float64, same process:
             * mse 0.86-0.90 -> 0.90-0.94, logistic 0.79-0.81 -> 0.82-0.86; with rows of
             * four vectors it lost: 4M x 32 float64 mse 0.87 -> 0.82, logistic 0.78-0.81
             * -> 0.73-0.75; 2M x 64 float32 mse 0.97 -> 0.84) */
            FGD_V A[2][4][FGD_VECS_HI + 1];
            double r[2][4];
            int cur = 0;
            FGD_NAME(fgd_fused_scores)(X, y, sw, w_padded, i, 4, NW, first, last, shift, b, logistic, weighted, A[0],
                                       r[0], &acc);
            for (i += 4; i + 4 <= part_end; i += 4) {
                FGD_NAME(fgd_fused_scores)(X, y, sw, w_padded, i, 4, NW, first, last, shift, b, logistic, weighted,
                                           A[cur ^ 1], r[cur ^ 1], &acc);
                FGD_NAME(fgd_fused_update)(4, NW, A[cur], r[cur], G);
                cur ^= 1;
            }
            FGD_NAME(fgd_fused_update)(4, NW, A[cur], r[cur], G);
        }
        for (; i + 4 <= part_end; i += 4)
            FGD_NAME(fgd_fused_step)(X, y, sw, w_padded, i, 4, NW, first, last, shift, b, logistic, weighted, G, &acc);
        for (; i < part_end; i++)
            FGD_NAME(fgd_fused_step)(X, y, sw, w_padded, i, 1, NW, first, last, shift, b, logistic, weighted, G, &acc);
        fgd_fold_vectors(&acc);
        prod *= acc.p_sum / acc.p_den; /* 1 unless unweighted logistic */
        acc.p_sum = acc.p_den = 1.0;
        if (prod > 1e150) {
            acc.loss += log(prod);
            prod = 1.0;
        }
        for (int v = 0; v < NW; v++) { /* the part's gradient sums into float64 */
            FGD_STORE(part_g + v * FGD_LANES, G[v]);
            G[v] = FGD_ZERO();
        }
        for (ptrdiff_t j = 0; j < d; j++)
            g[j] += (double)part_g[shift + j];
    }
    double scale = logistic ? 1.0 : 2.0;
    for (ptrdiff_t j = 0; j < d; j++)
        g_out[j] = scale * g[j];
    *dz_sum = scale * acc.dz;
    *loss_sum = acc.loss + log(prod);
}

/* Rows lo..hi as fgd_fused_rows_d/_f (fastgd_fused_rows.h) where a row takes FGD_VECS_LO to
 * FGD_VECS_HI vectors; else returns 0, having done nothing. */
static int FGD_NAME(fgd_fused_range)(const FGD_T *X, const void *y, const FGD_T *sw, const FGD_T *w, double b,
                                     int logistic, int labels, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g,
                                     double *dz_sum, double *loss_sum)
{
    ptrdiff_t nv = (d + FGD_LANES - 1) / FGD_LANES;
    if (d <= FGD_NARROW_D_MAX || nv < FGD_VECS_LO || nv > FGD_VECS_HI)
        return 0;
    const size_t off = (uintptr_t)X % 64; /* bytes past a line's start */
    const int shift = FGD_FUSED_SHIFT && d * sizeof(FGD_T) % 64 == 0 && off % sizeof(FGD_T) == 0
                          ? (int)(off / sizeof(FGD_T))
                          : 0;
    switch (nv) {
/* (n clamped to FGD_VECS_LO .. FGD_VECS_HI: the cases outside are never taken) */
#define FGD_FUSED_CASE(n)                                                                                  \
    case n: {                                                                                              \
        enum { NV = n < FGD_VECS_LO ? FGD_VECS_LO : n > FGD_VECS_HI ? FGD_VECS_HI : n };                   \
        if (sw && shift)                                                                                   \
            FGD_NAME(fgd_fused_impl)(X, y, sw, w, b, logistic, labels, lo, hi, d, NV, 1, 1, shift, g, dz_sum, \
                                     loss_sum);                                                            \
        else if (sw)                                                                                       \
            FGD_NAME(fgd_fused_impl)(X, y, sw, w, b, logistic, labels, lo, hi, d, NV, 1, 0, 0, g, dz_sum,     \
                                     loss_sum);                                                            \
        else if (shift)                                                                                    \
            FGD_NAME(fgd_fused_impl)(X, y, sw, w, b, logistic, labels, lo, hi, d, NV, 0, 1, shift, g, dz_sum, \
                                     loss_sum);                                                            \
        else                                                                                               \
            FGD_NAME(fgd_fused_impl)(X, y, sw, w, b, logistic, labels, lo, hi, d, NV, 0, 0, 0, g, dz_sum,     \
                                     loss_sum);                                                            \
        return 1;                                                                                          \
    }
        FGD_FUSED_CASE(1)
        FGD_FUSED_CASE(2)
        FGD_FUSED_CASE(3)
        FGD_FUSED_CASE(4)
        FGD_FUSED_CASE(5)
        FGD_FUSED_CASE(6)
        FGD_FUSED_CASE(7)
        FGD_FUSED_CASE(8)
        FGD_FUSED_CASE(9)
        FGD_FUSED_CASE(10)
        FGD_FUSED_CASE(11)
        FGD_FUSED_CASE(12)
        FGD_FUSED_CASE(13)
        FGD_FUSED_CASE(14)
        FGD_FUSED_CASE(15)
        FGD_FUSED_CASE(16)
#undef FGD_FUSED_CASE
    }
    return 0;
}
