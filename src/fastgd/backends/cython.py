"""The Cython backend: OpenMP kernels compiled from ``kernels/cython_kernels.pyx``.

The compiled module ``fastgd.backends._cython_kernels`` is built by CMake when fastgd is
installed (``pip install .``). Each kernel takes caller-allocated float64 buffers, one row
per task (contiguous rows that depend on X alone, ``_config.cpu_tasks``; padded so that no
two rows share a cache line, ``_sums.task_rows``), which the threads take as they come
free, and fills them in one pass over X; this module sums the rows in task order.
"""

import numpy as np
from scipy import sparse

from .. import _config
from .._config import LOSSES
from .._registry import BackendUnavailableError
from . import _csr, _sums

try:
    from . import _cython_kernels as _k
except ImportError as exc:  # pragma: no cover - depends on how fastgd was installed
    raise BackendUnavailableError(
        "the compiled extension fastgd.backends._cython_kernels is not built "
        f"({exc}); install fastgd from source with `pip install .` (needs a C compiler)"
    ) from None

NAME = "cython"
#: loss_grad also takes X as a scipy CSR matrix/array (not densified).
SUPPORTS_CSR = True
#: Every stored value of X enters the gradient as a product r * x, compiled without
#: -ffinite-math-only, so NaN or infinity in X always makes the result
#: non-finite: fastgd.loss_grad scans X for them only then, not before every call.
PROPAGATES_NONFINITE = True


def _n_threads():
    return _k.max_threads()


_NO_LABELS = np.empty(0, np.uint8)


def _targets(y, dtype):
    """(y, labels) for the kernels: y in X's dtype and no labels, or for logistic's uint8
    labels an empty y and the labels."""
    if y.dtype == np.uint8:
        return np.empty(0, dtype), y
    return y, _NO_LABELS


def _csr_loss_grad(X, y, w, b, loss, sample_weight, n_threads):
    dtype = X.dtype
    n, d = X.shape
    sw, total = _sums.weights(sample_weight, n, dtype)
    n_tasks = _csr.tasks(X)
    bounds = _csr.row_bounds(X.indptr, n_tasks)
    indices, indptr = X.indices, X.indptr
    if indices.dtype != indptr.dtype:  # scipy keeps them alike; be safe (no copy of X.data)
        indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
    losses = np.zeros(n_tasks)
    if loss == "softmax":
        k = w.shape[1]
        grads = _sums.task_rows(n_tasks, d * k)
        r_sums = _sums.task_rows(n_tasks, k)
        _k.csr_softmax_loss_grad(
            X.data, indices, indptr, bounds, y, w, b.astype(np.float64), sw, grads, r_sums, losses, n_threads
        )
        grad = grads[:, : d * k].sum(axis=0).reshape(d, k)
        return _sums.normalised(losses.sum(), grad, r_sums[:, :k].sum(axis=0), total, dtype, True)
    grads = _sums.task_rows(n_tasks, d)
    dz_sums = np.zeros(n_tasks)
    _k.csr_scalar_loss_grad(
        X.data,
        indices,
        indptr,
        bounds,
        *_targets(y, dtype),
        w,
        float(b),
        sw,
        LOSSES.index(loss),
        grads,
        dz_sums,
        losses,
        n_threads,
    )
    return _sums.normalised(losses.sum(), grads[:, :d].sum(axis=0), dz_sums.sum(), total, dtype, False)


def loss_grad(X, y, w, b, loss, sample_weight):
    n_threads = _n_threads()
    if sparse.issparse(X):
        return _csr_loss_grad(X, y, w, b, loss, sample_weight, n_threads)
    dtype = X.dtype
    n, d = X.shape
    sw, total = _sums.weights(sample_weight, n, dtype)
    n_tasks = _config.cpu_tasks(n, d * dtype.itemsize)
    losses = np.zeros(n_tasks)
    if loss == "softmax":
        k = w.shape[1]
        block = _config.cpu_block_rows(d, dtype.itemsize, softmax=True)
        Wt, b_t = _sums.softmax_coefficients(w, b, dtype)  # (k - 1 or k, d): small
        kq = Wt.shape[0]
        grads = _sums.task_rows(n_tasks, kq * d)
        r_sums = _sums.task_rows(n_tasks, k)
        _k.softmax_loss_grad(X, y, Wt, b_t, k, sw, block, grads, r_sums, losses, n_threads)
        grad = _sums.softmax_gradient(grads[:, : kq * d].sum(axis=0).reshape(kq, d), k).T
        return _sums.normalised(losses.sum(), grad, r_sums[:, :k].sum(axis=0), total, dtype, True)
    grads = _sums.task_rows(n_tasks, d)
    dz_sums = np.zeros(n_tasks)
    block = _config.cpu_block_rows(d, dtype.itemsize)
    y, labels = _targets(y, dtype)
    _k.scalar_loss_grad(
        X, y, labels, w, float(b), sw, LOSSES.index(loss), block, grads, dz_sums, losses, n_threads
    )
    return _sums.normalised(losses.sum(), grads[:, :d].sum(axis=0), dz_sums.sum(), total, dtype, False)


def gd_step(w, grad_w, lr, l1, l2):
    _k.gd_step(w.reshape(-1), grad_w.reshape(-1), lr, l1, l2)
    return w


def penalty(w, l1, l2):
    return float(_k.penalty(w.reshape(-1), l1, l2))
