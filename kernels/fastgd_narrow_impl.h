/* One dtype's narrow-row sums; see fastgd_narrow.h. Needs FGD_T and FGD_NAME. */

/* b + x . w for one row of d values, written out: with a loop over j, gcc (12) left the
 * loop over rows scalar for d = 5, 6, 7 (two inner loops after unrolling fewer than all
 * of them). */
static FGD_ALWAYS_INLINE double FGD_NAME(fgd_narrow_score)(const FGD_T *x, const double *w, double b, ptrdiff_t d)
{
    double z = b + (double)x[0] * w[0] + (double)x[1] * w[1];
    if (d > 2) z += (double)x[2] * w[2];
    if (d > 3) z += (double)x[3] * w[3];
    if (d > 4) z += (double)x[4] * w[4];
    if (d > 5) z += (double)x[5] * w[5];
    if (d > 6) z += (double)x[6] * w[6];
    if (d > 7) z += (double)x[7] * w[7];
    return z;
}

/* g += r x for one row of d values, written out as fgd_narrow_score. */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_narrow_add)(double *g, double r, const FGD_T *x, ptrdiff_t d)
{
    g[0] += r * (double)x[0];
    g[1] += r * (double)x[1];
    if (d > 2) g[2] += r * (double)x[2];
    if (d > 3) g[3] += r * (double)x[3];
    if (d > 4) g[4] += r * (double)x[4];
    if (d > 5) g[5] += r * (double)x[5];
    if (d > 6) g[6] += r * (double)x[6];
    if (d > 7) g[7] += r * (double)x[7];
}

/* Rows lo..hi of X (n, d), d <= FGD_NARROW_D_MAX, weighted (sw not NULL) and labels (y as
 * uint8 labels, with logistic) constants where this is inlined; g (d,) and the two sums
 * are written, not added to. Logistic runs FGD_NARROW_PRODUCT_ROWS rows at a time: in one
 * loop where gcc vectorises it (FGD_NARROW_FUSED), else in three (scores,
 * fgd_logistic_row, gradient) over that many rows, each of which it does vectorise. */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_narrow_impl)(
    const FGD_T *restrict X, const void *restrict y, const FGD_T *restrict sw, const double *restrict w,
    double b, int logistic, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, int weighted, int labels,
    double *restrict g_out, double *restrict dz_sum, double *restrict loss_sum)
{
    double g[FGD_NARROW_D_MAX] = {0};
    double acc_loss = 0.0, acc_dz = 0.0, prod = 1.0;
    ptrdiff_t i, j, part, part_end;
    if (!logistic) {
        for (i = lo; i < hi; i++) {
            const FGD_T *x = X + i * d;
            double r = FGD_NAME(fgd_narrow_score)(x, w, b, d) - FGD_TARGET(y, FGD_T, 0, i);
            double sr = weighted ? (double)sw[i] * r : r;
            acc_loss += sr * r;
            acc_dz += sr;
            FGD_NAME(fgd_narrow_add)(g, sr, x, d);
        }
        acc_dz *= 2.0;
        for (j = 0; j < d; j++)
            g[j] *= 2.0;
    } else {
        double z[FGD_NARROW_PRODUCT_ROWS], r[FGD_NARROW_PRODUCT_ROWS];
        for (part = lo; part < hi; part = part_end) {
            part_end = hi < part + FGD_NARROW_PRODUCT_ROWS ? hi : part + FGD_NARROW_PRODUCT_ROWS;
            double p_sum = 1.0, p_den = 1.0;
            if (FGD_NARROW_FUSED(d)) {
                for (i = part; i < part_end; i++) {
                    const FGD_T *x = X + i * d;
                    fgd_logistic_terms q = fgd_logistic_row(FGD_NAME(fgd_narrow_score)(x, w, b, d),
                                                            FGD_TARGET(y, FGD_T, labels, i),
                                                            weighted ? (double)sw[i] : 1.0, weighted);
                    acc_loss += q.loss;
                    p_sum *= q.t;
                    p_den *= q.den;
                    acc_dz += q.r;
                    FGD_NAME(fgd_narrow_add)(g, q.r, x, d);
                }
            } else {
                const FGD_T *Xp = X + part * d;
                ptrdiff_t m = part_end - part;
                for (i = 0; i < m; i++)
                    z[i] = FGD_NAME(fgd_narrow_score)(Xp + i * d, w, b, d);
                for (i = 0; i < m; i++) {
                    fgd_logistic_terms q = fgd_logistic_row(z[i], FGD_TARGET(y, FGD_T, labels, part + i),
                                                            weighted ? (double)sw[part + i] : 1.0, weighted);
                    acc_loss += q.loss;
                    p_sum *= q.t;
                    p_den *= q.den;
                    r[i] = q.r;
                }
                for (i = 0; i < m; i++) {
                    acc_dz += r[i];
                    FGD_NAME(fgd_narrow_add)(g, r[i], Xp + i * d, d);
                }
            }
            prod *= p_sum / p_den; /* 1 when weighted */
            if (prod > 1e150) {
                acc_loss += log(prod);
                prod = 1.0;
            }
        }
    }
    for (j = 0; j < d; j++)
        g_out[j] = g[j];
    *dz_sum = acc_dz;
    *loss_sum = acc_loss + log(prod);
}

