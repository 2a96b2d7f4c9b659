"""Input checks shared by every public entry point.

Validation happens once, here, before dispatch: backends receive C-contiguous
float32/float64 arrays of consistent shapes and may assume them valid. Inputs are
never modified; a conversion (dtype, memory order) makes a new array and leaves the
caller's alone. C-contiguous float32/float64 arrays, read-only ones and memmaps
included, pass through without a copy.
"""

import numbers

import numpy as np
from scipy import sparse

from . import _config

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FINITE_CHUNK = 1 << 20  # elements per slice when looking for the offending value


def check_loss(loss):
    if loss not in _config.LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(_config.LOSSES)}")
    return loss


def check_param(name, value, *, positive=False):
    """A finite real number >= 0 (> 0 with positive=True), returned as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _real_array(a, name, dtype=None):
    """a as an ndarray of a real dtype; bool and integers become float64."""
    arr = np.asarray(a)
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if dtype is None:
        if arr.dtype in _FLOAT_DTYPES:
            dtype = arr.dtype
        elif arr.dtype == np.float16:
            dtype = np.dtype(np.float32)
        else:
            dtype = np.dtype(np.float64)
    # No copy when the array is already C-contiguous and of the right dtype.
    return np.asarray(arr, dtype=dtype, order="C")


def check_finite(a, name):
    """Raise ValueError if a holds NaN or infinity.

    A sum streams over a without a temporary as large as a, and NaN/inf propagate into
    it; only when the sum is not finite (a bad value, or a mere overflow of the sum)
    are slices examined one by one.
    """
    if a.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(a)
    if np.isfinite(total):
        return
    flat = a.reshape(-1)
    for start in range(0, flat.size, _FINITE_CHUNK):
        part = flat[start : start + _FINITE_CHUNK]
        bad = ~np.isfinite(part)
        if bad.any():
            where = start + int(np.argmax(bad))
            index = np.unravel_index(where, a.shape)
            index = index[0] if len(index) == 1 else tuple(int(i) for i in index)
            raise ValueError(f"{name} contains NaN or infinity (first at index {index})")


def check_X(X, *, check_values=True):
    """X as a C-contiguous float32/float64 array of shape (n, d), n, d >= 1, or a scipy
    CSR matrix/array (csr_matrix, csr_array) with float32/float64 values, used as it is."""
    if sparse.issparse(X):
        return _check_csr(X, check_values=check_values)
    X = _real_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}; need at least one sample and one feature")
    if check_values:
        check_finite(X, "X")
    return X


def _check_csr(X, *, check_values=True):
    """A sparse X in CSR form, not densified: other sparse formats are refused (their
    conversion would copy X on every call), other value dtypes converted (a copy)."""
    if X.format != "csr":
        raise TypeError(
            f"sparse X must be in CSR format (csr_matrix or csr_array), got {X.format!r}; "
            "convert it once with X.tocsr()"
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}; need at least one sample and one feature")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.dtype not in _FLOAT_DTYPES:
        X = X.astype(np.float32 if X.dtype == np.float16 else np.float64)
    if not (X.data.flags.c_contiguous and X.indices.flags.c_contiguous and X.indptr.flags.c_contiguous):
        X = X.copy()
    if check_values:
        check_finite(X.data, "X")
    return X


def check_X_values(X):
    """ValueError naming the first NaN or infinity in X (dense, or a CSR matrix's values)."""
    check_finite(X.data if sparse.issparse(X) else X, "X")


def all_finite(result):
    """True if every number in a ``loss_grad`` result (loss, grad_w, grad_b) is finite."""
    return all(bool(np.isfinite(part).all()) for part in result)


def check_backend_takes(module, X):
    """TypeError if X is sparse and the backend has no CSR kernels (``SUPPORTS_CSR``)."""
    if sparse.issparse(X) and not getattr(module, "SUPPORTS_CSR", False):
        raise TypeError(
            f"the {module.NAME!r} backend does not take sparse X; use numpy, numba or cython, "
            "or pass X.toarray()"
        )


def check_targets(y, loss, n, dtype, n_classes=None, *, check_values=True):
    """y of shape (n,): X's dtype for mse and for float logistic y, uint8 labels 0/1 for
    bool or integer logistic y (see :func:`binary_labels`), intp labels 0..k-1 for softmax."""
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"y must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"y must be 1-D of shape (n_samples,), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"y has {arr.shape[0]} entries but X has {n} rows")
    if loss == "softmax":
        return _check_labels(arr, n_classes, check_values)
    if loss == "logistic" and arr.dtype.kind in "biu":
        return binary_labels(arr, check_values=check_values)
    y = _real_array(arr, "y", dtype)
    if loss == "logistic" and check_values:
        _check_binary(y)
    elif check_values:
        check_finite(y, "y")
    return y


