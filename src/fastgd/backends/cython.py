"""The Cython backend: OpenMP kernels compiled from ``kernels/cython_kernels.pyx``.

The compiled module ``fastgd.backends._cython_kernels`` is built by CMake when fastgd is
installed (``pip install .``). Each kernel takes caller-allocated float64 buffers, one row
per thread, and fills them in one pass over X; this module sums the rows.
"""

import numpy as np

from .. import _config
from .._config import LOSSES
from .._registry import BackendUnavailableError

try:
    from . import _cython_kernels as _k
except ImportError as exc:  # pragma: no cover - depends on how fastgd was installed
    raise BackendUnavailableError(
        "the compiled extension fastgd.backends._cython_kernels is not built "
        f"({exc}); install fastgd from source with `pip install .` (needs a C compiler)"
    ) from None

NAME = "cython"


def _n_threads():
    return _k.max_threads()


def loss_grad(X, y, w, b, loss, sample_weight):
    dtype = X.dtype
    n, d = X.shape
    n_threads = _n_threads()
    sw = np.empty(0, dtype) if sample_weight is None else sample_weight
    total = n if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
    losses = np.zeros(n_threads)
    if loss == "softmax":
        k = w.shape[1]
        grads = np.zeros((n_threads, k * d))
        r_sums = np.zeros((n_threads, k))
        block = _config.cpu_block_rows(d, dtype.itemsize, by_columns=False)
        Wt = np.ascontiguousarray(w.T)
        _k.softmax_loss_grad(X, y, Wt, b.astype(np.float64), sw, block, grads, r_sums, losses)
        grad = grads.sum(axis=0).reshape(k, d).T
        return losses.sum() / total, (grad / total).astype(dtype), (r_sums.sum(axis=0) / total).astype(dtype)
    grads = np.zeros((n_threads, d))
    dz_sums = np.zeros(n_threads)
    block = _config.cpu_block_rows(d, dtype.itemsize, by_columns=d < _config.CPU_SMALL_D)
    _k.scalar_loss_grad(X, y, w, float(b), sw, LOSSES.index(loss), block, grads, dz_sums, losses)
    grad = grads.sum(axis=0)
    return losses.sum() / total, (grad / total).astype(dtype), dtype.type(dz_sums.sum() / total)


def gd_step(w, grad_w, lr, l1, l2):
    _k.gd_step(w.reshape(-1), grad_w.reshape(-1), lr, l1, l2)
    return w


def penalty(w, l1, l2):
    return float(_k.penalty(w.reshape(-1), l1, l2))
