# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""OpenMP kernels of fastgd's ``cython`` backend.

One source serves float32 and float64 through the fused type ``floating``. Inputs are
``const`` memoryviews, so read-only arrays and memmaps are used as they are. Rows are
split into tasks, contiguous ranges that depend on X alone (fastgd._config.cpu_tasks),
one per buffer row; the threads take them one at a time as they come free (OpenMP's
dynamic schedule) and each task writes only its own row of the caller's float64 buffers,
so threads share nothing and the caller's sums in task order do not depend on the number
of threads. Each task is walked in small blocks of rows, as in the Numba backend
(``fastgd/backends/numba.py`` explains the layout), except for narrow rows: mse/logistic with d up to 8 take one pass
(``fastgd_narrow.c``, which also holds softmax's block products for such rows), d = 1
its own loops below (unweighted logistic with AVX-512: ``fastgd_one_feature.c``), and with
AVX-512 rows of up to sixteen 512-bit vectors one pass four rows at a time
(``fastgd_fused_rows.c``). The vectorisable exp/log1p are in ``fastgd_vecmath.h``.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, fabs, fabsf, log, log1p, log2
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

cimport openmp

cdef enum:
    MSE = 0
    LOGISTIC = 1

# Index dtype of a CSR matrix (scipy uses int32 or int64 for indices and indptr alike).
ctypedef fused index_t:
    int32_t
    int64_t


def max_threads():
    """Threads an OpenMP parallel region uses by default."""
    return openmp.omp_get_max_threads()


cdef extern from "fastgd_vecmath.h" nogil:
    double fgd_exp_nonpositive(double x)
    void fgd_exp_ratio_nonpositive(double x, double* num, double* den)
    double fgd_log1p_unit(double e)
    float fgd_expf_nonpositive(float x)


cdef enum:
    # Rows whose log1p terms the unweighted logistic kernel multiplies before taking a
    # logarithm (factors in [1, 2]: a product of 512 is at most 2**512 = 1.3e154).
    PRODUCT_ROWS = 512
    # The same for the float32 d = 1 logistic loop, whose product is a float32: at most
    # 2**96 < 3.4e38. Its float32 sums span as many rows.
    PRODUCT_ROWS_F32 = 96
    # Rows of the float64 d = 1 logistic loop's two products (fgd_exp_ratio_nonpositive's
    # num + den <= 2.4, den in [0.84, 1.19]: at most 2.4**256 = 2.6e97); their ratio, the
    # product of 1 + e, is at most 2**256. Also the rows per part of the other d = 1
    # loops, each part asking for the rows ahead (fastgd_prefetch.h).
    PADE_ROWS = 256
    # Rows longer than this (bytes) take the four-row dot products of fastgd_tiles.h: w no
    # longer stays in the 32 KB L1 cache beside the rows, and one load of w serves four
    # rows (20,000 x 5,000 float64 logistic 0.78 -> 0.88 of the read, float32 0.77 -> 0.84;
    # with shorter rows the one-row loop below is as fast or faster: 2M x 64 0.91 -> 0.47).
    WIDE_ROW_BYTES = 16384


# The d = 1 loops call this for x, y (and sw) at each part, written out: the same calls
# gathered in one cdef inline helper made float64 logistic 3x slower (10M rows: 82x the
# numpy backend against 30x, one run each), so the loops keep them inline.
cdef extern from "fastgd_prefetch.h" nogil:
    void fgd_prefetch_stream(const void* base, Py_ssize_t row_bytes, Py_ssize_t lo, Py_ssize_t hi,
                             Py_ssize_t end)


cdef extern from "fastgd_tiles.h" nogil:
    Py_ssize_t fgd_row_scores4_d(const double* X, const double* w, double b, Py_ssize_t m, Py_ssize_t d,
                                 double* z)
    Py_ssize_t fgd_row_scores4_f(const float* X, const float* w, double b, Py_ssize_t m, Py_ssize_t d,
                                 double* z)
    void fgd_row_scores_d(const double* X, const double* w, double b, Py_ssize_t m, Py_ssize_t d, double* z)
    void fgd_row_scores_f(const float* X, const float* w, double b, Py_ssize_t m, Py_ssize_t d, double* z)
    void fgd_row_accumulate_d(const double* X, const double* r, Py_ssize_t m, Py_ssize_t d, double* gb)
    void fgd_row_accumulate_f(const float* X, const float* r, Py_ssize_t m, Py_ssize_t d, float* gb)


cdef void _block_scores(
    const floating* X, const floating* w, double b, Py_ssize_t start, Py_ssize_t m, Py_ssize_t d,
    double* z,
) noexcept nogil:
    """z[i] = X[start + i] . w + b for i < m; the dot product in X's dtype (d >
    FGD_NARROW_D_MAX here: narrower rows take fastgd_narrow.h)."""
    cdef Py_ssize_t done = 0
    if d * <Py_ssize_t>sizeof(floating) > WIDE_ROW_BYTES:  # four rows at a time, then below
        if floating is double:
            done = fgd_row_scores4_d(X + start * d, w, b, m, d, z)
        else:
            done = fgd_row_scores4_f(X + start * d, w, b, m, d, z)
    if floating is double:
        fgd_row_scores_d(X + (start + done) * d, w, b, m - done, d, z + done)
    else:
        fgd_row_scores_f(X + (start + done) * d, w, b, m - done, d, z + done)


cdef void _block_accumulate(
    const floating* X, const floating* r, Py_ssize_t start, Py_ssize_t m, Py_ssize_t d,
    floating* gb,
) noexcept nogil:
    """gb += X[start:start + m].T @ r[:m] while the block's rows are in cache; r and gb (d,)
    are in X's dtype. Eight rows per pass over gb (fgd_row_accumulate in fastgd_tiles.h)."""
    if floating is double:
        fgd_row_accumulate_d(X + start * d, r, m, d, gb)
    else:
        fgd_row_accumulate_f(X + start * d, r, m, d, gb)


cdef inline void _fold_product(double p, double* prod, double* acc_loss) noexcept nogil:
    """prod *= p for a product of log1p factors, moved into acc_loss as its logarithm
    whenever it passes 1e150 (p <= 2**PRODUCT_ROWS, so prod never overflows)."""
    prod[0] *= p
    if prod[0] > 1e150:
        acc_loss[0] += log(prod[0])
        prod[0] = 1.0

cdef inline double _target(const floating* y, const unsigned char* labels, Py_ssize_t i) noexcept nogil:
    """Row i's target: y[i], or with uint8 labels (not NULL, logistic) labels[i]."""
    return labels[i] if labels != NULL else y[i]


cdef inline const floating* _part_targets(
    const floating* y, const unsigned char* labels, Py_ssize_t start, Py_ssize_t m, floating* buf,
) noexcept nogil:
    """The targets of rows start..start + m in X's dtype: y + start, or uint8 labels (not
    NULL, logistic) widened into buf (m values), so that the loops over the rows read one
    array either way and stay vectorised (a choice per row made weighted d = 1 logistic with
    labels 2.3x slower)."""
    cdef Py_ssize_t i
    if labels == NULL:
        return y + start
    for i in range(m):
        buf[i] = labels[start + i]
    return buf


cdef void _scalar_chunk(
    const floating* X, const floating* y, const unsigned char* labels, const floating* w, double b,
    const floating* sw, bint has_sw, int loss, Py_ssize_t lo, Py_ssize_t hi,
    Py_ssize_t d, Py_ssize_t block, double* g, double* dz_sum, double* loss_sum,
) noexcept nogil:
    """Rows lo..hi (d > FGD_NARROW_D_MAX) in blocks of ``block`` rows: scores, losses and
    residuals (vectorised over the block), then the residuals times the block's rows added
    into g. uint8 labels (not NULL: logistic's y) are widened a block at a time into a
    buffer that the loops read as they read y."""
    cdef Py_ssize_t start, m, i, part, part_end
    cdef double s, zi, yi, ei, res, p
    cdef double acc_loss = 0.0, acc_dz = 0.0, prod = 1.0
    cdef double* z = <double*> malloc(block * sizeof(double))
    cdef double* e = <double*> malloc(block * sizeof(double))
    cdef floating* r = <floating*> malloc((2 * block + d) * sizeof(floating))
    cdef floating* gb = r + block
    cdef floating* widened = gb + d
    cdef const floating* ys
    for i in range(d):
        gb[i] = 0
    start = lo
    while start < hi:
        m = min(block, hi - start)
        ys = _part_targets(y, labels, start, m, widened)
        _block_scores(X, w, b, start, m, d, z)
        # Per-sample losses into e and d loss / dz into z, then the weights: every loop is
        # branch-free in i, so each vectorises.
        if loss == MSE:
            for i in range(m):
                res = z[i] - ys[i]
                e[i] = res * res
                z[i] = 2.0 * res
        else:
            # log(1 + e^z) - y z = max(z, 0) + log1p(e^-|z|) - y z, never overflowing.
            for i in range(m):
                e[i] = fgd_exp_nonpositive(-fabs(z[i]))
            if has_sw:
                for i in range(m):
                    zi = z[i]
                    yi = ys[i]
                    ei = e[i]
                    z[i] = (1.0 if zi >= 0.0 else ei) / (1.0 + ei) - yi  # sigmoid(z) - y
                    e[i] = (zi if zi > 0.0 else 0.0) + fgd_log1p_unit(ei) - yi * zi
            else:
                # Unweighted, the log1p terms add up to the logarithm of a product of
                # factors in [1, 2]: a product per PRODUCT_ROWS rows (at most 2**512), and
                # one logarithm whenever the running product passes 1e150.
                part = 0
                while part < m:
                    part_end = min(m, part + PRODUCT_ROWS)
                    p = 1.0
                    for i in range(part, part_end):
                        zi = z[i]
                        yi = ys[i]
                        ei = e[i]
                        z[i] = (1.0 if zi >= 0.0 else ei) / (1.0 + ei) - yi  # sigmoid(z) - y
                        e[i] = (zi if zi > 0.0 else 0.0) - yi * zi
                        p *= 1.0 + ei
                    _fold_product(p, &prod, &acc_loss)
                    part = part_end
        if has_sw:
            for i in range(m):
                s = sw[start + i]
                acc_loss += s * e[i]
                z[i] *= s
        else:
            for i in range(m):
                acc_loss += e[i]
        for i in range(m):
            acc_dz += z[i]
            r[i] = <floating>z[i]
        if floating is double:  # straight into the float64 g
            _block_accumulate(X, r, start, m, d, g)
        else:  # float32 sums span one block, then go into g
            _block_accumulate(X, r, start, m, d, gb)
            for i in range(d):
                g[i] += gb[i]
                gb[i] = 0
        start += m
    free(z)
    free(e)
    free(r)
    loss_sum[0] = acc_loss + log(prod)
    dz_sum[0] = acc_dz


cdef extern from "fastgd_one_feature.h" nogil:
    int fgd_logistic_one_feature_d(const double* x, const void* y, int labels, double w0, double b, Py_ssize_t lo,
                                   Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum)
    int fgd_logistic_one_feature_f(const float* x, const void* y, int labels, float w0, float b, Py_ssize_t lo,
                                   Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum)
    int fgd_mse_one_feature_d(const double* x, const double* y, const double* sw, double w0, double b,
                              Py_ssize_t lo, Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum)
    int fgd_mse_one_feature_f(const float* x, const float* y, const float* sw, double w0, double b,
                              Py_ssize_t lo, Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum)


cdef void _mse_one_feature(
    const floating* x, const floating* y, const floating* sw, bint has_sw, double w0, double b,
    Py_ssize_t lo, Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum,
) noexcept nogil:
    """mse for d = 1, rows lo..hi: one loop that reads x and y once, with no per-block
    passes (at a few bytes a row they would cost more than the read); with AVX-512 the
    loop of fastgd_one_feature.c, which asks for its lines one at a time ahead."""
    cdef Py_ssize_t i, part, part_end
    cdef double r, sr
    cdef double acc_loss = 0.0, acc_g = 0.0, acc_dz = 0.0
    if floating is double:
        if fgd_mse_one_feature_d(x, y, sw if has_sw else NULL, w0, b, lo, hi, g, dz_sum, loss_sum):
            return
    else:
        if fgd_mse_one_feature_f(x, y, sw if has_sw else NULL, w0, b, lo, hi, g, dz_sum, loss_sum):
            return
    part = lo
    while part < hi:
        part_end = min(hi, part + PADE_ROWS)
        fgd_prefetch_stream(x, sizeof(floating), part, part_end, hi)
        fgd_prefetch_stream(y, sizeof(floating), part, part_end, hi)
        if has_sw:
            fgd_prefetch_stream(sw, sizeof(floating), part, part_end, hi)
            for i in range(part, part_end):
                r = x[i] * w0 + b - y[i]
                sr = sw[i] * r
                acc_loss += sr * r
                acc_dz += sr
                acc_g += sr * x[i]
        else:
            for i in range(part, part_end):
                r = x[i] * w0 + b - y[i]
                acc_loss += r * r
                acc_dz += r
                acc_g += r * x[i]
        part = part_end
    loss_sum[0] = acc_loss
    g[0] = 2.0 * acc_g
    dz_sum[0] = 2.0 * acc_dz


cdef void _logistic_one_feature_f32(
    const float* x, const float* y, const unsigned char* labels, float w0, float b, Py_ssize_t lo,
    Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum,
) noexcept nogil:
    """Unweighted float32 logistic for d = 1, as _logistic_one_feature but in float32 (twice
    the lanes, and an exponential of half the terms): float32 sums over PRODUCT_ROWS_F32
    rows, then float64 (10M rows, A/B in one process: 6.4 -> 3.1 ms; within 1e-7 of the
    float64 loop)."""
    cdef Py_ssize_t i, part, part_end
    cdef float z, e, r, xi, yi, p, part_loss, part_g, part_dz
    cdef float zero = 0.0, one = 1.0
    cdef double prod = 1.0, acc_loss = 0.0, acc_g = 0.0, acc_dz = 0.0
    cdef float buf[PRODUCT_ROWS_F32]
    cdef const float* ys
    part = lo
    while part < hi:
        part_end = min(hi, part + PRODUCT_ROWS_F32)
        ys = _part_targets(y, labels, part, part_end - part, buf)
        fgd_prefetch_stream(x, sizeof(float), part, part_end, hi)
        if labels != NULL:
            fgd_prefetch_stream(labels, 1, part, part_end, hi)
        else:
            fgd_prefetch_stream(y, sizeof(float), part, part_end, hi)
        p = one
        part_loss = zero
        part_g = zero
        part_dz = zero
        for i in range(part, part_end):
            xi = x[i]
            yi = ys[i - part]
            z = xi * w0 + b
            e = fgd_expf_nonpositive(-fabsf(z))
            r = (one if z >= zero else e) / (one + e) - yi
            part_dz += r
            part_g += r * xi
            part_loss += (z if z > zero else zero) - yi * z
            p *= one + e
        acc_loss += part_loss
        acc_g += part_g
        acc_dz += part_dz
        _fold_product(p, &prod, &acc_loss)
        part = part_end
    loss_sum[0] = acc_loss + log(prod)
    g[0] = acc_g
    dz_sum[0] = acc_dz


cdef void _logistic_one_feature(
    const floating* x, const floating* y, const unsigned char* labels, const floating* sw, bint has_sw,
    double w0, double b, Py_ssize_t lo, Py_ssize_t hi, double* g, double* dz_sum, double* loss_sum,
) noexcept nogil:
    """logistic for d = 1, rows lo..hi: one vectorised loop that reads x and y once and
    keeps every per-row value in registers (the per-block arrays of _scalar_chunk cost
    more than the exponential at d = 1: 10M rows float64, A/B in one process, 12.7 -> 6.4
    ms). Unweighted float64 takes e^-|z| as a ratio (fgd_exp_ratio_nonpositive), whose
    denominator joins the division the sigmoid needs anyway: 3 fewer multiply-adds a row
    than the exponential, where this loop is bound by them (10M rows, A/B in one process,
    5.7 -> 5.2 ms)."""
    cdef Py_ssize_t i, part, part_end
    cdef double z, e, r, xi, yi, s, num, den, t, p_sum, p_den, prod = 1.0
    cdef double acc_loss = 0.0, acc_g = 0.0, acc_dz = 0.0
    cdef const void* targets = <const void*>labels if labels != NULL else <const void*>y
    cdef Py_ssize_t target_bytes = 1 if labels != NULL else sizeof(floating)
    cdef floating buf[PADE_ROWS]
    cdef const floating* ys
    if not has_sw:  # with AVX-512, 512-bit vectors (fastgd_one_feature.h); else below
        if floating is double:
            if fgd_logistic_one_feature_d(x, targets, labels != NULL, w0, b, lo, hi, g, dz_sum, loss_sum):
                return
        else:
            if fgd_logistic_one_feature_f(x, targets, labels != NULL, <float>w0, <float>b, lo, hi, g, dz_sum,
                                          loss_sum):
                return
            _logistic_one_feature_f32(x, y, labels, <float>w0, <float>b, lo, hi, g, dz_sum, loss_sum)
            return
    if has_sw:
        part = lo
        while part < hi:
            part_end = min(hi, part + PADE_ROWS)
            fgd_prefetch_stream(x, sizeof(floating), part, part_end, hi)
            fgd_prefetch_stream(targets, target_bytes, part, part_end, hi)
            fgd_prefetch_stream(sw, sizeof(floating), part, part_end, hi)
            ys = _part_targets(y, labels, part, part_end - part, buf)
            for i in range(part, part_end):
                xi = x[i]
                yi = ys[i - part]
                s = sw[i]
                z = xi * w0 + b
                e = fgd_exp_nonpositive(-fabs(z))
                r = s * ((1.0 if z >= 0.0 else e) / (1.0 + e) - yi)  # s (sigmoid(z) - y)
                acc_dz += r
                acc_g += r * xi
                acc_loss += s * ((z if z > 0.0 else 0.0) + fgd_log1p_unit(e) - yi * z)
            part = part_end
    else:
        # e^-|z| = num / den (fgd_exp_ratio_nonpositive): sigmoid(z) is den / (num + den)
        # or num / (num + den), and the log1p terms add up to the logarithm of the products
        # of num + den over those of den, as in _scalar_chunk, PADE_ROWS rows at a time.
        part = lo
        while part < hi:
            part_end = min(hi, part + PADE_ROWS)
            fgd_prefetch_stream(x, sizeof(floating), part, part_end, hi)
            fgd_prefetch_stream(targets, target_bytes, part, part_end, hi)
            p_sum = 1.0
            p_den = 1.0
            ys = _part_targets(y, labels, part, part_end - part, buf)
            for i in range(part, part_end):
                xi = x[i]
                yi = ys[i - part]
                z = xi * w0 + b
                fgd_exp_ratio_nonpositive(-fabs(z), &num, &den)
                t = num + den
                r = (den if z >= 0.0 else num) / t - yi
                acc_dz += r
                acc_g += r * xi
                acc_loss += (z if z > 0.0 else 0.0) - yi * z
                p_sum *= t
                p_den *= den
            _fold_product(p_sum / p_den, &prod, &acc_loss)
            part = part_end
    loss_sum[0] = acc_loss + log(prod)
    g[0] = acc_g
    dz_sum[0] = acc_dz


cdef extern from "fastgd_softmax_steps.h" nogil:
    enum: FGD_SOFTMAX_STEPS
    ctypedef struct fgd_steps_logs:
        int tiles
    void fgd_steps_logs_init(fgd_steps_logs* s, Py_ssize_t k)
    double fgd_steps_logs_sum(const fgd_steps_logs* s)
    double fgd_softmax_steps_d(double* ZT, Py_ssize_t ldz, Py_ssize_t m, Py_ssize_t k, Py_ssize_t kq,
                               const Py_ssize_t* y, const double* sw, double* r_sum,
                               fgd_steps_logs* logs, const void* pf, Py_ssize_t pf_bytes)
    double fgd_softmax_steps_f(float* ZT, Py_ssize_t ldz, Py_ssize_t m, Py_ssize_t k, Py_ssize_t kq,
                               const Py_ssize_t* y, const float* sw, double* r_sum,
                               fgd_steps_logs* logs, const void* pf, Py_ssize_t pf_bytes)


cdef extern from "fastgd_narrow.h" nogil:
    enum: FGD_NARROW_D_MAX
    int fgd_narrow_class_scores_d(const double* X, const double* Wt, const double* b, Py_ssize_t m,
                                  Py_ssize_t d, Py_ssize_t k, Py_ssize_t ldz, double* ZT)
    int fgd_narrow_class_scores_f(const float* X, const float* Wt, const double* b, Py_ssize_t m,
                                  Py_ssize_t d, Py_ssize_t k, Py_ssize_t ldz, float* ZT)
    int fgd_narrow_class_accumulate_d(const double* X, const double* RT, Py_ssize_t m, Py_ssize_t d,
                                      Py_ssize_t k, Py_ssize_t ldr, double* Gb)
    int fgd_narrow_class_accumulate_f(const float* X, const float* RT, Py_ssize_t m, Py_ssize_t d,
                                      Py_ssize_t k, Py_ssize_t ldr, float* Gb)
    int fgd_narrow_rows_d(const double* X, const void* y, const double* sw, const double* w, double b,
                          int logistic, int labels, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t d,
                          double* g, double* dz_sum, double* loss_sum)
    int fgd_narrow_rows_f(const float* X, const void* y, const float* sw, const double* w, double b,
                          int logistic, int labels, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t d,
                          double* g, double* dz_sum, double* loss_sum)


cdef extern from "fastgd_fused_rows.h" nogil:
    int fgd_fused_rows_d(const double* X, const void* y, const double* sw, const double* w, double b,
                         int logistic, int labels, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t d,
                         double* g, double* dz_sum, double* loss_sum)
    int fgd_fused_rows_f(const float* X, const void* y, const float* sw, const float* w, double b,
                         int logistic, int labels, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t d,
                         double* g, double* dz_sum, double* loss_sum)


def scalar_loss_grad(
    const floating[:, ::1] X, const floating[::1] y, const unsigned char[::1] labels,
    const floating[::1] w, double b, const floating[::1] sw, int loss, Py_ssize_t block,
    double[:, ::1] grads, double[::1] dz_sums, double[::1] losses, int n_threads,
):
    """Sums for mse/logistic into per-task rows: grads (T, d), dz_sums (T,), losses (T,),
    the T tasks (contiguous ranges of rows) taken by n_threads threads as they come free.

    X (n, d); the targets as y (n,) with labels (0,), or for logistic as uint8 labels 0/1
    (n,) with y (0,); w (d,), sw (n,) or (0,) for no weights; b the intercept; block the
    rows per block. The sums are weighted but not normalised: the caller divides by sum(sw).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef const unsigned char* labels_ptr = &labels[0] if labels.shape[0] > 0 else NULL
    cdef const floating* y_ptr = &y[0] if y.shape[0] > 0 else NULL
    cdef const void* targets = <const void*>labels_ptr if labels_ptr != NULL else <const void*>y_ptr
    cdef int has_labels = labels_ptr != NULL
    cdef Py_ssize_t n_tasks = grads.shape[0]
    cdef Py_ssize_t chunk = (n + n_tasks - 1) // n_tasks
    cdef Py_ssize_t c, start, stop
    cdef bint has_sw = sw.shape[0] > 0
    cdef const floating* sw_ptr = &sw[0] if has_sw else NULL
    cdef double w_narrow[FGD_NARROW_D_MAX]  # w in float64 for fastgd_narrow.h
    cdef Py_ssize_t j
    cdef int narrow
    for j in range(min(d, FGD_NARROW_D_MAX)):
        w_narrow[j] = w[j]
    with nogil:
        for c in prange(n_tasks, schedule="dynamic", chunksize=1, num_threads=n_threads):
            start = c * chunk
            stop = min(n, start + chunk)
            # One pass where it is faster than the blocks: narrow rows (fastgd_narrow.h), and
            # with AVX-512 rows of up to sixteen vectors (fastgd_fused_rows.h).
            narrow = 0
            if start < stop:
                if floating is double:
                    narrow = fgd_narrow_rows_d(&X[0, 0], targets, sw_ptr, w_narrow, b, loss == LOGISTIC,
                                               has_labels, start, stop, d, &grads[c, 0], &dz_sums[c],
                                               &losses[c])
                    if not narrow:
                        narrow = fgd_fused_rows_d(&X[0, 0], targets, sw_ptr, &w[0], b, loss == LOGISTIC,
                                                  has_labels, start, stop, d, &grads[c, 0], &dz_sums[c],
                                                  &losses[c])
                else:
                    narrow = fgd_narrow_rows_f(&X[0, 0], targets, sw_ptr, w_narrow, b, loss == LOGISTIC,
                                               has_labels, start, stop, d, &grads[c, 0], &dz_sums[c],
                                               &losses[c])
                    if not narrow:
                        narrow = fgd_fused_rows_f(&X[0, 0], targets, sw_ptr, &w[0], b, loss == LOGISTIC,
                                                  has_labels, start, stop, d, &grads[c, 0], &dz_sums[c],
                                                  &losses[c])
            if start >= stop or narrow:
                pass
            elif d == 1 and loss == MSE:
                _mse_one_feature(&X[0, 0], y_ptr, sw_ptr, has_sw, w[0], b, start, stop,
                                 &grads[c, 0], &dz_sums[c], &losses[c])
            elif d == 1:
                _logistic_one_feature(&X[0, 0], y_ptr, labels_ptr, sw_ptr, has_sw, w[0], b, start, stop,
                                      &grads[c, 0], &dz_sums[c], &losses[c])
            else:
                _scalar_chunk(&X[0, 0], y_ptr, labels_ptr, &w[0], b, sw_ptr, has_sw, loss, start, stop, d,
                              block, &grads[c, 0], &dz_sums[c], &losses[c])


cdef extern from "fastgd_tiles.h" nogil:
    enum: FGD_PANEL_LDR
    Py_ssize_t fgd_class_scores_d(const double* X, const double* Wt, const double* Wd, const double* b,
                                  Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, Py_ssize_t ldz, double* ZT,
                                  const void* pf, Py_ssize_t pf_bytes)
    Py_ssize_t fgd_class_scores_f(const float* X, const float* Wt, const float* Wf, const double* b,
                                  Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, Py_ssize_t ldz, float* ZT,
                                  const void* pf, Py_ssize_t pf_bytes)
    Py_ssize_t fgd_score_coefficients_size_f(Py_ssize_t k, Py_ssize_t d)
    void fgd_score_coefficients_f(const float* Wt, Py_ssize_t k, Py_ssize_t d, float* Wf)
    void fgd_class_accumulate_d(const double* X, const double* RT, Py_ssize_t m, Py_ssize_t d,
                                Py_ssize_t k, Py_ssize_t ldr, double* Gb, const void* ahead,
                                Py_ssize_t ahead_bytes)
    void fgd_class_accumulate_f(const float* X, const float* RT, Py_ssize_t m, Py_ssize_t d,
                                Py_ssize_t k, Py_ssize_t ldr, float* Gb, const void* ahead,
                                Py_ssize_t ahead_bytes)


#: The block rows (the residuals' stride) the softmax gradient panels have a case compiled
#: for; fastgd._config.CPU_SOFTMAX_BLOCK_ROWS should match it.
PANEL_LDR = FGD_PANEL_LDR


cdef enum:
    # The shares (percent) of the next block's lines that a block's scores and softmax
    # steps ask for on their way (the gradient asks for the rest), about their shares of
    # the block's time: a block's arithmetic then overlaps the reads of the next one. 2M x
    # 64, k = 10, float64, in one process: half the lines in the scores and half in the
    # gradient 62 ms (the gradient alone asking for all: 79 ms with the panels the score
    # groups replaced); 35 / 30 / 35: 54.5 ms. In a C harness of the three steps: 45 / 20
    # and 40 / 25 as fast as 35 / 30, the next block but one slower.
    SCORES_AHEAD_PERCENT = 35
    STEPS_AHEAD_PERCENT = 30
    # float32 gradient sums (Gb) go into the float64 G before they would hold more than
    # this many rows of terms in float32 (and at the end): every block of 384 rows, every
    # four of 128. Added every block of 128 rows, the additions took 7% of the float32
    # call (perf, 2M x 64, k = 10).
    SOFTMAX_F32_FLUSH_ROWS = 512


cdef double TINY_REST = 2.0 ** -20  # see fgd_log1p_split in fastgd_softmax_steps.h


cdef void _softmax_chunk(
    const floating* X, const Py_ssize_t* y, const floating* Wt, const double* b,
    const floating* sw, bint has_sw, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t d, Py_ssize_t kq,
    Py_ssize_t k, Py_ssize_t block, double* G, double* r_sum, double* loss_sum,
) noexcept nogil:
    """Rows lo..hi in blocks: the scores of Wt's kq rows (with kq = k - 1 the last class
    scores 0, see softmax_loss_grad; narrow rows fastgd_narrow.c, with AVX-512 the score
    groups of fastgd_score_groups.h, float64 with Wt transposed, Wd, float32 with Wf (the
    rows of fastgd_score_rows.h on AMD Zen), else the tiles of fastgd_tiles.h), then the
    softmax steps with the scores stored class-major
    (ZT[q * block + i]): row maxima, exponentials, sums, residuals p - onehot, in place
    (with AVX-512: fgd_softmax_steps_d / _f of fastgd_softmax_steps.h, a vector of rows
    at a time; else the loops below, each over the block's rows, vectorised by gcc); then the
    first kq classes' residuals times the block's rows into G (kq, d) (fastgd_tiles.h:
    panels with their sums in registers with AVX-512, else tiles). The steps run in X's
    dtype (float32 data: a float32 exponential, sixteen lanes; the loss and the sums of
    residuals are added up in float64). Without sample weights a block's log-sum-exps are
    logarithms of products."""
    cdef Py_ssize_t start, m, i, q, j, ahead, asked, steps_bytes, part, part_end
    cdef const char* next_rows
    cdef Py_ssize_t prod_rows = max(1, <Py_ssize_t>(1000.0 / log2(<double>k)))
    cdef double s, prod, tiny, e
    cdef float ef
    cdef bint steps_done
    cdef double acc_loss = 0.0
    cdef Py_ssize_t rows_in_gb = 0  # float32: rows whose gradient sums Gb holds
    cdef fgd_steps_logs logs  # the AVX-512 steps' unweighted logarithms, block to block
    # Separate allocations: gcc then knows that they do not overlap, and vectorises.
    cdef floating* ZT = <floating*> malloc(block * k * sizeof(floating))
    cdef floating* top = <floating*> malloc(block * sizeof(floating))
    cdef floating* sum_e = <floating*> malloc(block * sizeof(floating))
    cdef floating* scale = <floating*> malloc(block * sizeof(floating))
    cdef floating* wt = <floating*> malloc(block * sizeof(floating))
    cdef double* rest = <double*> malloc(block * sizeof(double))  # the fallback steps' log1p terms
    cdef double* ties = <double*> malloc(block * sizeof(double))
    cdef floating* zq
    cdef floating* Gb = <floating*> malloc(kq * d * sizeof(floating))  # float32 only
    cdef floating* Wd = NULL  # float64: Wt transposed, (d, kq), for the score groups
    cdef float* Wf = NULL  # float32: the score groups' coefficients (fgd_score_coefficients_f)
    cdef floating* z_last = ZT + kq * block
    for i in range(kq * d):
        Gb[i] = 0
    fgd_steps_logs_init(&logs, k)
    if floating is double:
        Wd = <floating*> malloc(kq * d * sizeof(floating))
        for q in range(kq):
            for j in range(d):
                Wd[j * kq + q] = Wt[q * d + j]
    else:
        Wf = <float*> malloc(max(1, fgd_score_coefficients_size_f(kq, d)) * sizeof(float))
        fgd_score_coefficients_f(Wt, kq, d, Wf)
    start = lo
    while start < hi:
        m = min(block, hi - start)
        # The next block's lines: asked for by the scores, the softmax steps and the
        # gradient, each its share (see SCORES_AHEAD_PERCENT); what a step does not ask for
        # passes to the next one.
        ahead = min(block, hi - start - m) * d * <Py_ssize_t>sizeof(floating)
        next_rows = <const char*>(X + (start + m) * d)
        asked = 0
        if floating is double:
            if not fgd_narrow_class_scores_d(X + start * d, Wt, b, m, d, kq, block, ZT):
                asked = fgd_class_scores_d(X + start * d, Wt, Wd, b, m, d, kq, block, ZT, next_rows,
                                           ahead * SCORES_AHEAD_PERCENT // 6400 * 64)
        else:
            if not fgd_narrow_class_scores_f(X + start * d, Wt, b, m, d, kq, block, ZT):
                asked = fgd_class_scores_f(X + start * d, Wt, Wf, b, m, d, kq, block, ZT, next_rows,
                                           ahead * SCORES_AHEAD_PERCENT // 6400 * 64)
        steps_done = False
        if FGD_SOFTMAX_STEPS:
            steps_bytes = ahead * STEPS_AHEAD_PERCENT // 6400 * 64
            if floating is double:
                acc_loss += fgd_softmax_steps_d(ZT, block, m, k, kq, y + start, sw + start if has_sw else NULL,
                                                r_sum, &logs, next_rows + asked, steps_bytes)
            else:
                acc_loss += fgd_softmax_steps_f(ZT, block, m, k, kq, y + start, sw + start if has_sw else NULL,
                                                r_sum, &logs, next_rows + asked, steps_bytes)
            asked += steps_bytes
            steps_done = True
        if not steps_done:
            if kq < k:  # the last class scores 0
                for i in range(m):
                    z_last[i] = 0
            for i in range(m):
                top[i] = ZT[i]
                wt[i] = sw[start + i] if has_sw else 1.0
            for q in range(1, k):
                zq = ZT + q * block
                for i in range(m):
                    top[i] = zq[i] if zq[i] > top[i] else top[i]
            for i in range(m):
                acc_loss -= <double>wt[i] * <double>(ZT[y[start + i] * block + i] - top[i])
                sum_e[i] = 0.0
                rest[i] = 0.0
                ties[i] = 0.0
            for q in range(k):
                zq = ZT + q * block
                if floating is double:
                    for i in range(m):
                        e = fgd_exp_nonpositive(zq[i] - top[i])
                        rest[i] += e if zq[i] < top[i] else 0.0
                        ties[i] += 1.0 if zq[i] == top[i] else 0.0
                        zq[i] = e
                        sum_e[i] += e
                else:
                    for i in range(m):
                        ef = fgd_expf_nonpositive(zq[i] - top[i])
                        rest[i] += <double>ef if zq[i] < top[i] else 0.0
                        ties[i] += 1.0 if zq[i] == top[i] else 0.0
                        zq[i] = ef
                        sum_e[i] += ef
            # log of the sum as log1p of the sum but the maximum's 1 (see fgd_log1p_split in
            # fastgd_softmax_steps.h: the log of the rounded sum lost it).
            for i in range(m):
                rest[i] += ties[i] - 1.0
            if has_sw:
                for i in range(m):
                    acc_loss += <double>wt[i] * log1p(rest[i])
            else:
                # Unweighted, logarithms of products of 1 + rest: each in [1, k], so a
                # product of prod_rows of them stays below 2**1000. One vectorised product
                # and one logarithm per prod_rows rows (a running product checked at every
                # row was a serial chain of multiplies: 2.5M x 4, k = 3, float64, one
                # process, 12.2 -> 8.8 ms); rest below 2**-20 as rest - rest^2 / 2.
                part = 0
                while part < m:
                    part_end = min(m, part + prod_rows)
                    prod = 1.0
                    tiny = 0.0
                    for i in range(part, part_end):
                        prod *= 1.0 if rest[i] < TINY_REST else 1.0 + rest[i]
                        tiny += rest[i] - 0.5 * rest[i] * rest[i] if rest[i] < TINY_REST else 0.0
                    acc_loss += log(prod) + tiny
                    part = part_end
            for i in range(m):
                scale[i] = wt[i] / sum_e[i]
            for q in range(k):  # probabilities, and their sums (one pass)
                zq = ZT + q * block
                s = 0.0
                for i in range(m):
                    zq[i] *= scale[i]
                    s += zq[i]
                r_sum[q] += s
            for i in range(m):  # minus the one-hot labels: residuals
                ZT[y[start + i] * block + i] -= wt[i]
                r_sum[y[start + i]] -= wt[i]
        if floating is double:  # straight into the float64 G
            if not fgd_narrow_class_accumulate_d(X + start * d, ZT, m, d, kq, block, G):
                fgd_class_accumulate_d(X + start * d, ZT, m, d, kq, block, G, next_rows + asked, ahead - asked)
        else:  # float32 sums span one block, then go into G
            if not fgd_narrow_class_accumulate_f(X + start * d, ZT, m, d, kq, block, Gb):
                fgd_class_accumulate_f(X + start * d, ZT, m, d, kq, block, Gb, next_rows + asked, ahead - asked)
            rows_in_gb += m
            if rows_in_gb + block > SOFTMAX_F32_FLUSH_ROWS or start + m >= hi:
                for j in range(kq * d):
                    G[j] += Gb[j]
                    Gb[j] = 0
                rows_in_gb = 0
        start += m
    free(ZT)
    free(top)
    free(sum_e)
    free(scale)
    free(wt)
    free(rest)
    free(ties)
    free(Gb)
    free(Wd)
    free(Wf)
    if FGD_SOFTMAX_STEPS:
        acc_loss += fgd_steps_logs_sum(&logs)
    loss_sum[0] = acc_loss


def softmax_loss_grad(
    const floating[:, ::1] X, const Py_ssize_t[::1] y, const floating[:, ::1] Wt, const double[::1] b,
    Py_ssize_t k, const floating[::1] sw, Py_ssize_t block, double[:, ::1] grads,
    double[:, ::1] r_sums, double[::1] losses, int n_threads,
):
    """Sums for softmax over k classes into per-task rows: grads (T, kq*d), r_sums (T, k),
    losses (T,), tasks as in scalar_loss_grad.

    X (n, d); Wt (kq, d) and b (kq,) from _sums.softmax_coefficients, transposed so inner
    loops run over d: the k classes' coefficients, or (kq = k - 1) the first k - 1 classes'
    minus the last one's, the last class then scoring 0 (its gradient row is minus the
    sum of the others); y (n,) labels; block the rows per block.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], kq = Wt.shape[0]
    cdef Py_ssize_t n_tasks = grads.shape[0]
    cdef Py_ssize_t chunk = (n + n_tasks - 1) // n_tasks
    cdef Py_ssize_t c, start, stop
    cdef bint has_sw = sw.shape[0] > 0
    cdef const floating* sw_ptr = &sw[0] if has_sw else NULL
    with nogil:
        for c in prange(n_tasks, schedule="dynamic", chunksize=1, num_threads=n_threads):
            start = c * chunk
            stop = min(n, start + chunk)
            if start < stop:
                _softmax_chunk(&X[0, 0], &y[0], &Wt[0, 0], &b[0], sw_ptr, has_sw, start, stop, d, kq,
                               k, block, &grads[c, 0], &r_sums[c, 0], &losses[c])


