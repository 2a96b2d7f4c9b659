"""Benchmark cases: each builds its inputs once and hands back a zero-argument callable.

Every backend and the streaming-read yardstick share one pytest-benchmark group per
(kernel, loss, shape, dtype), so one table shows each backend beside the NumPy reference.
With --benchmark-disable (the CI smoke run) the shapes shrink so the suite only checks
that every case runs.
"""

import os

import numpy as np
import pytest

from fastgd import _bench

# Shapes of the timed runs: (n, d): the 64 features, the textbook d = 1, a narrow
# d = 4 (the CPU kernels' one-pass loop for narrow rows), and wide rows. FASTGD_BENCH_N
# scales the row count.
N = int(os.environ.get("FASTGD_BENCH_N", "2000000"))
SHAPES = [(N, 64), (5 * N, 1), (5 * N // 4, 4), (max(1, N // 100), 5000)]
SMOKE_SHAPES = [(1000, 64), (5000, 1), (2000, 4), (50, 500)]


def pytest_generate_tests(metafunc):
    if "shape" in metafunc.fixturenames:
        smoke = metafunc.config.getoption("benchmark_disable", False)
        shapes = SMOKE_SHAPES if smoke else SHAPES
        metafunc.parametrize("shape", shapes, ids=[f"{n}x{d}" for n, d in shapes])


@pytest.fixture(scope="module")
def data_cache():
    """Inputs built once per (shape, dtype, loss) and shared by every backend's case."""
    cache = {}

    def get(shape, dtype, loss):
        key = (shape, np.dtype(dtype).name, loss)
        if key not in cache:
            cache.clear()  # one data set in memory at a time
            cache[key] = _bench.make_data(*shape, loss, dtype)
        return cache[key]

    return get