/* fgd_narrow_impl with d, the weighting and the labels made compile-time constants
 * (labels only with logistic). Returns 0, having done nothing, for d outside
 * 2 .. FGD_NARROW_D_MAX (the caller's block kernel takes it). */
int FGD_NAME(fgd_narrow_rows)(
    const FGD_T *X, const void *y, const FGD_T *sw, const double *w, double b, int logistic, int labels,
    ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum)
{
#define FGD_NARROW_ROWS(weighted, labels) \
    FGD_NAME(fgd_narrow_impl)(X, y, sw, w, b, (labels) || logistic, lo, hi, D, weighted, labels, g, dz_sum, loss_sum)
    switch (d) {
        FGD_NARROW_CASES(if (labels && sw) FGD_NARROW_ROWS(1, 1); else if (labels) FGD_NARROW_ROWS(0, 1);
                         else if (sw) FGD_NARROW_ROWS(1, 0); else FGD_NARROW_ROWS(0, 0))
    }
#undef FGD_NARROW_ROWS
    return 0;
}

/* Softmax's two block products for narrow rows, d a constant where inlined: ZT[q * ldz +
 * i] = b[q] + X[i] . Wt[q] (i < m, q < k; summed in float64, stored in X's dtype), and
 * Gb[q] += sum over i < m of RT[q * ldr + i] X[i] (the k sums of a class in registers). One
 * loop over the block's rows per class, vectorised over rows. */
static FGD_ALWAYS_INLINE void FGD_NAME(fgd_narrow_class_scores_impl)(
    const FGD_T *restrict X, const FGD_T *restrict Wt, const double *restrict b, ptrdiff_t m, ptrdiff_t d,
    ptrdiff_t k, ptrdiff_t ldz, FGD_T *restrict ZT)
{
    for (ptrdiff_t q = 0; q < k; q++) {
        double w[FGD_NARROW_D_MAX];
        for (ptrdiff_t j = 0; j < d; j++)
            w[j] = (double)Wt[q * d + j];
        FGD_T *z = ZT + q * ldz;
        for (ptrdiff_t i = 0; i < m; i++)
            z[i] = (FGD_T)FGD_NAME(fgd_narrow_score)(X + i * d, w, b[q], d);
    }
}

static FGD_ALWAYS_INLINE void FGD_NAME(fgd_narrow_class_accumulate_impl)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k, ptrdiff_t ldr,
    FGD_T *restrict Gb)
{
    for (ptrdiff_t q = 0; q < k; q++) {
        double g[FGD_NARROW_D_MAX] = {0};
        const FGD_T *r = RT + q * ldr;
        for (ptrdiff_t i = 0; i < m; i++)
            FGD_NAME(fgd_narrow_add)(g, (double)r[i], X + i * d, d);
        for (ptrdiff_t j = 0; j < d; j++)
            Gb[q * d + j] += (FGD_T)g[j];
    }
}

/* The two products with d made a compile-time constant; each returns 0, having done
 * nothing, for d outside 2 .. FGD_NARROW_D_MAX (the caller's tiles take it). */
int FGD_NAME(fgd_narrow_class_scores)(const FGD_T *X, const FGD_T *Wt, const double *b, ptrdiff_t m, ptrdiff_t d,
                                      ptrdiff_t k, ptrdiff_t ldz, FGD_T *ZT)
{
    switch (d) {
        FGD_NARROW_CASES(FGD_NAME(fgd_narrow_class_scores_impl)(X, Wt, b, m, D, k, ldz, ZT))
    }
    return 0;
}

int FGD_NAME(fgd_narrow_class_accumulate)(const FGD_T *X, const FGD_T *RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
                                          ptrdiff_t ldr, FGD_T *Gb)
{
    switch (d) {
        FGD_NARROW_CASES(FGD_NAME(fgd_narrow_class_accumulate_impl)(X, RT, m, D, k, ldr, Gb))
    }
    return 0;
}
