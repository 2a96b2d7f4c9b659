/* One dtype's tiled block products; see fastgd_tiles.h. Needs FGD_T and FGD_NAME. */

#if FGD_VEC_BYTES
typedef FGD_T FGD_NAME(fgd_svec) __attribute__((vector_size(FGD_SCORES_VEC_BYTES)));
typedef FGD_T FGD_NAME(fgd_vec) __attribute__((vector_size(FGD_VEC_BYTES)));
#endif

/* ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m, q < k; X (m, d) and Wt (k, d) row-major.
 * The dot products are summed in FGD_T, the bias added in double, the scores stored in
 * FGD_T (the softmax steps that follow run in X's dtype). */
FGD_SCORES_ATTR static void FGD_NAME(fgd_class_scores_tiles)(
    const FGD_T *restrict X, const FGD_T *restrict Wt, const double *restrict b,
    ptrdiff_t m, ptrdiff_t d, ptrdiff_t k, ptrdiff_t ldz, FGD_T *restrict ZT)
{
    ptrdiff_t i = 0, q, j;
    for (; i + 4 <= m; i += 4) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        for (q = 0; q + 4 <= k; q += 4) {
            const FGD_T *w0 = Wt + q * d, *w1 = w0 + d, *w2 = w1 + d, *w3 = w2 + d;
            FGD_T a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
            FGD_T a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
            j = 0;
#if FGD_VEC_BYTES
            {
                typedef FGD_NAME(fgd_svec) V;
                enum { L = sizeof(V) / sizeof(FGD_T) };
                V s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
                V s20 = {0}, s21 = {0}, s22 = {0}, s23 = {0}, s30 = {0}, s31 = {0}, s32 = {0}, s33 = {0};
                for (; j + L <= d; j += L) {
                    V u0, u1, u2, u3, v0, v1, v2, v3;
                    memcpy(&u0, w0 + j, sizeof(V)); memcpy(&u1, w1 + j, sizeof(V));
                    memcpy(&u2, w2 + j, sizeof(V)); memcpy(&u3, w3 + j, sizeof(V));
                    memcpy(&v0, x0 + j, sizeof(V)); memcpy(&v1, x1 + j, sizeof(V));
                    memcpy(&v2, x2 + j, sizeof(V)); memcpy(&v3, x3 + j, sizeof(V));
                    FGD_IN_REGISTER(u0); FGD_IN_REGISTER(u1); FGD_IN_REGISTER(u2); FGD_IN_REGISTER(u3);
                    FGD_IN_REGISTER(v0); FGD_IN_REGISTER(v1); FGD_IN_REGISTER(v2); FGD_IN_REGISTER(v3);
                    s00 += v0 * u0; s01 += v0 * u1; s02 += v0 * u2; s03 += v0 * u3;
                    s10 += v1 * u0; s11 += v1 * u1; s12 += v1 * u2; s13 += v1 * u3;
                    s20 += v2 * u0; s21 += v2 * u1; s22 += v2 * u2; s23 += v2 * u3;
                    s30 += v3 * u0; s31 += v3 * u1; s32 += v3 * u2; s33 += v3 * u3;
                }
#if FGD_REDUCE4
                if (j == d) {
                    FGD_T *z0 = ZT + q * ldz + i;
                    FGD_NAME(fgd_reduce4)(s00, s10, s20, s30, b[q], z0);
                    FGD_NAME(fgd_reduce4)(s01, s11, s21, s31, b[q + 1], z0 + ldz);
                    FGD_NAME(fgd_reduce4)(s02, s12, s22, s32, b[q + 2], z0 + 2 * ldz);
                    FGD_NAME(fgd_reduce4)(s03, s13, s23, s33, b[q + 3], z0 + 3 * ldz);
                    continue;
                }
#endif
                for (int l = 0; l < L; l++) {
                    a00 += s00[l]; a01 += s01[l]; a02 += s02[l]; a03 += s03[l];
                    a10 += s10[l]; a11 += s11[l]; a12 += s12[l]; a13 += s13[l];
                    a20 += s20[l]; a21 += s21[l]; a22 += s22[l]; a23 += s23[l];
                    a30 += s30[l]; a31 += s31[l]; a32 += s32[l]; a33 += s33[l];
                }
            }
#endif
            for (; j < d; j++) {
                FGD_T u0 = w0[j], u1 = w1[j], u2 = w2[j], u3 = w3[j];
                FGD_T v0 = x0[j], v1 = x1[j], v2 = x2[j], v3 = x3[j];
                a00 += v0 * u0; a01 += v0 * u1; a02 += v0 * u2; a03 += v0 * u3;
                a10 += v1 * u0; a11 += v1 * u1; a12 += v1 * u2; a13 += v1 * u3;
                a20 += v2 * u0; a21 += v2 * u1; a22 += v2 * u2; a23 += v2 * u3;
                a30 += v3 * u0; a31 += v3 * u1; a32 += v3 * u2; a33 += v3 * u3;
            }
            FGD_T *z0 = ZT + q * ldz + i, *z1 = z0 + ldz, *z2 = z1 + ldz, *z3 = z2 + ldz;
            z0[0] = a00 + b[q]; z0[1] = a10 + b[q]; z0[2] = a20 + b[q]; z0[3] = a30 + b[q];
            z1[0] = a01 + b[q + 1]; z1[1] = a11 + b[q + 1]; z1[2] = a21 + b[q + 1]; z1[3] = a31 + b[q + 1];
            z2[0] = a02 + b[q + 2]; z2[1] = a12 + b[q + 2]; z2[2] = a22 + b[q + 2]; z2[3] = a32 + b[q + 2];
            z3[0] = a03 + b[q + 3]; z3[1] = a13 + b[q + 3]; z3[2] = a23 + b[q + 3]; z3[3] = a33 + b[q + 3];
        }
        for (; q < k; q++) {
            const FGD_T *w0 = Wt + q * d;
            FGD_T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            j = 0;
#if FGD_REDUCE4
            if (d % (FGD_SCORES_VEC_BYTES / sizeof(FGD_T)) == 0) {
                typedef FGD_NAME(fgd_svec) V;
                enum { L = sizeof(V) / sizeof(FGD_T) };
                V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
                for (; j < d; j += L) {
                    V u, v0, v1, v2, v3;
                    memcpy(&u, w0 + j, sizeof(V));
                    memcpy(&v0, x0 + j, sizeof(V)); memcpy(&v1, x1 + j, sizeof(V));
                    memcpy(&v2, x2 + j, sizeof(V)); memcpy(&v3, x3 + j, sizeof(V));
                    s0 += v0 * u; s1 += v1 * u; s2 += v2 * u; s3 += v3 * u;
                }
                FGD_NAME(fgd_reduce4)(s0, s1, s2, s3, b[q], ZT + q * ldz + i);
                continue;
            }
#endif
            for (; j < d; j++) {
                FGD_T u = w0[j];
                a0 += x0[j] * u; a1 += x1[j] * u; a2 += x2[j] * u; a3 += x3[j] * u;
            }
            FGD_T *z = ZT + q * ldz + i;
            z[0] = a0 + b[q]; z[1] = a1 + b[q]; z[2] = a2 + b[q]; z[3] = a3 + b[q];
        }
    }
    for (; i < m; i++) {
        const FGD_T *x0 = X + i * d;
        for (q = 0; q < k; q++) {
            const FGD_T *w0 = Wt + q * d;
            FGD_T a0 = 0;
            for (j = 0; j < d; j++)
                a0 += x0[j] * w0[j];
            ZT[q * ldz + i] = a0 + b[q];
        }
    }
}