def _check_labels(y, n_classes, check_values):
    """y as C-contiguous intp labels. Integer y is cast directly (no copy when it is intp
    already); float y must hold integral values."""
    if y.dtype.kind == "f":
        if check_values:
            check_finite(y, "y")
        labels = y.astype(np.intp)
        if check_values and not np.array_equal(labels, y):
            raise ValueError("softmax loss needs integer class labels in y, got non-integer values")
    else:
        labels = None  # cast below, after the range is checked on y (a cast could wrap)
    if check_values and y.size:
        values = y if labels is None else labels
        lo, hi = values.min(), values.max()
        if lo < 0:
            raise ValueError(f"softmax labels must be integers 0..k-1, found label {lo}")
        if n_classes is not None and hi >= n_classes:
            raise ValueError(
                f"softmax labels must lie in 0..{n_classes - 1} (n_classes = {n_classes}, the "
                f"columns of w), found labels from {lo} to {hi}"
            )
        if hi > np.iinfo(np.intp).max:
            raise ValueError(f"softmax labels must be integers 0..k-1, found label {hi}")
    return labels if labels is not None else np.asarray(y, dtype=np.intp, order="C")


#: Targets the {0, 1} check of logistic y examines at a time: its two boolean temporaries
#: stay in the L2 cache instead of growing with n (10,000,000 targets: 6.6 -> 5.0 ms).
_BINARY_CHUNK = 1 << 16


def binary_labels(y, *, check_values=True):
    """Logistic targets y in {0, 1} as C-contiguous uint8 labels, one byte a row.

    Every backend's logistic kernels take these as well as y in X's dtype: at d = 1 a row
    of float64 X and y is 16 bytes and of X and labels 9. bool and uint8 y pass through
    without a copy (bool as a uint8 view); other integer and float y are converted (a new
    array of n bytes), after the {0, 1} check on the values as given.
    """
    y = np.asarray(y)
    if y.dtype == np.bool_:
        return np.ascontiguousarray(y).view(np.uint8)
    if check_values:
        _check_binary(y)
    if y.dtype.kind == "f":
        return (y != 0).view(np.uint8)
    return np.asarray(y, dtype=np.uint8, order="C")


def _check_binary(y):
    """Raise ValueError unless every entry of y is 0 or 1 (NaN and inf are neither, so this
    also rejects them; no separate scan for non-finite values)."""
    for start in range(0, y.shape[0], _BINARY_CHUNK):
        part = y[start : start + _BINARY_CHUNK]
        bad = part > 1 if part.dtype == np.uint8 else (part != 0) & (part != 1)
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(
                f"logistic loss needs y in {{0, 1}}, found {float(part[at])!r} at index {start + at}"
            )


def check_coef(w, loss, d, dtype, *, name="w", check_values=True, n_classes=None):
    """w of shape (d,), or (d, k) with k >= 2 (k = n_classes when known) for softmax, in X's dtype."""
    w = _real_array(w, name, dtype)
    if loss == "softmax":
        k = "k" if n_classes is None else n_classes
        if w.ndim != 2 or w.shape[0] != d or w.shape[1] < 2 or w.shape[1] != (n_classes or w.shape[1]):
            raise ValueError(
                f"softmax needs {name} of shape (n_features, n_classes) = ({d}, {k}) with k >= 2, "
                f"got shape {w.shape}"
            )
    elif w.shape != (d,):
        raise ValueError(f"{loss} needs {name} of shape (n_features,) = ({d},), got shape {w.shape}")
    if check_values:
        check_finite(w, name)
    return w


def check_intercept(b, loss, dtype, n_classes=None):
    """b as a float (mse/logistic) or an array of shape (k,) in X's dtype (softmax)."""
    if loss != "softmax":
        if np.ndim(b) != 0:
            raise ValueError(f"{loss} needs a scalar intercept b, got shape {np.shape(b)}")
        b = _real_array(b, "b", np.float64)
        check_finite(b, "b")
        return float(b)
    b = _real_array(b, "b", dtype)
    if b.ndim == 0:
        b = np.full(n_classes, b, dtype=dtype)
    if b.shape != (n_classes,):
        raise ValueError(f"softmax needs b of shape (n_classes,) = ({n_classes},), got shape {b.shape}")
    check_finite(b, "b")
    return b


def check_sample_weight(sample_weight, n, dtype, *, check_values=True):
    """None, or non-negative finite weights of shape (n,) with a positive sum."""
    if sample_weight is None:
        return None
    sw = _real_array(sample_weight, "sample_weight", dtype)
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},) like the rows of X, got shape {sw.shape}")
    if check_values:
        check_finite(sw, "sample_weight")
        if (sw < 0).any():
            raise ValueError(
                f"sample_weight must be >= 0, found {float(sw.min())!r} at index {int(np.argmin(sw))}"
            )
        if not sw.sum() > 0:
            raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    return sw


