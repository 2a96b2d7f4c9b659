r"""scikit-learn estimators on fastgd's solvers: :class:`GDRegressor`, :class:`GDClassifier`.

Penalty parameters map onto the objective ``loss + l1 sum|w| + l2 sum w**2`` as

=================  ==========================  ================================
``penalty``        ``l1``                      ``l2``
=================  ==========================  ================================
``"l2"``           0                           ``alpha``
``"l1"``           ``alpha``                   0
``"elasticnet"``   ``alpha * l1_ratio``        ``alpha * (1 - l1_ratio)``
``None``           0                           0
=================  ==========================  ================================

so, with n samples, scikit-learn's models are these (same optimum):

- ``Ridge(alpha=a)`` is ``GDRegressor(penalty="l2", alpha=a / n)``;
- ``Lasso(alpha=a)`` is ``GDRegressor(penalty="l1", alpha=2 * a)`` (our mse has no 1/2);
- ``ElasticNet(alpha=a, l1_ratio=r)`` is ``GDRegressor(penalty="elasticnet",
  alpha=a * (1 + r), l1_ratio=2 * r / (1 + r))``, i.e. l1 = 2 a r, l2 = a (1 - r);
- ``LogisticRegression(C=c)`` is ``GDClassifier(penalty="l2", alpha=1 / (2 * c * n))``.
"""

import numpy as np
from scipy import special
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _dask, _registry, _validate
from .solvers import SOLVERS, DivergenceError, minimize

PENALTIES = ("l2", "l1", "elasticnet", None)


