"""Sparse X (scipy CSR) gives the dense answers on every CPU backend, without densifying."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import fastgd
from fastgd import _registry

CPU = [b for b in ("numpy", "numba", "cython") if _registry.is_available(b)]
TOL = {np.float64: 1e-10, np.float32: 2e-4}


def _sparse_problem(rng, n, d, density, dtype, loss, k=3):
    dense = (rng.standard_normal((n, d)) * (rng.random((n, d)) < density)).astype(dtype)
    dense[: max(1, n // 5)] = 0.0  # whole rows with no stored value
    if loss == "softmax":
        return dense, rng.integers(0, k, n), rng.standard_normal((d, k)).astype(dtype), rng.standard_normal(k)
    y = rng.standard_normal(n) if loss == "mse" else (rng.random(n) < 0.5)
    return dense, y.astype(dtype), rng.standard_normal(d).astype(dtype), 0.3


def _assert_same(got, want, dtype):
    tol = TOL[dtype]
    assert got[0] == pytest.approx(want[0], rel=tol, abs=tol)
    for g, v in zip(got[1:], want[1:], strict=True):
        assert np.asarray(g).dtype == dtype
        scale = max(float(np.max(np.abs(v))), 1e-12)
        np.testing.assert_allclose(
            np.asarray(g, np.float64), np.asarray(v, np.float64), rtol=0, atol=tol * scale
        )


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("loss", ["mse", "logistic", "softmax"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csr_array])
@pytest.mark.parametrize("weighted", [False, True])
def test_csr_matches_dense(backend, loss, dtype, container, weighted, rng):
    dense, y, w, b = _sparse_problem(rng, 203, 17, 0.2, dtype, loss)
    sw = rng.random(203).astype(dtype) if weighted else None
    X = container(dense)
    data_before = X.data.copy()
    got = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
    want = fastgd.loss_grad(dense, y, w, b, loss=loss, sample_weight=sw, backend="numpy")
    _assert_same(got, want, dtype)
    np.testing.assert_array_equal(X.data, data_before)  # inputs untouched


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_csr_logistic_binary_labels(backend, dtype, weighted, rng):
    """bool logistic y (uint8 labels in the kernels) on CSR X: the dense answer with y as
    floats."""
    dense, y, w, b = _sparse_problem(rng, 203, 17, 0.2, dtype, "logistic")
    sw = rng.random(203).astype(dtype) if weighted else None
    X = sp.csr_matrix(dense)
    got = fastgd.loss_grad(X, y != 0, w, b, loss="logistic", sample_weight=sw, backend=backend)
    want = fastgd.loss_grad(dense, y, w, b, loss="logistic", sample_weight=sw, backend="numpy")
    _assert_same(got, want, dtype)


@pytest.mark.parametrize("backend", CPU)
def test_int64_indices_and_unsorted_duplicate_entries(backend, rng):
    """scipy sums duplicate (row, column) entries; so do the kernels, in any order."""
    # Row 0: columns 3, 1 (unsorted); row 2: column 2 twice (a duplicate), then 0.
    data = np.array([1.0, -2.0, 0.5, 1.5, 2.5, -1.0])
    indices = np.array([3, 1, 0, 2, 2, 0], dtype=np.int64)
    indptr = np.array([0, 2, 3, 6], dtype=np.int64)
    X = sp.csr_matrix((data, indices, indptr), shape=(3, 4))
    assert not X.has_canonical_format
    dense = X.toarray()
    y = np.array([1.0, 0.0, 1.0])
    w = rng.standard_normal(4)
    for loss in ("mse", "logistic"):
        got = fastgd.loss_grad(X, y, w, 0.1, loss=loss, backend=backend)
        want = fastgd.loss_grad(dense, y, w, 0.1, loss=loss, backend="numpy")
        _assert_same(got, want, np.float64)


@given(
    n=st.integers(1, 40),
    d=st.integers(1, 12),
    density=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    loss=st.sampled_from(["mse", "logistic", "softmax"]),
    seed=st.integers(0, 2**16),
)
def test_property_csr_equals_dense(n, d, density, loss, seed):
    rng = np.random.default_rng(seed)
    dense, y, w, b = _sparse_problem(rng, n, d, density, np.float64, loss, k=2)
    want = fastgd.loss_grad(dense, y, w, b, loss=loss, backend="numpy")
    for backend in CPU:
        _assert_same(
            fastgd.loss_grad(sp.csr_matrix(dense), y, w, b, loss=loss, backend=backend), want, np.float64
        )


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("solver, l1", [("lbfgs", 0.0), ("fista", 0.02), ("sgd", 0.0)])
def test_minimize_on_csr_reaches_the_dense_optimum(backend, solver, l1, rng):
    dense = rng.standard_normal((300, 25)) * (rng.random((300, 25)) < 0.15)
    y = (dense @ rng.standard_normal(25) + 0.3 * rng.standard_normal(300) > 0).astype(float)
    kwargs = dict(loss="logistic", l1=l1, l2=1e-3, solver=solver, tol=1e-10, max_iter=5000, random_state=1)
    on_csr = fastgd.minimize(sp.csr_matrix(dense), y, backend=backend, **kwargs)
    on_dense = fastgd.minimize(dense, y, backend=backend, **kwargs)
    assert on_csr.objective == pytest.approx(on_dense.objective, rel=1e-10)
    np.testing.assert_allclose(on_csr.coef, on_dense.coef, rtol=1e-6, atol=1e-8)


def test_float32_csr_stays_float32(rng):
    dense = (rng.standard_normal((100, 6)) * (rng.random((100, 6)) < 0.3)).astype(np.float32)
    y = (rng.random(100) < 0.5).astype(np.float32)
    result = fastgd.minimize(sp.csr_matrix(dense), y, loss="logistic", l2=0.01)
    assert result.coef.dtype == np.float32


def test_estimators_take_csr(rng):
    dense = rng.standard_normal((200, 10)) * (rng.random((200, 10)) < 0.3)
    y = dense @ rng.standard_normal(10)
    labels = np.digitize(y, [-0.5, 0.5])
    for est, target in ((fastgd.GDRegressor(alpha=0.01), y), (fastgd.GDClassifier(alpha=0.01), labels)):
        a = est.fit(sp.csr_array(dense), target)
        coef_sparse, pred_sparse = a.coef_.copy(), a.predict(sp.csr_matrix(dense))
        b = est.fit(dense, target)
        np.testing.assert_allclose(coef_sparse, b.coef_, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(pred_sparse, b.predict(dense), rtol=1e-9, atol=1e-12)


def test_other_sparse_formats_are_refused_with_the_fix():
    X = sp.coo_matrix(np.eye(3))
    with pytest.raises(TypeError, match=r"CSR format.*got 'coo'.*X.tocsr\(\)"):
        fastgd.loss_grad(X, np.zeros(3), np.zeros(3))


@pytest.mark.skipif(not _registry.is_available("cuda"), reason="cuda backend unavailable")
def test_cuda_refuses_sparse_clearly():
    X = sp.csr_matrix(np.eye(3))
    with pytest.raises(TypeError, match="'cuda' backend does not take sparse X"):
        fastgd.loss_grad(X, np.zeros(3), np.zeros(3), backend="cuda")
    with pytest.raises(TypeError, match="'cuda' backend does not take sparse X"):
        fastgd.minimize(X, np.zeros(3), backend="cuda")


def test_sparse_nan_is_reported():
    X = sp.csr_matrix(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        fastgd.loss_grad(X, np.zeros(2), np.zeros(2))