#if FGD_PANELS
/* One panel of the gradient update: Gb[q][j .. j + J L) += the sum over i < m of
 * RT[q * ldr + i] X[i][j .. j + J L) for q < Q, Q and J compile-time constants: the J vectors
 * of a row's columns are loaded once for all Q classes, and the Q J vector sums stay in
 * registers over all m rows, added to Gb once. TAIL: the panel's columns end before
 * j + J L (the masks; masked loads do not touch memory outside them). LDR, where not 0, is
 * ldr as a compile-time constant: the Q residuals of a row are then loaded at fixed offsets
 * from one pointer (with ldr known only at run time gcc keeps a pointer per class, more than
 * the free registers, and moved them in and out of vector registers at every row: 2M x 64
 * float32, k = 10, 39.2 -> 37.1 ms). Rows i < pf_rows each ask for pf_step bytes from pf. */
static inline __attribute__((always_inline)) void FGD_NAME(fgd_panel)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t ldr,
    FGD_T *restrict Gb, const int Q, const int J, const int TAIL, const ptrdiff_t LDR, const FGD_MASK *mask,
    const char *pf, ptrdiff_t pf_rows, ptrdiff_t pf_step)
{
    enum { L = 64 / sizeof(FGD_T) };
    if (LDR)
        ldr = LDR;
    FGD_V a[FGD_PANEL_SUMS_MAX], v[FGD_PANEL_VECS_MAX];
#pragma GCC unroll 32
    for (int t = 0; t < Q * J; t++)
        a[t] = FGD_VZERO();
    const FGD_T *x = X;
    for (ptrdiff_t i = 0; i < m; i++, x += d) {
#pragma GCC unroll 8
        for (int u = 0; u < J; u++)
            v[u] = TAIL ? FGD_VMASKLOAD(mask[u], x + u * L) : FGD_VLOAD(x + u * L);
        if (i < pf_rows)
            fgd_prefetch(pf + i * pf_step, pf_step);
#pragma GCC unroll 16
        for (int q = 0; q < Q; q++) {
            FGD_V c = FGD_VSET1(RT[q * ldr + i]);
#pragma GCC unroll 8
            for (int u = 0; u < J; u++)
                a[q * J + u] = FGD_VFMA(c, v[u], a[q * J + u]);
        }
    }
#pragma GCC unroll 16
    for (int q = 0; q < Q; q++) {
#pragma GCC unroll 8
        for (int u = 0; u < J; u++) {
            FGD_T *g = Gb + q * d + u * L;
            if (TAIL)
                FGD_VMASKSTORE(g, mask[u], FGD_VADD(FGD_VMASKLOAD(mask[u], g), a[q * J + u]));
            else
                FGD_VSTORE(g, FGD_VADD(FGD_VLOAD(g), a[q * J + u]));
        }
    }
}