class _GDBase(BaseEstimator):
    """Parameters and the fit loop shared by the regressor and the classifier."""

    def __init__(
        self,
        penalty="l2",
        alpha=1e-4,
        l1_ratio=0.15,
        solver="auto",
        learning_rate="auto",
        max_iter=1000,
        tol=1e-6,
        fit_intercept=True,
        batch_size=None,
        random_state=None,
        warm_start=False,
        verbose=False,
        backend=None,
    ):
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.batch_size = batch_size
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.backend = backend

    # --- parameters ---------------------------------------------------------------
    def _penalties(self):
        """(l1, l2) from penalty, alpha and l1_ratio (the table in the module docstring)."""
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of 'l2', 'l1', 'elasticnet' or None, got {self.penalty!r}")
        alpha = float(self.alpha)
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        if self.penalty is None:
            return 0.0, 0.0
        if self.penalty == "l2":
            return 0.0, alpha
        if self.penalty == "l1":
            return alpha, 0.0
        ratio = float(self.l1_ratio)
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        return alpha * ratio, alpha * (1.0 - ratio)

    def _lr(self):
        if isinstance(self.learning_rate, str):
            if self.learning_rate != "auto":
                raise ValueError(f"learning_rate must be a float > 0 or 'auto', got {self.learning_rate!r}")
            return None
        return self.learning_rate

    def _check_params(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        self._penalties()
        self._lr()
        if self.backend is not None:
            _registry.load(self.backend)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy CSR X is trained on without densifying
        return tags

    # --- fitting --------------------------------------------------------------------
    def _validate(self, X, y, sample_weight, reset):
        if _dask.is_dask_array(X):  # checked on the cluster by minimize, never pulled here
            self._check_dask_features(X, reset)
            return X, y, sample_weight
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            order="C",
            accept_sparse="csr",
            y_numeric=self._y_numeric,
            reset=reset,
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
            _validate.check_sample_weight(sample_weight, X.shape[0], X.dtype)  # signs and sum
        return X, y, sample_weight

    def _check_dask_features(self, X, reset):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got shape {X.shape}")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )

    def _validate_for_predict(self, X):
        """X ready for a prediction: a Dask array stays lazy (the result is a Dask array)."""
        check_is_fitted(self)
        if _dask.is_dask_array(X):
            self._check_dask_features(X, reset=False)
            return X
        return validate_data(self, X, dtype=[np.float64, np.float32], accept_sparse="csr", reset=False)

    def _run(
        self, X, y, sample_weight, loss, n_classes, solver, max_iter, coef_init, intercept_init, lr,
        partial=False,
    ):  # fmt: skip
        """One call of minimize; ``partial``: one plain SGD epoch (partial_fit sees a chunk)."""
        l1, l2 = self._penalties()
        try:
            return self._minimize(
                X, y, sample_weight, loss, n_classes, solver, max_iter, coef_init, intercept_init,
                lr, partial, l1, l2,
            )  # fmt: skip
        except DivergenceError as exc:
            raise DivergenceError(
                f"{exc}. In {type(self).__name__} the step is learning_rate={self.learning_rate!r}: "
                "lower it, or use learning_rate='auto'"
            ) from None

    def _minimize(
        self, X, y, sample_weight, loss, n_classes, solver, max_iter, coef_init, intercept_init, lr,
        partial, l1, l2,
    ):  # fmt: skip
        return minimize(
            X, y, loss=loss, l1=l1, l2=l2, solver=solver, lr=lr, max_iter=max_iter, tol=self.tol,
            fit_intercept=self.fit_intercept, sample_weight=sample_weight, batch_size=self.batch_size,
            random_state=self.random_state, verbose=self.verbose, backend=self.backend,
            coef_init=coef_init, intercept_init=intercept_init, n_classes=n_classes,
            variance_reduction=None if partial else "svrg",
        )  # fmt: skip

    def _store(self, result, to_coef, to_intercept):
        self.coef_ = to_coef(result.coef)
        self.intercept_ = to_intercept(result.intercept)
        self.n_iter_ = int(result.n_iter)
        self.loss_curve_ = result.history
        self.objective_ = result.objective
        self.converged_ = result.converged
        self.lr_ = result.lr


def _encode_block(y, classes):
    """Indices of one block's labels in classes; an unknown label raises (on the worker)."""
    index = np.searchsorted(classes, y)
    if np.any(index >= len(classes)) or np.any(classes[np.minimum(index, len(classes) - 1)] != y):
        raise ValueError(f"y holds labels not in classes_ {classes!r}")
    return index


def _labels_of(index, classes):
    return classes[index]


class GDRegressor(RegressorMixin, _GDBase):
    """Linear regression with an l2, l1 or elastic-net penalty, fitted by fastgd's solvers.

    Minimises ``mean((X w + b - y)**2) + l1 sum|w| + l2 sum w**2`` (weighted mean with
    ``sample_weight``); see the module docstring for how ``alpha``/``l1_ratio`` map onto
    ``l1``/``l2``.

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", None}, default "l2"
    alpha : float >= 0, default 1e-4
    l1_ratio : float in [0, 1], default 0.15 (``elasticnet`` only)
    solver : {"auto", "gd", "momentum", "nesterov", "fista", "sgd", "lbfgs"}, default "auto"
        ``sgd`` in ``fit`` is variance-reduced (SVRG) and reaches the exact optimum;
        ``partial_fit`` always takes one plain mini-batch SGD epoch over its chunk.
    learning_rate : float > 0 or "auto", default "auto"
        The step of the fixed-step solvers and the initial step of ``sgd``; "auto" takes
        1 / L from a Lipschitz estimate. ``lbfgs`` and ``fista`` choose their own.
    max_iter : int, default 1000 (epochs for ``sgd``)
    tol : float, default 1e-6 (see :mod:`fastgd.solvers` for the criterion)
    fit_intercept : bool, default True
    batch_size : int or None (``sgd``: default min(256, n_samples))
    random_state : int or None, seeds ``sgd`` shuffling
    warm_start : bool, default False: start ``fit`` from the previous solution
    verbose : bool, default False: tqdm progress bar
    backend : str or None: kernel backend (default: the current one)

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
    loss_curve_ : ndarray, the objective after each iteration
    objective_ : float
    n_features_in_ : int
    """

    _y_numeric = True

    def fit(self, X, y, sample_weight=None):
        self._check_params()
        X, y, sample_weight = self._validate(X, y, sample_weight, reset=True)
        warm = self.warm_start and hasattr(self, "coef_")
        result = self._run(
            X, y, sample_weight, "mse", None, self.solver, self.max_iter,
            self.coef_ if warm else None, self.intercept_ if warm else None, self._lr(),
        )  # fmt: skip
        self._store(result, lambda w: w, lambda b: float(b))
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of mini-batch SGD over (X, y), continuing from the current solution."""
        self._check_params()
        first = not hasattr(self, "coef_")
        X, y, sample_weight = self._validate(X, y, sample_weight, reset=first)
        result = self._run(
            X, y, sample_weight, "mse", None, "sgd", 1,
            None if first else self.coef_, None if first else self.intercept_,
            self._lr() if first else self.lr_, partial=True,
        )  # fmt: skip
        self._store(result, lambda w: w, lambda b: float(b))
        return self

    def predict(self, X):
        X = self._validate_for_predict(X)
        return X @ self.coef_.astype(X.dtype) + self.intercept_


class GDClassifier(ClassifierMixin, _GDBase):
    """Logistic (two classes) or softmax (more) regression fitted by fastgd's solvers.

    Any label values are accepted (``classes_`` holds them, sorted). Two classes train the
    ``logistic`` loss, more train ``softmax``. Parameters as :class:`GDRegressor`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_, loss_curve_, objective_, n_features_in_ : as GDRegressor
    """

    _y_numeric = False

    def _encode(self, y, sample_weight):
        if _dask.is_dask_array(y):  # encoded block by block on the cluster
            return y.map_blocks(_encode_block, self.classes_, dtype=np.intp)
        check_classification_targets(y)
        index = np.searchsorted(self.classes_, y)
        if np.any(index >= len(self.classes_)) or np.any(
            self.classes_[np.minimum(index, len(self.classes_) - 1)] != y
        ):
            raise ValueError(f"y holds labels not in classes_ {self.classes_!r}")
        return index

    def _loss(self):
        return "logistic" if len(self.classes_) == 2 else "softmax"

    def _fit(self, X, y, sample_weight, solver, max_iter, warm, partial=False):
        index = self._encode(y, sample_weight)
        loss = self._loss()
        k = len(self.classes_)
        if loss == "logistic":
            target = index.astype(np.uint8)  # labels 0/1, one byte a row
            coef_init = self.coef_[0] if warm else None
            intercept_init = self.intercept_[0] if warm else None
        else:
            target = index
            coef_init = self.coef_.T if warm else None
            intercept_init = self.intercept_ if warm else None
        lr = self._lr() if not (warm and solver == "sgd" and hasattr(self, "lr_")) else self.lr_
        result = self._run(X, target, sample_weight, loss, k if loss == "softmax" else None,
                           solver, max_iter, coef_init, intercept_init, lr, partial)  # fmt: skip
        if loss == "logistic":
            self._store(result, lambda w: w[None, :].copy(), lambda b: np.array([b], dtype=X.dtype))
        else:
            self._store(result, lambda w: np.ascontiguousarray(w.T), lambda b: np.asarray(b))
        return self

    def fit(self, X, y, sample_weight=None):
        self._check_params()
        X, y, sample_weight = self._validate(X, y, sample_weight, reset=True)
        if _dask.is_dask_array(y):
            classes = np.unique(_dask.compute_unique(y))
            weighted = y if sample_weight is None else y[sample_weight > 0]
            present = np.unique(_dask.compute_unique(weighted))
        else:
            check_classification_targets(y)
            classes = np.unique(y)
            present = classes if sample_weight is None else np.unique(y[sample_weight > 0])
        if len(present) < 2:
            raise ValueError(
                "GDClassifier needs samples of at least 2 classes (with positive weight); "
                f"got one class only: {present!r}"
            )
        warm = (
            self.warm_start
            and hasattr(self, "coef_")
            and np.array_equal(getattr(self, "classes_", None), classes)
        )
        self.classes_ = classes
        return self._fit(X, y, sample_weight, self.solver, self.max_iter, warm)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of mini-batch SGD over (X, y); the first call must name all ``classes``."""
        self._check_params()
        first = not hasattr(self, "coef_")
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            classes = np.unique(classes)
            if len(classes) < 2:
                raise ValueError("partial_fit needs at least 2 classes")
            self.classes_ = classes
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes {classes!r} differ from those of the first call {self.classes_!r}")
        X, y, sample_weight = self._validate(X, y, sample_weight, reset=first)
        return self._fit(X, y, sample_weight, "sgd", 1, warm=not first, partial=True)

    def decision_function(self, X):
        """Scores: shape (n_samples,) for two classes, (n_samples, n_classes) otherwise."""
        X = self._validate_for_predict(X)
        scores = X @ self.coef_.T.astype(X.dtype) + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        scores = self.decision_function(X)
        if scores.ndim == 1:  # expit of each side: no overflow, no 1 - p cancellation
            return np.stack([special.expit(-scores), special.expit(scores)], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """log predict_proba, computed in log space: finite even where a probability underflows."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.stack([special.log_expit(-scores), special.log_expit(scores)], axis=1)
        scores = scores - scores.max(axis=1, keepdims=True)
        return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))

    def predict(self, X):
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        if _dask.is_dask_array(index):
            return index.map_blocks(_labels_of, self.classes_, dtype=self.classes_.dtype)
        return self.classes_[index]
