"""The host side shared by the CPU kernels: weights in, normalised results out.

Every kernel returns weighted sums (of losses, gradients and intercept gradients); the
loss and gradients are those sums divided by the total weight, in X's dtype.
"""

import numpy as np


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
