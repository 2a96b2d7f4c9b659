"""The CUDA backend: Numba-CUDA kernels that read X once from GPU memory.

Contract: see :mod:`fastgd.backends.numpy`. Besides numpy arrays, every array argument
may be a CUDA device array (a Numba device array, or any object with
``__cuda_array_interface__``); such arrays are used in place, never copied to the host.
When ``w`` is a device array, ``loss_grad`` returns ``grad_w`` (and, for ``softmax``,
``grad_b``) as Numba device arrays, and ``gd_step`` updates ``w`` on the device.

How ``loss_grad`` makes one pass over X without atomics (B blocks of T threads):

1. Blocks walk the rows grid-stride, one tile of T rows at a time. Thread t of a block
   computes the score(s) of row t of the tile, its weighted loss (kept in a register)
   and its weighted residual ``s_i dloss/dz_i`` (k values), which it stores in its own
   row of a global scratch buffer ``R`` of shape (B*T, k).
2. After ``syncthreads`` the same threads turn to the columns: thread t owns features
   j = t, t+T, ... and adds ``sum over the tile's rows of R[row] * X[row, j]`` into
   ``part_g[block, j]``, which only this block (and within it only this thread)
   writes. The tile's rows were read in step 1, so this re-read is served by the
   cache, and neighbouring threads read neighbouring addresses. The intercept is a
   last "feature" that is always 1.
3. Each block tree-reduces its threads' losses and weights in shared memory and writes
   one pair per block; a one-block kernel adds the pairs over blocks, and a last kernel
   adds ``part_g`` over blocks, divides by the sum of the weights and casts to X's dtype.

Everything is accumulated in float64, for float32 X too: every array element is read
through ``float()`` before any arithmetic. On the GPU mixing float32 and float64 would
promote anyway, but the simulator runs the kernels as Python with NumPy scalars, where a
Python float times a float32 scalar stays float32 (NEP 50). Sizes are read from
:mod:`fastgd._config` at every call (``CUDA_THREADS_PER_BLOCK``, ``CUDA_MAX_BLOCKS``,
``CUDA_SCRATCH_MAX_BYTES``).
"""

import functools
import math
import threading

import numpy as np

from .. import _config
from .._registry import BackendUnavailableError

try:
    import numba
    from numba import cuda
except ImportError as exc:
    raise BackendUnavailableError(
        f"numba-cuda is not installed ({exc}); install it with: pip install fastgd[cuda]"
    ) from None


def _gpu_present():
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install raises instead of answering False
        return False


if not numba.config.ENABLE_CUDASIM and not _gpu_present():
    raise BackendUnavailableError(
        "no CUDA GPU/driver was found on this machine; "
        "set NUMBA_ENABLE_CUDASIM=1 (before numba is imported) to run the CUDA simulator instead"
    )

from . import _rowmath  # noqa: E402  (only once the backend is known to be usable)

NAME = "cuda"

_SOFTMAX = _config.SOFTMAX  # an integer constant; safe to freeze into the kernels

# The per-sample maths of the CPU kernels, compiled from the same Python source as CUDA
# device functions (see the docstring of _rowmath for why not the njit ones directly).
_scalar_loss_dz = _rowmath.compile_with(cuda.jit(device=True))["scalar_loss_dz"]


# --------------------------------------------------------------------------- helpers


# The simulator runs a kernel by swapping this module's global ``cuda`` for a fake one
# until the launch returns, so launches from two Python threads at once corrupt each
# other (and the other thread's host code sees the fake module). Under the simulator the
# entry points below take turns; on a GPU, launches from several threads are fine.
_ON_SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
_SIMULATOR_LOCK = threading.RLock()
# Captured once: host code must not read ``cuda.`` while another thread's launch has it swapped.
_is_cuda_ndarray = cuda.devicearray.is_cuda_ndarray


def _one_launch_at_a_time_on_the_simulator(fn):
    if not _ON_SIMULATOR:
        return fn

    @functools.wraps(fn)
    def serialised(*args, **kwargs):
        with _SIMULATOR_LOCK:
            return fn(*args, **kwargs)

    return serialised


def is_device_array(obj):
    """True if ``obj`` lives in GPU memory (a Numba device array, real or simulated, or
    any object exposing ``__cuda_array_interface__``, e.g. CuPy arrays).

    ``numba.cuda.is_cuda_array`` is missing from the simulator, hence this test.
    """
    return bool(_is_cuda_ndarray(obj)) or hasattr(obj, "__cuda_array_interface__")


def _to_device(a, dtype=None):
    """A Numba device array for ``a``: itself if it is one, a zero-copy view if it exposes
    ``__cuda_array_interface__``, otherwise a copy of the host array (cast to ``dtype``)."""
    if _is_cuda_ndarray(a):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))


