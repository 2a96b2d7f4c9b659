"""GDRegressor and GDClassifier: scikit-learn compatibility and agreement with scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn import datasets
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgd import GDClassifier, GDRegressor


@parametrize_with_checks([GDRegressor(), GDClassifier()])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_lasso_mapping_matches_sklearn():
    X, y = datasets.load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = GDRegressor(penalty="l1", alpha=2 * 0.5, tol=1e-10, max_iter=100_000).fit(X, y)
    ref = Lasso(alpha=0.5, tol=1e-14, max_iter=100_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6 * np.abs(ref.coef_).max())
    assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-8)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-8)


@pytest.mark.parametrize(
    "loader", [datasets.load_breast_cancer, datasets.load_iris], ids=["binary", "multiclass"]
)
def test_logistic_mapping_matches_sklearn(loader):
    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    C = 0.5
    ours = GDClassifier(alpha=1 / (2 * C * len(y)), tol=1e-10).fit(X, y)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert (ours.predict(X) == ref.predict(X)).mean() == 1.0
    assert ours.coef_.shape == ref.coef_.shape and ours.intercept_.shape == ref.intercept_.shape


def test_any_label_values_and_probabilities():
    X, y = datasets.load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = GDClassifier(alpha=1e-3).fit(X, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(names)
    assert clf.score(X, names) > 0.9
    binary = GDClassifier().fit(X[:100], np.where(y[:100] == 0, "no", "yes"))
    assert (
        binary.predict_proba(X[:100]).shape == (100, 2)
        and binary.score(X[:100], np.where(y[:100] == 0, "no", "yes")) == 1.0
    )


def test_grid_search_chooses_penalty_and_learning_rate():
    """Cross-validated choice of alpha and the gd step (the documented example)."""
    X, y = datasets.load_diabetes(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), GDRegressor(solver="gd", max_iter=2000))
    grid = GridSearchCV(
        pipe, {"gdregressor__alpha": [1e-3, 1e-1, 10.0], "gdregressor__learning_rate": [0.005, 0.02]}, cv=3
    )
    grid.fit(X, y)
    assert grid.best_params_["gdregressor__alpha"] in (1e-3, 1e-1, 10.0)
    assert grid.best_params_["gdregressor__learning_rate"] in (0.005, 0.02)
    # alpha = 10 shrinks everything: cross-validation must not pick it on this data.
    assert grid.best_params_["gdregressor__alpha"] != 10.0
    assert grid.best_score_ > 0.4


@pytest.mark.parametrize("Estimator", [GDRegressor, GDClassifier])
def test_float32_end_to_end(Estimator):
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    est = Estimator(solver="fista").fit(X, y)
    assert est.coef_.dtype == np.float32
    assert est.predict(X).dtype == (np.float32 if Estimator is GDRegressor else y.dtype)


def test_partial_fit_streams_chunks():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = GDClassifier(alpha=1e-3, random_state=0)
    for _epoch in range(30):
        for start in range(0, len(y), 100):
            clf.partial_fit(X[start : start + 100], y[start : start + 100], classes=[0, 1])
    full = GDClassifier(alpha=1e-3).fit(X, y)
    assert clf.objective_ == pytest.approx(full.objective_, rel=0.5)
    assert clf.score(X, y) > 0.95
    with pytest.raises(ValueError, match="classes must be passed"):
        GDClassifier().partial_fit(X, y)


def test_warm_start_continues():
    X, y = datasets.load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    est = GDRegressor(solver="gd", warm_start=True, max_iter=50).fit(X, y)
    first = est.objective_
    est.fit(X, y)
    assert est.objective_ < first
    assert est.loss_curve_[0] == pytest.approx(first)
