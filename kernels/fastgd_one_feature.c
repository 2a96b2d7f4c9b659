/* The loops declared in fastgd_one_feature.h (see there). */
#include "fastgd_one_feature.h"

#include <math.h>
#include <stdint.h>

#include "fastgd_vecmath.h"

/* Bytes of x per part: the rows between two foldings of the log1p products (float64: 512
 * rows, 64 factors 1 - q a lane, each in [1/2, 1], so at least 2**-64; float32: 1024 rows,
 * 64 factors a lane alike, far above float32's 2**-126) and of the float32 sums into
 * float64. 4 KB rather than 2 KB: the float32 loop 1.025x faster (one core, 262,144 rows;
 * numba's 1.03x), its sums as close to float64 arithmetic (1.6e-8 where 1.4e-8). */
#define FGD_ONE_FEATURE_PART_BYTES 4096

/* Each step asks for the line of x and the line of y (and of the weights) this far ahead,
 * into L1 (see fastgd_one_feature.h). */
#define FGD_ONE_FEATURE_AHEAD_BYTES 4096

#if defined(__GNUC__) && defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>

#define FGD_ALWAYS_INLINE inline __attribute__((always_inline))

/* The end of the part from row part: FGD_ONE_FEATURE_PART_BYTES of x on, or (the first
 * part, part = lo) the rows before x's first 64-byte line boundary, when x + lo is not on
 * one, so that every later vector of x is a whole aligned line. NumPy's large arrays
 * start 16 bytes past a line: each 64-byte load of x then spans two lines, and the float32
 * logistic loop took 1.07-1.11x the time of the aligned one (one core, 262,144 and 5M
 * rows). */
static inline ptrdiff_t fgd_part_end(const void *x, size_t itemsize, ptrdiff_t lo, ptrdiff_t part, ptrdiff_t hi)
{
    ptrdiff_t end = part + (ptrdiff_t)(FGD_ONE_FEATURE_PART_BYTES / itemsize);
    size_t head = (size_t)(-(uintptr_t)((const char *)x + lo * (ptrdiff_t)itemsize) & 63) / itemsize;
    if (part == lo && head)
        end = lo + (ptrdiff_t)head;
    return hi < end ? hi : end;
}

/* float64 lanes' sums: loss (sum -y t), loss_pos (sum max(t, 0)), both in units of ln 2,
 * dz, g, and the log1p product p (of 1 - q) with the exponents taken out of it (p_exp). */
typedef struct {
    __m512d loss, loss_pos, dz, g, p, p_exp;
} fgd_one_sums_d;

/* One vector of rows with t = z / ln 2; live marks the rows that count (all but in a
 * partial last vector, whose other lanes were loaded as x = y = 0: they add 0 to loss and
 * g). The targets: y in X's dtype, or with labels (a constant where inlined) ones, the mask
 * of the rows labelled 1 (fgd_label_mask). q = sigmoid(-|z|) = num / (num + den);
 * sigmoid(z) = 1 - q for z >= 0, q below; log1p(e^-|z|) = -log(1 - q). */
static FGD_ALWAYS_INLINE void fgd_one_step_d(__m512d x, __m512d y, __mmask8 ones, int labels, __m512d w0,
                                             __m512d b, __mmask8 live, fgd_one_sums_d *s)
{
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d t = _mm512_fmadd_pd(x, w0, b), num, den;
    fgd_exp2_neg_abs_ratio_v8d(t, &num, &den);
    __mmask8 nonneg = _mm512_cmp_pd_mask(t, _mm512_setzero_pd(), _CMP_GE_OQ);
    __m512d q = _mm512_div_pd(num, _mm512_add_pd(num, den));
    __m512d sig = _mm512_mask_sub_pd(q, nonneg, one, q);
    __m512d res = labels ? _mm512_mask_sub_pd(sig, ones, sig, one) : _mm512_sub_pd(sig, y);
    s->loss = labels ? _mm512_mask_sub_pd(s->loss, ones, s->loss, t) : _mm512_fnmadd_pd(y, t, s->loss);
    s->loss_pos = _mm512_mask_add_pd(s->loss_pos, nonneg & live, s->loss_pos, t);
    s->dz = _mm512_mask_add_pd(s->dz, live, s->dz, res);
    s->g = _mm512_fmadd_pd(res, x, s->g);
    s->p = _mm512_mask_fnmadd_pd(s->p, live, q, s->p); /* p (1 - q), one rounding */
}

