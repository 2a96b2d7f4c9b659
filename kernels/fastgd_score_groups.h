/* Softmax's class scores by groups of eight classes (included by fastgd_tiles.h after its
 * tiles): ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m, q < k, with Wd (d, k) the float64
 * coefficients Wt (k, d) transposed, Wp the float32 ones by column pairs.
 *
 * A tile is eight rows. Eight classes are the lanes of one 512-bit vector: for each column
 * j the tile's eight values X[i][j] are broadcast, each into one multiply-add with the
 * classes' coefficients Wd[j] (loaded once per tile), so every lane of every multiply-add
 * is useful work and nothing is shuffled in the loop. k = 8 g + 1 (k = 10 scores nine
 * classes) takes the last class by dot products along the rows, vectors of eight columns
 * against its coefficients, in the same pass; other k mask the lanes of the last group.
 * The tile's sums stay in registers (eight, sixteen with the dot products) and are
 * transposed to class-major once per tile (24 shuffles). 2M x 64, k = 10, in one process
 * against the panels of eight rows transposed in registers with 256-bit vectors that this
 * replaces (a broadcast coefficient per multiply-add): the scores alone with X in cache 21
 * -> 14 ms (C harness, two threads), the whole call 79 -> 62 ms (with half the next
 * block's prefetches asked for here, below); 20,000 x 5,000 67 -> 62 ms; 500,000 x 256
 * 73 -> 64 ms.
 *
 * float32 takes sixteen lanes as eight classes by two columns: a row's two values are
 * broadcast as one 64-bit value, so each multiply-add again does sixteen useful lanes, and
 * each class's two column sums are added once per tile (the tiles this replaces took four
 * rows by four classes with 256-bit vectors). 2M x 64, k = 10, with the float32 softmax
 * steps of fastgd_softmax_steps.h and the prefetch shares: 48 -> 32 ms (1.8x logistic's
 * time in the same run; float64 58 ms, 1.8x). On AMD Zen CPUs that broadcast is slow, and
 * float32 takes the rows of fastgd_score_rows.h instead (fgd_score_coefficients_f gives
 * each its coefficients).
 *
 * The scores are where a block's rows first come from memory, and the softmax kernels
 * are bound by their arithmetic: the next block's lines are asked for by all three
 * steps of a block (scores, softmax steps, gradient), each its share, one line per row step,
 * so that the memory reads stay spread over the block's arithmetic (see
 * cython_kernels.pyx, _softmax_chunk). Asking for them in a burst at the end of each tile
 * was slower (C harness, scores and gradient: 50.7 against 41.8 ms). One thread on the
 * Intel Xeon test VM, 64 float64 columns, nine scored classes, the block loop of scores,
 * steps and gradient (C harness): 48 ns a row with the rows in L2, 57-60 from memory with
 * these prefetches, 85-88 without; a plain read of the row alone takes 33. Other shares
 * (0-100% in the scores, 0-70% in the steps), the block after next or the one after that
 * instead of the next, one line in two or four (the neighbouring lines left to the
 * hardware), or blocks of 384 and 512 rows: each as slow or slower.
 *
 * Tried for float64, not kept: the float32 layout (two columns of four classes a vector, a
 * row's two values broadcast as one 128-bit load into two multiply-adds), 48 loads to 72
 * multiply-adds a step of eight columns where the broadcasts of one value make 80. The
 * scores alone: 17.4 -> 15.4 ns a row at a quiet time, 0.93-1.02x in rounds interleaved in
 * one process (d = 256: 0.89-1.09x); the whole block loop 0.96x (L2) and 0.99x (from
 * memory). */
#ifndef FASTGD_SCORE_GROUPS_H
#define FASTGD_SCORE_GROUPS_H

#include "fastgd_score_rows.h"

/* The float32 scores' coefficients from Wt (k, d): with FGD_SCORE_ROWS_F Wt transposed,
 * (d, k), as fgd_class_scores_rows_f takes them; else by column pairs for the groups: for
 * group g (classes 8 g .. 8 g + 7) and column pair p (columns 2 p, 2 p + 1), the 16 floats
 * W[(g * P + p) * 16 + 2 c + e] = Wt[8 g + c][2 p + e] (P = (d + 1) / 2; zero past the
 * group's classes or the last column). fgd_score_coefficients_size_f: their floats. */
