"""fastgd: fast gradient-descent training of linear models on large data.

Objective: ``loss + l1 * sum|w| + l2 * sum w**2`` (the intercept is never penalised),
with ``mse``, ``logistic`` or ``softmax`` loss. The kernels run on one of several
backends (``numpy``, ``numba``, ``cython``, ``cuda``) chosen with :func:`set_backend`,
:func:`use_backend`, the ``FASTGD_BACKEND`` environment variable, or ``backend=``.
"""

from ._api import gd_step, loss_grad, penalty
from ._registry import (
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "available_backends",
    "gd_step",
    "get_backend",
    "loss_grad",
    "penalty",
    "set_backend",
    "use_backend",
]