def _threads():
    tpb = int(_config.CUDA_THREADS_PER_BLOCK)
    if tpb < 1:
        raise ValueError(f"fastgd._config.CUDA_THREADS_PER_BLOCK must be >= 1, got {tpb}")
    return tpb


def _blocks(work_items, tpb, bytes_per_block=0):
    """Blocks for ``work_items`` items at ``tpb`` per block, capped by the configuration
    and by the scratch memory each block needs."""
    blocks = min(-(-work_items // tpb), max(1, int(_config.CUDA_MAX_BLOCKS)))
    if bytes_per_block:
        blocks = min(blocks, int(_config.CUDA_SCRATCH_MAX_BYTES) // bytes_per_block)
    return max(1, blocks)


# --------------------------------------------------------------------- device code


@cuda.jit(device=True)
def _block_tree_sum(sm, columns, t, tpb):
    """Sum, over the block's threads, each of ``columns`` columns of shared memory.

    ``sm[c * tpb + t]`` holds thread t's value of column c; afterwards ``sm[c * tpb]``
    holds the column's sum. Every thread of the block must call this. ``tpb`` need not
    be a power of two: the first step folds the top down onto a power-of-two prefix.
    """
    cuda.syncthreads()
    step = 1
    while step < tpb:
        step *= 2
    step //= 2
    while step > 0:
        if t < step and t + step < tpb:
            for c in range(columns):
                sm[c * tpb + t] += sm[c * tpb + t + step]
        cuda.syncthreads()
        step //= 2


@cuda.jit(device=True)
def _softmax_row_loss_dz(X, row, W, b, label, r):
    """Loss of one sample under softmax, and its dloss/dz written into ``r``.

    X (n, d), W (d, k), b (k,); ``r`` (k,) float64 is this thread's scratch row (it
    holds the scores first, then p - onehot(label)). Returns the loss
    ``logsumexp(z) - z[label]``, computed after subtracting max(z) so exp never
    overflows.
    """
    d = X.shape[1]
    k = W.shape[1]
    for c in range(k):
        r[c] = float(b[c])
    for j in range(d):
        x = float(X[row, j])
        for c in range(k):
            r[c] += x * float(W[j, c])
    z_label = r[label]
    z_max = r[0]
    for c in range(1, k):
        z_max = max(z_max, r[c])
    sum_e = 0.0
    for c in range(k):
        e = math.exp(r[c] - z_max)
        r[c] = e
        sum_e += e
    for c in range(k):
        r[c] /= sum_e
    r[label] -= 1.0
    return z_max + math.log(sum_e) - z_label


# cache=True keeps compiled kernels on disk. As with any Numba cache, only edits to this
# file invalidate it, not edits to _rowmath.py: clear __pycache__ after changing those.
@cuda.jit(cache=True)
def _loss_grad_partials(X, y, W, b, sw, has_sw, loss_code, R, part_g, part_lw):
    """Per-block sums of the weighted loss, weights and gradient (one pass over X).

    X (n, d); y (n,); W (d, k) (k = 1 and W = w[:, None] for mse/logistic); b (k,);
    sw (n,) sample weights, read only if ``has_sw``; R (blocks*tpb, k) float64 scratch;
    part_g (blocks, d + 1, k) float64 out: sum of s_i dloss/dz_i x_i (row d: the
    intercept, x = 1); part_lw (blocks, 2) float64 out: sum of s_i l_i and of s_i.
    """
    n, d = X.shape
    k = W.shape[1]
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    base = blk * tpb  # this block's rows of R
    # The columns each thread owns are fixed for the whole kernel, so each thread zeroes
    # its own entries of part_g and no synchronisation is needed before adding to them.
    for j in range(t, d + 1, tpb):
        for c in range(k):
            part_g[blk, j, c] = 0.0
    loss_sum = 0.0
    weight_sum = 0.0
    # tile0 is the same for every thread of the block, so all reach each syncthreads.
    for tile0 in range(base, n, cuda.gridDim.x * tpb):
        # Rows: thread t handles row tile0 + t.
        row = tile0 + t
        if row < n:
            s = float(sw[row]) if has_sw else 1.0
            if loss_code == _SOFTMAX:
                loss_i = _softmax_row_loss_dz(X, row, W, b, int(y[row]), R[base + t])
            else:
                z = float(b[0])
                for j in range(d):
                    z += float(X[row, j]) * float(W[j, 0])
                loss_i, dz = _scalar_loss_dz(loss_code, z, float(y[row]))
                R[base + t, 0] = dz
            for c in range(k):
                R[base + t, c] *= s
            loss_sum += s * loss_i
            weight_sum += s
        cuda.syncthreads()  # the tile's residuals are complete
        # Columns: thread t adds the tile's contribution to features t, t + tpb, ...
        rows = min(tpb, n - tile0)
        for j in range(t, d + 1, tpb):
            for c in range(k):
                acc = 0.0
                if j < d:
                    for i in range(rows):
                        acc += R[base + i, c] * float(X[tile0 + i, j])
                else:
                    for i in range(rows):
                        acc += R[base + i, c]
                part_g[blk, j, c] += acc
        cuda.syncthreads()  # R is overwritten by the next tile
    sm = cuda.shared.array(0, numba.float64)  # 2 * tpb, sized at launch
    sm[t] = loss_sum
    sm[tpb + t] = weight_sum
    _block_tree_sum(sm, 2, t, tpb)
    if t == 0:
        part_lw[blk, 0] = sm[0]
        part_lw[blk, 1] = sm[tpb]


@cuda.jit(cache=True)
def _sum_blocks(part, totals):
    """totals[c] = sum over rows of part[:, c]; one block, part (blocks, m) float64.

    Launched with one block and m * tpb float64 of shared memory.
    """
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    m = part.shape[1]
    sm = cuda.shared.array(0, numba.float64)
    for c in range(m):
        acc = 0.0
        for blk in range(t, part.shape[0], tpb):
            acc += part[blk, c]
        sm[c * tpb + t] = acc
    _block_tree_sum(sm, m, t, tpb)
    if t == 0:
        for c in range(m):
            totals[c] = sm[c * tpb]


@cuda.jit(cache=True)
def _finish_grad(part_g, totals, grad_w, grad_b):
    """grad_w (d, k) and grad_b (k,), in X's dtype: part_g (blocks, d + 1, k) summed over
    blocks and divided by the total weight totals[1]."""
    blocks, d1, k = part_g.shape
    inv_weight = 1.0 / totals[1]
    # Consecutive threads take consecutive (j, c) entries: coalesced reads of part_g.
    for e in range(cuda.grid(1), d1 * k, cuda.gridsize(1)):
        j = e // k
        c = e - j * k
        acc = 0.0
        for blk in range(blocks):
            acc += part_g[blk, j, c]
        if j < d1 - 1:
            grad_w[j, c] = acc * inv_weight
        else:
            grad_b[c] = acc * inv_weight


@cuda.jit(cache=True)
def _gd_step_kernel(w, g, lr, l1, l2):
    """w <- soft_threshold(w - lr (g + 2 l2 w), lr l1), elementwise on 1-D w and g."""
    thresh = lr * l1
    for i in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
        wi = float(w[i])
        v = wi - lr * (float(g[i]) + 2.0 * l2 * wi)
        if v > thresh:
            v -= thresh
        elif v < -thresh:
            v += thresh
        elif abs(v) <= thresh:
            v = 0.0
        # else v is NaN and stays NaN: a diverging run must stay detectable.
        w[i] = v


@cuda.jit(cache=True)
def _penalty_partials(w, part):
    """part[block] = (sum |w_i|, sum w_i**2) over the block's grid-stride share of 1-D w."""
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    abs_sum = 0.0
    sq_sum = 0.0
    for i in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
        v = float(w[i])
        abs_sum += abs(v)
        sq_sum += v * v
    sm = cuda.shared.array(0, numba.float64)  # 2 * tpb, sized at launch
    sm[t] = abs_sum
    sm[tpb + t] = sq_sum
    _block_tree_sum(sm, 2, t, tpb)
    if t == 0:
        part[cuda.blockIdx.x, 0] = sm[0]
        part[cuda.blockIdx.x, 1] = sm[tpb]


_F64_BYTES = 8


def _sum_over_blocks(part, tpb):
    """The column sums of ``part`` (blocks, m) float64, as a device array of shape (m,)."""
    m = part.shape[1]
    totals = cuda.device_array(m, np.float64)
    _sum_blocks[1, tpb, 0, m * tpb * _F64_BYTES](part, totals)
    return totals


# ---------------------------------------------------------------------- host side


@_one_launch_at_a_time_on_the_simulator
def loss_grad(X, y, w, b, loss, sample_weight):
    """Loss and gradient of a linear model, in one pass over X on the GPU.

    Parameters
    ----------
    X : ndarray or device array of shape (n, d), float32 or float64
    y : ndarray or device array of shape (n,)
        X's dtype for ``mse``/``logistic``; integer labels in [0, k) for ``softmax``
        (a device y is not checked: a label out of range reads out of bounds).
    w : ndarray or device array of shape (d,), or (d, k) for ``softmax``; X's dtype
    b : float, or ndarray or device array of shape (k,) for ``softmax``
    loss : {"mse", "logistic", "softmax"}
    sample_weight : None, or ndarray or device array of shape (n,) in X's dtype

    Returns
    -------
    loss : float
    grad_w : array shaped like w, in X's dtype
        A Numba device array if w is a device array, else a numpy array.
    grad_b : scalar of X's dtype; for ``softmax`` an array of shape (k,) in X's dtype,
        a device array if w is one.
    """
    loss_code = _config.LOSSES.index(loss)
    softmax = loss_code == _SOFTMAX
    w_on_device = is_device_array(w)
    X_d = _to_device(X)
    dtype = np.dtype(X_d.dtype)
    n, d = X_d.shape
    w_d = _to_device(w, dtype)
    W = w_d if softmax else w_d.reshape(d, 1)  # one code path: k = 1 for mse/logistic
    k = W.shape[1]
    y_d = _to_device(y)
    if is_device_array(b):
        b_d = _to_device(b)
    else:
        b_d = cuda.to_device(np.atleast_1d(np.asarray(b, dtype=np.float64)))
    has_sw = sample_weight is not None
    sw_d = _to_device(sample_weight, dtype) if has_sw else cuda.device_array(1, dtype)

    tpb = _threads()
    per_block = _F64_BYTES * ((d + 1) * k + tpb * k + 2)
    blocks = _blocks(n, tpb, per_block)
    R = cuda.device_array((blocks * tpb, k), np.float64)
    part_g = cuda.device_array((blocks, d + 1, k), np.float64)
    part_lw = cuda.device_array((blocks, 2), np.float64)
    _loss_grad_partials[blocks, tpb, 0, 2 * tpb * _F64_BYTES](
        X_d, y_d, W, b_d, sw_d, has_sw, loss_code, R, part_g, part_lw
    )
    totals = _sum_over_blocks(part_lw, tpb)
    grad_w = cuda.device_array((d, k), dtype)
    grad_b = cuda.device_array(k, dtype)
    _finish_grad[_blocks((d + 1) * k, tpb), tpb](part_g, totals, grad_w, grad_b)

    loss_sum, weight_sum = totals.copy_to_host()
    value = float(loss_sum / weight_sum)
    if not softmax:
        grad_w = grad_w.reshape(d)
    if w_on_device:
        if not softmax:
            grad_b = dtype.type(grad_b.copy_to_host()[0])
        return value, grad_w, grad_b
    grad_b = grad_b.copy_to_host()
    return value, grad_w.copy_to_host(), grad_b if softmax else dtype.type(grad_b[0])


@_one_launch_at_a_time_on_the_simulator
def device_copy(a):
    """A new device array holding a's values (a on the host or the device)."""
    if is_device_array(a):
        copy = cuda.device_array(a.shape, a.dtype)
        copy.copy_to_device(a)
        return copy
    return cuda.to_device(np.ascontiguousarray(a))


@_one_launch_at_a_time_on_the_simulator
def gd_step(w, grad_w, lr, l1, l2):
    """One proximal gradient step, in place: ``w <- soft_threshold(w - lr (grad_w + 2 l2 w), lr l1)``.

    Parameters
    ----------
    w : ndarray or device array of shape (d,) or (d, k), float32 or float64
        Updated in place: on the device if it is a device array, otherwise copied to the
        GPU, updated there and copied back into the same numpy array.
    grad_w : ndarray or device array shaped like w
    lr, l1, l2 : float

    Returns
    -------
    w : the same object, updated.
    """
    w_on_device = is_device_array(w)
    w_d = _to_device(w)
    g_d = _to_device(grad_w, np.dtype(w_d.dtype))
    size = int(np.prod(w_d.shape))
    tpb = _threads()
    _gd_step_kernel[_blocks(size, tpb), tpb](
        w_d.reshape(size), g_d.reshape(size), float(lr), float(l1), float(l2)
    )
    if not w_on_device:
        if isinstance(w, np.ndarray) and w.flags.c_contiguous:
            w_d.copy_to_host(w)
        else:
            w[...] = w_d.copy_to_host()
    return w


@_one_launch_at_a_time_on_the_simulator
def penalty(w, l1, l2):
    """``l1 sum|w| + l2 sum w**2``, accumulated in float64 on the GPU.

    Parameters
    ----------
    w : ndarray or device array of shape (d,) or (d, k)
    l1, l2 : float

    Returns
    -------
    float
    """
    w_d = _to_device(w)
    size = int(np.prod(w_d.shape))
    tpb = _threads()
    blocks = _blocks(size, tpb)
    part = cuda.device_array((blocks, 2), np.float64)
    _penalty_partials[blocks, tpb, 0, 2 * tpb * _F64_BYTES](w_d.reshape(size), part)
    abs_sum, sq_sum = _sum_over_blocks(part, tpb).copy_to_host()
    return float(l1 * abs_sum + l2 * sq_sum)