static inline ptrdiff_t fgd_score_coefficients_size_f(ptrdiff_t k, ptrdiff_t d)
{
    if (FGD_SCORE_ROWS_F)
        return k * d;
    ptrdiff_t kg = k % 8 == 1 ? k - 1 : k;
    return ((kg + 7) / 8) * ((d + 1) / 2) * 16;
}

static void fgd_score_coefficients_f(const float *restrict Wt, ptrdiff_t k, ptrdiff_t d, float *restrict W)
{
    if (FGD_SCORE_ROWS_F) {
        for (ptrdiff_t q = 0; q < k; q++)
            for (ptrdiff_t j = 0; j < d; j++)
                W[j * k + q] = Wt[q * d + j];
        return;
    }
    ptrdiff_t kg = k % 8 == 1 ? k - 1 : k, P = (d + 1) / 2;
    for (ptrdiff_t g = 0; g * 8 < kg; g++)
        for (ptrdiff_t p = 0; p < P; p++)
            for (int c = 0; c < 8; c++)
                for (int e = 0; e < 2; e++) {
                    ptrdiff_t q = 8 * g + c, j = 2 * p + e;
                    W[(g * P + p) * 16 + 2 * c + e] = q < kg && j < d ? Wt[q * d + j] : 0.0f;
                }
}

#if defined(__AVX512F__)
#define FGD_SCORE_GROUPS 1

/* o[c] = column c of the 8 x 8 matrix whose rows are r[0..7]. */
static inline __attribute__((always_inline)) void fgd_transpose8_d(const __m512d r[8], __m512d o[8])
{
    __m512d t0 = _mm512_unpacklo_pd(r[0], r[1]), t1 = _mm512_unpackhi_pd(r[0], r[1]);
    __m512d t2 = _mm512_unpacklo_pd(r[2], r[3]), t3 = _mm512_unpackhi_pd(r[2], r[3]);
    __m512d t4 = _mm512_unpacklo_pd(r[4], r[5]), t5 = _mm512_unpackhi_pd(r[4], r[5]);
    __m512d t6 = _mm512_unpacklo_pd(r[6], r[7]), t7 = _mm512_unpackhi_pd(r[6], r[7]);
    __m512d u0 = _mm512_shuffle_f64x2(t0, t2, 0x88), u1 = _mm512_shuffle_f64x2(t0, t2, 0xDD);
    __m512d u2 = _mm512_shuffle_f64x2(t1, t3, 0x88), u3 = _mm512_shuffle_f64x2(t1, t3, 0xDD);
    __m512d u4 = _mm512_shuffle_f64x2(t4, t6, 0x88), u5 = _mm512_shuffle_f64x2(t4, t6, 0xDD);
    __m512d u6 = _mm512_shuffle_f64x2(t5, t7, 0x88), u7 = _mm512_shuffle_f64x2(t5, t7, 0xDD);
    o[0] = _mm512_shuffle_f64x2(u0, u4, 0x88);
    o[4] = _mm512_shuffle_f64x2(u0, u4, 0xDD);
    o[1] = _mm512_shuffle_f64x2(u2, u6, 0x88);
    o[5] = _mm512_shuffle_f64x2(u2, u6, 0xDD);
    o[2] = _mm512_shuffle_f64x2(u1, u5, 0x88);
    o[6] = _mm512_shuffle_f64x2(u1, u5, 0xDD);
    o[3] = _mm512_shuffle_f64x2(u3, u7, 0x88);
    o[7] = _mm512_shuffle_f64x2(u3, u7, 0xDD);
}

/* Lane r of the result = the sum of the lanes of a[r]. */
static inline __attribute__((always_inline)) __m512d fgd_lane_sums8_d(const __m512d a[8])
{
    __m512d s01 = _mm512_add_pd(_mm512_unpacklo_pd(a[0], a[1]), _mm512_unpackhi_pd(a[0], a[1]));
    __m512d s23 = _mm512_add_pd(_mm512_unpacklo_pd(a[2], a[3]), _mm512_unpackhi_pd(a[2], a[3]));
    __m512d s45 = _mm512_add_pd(_mm512_unpacklo_pd(a[4], a[5]), _mm512_unpackhi_pd(a[4], a[5]));
    __m512d s67 = _mm512_add_pd(_mm512_unpacklo_pd(a[6], a[7]), _mm512_unpackhi_pd(a[6], a[7]));
    __m512d x = _mm512_add_pd(_mm512_shuffle_f64x2(s01, s23, 0x88), _mm512_shuffle_f64x2(s01, s23, 0xDD));
    __m512d y = _mm512_add_pd(_mm512_shuffle_f64x2(s45, s67, 0x88), _mm512_shuffle_f64x2(s45, s67, 0xDD));
    return _mm512_add_pd(_mm512_shuffle_f64x2(x, y, 0x88), _mm512_shuffle_f64x2(x, y, 0xDD));
}

