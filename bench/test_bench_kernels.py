"""loss_grad on every backend beside the NumPy reference and a plain streaming read of X.

Run: ``pytest bench --benchmark-only`` (``FASTGD_BENCH_N`` sets the row count).
"""

import time

import numpy as np
import pytest

from fastgd import _bench, _config, _registry

from cases import BACKENDS, real_gpu

YARDSTICKS = [
    pytest.param("stream-read", id="stream-read"),
    pytest.param("stream-read+y", id="stream-read+y"),  # X and y: the bytes every kernel reads
    pytest.param(
        "gpu-read", id="gpu-read", marks=pytest.mark.skipif(not real_gpu(), reason="needs a real GPU")
    ),
]
# The cuda backend with its register kernel for mse/logistic on C-ordered X switched on
# (``cuda-registers``) and off (``cuda-tiles``), beside ``cuda`` (the default, "auto"):
# measurements to choose _config.CUDA_REGISTER_KERNEL's default from.
CUDA_VARIANTS = [
    pytest.param(name, id=name, marks=pytest.mark.skipif(not real_gpu(), reason="needs a real GPU"))
    for name in ("cuda-registers", "cuda-tiles")
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", ["mse", "logistic", "softmax"])
@pytest.mark.parametrize("backend", BACKENDS + YARDSTICKS + CUDA_VARIANTS)
def test_loss_grad(benchmark, data_cache, backend, loss, dtype, shape, monkeypatch):
    X, y, w, b = data_cache(shape, dtype, loss)
    if backend in ("cuda-registers", "cuda-tiles"):
        monkeypatch.setattr(_config, "CUDA_REGISTER_KERNEL", backend == "cuda-registers")
    if backend == "stream-read":
        case = lambda: _bench.stream_read(X)
    elif backend == "stream-read+y":
        case = lambda: _bench.stream_read_xy(X, y)
    elif backend == "gpu-read":  # the yardstick of the cuda backend: X read from GPU memory
        cuda_backend = _registry.load("cuda")
        X_device = cuda_backend.device_copy(X)
        case = lambda: cuda_backend.stream_read(X_device)
    elif backend in ("cuda", "cuda-registers", "cuda-tiles"):  # X, y, w copied to the GPU once, untimed
        case, _ = _bench.device_case(_registry.load("cuda"), loss, X, y, w, b)
    else:
        module = _registry.load(backend)
        case = lambda: module.loss_grad(X, y, w, b, loss, None)
    case()  # warm-up: JIT compilation stays out of the timings
    time.sleep(_bench.BLAS_SETTLE_S)  # let the previous case's BLAS threads go idle
    benchmark.group = f"loss_grad|{loss}|{shape[0]}x{shape[1]}|{dtype}"
    benchmark.extra_info["bytes_of_X"] = X.nbytes
    benchmark.extra_info["yardstick"] = _bench.yardstick(backend)
    result = benchmark(case)
    assert np.all(np.isfinite(result[0] if isinstance(result, tuple) else result))
