"""Per-sample loss maths shared by the Numba CPU kernels and the Numba-CUDA kernels.

Each helper takes the linear score ``z`` of one sample (and its target) and returns the
sample's loss and the derivative of that loss with respect to ``z``. They are
``numba.njit`` functions, callable from other ``njit`` code; :func:`compile_with` compiles
the same Python source again for another target (the CUDA backend passes
``cuda.jit(device=True)``), so both targets run one source.

Why not call these ``njit`` dispatchers straight from ``cuda.jit`` kernels? numba-cuda
happens to accept that (it recompiles ``py_func`` as a device function in
``CUDATypingContext.resolve_value_type``, only when Numba itself is installed), but its
documentation (*Writing Device Functions*) describes only ``cuda.jit(device=True)``, so
the CUDA backend does not rely on it.
"""

import math
import types

import numba

from .._config import LOGISTIC, MSE


@numba.njit(cache=True)
def mse_loss_dz(z, y):
    """(z - y)**2 and its derivative 2 (z - y)."""
    r = z - y
    return r * r, 2.0 * r


@numba.njit(cache=True)
def logistic_loss_dz(z, y):
    """log(1 + e^z) - y z and its derivative sigmoid(z) - y, without overflow.

    log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}); e^{-|z|} never overflows.
    """
    e = math.exp(-abs(z))
    if z >= 0.0:
        p = 1.0 / (1.0 + e)
        loss = z + math.log1p(e) - y * z
    else:
        p = e / (1.0 + e)
        loss = math.log1p(e) - y * z
    return loss, p - y


@numba.njit(cache=True)
def scalar_loss_dz(loss_code, z, y):
    """Dispatch on the integer loss code of a one-output loss (mse or logistic)."""
    if loss_code == MSE:
        return mse_loss_dz(z, y)
    elif loss_code == LOGISTIC:
        return logistic_loss_dz(z, y)
    return math.nan, math.nan


def compile_with(jit):
    """The helpers above, compiled from their Python source by another decorator.

    Parameters
    ----------
    jit : callable
        A decorator, e.g. ``numba.cuda.jit(device=True)``.

    Returns
    -------
    dict
        ``{"mse_loss_dz": ..., "logistic_loss_dz": ..., "scalar_loss_dz": ...}``, each
        compiled by ``jit``. The new ``scalar_loss_dz`` calls the new versions of the two
        others, not the ``njit`` ones.
    """
    mse = jit(mse_loss_dz.py_func)
    logistic = jit(logistic_loss_dz.py_func)
    # scalar_loss_dz finds its callees as module globals when it is compiled: give its
    # copy a globals dict in which those names are the versions for the new target.
    src = scalar_loss_dz.py_func
    new_globals = {**src.__globals__, "mse_loss_dz": mse, "logistic_loss_dz": logistic}
    copy = types.FunctionType(src.__code__, new_globals, src.__name__, src.__defaults__, src.__closure__)
    scalar = jit(copy)
    return {"mse_loss_dz": mse, "logistic_loss_dz": logistic, "scalar_loss_dz": scalar}