/* The scores of one tile of eight rows (rows < 8: the missing rows read row 0 and are not
 * stored): with GROUP for the classes q0 .. q0 + nq (nq <= 8, the lanes of one vector), with
 * DOT for class qd by dot products along the rows (k = 1: DOT alone). Per eight columns:
 * the eight coefficient vectors of the group are loaded once for the tile, each row's eight
 * values are broadcast into one multiply-add each, and with DOT each row's eight values
 * are one vector times the class's eight coefficients. The tile's sums stay in registers
 * (8 or 16), then the group's are transposed to class-major. Asks for *pf_left lines from
 * *pf, one per row step. */
static inline __attribute__((always_inline)) void fgd_score_group_tile_d(
    const double *restrict x, ptrdiff_t d, int rows, const double *restrict Wg, ptrdiff_t ldw, int nq, ptrdiff_t q0,
    ptrdiff_t qd, const double *restrict Wt, const double *restrict b, double *restrict z, ptrdiff_t ldz,
    const int GROUP, const int DOT, const char **pf, ptrdiff_t *pf_left)
{
    __m512d az[8], ad[8];
    const double *xr[8];
    __mmask8 cm = (__mmask8)((1u << nq) - 1);
    const char *p = *pf;
    ptrdiff_t left = *pf_left;
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) {
        az[r] = _mm512_setzero_pd();
        ad[r] = _mm512_setzero_pd();
        xr[r] = x + (r < rows ? r : 0) * d;
    }
    const double *wdot = DOT ? Wt + qd * d : NULL;
    ptrdiff_t j = 0;
    for (; j + 8 <= d; j += 8) {
        __m512d wv[8], wd = _mm512_setzero_pd();
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            wv[t] = GROUP ? _mm512_maskz_loadu_pd(cm, Wg + (j + t) * ldw) : _mm512_setzero_pd();
        if (DOT)
            wd = _mm512_loadu_pd(wdot + j);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            if (left > 0) {
                __builtin_prefetch(p, 0, FGD_PF_LOC);
                p += 64;
                left--;
            }
            const double *xj = xr[r] + j;
            if (DOT)
                ad[r] = _mm512_fmadd_pd(_mm512_loadu_pd(xj), wd, ad[r]);
            if (GROUP) {
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++)
                    az[r] = _mm512_fmadd_pd(_mm512_set1_pd(xj[t]), wv[t], az[r]);
            }
        }
    }
    if (j < d) {
        int dt = (int)(d - j);
        __mmask8 jm = (__mmask8)((1u << dt) - 1);
        __m512d wd = DOT ? _mm512_maskz_loadu_pd(jm, wdot + j) : _mm512_setzero_pd();
        for (int t = 0; GROUP && t < dt; t++) {
            __m512d wv = _mm512_maskz_loadu_pd(cm, Wg + (j + t) * ldw);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++)
                az[r] = _mm512_fmadd_pd(_mm512_set1_pd(xr[r][j + t]), wv, az[r]);
        }
        if (DOT) {
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++)
                ad[r] = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(jm, xr[r] + j), wd, ad[r]);
        }
    }
    __mmask8 rm = (__mmask8)((1u << rows) - 1);
    __m512d o[8];
    fgd_transpose8_d(az, o);
    for (int q = 0; GROUP && q < nq; q++)
        _mm512_mask_storeu_pd(z + (q0 + q) * ldz, rm, _mm512_add_pd(o[q], _mm512_set1_pd(b[q0 + q])));
    if (DOT)
        _mm512_mask_storeu_pd(z + qd * ldz, rm, _mm512_add_pd(fgd_lane_sums8_d(ad), _mm512_set1_pd(b[qd])));
    *pf = p;
    *pf_left = left;
}


/* ---- float32: eight classes by two columns a vector ---- */

