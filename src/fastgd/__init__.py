"""fastgd: fast gradient-descent training of linear models on large data.

Objective: ``loss + l1 * sum|w| + l2 * sum w**2`` (the intercept is never penalised),
with ``mse``, ``logistic`` or ``softmax`` loss. The kernels run on one of several
backends (``numpy``, ``numba``, ``cython``, ``cuda``) chosen with :func:`set_backend`,
:func:`use_backend`, the ``FASTGD_BACKEND`` environment variable, or ``backend=``.
:func:`minimize` trains with a choice of solvers; :class:`GDRegressor` and
:class:`GDClassifier` are scikit-learn estimators (``pip install fastgd[sklearn]``).
"""

from ._api import gd_step, loss_grad, penalty
from ._registry import (
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    unavailable_reasons,
    use_backend,
)
from .solvers import DivergenceError, OptimizeResult, minimize

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "DivergenceError",
    "GDClassifier",
    "GDRegressor",
    "OptimizeResult",
    "available_backends",
    "gd_step",
    "get_backend",
    "loss_grad",
    "minimize",
    "penalty",
    "set_backend",
    "unavailable_reasons",
    "use_backend",
]


def __getattr__(name):
    # The estimators need scikit-learn, an optional extra: import them on first use.
    if name in ("GDRegressor", "GDClassifier"):
        try:
            from . import estimators
        except ImportError as exc:
            raise ImportError(
                f"fastgd.{name} needs scikit-learn: pip install fastgd[sklearn] ({exc})"
            ) from None
        return getattr(estimators, name)
    raise AttributeError(f"module 'fastgd' has no attribute {name!r}")