/* Vectors of columns per panel for Q classes: as many as keep the Q J sums within the
 * registers, so that few classes still have enough multiply-adds per load of X. */
#define FGD_PANEL_VECS(Q) ((Q) <= 6 ? 4 : 2)  /* at most FGD_PANEL_VECS_MAX */

/* The panels of one group of Q classes (rows q0 .. q0 + Q of RT and Gb) across all d
 * columns; *pf moves on by the prefetches asked for. */
static inline __attribute__((always_inline)) void FGD_NAME(fgd_panel_group)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t ldr,
    FGD_T *restrict Gb, const int Q, const char **pf, const char *pf_end, ptrdiff_t pf_lines, ptrdiff_t pf_step)
{
    enum { L = 64 / sizeof(FGD_T) };
    const int J = FGD_PANEL_VECS(Q);
    for (ptrdiff_t j = 0; j < d; j += J * L) {
        ptrdiff_t pf_rows = (pf_end - *pf) / pf_step;
        pf_rows = pf_rows < m ? pf_rows : m;
        pf_rows = pf_rows < pf_lines * 64 / pf_step ? pf_rows : pf_lines * 64 / pf_step;
        if (d - j >= J * L) {
            if (ldr == FGD_PANEL_LDR)
                FGD_NAME(fgd_panel)(X + j, RT, m, d, ldr, Gb + j, Q, J, 0, FGD_PANEL_LDR, NULL, *pf, pf_rows, pf_step);
            else
                FGD_NAME(fgd_panel)(X + j, RT, m, d, ldr, Gb + j, Q, J, 0, 0, NULL, *pf, pf_rows, pf_step);
        } else {
            FGD_MASK mask[FGD_PANEL_VECS_MAX];
            for (int u = 0; u < J; u++) {
                ptrdiff_t left = d - j - u * L;
                mask[u] = (FGD_MASK)(left >= L ? ~0ULL : left <= 0 ? 0ULL : (1ULL << left) - 1);
            }
            FGD_NAME(fgd_panel)(X + j, RT, m, d, ldr, Gb + j, Q, J, 1, 0, mask, *pf, pf_rows, pf_step);
        }
        *pf += pf_rows * pf_step;
    }
}

