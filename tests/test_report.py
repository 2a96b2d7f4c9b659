"""`fastgd report`: tables and chart from a pytest-benchmark JSON file.

The files here follow the layout ``pytest --benchmark-json`` writes (benchmarks with group,
name, params, param, stats in seconds, extra_info; machine_info, commit_info, datetime).
"""

import importlib.util
import json
import sys

import pytest

from fastgd import _report
from fastgd.cli import main

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
KERNEL = "loss_grad|mse|1000x64|float64"
SOLVER = "solver|logistic-l2|2000x10|float64"


def _bench(group, test, case_key, case, median, shape, extra_info=None):
    param = f"{shape}-{case}"
    return {
        "group": group,
        "name": f"{test}[{param}]",
        "fullname": f"bench/file.py::{test}[{param}]",
        "params": {"shape": [int(x) for x in shape.split("x")], case_key: case},
        "param": param,
        "extra_info": extra_info or {},
        "options": {"timer": "perf_counter", "min_rounds": 5},
        "stats": {"min": median * 0.9, "max": median * 1.2, "mean": median, "median": median, "rounds": 5},
    }


def _kernel(case, median):
    return _bench(KERNEL, "test_loss_grad", "backend", case, median, "1000x64", {"bytes_of_X": 512_000})


def _solver(case, median, gap):
    return _bench(
        SOLVER, "test_logistic_l2", "case", case, median, "2000x10",
        {"case": case, "objective": 0.5 * (1 + gap), "reference_objective": 0.5, "relative_gap": gap},
    )  # fmt: skip


@pytest.fixture
def bench_json(tmp_path):
    data = {
        "machine_info": {"python_version": "3.11.7", "cpu": {"brand_raw": "Test CPU", "count": 2}},
        "commit_info": {"id": "0123456789abcdef", "dirty": False},
        "datetime": "2026-01-01T00:00:00+00:00",
        "version": "5.1.0",
        "benchmarks": [
            _kernel("numpy", 8e-3),
            _kernel("numba", 2e-3),
            _kernel("cython", 4e-3),
            _kernel("stream-read", 1e-3),
            _solver("sklearn-lbfgs", 0.100, 0.0),
            _solver("fastgd-numpy", 0.200, 1e-9),
            _solver("fastgd-cython", 0.025, -2e-12),
            # A group without its baselines: medians only, ratios n/a.
            _bench("loss_grad|mse|10x1|float64", "test_loss_grad", "backend", "numba", 5e-6, "10x1"),
            _bench("misc", "test_other", "backend", "numba", 3e-3, "10x1"),
        ],
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


def test_kernel_ratios(bench_json):
    groups = {g.name: g for g in _report.summarize(_report.load(bench_json))}
    kernel = groups[KERNEL]
    assert kernel.kind == "kernel"
    assert [r.case for r in kernel.rows] == ["stream-read", "numba", "cython", "numpy"]  # fastest first
    for case, of_read, vs_numpy in [
        ("stream-read", 1.0, 8.0),
        ("numba", 0.5, 4.0),
        ("cython", 0.25, 2.0),
        ("numpy", 0.125, 1.0),
    ]:
        row = kernel.row(case)
        assert row.of_read == pytest.approx(of_read)
        assert row.vs_numpy == pytest.approx(vs_numpy)
        assert row.speedup is None
    assert kernel.row("numba").gb_per_s == pytest.approx(512_000 / 2e-3 / 1e9)


def test_solver_speedups(bench_json):
    groups = {g.name: g for g in _report.summarize(_report.load(bench_json))}
    solver = groups[SOLVER]
    assert solver.kind == "solver"
    assert solver.row("sklearn-lbfgs").speedup == pytest.approx(1.0)
    assert solver.row("fastgd-cython").speedup == pytest.approx(4.0)
    assert solver.row("fastgd-numpy").speedup == pytest.approx(0.5)
    assert solver.row("fastgd-numpy").relative_gap == pytest.approx(1e-9)
    assert solver.row("fastgd-cython").of_read is None


def test_gpu_cases_are_divided_into_the_gpu_read(tmp_path):
    """The cuda backend's fraction of the read uses the GPU read of X, which it recorded as
    its yardstick; the CPU cases keep the CPU read."""
    group = "loss_grad|logistic|1000x64|float32"

    def case(name, median, yardstick):
        return _bench(group, "test_loss_grad", "backend", name, median, "1000x64", {"yardstick": yardstick})

    data = {
        "benchmarks": [
            case("numpy", 8e-3, "stream-read"),
            case("numba", 2e-3, "stream-read"),
            case("stream-read", 1e-3, "stream-read"),
            case("cuda", 4e-5, "gpu-read"),
            case("gpu-read", 2e-5, "gpu-read"),
        ]
    }
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(data))
    (kernel,) = _report.summarize(_report.load(path))
    assert kernel.row("cuda").of_read == pytest.approx(0.5)
    assert kernel.row("gpu-read").of_read == pytest.approx(1.0)
    assert kernel.row("numba").of_read == pytest.approx(0.5)
    assert kernel.row("cuda").vs_numpy == pytest.approx(200.0)
    text = _report.markdown([kernel])
    assert "| case | median [ms] | read (gpu-read, stream-read) / case | numpy / case |" in text


def test_missing_baselines_and_other_groups(bench_json):
    groups = {g.name: g for g in _report.summarize(_report.load(bench_json))}
    lonely = groups["loss_grad|mse|10x1|float64"].row("numba")
    assert lonely.of_read is None and lonely.vs_numpy is None
    assert groups["misc"].kind == "other"
    text = _report.markdown(list(groups.values()))
    assert "| numba | 0.0050 | n/a | n/a |" in text


def test_markdown_tables(bench_json):
    text = _report.markdown(_report.summarize(_report.load(bench_json)))
    assert f"### {KERNEL}" in text and f"### {SOLVER}" in text
    assert "| case | median [ms] | GB/s of X | stream-read / case | numpy / case |" in text
    assert "| numba | 2.00 | 0.26 | 0.50 | 4.00x |" in text
    assert "| case | median [ms] | sklearn-lbfgs / case | objective gap |" in text
    assert "| fastgd-cython | 25.00 | 4.00x | -2.0e-12 |" in text


def test_cli_prints_tables_and_writes_files(bench_json, tmp_path, capsys):
    png, md = tmp_path / "bench.png", tmp_path / "bench.md"
    assert main(["report", str(bench_json), "--png", str(png), "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert "Test CPU, 2 CPUs, Python 3.11.7, commit 0123456789" in out
    assert "| fastgd-cython | 25.00 | 4.00x | -2.0e-12 |" in out
    assert md.read_text().strip() == out.strip()
    if HAS_MATPLOTLIB:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_png_one_group(bench_json, tmp_path):
    groups = [g for g in _report.summarize(_report.load(bench_json)) if g.name == SOLVER]
    png = tmp_path / "solver.png"
    _report.plot(groups, png)
    assert png.stat().st_size > 1000


def test_without_matplotlib_tables_still_print(bench_json, tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    png = tmp_path / "bench.png"
    assert main(["report", str(bench_json), "--png", str(png)]) == 0
    captured = capsys.readouterr()
    assert f"### {KERNEL}" in captured.out
    assert "matplotlib is not installed" in captured.err
    assert not png.exists()


@pytest.mark.parametrize(
    "content", ["not json", json.dumps({"no": "benchmarks"}), json.dumps({"benchmarks": []})]
)
def test_bad_files_give_an_error_not_a_traceback(tmp_path, capsys, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["report", str(path)]) == 2
    assert "fastgd report:" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json")]) == 2