cdef void _csr_scalar_chunk(
    const floating* data, const index_t* indices, const index_t* indptr, Py_ssize_t lo,
    Py_ssize_t hi, const floating* y, const unsigned char* labels, const floating* w, double b,
    const floating* sw, bint has_sw, int loss, double* g, double* dz_sum, double* loss_sum,
) noexcept nogil:
    """mse/logistic for CSR rows lo..hi: each row's score from its stored values, then
    s dl/dz x scattered into g (float64). Targets as in scalar_loss_grad."""
    cdef Py_ssize_t i, p
    cdef double z, l, dz, e, yi
    cdef double acc_loss = 0.0, acc_dz = 0.0
    for i in range(lo, hi):
        z = b
        for p in range(indptr[i], indptr[i + 1]):
            z += <double>data[p] * w[indices[p]]
        yi = _target(y, labels, i)
        if loss == MSE:
            l = (z - yi) * (z - yi)
            dz = 2.0 * (z - yi)
        else:
            e = exp(-fabs(z))
            l = (z if z > 0.0 else 0.0) + log1p(e) - yi * z
            dz = (1.0 if z >= 0.0 else e) / (1.0 + e) - yi
        if has_sw:
            l *= sw[i]
            dz *= sw[i]
        acc_loss += l
        acc_dz += dz
        for p in range(indptr[i], indptr[i + 1]):
            g[indices[p]] += dz * data[p]
    loss_sum[0] = acc_loss
    dz_sum[0] = acc_dz


