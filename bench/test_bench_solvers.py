r"""Solvers end to end: L2-regularised logistic regression, fastgd beside scikit-learn and PyTorch.

Every case minimises the same objective on the same data,

.. math::

    F(w, b) = \mathrm{mean}\big(\log(1 + e^{z}) - y z\big) + l_2 \sum w^2, \qquad
    z = Xw + b, \qquad l_2 = \frac{1}{2 C n},

which is scikit-learn's ``LogisticRegression(C)`` objective (C·Σ logloss + ½|w|², intercept
unpenalised) divided by C·n. Each case's solution is scored with the NumPy reference
kernel; the reference objective is F at scikit-learn's solution, and every fastgd case must
reach it to a relative 1e-6.

Run: ``pytest bench/test_bench_solvers.py --benchmark-only`` (``FASTGD_BENCH_SOLVER_N``
sets the row count, 500,000 by default). With --benchmark-disable (the CI smoke run) the
problem shrinks to 2000 x 10 so the suite only checks that every case runs and converges.
"""

import importlib.util
import os
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import fastgd
from fastgd import _registry

N = int(os.environ.get("FASTGD_BENCH_SOLVER_N", "500000"))
D = 100
SMOKE_SHAPE = (2000, 10)
DTYPE = "float64"
C = 1.0
# scikit-learn's tol is the infinity norm of the projected gradient of F (scipy's gtol);
# fastgd's lbfgs stops on the same quantity (solvers.py), and PyTorch's tolerance_grad is
# the infinity norm of the gradient too: all three get the same tolerance.
TOL = 1e-10
MAX_ITER = 10_000
RELATIVE_GAP = 1e-6  # how close to the reference objective a fastgd solution must come

HAS_TORCH = importlib.util.find_spec("torch") is not None
CPU_BACKENDS = [name for name in _registry.BACKENDS if name != "cuda"]
CASES = (
    [pytest.param("sklearn-lbfgs", id="sklearn-lbfgs")]
    + [
        pytest.param(
            f"fastgd-{name}",
            id=f"fastgd-{name}",
            marks=pytest.mark.skipif(not _registry.is_available(name), reason="backend unavailable"),
        )
        for name in CPU_BACKENDS
    ]
    + [
        pytest.param(
            "torch-lbfgs",
            id="torch-lbfgs",
            marks=pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed"),
        )
    ]
)


def pytest_generate_tests(metafunc):
    if "problem_shape" in metafunc.fixturenames:
        smoke = metafunc.config.getoption("benchmark_disable", False)
        n, d = SMOKE_SHAPE if smoke else (N, D)
        metafunc.parametrize("problem_shape", [(n, d)], ids=[f"{n}x{d}"], scope="module")


def make_problem(n, d, *, seed=0, block=1 << 16):
    """Synthetic, non-separable logistic data: X (n, d) float64 and labels y in {0, 1}.

    Features have zero mean and unit variance and share one common factor (pairwise
    correlation 0.5, so the problem is not trivially conditioned). Labels are drawn from
    a logistic model whose linear predictor has standard deviation 2: the classes overlap
    and the optimum is finite. Rows are generated in blocks to bound the temporaries.
    """
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    # Var(x @ w) for cov = 0.5 I + 0.5 11^T, scaled so that std(z) = 2.
    w_true *= 2.0 / np.sqrt(0.5 * w_true @ w_true + 0.5 * w_true.sum() ** 2)
    b_true = 0.5
    X = np.empty((n, d), dtype=DTYPE)
    y = np.empty(n, dtype=DTYPE)
    for start in range(0, n, block):
        m = min(block, n - start)
        rows = X[start : start + m]
        rows[...] = rng.standard_normal((m, d))
        rows *= np.sqrt(0.5)
        rows += np.sqrt(0.5) * rng.standard_normal((m, 1))
        z = rows @ w_true + b_true
        y[start : start + m] = rng.random(m) < 1.0 / (1.0 + np.exp(-z))
    return X, y


def objective(X, y, w, b, l2):
    """F at (w, b), computed by the NumPy reference kernel whichever solver found (w, b)."""
    w = np.asarray(w, dtype=np.float64)
    loss = fastgd.loss_grad(X, y, w, float(b), loss="logistic", backend="numpy")[0]
    return float(loss + l2 * np.sum(w * w))


def fit_sklearn(X, y):
    from sklearn.linear_model import LogisticRegression

    # No `penalty`: scikit-learn >= 1.8 deprecates it; the default l1_ratio=0 is the L2 penalty.
    model = LogisticRegression(C=C, solver="lbfgs", tol=TOL, max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning would only repeat n_iter
        model.fit(X, y)
    return model.coef_[0], model.intercept_[0], int(model.n_iter_[0])


def fit_fastgd(X, y, l2, backend):
    result = fastgd.minimize(
        X, y, loss="logistic", l2=l2, solver="lbfgs", tol=TOL, max_iter=MAX_ITER, backend=backend
    )
    return result.coef, result.intercept, result.n_iter


def fit_torch(X, y, l2):
    """Full-batch L-BFGS with autograd and a strong-Wolfe line search, on views of X and y."""
    import torch

    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)  # no copy: the same float64 memory
    params = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [params],
        lr=1.0,
        max_iter=MAX_ITER,
        max_eval=2 * MAX_ITER,
        tolerance_grad=TOL,
        tolerance_change=1e-15,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        w, b = params[:-1], params[-1]
        z = torch.addmv(b.expand(Xt.shape[0]), Xt, w)
        value = torch.nn.functional.binary_cross_entropy_with_logits(z, yt) + l2 * torch.dot(w, w)
        value.backward()
        return value

    optimizer.step(closure)
    n_iter = optimizer.state[params]["n_iter"]
    solution = params.detach().numpy()
    return solution[:-1].copy(), float(solution[-1]), int(n_iter)


@pytest.fixture(scope="module")
def problem(problem_shape):
    """The data, l2, and the reference: F at scikit-learn's solution (fitted once here)."""
    X, y = make_problem(*problem_shape)
    l2 = 1.0 / (2.0 * C * X.shape[0])
    w, b, _ = fit_sklearn(X, y)
    return SimpleNamespace(X=X, y=y, l2=l2, reference=objective(X, y, w, b, l2))


@pytest.mark.parametrize("case", CASES)
def test_logistic_l2(benchmark, problem, case):
    X, y, l2 = problem.X, problem.y, problem.l2
    if case == "sklearn-lbfgs":
        run = lambda: fit_sklearn(X, y)
    elif case == "torch-lbfgs":
        run = lambda: fit_torch(X, y, l2)
    else:
        backend = case.removeprefix("fastgd-")
        run = lambda: fit_fastgd(X, y, l2, backend)
    if case != "sklearn-lbfgs":  # scikit-learn was warmed up by the reference fit
        run()  # warm-up: JIT compilation and first-touch costs stay out of the timings
    n, d = X.shape
    benchmark.group = f"solver|logistic-l2|{n}x{d}|{DTYPE}"
    w, b, n_iter = benchmark.pedantic(run, rounds=3, iterations=1)
    value = objective(X, y, w, b, l2)
    gap = (value - problem.reference) / abs(problem.reference)
    benchmark.extra_info.update(
        case=case, objective=value, reference_objective=problem.reference, relative_gap=gap, n_iter=n_iter
    )
    assert np.isfinite(value)
    if case.startswith("fastgd-"):
        assert value <= problem.reference * (1.0 + RELATIVE_GAP), (
            f"{case} stopped at F = {value!r}, above the reference {problem.reference!r} "
            f"by a relative {gap:.3g}"
        )