/* Whether row i's line of uint8 labels is the one to ask for at the step of `lanes` rows
 * from i: once in 64 rows, a line of labels. */
#define FGD_LABEL_LINE_STEP(i, lanes) (((i) & 63) < (lanes))

/* The targets from row i where y is in X's dtype: eight or sixteen of them, count < lanes:
 * the rows that count, the other lanes 0. */
static FGD_ALWAYS_INLINE __m512d fgd_targets_d(const double *y, ptrdiff_t i, ptrdiff_t count)
{
    return count >= 8 ? _mm512_loadu_pd(y + i) : _mm512_maskz_loadu_pd((__mmask8)((1u << count) - 1), y + i);
}

static FGD_ALWAYS_INLINE __m512 fgd_targets_f(const float *y, ptrdiff_t i, ptrdiff_t count)
{
    return count >= 16 ? _mm512_loadu_ps(y + i) : _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), y + i);
}

/* The rows from row i labelled 1 as a mask, for uint8 labels: lanes (8 or 16) of them,
 * count < lanes the rows that count (the other bits 0), one byte test with AVX-512BW. The
 * step subtracts 1 from the residual and z from the loss in those lanes (masked
 * subtractions, as many operations as with float targets), and no vector of targets is
 * made: the widening and masked move that made a vector of 0 and 1 from the labels are two
 * operations fewer a step (of 26 in float32; the loop is bound by its operations on the AMD
 * EPYC test VM). */
static FGD_ALWAYS_INLINE __mmask16 fgd_label_mask(const unsigned char *y, ptrdiff_t i, ptrdiff_t count, int lanes)
{
    __m128i bytes;
    if (count >= lanes) {
        bytes = lanes == 16 ? _mm_loadu_si128((const __m128i *)(y + i)) : _mm_loadl_epi64((const __m128i *)(y + i));
    } else {
        unsigned char rest[16] = {0};
        memcpy(rest, y + i, (size_t)count);
        bytes = _mm_loadu_si128((const __m128i *)rest);
    }
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return _mm_test_epi8_mask(bytes, bytes);
#else
    __m512i v = _mm512_cvtepu8_epi32(bytes);
    return _mm512_test_epi32_mask(v, v);
#endif
}

