"""Helpers shared by the CPU backends' kernels for sparse X in CSR form."""

import numpy as np

from .. import _config


def tasks(X):
    """The CPU kernels' tasks for CSR X (see _config.cpu_tasks): by the bytes of its stored
    values and their column indices."""
    n = X.shape[0]
    nnz_bytes = X.nnz * (X.data.dtype.itemsize + X.indices.dtype.itemsize)
    return _config.cpu_tasks(n, -(-nnz_bytes // max(1, n)))


def row_bounds(indptr, n_tasks):
    """Row boundaries, shape (n_tasks + 1,) int64, that give each of n_tasks tasks a
    contiguous range of rows holding about nnz / n_tasks stored values."""
    n = indptr.shape[0] - 1
    targets = (np.arange(1, n_tasks, dtype=np.int64) * int(indptr[-1])) // n_tasks
    cuts = np.searchsorted(indptr, targets, side="left")
    return np.concatenate(([0], np.minimum(cuts, n), [n])).astype(np.int64)
