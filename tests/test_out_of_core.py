"""Data on disk: read-only memory maps are trained on in place, and partial_fit streams
chunks of any size to the optimum."""

import tracemalloc

import numpy as np
import pytest

import fastgd
from fastgd import _registry, _validate

PARALLEL = [b for b in ("numba", "cython") if _registry.is_available(b)]


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    """X (60,000 x 64, float64, 31 MB) and y saved as .npy and opened read-only."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60_000, 64))
    y = X @ rng.standard_normal(64) / 8 + 0.5 * rng.standard_normal(60_000)
    folder = tmp_path_factory.mktemp("data")
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    return np.load(folder / "X.npy", mmap_mode="r"), np.load(folder / "y.npy", mmap_mode="r"), X, y


def test_validation_keeps_the_memmap_itself(on_disk):
    Xm = on_disk[0]
    checked = _validate.check_X(Xm)
    assert np.shares_memory(checked, Xm) and not checked.flags.writeable


@pytest.mark.parametrize("backend", PARALLEL)
@pytest.mark.parametrize("solver", ["lbfgs", "fista", "gd"])
def test_fit_on_a_read_only_memmap_copies_nothing(on_disk, backend, solver):
    Xm, ym, X, y = on_disk
    kwargs = dict(l1=1e-3 if solver == "fista" else 0.0, l2=1e-3, solver=solver, max_iter=200, tol=1e-12)
    in_memory = fastgd.minimize(X, y, backend=backend, **kwargs)
    # Warm-up on the memmap: Numba compiles its kernels once more for read-only arrays,
    # and compilation allocates; only the fit itself is measured.
    fastgd.minimize(Xm, ym, backend=backend, **{**kwargs, "max_iter": 2})
    tracemalloc.start()
    try:
        mapped = fastgd.minimize(Xm, ym, backend=backend, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # NumPy allocations are traced; a copy of X (31 MB) or even of a column would show.
    assert peak < 0.05 * Xm.nbytes, f"a fit on a memmap allocated {peak:,} bytes"
    assert mapped.objective == pytest.approx(in_memory.objective, rel=1e-12)
    np.testing.assert_allclose(mapped.coef, in_memory.coef, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chunk", [4_999, 20_000])
def test_partial_fit_streams_chunks_to_the_optimum(on_disk, chunk):
    Xm, ym, X, y = on_disk
    full = fastgd.GDRegressor(alpha=1e-3, penalty="l2", solver="lbfgs", tol=1e-12).fit(X, y)
    streamed = fastgd.GDRegressor(alpha=1e-3, penalty="l2", learning_rate=0.01, random_state=0)
    for _ in range(3):  # epochs over the file, one chunk in memory at a time
        for start in range(0, Xm.shape[0], chunk):
            streamed.partial_fit(Xm[start : start + chunk], ym[start : start + chunk])
    assert streamed.score(X, y) == pytest.approx(full.score(X, y), abs=1e-3)
    np.testing.assert_allclose(streamed.coef_, full.coef_, atol=2e-2)


def test_classifier_partial_fit_streams_chunks(on_disk):
    Xm, ym, X, y = on_disk
    labels = (y > 0).astype(np.int64)
    full = fastgd.GDClassifier(alpha=1e-3, penalty="l2", solver="lbfgs", tol=1e-12).fit(X, labels)
    streamed = fastgd.GDClassifier(alpha=1e-3, penalty="l2", learning_rate=0.05, random_state=0)
    for _ in range(3):
        for start in range(0, Xm.shape[0], 7_001):
            chunk_labels = (ym[start : start + 7_001] > 0).astype(np.int64)
            streamed.partial_fit(Xm[start : start + 7_001], chunk_labels, classes=[0, 1])
    assert streamed.score(X, labels) == pytest.approx(full.score(X, labels), abs=5e-3)
    gap = np.abs(streamed.predict_proba(X)[:, 1] - full.predict_proba(X)[:, 1])
    assert gap.mean() < 0.05  # a constant SGD step ends in a neighbourhood of the optimum