static FGD_ALWAYS_INLINE void fgd_logistic_impl_d(const double *x, const void *y, int labels, double w0, double b,
                                                  ptrdiff_t lo, ptrdiff_t hi, double *g, double *dz_sum,
                                                  double *loss_sum)
{
    const ptrdiff_t ahead = FGD_ONE_FEATURE_AHEAD_BYTES / sizeof(double);
    const __m512d zero = _mm512_setzero_pd();
    const __m512d W = _mm512_set1_pd(w0 / M_LN2), B = _mm512_set1_pd(b / M_LN2); /* t = z / ln 2 */
    fgd_one_sums_d s = {zero, zero, zero, zero, _mm512_set1_pd(1.0), zero};
    for (ptrdiff_t part = lo, part_end; part < hi; part = part_end) {
        part_end = fgd_part_end(x, sizeof(double), lo, part, hi);
        ptrdiff_t i = part;
        for (; i + 8 <= part_end; i += 8) {
            if (i + ahead < hi) {
                __builtin_prefetch(x + i + ahead, 0, 3);
                if (!labels)
                    __builtin_prefetch((const double *)y + i + ahead, 0, 3);
                else if (FGD_LABEL_LINE_STEP(i, 8))
                    __builtin_prefetch((const unsigned char *)y + i + ahead, 0, 3);
            }
            if (labels)
                fgd_one_step_d(_mm512_loadu_pd(x + i), zero, (__mmask8)fgd_label_mask(y, i, 8, 8), 1, W, B, 0xFF, &s);
            else
                fgd_one_step_d(_mm512_loadu_pd(x + i), fgd_targets_d(y, i, 8), 0, 0, W, B, 0xFF, &s);
        }
        if (i < part_end) {
            __mmask8 live = (__mmask8)((1u << (part_end - i)) - 1);
            __m512d xv = _mm512_maskz_loadu_pd(live, x + i);
            if (labels)
                fgd_one_step_d(xv, zero, (__mmask8)fgd_label_mask(y, i, part_end - i, 8), 1, W, B, live, &s);
            else
                fgd_one_step_d(xv, fgd_targets_d(y, i, part_end - i), 0, 0, W, B, live, &s);
        }
        /* the products back to [1, 2), their exponents summed */
        s.p_exp = _mm512_add_pd(s.p_exp, _mm512_getexp_pd(s.p));
        s.p = _mm512_getmant_pd(s.p, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    }
    *loss_sum = M_LN2 * (_mm512_reduce_add_pd(_mm512_add_pd(s.loss, s.loss_pos)) - _mm512_reduce_add_pd(s.p_exp)) -
                log(_mm512_reduce_mul_pd(s.p));
    *g = _mm512_reduce_add_pd(s.g);
    *dz_sum = _mm512_reduce_add_pd(s.dz);
}

int fgd_logistic_one_feature_d(const double *x, const void *y, int labels, double w0, double b, ptrdiff_t lo,
                               ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    if (labels)
        fgd_logistic_impl_d(x, y, 1, w0, b, lo, hi, g, dz_sum, loss_sum);
    else
        fgd_logistic_impl_d(x, y, 0, w0, b, lo, hi, g, dz_sum, loss_sum);
    return 1;
}

/* The float32 part's sums (float32 lanes), added into float64 lanes after every part. */
typedef struct {
    __m512 loss, loss_pos, dz, g;
} fgd_one_part_f;

/* A float32 vector of rows up to its sigmoid: z (kept for the loss terms: float32 units of
 * ln 2 would round max(z, 0) - y z by 2**-24 of itself), e = e^-|z| (from t = z (1 / ln 2)),
 * whether z >= 0, and the denominator 1 + e. With u = 1 / (1 + e) = 1 - q (q =
 * sigmoid(-|z|)): sigmoid(z) = u for z >= 0, e u below; log1p(e^-|z|) = -log u. */
typedef struct {
    __m512 z, e, den;
    __mmask16 nonneg;
} fgd_one_front_f;

static FGD_ALWAYS_INLINE fgd_one_front_f fgd_one_front(__m512 x, __m512 w0, __m512 b)
{
    fgd_one_front_f f;
    f.z = _mm512_fmadd_ps(x, w0, b);
    f.e = fgd_exp2f_neg_abs_v16(_mm512_mul_ps(f.z, _mm512_set1_ps(FGD_INV_LN2_F)));
    f.nonneg = _mm512_cmp_ps_mask(f.z, _mm512_setzero_ps(), _CMP_GE_OQ);
    f.den = _mm512_add_ps(_mm512_set1_ps(1.0f), f.e);
    return f;
}

/* The sums of a vector of rows given u = 1 / (1 + e) (its factor of the product is the
 * caller's); labels, ones and live as in fgd_one_step_d. */
static FGD_ALWAYS_INLINE void fgd_one_back(__m512 x, __m512 y, __mmask16 ones, int labels, const fgd_one_front_f *f,
                                           __m512 u, __mmask16 live, fgd_one_part_f *s)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 sig = _mm512_mask_mul_ps(u, _knot_mask16(f->nonneg), u, f->e);
    __m512 res = labels ? _mm512_mask_sub_ps(sig, ones, sig, one) : _mm512_sub_ps(sig, y);
    s->loss = labels ? _mm512_mask_sub_ps(s->loss, ones, s->loss, f->z) : _mm512_fnmadd_ps(y, f->z, s->loss);
    s->loss_pos = _mm512_mask_add_ps(s->loss_pos, f->nonneg & live, s->loss_pos, f->z);
    s->dz = _mm512_mask_add_ps(s->dz, live, s->dz, res);
    s->g = _mm512_fmadd_ps(res, x, s->g);
}

/* One vector of rows: its own division. */
static FGD_ALWAYS_INLINE void fgd_one_step_f(__m512 x, __m512 y, __mmask16 ones, int labels, __m512 w0,
                                             __m512 b, __mmask16 live, fgd_one_part_f *s, __m512 *prod)
{
    fgd_one_front_f f = fgd_one_front(x, w0, b);
    __m512 u = _mm512_div_ps(_mm512_set1_ps(1.0f), f.den);
    fgd_one_back(x, y, ones, labels, &f, u, live, s);
    *prod = _mm512_mask_mul_ps(*prod, live, *prod, u);
}

