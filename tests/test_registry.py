"""Backend selection: names, availability, the env var, set/use/get, clear errors."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastgd
from fastgd import _registry


def run_python(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300
    )


def test_all_four_backends_available_here():
    """numpy, numba, the built Cython extension, and cuda (on the simulator in tests)."""
    assert fastgd.available_backends() == ["numpy", "numba", "cython", "cuda"], (
        _registry.unavailable_reasons()
    )


def test_default_is_fastest_available_cpu_backend():
    if os.environ.get("FASTGD_BACKEND"):
        pytest.skip("FASTGD_BACKEND is set in this environment")
    result = run_python("import fastgd; print(fastgd.get_backend())", FASTGD_BACKEND="")
    assert result.stdout.strip() == "cython", result.stderr


@pytest.mark.parametrize("name", ["numpy", "numba", "cython"])
def test_env_var_sets_default(name):
    result = run_python("import fastgd; print(fastgd.get_backend())", FASTGD_BACKEND=name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


def test_bad_env_var_lists_backends():
    result = run_python("import fastgd; print(fastgd.get_backend())", FASTGD_BACKEND="fortran")
    assert result.returncode != 0
    assert "FASTGD_BACKEND" in result.stderr and "'fortran'" in result.stderr
    for name in ("numpy", "numba", "cython", "cuda"):
        assert name in result.stderr


def test_cuda_without_gpu_or_simulator_says_so():
    """With the simulator off, cuda is available exactly where numba finds a GPU; where it
    finds none, selecting it raises an error that says so."""
    code = (
        "try:\n    from numba import cuda\n    found = cuda.is_available()\n"
        "except Exception:\n    found = False\n"
        "import fastgd\n"
        "print('GPU' if found else 'none', 'cuda' in fastgd.available_backends())\n"
        "try:\n    fastgd.set_backend('cuda')\n"
        "except fastgd.BackendUnavailableError as e:\n    print('ERR', e)\n"
    )
    result = run_python(code, NUMBA_ENABLE_CUDASIM="0")
    assert result.returncode == 0, result.stderr
    found, listed = result.stdout.splitlines()[0].split()
    if found == "GPU":  # a machine with a real GPU: the backend is there and selectable
        assert listed == "True" and "ERR" not in result.stdout
    else:
        assert listed == "False"
        assert result.stdout.splitlines()[1].startswith("ERR") and "GPU" in result.stdout


def test_unknown_name_raises_value_error_listing_backends():
    for call in (fastgd.set_backend, fastgd.use_backend, lambda n: fastgd.penalty(np.ones(2), backend=n)):
        with pytest.raises(ValueError, match=r"unknown backend 'tpu'.*numpy, numba, cython, cuda"):
            with_ctx = call("tpu")
            if hasattr(with_ctx, "__enter__"):
                with with_ctx:
                    pass


def test_unavailable_backend_raises_at_selection(monkeypatch):
    monkeypatch.setitem(_registry._reasons, "cython", "the extension is not built")
    monkeypatch.delitem(_registry._modules, "cython", raising=False)
    with pytest.raises(fastgd.BackendUnavailableError, match="not built"):
        fastgd.set_backend("cython")
    with pytest.raises(fastgd.BackendUnavailableError, match="not built"):
        fastgd.loss_grad(np.ones((2, 1)), np.ones(2), np.ones(1), backend="cython")
    assert "cython" not in fastgd.available_backends()


def test_set_and_use_backend():
    original = fastgd.get_backend()
    try:
        fastgd.set_backend("numba")
        assert fastgd.get_backend() == "numba"
        with fastgd.use_backend("numpy") as name:
            assert name == "numpy" and fastgd.get_backend() == "numpy"
            with fastgd.use_backend("cython"):
                assert fastgd.get_backend() == "cython"
            assert fastgd.get_backend() == "numpy"
        assert fastgd.get_backend() == "numba"
    finally:
        fastgd.set_backend(original)


def test_use_backend_is_local_to_the_thread():
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def other():
        inside.wait()
        seen["other"] = fastgd.get_backend()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    default = fastgd.get_backend()
    with fastgd.use_backend("numpy" if default != "numpy" else "numba") as chosen:
        inside.set()
        done.wait()
        assert fastgd.get_backend() == chosen
    thread.join()
    assert seen["other"] == default


def test_calls_follow_the_selected_backend(monkeypatch):
    calls = []
    module = _registry.load("numba")
    real = module.penalty
    monkeypatch.setattr(module, "penalty", lambda *a: calls.append(a) or real(*a))
    with fastgd.use_backend("numba"):
        fastgd.penalty(np.ones(3), l1=1.0)
    assert len(calls) == 1
