"""Timing helpers shared by ``fastgd bench`` and the pytest-benchmark suites.

The yardstick is a plain streaming read of X: a parallel, read-only sum over every
element, in the same process. A fused ``loss_grad`` must read X at least once, so the
read's time is the floor a kernel can approach.
"""

import time

import numba
import numpy as np

from . import _registry
from .backends.numba import _FASTMATH


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _stream_sum(flat, n_chunks):
    size = flat.shape[0]
    chunk = (size + n_chunks - 1) // n_chunks
    partial = np.zeros(n_chunks)
    for c in numba.prange(n_chunks):
        part = flat[c * chunk : min(size, (c + 1) * chunk)]
        acc = 0.0
        for i in range(part.shape[0]):  # indices known >= 0: no wraparound check, vectorised
            acc += part[i]
        partial[c] = acc
    return partial.sum()


def stream_read(X):
    """Read every element of X once (the yardstick); returns their sum.

    One flat, vectorised pass over X's buffer split between the threads, whatever X's
    shape: for narrow X (d = 1) a row-by-row loop would be a slower, flattering yardstick.
    """
    return _stream_sum(X.reshape(-1), numba.get_num_threads())


def make_data(n, d, loss, dtype, *, k=10, seed=0):
    """Synthetic X (n, d), y, w, b for a benchmark, generated in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=dtype)
    block = max(1, (1 << 22) // d)
    for start in range(0, n, block):
        X[start : start + block] = rng.standard_normal((min(block, n - start), d), dtype=np.float32)
    if loss == "softmax":
        return (
            X,
            rng.integers(0, k, n),
            (rng.standard_normal((d, k)) / np.sqrt(d)).astype(dtype),
            np.zeros(k, dtype),
        )
    w = (rng.standard_normal(d) / np.sqrt(d)).astype(dtype)
    y = (rng.random(n) < 0.5).astype(dtype) if loss == "logistic" else rng.standard_normal(n).astype(dtype)
    return X, y, w, 0.0


def median_time(fn, repeat):
    """Median wall time of fn() over `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def kernel_table(n, d, loss, dtype, backends, repeat=5, k=10):
    """Rows of (name, seconds, GB/s of X, fraction of the read yardstick, speedup over numpy)."""
    X, y, w, b = make_data(n, d, loss, dtype, k=k)
    gigabytes = X.nbytes / 1e9
    rows = []
    read = median_time(lambda: stream_read(X), repeat)
    rows.append(("stream-read", read))
    for name in backends:
        module = _registry.load(name)
        rows.append((name, median_time(lambda m=module: m.loss_grad(X, y, w, b, loss, None), repeat)))
    numpy_time = dict(rows).get("numpy")
    return [
        (name, sec, gigabytes / sec, read / sec, (numpy_time / sec) if numpy_time else float("nan"))
        for name, sec in rows
    ]
