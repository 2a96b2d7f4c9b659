"""fastgd on Dask arrays against dask-glm, time to the same objective, on a LocalCluster.

L2-logistic regression without intercept (dask-glm fits none) on synthetic data held in a
``dask.distributed`` LocalCluster of 2 worker processes: ``fastgd.minimize(solver="lbfgs")``
(the numba kernel on every block, on the workers) against dask-glm's ``lbfgs`` (same
objective: sum of log-losses + lamduh |w|^2 / 2 = n (fastgd objective) with
l2 = lamduh / (2 n)) and ``newton`` (unpenalised; lamduh is tiny here). Each case records
the objective it reached and its gap to fastgd's. Needs ``pip install dask-glm``.

Run: ``pytest bench/test_bench_dask.py --benchmark-only`` (``FASTGD_BENCH_DASK_N`` rows).
"""

import os

import numpy as np
import pytest

import fastgd

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask_glm = pytest.importorskip("dask_glm.algorithms")
families = pytest.importorskip("dask_glm.families")

N = int(os.environ.get("FASTGD_BENCH_DASK_N", "1600000"))
D = 50
LAMDUH = 1.0


@pytest.fixture(scope="module")
def cluster_data(request):
    smoke = request.config.getoption("benchmark_disable", False)
    n = 4_000 if smoke else N
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, D))
    y = (X @ rng.standard_normal(D) / 3 + rng.standard_normal(n) > 0).astype(float)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        rows = max(1, n // 8)
        Xd = da.from_array(X, chunks=(rows, D)).persist()
        yd = da.from_array(y, chunks=rows).persist()
        yield X, y, Xd, yd, LAMDUH / (2 * n)


def _objective(X, y, w, l2):
    return fastgd.loss_grad(X, y, w, 0.0, loss="logistic", backend="numpy")[0] + l2 * float(w @ w)


CASES = {
    "fastgd-lbfgs": lambda Xd, yd, l2: (
        fastgd.minimize(
            Xd, yd, loss="logistic", l2=l2, solver="lbfgs", tol=1e-8, fit_intercept=False, backend="numba"
        ).coef
    ),
    "dask-glm-lbfgs": lambda Xd, yd, l2: np.asarray(
        dask_glm.lbfgs(
            Xd, yd, regularizer="l2", lamduh=LAMDUH, max_iter=200, tol=1e-10, family=families.Logistic
        )
    ),
    "dask-glm-newton": lambda Xd, yd, l2: np.asarray(
        dask_glm.newton(Xd, yd, max_iter=50, tol=1e-10, family=families.Logistic)
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dask_logistic_l2(benchmark, cluster_data, case):
    X, y, Xd, yd, l2 = cluster_data
    fit = CASES[case]
    fit(Xd[: max(1, len(y) // 100)], yd[: max(1, len(y) // 100)], l2)  # warm up workers (JIT)
    benchmark.group = f"dask|logistic-l2|{len(y)}x{D}|float64"
    coef = benchmark.pedantic(fit, args=(Xd, yd, l2), rounds=3, iterations=1)
    reference = _objective(X, y, CASES["fastgd-lbfgs"](Xd, yd, l2), l2)
    value = _objective(X, y, coef, l2)
    benchmark.extra_info.update(case=case, objective=value, relative_gap=(value - reference) / reference)
    assert np.isfinite(value)