#define FGD_PANEL_CASE(n) case n: FGD_NAME(fgd_panel_group)(X, RT + q0 * ldr, m, d, ldr, Gb + q0 * d, n, &pf, pf_end, pf_lines, pf_step); break;

/* Gb[q] += the sum over i < m of RT[q * ldr + i] X[i] for q < k, X (m, d) and Gb (k, d)
 * row-major; asks for the ahead_bytes from ahead (the next block's rows) on the way, an
 * equal share in each panel, spread over its rows. Panels of J vectors of columns by Q
 * classes: the k classes in as few groups of at most FGD_PANEL_CLASSES_MAX as will do, their
 * sizes differing by one at most.
 * Per row of a panel: J loads of X, Q broadcasts of residuals and Q J multiply-adds, all
 * sums in registers. The four-by-four tiles load and store four rows of Gb at every step
 * along d: 2M x 64, k = 10, in one process, float64 73 -> 66 ms, float32 43 -> 37 ms. */
FGD_ACCUMULATE_ATTR static void FGD_NAME(fgd_class_accumulate_panels)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
    ptrdiff_t ldr, FGD_T *restrict Gb, const void *ahead, ptrdiff_t ahead_bytes)
{
    enum { L = 64 / sizeof(FGD_T) };
    ptrdiff_t groups = (k + FGD_PANEL_CLASSES_MAX - 1) / FGD_PANEL_CLASSES_MAX;
    ptrdiff_t base = k / groups, bigger = k % groups; /* the first `bigger` groups: base + 1 */
    ptrdiff_t panels = 0;
    for (ptrdiff_t g = 0; g < groups; g++) {
        ptrdiff_t width = FGD_PANEL_VECS(base + (g < bigger)) * L;
        panels += (d + width - 1) / width;
    }
    ptrdiff_t lines = (ahead_bytes + 63) / 64;
    ptrdiff_t pf_lines = m > 0 ? (lines + panels - 1) / panels : 0;
    ptrdiff_t pf_step = m > 0 && pf_lines > m ? (pf_lines + m - 1) / m * 64 : 64;
    const char *pf = (const char *)ahead, *pf_end = pf + lines * 64;
    ptrdiff_t q0 = 0;
    for (ptrdiff_t g = 0; g < groups; g++) {
        int n = (int)(base + (g < bigger));
        switch (n) {
            FGD_PANEL_CASE(1) FGD_PANEL_CASE(2) FGD_PANEL_CASE(3) FGD_PANEL_CASE(4)
            FGD_PANEL_CASE(5) FGD_PANEL_CASE(6) FGD_PANEL_CASE(7) FGD_PANEL_CASE(8)
            FGD_PANEL_CASE(9) FGD_PANEL_CASE(10) FGD_PANEL_CASE(11) FGD_PANEL_CASE(12)
        }
        q0 += n;
    }
}
#undef FGD_PANEL_CASE
#endif /* FGD_PANELS */

