/* The loops declared in fastgd_fused_rows.h (see there); fastgd_fused_rows_impl.h holds
 * them, included once per dtype. */
#include "fastgd_fused_rows.h"

#include <math.h>

#include "fastgd_narrow.h"
#include "fastgd_vecmath.h"

/* Rows between two moves of the gradient sums into float64 (and between two foldings of
 * the unweighted logistic products: each factor at most 2.4, so at most 2.4**64 = 2e24). */
#define FGD_FUSED_PART_ROWS 64

/* Each load of a row's vector asks for the line this far ahead, into L1 (prefetcht0), for
 * rows of nv vectors: 3 KB, but 2 KB for rows of one or two lines. Into L2 (prefetcht1)
 * lost logistic 0.1 of the read. With the requests one at a time, C harness and kernel in
 * one process, logistic unless said, of the read, 2 KB -> 3 KB: 2M x 64 float64
 * 0.88-0.90 -> 0.92, mse 0.90-0.92 -> 0.92-0.93; 1.28M x 100 float64 0.89 -> 0.91; 5M x
 * 24 float64 0.79 -> 0.88; 4M x 32 float64 0.85-0.87 -> 0.85-0.92; 2M x 64 float32 0.93
 * -> 1.01; 4M x 48 float32 0.82 -> 0.93; 500,000 x 256 float32 0.93 -> 0.98 (4 KB 1.02);
 * but two lines a row lost: 8M x 16 float64 0.81 -> 0.80 (4 KB 0.74), 4M x 32 float32
 * 0.86 -> 0.85 (4 KB 0.80). 1.5 KB was a little worse everywhere. */
#define FGD_FUSED_AHEAD_BYTES(nv) ((nv) <= 2 ? 2048 : 3072)

/* AMD Zen (FGD_ZEN, fastgd_vecmath.h) takes the steps otherwise: each row's vectors loaded
 * one row after the other for the scores (not the four rows' first vectors, then their
 * second ...), the gradient update reading the rows again from L1 instead of a stack array
 * (no stores of the rows at all), no requests for lines ahead and no pipelined steps. On
 * the 2-core AMD EPYC (Zen 4) test VM, 2M x 64 logistic, of the read (in-process runs, the
 * VM's read in its slow, ~33 GB/s state unless said): float64 0.54-0.69 -> 0.95-0.99
 * (0.83-0.92 with the read in its fast, ~55 GB/s state), float32 0.65 -> 0.93-0.96; 4M x
 * 32 float64 0.94-0.98, float32 0.95-0.97. In a C harness the order of the scores' loads
 * took rows of eight float64 vectors from 0.62 to 0.89-0.93, and the update from X with no
 * requests float32 rows of four vectors from 0.67 to 0.95-0.98; dropping the stores and
 * the pipelined steps then took float64 2M x 64 logistic, read in its fast state, from 28
 * to 21 ms. */

/* Rows of whole 64-byte lines are read in windows of one line each, wherever X starts
 * (fastgd_fused_rows_impl.h: NumPy's large arrays start 16 bytes past a line's start, so
 * every 64-byte load of a row would span two lines). On the 2-core AMD EPYC (Zen 4) VM, with
 * the read in its fast state (55-62 GB/s), the same 2M x 64 X copied to a line's start ran,
 * of the read, in one process: float64 mse 0.63-0.69 -> 0.84-0.90, logistic 0.64-0.70 ->
 * 0.76-0.82, float32 mse 0.69-0.71 -> 0.78-0.81 (the read itself the same). On the 2-core
 * Intel Xeon (Emerald Rapids) VM the windows cost nothing: 2M x 64, X 16 bytes past a line
 * against X at one, of the read, one process: float64 mse 1.01 / 1.01, logistic 1.00 / 1.00,
 * float32 mse 0.99 / 0.99, logistic 1.04 / 1.03. */
#define FGD_FUSED_SHIFT 1

#if defined(__GNUC__) && defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>
#include <stdint.h>

#define FGD_ALWAYS_INLINE inline __attribute__((always_inline))
/* p as a value the compiler cannot see through: loads from it stay in the loop */
#define FGD_HIDE(p) __asm__("" : "+r"(p))

/* A chunk's running sums (dz: of the residuals; p_sum, p_den: the part's unweighted
 * logistic products), X's row length and whether y holds uint8 labels (logistic);
 * fgd_logistic_rows4 keeps its four lanes' sums and products in vectors (vloss, vdz, vsum,
 * vden), which fgd_fold_vectors adds into the scalars once a part. Added up lane by lane at every step instead, 2M x 64 logistic took 0.02-0.03
 * of the read more (float64 0.835-0.838 -> 0.863-0.866, float32 0.834-0.848 -> 0.855-0.873;
 * A/B in one process, two runs each; d = 128 float64 and 256 float32 tied). */
typedef struct {
    double loss, dz, p_sum, p_den;
    ptrdiff_t d;
    int labels;
    __m256d vloss, vdz, vsum, vden;
} fgd_fused_sums;

