/* One dtype's tiled block products; see fastgd_tiles.h. Needs FGD_T and FGD_NAME. */

/* ZT[q * ldz + i] = X[i] . Wt[q] + b[q] for i < m, q < k; X (m, d) and Wt (k, d) row-major.
 * The dot products are summed in FGD_T, the scores stored as double. */
FGD_SCORES_ATTR static void FGD_NAME(fgd_class_scores)(
    const FGD_T *restrict X, const FGD_T *restrict Wt, const double *restrict b,
    ptrdiff_t m, ptrdiff_t d, ptrdiff_t k, ptrdiff_t ldz, double *restrict ZT)
{
    ptrdiff_t i = 0, q, j;
    for (; i + 4 <= m; i += 4) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        for (q = 0; q + 4 <= k; q += 4) {
            const FGD_T *w0 = Wt + q * d, *w1 = w0 + d, *w2 = w1 + d, *w3 = w2 + d;
            FGD_T a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
            FGD_T a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
            for (j = 0; j < d; j++) {
                FGD_T u0 = w0[j], u1 = w1[j], u2 = w2[j], u3 = w3[j];
                FGD_T v0 = x0[j], v1 = x1[j], v2 = x2[j], v3 = x3[j];
                a00 += v0 * u0; a01 += v0 * u1; a02 += v0 * u2; a03 += v0 * u3;
                a10 += v1 * u0; a11 += v1 * u1; a12 += v1 * u2; a13 += v1 * u3;
                a20 += v2 * u0; a21 += v2 * u1; a22 += v2 * u2; a23 += v2 * u3;
                a30 += v3 * u0; a31 += v3 * u1; a32 += v3 * u2; a33 += v3 * u3;
            }
            double *z0 = ZT + q * ldz + i, *z1 = z0 + ldz, *z2 = z1 + ldz, *z3 = z2 + ldz;
            z0[0] = a00 + b[q]; z0[1] = a10 + b[q]; z0[2] = a20 + b[q]; z0[3] = a30 + b[q];
            z1[0] = a01 + b[q + 1]; z1[1] = a11 + b[q + 1]; z1[2] = a21 + b[q + 1]; z1[3] = a31 + b[q + 1];
            z2[0] = a02 + b[q + 2]; z2[1] = a12 + b[q + 2]; z2[2] = a22 + b[q + 2]; z2[3] = a32 + b[q + 2];
            z3[0] = a03 + b[q + 3]; z3[1] = a13 + b[q + 3]; z3[2] = a23 + b[q + 3]; z3[3] = a33 + b[q + 3];
        }
        for (; q < k; q++) {
            const FGD_T *w0 = Wt + q * d;
            FGD_T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (j = 0; j < d; j++) {
                FGD_T u = w0[j];
                a0 += x0[j] * u; a1 += x1[j] * u; a2 += x2[j] * u; a3 += x3[j] * u;
            }
            double *z = ZT + q * ldz + i;
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

/* Gb[q] += sum_i RT[q * ldr + i] X[i] for i < m, q < k; X (m, d), Gb (k, d) row-major.
 * Meanwhile the cache lines of [ahead, ahead + ahead_bytes) (the next block of rows) are
 * asked for, FGD_AHEAD_LINES per tile (see fastgd_tiles.h). */
static inline void FGD_NAME(fgd_class_accumulate)(
    const FGD_T *restrict X, const FGD_T *restrict RT, ptrdiff_t m, ptrdiff_t d, ptrdiff_t k,
    ptrdiff_t ldr, FGD_T *restrict Gb, const void *ahead, ptrdiff_t ahead_bytes)
{
    ptrdiff_t i = 0, q, j;
    ptrdiff_t ahead_done = 0;
    for (; i + 4 <= m; i += 4) {
        const FGD_T *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        for (q = 0; q + 4 <= k; q += 4) {
            const FGD_T *r0 = RT + q * ldr + i, *r1 = r0 + ldr, *r2 = r1 + ldr, *r3 = r2 + ldr;
            FGD_T c00 = r0[0], c01 = r0[1], c02 = r0[2], c03 = r0[3];
            FGD_T c10 = r1[0], c11 = r1[1], c12 = r1[2], c13 = r1[3];
            FGD_T c20 = r2[0], c21 = r2[1], c22 = r2[2], c23 = r2[3];
            FGD_T c30 = r3[0], c31 = r3[1], c32 = r3[2], c33 = r3[3];
            if (ahead_done < ahead_bytes) {
                fgd_prefetch((const char *)ahead + ahead_done, FGD_AHEAD_LINES * 64);
                ahead_done += FGD_AHEAD_LINES * 64;
            }
            FGD_T *restrict g0 = Gb + q * d;
            FGD_T *restrict g1 = g0 + d;
            FGD_T *restrict g2 = g1 + d;
            FGD_T *restrict g3 = g2 + d;
            for (j = 0; j < d; j++) {
                FGD_T v0 = x0[j], v1 = x1[j], v2 = x2[j], v3 = x3[j];
                g0[j] += (c00 * v0 + c01 * v1) + (c02 * v2 + c03 * v3);
                g1[j] += (c10 * v0 + c11 * v1) + (c12 * v2 + c13 * v3);
                g2[j] += (c20 * v0 + c21 * v1) + (c22 * v2 + c23 * v3);
                g3[j] += (c30 * v0 + c31 * v1) + (c32 * v2 + c33 * v3);
            }
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
