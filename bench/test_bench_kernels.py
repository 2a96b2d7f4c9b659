"""loss_grad on every backend beside the NumPy reference and a plain streaming read of X.

Run: ``pytest bench --benchmark-only`` (``FASTGD_BENCH_N`` sets the row count).
"""

import time

import numpy as np
import pytest

from fastgd import _bench, _registry

from cases import BACKENDS


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", ["mse", "logistic", "softmax"])
@pytest.mark.parametrize("backend", BACKENDS + [pytest.param("stream-read", id="stream-read")])
def test_loss_grad(benchmark, data_cache, backend, loss, dtype, shape):
    X, y, w, b = data_cache(shape, dtype, loss)
    if backend == "stream-read":
        case = lambda: _bench.stream_read(X)
    else:
        module = _registry.load(backend)
        case = lambda: module.loss_grad(X, y, w, b, loss, None)
    case()  # warm-up: JIT compilation stays out of the timings
    time.sleep(_bench.BLAS_SETTLE_S)  # let the previous case's BLAS threads go idle
    benchmark.group = f"loss_grad|{loss}|{shape[0]}x{shape[1]}|{dtype}"
    benchmark.extra_info["bytes_of_X"] = X.nbytes
    result = benchmark(case)
    assert np.all(np.isfinite(result[0] if isinstance(result, tuple) else result))
