"""Per-sample loss maths shared by the Numba CPU kernels and the Numba-CUDA kernels.

Each helper takes the linear score ``z`` of one sample (and its target) and returns the
sample's loss and the derivative of that loss with respect to ``z``. They are plain
``numba.njit`` functions so both targets compile the same source.
"""

import math

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