def csr_scalar_loss_grad(
    const floating[::1] data, const index_t[::1] indices, const index_t[::1] indptr,
    const int64_t[::1] bounds, const floating[::1] y, const unsigned char[::1] labels,
    const floating[::1] w, double b, const floating[::1] sw, int loss, double[:, ::1] grads,
    double[::1] dz_sums, double[::1] losses, int n_threads,
):
    """Sums for mse/logistic on CSR X into per-task rows; task c takes rows
    bounds[c]..bounds[c + 1]. As scalar_loss_grad otherwise."""
    cdef const unsigned char* labels_ptr = &labels[0] if labels.shape[0] > 0 else NULL
    cdef const floating* y_ptr = &y[0] if y.shape[0] > 0 else NULL
    cdef Py_ssize_t n_tasks = grads.shape[0]
    cdef Py_ssize_t c
    cdef bint has_sw = sw.shape[0] > 0
    cdef const floating* sw_ptr = &sw[0] if has_sw else NULL
    cdef const floating* data_ptr = &data[0] if data.shape[0] > 0 else NULL
    cdef const index_t* indices_ptr = &indices[0] if indices.shape[0] > 0 else NULL
    with nogil:
        for c in prange(n_tasks, schedule="dynamic", chunksize=1, num_threads=n_threads):
            _csr_scalar_chunk(data_ptr, indices_ptr, &indptr[0], bounds[c], bounds[c + 1], y_ptr,
                              labels_ptr, &w[0], b, sw_ptr, has_sw, loss, &grads[c, 0], &dz_sums[c],
                              &losses[c])


