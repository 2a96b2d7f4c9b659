"""The NumPy reference backend: the formulas of fastgd, written to be read.

Every other backend computes what this module computes, and is tested against it.
Two passes over X are allowed here (``X @ w`` then ``X.T @ r``).

Contract shared by every backend module (inputs already validated by
``fastgd._validate``: C-contiguous, finite, dtypes consistent):

``loss_grad(X, y, w, b, loss, sample_weight)``
    X : ndarray of shape (n, d), float32 or float64.
    y : ndarray of shape (n,); X's dtype for ``mse``; X's dtype or uint8 labels 0/1
        for ``logistic``; intp labels for ``softmax``.
    w : ndarray of shape (d,), or (d, k) for ``softmax``; X's dtype.
    b : float, or ndarray of shape (k,) in X's dtype for ``softmax``.
    loss : ``"mse"``, ``"logistic"`` or ``"softmax"``.
    sample_weight : None or ndarray of shape (n,) in X's dtype, >= 0 with a positive sum.
    Returns ``(loss, grad_w, grad_b)``: a Python float, an array shaped like w in X's
    dtype, and a scalar of X's dtype (an array of shape (k,) for ``softmax``).

``gd_step(w, grad_w, lr, l1, l2)``
    ``w <- soft_threshold(w - lr (grad_w + 2 l2 w), lr l1)`` in place; returns w.

``penalty(w, l1, l2)``
    ``l1 sum|w| + l2 sum w**2`` as a Python float.
"""

import numpy as np

NAME = "numpy"
#: loss_grad also takes X as a scipy CSR matrix/array (not densified).
SUPPORTS_CSR = True


def _per_sample(z, y, loss):
    """Per-sample losses and their derivatives with respect to the scores z."""
    if loss == "mse":
        r = z - y
        return r**2, 2.0 * r
    if loss == "logistic":
        # log(1 + e^z) = logaddexp(0, z) stays finite for large |z|.
        return np.logaddexp(0.0, z) - y * z, _sigmoid(z) - y
    if loss == "softmax":
        zmax = z.max(axis=1, keepdims=True)
        e = np.exp(z - zmax)
        sum_e = e.sum(axis=1, keepdims=True)
        log_sum_exp = zmax[:, 0] + np.log(sum_e[:, 0])
        rows = np.arange(z.shape[0])
        per_loss = log_sum_exp - z[rows, y]
        dz = e / sum_e
        dz[rows, y] -= 1.0
        return per_loss, dz
    raise ValueError(f"unknown loss {loss!r}")


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def loss_grad(X, y, w, b, loss, sample_weight):
    dtype = X.dtype
    # Scores and residuals in float64 so float32 data keeps float64-grade loss.
    z = (X @ w).astype(np.float64) + b
    per_loss, dz = _per_sample(z, y, loss)
    if sample_weight is None:
        s = np.ones(X.shape[0])
    else:
        s = sample_weight.astype(np.float64)
    total = s.sum()
    value = float(s @ per_loss / total)
    r = (dz.T * s).T / total  # d loss / d z_i, weighted and normalised
    grad_w = (X.T @ r.astype(dtype)).astype(dtype, copy=False)
    grad_b = r.sum(axis=0).astype(dtype)
    if loss != "softmax":
        grad_b = dtype.type(grad_b)
    return value, grad_w, grad_b


def soft_threshold(v, t):
    """sign(v) max(|v| - t, 0): the proximal operator of t |.|."""
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def gd_step(w, grad_w, lr, l1, l2):
    w[...] = soft_threshold(w - lr * (grad_w + 2.0 * l2 * w), lr * l1)
    return w


def penalty(w, l1, l2):
    w = w.astype(np.float64)
    return float(l1 * np.abs(w).sum() + l2 * (w * w).sum())