/* Four full vectors of rows from row i (64) with one division: r = 1 / (d0 d1 d2 d3) of
 * their denominators (each in [1, 2]), then u0 = r (d2 d3) d1 and so on (six multiplies
 * and one division where four divisions were: vdivps takes about 10 cycles a vector on
 * the test VM's divider, which bound the loop), the product times r. */
static FGD_ALWAYS_INLINE void fgd_one_quad_f(const float *x, const void *y, ptrdiff_t i, int labels, __m512 w0,
                                             __m512 b, fgd_one_part_f *s, __m512 *prod)
{
    fgd_one_front_f f[4];
    for (int l = 0; l < 4; l++)
        f[l] = fgd_one_front(_mm512_loadu_ps(x + i + 16 * l), w0, b);
    __m512 d01 = _mm512_mul_ps(f[0].den, f[1].den), d23 = _mm512_mul_ps(f[2].den, f[3].den);
    __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(d01, d23));
    __m512 r01 = _mm512_mul_ps(r, d23), r23 = _mm512_mul_ps(r, d01);
    __m512 u[4] = {_mm512_mul_ps(r01, f[1].den), _mm512_mul_ps(r01, f[0].den), _mm512_mul_ps(r23, f[3].den),
                   _mm512_mul_ps(r23, f[2].den)};
    *prod = _mm512_mul_ps(*prod, r);
    for (int l = 0; l < 4; l++) {
        const ptrdiff_t at = i + 16 * l;
        if (labels)
            fgd_one_back(_mm512_loadu_ps(x + at), _mm512_setzero_ps(), fgd_label_mask(y, at, 16, 16), 1, &f[l], u[l],
                         0xFFFF, s);
        else
            fgd_one_back(_mm512_loadu_ps(x + at), fgd_targets_f(y, at, 16), 0, 0, &f[l], u[l], 0xFFFF, s);
    }
}

/* v's sixteen lanes as float64, added pairwise into eight */
static FGD_ALWAYS_INLINE __m512d fgd_widen_sum(__m512 v)
{
    __m512d lo, hi;
    fgd_widen16(v, &lo, &hi);
    return _mm512_add_pd(lo, hi);
}