cdef void _csr_softmax_chunk(
    const floating* data, const index_t* indices, const index_t* indptr, Py_ssize_t lo,
    Py_ssize_t hi, const Py_ssize_t* y, const floating* W, const double* b, Py_ssize_t k,
    const floating* sw, bint has_sw, double* G, double* r_sum, double* loss_sum,
) noexcept nogil:
    """softmax for CSR rows lo..hi; W (d, k) row-major, G (d, k) float64."""
    cdef Py_ssize_t i, p, q, j, label
    cdef double v, top, margin, sum_e, s, scale
    cdef double acc_loss = 0.0
    cdef double* z = <double*> malloc(k * sizeof(double))
    for i in range(lo, hi):
        for q in range(k):
            z[q] = b[q]
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            for q in range(k):
                z[q] += v * W[j * k + q]
        top = z[0]
        for q in range(1, k):
            top = z[q] if z[q] > top else top
        label = y[i]
        margin = z[label] - top
        sum_e = 0.0
        for q in range(k):
            z[q] = exp(z[q] - top)
            sum_e += z[q]
        s = sw[i] if has_sw else 1.0
        acc_loss += s * (log(sum_e) - margin)
        scale = s / sum_e
        for q in range(k):
            z[q] *= scale
        z[label] -= s
        for q in range(k):
            r_sum[q] += z[q]
        for p in range(indptr[i], indptr[i + 1]):
            v = data[p]
            j = indices[p]
            for q in range(k):
                G[j * k + q] += v * z[q]
    free(z)
    loss_sum[0] = acc_loss


