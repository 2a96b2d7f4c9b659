"""Dask arrays: every gradient evaluation runs the kernel where each block of rows lives.

``minimize`` trains on a Dask array X (rows split in blocks, all columns in each block)
by giving its solvers a backend-like object, :class:`DaskBackend`: its ``loss_grad`` sends
one task per block of rows to the Dask scheduler (the ``dask.distributed`` cluster of the
current ``Client``, if there is one), each task runs the chosen CPU backend's fused kernel
on its block and returns the block's weighted sums (loss, gradient, intercept gradient,
weight), and the client adds these few numbers. X and y never travel to the client; only
w (d or d x k values) travels to the workers. ``gd_step`` and ``penalty`` act on w and run
in the client, on the inner backend.

Dask is imported only when a Dask array is given (``pip install fastgd[dask]``).
"""

import contextlib

import numpy as np
from threadpoolctl import ThreadpoolController

from . import _registry, _validate


def is_dask_array(a):
    """True for a ``dask.array.Array``, without importing dask."""
    return type(a).__module__.startswith("dask.array") and hasattr(a, "dask")


def compute_unique(a):
    """The distinct values of a Dask array, computed on the cluster (a small result)."""
    import dask.array as da

    return da.unique(a).compute()


_controller = None  # this process's ThreadpoolController, made on first use


@contextlib.contextmanager
def _one_kernel_thread():
    """Run a block's kernel on one thread: the worker runs one task per thread it has, so
    a kernel that also spread over every core would oversubscribe them (on 2 cores, with
    2 workers, that made each evaluation 3x slower)."""
    import numba

    global _controller
    if _controller is None:  # finding the thread pools scans the loaded libraries: once
        _controller = ThreadpoolController()
    previous = numba.get_num_threads()
    numba.set_num_threads(1)  # this thread only; the numba backend reads it per call
    try:
        with _controller.limit(limits=1):  # OpenMP (the cython backend) and BLAS
            yield
    finally:
        numba.set_num_threads(previous)


def _block_sums(X, y, sample_weight, w, b, loss, backend):
    """Unnormalised (sum s l, sum s dl/dw, sum s dl/db, sum s) of one block (on a worker)."""
    module = _registry.load(backend)
    X = np.ascontiguousarray(X)
    with _one_kernel_thread():
        value, grad_w, grad_b = module.loss_grad(X, y, w, b, loss, sample_weight)
    total = float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
    return (
        value * total,
        np.asarray(grad_w, np.float64) * total,
        np.asarray(grad_b, np.float64) * total,
        total,
    )


class DaskBackend:
    """A backend for the solvers whose ``loss_grad`` maps the kernel of ``inner`` over the
    row blocks of a Dask X and reduces the blocks' sums; ``gd_step``/``penalty`` are
    ``inner``'s.

    With a ``dask.distributed`` client, the persisted blocks are held as futures and each
    evaluation is one ``client.map`` over them (a few milliseconds of overhead); without
    one, the blocks go through ``dask.compute`` on the local scheduler.
    """

    SUPPORTS_CSR = False

    def __init__(self, inner, client=None, blocks=None):
        self.inner = inner
        self.NAME = f"dask+{inner.NAME}"
        self.gd_step = inner.gd_step
        self.penalty = inner.penalty
        self.client = client
        self.blocks = blocks  # (X, y, sample weight) -> list of block futures, in row order

    def _parts(self, X, y, w, b, loss, sample_weight):
        if self.client is not None and is_dask_array(y) and y is self.blocks["y_array"]:
            fx, fy, fs = self.blocks["X"], self.blocks["y"], self.blocks["sample_weight"]
            futures = self.client.map(
                _block_sums, fx, fy, fs, w=w, b=b, loss=loss, backend=self.inner.NAME, pure=False
            )
            return self.client.gather(futures)
        import dask

        if not is_dask_array(y):  # a vector made by the client (the Lipschitz estimate)
            y = _like_rows(X, y)
        blocks_X = X.to_delayed().ravel()
        blocks_y = y.to_delayed().ravel()
        blocks_s = sample_weight.to_delayed().ravel() if sample_weight is not None else [None] * len(blocks_X)
        task = dask.delayed(_block_sums, pure=False)
        w_remote = dask.delayed(w, pure=False)  # sent once per evaluation, shared by the tasks
        parts = [
            task(bx, by, bs, w_remote, b, loss, self.inner.NAME)
            for bx, by, bs in zip(blocks_X, blocks_y, blocks_s, strict=True)
        ]
        return dask.compute(*parts)

    def loss_grad(self, X, y, w, b, loss, sample_weight):
        dtype = X.dtype
        parts = self._parts(X, y, w, b, loss, sample_weight)
        total = sum(p[3] for p in parts)
        value = sum(p[0] for p in parts) / total
        grad_w = sum(p[1] for p in parts) / total
        grad_b = sum(p[2] for p in parts) / total
        grad_b = grad_b.astype(dtype) if loss == "softmax" else dtype.type(grad_b)
        return value, grad_w.astype(dtype), grad_b