def loss_grad_args(X, y, w, b, loss, sample_weight, *, check_values=True, scan_X=True):
    """Validate the arguments of ``loss_grad`` and return them ready for any backend.

    scan_X=False leaves X's values (NaN/inf) unread, for a caller that checks them after the
    kernel with :func:`check_X_values` when its result is not finite."""
    loss = check_loss(loss)
    X = check_X(X, check_values=check_values and scan_X)
    n, d = X.shape
    w = check_coef(w, loss, d, X.dtype, check_values=check_values)
    k = w.shape[1] if loss == "softmax" else None
    y = check_targets(y, loss, n, X.dtype, k, check_values=check_values)
    b = check_intercept(b, loss, X.dtype, k)
    sample_weight = check_sample_weight(sample_weight, n, X.dtype, check_values=check_values)
    return X, y, w, b, sample_weight


def device_loss_grad_args(X, y, w, b, loss, sample_weight, is_device):
    """Shape and dtype checks for arrays that live on a GPU (their values stay unread)."""
    loss = check_loss(loss)

    def dtype_of(a):
        return np.dtype(a.dtype)

    if len(X.shape) != 2 or dtype_of(X) not in _FLOAT_DTYPES:
        raise TypeError(f"a device X must be 2-D float32 or float64, got shape {X.shape} dtype {X.dtype}")
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X is empty: shape {X.shape}; need at least one sample and one feature")
    dtype = dtype_of(X)

    def host_or_device(a, name, check, *args):
        if is_device(a):
            return a
        return check(a, *args)

    w = host_or_device(w, "w", lambda a: check_coef(a, loss, d, dtype))
    want_w = (d, w.shape[1]) if loss == "softmax" else (d,)
    if tuple(w.shape) != want_w or dtype_of(w) != dtype or (loss == "softmax" and want_w[1] < 2):
        raise ValueError(
            f"{loss} needs w of shape {want_w} and dtype {dtype}, got {tuple(w.shape)} {w.dtype}"
        )
    k = w.shape[1] if loss == "softmax" else None
    y = host_or_device(y, "y", lambda a: check_targets(a, loss, n, dtype, k))
    if tuple(y.shape) != (n,):
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    if loss == "softmax" and dtype_of(y).kind not in "iu":
        raise TypeError(f"softmax needs integer labels in a device y, got dtype {y.dtype}")
    if loss != "softmax" and dtype_of(y) != dtype and not (loss == "logistic" and dtype_of(y) == np.uint8):
        raise TypeError(
            f"a device y must have X's dtype {dtype} (or uint8 labels for logistic), got {y.dtype}"
        )
    if loss == "softmax" and is_device(b):
        if tuple(b.shape) != (k,) or dtype_of(b) != dtype:
            raise ValueError(f"softmax needs b of shape ({k},) and dtype {dtype}")
    else:
        b = check_intercept(b, loss, dtype, k)
    if sample_weight is not None:
        sample_weight = host_or_device(
            sample_weight, "sample_weight", lambda a: check_sample_weight(a, n, dtype)
        )
        if tuple(sample_weight.shape) != (n,) or dtype_of(sample_weight) != dtype:
            raise ValueError(f"sample_weight must have shape ({n},) and dtype {dtype}")
    return X, y, w, b, sample_weight


def host_copy(a, name):
    """A new C-contiguous float32/float64 array with a's values."""
    return np.array(_real_array(a, name), order="C", copy=True)


def gd_step_args(w, grad_w, lr, l1, l2, out):
    """Checked (w, grad_w, lr, l1, l2, out): ``out`` is the C-contiguous float array the step
    writes (a fresh copy of w unless the caller gives one); w itself is never written
    unless it is passed as ``out``."""
    w_in = w
    w = _real_array(w, "w")
    if w.size == 0:
        raise ValueError("w is empty")
    check_finite(w, "w")
    grad_w = _real_array(grad_w, "grad_w", w.dtype)
    if grad_w.shape != w.shape:
        raise ValueError(f"grad_w has shape {grad_w.shape} but w has shape {w.shape}")
    check_finite(grad_w, "grad_w")
    lr = check_param("lr", lr, positive=True)
    l1, l2 = check_param("l1", l1), check_param("l2", l2)
    if out is None:
        out = host_copy(w, "w")
    else:
        if not isinstance(out, np.ndarray) or out.dtype != w.dtype:
            raise TypeError(
                f"out must be a numpy array of w's dtype {w.dtype}, got {type(out).__name__} "
                f"of dtype {getattr(out, 'dtype', None)}"
            )
        if out.shape != w.shape:
            raise ValueError(f"out has shape {out.shape} but w has shape {w.shape}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
        if out is not w_in:
            np.copyto(out, w)
    return w, grad_w, lr, l1, l2, out


def penalty_args(w, l1, l2):
    w = _real_array(w, "w")
    check_finite(w, "w")
    return w, check_param("l1", l1), check_param("l2", l2)