def csr_softmax_loss_grad(
    const floating[::1] data, const index_t[::1] indices, const index_t[::1] indptr,
    const int64_t[::1] bounds, const Py_ssize_t[::1] y, const floating[:, ::1] W, const double[::1] b,
    const floating[::1] sw, double[:, ::1] grads, double[:, ::1] r_sums, double[::1] losses,
    int n_threads,
):
    """Sums for softmax on CSR X into per-task rows: grads (T, d*k), r_sums (T, k)."""
    cdef Py_ssize_t n_tasks = grads.shape[0], k = W.shape[1]
    cdef Py_ssize_t c
    cdef bint has_sw = sw.shape[0] > 0
    cdef const floating* sw_ptr = &sw[0] if has_sw else NULL
    cdef const floating* data_ptr = &data[0] if data.shape[0] > 0 else NULL
    cdef const index_t* indices_ptr = &indices[0] if indices.shape[0] > 0 else NULL
    with nogil:
        for c in prange(n_tasks, schedule="dynamic", chunksize=1, num_threads=n_threads):
            _csr_softmax_chunk(data_ptr, indices_ptr, &indptr[0], bounds[c], bounds[c + 1], &y[0], &W[0, 0],
                               &b[0], k, sw_ptr, has_sw, &grads[c, 0], &r_sums[c, 0], &losses[c])


def gd_step(floating[::1] w, const floating[::1] g, double lr, double l1, double l2):
    """In place: w <- soft_threshold(w - lr (g + 2 l2 w), lr l1)."""
    cdef Py_ssize_t j
    cdef double v, t = lr * l1
    with nogil:
        for j in range(w.shape[0]):
            v = w[j] - lr * (g[j] + 2.0 * l2 * w[j])
            if v > t:
                w[j] = <floating>(v - t)
            elif v < -t:
                w[j] = <floating>(v + t)
            elif v == v:
                w[j] = 0
            else:  # NaN stays NaN: a diverging run must stay detectable
                w[j] = <floating>v


def penalty(const floating[::1] w, double l1, double l2):
    """l1 sum|w| + l2 sum w**2, accumulated in float64."""
    cdef Py_ssize_t j
    cdef double v, abs_sum = 0.0, sq_sum = 0.0
    with nogil:
        for j in range(w.shape[0]):
            v = w[j]
            abs_sum += fabs(v)
            sq_sum += v * v
    return l1 * abs_sum + l2 * sq_sum
