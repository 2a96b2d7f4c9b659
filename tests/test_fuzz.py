"""Fuzzing every public function on every backend with hypothesis: random shapes (n = 1 and
d = 1 included), dtypes, layouts (CSR included), sample weights, extreme values and parameter
combinations. The only exceptions allowed are the documented ones (ValueError, TypeError
from validation; DivergenceError for a step the caller chose), and finite input never gives
a NaN or infinite result.

``HYPOTHESIS_PROFILE=thorough pytest tests/test_fuzz.py`` runs 500 examples per test.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import sparse

import fastgd
from fastgd import _registry
from fastgd.solvers import SOLVERS, DivergenceError, minimize

CPU_BACKENDS = [b for b in ("numpy", "numba", "cython") if b not in _registry.unavailable_reasons()]
ALL_BACKENDS = [b for b in _registry.BACKENDS if b not in _registry.unavailable_reasons()]
DOCUMENTED = (ValueError, TypeError)

# Magnitudes from subnormal to large: with |w| <= 10 and d <= 5, scores reach 5e4, past the
# 1e4 the losses must take without overflow.
MAGNITUDES = st.sampled_from([0.0, 1e-300, 1e-30, 1e-8, 1e-3, 1.0, 7.5, 1e2, 1e3])


@st.composite
def arrays(draw, shape, magnitudes=MAGNITUDES):
    """Finite float64 values of mixed signs and magnitudes, with repeats and zeros."""
    size = int(np.prod(shape))
    mags = draw(st.lists(magnitudes, min_size=size, max_size=size))
    units = draw(st.lists(st.floats(-1.0, 1.0), min_size=size, max_size=size))
    return (np.array(mags) * np.array(units)).reshape(shape)


def layout(X, kind, dtype):
    if dtype is bool:
        X = X > 0
    else:
        X = X.astype(dtype)
    if kind == "fortran":
        return np.asfortranarray(X)
    if kind == "strided":
        wide = np.zeros((X.shape[0], 2 * X.shape[1]), X.dtype)
        wide[:, ::2] = X
        return wide[:, ::2]
    return X


@st.composite
def problems(draw, max_n=25, max_d=10):
    loss = draw(st.sampled_from(["mse", "logistic", "softmax"]))
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    k = draw(st.integers(2, 4))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, bool]))
    X = layout(draw(arrays((n, d))), draw(st.sampled_from(["c", "fortran", "strided"])), dtype)
    if loss == "mse":
        y = draw(arrays((n,)))
    elif loss == "logistic":
        y = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)))
    else:
        y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    weights = draw(st.sampled_from(["none", "positive", "some zero", "all zero", "negative"]))
    rng = np.random.default_rng(n * 31 + d)
    sw = {
        "none": None,
        "positive": rng.uniform(0.1, 1e3, n),
        "some zero": np.where(rng.random(n) < 0.5, 0.0, 1.0),
        "all zero": np.zeros(n),
        "negative": -np.ones(n),
    }[weights]
    if weights == "some zero" and not sw.any():
        sw[0] = 1.0
    w_shape = (d, k) if loss == "softmax" else (d,)
    w = draw(arrays(w_shape, st.sampled_from([0.0, 1e-3, 1.0, 10.0])))
    b = (
        draw(arrays((k,), st.sampled_from([0.0, 1.0, 10.0])))
        if loss == "softmax"
        else draw(st.floats(-10, 10))
    )
    return dict(X=X, y=y, w=w, b=b, loss=loss, sample_weight=sw, weights=weights, k=k)


def expected_error(problem):
    if problem["weights"] == "all zero":
        return "sample_weight sums to zero"
    if problem["weights"] == "negative":
        return "sample_weight must be >= 0"
    return None


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@given(problem=problems())
def test_loss_grad_fuzz(backend, problem):
    if backend == "cuda":
        assume(problem["X"].shape[0] <= 12)  # the simulator is slow
    args = (problem["X"], problem["y"], problem["w"], problem["b"])
    kwargs = dict(loss=problem["loss"], sample_weight=problem["sample_weight"])
    error = expected_error(problem)
    if error:
        with pytest.raises(ValueError, match=error):
            fastgd.loss_grad(*args, **kwargs, backend=backend)
        return
    value, grad_w, grad_b = fastgd.loss_grad(*args, **kwargs, backend=backend)
    assert np.isfinite(value) and np.all(np.isfinite(grad_w)) and np.all(np.isfinite(grad_b))
    ref_value, ref_w, ref_b = fastgd.loss_grad(*args, **kwargs, backend="numpy")
    single = np.asarray(problem["X"]).dtype == np.float32
    rtol = 2e-3 if single else 1e-7
    scale = 1.0 + float(np.max(np.abs(ref_w))) + float(np.max(np.abs(ref_b)))
    assert value == pytest.approx(ref_value, rel=rtol, abs=rtol)
    np.testing.assert_allclose(grad_w, ref_w, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(grad_b, ref_b, rtol=rtol, atol=rtol * scale)
    if getattr(_registry.load(backend), "SUPPORTS_CSR", False):
        csr = sparse.csr_matrix(np.asarray(problem["X"], dtype=grad_w.dtype))
        s_value, s_w, s_b = fastgd.loss_grad(csr, *args[1:], **kwargs, backend=backend)
        assert s_value == pytest.approx(value, rel=rtol, abs=rtol)
        np.testing.assert_allclose(s_w, grad_w, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(s_b, grad_b, rtol=rtol, atol=rtol * scale)


PARAMS = st.one_of(st.floats(0.0, 10.0), st.sampled_from([-1.0, 0.0, np.nan, np.inf, 1e-12]))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@given(
    w=st.integers(1, 6).flatmap(lambda d: arrays((d,))),
    lr=PARAMS,
    l1=PARAMS,
    l2=PARAMS,
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_gd_step_and_penalty_fuzz(backend, w, lr, l1, l2, dtype):
    w = w.astype(dtype)
    g = w[::-1].copy()
    params_ok = np.isfinite([lr, l1, l2]).all() and lr > 0 and l1 >= 0 and l2 >= 0
    if not params_ok:
        with pytest.raises(DOCUMENTED, match="lr|l1|l2"):
            fastgd.gd_step(w, g, lr, l1, l2, backend=backend)
        return
    new = fastgd.gd_step(w, g, lr, l1, l2, backend=backend)
    ref = fastgd.gd_step(w, g, lr, l1, l2, backend="numpy")
    assert np.all(np.isfinite(new)) or not np.all(np.isfinite(ref))
    # w - lr (g + 2 l2 w) may cancel: the error scales with the terms, not the result.
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    terms = np.abs(w.astype(np.float64)) * (1 + 2 * lr * l2) + lr * (np.abs(g.astype(np.float64)) + l1)
    tiny = 4 * float(np.finfo(dtype).smallest_subnormal)  # steps that end among subnormals
    assert np.all(np.abs(new.astype(np.float64) - ref) <= rtol * terms + tiny)
    value = fastgd.penalty(w, l1, l2, backend=backend)
    assert np.isfinite(value) and value == pytest.approx(fastgd.penalty(w, l1, l2, backend="numpy"), rel=1e-6)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(
    problem=problems(max_n=30, max_d=4),
    solver=st.sampled_from(SOLVERS),
    l1=st.sampled_from([0.0, 1e-3, 0.5]),
    l2=st.sampled_from([0.0, 1e-2, 3.0]),
    lr=st.sampled_from([None, None, 1e-3, 0.1, 1e3]),
    max_iter=st.integers(1, 15),
    batch_size=st.sampled_from([None, 1, 4]),
    fit_intercept=st.booleans(),
)
def test_minimize_fuzz(backend, problem, solver, l1, l2, lr, max_iter, batch_size, fit_intercept):
    kwargs = dict(
        loss=problem["loss"], l1=l1, l2=l2, solver=solver, lr=lr, max_iter=max_iter,
        batch_size=batch_size, fit_intercept=fit_intercept, sample_weight=problem["sample_weight"],
        random_state=0, backend=backend,
    )  # fmt: skip
    if problem["loss"] == "softmax":
        kwargs["n_classes"] = problem["k"]
    error = expected_error(problem)
    if solver == "lbfgs" and l1 > 0 and not error:
        error = "'lbfgs' handles smooth objectives only"
    if error:
        with pytest.raises(ValueError, match=error):
            minimize(problem["X"], problem["y"], **kwargs)
        return
    try:
        result = minimize(problem["X"], problem["y"], **kwargs)
    except DivergenceError as exc:
        # Only a step the caller chose may diverge, and the error says which.
        assert lr is not None and f"lr={lr:g}" in str(exc), str(exc)
        return
    assert np.isfinite(result.objective)
    assert np.all(np.isfinite(result.coef)) and np.all(np.isfinite(result.intercept))
    assert np.all(np.isfinite(result.history)) and 0 <= result.n_iter <= max_iter
    shape = (
        (problem["X"].shape[1], problem["k"]) if problem["loss"] == "softmax" else (problem["X"].shape[1],)
    )
    assert result.coef.shape == shape
    if not fit_intercept:
        assert np.all(np.asarray(result.intercept) == 0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(
    problem=problems(max_n=30, max_d=4),
    penalty=st.sampled_from(["l2", "l1", "elasticnet", None]),
    alpha=st.sampled_from([0.0, 1e-4, 0.1]),
    solver=st.sampled_from(SOLVERS),
)
def test_estimators_fuzz(backend, problem, penalty, alpha, solver):
    assume(problem["weights"] not in ("all zero", "negative"))
    X, y, sw = problem["X"], problem["y"], problem["sample_weight"]
    l1_used = penalty in ("l1", "elasticnet") and alpha > 0
    common = dict(penalty=penalty, alpha=alpha, solver=solver, max_iter=10, random_state=0, backend=backend)
    if problem["loss"] == "mse":
        model = fastgd.GDRegressor(**common)
    else:
        model = fastgd.GDClassifier(**common)
        present = np.unique(y if sw is None else y[sw > 0])
        if len(present) < 2:
            with pytest.raises(ValueError, match="at least 2 classes"):
                model.fit(X, y, sample_weight=sw)
            return
    if solver == "lbfgs" and l1_used:
        with pytest.raises(ValueError, match="'lbfgs' handles smooth objectives only"):
            model.fit(X, y, sample_weight=sw)
        return
    model.fit(X, y, sample_weight=sw)
    assert np.all(np.isfinite(model.coef_)) and np.all(np.isfinite(model.intercept_))
    predictions = model.predict(X)
    assert predictions.shape == (X.shape[0],)
    if problem["loss"] == "mse":
        assert np.all(np.isfinite(predictions))
    else:
        proba = model.predict_proba(X)
        assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)
        assert set(np.unique(predictions)) <= set(model.classes_)