/* The float32 tile: as fgd_score_group_tile_d, with a vector holding eight classes by two
 * columns (lanes 2 c and 2 c + 1: class c at columns j and j + 1), so that one broadcast
 * of a row's two values (loaded as one 64-bit value) feeds sixteen useful lanes; the
 * class's two column sums are added at the end. The dot class takes sixteen columns a
 * vector.
 *
 * The multiply-adds go column by column, the eight rows' side by side (row by row, each
 * row's eight waited on one another). At the end each class's two sums are added for two
 * rows at once (one in-lane shuffle pair and an add for two rows), the 128-bit lanes of
 * the four results transposed, and each vector split into its two classes' eight rows by
 * one permute; the dot class's lane sums pair rows by 256-bit halves, then by 128-bit
 * lanes. These took 24 shuffles of an 8 x 8 transpose, a pair sum and a two-operation
 * narrowing per class, and 22 shuffle-port operations of horizontal adds for the dot
 * class. C harness, one core, 2M x 64 rows' blocks in L2, nine classes: 11.0-11.3 ->
 * 9.5-9.8 ns a row (the column order alone 10.3-10.7). */
static inline __attribute__((always_inline)) void fgd_score_group_tile_f(
    const float *restrict x, ptrdiff_t d, int rows, const float *restrict Wg, ptrdiff_t ldw, int nq, ptrdiff_t q0,
    ptrdiff_t qd, const float *restrict Wt, const double *restrict b, float *restrict z, ptrdiff_t ldz,
    const int GROUP, const int DOT, const char **pf, ptrdiff_t *pf_left)
{
    __m512 az[8], ad[8];
    const float *xr[8];
    const char *p = *pf;
    ptrdiff_t left = *pf_left;
#pragma GCC unroll 8
    for (int r = 0; r < 8; r++) {
        az[r] = _mm512_setzero_ps();
        ad[r] = _mm512_setzero_ps();
        xr[r] = x + (r < rows ? r : 0) * d;
    }
    const float *wdot = DOT ? Wt + qd * d : NULL;
    ptrdiff_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m512 wv[8], wd = _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++)
            wv[t] = GROUP ? _mm512_loadu_ps(Wg + (j / 2 + t) * ldw) : _mm512_setzero_ps();
        if (DOT)
            wd = _mm512_loadu_ps(wdot + j);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            if (left > 0) {
                __builtin_prefetch(p, 0, FGD_PF_LOC);
                p += 64;
                left--;
            }
            if (DOT)
                ad[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xr[r] + j), wd, ad[r]);
        }
        if (GROUP) {
#pragma GCC unroll 8
            for (int t = 0; t < 8; t++)
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) {
                    double pair;
                    memcpy(&pair, xr[r] + j + 2 * t, sizeof pair);
                    az[r] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(pair)), wv[t], az[r]);
                }
        }
    }
    if (j < d) {
        int dt = (int)(d - j);
        __mmask16 jm = (__mmask16)((1u << dt) - 1);
        if (GROUP) {
            int t = 0;
            for (; 2 * t + 1 < dt; t++) {
                __m512 wv = _mm512_loadu_ps(Wg + (j / 2 + t) * ldw);
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) {
                    double pair;
                    memcpy(&pair, xr[r] + j + 2 * t, sizeof pair);
                    az[r] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(pair)), wv, az[r]);
                }
            }
            if (2 * t < dt) { /* the last column alone: its pair's second coefficients are 0 */
                __m512 wv = _mm512_loadu_ps(Wg + (j / 2 + t) * ldw);
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++)
                    az[r] = _mm512_fmadd_ps(_mm512_set1_ps(xr[r][j + 2 * t]), wv, az[r]);
            }
        }
        if (DOT) {
            __m512 wd = _mm512_maskz_loadu_ps(jm, wdot + j);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++)
                ad[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(jm, xr[r] + j), wd, ad[r]);
        }
    }
    __mmask16 rm = (__mmask16)((1u << rows) - 1);
    if (GROUP) {
        /* each class's two column sums added across pairs of rows: P[h] holds, in 128-bit
         * lane L, classes 2 L, 2 L + 1 of rows 2 h and 2 h + 1 */
        __m512 P[4];
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++)
            P[h] = _mm512_add_ps(_mm512_shuffle_ps(az[2 * h], az[2 * h + 1], 0x88),
                                 _mm512_shuffle_ps(az[2 * h], az[2 * h + 1], 0xDD));
        /* the 4 x 4 transpose of 128-bit lanes: Q[L], classes 2 L, 2 L + 1 of all rows */
        __m512 t0 = _mm512_shuffle_f32x4(P[0], P[1], 0x44), t1 = _mm512_shuffle_f32x4(P[0], P[1], 0xEE);
        __m512 t2 = _mm512_shuffle_f32x4(P[2], P[3], 0x44), t3 = _mm512_shuffle_f32x4(P[2], P[3], 0xEE);
        __m512 Q[4] = {_mm512_shuffle_f32x4(t0, t2, 0x88), _mm512_shuffle_f32x4(t0, t2, 0xDD),
                       _mm512_shuffle_f32x4(t1, t3, 0x88), _mm512_shuffle_f32x4(t1, t3, 0xDD)};
        const __m512i split = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 4
        for (int L = 0; L < 4; L++) {
            int c = 2 * L;
            if (c >= nq)
                break;
            __m512 bias = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps((float)b[q0 + c]),
                                               _mm512_set1_ps(c + 1 < nq ? (float)b[q0 + c + 1] : 0.0f));
            __m512 v = _mm512_add_ps(_mm512_permutexvar_ps(split, Q[L]), bias);
            _mm512_mask_storeu_ps(z + (q0 + c) * ldz, rm, v);
            if (c + 1 < nq && ldz >= 8) /* the last eight lanes, stored eight elements early */
                _mm512_mask_storeu_ps(z + (q0 + c + 1) * ldz - 8, (__mmask16)(rm << 8), v);
            else if (c + 1 < nq)
                _mm512_mask_storeu_ps(z + (q0 + c + 1) * ldz, rm, _mm512_shuffle_f32x4(v, v, 0x4E));
        }
    }
    if (DOT) { /* S[h]: row 2 h's 256-bit halves summed, then row 2 h + 1's; T: four rows each */
        __m512 S[4];
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++)
            S[h] = _mm512_add_ps(_mm512_shuffle_f32x4(ad[2 * h], ad[2 * h + 1], 0x44),
                                 _mm512_shuffle_f32x4(ad[2 * h], ad[2 * h + 1], 0xEE));
        __m512 T0 = _mm512_add_ps(_mm512_shuffle_f32x4(S[0], S[1], 0x88), _mm512_shuffle_f32x4(S[0], S[1], 0xDD));
        __m512 T1 = _mm512_add_ps(_mm512_shuffle_f32x4(S[2], S[3], 0x88), _mm512_shuffle_f32x4(S[2], S[3], 0xDD));
        __m512 V = _mm512_add_ps(_mm512_shuffle_ps(T0, T1, 0x44), _mm512_shuffle_ps(T0, T1, 0xEE));
        V = _mm512_add_ps(V, _mm512_shuffle_ps(V, V, 0xB1));
        /* lane L: row L's sum at element 4 L, row L + 4's at 4 L + 2 */
        const __m512i rows8 = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
        __m512 s = _mm512_add_ps(_mm512_permutexvar_ps(rows8, V), _mm512_set1_ps((float)b[qd]));
        _mm512_mask_storeu_ps(z + qd * ldz, rm, s);
    }
    *pf = p;
    *pf_left = left;
}

#endif

/* The tile loop over a block and the dispatch, once per dtype (fastgd_score_groups_impl.h):
 * the group's coefficients at FGD_GROUP_W(W, g, k, d), rows FGD_GROUP_LDW(k) apart. */
#define FGD_T double
#define FGD_NAME(name) name##_d
#define FGD_GROUP_W(W, g, k, d) ((W) + 8 * (g))
#define FGD_GROUP_LDW(k) (k)
#define FGD_SCORE_BY_ROWS 0
#include "fastgd_score_groups_impl.h"
#undef FGD_T
#undef FGD_NAME
#undef FGD_GROUP_W
#undef FGD_GROUP_LDW
#undef FGD_SCORE_BY_ROWS
#define FGD_T float
#define FGD_NAME(name) name##_f
#define FGD_GROUP_W(W, g, k, d) ((W) + (g) * (((d) + 1) / 2) * 16)
#define FGD_GROUP_LDW(k) 16
#define FGD_SCORE_BY_ROWS FGD_SCORE_ROWS_F
#include "fastgd_score_groups_impl.h"
#undef FGD_T
#undef FGD_NAME
#undef FGD_GROUP_W
#undef FGD_GROUP_LDW
#undef FGD_SCORE_BY_ROWS

#endif
