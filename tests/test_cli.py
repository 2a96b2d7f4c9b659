"""The command line: ``fastgd demo`` and ``fastgd bench`` print what the README says."""

import re

import numpy as np
import pytest

from fastgd import _bench, _registry
from fastgd.cli import main, textbook_data

CPU = [b for b in ("numpy", "numba", "cython") if b not in _registry.unavailable_reasons()]


def test_demo_prints_the_least_squares_line_per_backend_and_saves_the_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    assert main(["demo", "--backends", ",".join(CPU), "--plot", str(plot)]) in (None, 0)
    out = capsys.readouterr().out
    X, y = textbook_data(100, seed=0)
    slope, intercept = np.polyfit(X[:, 0], y, 1)
    for backend in CPU:
        line = next(row for row in out.splitlines() if row.split() and row.split()[0] == backend)
        numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", line)]
        assert any(abs(v - slope) < 1e-3 for v in numbers), line
        assert any(abs(v - intercept) < 1e-3 for v in numbers), line
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_table_has_every_backend_against_the_read_and_numpy(capsys):
    backends = ",".join(CPU)
    assert main(["bench", "--n", "200000", "--d", "8", "--backends", backends, "--repeat", "2"]) in (None, 0)
    rows = {row.split()[0]: row.split()[1:] for row in capsys.readouterr().out.splitlines() if row.split()}
    assert rows["stream-read"][2] == "1.00"
    ms, gbs, of_read, _ = rows["stream-read+y"]  # X and y read together
    assert float(ms) > 0 and float(gbs) > 0 and float(of_read) > 0
    for backend in CPU:
        ms, gbs, of_read, versus = rows[backend]
        # A loose bound: it catches a slip of units (x1000), not speed. The tests run beside
        # another test process (pytest -n 2), whose work can slow the 1 ms read's rounds:
        # a backend once came out at 12.7 of the read that way.
        assert float(ms) > 0 and float(gbs) > 0 and 0 <= float(of_read) < 100
        assert versus.endswith("x") and float(versus[:-1]) > 0
    assert float(rows["numpy"][3][:-1]) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [1, 5, 2049, 4097 * 3])
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize(
    ("x_dtype", "y_dtype"),
    [("float64", "float64"), ("float32", "uint8"), ("float32", "int64"), ("float32", "float32")],
)
def test_the_reads_sum_every_element_of_X_and_y(n, d, x_dtype, y_dtype):
    """The yardsticks read all of X (stream-read) and all of X and y (stream-read+y): their
    sums are the arrays' sums, whatever the rows' split between threads, parts and float32
    runs. Small whole numbers: every partial sum exact in float32, so the sums are too."""
    rng = np.random.default_rng(n + d)
    X = rng.integers(1, 8, (n, d)).astype(x_dtype)
    y = rng.integers(0, 7, n).astype(y_dtype)
    expected = X.sum(dtype=np.float64)
    assert _bench.stream_read(X) == expected
    assert _bench.stream_read_xy(X, y) == expected + y.sum(dtype=np.float64)


def test_bench_without_numpy_leaves_the_speedup_column_empty(capsys):
    backend = CPU[-1]
    main(["bench", "--n", "5000", "--d", "4", "--backends", backend, "--repeat", "1", "--loss", "logistic"])
    row = next(r.split() for r in capsys.readouterr().out.splitlines() if r.startswith(backend))
    assert row[-1] == "-"


def test_bench_softmax_times_logistic_in_the_same_rounds(capsys, monkeypatch):
    """--loss softmax adds each CPU backend's time against its logistic loss_grad on the same
    X, the median of the per-round ratios (numpy and the read: "-")."""
    backend = CPU[-1]
    seen = []
    module = _registry.load(backend)
    real = module.loss_grad

    def spy(X, y, w, b, loss, sample_weight):
        seen.append((loss, X.__array_interface__["data"][0], w.shape))
        return real(X, y, w, b, loss, sample_weight)

    monkeypatch.setattr(module, "loss_grad", spy)
    main(
        [
            "bench",
            "--n",
            "3000",
            "--d",
            "4",
            "--loss",
            "softmax",
            "--k",
            "3",
            "--backends",
            f"numpy,{backend}",
            "--repeat",
            "2",
        ]
    )
    out = capsys.readouterr().out
    rows = {row.split()[0]: row.split()[1:] for row in out.splitlines() if row.split()}
    assert "/ logistic" in out
    assert rows["numpy"][-1] == "-" and rows["stream-read"][-1] == "-"
    assert rows[backend][-1].endswith("x") and float(rows[backend][-1][:-1]) > 0
    softmax = [(x, shape) for loss, x, shape in seen if loss == "softmax"]
    logistic = [(x, shape) for loss, x, shape in seen if loss == "logistic"]
    assert len(softmax) == len(logistic) == 3  # a warm-up round and two timed ones
    assert {x for x, _ in softmax} == {x for x, _ in logistic}  # the same X
    assert {shape for _, shape in logistic} == {(4,)} and {shape for _, shape in softmax} == {(4, 3)}


@pytest.mark.skipif("cuda" in _registry.unavailable_reasons(), reason="numba-cuda is not installed")
def test_bench_compares_cuda_with_a_read_of_X_on_the_gpu(capsys):
    """On the simulator here, on a GPU where there is one: the cuda row is divided into the
    GPU read of X (gpu-read), not the CPU read."""
    main(
        ["bench", "--n", "300", "--d", "4", "--backends", "numpy,cuda", "--repeat", "1", "--loss", "logistic"]
    )
    out = capsys.readouterr().out
    rows = {row.split()[0]: row.split()[1:] for row in out.splitlines() if row.split()}
    assert rows["gpu-read"][2] == "1.00" and rows["stream-read"][2] == "1.00"
    ms_cuda, ms_read = float(rows["cuda"][0]), float(rows["gpu-read"][0])
    if ms_cuda >= 1.0:  # printed to 0.01 ms: on a real GPU these few rows take microseconds
        assert float(rows["cuda"][2]) == pytest.approx(ms_read / ms_cuda, rel=0.05, abs=0.01)
    assert "gpu-read" in out.split("of read:")[-1]
