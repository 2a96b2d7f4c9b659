/* Softmax's float64 class scores by panels of rows transposed in registers (included by
 * fastgd_tiles.h after its tiles): ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m, q < k,
 * with Wd (d, k) the coefficients Wt (k, d) transposed.
 *
 * A panel is eight rows. Four columns of them at a time are loaded and transposed with
 * 256-bit shuffles (two 4 x 4 transposes, eight shuffles each), so that each column's
 * values of the eight rows are two vectors; each column then meets the broadcast
 * coefficients of Q classes in 2Q vector sums that stay in registers over all d columns.
 * No sums across a vector's lanes, as the four-by-four tiles end each score with, and no
 * leftover classes at a load per multiply-add (k = 10 scores nine classes: two tiles of
 * four and one left over). 2M x 64, k = 10, in one process: 64.4 -> 61.0 ms.
 *
 * Tried and left out: the transposes with 512-bit shuffles (8 x 8: 24 of them, each split in
 * two by this CPU) or through a buffer (its stores alone a quarter of the multiply-adds)
 * were no faster than the tiles; float32 panels (an 8 x 8 transpose per eight rows, a
 * broadcast per multiply-add) were slower than its tiles (39 -> 41 ms). */
#ifndef FASTGD_SCORE_PANELS_H
#define FASTGD_SCORE_PANELS_H

#if FGD_PANELS && defined(__AVX512VL__)
#define FGD_SCORE_PANELS 1
/* Classes per panel: 2Q sums and eight column vectors in the 32 registers. */
#define FGD_SCORE_CLASSES_MAX_D 9

/* c[0..3] = columns j .. j + 3 of rows 0..3 of X (rows from n_rows on, and columns outside
 * the mask, as zeros). */
static inline __attribute__((always_inline)) void fgd_transpose4_d(const double *X, ptrdiff_t d, int n_rows,
                                                                   __mmask8 cols, __m256d c[4])
{
    __m256d r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        r[i] = i < n_rows ? _mm256_maskz_loadu_pd(cols, X + i * d) : _mm256_setzero_pd();
    __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    c[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    c[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    c[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    c[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* The scores of Q classes (a compile-time constant) for the panel's rows < n_rows (FULL:
 * all eight, and d a multiple of the column tile). */
static inline __attribute__((always_inline)) void fgd_score_panel_d(
    const double *restrict X, ptrdiff_t d, int n_rows, const double *restrict Wd, ptrdiff_t ldw,
    const double *restrict b, double *restrict Z, ptrdiff_t ldz, const int Q, const int FULL)
{
    __m256d a0[FGD_SCORE_CLASSES_MAX_D], a1[FGD_SCORE_CLASSES_MAX_D], c0[4], c1[4];
#pragma GCC unroll 16
    for (int q = 0; q < Q; q++)
        a0[q] = a1[q] = _mm256_setzero_pd();
    for (ptrdiff_t j = 0; j < d; j += 4) {
        int left = FULL ? 4 : (int)(d - j < 4 ? d - j : 4);
        __mmask8 cols = (__mmask8)((1u << left) - 1);
        fgd_transpose4_d(X + j, d, FULL ? 4 : n_rows, cols, c0);
        fgd_transpose4_d(X + 4 * d + j, d, FULL ? 4 : n_rows - 4, cols, c1);
        const double *w = Wd + j * ldw;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            if (!FULL && c >= left)
                break;
#pragma GCC unroll 16
            for (int q = 0; q < Q; q++) {
                __m256d s = _mm256_set1_pd(w[c * ldw + q]);
                a0[q] = _mm256_fmadd_pd(s, c0[c], a0[q]);
                a1[q] = _mm256_fmadd_pd(s, c1[c], a1[q]);
            }
        }
    }
    __mmask8 r0 = (__mmask8)(n_rows >= 4 ? 0xF : (1u << n_rows) - 1);
    __mmask8 r1 = (__mmask8)(n_rows >= 8 ? 0xF : n_rows <= 4 ? 0 : (1u << (n_rows - 4)) - 1);
#pragma GCC unroll 16
    for (int q = 0; q < Q; q++) {
        __m256d bq = _mm256_set1_pd(b[q]);
        _mm256_mask_storeu_pd(Z + q * ldz, r0, _mm256_add_pd(a0[q], bq));
        _mm256_mask_storeu_pd(Z + q * ldz + 4, r1, _mm256_add_pd(a1[q], bq));
    }
}

#define FGD_SCORE_CASE(n) case n: { \
    if (full) fgd_score_panel_d(x, d, 8, Wd + q0, k, b + q0, z, ldz, n, 1); \
    else fgd_score_panel_d(x, d, rows, Wd + q0, k, b + q0, z, ldz, n, 0); \
    break; }
#endif

/* From FGD_SCORE_PANEL_CLASSES_MIN classes (fewer: the tiles), at any width (20,000 x 5,000,
 * k = 10: 54 ms with the tiles, 44 with the panels; 2,000 columns: the same). The classes
 * in as few groups of at most FGD_SCORE_CLASSES_MAX_D as will do, their sizes differing by
 * one at most. */
#define FGD_SCORE_PANEL_CLASSES_MIN 7

__attribute__((noinline)) static void fgd_class_scores_d(
    const double *restrict X, const double *restrict Wt, const double *restrict Wd, const double *restrict b,
    ptrdiff_t m, ptrdiff_t d, ptrdiff_t k, ptrdiff_t ldz, double *restrict ZT)
{
#if FGD_SCORE_PANELS
    if (k >= FGD_SCORE_PANEL_CLASSES_MIN) {
        ptrdiff_t groups = (k + FGD_SCORE_CLASSES_MAX_D - 1) / FGD_SCORE_CLASSES_MAX_D;
        ptrdiff_t base = k / groups, bigger = k % groups; /* the first `bigger` groups: base + 1 */
        for (ptrdiff_t i0 = 0; i0 < m; i0 += 8) {
            int rows = (int)(m - i0 < 8 ? m - i0 : 8);
            int full = rows == 8 && d % 4 == 0;
            const double *x = X + i0 * d;
            ptrdiff_t q0 = 0;
            for (ptrdiff_t g = 0; g < groups; g++) {
                int n = (int)(base + (g < bigger));
                double *z = ZT + q0 * ldz + i0;
                switch (n) {
                    FGD_SCORE_CASE(1) FGD_SCORE_CASE(2) FGD_SCORE_CASE(3) FGD_SCORE_CASE(4) FGD_SCORE_CASE(5)
                    FGD_SCORE_CASE(6) FGD_SCORE_CASE(7) FGD_SCORE_CASE(8) FGD_SCORE_CASE(9)
                }
                q0 += n;
            }
        }
        return;
    }
#endif
    (void)Wd;
    fgd_class_scores_tiles_d(X, Wt, b, m, d, k, ldz, ZT);
}
#undef FGD_SCORE_CASE

#endif
