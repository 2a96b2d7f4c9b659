"""The CPU kernels' tasks: row ranges fixed by X alone, taken by the threads as they come
free, summed in task order, so that results do not depend on the number of threads."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import sparse

import fastgd
from fastgd import _config
from fastgd.backends import _csr
from fastgd.backends._tasks import tasks

from naive import RTOL, assert_matches_naive, make_problem

CPU_BACKENDS = ["numba", "cython"]


@given(n=st.integers(0, 10**10), row_bytes=st.integers(1, 10**6))
def test_task_count_bounds(n, row_bytes):
    t = _config.cpu_tasks(n, row_bytes)
    cap = min(_config.CPU_TASKS_MAX, max(1, n // _config.CPU_TASK_MIN_ROWS))
    assert 1 <= t <= cap  # every task holds at least CPU_TASK_MIN_ROWS rows where n allows
    total = n * row_bytes
    wanted = -(-total // _config.CPU_TASK_BYTES)
    assert t >= min(wanted, cap)  # no task reads more than CPU_TASK_BYTES but for the caps
    assert t >= min(_config.CPU_TASKS_MIN, total // _config.CPU_TASK_MIN_BYTES, cap)  # small X
    assert t <= max(1, wanted, _config.CPU_TASKS_MIN)


def test_task_counts_of_known_sizes():
    assert _config.cpu_tasks(2_000_000, 64 * 4) == 123  # 512,000,000 bytes in tasks of 4 MiB
    assert _config.cpu_tasks(10_000_000, 4) == 10  # 40 MB
    assert _config.cpu_tasks(1_000, 8) == 1  # 8 KB: one task
    assert _config.cpu_tasks(100_000, 8) == 8  # 800 KB: the minimum of eight tasks
    assert _config.cpu_tasks(20_000, 5_000 * 8) == 78  # 800 MB of wide rows: 256 rows a task


def test_csr_tasks_follow_the_stored_bytes():
    n, per_row = 100_000, 50  # 5M stored values: 60 MB with int32 column indices
    indptr = np.arange(n + 1, dtype=np.int32) * per_row
    indices = np.tile(np.arange(per_row, dtype=np.int32) * 20, n)
    X = sparse.csr_matrix((np.ones(n * per_row), indices, indptr), shape=(n, 1_000))
    stored = X.nnz * (8 + X.indices.dtype.itemsize)
    assert _csr.tasks(X) == _config.cpu_tasks(n, -(-stored // n))
    assert _csr.tasks(X) == -(-stored // _config.CPU_TASK_BYTES) == 15


@numba.njit(parallel=True)
def _take_all(n_tasks, n_threads, counter):
    taken = np.zeros(n_tasks, np.int64)
    for _thread in numba.prange(n_threads):
        for c in tasks(counter, n_tasks):
            taken[c] += 1
    return taken


@pytest.mark.parametrize("n_tasks", [0, 1, 5, 100_000])
def test_each_task_is_taken_once(n_tasks):
    n_threads = max(2, numba.get_num_threads())
    counter = np.zeros(1, np.int64)
    taken = _take_all(n_tasks, n_threads, counter)
    assert np.all(taken == 1)
    assert counter[0] == n_tasks + n_threads  # each thread's last take found none left


@pytest.fixture
def many_tasks(monkeypatch):
    """Tasks of a few hundred bytes: small test inputs then span tens of tasks."""
    monkeypatch.setattr(_config, "CPU_TASK_BYTES", 512)
    monkeypatch.setattr(_config, "CPU_TASK_MIN_ROWS", 3)


def _with_threads(backend, n_threads, monkeypatch, call):
    """call() with the backend's kernels run by n_threads threads."""
    if backend == "numba":
        before = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            return call()
        finally:
            numba.set_num_threads(before)
    from fastgd.backends import cython

    with monkeypatch.context() as m:
        m.setattr(cython, "_n_threads", lambda: n_threads)
        return call()


def _assert_same_bits(a, b):
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), (x, y)


@pytest.mark.parametrize(
    "dtype,weighted", [(np.float32, False), (np.float64, True)], ids=["f32-unweighted", "f64-weighted"]
)
@pytest.mark.parametrize("loss", ["mse", "logistic", "softmax"])
@pytest.mark.parametrize("d", [1, 5, 12, 64, 300])  # one feature, narrow, fused, vectors, blocks
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_results_do_not_depend_on_the_thread_count(
    backend, d, loss, dtype, weighted, many_tasks, monkeypatch
):
    if backend not in fastgd.available_backends():
        pytest.skip(f"{backend} is not available here")
    rng = np.random.default_rng(d)
    n = 40_000 // d + 37  # not a multiple of the task count: a short last task
    X, y, w, b, sw = make_problem(rng, n, d, loss, dtype, k=10, weighted=weighted)
    if loss == "logistic" and not weighted:
        y = y.astype(np.uint8)  # the labels' loops (d = 1 and fused rows take them)
    assert _config.cpu_tasks(n, d * X.itemsize) >= 10

    def call():
        return fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)

    one, two = (_with_threads(backend, t, monkeypatch, call) for t in (1, 2))
    _assert_same_bits(one, two)
    assert_matches_naive(two, X, y.astype(X.dtype) if loss == "logistic" else y, w, b, loss, sw, RTOL[dtype])


@pytest.mark.parametrize("loss", ["logistic", "softmax"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_csr_results_do_not_depend_on_the_thread_count(backend, loss, many_tasks, monkeypatch):
    if backend not in fastgd.available_backends():
        pytest.skip(f"{backend} is not available here")
    rng = np.random.default_rng(7)
    X = sparse.random(3_001, 40, density=0.2, format="csr", random_state=7, dtype=np.float64)
    _, y, w, b, _ = make_problem(rng, 3_001, 40, loss, np.float64, k=4)
    assert _csr.tasks(X) >= 10

    def call():
        return fastgd.loss_grad(X, y, w, b, loss=loss, backend=backend)

    one, two = (_with_threads(backend, t, monkeypatch, call) for t in (1, 2))
    _assert_same_bits(one, two)
    assert_matches_naive(two, X.toarray(), y, w, b, loss, None, RTOL[np.float64])