#if !FGD_PANELS
FGD_ACCUMULATE_ATTR static void FGD_NAME(fgd_class_accumulate_tiles)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
    ptrdiff_t ldr, FGD_T *restrict Gb, const void *ahead, ptrdiff_t ahead_bytes)
{
    ptrdiff_t i = 0, q, j;
    ptrdiff_t ahead_done = 0;
    /* Each tile of four classes, and the leftover classes as one more, asks for an equal
     * share of the next block's lines for four rows, so the requests keep pace with the
     * rows read whatever k is (at most FGD_AHEAD_LINES a tile). */
    ptrdiff_t tiles = (k + 3) / 4;
    ptrdiff_t step = (4 * d * (ptrdiff_t)sizeof(FGD_T) + 64 * tiles - 1) / (64 * tiles) * 64;
    if (step > FGD_AHEAD_LINES * 64)
        step = FGD_AHEAD_LINES * 64;
    for (; i + 4 <= m; i += 4) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        for (q = 0; q + 4 <= k; q += 4) {
            const FGD_T *r0 = RT + q * ldr + i, *r1 = r0 + ldr, *r2 = r1 + ldr, *r3 = r2 + ldr;
            FGD_T c00 = r0[0], c01 = r0[1], c02 = r0[2], c03 = r0[3];
            FGD_T c10 = r1[0], c11 = r1[1], c12 = r1[2], c13 = r1[3];
            FGD_T c20 = r2[0], c21 = r2[1], c22 = r2[2], c23 = r2[3];
            FGD_T c30 = r3[0], c31 = r3[1], c32 = r3[2], c33 = r3[3];
            if (ahead_done < ahead_bytes) {
                fgd_prefetch((const char *)ahead + ahead_done, step);
                ahead_done += step;
            }
            FGD_T *restrict g0 = Gb + q * d;
            FGD_T *restrict g1 = g0 + d;
            FGD_T *restrict g2 = g1 + d;
            FGD_T *restrict g3 = g2 + d;
            j = 0;
#if FGD_VEC_BYTES
            {
                typedef FGD_NAME(fgd_vec) V;
                enum { L = sizeof(V) / sizeof(FGD_T) };
                for (; j + L <= d; j += L) {
                    V v0, v1, v2, v3, a;
                    memcpy(&v0, x0 + j, sizeof(V)); memcpy(&v1, x1 + j, sizeof(V));
                    memcpy(&v2, x2 + j, sizeof(V)); memcpy(&v3, x3 + j, sizeof(V));
                    FGD_IN_REGISTER(v0); FGD_IN_REGISTER(v1); FGD_IN_REGISTER(v2); FGD_IN_REGISTER(v3);
                    memcpy(&a, g0 + j, sizeof(V)); a += (c00 * v0 + c01 * v1) + (c02 * v2 + c03 * v3); memcpy(g0 + j, &a, sizeof(V));
                    memcpy(&a, g1 + j, sizeof(V)); a += (c10 * v0 + c11 * v1) + (c12 * v2 + c13 * v3); memcpy(g1 + j, &a, sizeof(V));
                    memcpy(&a, g2 + j, sizeof(V)); a += (c20 * v0 + c21 * v1) + (c22 * v2 + c23 * v3); memcpy(g2 + j, &a, sizeof(V));
                    memcpy(&a, g3 + j, sizeof(V)); a += (c30 * v0 + c31 * v1) + (c32 * v2 + c33 * v3); memcpy(g3 + j, &a, sizeof(V));
                }
            }
#endif
            for (; j < d; j++) {
                FGD_T v0 = x0[j], v1 = x1[j], v2 = x2[j], v3 = x3[j];
                g0[j] += (c00 * v0 + c01 * v1) + (c02 * v2 + c03 * v3);
                g1[j] += (c10 * v0 + c11 * v1) + (c12 * v2 + c13 * v3);
                g2[j] += (c20 * v0 + c21 * v1) + (c22 * v2 + c23 * v3);
                g3[j] += (c30 * v0 + c31 * v1) + (c32 * v2 + c33 * v3);
            }
        }
        if (q < k && ahead_done < ahead_bytes) {
            fgd_prefetch((const char *)ahead + ahead_done, step);
            ahead_done += step;
        }
        for (; q < k; q++) {
            const FGD_T *r0 = RT + q * ldr + i;
            FGD_T c0 = r0[0], c1 = r0[1], c2 = r0[2], c3 = r0[3];
            FGD_T *restrict g0 = Gb + q * d;
            for (j = 0; j < d; j++)
                g0[j] += (c0 * x0[j] + c1 * x1[j]) + (c2 * x2[j] + c3 * x3[j]);
        }
    }
    for (; i < m; i++) {
        const FGD_T *x0 = X + i * d;
        for (q = 0; q < k; q++) {
            FGD_T c0 = RT[q * ldr + i];
            FGD_T *restrict g0 = Gb + q * d;
            for (j = 0; j < d; j++)
                g0[j] += c0 * x0[j];
        }
    }
}
#endif /* !FGD_PANELS */

