"""Dask arrays on a dask.distributed LocalCluster of worker processes reach the in-process
optimum; each gradient evaluation runs the kernel on the workers' blocks."""

import os

import numpy as np
import pytest

import fastgd
from fastgd import _registry

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

CPU = [b for b in ("numpy", "numba", "cython") if _registry.is_available(b)]


def test_without_a_client_the_local_scheduler_runs_the_blocks():
    """No distributed Client: the same map-reduce runs on Dask's local scheduler. (First
    in this file, before the module's cluster fixture makes a default client.)"""
    try:
        distributed.default_client()
        pytest.skip("a default dask.distributed client exists in this process")
    except ValueError:
        pass
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3_000, 6))
    y = (X[:, 0] + rng.standard_normal(3_000) > 0).astype(float)
    for solver in ("lbfgs", "gd"):
        local = fastgd.minimize(X, y, loss="logistic", l2=1e-3, solver=solver, backend=CPU[-1])
        lazy = fastgd.minimize(
            _dask(X, 700), _dask(y, 700), loss="logistic", l2=1e-3, solver=solver, backend=CPU[-1]
        )
        assert lazy.objective == pytest.approx(local.objective, rel=1e-10)


@pytest.fixture(scope="module")
def client():
    # distributed's nanny sets OMP_NUM_THREADS=1 and the like in this process's environment
    # to hand them to the workers it spawns; put the environment back for later tests.
    saved = dict(os.environ)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        os.environ.clear()
        os.environ.update(saved)
        yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6_000, 12))
    z = X @ rng.standard_normal(12)
    return {
        "X": X,
        "mse": z + 0.5 * rng.standard_normal(6_000),
        "logistic": (z + rng.standard_normal(6_000) > 0).astype(float),
        "softmax": np.digitize(z + rng.standard_normal(6_000), [-1.0, 1.0]),
        "weights": rng.random(6_000),
    }


def _dask(a, rows=1_500):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize(
    "loss, solver, l1",
    [("logistic", "lbfgs", 0.0), ("mse", "fista", 0.05), ("softmax", "lbfgs", 0.0)],
)
def test_same_optimum_as_in_process(client, data, backend, loss, solver, l1):
    kwargs = dict(loss=loss, l1=l1, l2=1e-3, solver=solver, tol=1e-10, max_iter=2000, backend=backend)
    local = fastgd.minimize(data["X"], data[loss], **kwargs)
    distributed_fit = fastgd.minimize(_dask(data["X"]), _dask(data[loss]), **kwargs)
    assert distributed_fit.converged
    assert distributed_fit.objective == pytest.approx(local.objective, rel=1e-8)
    np.testing.assert_allclose(distributed_fit.coef, local.coef, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["float", "bool", "int64"])
def test_logistic_targets_reach_the_workers_as_uint8_labels(client, data, kind):
    """Logistic y, float / bool / integer, is checked on the cluster and persisted as uint8
    labels (one byte a row, as in memory); the fit reaches the NumPy reference backend's
    in-process objective, and a target outside {0, 1} is named."""
    from fastgd import _dask as dask_inputs

    y = data["logistic"]
    y = {"float": y, "bool": y > 0, "int64": y.astype(np.int64)}[kind]
    _, labels, _, _, _ = dask_inputs.prepare(_dask(data["X"]), _dask(y), "logistic", None, CPU[-1], None)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels.compute(), data["logistic"].astype(np.uint8))
    kwargs = dict(loss="logistic", l2=1e-3, solver="lbfgs", tol=1e-10, backend=CPU[-1])
    local = fastgd.minimize(data["X"], data["logistic"], **{**kwargs, "backend": "numpy"})
    remote = fastgd.minimize(_dask(data["X"]), _dask(y), **kwargs)
    assert remote.objective == pytest.approx(local.objective, rel=1e-10)
    bad = y.astype(np.int64) * 2
    with pytest.raises(ValueError, match=r"logistic loss needs y in \{0, 1\}"):
        fastgd.minimize(_dask(data["X"]), _dask(bad), **kwargs)


def test_sample_weights_uneven_blocks_and_float32(client, data):
    X32 = data["X"].astype(np.float32)
    y, sw = data["logistic"], data["weights"]
    kwargs = dict(loss="logistic", l2=1e-3, solver="lbfgs", tol=1e-8)
    local = fastgd.minimize(X32, y, sample_weight=sw, **kwargs)
    Xd = da.from_array(X32, chunks=((1_000, 2_500, 2_500),) + ((4, 8),))  # rechunked to whole rows
    remote = fastgd.minimize(Xd, y, sample_weight=_dask(sw, 700), **kwargs)
    assert remote.coef.dtype == np.float32
    assert remote.objective == pytest.approx(local.objective, rel=1e-6)


def test_bad_dask_input_is_named(client, data):
    X = data["X"].copy()
    X[10, 3] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        fastgd.minimize(_dask(X), _dask(data["mse"]))
    with pytest.raises(ValueError, match=r"logistic loss needs y in \{0, 1\}"):
        fastgd.minimize(_dask(data["X"]), _dask(data["mse"]), loss="logistic")
    with pytest.raises(ValueError, match="solver='sgd' does not take Dask arrays"):
        fastgd.minimize(_dask(data["X"]), _dask(data["mse"]), solver="sgd")
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        fastgd.minimize(_dask(data["X"]), _dask(data["mse"]), sample_weight=-data["weights"])


def test_estimators_take_dask_arrays(client, data):
    Xd = _dask(data["X"])
    reg_local = fastgd.GDRegressor(alpha=1e-3, solver="lbfgs", tol=1e-10).fit(data["X"], data["mse"])
    reg = fastgd.GDRegressor(alpha=1e-3, solver="lbfgs", tol=1e-10).fit(Xd, _dask(data["mse"]))
    np.testing.assert_allclose(reg.coef_, reg_local.coef_, rtol=1e-6, atol=1e-8)
    prediction = reg.predict(Xd)
    assert hasattr(prediction, "dask")  # lazy: computed on the cluster when asked
    np.testing.assert_allclose(prediction.compute(), reg_local.predict(data["X"]), rtol=1e-6, atol=1e-8)
    labels = np.array(["low", "mid", "high"])[data["softmax"]]
    clf_local = fastgd.GDClassifier(alpha=1e-3, solver="lbfgs", tol=1e-10).fit(data["X"], labels)
    clf = fastgd.GDClassifier(alpha=1e-3, solver="lbfgs", tol=1e-10).fit(Xd, _dask(labels))
    np.testing.assert_array_equal(clf.classes_, clf_local.classes_)
    np.testing.assert_allclose(clf.coef_, clf_local.coef_, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(clf.predict(Xd).compute(), clf_local.predict(data["X"]))
    with pytest.raises(ValueError, match="expecting 12 features"):
        reg.predict(Xd[:, :5])
