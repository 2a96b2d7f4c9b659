"""The Numba backend: parallel CPU kernels, one pass over X.

Rows are split into one contiguous chunk per thread; each chunk accumulates its loss
and gradient in its own float64 buffer (no sharing, no atomics), and the buffers are
summed at the end. One source serves float32 and float64: Numba specialises on the
dtypes. The thread count is passed in from Python because calling
``numba.get_num_threads()`` inside a kernel disables ``cache=True``.
"""

import math

import numba
import numpy as np

from .._config import LOSSES, NUMBA_FASTMATH, SOFTMAX
from ._rowmath import scalar_loss_dz

NAME = "numba"

_FASTMATH = set(NUMBA_FASTMATH)


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _scalar_loss_grad(X, y, w, b, sw, loss_code, zero, n_chunks):
    """Loss and gradient sums for mse/logistic.

    X (n, d), y (n,), w (d,), sw (n,) or (0,) for no weights, all of X's dtype;
    b float64; zero X.dtype's 0 (keeps the row dot product in X's dtype, so float32
    data is read and multiplied as float32). Returns (sum s l, sum s dl/dz x, sum s dl/dz),
    float64.
    """
    n, d = X.shape
    has_sw = sw.shape[0] > 0
    chunk = (n + n_chunks - 1) // n_chunks
    grads = np.zeros((n_chunks, d))
    losses = np.zeros(n_chunks)
    dz_sums = np.zeros(n_chunks)
    for c in numba.prange(n_chunks):
        g = grads[c]
        loss_sum = 0.0
        dz_sum = 0.0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            x = X[i]
            z = zero
            for j in range(d):
                z += x[j] * w[j]
            loss_i, dz = scalar_loss_dz(loss_code, np.float64(z) + b, np.float64(y[i]))
            if has_sw:
                s = np.float64(sw[i])
                loss_i *= s
                dz *= s
            loss_sum += loss_i
            dz_sum += dz
            for j in range(d):
                g[j] += dz * x[j]
        losses[c] = loss_sum
        dz_sums[c] = dz_sum
    grad = np.zeros(d)
    for c in range(n_chunks):
        for j in range(d):
            grad[j] += grads[c, j]
    return losses.sum(), grad, dz_sums.sum()


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _softmax_loss_grad(X, y, W, b, sw, n_chunks):
    """Loss and gradient sums for softmax.

    X (n, d), W (d, k), b (k,), sw (n,) or (0,) in X's dtype; y (n,) int labels.
    Returns (sum s l, sum s (p - onehot) x^T of shape (d, k), sum s (p - onehot)), float64.
    """
    n, d = X.shape
    k = W.shape[1]
    has_sw = sw.shape[0] > 0
    chunk = (n + n_chunks - 1) // n_chunks
    grads = np.zeros((n_chunks, d, k))
    losses = np.zeros(n_chunks)
    r_sums = np.zeros((n_chunks, k))
    for c in numba.prange(n_chunks):
        g = grads[c]
        z = np.empty(k)
        r = np.empty(k)
        loss_sum = 0.0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            x = X[i]
            for m in range(k):
                z[m] = b[m]
            for j in range(d):
                xj = x[j]
                for m in range(k):
                    z[m] += xj * W[j, m]
            zmax = z[0]
            for m in range(1, k):
                zmax = max(zmax, z[m])
            sum_e = 0.0
            for m in range(k):
                r[m] = math.exp(z[m] - zmax)
                sum_e += r[m]
            s = np.float64(sw[i]) if has_sw else 1.0
            label = y[i]
            loss_sum += s * (zmax + math.log(sum_e) - z[label])
            scale = s / sum_e
            for m in range(k):
                r[m] *= scale
            r[label] -= s
            for m in range(k):
                r_sums[c, m] += r[m]
            for j in range(d):
                xj = x[j]
                for m in range(k):
                    g[j, m] += xj * r[m]
        losses[c] = loss_sum
    grad = np.zeros((d, k))
    r_sum = np.zeros(k)
    for c in range(n_chunks):
        for m in range(k):
            r_sum[m] += r_sums[c, m]
        for j in range(d):
            for m in range(k):
                grad[j, m] += grads[c, j, m]
    return losses.sum(), grad, r_sum


def loss_grad(X, y, w, b, loss, sample_weight):
    dtype = X.dtype
    n_chunks = numba.get_num_threads()
    sw = np.empty(0, dtype) if sample_weight is None else sample_weight
    total = X.shape[0] if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
    if loss == "softmax":
        value, grad, grad_b = _softmax_loss_grad(X, y, w, b, sw, n_chunks)
        return value / total, (grad / total).astype(dtype), (grad_b / total).astype(dtype)
    code = LOSSES.index(loss)
    assert code != SOFTMAX
    value, grad, grad_b = _scalar_loss_grad(X, y, w, float(b), sw, code, dtype.type(0), n_chunks)
    return value / total, (grad / total).astype(dtype), dtype.type(grad_b / total)


@numba.njit(cache=True, fastmath=_FASTMATH)
def _gd_step(w, g, lr, l1, l2):
    """In place on the flat views w, g: w <- soft_threshold(w - lr (g + 2 l2 w), lr l1)."""
    t = lr * l1
    for j in range(w.shape[0]):
        v = w[j] - lr * (g[j] + 2.0 * l2 * w[j])
        if v > t:
            w[j] = v - t
        elif v < -t:
            w[j] = v + t
        else:
            w[j] = 0.0


@numba.njit(cache=True, fastmath=_FASTMATH)
def _penalty(w, l1, l2):
    abs_sum = 0.0
    sq_sum = 0.0
    for j in range(w.shape[0]):
        v = np.float64(w[j])
        abs_sum += abs(v)
        sq_sum += v * v
    return l1 * abs_sum + l2 * sq_sum


def gd_step(w, grad_w, lr, l1, l2):
    _gd_step(w.reshape(-1), grad_w.reshape(-1), lr, l1, l2)
    return w


def penalty(w, l1, l2):
    return float(_penalty(w.reshape(-1), l1, l2))