/* Gb[q] += the sum over i < m of RT[q * ldr + i] X[i] for q < k (see the two above). */
static void FGD_NAME(fgd_class_accumulate)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
    ptrdiff_t ldr, FGD_T *restrict Gb, const void *ahead, ptrdiff_t ahead_bytes)
{
#if FGD_PANELS
    FGD_NAME(fgd_class_accumulate_panels)(X, RT, m, d, k, ldr, Gb, ahead, ahead_bytes);
#else
    FGD_NAME(fgd_class_accumulate_tiles)(X, RT, m, d, k, ldr, Gb, ahead, ahead_bytes);
#endif
}

/* z[i] = X[i] . w + b for i < m, one row at a time. Rows of four vectors or more: each
 * row's products summed in four vector sums, then across the lanes; gcc's own loop keeps
 * one vector sum, a chain of d / L multiply-adds each waiting on the one before (2M x 128
 * float64 logistic, in one process: 39.3 -> 31.7 ms, the read 28.9). Shorter rows: gcc's
 * loop (d = 9: 46.6 against 59.0 ms). 256-bit vectors, as the score tiles, and out of
 * line: on the Intel Xeon test VM (AVX-512) the 512-bit loop inlined into the Cython
 * chunk loop ran float64 2M x 64 logistic at 0.54 of the read, mse 0.62, 4M x 16 logistic
 * 0.41; with these 0.64, 0.70 and 0.47 (two builds A/B in one process; float32 unchanged,
 * 0.52-0.57). This function is where the block's rows first come from memory. */
FGD_ACCUMULATE_ATTR static void FGD_NAME(fgd_row_scores)(const FGD_T *restrict X, const FGD_T *restrict w, double b, ptrdiff_t m,
                                     ptrdiff_t d, double *restrict z)
{
    ptrdiff_t i, j;
#if FGD_VEC_BYTES
    if (d < 4 * (ptrdiff_t)(FGD_SCORES_VEC_BYTES / sizeof(FGD_T)))
#endif
    {
        for (i = 0; i < m; i++) {
            const FGD_T *x = X + i * d;
            FGD_T a = 0;
            for (j = 0; j < d; j++)
                a += x[j] * w[j];
            z[i] = (double)a + b;
        }
        return;
    }
    for (i = 0; i < m; i++) {
        const FGD_T *x = X + i * d;
        FGD_T a = 0;
        j = 0;
#if FGD_VEC_BYTES
        typedef FGD_NAME(fgd_svec) V;
        enum { L = sizeof(V) / sizeof(FGD_T) };
        V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        for (; j + 4 * L <= d; j += 4 * L) {
            V u0, u1, u2, u3, v0, v1, v2, v3;
            memcpy(&u0, w + j, sizeof(V)); memcpy(&u1, w + j + L, sizeof(V));
            memcpy(&u2, w + j + 2 * L, sizeof(V)); memcpy(&u3, w + j + 3 * L, sizeof(V));
            memcpy(&v0, x + j, sizeof(V)); memcpy(&v1, x + j + L, sizeof(V));
            memcpy(&v2, x + j + 2 * L, sizeof(V)); memcpy(&v3, x + j + 3 * L, sizeof(V));
            s0 += v0 * u0; s1 += v1 * u1; s2 += v2 * u2; s3 += v3 * u3;
        }
        for (; j + L <= d; j += L) {
            V u0, v0;
            memcpy(&u0, w + j, sizeof(V)); memcpy(&v0, x + j, sizeof(V));
            s0 += v0 * u0;
        }
        s0 = (s0 + s1) + (s2 + s3);
        for (int l = 0; l < L; l++)
            a += s0[l];
#endif
        for (; j < d; j++)
            a += x[j] * w[j];
        z[i] = (double)a + b;
    }
}

