"""Slow, obviously correct references, independent of fastgd's own numpy backend.

Scores are computed in extended precision (np.longdouble) from the exact values the
backends receive; per-sample losses use scipy.special. Each function also returns the
magnitudes that bound the rounding error of a correct implementation, so tests can
ask for a relative accuracy without being fooled by cancellation.
"""

import numpy as np
from scipy import special


def make_problem(rng, n, d, loss, dtype, *, k=3, weighted=False, intercept=True, scale=1.0):
    """Random inputs of the given shape in the dtype a backend receives."""
    X = (rng.normal(size=(n, d)) * scale).astype(dtype)
    if loss == "softmax":
        y = rng.integers(0, k, size=n)
        w = rng.normal(size=(d, k)).astype(dtype) / np.sqrt(d)
        b = rng.normal(size=k).astype(dtype) if intercept else np.zeros(k, dtype)
    else:
        w = (rng.normal(size=d) / np.sqrt(d)).astype(dtype)
        z = X.astype(np.float64) @ w
        y = (
            (rng.random(n) < special.expit(z)).astype(dtype)
            if loss == "logistic"
            else (z + rng.normal(size=n)).astype(dtype)
        )
        b = float(rng.normal()) if intercept else 0.0
    sw = rng.random(n).astype(dtype) + 0.1 if weighted else None
    return X, y, w, b, sw


def loss_grad(X, y, w, b, loss, sample_weight=None):
    """(loss, grad_w, grad_b, loss_scale, grad_w_scale, grad_b_scale) in float64.

    The scales bound the first-order rounding error of a correct computation in units of
    the working precision: sums of absolute values of the terms, plus the effect of the
    rounding of the scores (the loss's curvature is at most 2).
    """
    Xl = np.asarray(X, dtype=np.longdouble)
    n = Xl.shape[0]
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    p = s / s.sum()
    wl = np.asarray(w, dtype=np.longdouble)
    bl = np.asarray(b, dtype=np.longdouble)
    z_l = Xl @ wl + bl
    z = z_l.astype(np.float64)
    z_abs = (np.abs(Xl) @ np.abs(wl)).astype(np.float64) + np.abs(np.asarray(b, dtype=np.float64))
    if loss == "mse":
        yf = np.asarray(y, dtype=np.float64)
        r = (z_l - np.asarray(y, dtype=np.longdouble)).astype(np.float64)
        per, dz = r**2, 2.0 * r
        dz_abs = np.abs(dz) + 2.0 * z_abs
    elif loss == "logistic":
        yf = np.asarray(y, dtype=np.float64)
        per = -special.log_expit(-z) - yf * z
        dz = special.expit(z) - yf
        dz_abs = np.abs(dz) + z_abs
    elif loss == "softmax":
        rows = np.arange(n)
        # log-sum-exp - z_y as (max - z_y) + log1p(the other classes' exponentials), so that
        # a row predicted that surely keeps its tiny loss (log of the rounded sum gives 0).
        top = np.argmax(z_l, axis=1)
        e = np.exp(z_l - z_l[rows, top][:, None])
        e[rows, top] = 0
        per = ((z_l[rows, top] - z_l[rows, y]) + np.log1p(e.sum(axis=1))).astype(np.float64)
        dz = special.softmax(z, axis=1)
        dz[rows, y] -= 1.0
        dz_abs = np.abs(dz) + z_abs
    else:
        raise ValueError(loss)
    pl = np.asarray(p, dtype=np.longdouble)
    value = float(np.sum(pl * per))
    # Softmax's log of a sum of at least 1: a correct computation may round that sum, an
    # error of one unit in the last place of 1 a row.
    lse = 1.0 if loss == "softmax" else 0.0
    loss_scale = float(
        np.sum(
            p * (np.abs(per) + lse + np.abs(dz).reshape(n, -1).sum(axis=1) * z_abs.reshape(n, -1).sum(axis=1))
        )
    )
    r = (pl * dz.T).T
    grad_w = (Xl.T @ r).astype(np.float64)
    grad_b = np.sum(r, axis=0).astype(np.float64)
    w_scale = (np.abs(Xl).T @ (pl * dz_abs.T).T).astype(np.float64)
    b_scale = np.sum(p * dz_abs.T, axis=-1).astype(np.float64)
    return value, grad_w, grad_b, loss_scale, w_scale, b_scale


def gd_step(w, g, lr, l1, l2):
    """The textbook proximal step in float64, returning a new array."""
    w = np.asarray(w, np.float64)
    v = w - lr * (np.asarray(g, np.float64) + 2.0 * l2 * w)
    return np.sign(v) * np.maximum(np.abs(v) - lr * l1, 0.0)


def penalty(w, l1, l2):
    w = np.asarray(w, np.float64).ravel()
    return l1 * sum(abs(float(v)) for v in w) + l2 * sum(float(v) ** 2 for v in w)


#: The accuracy asked of a backend against loss_grad, by dtype.
RTOL = {np.float64: 1e-9, np.float32: 2e-4}


def assert_matches_naive(result, X, y, w, b, loss, sw, rtol):
    """A backend's (value, grad_w, grad_b) within rtol of loss_grad's, relative to the
    magnitudes that bound a correct implementation's rounding."""
    value, grad_w, grad_b = result
    ref, ref_w, ref_b, loss_scale, w_scale, b_scale = loss_grad(X, y, w, b, loss, sw)
    assert np.isfinite(value)
    assert abs(value - ref) <= rtol * (abs(ref) + loss_scale), (value, ref)
    grad_w = np.asarray(grad_w, dtype=np.float64)
    assert grad_w.shape == ref_w.shape
    err = np.abs(grad_w - ref_w) - rtol * (np.abs(ref_w) + w_scale)
    assert np.all(err <= 0), f"grad_w off by {np.max(np.abs(grad_w - ref_w))}"
    grad_b = np.asarray(grad_b, dtype=np.float64)
    assert grad_b.shape == np.shape(ref_b)
    assert np.all(np.abs(grad_b - ref_b) <= rtol * (np.abs(ref_b) + b_scale)), (grad_b, ref_b)
