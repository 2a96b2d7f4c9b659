"""Timing helpers shared by ``fastgd bench`` and the pytest-benchmark suites.

The yardstick is a plain streaming read of X: a parallel, read-only sum over every
element, in the same process. A fused ``loss_grad`` must read X at least once, so the
read's time is the floor a kernel can approach. Every ``loss_grad`` also reads its
targets y, which at d = 1 are as many bytes as X (float y) or an eighth of them (uint8
labels): ``stream-read+y`` reads X and y in one pass, the floor itself, shown beside the
yardstick as a fraction of it.
"""

import time

import numba
import numpy as np
from numba import types
from numba.extending import overload

from . import _config, _registry
from .backends._tasks import tasks
from .backends.numba import _FASTMATH, _total

#: Elements of float32 X (or y) the reads sum in float32 before adding them into a float64
#: sum. Every element into float64 at once left the float32 read bound by the conversions,
#: not by memory, on the 2-core Intel Xeon (Emerald Rapids) test VM: 2M x 64 float32 read at
#: 17.7 GB/s against 23.5 for float64 (and for float32 summed in float32) in one process;
#: runs of 4,096 read it at 24.2-24.8 (256: 20.5-21.5, 1,024: 21.4).
_RUN = 4096


def _run_zero(xs):
    """A run's starting sum: 0 in float32 for float32 xs, in int32 for uint8 xs (labels),
    else in float64."""


@overload(_run_zero)
def _run_zero_overload(xs):
    if xs.dtype == types.float32:
        return lambda xs: np.float32(0.0)
    if xs.dtype == types.uint8:  # a run's sum at most 255 * _RUN: exact in int32
        return lambda xs: np.int32(0)
    return lambda xs: 0.0


def _run_add(s, v):
    """s + v in s's type: numba would widen an int32 sum of uint8 values to int64, a
    quarter of the lanes (the 10M uint8 labels' read: 0.87 -> 0.57 ms on one core)."""


@overload(_run_add)
def _run_add_overload(s, v):
    if s == types.int32:
        return lambda s, v: np.int32(s + v)
    return lambda s, v: s + v


@numba.njit(inline="always")
def _sum_runs(xs):
    """The sum of xs as a float64: runs of _RUN elements summed in float32 where xs is
    float32, in int32 where it is uint8 (vectorised), each run's sum then added in
    float64."""
    acc = 0.0
    for lo in range(0, xs.shape[0], _RUN):
        run = xs[lo : min(xs.shape[0], lo + _RUN)]
        s = _run_zero(run)
        for i in range(run.shape[0]):  # indices known >= 0: no wraparound check, vectorised
            s = _run_add(s, run[i])
        acc += s
    return acc


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _stream_sum(flat, n_tasks, n_threads):
    size = flat.shape[0]
    chunk = (size + n_tasks - 1) // n_tasks
    partial = np.zeros(n_tasks)
    counter = np.zeros(1, np.int64)
    for _thread in numba.prange(n_threads):
        for c in tasks(counter, n_tasks):
            partial[c] = _sum_runs(flat[c * chunk : min(size, (c + 1) * chunk)])
    return _total(partial)


def stream_read(X):
    """Read every element of X once (the yardstick); returns their sum.

    One flat, vectorised pass over X's buffer, whatever X's shape (for narrow X, d = 1, a
    row-by-row loop would be a slower, flattering yardstick), in the kernels' tasks
    (_config.cpu_tasks), taken by the threads as they come free as the kernels' are.
    """
    n_tasks = _config.cpu_tasks(X.shape[0], X[:1].nbytes)
    return _stream_sum(X.reshape(-1), n_tasks, numba.get_num_threads())


#: Rows of X (and of y) a task reads in one go in _stream_sum_xy: two streams side by side.
_XY_PART_ROWS = 2048


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _stream_sum_xy(flat, d, y, n_tasks, n_threads):
    n = y.shape[0]
    chunk = (n + n_tasks - 1) // n_tasks
    partial = np.zeros(n_tasks)
    counter = np.zeros(1, np.int64)
    for _thread in numba.prange(n_threads):
        for c in tasks(counter, n_tasks):
            acc = 0.0
            for lo in range(c * chunk, min(n, (c + 1) * chunk), _XY_PART_ROWS):
                hi = min(n, (c + 1) * chunk, lo + _XY_PART_ROWS)
                acc += _sum_runs(flat[lo * d : hi * d]) + _sum_runs(y[lo:hi])
            partial[c] = acc
    return _total(partial)


def stream_read_xy(X, y):
    """Read every element of X and of y once, side by side (the bytes a ``loss_grad`` call
    must read); returns the sum of both. Each task (as stream_read's) reads its rows' part
    of X and of y in parts of _XY_PART_ROWS rows."""
    n_tasks = _config.cpu_tasks(X.shape[0], X[:1].nbytes)
    return _stream_sum_xy(X.reshape(-1), X.shape[1], y, n_tasks, numba.get_num_threads())