/* z[i] = X[i] . w + b for the rows i < m that come in groups of four, each vector of w
 * loaded once (and pinned to a register) for four rows. Returns the rows done (0 without
 * the explicit vectors); the caller's one-row loop takes the rest. For rows whose w does
 * not stay in the L1 cache beside them (see the caller). */
static ptrdiff_t FGD_NAME(fgd_row_scores4)(const FGD_T *restrict X, const FGD_T *restrict w, double b,
                                      ptrdiff_t m, ptrdiff_t d, double *restrict z)
{
    ptrdiff_t i = 0, j;
#if FGD_VEC_BYTES
    typedef FGD_NAME(fgd_svec) V;
    enum { L = sizeof(V) / sizeof(FGD_T) };
    for (; i + 4 <= m; i += 4) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        for (j = 0; j + L <= d; j += L) {
            V u, v0, v1, v2, v3;
            memcpy(&u, w + j, sizeof(V));
            FGD_IN_REGISTER(u);
            memcpy(&v0, x0 + j, sizeof(V)); memcpy(&v1, x1 + j, sizeof(V));
            memcpy(&v2, x2 + j, sizeof(V)); memcpy(&v3, x3 + j, sizeof(V));
            s0 += v0 * u; s1 += v1 * u; s2 += v2 * u; s3 += v3 * u;
        }
        FGD_T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int l = 0; l < L; l++) {
            a0 += s0[l]; a1 += s1[l]; a2 += s2[l]; a3 += s3[l];
        }
        for (; j < d; j++) {
            a0 += x0[j] * w[j]; a1 += x1[j] * w[j]; a2 += x2[j] * w[j]; a3 += x3[j] * w[j];
        }
        z[i] = (double)a0 + b; z[i + 1] = (double)a1 + b; z[i + 2] = (double)a2 + b; z[i + 3] = (double)a3 + b;
    }
#else
    (void)X; (void)w; (void)b; (void)m; (void)d; (void)z; (void)j;
#endif
    return i;
}

/* gb += X[:m].T @ r[:m] for the mse/logistic kernels, X (m, d) row-major: eight rows per
 * pass over gb where the block has them, then four, then one (for wide rows, d = 5,000, gb
 * does not stay in the L1 cache, and each pass loads and stores all of it). */
FGD_ACCUMULATE_ATTR static void FGD_NAME(fgd_row_accumulate)(
    const FGD_T *restrict X, const FGD_T *restrict r, ptrdiff_t m, ptrdiff_t d, FGD_T *restrict gb)
{
    ptrdiff_t i = 0, j;
    for (; i + 8 <= m; i += 8) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        const FGD_T *x4 = x3 + d, *x5 = x4 + d, *x6 = x5 + d, *x7 = x6 + d;
        FGD_T r0 = r[i], r1 = r[i + 1], r2 = r[i + 2], r3 = r[i + 3];
        FGD_T r4 = r[i + 4], r5 = r[i + 5], r6 = r[i + 6], r7 = r[i + 7];
        for (j = 0; j < d; j++)
            gb[j] += ((r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j]))
                     + ((r4 * x4[j] + r5 * x5[j]) + (r6 * x6[j] + r7 * x7[j]));
    }
    for (; i + 4 <= m; i += 4) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        FGD_T r0 = r[i], r1 = r[i + 1], r2 = r[i + 2], r3 = r[i + 3];
        for (j = 0; j < d; j++)
            gb[j] += (r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j]);
    }
    for (; i < m; i++) {
        const FGD_T *x0 = X + i * d;
        FGD_T r0 = r[i];
        for (j = 0; j < d; j++)
            gb[j] += r0 * x0[j];
    }
}
