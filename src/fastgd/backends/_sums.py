"""The host side shared by the CPU kernels: weights in, normalised results out.

Every kernel returns weighted sums (of losses, gradients and intercept gradients); the
loss and gradients are those sums divided by the total weight, in X's dtype.
"""

import numpy as np

#: Bytes of a cache line: per-task sum rows are kept at least this far apart.
CACHE_LINE_BYTES = 64


def padded_width(width):
    """Row length (float64 values) of a per-task sum buffer that holds `width` values.

    Rounded up to whole cache lines, plus one line: however the buffer is aligned, the
    values of two tasks' rows (two threads may be writing them) never share a cache line.
    Threads write their rows while they work (the float64 gradient every few rows), and a
    shared line passed back and forth between the cores cost a third of the time
    (2,000,000 x 64 float32 logistic: 20.0 -> 13.8 ms, cython, in one process).
    """
    per_line = CACHE_LINE_BYTES // 8
    return (width + per_line - 1) // per_line * per_line + per_line


def task_rows(n_tasks, width):
    """Zeroed float64 sum rows, one per task (_config.cpu_tasks), `width` values each,
    padded (see padded_width); a kernel's result is ``rows[:, :width].sum(axis=0)``."""
    return np.zeros((n_tasks, padded_width(width)))


def weights(sample_weight, n, dtype):
    """(sw, total): the weights as the kernels take them (an empty array for none) and
    their sum (n without weights)."""
    if sample_weight is None:
        return np.empty(0, dtype), n
    return sample_weight, float(np.sum(sample_weight, dtype=np.float64))


def normalised(value, grad, grad_b, total, dtype, softmax):
    """(loss, grad_w, grad_b) from the kernel's sums: divided by the total weight, the
    gradients cast to X's dtype (grad_b a scalar unless softmax)."""
    grad_w = (grad / total).astype(dtype)
    if softmax:
        return value / total, grad_w, (np.asarray(grad_b) / total).astype(dtype)
    return value / total, grad_w, dtype.type(grad_b / total)


#: Classes per register tile of the dense softmax kernels' score products
#: (kernels/fastgd_tiles_impl.h, numba's _block_class_scores).
SOFTMAX_TILE_CLASSES = 4


def softmax_coefficients(w, b, dtype):
    """(Wt, b_t): the rows of coefficients the dense softmax kernels multiply X by, (kq, d)
    in X's dtype (transposed so the kernels' inner loops run over d), and their intercepts
    (kq,) in float64.

    Softmax probabilities and losses depend only on differences of scores, and every row's
    residuals s (p - onehot) sum to zero over the classes. So the last class may score 0:
    the rows are then the first k - 1 classes' coefficients minus the last one's
    (differences taken in float64), the kernels compute k - 1 scores a row and accumulate
    k - 1 gradient rows, and the last gradient row is minus the sum of the others
    (:func:`softmax_gradient`); both products over X lose 1/k of their work. Where k is a
    multiple of the tile's classes, k - 1 would leave classes outside the tiles that cost
    more than the class saved (2M x 64 float64, k = 8, in one process: cython 65 -> 73 ms),
    and kq = k: the coefficients as they are.
    """
    w64 = np.asarray(w, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if w64.shape[1] % SOFTMAX_TILE_CLASSES == 0:
        return np.ascontiguousarray(w64.T, dtype=dtype), b64.copy()
    Wt = np.ascontiguousarray((w64[:, :-1] - w64[:, -1:]).T, dtype=dtype)
    return Wt, b64[:-1] - b64[-1]


def softmax_gradient(rows, k):
    """The (k, d) gradient from the kernels' kq rows (kq, d): with kq = k - 1 the last row
    is minus the sum of the others (see softmax_coefficients)."""
    if rows.shape[0] == k:
        return rows
    return np.vstack([rows, -rows.sum(axis=0, keepdims=True)])
