"""The public kernel entry points: validate once, then dispatch to the selected backend."""

from . import _registry, _validate


def _device_check(module):
    """The backend's test for GPU-resident arrays, or one that says no."""
    return getattr(module, "is_device_array", lambda a: False)


def _reject_device_arrays(module, *arrays):
    for a in arrays:
        if hasattr(a, "__cuda_array_interface__") or type(a).__name__ == "FakeCUDAArray":
            raise TypeError(
                f"a GPU device array was given to the {module.NAME!r} backend; "
                "use backend='cuda' or copy it to the host first"
            )


def loss_grad(X, y, w, b=0.0, *, loss="mse", sample_weight=None, backend=None, check_input=True):
    r"""Loss and its gradient in one pass over X.

    .. math::

        L(w, b) = \frac{\sum_i s_i\, \ell(x_i^\top w + b,\ y_i)}{\sum_i s_i}

    with ``mse``: :math:`\ell(z, y) = (z - y)^2`; ``logistic``:
    :math:`\ell(z, y) = \log(1 + e^z) - y z`, :math:`y \in \{0, 1\}`; ``softmax``:
    :math:`\ell(z, y) = -\log \mathrm{softmax}(z)_y`, z of length k. Without
    sample weights :math:`s_i = 1`. No penalty is included (see :func:`penalty`).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        float32 or float64 (other real dtypes are converted to float64). A C-contiguous
        float array, read-only and memory-mapped ones included, is used without a copy.
    y : array-like of shape (n_samples,)
        Targets; {0, 1} for ``logistic``; integer labels 0..k-1 for ``softmax``.
    w : array-like of shape (n_features,), or (n_features, k) for ``softmax``
    b : float, or array-like of shape (k,) for ``softmax``
    loss : {"mse", "logistic", "softmax"}
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights with a positive sum.
    backend : str, optional
        Backend for this call; the current one (:func:`get_backend`) by default.
    check_input : bool, default True
        False skips the scans of the values (NaN/inf, labels, weight signs); shapes and
        dtypes are still checked. Only for inputs known valid. With the numba and cython
        backends X itself is scanned only when the result is not finite (NaN/inf in X
        always make it so), so a valid X is read once per call either way.

    Returns
    -------
    loss : float
    grad_w : ndarray shaped like w, in X's dtype
    grad_b : scalar of X's dtype, or ndarray of shape (k,) for ``softmax``
    """
    module = _registry.resolve(backend)
    is_device = _device_check(module)
    # Kernels that carry NaN/inf from X into their result let X's values be scanned only
    # when the result is not finite, not on every call.
    scan_after = check_input and getattr(module, "PROPAGATES_NONFINITE", False)
    if any(is_device(a) for a in (X, y, w, b, sample_weight) if a is not None):
        args = _validate.device_loss_grad_args(X, y, w, b, loss, sample_weight, is_device)
        scan_after = False
    else:
        _reject_device_arrays(module, X, y, w, sample_weight)
        args = _validate.loss_grad_args(
            X, y, w, b, loss, sample_weight, check_values=check_input, scan_X=not scan_after
        )
    X, y, w, b, sample_weight = args
    _validate.check_backend_takes(module, X)
    result = module.loss_grad(X, y, w, b, loss, sample_weight)
    if scan_after and not _validate.all_finite(result):
        _validate.check_X_values(X)  # names the first NaN/inf; a finite X overflowed
    return result


def gd_step(w, grad_w, lr, l1=0.0, l2=0.0, *, out=None, backend=None):
    r"""One proximal gradient step: the new weights.

    .. math::

        w' = S\big(w - \mathrm{lr}\,(\nabla_w + 2\,l_2\,w),\ \mathrm{lr}\,l_1\big),
        \qquad S(v, t) = \mathrm{sign}(v)\max(|v| - t, 0)

    Parameters
    ----------
    w : array-like of shape (n_features,) or (n_features, k)
        Current weights; never modified unless passed as ``out`` too.
    grad_w : array-like shaped like w
        Gradient of the loss, without the penalty.
    lr : float > 0
    l1, l2 : float >= 0
    out : ndarray shaped like w, of w's float dtype, optional
        Where to write the result; ``out=w`` updates w in place with no allocation (the
        solvers' loop). A CUDA device array on the ``cuda`` backend.
    backend : str, optional

    Returns
    -------
    ndarray (or device array): ``out``, or a new array of w's dtype.
    """
    module = _registry.resolve(backend)
    is_device = _device_check(module)
    if is_device(w) or is_device(grad_w) or (out is not None and is_device(out)):
        if tuple(w.shape) != tuple(grad_w.shape):
            raise ValueError(f"grad_w has shape {grad_w.shape} but w has shape {w.shape}")
        lr = _validate.check_param("lr", lr, positive=True)
        l1, l2 = _validate.check_param("l1", l1), _validate.check_param("l2", l2)
        if out is None:  # the result lives where w lives
            out = module.device_copy(w) if is_device(w) else _validate.host_copy(w, "w")
        elif out is not w:
            if tuple(out.shape) != tuple(w.shape):
                raise ValueError(f"out has shape {out.shape} but w has shape {w.shape}")
            out.copy_to_device(w)
    else:
        _reject_device_arrays(module, w, grad_w, out)
        w, grad_w, lr, l1, l2, out = _validate.gd_step_args(w, grad_w, lr, l1, l2, out)
    return module.gd_step(out, grad_w, lr, l1, l2)


def penalty(w, l1=0.0, l2=0.0, *, backend=None):
    r"""The elastic-net penalty :math:`l_1 \sum |w| + l_2 \sum w^2`, as a float.

    The intercept is never penalised: pass only the coefficients.
    """
    module = _registry.resolve(backend)
    if _device_check(module)(w):
        l1, l2 = _validate.check_param("l1", l1), _validate.check_param("l2", l2)
    else:
        _reject_device_arrays(module, w)
        w, l1, l2 = _validate.penalty_args(w, l1, l2)
    return module.penalty(w, l1, l2)