/* fgd_logistic_row, unweighted, for four rows at once (one vector): the residuals r[q] =
 * sigmoid(z[q]) - y[q], and the loss terms and log1p factors into acc's vectors. The steps of
 * fgd_exp_ratio_nonpositive and fgd_logistic_row, lane by lane. */
static FGD_ALWAYS_INLINE void fgd_logistic_rows4(const double *z_in, const double *y_in, double *r_out,
                                                 fgd_fused_sums *acc)
{
    /* built in registers: four scalar stores then a vector load fail store forwarding */
    const __m256d z = _mm256_setr_pd(z_in[0], z_in[1], z_in[2], z_in[3]);
    const __m256d y = _mm256_setr_pd(y_in[0], y_in[1], y_in[2], y_in[3]);
    const __m256d zero = _mm256_setzero_pd();
    /* x = -|z| at least FGD_EXP_MIN (max returns its second operand, x, where x is NaN) */
    __m256d x = _mm256_max_pd(_mm256_set1_pd(FGD_EXP_MIN), _mm256_or_pd(z, _mm256_set1_pd(-0.0)));
    __m256d km = _mm256_fmadd_pd(x, _mm256_set1_pd(FGD_INV_LN2), _mm256_set1_pd(FGD_ROUND_MAGIC));
    __m256d k = _mm256_sub_pd(km, _mm256_set1_pd(FGD_ROUND_MAGIC));
    __m256d rr = _mm256_fnmadd_pd(k, _mm256_set1_pd(FGD_LN2_LO), _mm256_fnmadd_pd(k, _mm256_set1_pd(FGD_LN2_HI), x));
    __m256d s2 = _mm256_mul_pd(rr, rr);
    __m256d even = _mm256_fmadd_pd(
        _mm256_fmadd_pd(_mm256_fmadd_pd(_mm256_set1_pd(FGD_PADE_EVEN[0]), s2, _mm256_set1_pd(FGD_PADE_EVEN[1])),
                        s2, _mm256_set1_pd(FGD_PADE_EVEN[2])),
        s2, _mm256_set1_pd(FGD_PADE_EVEN[3]));
    __m256d odd = _mm256_mul_pd(
        rr, _mm256_fmadd_pd(_mm256_fmadd_pd(_mm256_set1_pd(FGD_PADE_ODD[0]), s2, _mm256_set1_pd(FGD_PADE_ODD[1])),
                            s2, _mm256_set1_pd(FGD_PADE_ODD[2])));
    /* 2**k: k + 1023 in the exponent bits (fgd_pow2) */
    __m256i bits = _mm256_slli_epi64(_mm256_add_epi64(_mm256_castpd_si256(km), _mm256_set1_epi64x(1023)), 52);
    __m256d num = _mm256_mul_pd(_mm256_add_pd(even, odd), _mm256_castsi256_pd(bits));
    __m256d den = _mm256_sub_pd(even, odd);
    __m256d t = _mm256_add_pd(num, den);
    __m256d nonneg = _mm256_cmp_pd(z, zero, _CMP_GE_OQ);
    __m256d r = _mm256_sub_pd(_mm256_div_pd(_mm256_blendv_pd(num, den, nonneg), t), y);
    __m256d loss = _mm256_fnmadd_pd(y, z, _mm256_max_pd(z, zero)); /* max(z, 0) - y z */
    _mm256_storeu_pd(r_out, r);
    acc->vloss = _mm256_add_pd(acc->vloss, loss);
    acc->vdz = _mm256_add_pd(acc->vdz, r);
    acc->vsum = _mm256_mul_pd(acc->vsum, t);
    acc->vden = _mm256_mul_pd(acc->vden, den);
}

/* The vectors' sums and products into acc's scalars; the vectors start again at 0 and 1. */
static FGD_ALWAYS_INLINE void fgd_fold_vectors(fgd_fused_sums *acc)
{
    double lv[4], zv[4], tv[4], dv[4];
    _mm256_storeu_pd(lv, acc->vloss);
    _mm256_storeu_pd(zv, acc->vdz);
    _mm256_storeu_pd(tv, acc->vsum);
    _mm256_storeu_pd(dv, acc->vden);
    acc->loss += (lv[0] + lv[1]) + (lv[2] + lv[3]);
    acc->dz += (zv[0] + zv[1]) + (zv[2] + zv[3]);
    acc->p_sum *= (tv[0] * tv[1]) * (tv[2] * tv[3]);
    acc->p_den *= (dv[0] * dv[1]) * (dv[2] * dv[3]);
    acc->vloss = acc->vdz = _mm256_setzero_pd();
    acc->vsum = acc->vden = _mm256_set1_pd(1.0);
}

