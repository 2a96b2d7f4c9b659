/* Softmax's float32 class scores with a tile's rows in the lanes, for AMD Zen CPUs
 * (included by fastgd_score_groups.h): ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m,
 * q < k, with Wd (d, k) the coefficients Wt (k, d) transposed.
 *
 * A tile is sixteen rows, the sixteen lanes of a vector. Per sixteen columns the tile's
 * sixteen row vectors are loaded and transposed in registers (64 shuffles), and each of the
 * sixteen column vectors goes into one multiply-add per class with the class's coefficient
 * broadcast from memory inside the multiply-add ({1to16}); the class sums are the scores
 * of the sixteen rows, stored as they are, class-major. Up to FGD_SCORE_ROWS_CLASSES
 * classes a pass over the tile's columns (more classes: more passes, each loading and
 * transposing the columns again).
 *
 * Why on Zen only: the groups of fastgd_score_groups.h give float32 sixteen useful lanes
 * by broadcasting a row's two values as one 64-bit value, and on Zen 4 that broadcast
 * takes a vector pipe that the multiply-adds need, while the {1to16} broadcast inside a
 * multiply-add does not. One core of the 2-core AMD EPYC (Zen 4) test machine, in cache
 * (gcc 12): multiply-adds each after a 64-bit broadcast 41 billion lanes a second, with
 * {1to16} broadcasts 52 (the peak), with this transposition 64 shuffles per 144
 * multiply-adds 49. On Intel CPUs the broadcast from memory is a load alone, and the
 * shuffles share a port with the second multiply-add unit: there the groups stay.
 *
 * A pass of sixteen columns is longer than the CPU's reorder window, so the loads of the
 * next columns wait for it: each pass asks for the next sixteen lines of the next tile into
 * L1. The C harness of fgd_class_scores_f (one core, d = 64, nine classes; blocks of 128
 * rows): from L1 36.5 -> 47.6 billion lanes a second against the groups, from L3 42.9 ->
 * 45.9 with the requests. The whole call, 2M x 64, k = 10, float32, three builds in one
 * process (with the two-tile softmax steps): groups 35.3 ms, rows 31.6, rows and requests
 * 31.3 (logistic 15.2); in another run, with the one-tile steps, 36.8 / 33.8 / 33.8. */
#ifndef FASTGD_SCORE_ROWS_H
#define FASTGD_SCORE_ROWS_H

#if defined(__AVX512F__) && (defined(__znver3__) || defined(__znver4__) || defined(__znver5__))
#define FGD_SCORE_ROWS_F 1
/* The most classes a pass (their sums, sixteen column vectors and the shuffles' temporaries
 * fit the 32 vector registers). */
#define FGD_SCORE_ROWS_CLASSES 10

/* c[j] = column j of the 16 x 16 matrix whose rows are c[0..15] (in place). */
static inline __attribute__((always_inline)) void fgd_transpose16_f(__m512 c[16])
{
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: rows i, i + 1 interleaved */
        t[i] = _mm512_unpacklo_ps(c[i], c[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(c[i], c[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) { /* per 128-bit lane L: column 4 L + s of rows i .. i + 3 */
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d e = _mm512_castps_pd(t[i + 2]), f = _mm512_castps_pd(t[i + 3]);
        c[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, e));     /* s = 0 */
        c[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, e)); /* s = 1 */
        c[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, f)); /* s = 2 */
        c[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, f)); /* s = 3 */
    }
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) { /* the four row groups' lanes side by side */
        __m512 g01a = _mm512_shuffle_f32x4(c[s], c[4 + s], 0x88);  /* lanes 0, 2 of groups 0, 1 */
        __m512 g01b = _mm512_shuffle_f32x4(c[s], c[4 + s], 0xDD);  /* lanes 1, 3 */
        __m512 g23a = _mm512_shuffle_f32x4(c[8 + s], c[12 + s], 0x88);
        __m512 g23b = _mm512_shuffle_f32x4(c[8 + s], c[12 + s], 0xDD);
        t[s] = _mm512_shuffle_f32x4(g01a, g23a, 0x88);      /* lane 0: column s */
        t[8 + s] = _mm512_shuffle_f32x4(g01a, g23a, 0xDD);  /* lane 2: column 8 + s */
        t[4 + s] = _mm512_shuffle_f32x4(g01b, g23b, 0x88);  /* lane 1: column 4 + s */
        t[12 + s] = _mm512_shuffle_f32x4(g01b, g23b, 0xDD); /* lane 3: column 12 + s */
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        c[i] = t[i];
}

/* Sixteen columns (dt of them, TAIL: dt < 16 and the rest masked out) of a tile's rows
 * xr[0..15] (d apart) from column j into the sums of NQ classes, whose coefficients start at *w (k
 * apart, one row of Wd a column; *w moves past the dt columns). Asks for one of *left
 * lines from *p a column. */
static inline __attribute__((always_inline)) void fgd_score_rows_columns_f(
    const float *const xr[16], ptrdiff_t d, ptrdiff_t j, int dt, const float **w, ptrdiff_t k, __m512 acc[],
    const int NQ, const int TAIL, const char **p, ptrdiff_t *left)
{
    __mmask16 jm = (__mmask16)((1u << dt) - 1);
    __m512 c[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++)
        c[r] = TAIL ? _mm512_maskz_loadu_ps(jm, xr[r] + j) : _mm512_loadu_ps(xr[r] + j);
    /* the next tile's rows (contiguous, 16 d floats: 16 lines per 16 columns) into L1 */
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++)
        __builtin_prefetch((const char *)(xr[0] + 16 * d) + 64 * j + 64 * r, 0, 3);
    fgd_transpose16_f(c);
    const float *wt = *w;
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        if (TAIL && t >= dt)
            break;
        if (*left > 0) {
            __builtin_prefetch(*p, 0, FGD_PF_LOC);
            *p += 64;
            (*left)--;
        }