def _block_futures(client, X, y, sample_weight):
    """Futures of the persisted blocks of X, y and the weights, in row order."""

    def futures(a):
        if a is None:
            return None
        return client.compute(list(a.to_delayed().ravel()))

    fx, fy = futures(X), futures(y)
    fs = futures(sample_weight) if sample_weight is not None else [None] * len(fx)
    return {"X": fx, "y": fy, "sample_weight": fs, "y_array": y}


def _like_rows(X, v):
    import dask.array as da

    return da.from_array(np.asarray(v), chunks=(X.chunks[0],))


def prepare(X, y, loss, sample_weight, backend, n_classes):
    """Validated, persisted Dask inputs and the backend object for ``Problem``.

    Returns (X, y, sample_weight, module, n_classes). X is rechunked to whole rows (all
    columns in a block) and persisted on the cluster with y and the weights, so every
    iteration reads them where they live; logistic y as uint8 labels, the blocks' targets
    one byte a row. One pass over the data checks the values.
    """
    import dask
    import dask.array as da

    inner = _registry.resolve(backend)
    if inner.NAME == "cuda":
        raise TypeError("Dask arrays are trained with a CPU backend on the workers (numpy, numba, cython)")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got shape {X.shape}")
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X is empty: shape {X.shape}; need at least one sample and one feature")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    X = X.astype(dtype).rechunk({1: -1})
    y = y if is_dask_array(y) else da.from_array(np.asarray(y), chunks=(X.chunks[0],))
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match X, got {y.shape}")
    y = y.rechunk((X.chunks[0],))
    if loss == "softmax":
        y = y.astype(np.intp)
    elif y.dtype != dtype and not (loss == "logistic" and y.dtype.kind in "biu"):
        y = y.astype(dtype)
    if sample_weight is not None:
        if not is_dask_array(sample_weight):
            sample_weight = da.from_array(np.asarray(sample_weight), chunks=(X.chunks[0],))
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}")
        sample_weight = sample_weight.astype(dtype).rechunk((X.chunks[0],))
    X, y, sample_weight = dask.persist(X, y, sample_weight)
    checks = {"finite_X": da.isfinite(X).all(), "y_min": y.min(), "y_max": y.max()}
    if loss != "softmax":
        checks["finite_y"] = da.isfinite(y).all()
    if loss == "logistic":
        checks["binary"] = ((y == 0) | (y == 1)).all()
    if sample_weight is not None:
        checks["finite_sw"] = da.isfinite(sample_weight).all()
        checks["sw_min"] = sample_weight.min()
        checks["sw_sum"] = sample_weight.sum()
    (found,) = dask.compute(checks)
    if not found["finite_X"]:
        raise ValueError("X contains NaN or infinity")
    if loss != "softmax" and not found["finite_y"]:
        raise ValueError("y contains NaN or infinity")
    if loss == "logistic" and not found["binary"]:
        raise ValueError("logistic loss needs y in {0, 1}")
    if loss == "softmax":
        if found["y_min"] < 0:
            raise ValueError(f"softmax labels must be integers 0..k-1, got a label {found['y_min']}")
        k = int(found["y_max"]) + 1
        n_classes = k if n_classes is None else n_classes
        if k > n_classes or n_classes < 2:
            raise ValueError(f"softmax labels must lie in 0..{n_classes - 1} with at least 2 classes")
    if sample_weight is not None:
        if not found["finite_sw"]:
            raise ValueError("sample_weight contains NaN or infinity")
        if found["sw_min"] < 0:
            raise ValueError("sample_weight must be >= 0")
        if not found["sw_sum"] > 0:
            raise ValueError("sample_weight must have a positive sum")
    _validate.check_loss(loss)
    if loss == "logistic":  # uint8 labels 0/1, one byte a row as in memory (Problem.from_user)
        (y,) = dask.persist(y.map_blocks(_validate.binary_labels, check_values=False, dtype=np.uint8))
    client = _current_client()
    blocks = _block_futures(client, X, y, sample_weight) if client is not None else None
    return X, y, sample_weight, DaskBackend(inner, client, blocks), n_classes


def _current_client():
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client: the local scheduler runs the tasks
        return None