/* Each dtype's loop is compiled twice: for rows of up to 8 vectors, and for 9 to 16 with
 * arrays twice the size. One copy sized for 16 ran the 8-vector rows slower (2M x 64 float64
 * logistic 0.82-0.83 -> 0.76-0.77 of the read, float32 mse 0.98-0.99 -> 0.91-0.95; harness,
 * same process, two runs; the cause is not known). */
#define FGD_T double
#define FGD_NAME(name) name##_d
#define FGD_VECS_LO 1
#define FGD_VECS_HI 8
#define FGD_V __m512d
#define FGD_LANES 8
#define FGD_MASK __mmask8
#define FGD_LOAD _mm512_loadu_pd
#define FGD_MASKZ_LOAD _mm512_maskz_loadu_pd
#define FGD_STORE _mm512_storeu_pd
#define FGD_ZERO _mm512_setzero_pd
#define FGD_SET1 _mm512_set1_pd
#define FGD_FMA _mm512_fmadd_pd
#define FGD_REDUCE _mm512_reduce_add_pd
/* float64 rows of five vectors or more pipeline their steps (see fastgd_fused_rows_impl.h);
 * float32 does not: with that case compiled in, its 2M x 64 steps (four vectors, not
 * pipelined themselves) ran slower, mse 0.99-1.00 -> 0.90, logistic 0.87-0.90 -> 0.79-0.82
 * of the read (harness, same process, two runs; the cause is not known). */
#define FGD_FUSED_PIPELINE 1
#include "fastgd_fused_rows_impl.h" /* rows of up to 8 vectors */
#undef FGD_NAME
#undef FGD_VECS_LO
#undef FGD_VECS_HI
#define FGD_NAME(name) name##_wide_d
#define FGD_VECS_LO 9
#define FGD_VECS_HI 16
#include "fastgd_fused_rows_impl.h" /* 9 to 16 vectors */
#undef FGD_T
#undef FGD_NAME
#undef FGD_VECS_LO
#undef FGD_VECS_HI
#undef FGD_V
#undef FGD_LANES
#undef FGD_MASK
#undef FGD_LOAD
#undef FGD_MASKZ_LOAD
#undef FGD_STORE
#undef FGD_ZERO
#undef FGD_SET1
#undef FGD_FMA
#undef FGD_REDUCE
#undef FGD_FUSED_PIPELINE

#define FGD_T float
#define FGD_NAME(name) name##_f
#define FGD_V __m512
#define FGD_LANES 16
#define FGD_MASK __mmask16
#define FGD_LOAD _mm512_loadu_ps
#define FGD_MASKZ_LOAD _mm512_maskz_loadu_ps
#define FGD_STORE _mm512_storeu_ps
#define FGD_ZERO _mm512_setzero_ps
#define FGD_SET1 _mm512_set1_ps
#define FGD_FMA _mm512_fmadd_ps
#define FGD_REDUCE _mm512_reduce_add_ps
#define FGD_FUSED_PIPELINE 0
#define FGD_VECS_LO 1
#define FGD_VECS_HI 8
#include "fastgd_fused_rows_impl.h"
#undef FGD_NAME
#undef FGD_VECS_LO
#undef FGD_VECS_HI
#define FGD_NAME(name) name##_wide_f
#define FGD_VECS_LO 9
#define FGD_VECS_HI 16
#include "fastgd_fused_rows_impl.h"

int fgd_fused_rows_d(const double *X, const void *y, const double *sw, const double *w, double b, int logistic,
                     int labels,
                     ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum)
{
    return fgd_fused_range_d(X, y, sw, w, b, logistic, labels, lo, hi, d, g, dz_sum, loss_sum) ||
           fgd_fused_range_wide_d(X, y, sw, w, b, logistic, labels, lo, hi, d, g, dz_sum, loss_sum);
}

int fgd_fused_rows_f(const float *X, const void *y, const float *sw, const float *w, double b, int logistic,
                     int labels,
                     ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum)
{
    return fgd_fused_range_f(X, y, sw, w, b, logistic, labels, lo, hi, d, g, dz_sum, loss_sum) ||
           fgd_fused_range_wide_f(X, y, sw, w, b, logistic, labels, lo, hi, d, g, dz_sum, loss_sum);
}

#else /* no AVX-512: the block kernel takes every d */

int fgd_fused_rows_d(const double *X, const void *y, const double *sw, const double *w, double b, int logistic,
                     int labels,
                     ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum)
{
    (void)X, (void)y, (void)sw, (void)w, (void)b, (void)logistic, (void)labels, (void)lo, (void)hi, (void)d, (void)g;
    (void)dz_sum, (void)loss_sum;
    return 0;
}

int fgd_fused_rows_f(const float *X, const void *y, const float *sw, const float *w, double b, int logistic,
                     int labels,
                     ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t d, double *g, double *dz_sum, double *loss_sum)
{
    (void)X, (void)y, (void)sw, (void)w, (void)b, (void)logistic, (void)labels, (void)lo, (void)hi, (void)d, (void)g;
    (void)dz_sum, (void)loss_sum;
    return 0;
}
#endif
