# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""OpenMP kernels of fastgd's ``cython`` backend.

One source serves float32 and float64 through the fused type ``floating``. Inputs are
``const`` memoryviews, so read-only arrays and memmaps are used as they are. Rows are
split into one contiguous chunk per buffer row (one per thread); each chunk writes only
its own row of the caller's float64 buffers, so threads share nothing.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, fabs, log, log1p

cimport openmp

cdef enum:
    MSE = 0
    LOGISTIC = 1


def max_threads():
    """Threads an OpenMP parallel region uses by default."""
    return openmp.omp_get_max_threads()


cdef inline double _scalar_loss_dz(int loss, double z, double y, double* dz) noexcept nogil:
    """Loss of one sample for mse/logistic; its derivative in z goes to dz[0]."""
    cdef double r, e, p
    if loss == MSE:
        r = z - y
        dz[0] = 2.0 * r
        return r * r
    # log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}): e^{-|z|} never overflows.
    e = exp(-fabs(z))
    if z >= 0.0:
        p = 1.0 / (1.0 + e)
        dz[0] = p - y
        return z + log1p(e) - y * z
    p = e / (1.0 + e)
    dz[0] = p - y
    return log1p(e) - y * z


cdef void _scalar_chunk(
    const floating* X, const floating* y, const floating* w, double b,
    const floating* sw, bint has_sw, int loss, Py_ssize_t start, Py_ssize_t stop,
    Py_ssize_t d, double* g, double* dz_sum, double* loss_sum,
) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef const floating* x
    cdef floating zx  # row dot product in X's dtype: float32 data is multiplied as float32
    cdef double z, dz, loss_i, s
    cdef double acc_loss = 0.0, acc_dz = 0.0
    for i in range(start, stop):
        x = X + i * d
        zx = 0
        for j in range(d):
            zx = zx + x[j] * w[j]
        z = <double>zx + b
        loss_i = _scalar_loss_dz(loss, z, <double>y[i], &dz)
        if has_sw:
            s = sw[i]
            loss_i = loss_i * s
            dz = dz * s
        acc_loss += loss_i
        acc_dz += dz
        for j in range(d):
            g[j] += dz * x[j]
    loss_sum[0] = acc_loss
    dz_sum[0] = acc_dz


def scalar_loss_grad(
    const floating[:, ::1] X, const floating[::1] y, const floating[::1] w, double b,
    const floating[::1] sw, int loss, double[:, ::1] grads, double[::1] dz_sums, double[::1] losses,
):
    """Sums for mse/logistic into per-thread rows: grads (T, d), dz_sums (T,), losses (T,).

    X (n, d), y (n,), w (d,), sw (n,) or (0,) for no weights; b the intercept. The sums are
    weighted but not normalised: the caller divides by sum(sw).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef Py_ssize_t n_chunks = grads.shape[0]
    cdef Py_ssize_t chunk = (n + n_chunks - 1) // n_chunks
    cdef Py_ssize_t c, start, stop
    cdef bint has_sw = sw.shape[0] > 0
    cdef const floating* sw_ptr = &sw[0] if has_sw else NULL
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=n_chunks):
            start = c * chunk
            stop = min(n, start + chunk)
            if start < stop:
                _scalar_chunk(&X[0, 0], &y[0], &w[0], b, sw_ptr, has_sw, loss, start, stop, d,
                              &grads[c, 0], &dz_sums[c], &losses[c])


cdef void _softmax_chunk(
    const floating* X, const Py_ssize_t* y, const floating* W, const floating* b,
    const floating* sw, bint has_sw, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t d, Py_ssize_t k,
    double* g, double* r_sum, double* loss_sum, double* z, double* r,
) noexcept nogil:
    cdef Py_ssize_t i, j, m, label
    cdef const floating* x
    cdef const floating* wrow
    cdef double xj, zmax, sum_e, s, scale
    cdef double acc_loss = 0.0
    for i in range(start, stop):
        x = X + i * d
        for m in range(k):
            z[m] = b[m]
        for j in range(d):
            xj = x[j]
            wrow = W + j * k
            for m in range(k):
                z[m] += xj * wrow[m]
        zmax = z[0]
        for m in range(1, k):
            if z[m] > zmax:
                zmax = z[m]
        sum_e = 0.0
        for m in range(k):
            r[m] = exp(z[m] - zmax)
            sum_e += r[m]
        s = sw[i] if has_sw else 1.0
        label = y[i]
        acc_loss += s * (zmax + log(sum_e) - z[label])
        scale = s / sum_e
        for m in range(k):
            r[m] *= scale
        r[label] -= s
        for m in range(k):
            r_sum[m] += r[m]
        for j in range(d):
            xj = x[j]
            for m in range(k):
                g[j * k + m] += xj * r[m]
    loss_sum[0] = acc_loss


def softmax_loss_grad(
    const floating[:, ::1] X, const Py_ssize_t[::1] y, const floating[::1] W, const floating[::1] b,
    const floating[::1] sw, double[:, ::1] grads, double[:, ::1] r_sums, double[::1] losses,
    double[:, ::1] scratch,
):
    """Sums for softmax into per-thread rows: grads (T, d*k), r_sums (T, k), losses (T,).

    X (n, d); W the (d, k) coefficients flattened C-order to (d*k,); b (k,); y (n,) labels;
    scratch (T, 2k) per-thread work space.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = b.shape[0]
    cdef Py_ssize_t n_chunks = grads.shape[0]
    cdef Py_ssize_t chunk = (n + n_chunks - 1) // n_chunks
    cdef Py_ssize_t c, start, stop
    cdef bint has_sw = sw.shape[0] > 0
    cdef const floating* sw_ptr = &sw[0] if has_sw else NULL
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=n_chunks):
            start = c * chunk
            stop = min(n, start + chunk)
            if start < stop:
                _softmax_chunk(&X[0, 0], &y[0], &W[0], &b[0], sw_ptr, has_sw, start, stop, d, k,
                               &grads[c, 0], &r_sums[c, 0], &losses[c], &scratch[c, 0], &scratch[c, k])


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
            else:
                w[j] = 0


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
