"""Shared fixtures. The CUDA simulator must be switched on before numba is imported."""

import os
import sys

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
if os.environ["NUMBA_ENABLE_CUDASIM"] == "1":
    # The simulator runs each CUDA thread as a Python thread, and its block scheduler
    # polls them while holding the GIL: at the default 5 ms switch interval every
    # syncthreads costs milliseconds. A 50 us interval makes CUDA tests ~10x faster.
    sys.setswitchinterval(5e-5)

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from fastgd import _config, _registry

settings.register_profile(
    "fastgd",
    derandomize=True,  # the same examples on every run and machine
    deadline=None,  # first calls JIT-compile
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastgd"))

# Small CUDA blocks: test inputs of tens of rows then span several blocks and several
# grid-stride passes, and the simulator (one Python thread per CUDA thread) stays quick.
_config.CUDA_THREADS_PER_BLOCK = 16
_config.CUDA_MAX_BLOCKS = 3
# One lane per row: the simulator adds a row's lanes through block barriers, which cost it
# milliseconds each. The tests of the lanes' sums (test_backend_cuda.py) set more.
_config.CUDA_MAX_LANES_PER_ROW = 1


def backend_params():
    """One pytest.param per known backend, skipped with the reason if it cannot run here."""
    reasons = _registry.unavailable_reasons()
    return [
        pytest.param(name, id=name, marks=pytest.mark.skipif(name in reasons, reason=reasons.get(name, "")))
        for name in _registry.BACKENDS
    ]


BACKENDS = backend_params()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