static FGD_ALWAYS_INLINE void fgd_logistic_impl_f(const float *x, const void *y, int labels, float w0, float b,
                                                  ptrdiff_t lo, ptrdiff_t hi, double *g, double *dz_sum,
                                                  double *loss_sum)
{
    const ptrdiff_t ahead = FGD_ONE_FEATURE_AHEAD_BYTES / sizeof(float);
    const __m512 zero = _mm512_setzero_ps();
    const __m512 W = _mm512_set1_ps(w0), B = _mm512_set1_ps(b);
    __m512d loss = _mm512_setzero_pd(), dz = loss, gs = loss, p_exp = loss;
    __m512 prod = _mm512_set1_ps(1.0f);
    for (ptrdiff_t part = lo, part_end; part < hi; part = part_end) {
        part_end = fgd_part_end(x, sizeof(float), lo, part, hi);
        fgd_one_part_f s = {zero, zero, zero, zero};
        ptrdiff_t i = part;
        if (part_end + ahead <= hi) /* 64 rows a step: a line of labels, four of x */
            for (; i + 64 <= part_end; i += 64) {
                for (int l = 0; l < 4; l++)
                    __builtin_prefetch(x + i + ahead + 16 * l, 0, 3);
                if (!labels)
                    for (int l = 0; l < 4; l++)
                        __builtin_prefetch((const float *)y + i + ahead + 16 * l, 0, 3);
                else
                    __builtin_prefetch((const unsigned char *)y + i + ahead, 0, 3);
                fgd_one_quad_f(x, y, i, labels, W, B, &s, &prod);
            }
        for (; i + 16 <= part_end; i += 16) {
            if (i + ahead < hi) {
                __builtin_prefetch(x + i + ahead, 0, 3);
                if (!labels)
                    __builtin_prefetch((const float *)y + i + ahead, 0, 3);
                else if (FGD_LABEL_LINE_STEP(i, 16))
                    __builtin_prefetch((const unsigned char *)y + i + ahead, 0, 3);
            }
            if (labels)
                fgd_one_step_f(_mm512_loadu_ps(x + i), zero, fgd_label_mask(y, i, 16, 16), 1, W, B, 0xFFFF, &s, &prod);
            else
                fgd_one_step_f(_mm512_loadu_ps(x + i), fgd_targets_f(y, i, 16), 0, 0, W, B, 0xFFFF, &s, &prod);
        }
        if (i < part_end) {
            __mmask16 live = (__mmask16)((1u << (part_end - i)) - 1);
            __m512 xv = _mm512_maskz_loadu_ps(live, x + i);
            if (labels)
                fgd_one_step_f(xv, zero, fgd_label_mask(y, i, part_end - i, 16), 1, W, B, live, &s, &prod);
            else
                fgd_one_step_f(xv, fgd_targets_f(y, i, part_end - i), 0, 0, W, B, live, &s, &prod);
        }
        loss = _mm512_add_pd(loss, fgd_widen_sum(_mm512_add_ps(s.loss, s.loss_pos)));
        dz = _mm512_add_pd(dz, fgd_widen_sum(s.dz));
        gs = _mm512_add_pd(gs, fgd_widen_sum(s.g));
        p_exp = _mm512_add_pd(p_exp, fgd_widen_sum(_mm512_getexp_ps(prod)));
        prod = _mm512_getmant_ps(prod, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    }
    /* the sixteen mantissas' product, at most 2**16 */
    __m512d plo, phi;
    fgd_widen16(prod, &plo, &phi);
    *loss_sum = _mm512_reduce_add_pd(loss) - M_LN2 * _mm512_reduce_add_pd(p_exp) -
                log(_mm512_reduce_mul_pd(_mm512_mul_pd(plo, phi)));
    *g = _mm512_reduce_add_pd(gs);
    *dz_sum = _mm512_reduce_add_pd(dz);
}

int fgd_logistic_one_feature_f(const float *x, const void *y, int labels, float w0, float b, ptrdiff_t lo,
                               ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    if (labels)
        fgd_logistic_impl_f(x, y, 1, w0, b, lo, hi, g, dz_sum, loss_sum);
    else
        fgd_logistic_impl_f(x, y, 0, w0, b, lo, hi, g, dz_sum, loss_sum);
    return 1;
}

/* mse: one step of eight rows in float64 (float32 rows widened to float64), live marking
 * the rows that count (r = 0 in the others). */
static FGD_ALWAYS_INLINE void fgd_mse_step(__m512d x, __m512d y, __m512d s, __m512d w0, __m512d b, __mmask8 live,
                                           int weighted, __m512d *loss, __m512d *dz, __m512d *g)
{
    __m512d r = _mm512_maskz_sub_pd(live, _mm512_fmadd_pd(x, w0, b), y);
    __m512d sr = weighted ? _mm512_mul_pd(s, r) : r;
    *loss = _mm512_fmadd_pd(sr, r, *loss);
    *dz = _mm512_add_pd(*dz, sr);
    *g = _mm512_fmadd_pd(sr, x, *g);
}

/* Rows lo..hi, weighted a constant where inlined (sw unused without). */
static FGD_ALWAYS_INLINE void fgd_mse_impl_d(const double *x, const double *y, const double *sw, double w0, double b,
                                             ptrdiff_t lo, ptrdiff_t hi, int weighted, double *g, double *dz_sum,
                                             double *loss_sum)
{
    const ptrdiff_t ahead = FGD_ONE_FEATURE_AHEAD_BYTES / sizeof(double);
    const __m512d W = _mm512_set1_pd(w0), B = _mm512_set1_pd(b), one = _mm512_set1_pd(1.0);
    __m512d loss = _mm512_setzero_pd(), dz = loss, gs = loss;
    ptrdiff_t i = lo;
    for (; i + 8 <= hi; i += 8) {
        if (i + ahead < hi) {
            __builtin_prefetch(x + i + ahead, 0, 3);
            __builtin_prefetch(y + i + ahead, 0, 3);
            if (weighted)
                __builtin_prefetch(sw + i + ahead, 0, 3);
        }
        fgd_mse_step(_mm512_loadu_pd(x + i), _mm512_loadu_pd(y + i), weighted ? _mm512_loadu_pd(sw + i) : one, W,
                     B, 0xFF, weighted, &loss, &dz, &gs);
    }
    if (i < hi) {
        __mmask8 live = (__mmask8)((1u << (hi - i)) - 1);
        fgd_mse_step(_mm512_maskz_loadu_pd(live, x + i), _mm512_maskz_loadu_pd(live, y + i),
                     weighted ? _mm512_maskz_loadu_pd(live, sw + i) : one, W, B, live, weighted, &loss, &dz, &gs);
    }
    *loss_sum = _mm512_reduce_add_pd(loss);
    *g = 2.0 * _mm512_reduce_add_pd(gs);
    *dz_sum = 2.0 * _mm512_reduce_add_pd(dz);
}

static FGD_ALWAYS_INLINE void fgd_mse_impl_f(const float *x, const float *y, const float *sw, double w0, double b,
                                             ptrdiff_t lo, ptrdiff_t hi, int weighted, double *g, double *dz_sum,
                                             double *loss_sum)
{
    const ptrdiff_t ahead = FGD_ONE_FEATURE_AHEAD_BYTES / sizeof(float);
    const __m512d W = _mm512_set1_pd(w0), B = _mm512_set1_pd(b);
    const __m512 ones = _mm512_set1_ps(1.0f);
    __m512d loss = _mm512_setzero_pd(), dz = loss, gs = loss;
    for (ptrdiff_t i = lo; i < hi; i += 16) {
        __mmask16 live = hi - i >= 16 ? 0xFFFF : (__mmask16)((1u << (hi - i)) - 1);
        if (i + ahead < hi) {
            __builtin_prefetch(x + i + ahead, 0, 3);
            __builtin_prefetch(y + i + ahead, 0, 3);
            if (weighted)
                __builtin_prefetch(sw + i + ahead, 0, 3);
        }
        __m512 xv = _mm512_maskz_loadu_ps(live, x + i), yv = _mm512_maskz_loadu_ps(live, y + i);
        __m512 sv = weighted ? _mm512_maskz_loadu_ps(live, sw + i) : ones;
        __m512d xd[2], yd[2], sd[2];
        fgd_widen16(xv, &xd[0], &xd[1]);
        fgd_widen16(yv, &yd[0], &yd[1]);
        fgd_widen16(sv, &sd[0], &sd[1]);
        for (int half = 0; half < 2; half++)
            fgd_mse_step(xd[half], yd[half], sd[half], W, B, (__mmask8)(live >> (8 * half)), weighted, &loss, &dz,
                         &gs);
    }
    *loss_sum = _mm512_reduce_add_pd(loss);
    *g = 2.0 * _mm512_reduce_add_pd(gs);
    *dz_sum = 2.0 * _mm512_reduce_add_pd(dz);
}

int fgd_mse_one_feature_d(const double *x, const double *y, const double *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    if (sw)
        fgd_mse_impl_d(x, y, sw, w0, b, lo, hi, 1, g, dz_sum, loss_sum);
    else
        fgd_mse_impl_d(x, y, sw, w0, b, lo, hi, 0, g, dz_sum, loss_sum);
    return 1;
}

int fgd_mse_one_feature_f(const float *x, const float *y, const float *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    if (sw)
        fgd_mse_impl_f(x, y, sw, w0, b, lo, hi, 1, g, dz_sum, loss_sum);
    else
        fgd_mse_impl_f(x, y, sw, w0, b, lo, hi, 0, g, dz_sum, loss_sum);
    return 1;
}

#else /* no AVX-512 (F and DQ): the caller's loop takes every row */

int fgd_logistic_one_feature_d(const double *x, const void *y, int labels, double w0, double b, ptrdiff_t lo,
                               ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    (void)x, (void)y, (void)labels, (void)w0, (void)b, (void)lo, (void)hi, (void)g, (void)dz_sum, (void)loss_sum;
    return 0;
}

int fgd_logistic_one_feature_f(const float *x, const void *y, int labels, float w0, float b, ptrdiff_t lo,
                               ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    (void)x, (void)y, (void)labels, (void)w0, (void)b, (void)lo, (void)hi, (void)g, (void)dz_sum, (void)loss_sum;
    return 0;
}

int fgd_mse_one_feature_d(const double *x, const double *y, const double *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    (void)x, (void)y, (void)sw, (void)w0, (void)b, (void)lo, (void)hi, (void)g, (void)dz_sum, (void)loss_sum;
    return 0;
}

int fgd_mse_one_feature_f(const float *x, const float *y, const float *sw, double w0, double b, ptrdiff_t lo,
                          ptrdiff_t hi, double *g, double *dz_sum, double *loss_sum)
{
    (void)x, (void)y, (void)sw, (void)w0, (void)b, (void)lo, (void)hi, (void)g, (void)dz_sum, (void)loss_sum;
    return 0;
}
#endif