def make_data(n, d, loss, dtype, *, k=10, seed=0):
    """Synthetic X (n, d), y, w, b for a benchmark, generated in blocks to bound memory.

    Logistic y is uint8 labels 0/1, as the solvers and estimators pass them to the kernels
    (one byte a row; float y takes X's dtype's bytes a row, which at d = 1 is as much as X)."""
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
    y = (rng.random(n) < 0.5).view(np.uint8) if loss == "logistic" else rng.standard_normal(n).astype(dtype)
    return X, y, w, 0.0


def _timed_rounds(calls, repeat):
    """Seconds of each call in each of `repeat` rounds (one untimed warm-up round first)."""
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: np.array(t) for name, t in times.items()}


#: Seconds to wait after the numpy backend's BLAS calls: OpenBLAS threads spin for a while
#: after a call and would slow the parallel kernel timed next.
BLAS_SETTLE_S = 0.5


def device_case(module, loss, X, y, w, b):
    """A zero-argument loss_grad call on ``module`` (the cuda backend) with X, y, w and b
    copied to the GPU once, beforehand: the call then reads X from GPU memory, as a
    training loop that keeps its data on the device does."""
    on_device = [module.device_copy(a) for a in (X, y, w)]
    b_arg = module.device_copy(b) if np.ndim(b) else b
    return lambda: module.loss_grad(*on_device, b_arg, loss, None), on_device[0]


def yardstick(backend):
    """The yardstick ``backend`` is compared with: a read of X where that backend reads it
    (stream-read+y, the read of X and y, is compared with the read of X too)."""
    return "gpu-read" if backend.startswith(("cuda", "gpu-")) else "stream-read"


def kernel_table(n, d, loss, dtype, backends, repeat=5, k=10):
    """Rows of (name, seconds, GB/s of X, fraction of the read yardstick, speedup over numpy,
    time against logistic).

    The numpy reference is timed first, on its own; then every round times the yardstick,
    the read of X and y (``stream-read+y``, the bytes every backend must read: its fraction
    of the read is the most a kernel could reach) and each compiled backend once, so all of
    them see the same state of a shared,
    drifting machine. Seconds are medians over the rounds; the fraction of the read is
    the median of the per-round ratios. The cuda backend gets X, y and w in GPU memory
    (copied once, untimed) and is compared with a streaming read of X on the GPU
    (``gpu-read``); the CPU backends with one on the CPU (``stream-read``).

    For softmax every round also times each CPU backend's logistic loss_grad on the same X
    (labels y mod 2, the first class's coefficients), right after its softmax call: the
    last field is the median of the per-round ratios of the two times (NaN otherwise).
    """
    X, y, w, b = make_data(n, d, loss, dtype, k=k)
    modules = {name: _registry.load(name) for name in backends}
    times = {}
    if "numpy" in modules:
        times = _timed_rounds({"numpy": lambda: modules["numpy"].loss_grad(X, y, w, b, loss, None)}, repeat)
        time.sleep(BLAS_SETTLE_S)
    calls = {"stream-read": lambda: stream_read(X), "stream-read+y": lambda: stream_read_xy(X, y)}
    names = ["stream-read", "stream-read+y"]
    against = {}  # backend -> the name of its logistic call
    if loss == "softmax":
        y_binary = (y % 2).astype(np.uint8)
        w_binary = np.ascontiguousarray(w[:, 0])
    for name, module in modules.items():
        if name == "cuda":
            calls[name], X_device = device_case(module, loss, X, y, w, b)
            calls["gpu-read"] = lambda m=module, Xd=X_device: m.stream_read(Xd)
            names.append("gpu-read")
        elif name != "numpy":
            calls[name] = lambda m=module: m.loss_grad(X, y, w, b, loss, None)
            if loss == "softmax":
                against[name] = f"{name} (logistic)"
                calls[against[name]] = lambda m=module: m.loss_grad(
                    X, y_binary, w_binary, 0.0, "logistic", None
                )
    times.update(_timed_rounds(calls, repeat))
    numpy_sec = float(np.median(times["numpy"])) if "numpy" in times else float("nan")
    rows = []
    for name in names + list(backends):
        sec = float(np.median(times[name]))
        read = times[yardstick(name)]
        frac = float(np.median(read / times[name])) if name != "numpy" else float(np.median(read)) / sec
        versus = float(np.median(times[name] / times[against[name]])) if name in against else float("nan")
        rows.append((name, sec, X.nbytes / 1e9 / sec, frac, numpy_sec / sec, versus))
    return rows
