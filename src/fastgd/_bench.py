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


def kernel_table(n, d, loss, dtype, backends, repeat=5, k=10):
    """Rows of (name, seconds, GB/s of X, fraction of the read yardstick, speedup over numpy).

    Every round times the yardstick and then each backend once, so all of them see the
    same state of a shared, drifting machine; seconds are medians over the rounds, and the
    two ratios are medians of the per-round ratios (after one untimed warm-up round).
    """
    X, y, w, b = make_data(n, d, loss, dtype, k=k)
    calls = {"stream-read": lambda: stream_read(X)}
    for name in backends:
        module = _registry.load(name)
        calls[name] = lambda m=module: m.loss_grad(X, y, w, b, loss, None)
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    times = {name: np.array(t) for name, t in times.items()}
    read = times["stream-read"]
    numpy_times = times.get("numpy")
    rows = []
    for name, t in times.items():
        speedup = float(np.median(numpy_times / t)) if numpy_times is not None else float("nan")
        sec = float(np.median(t))
        rows.append((name, sec, X.nbytes / 1e9 / sec, float(np.median(read / t)), speedup))
    return rows