#pragma GCC unroll 16
        for (int q = 0; q < NQ; q++)
            acc[q] = _mm512_fmadd_ps(c[t], _mm512_set1_ps(wt[q]), acc[q]);
        wt += k;
    }
    *w = wt;
}

/* The scores of one tile of sixteen rows (rows < 16: the missing rows read the last one and
 * are not stored) for the NQ classes q0 .. q0 + NQ - 1. Asks for *pf_left lines from *pf,
 * one per column. */
static inline __attribute__((always_inline)) void fgd_score_rows_tile_f(
    const float *restrict x, ptrdiff_t d, int rows, const float *restrict Wd, ptrdiff_t k, ptrdiff_t q0,
    const double *restrict b, float *restrict z, ptrdiff_t ldz, const int NQ, const char **pf, ptrdiff_t *pf_left)
{
    __m512 acc[FGD_SCORE_ROWS_CLASSES];
    const float *xr[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++)
        xr[r] = x + (r < rows ? r : rows - 1) * d;
#pragma GCC unroll 16
    for (int q = 0; q < NQ; q++)
        acc[q] = _mm512_setzero_ps();
    const float *w = Wd + q0;
    ptrdiff_t j = 0;
    for (; j + 16 <= d; j += 16)
        fgd_score_rows_columns_f(xr, d, j, 16, &w, k, acc, NQ, 0, pf, pf_left);
    if (j < d)
        fgd_score_rows_columns_f(xr, d, j, (int)(d - j), &w, k, acc, NQ, 1, pf, pf_left);
    __mmask16 rm = (__mmask16)((1u << rows) - 1);
#pragma GCC unroll 16
    for (int q = 0; q < NQ; q++)
        _mm512_mask_storeu_ps(z + (q0 + q) * ldz, rm, _mm512_add_ps(acc[q], _mm512_set1_ps((float)b[q0 + q])));
}

/* The tiles of a block for one pass of NQ classes from q0. */
static inline __attribute__((always_inline)) void fgd_score_rows_pass_f(
    const float *restrict X, const float *restrict Wd, const double *restrict b, ptrdiff_t m, ptrdiff_t d,
    ptrdiff_t k, ptrdiff_t q0, ptrdiff_t ldz, float *restrict ZT, const int NQ, const char **pf, ptrdiff_t *lines,
    ptrdiff_t per_tile)
{
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 16) {
        int rows = (int)(m - i0 < 16 ? m - i0 : 16);
        ptrdiff_t left = per_tile < *lines ? per_tile : *lines;
        *lines -= left;
        fgd_score_rows_tile_f(X + i0 * d, d, rows, Wd, k, q0, b, ZT + i0, ldz, NQ, pf, &left);
        *lines += left; /* what the tile did not ask for */
    }
}

/* ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m, q < k: the classes in passes of at most
 * FGD_SCORE_ROWS_CLASSES, of as even sizes as can be. Wd: Wt transposed, (d, k). Asks for
 * the pf_bytes from pf on the way, spread over the first pass's columns. */
__attribute__((noinline)) static void fgd_class_scores_rows_f(const float *restrict X, const float *restrict Wd,
                                                               const double *restrict b, ptrdiff_t m, ptrdiff_t d,
                                                               ptrdiff_t k, ptrdiff_t ldz, float *restrict ZT,
                                                               const void *pf, ptrdiff_t pf_bytes)
{
    ptrdiff_t passes = (k + FGD_SCORE_ROWS_CLASSES - 1) / FGD_SCORE_ROWS_CLASSES;
    ptrdiff_t lines = (pf_bytes + 63) / 64, tiles = (m + 15) / 16;
    ptrdiff_t per_tile = tiles > 0 ? (lines + tiles - 1) / tiles : 0;
    const char *p = (const char *)pf;
    for (ptrdiff_t s = 0, q0 = 0; s < passes; s++) {
        int nq = (int)((k - q0) / (passes - s) + ((k - q0) % (passes - s) != 0));
        switch (nq) {
#define FGD_SCORE_ROWS_CASE(NQ)                                                                    \
    case NQ:                                                                                        \
        fgd_score_rows_pass_f(X, Wd, b, m, d, k, q0, ldz, ZT, NQ, &p, &lines, s == 0 ? per_tile : 0); \
        break;
            FGD_SCORE_ROWS_CASE(1)
            FGD_SCORE_ROWS_CASE(2)
            FGD_SCORE_ROWS_CASE(3)
            FGD_SCORE_ROWS_CASE(4)
            FGD_SCORE_ROWS_CASE(5)
            FGD_SCORE_ROWS_CASE(6)
            FGD_SCORE_ROWS_CASE(7)
            FGD_SCORE_ROWS_CASE(8)
            FGD_SCORE_ROWS_CASE(9)
            FGD_SCORE_ROWS_CASE(10)
#undef FGD_SCORE_ROWS_CASE
        }
        q0 += nq;
    }
    for (; lines > 0; lines--, p += 64)
        __builtin_prefetch(p, 0, FGD_PF_LOC);
}
#else
#define FGD_SCORE_ROWS_F 0
#endif
#endif
