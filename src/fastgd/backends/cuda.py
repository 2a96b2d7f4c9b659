"""The CUDA backend: Numba-CUDA kernels that read X once from GPU memory.

Contract: see :mod:`fastgd.backends.numpy`. Besides numpy arrays, every array argument
may be a CUDA device array (a Numba device array, or any object with
``__cuda_array_interface__``); such arrays are used in place, never copied to the host.
When ``w`` is a device array, ``loss_grad`` returns ``grad_w`` (and, for ``softmax``,
``grad_b``) as Numba device arrays, and ``gd_step`` updates ``w`` on the device.

How ``loss_grad`` makes one pass over X, without atomics (B blocks of T threads):

1. A main kernel leaves per-block sums: ``part_g[block]`` (d + 1, k) of s_i dloss/dz_i x_i
   (row d: the intercept) and ``part_lw[block]`` = (sum s_i l_i, sum s_i).
   - The tile kernels (:func:`_loss_grad_tiles`, :func:`_softmax_tiles`), used when a
     tile of at least one row fits in shared memory (``CUDA_TILE_BYTES``) and X is
     C-contiguous: each block copies tiles of consecutive rows (one contiguous run of
     memory) into shared memory, then computes their scores, losses and gradient there.
   - The row-group kernels (:func:`_loss_grad_groups`, :func:`_softmax_groups`) for
     wider rows or a strided device X: groups of up to 32 lanes read a row together.
   - The register kernel (:func:`_loss_grad_registers`), mse and logistic on C-ordered
     rows of up to 128 values, as ``CUDA_REGISTER_KERNEL`` says (by default float64 X,
     and float32 X of at least ``CUDA_REGISTER_F32_D_MIN`` features): no tiles; each
     lane holds its share of 4 rows in registers and the rows' scores are split among
     the lanes by shuffles.
   The comments above each kernel give their plan.
2. :func:`_finish` adds the blocks' sums, divides by the total weight and writes the
   gradient in X's dtype; the loss, the weight and the intercept's gradient come back to
   the host in one small copy.

Scratch buffers are kept between calls (per Python thread), so a call allocates only
the gradient it returns. Threads per block are capped at what each kernel's registers
allow (:func:`_threads_for`).

Everything is accumulated in float64, for float32 X too: every array element is read
through ``_f64()`` (``numba.float64``) before any arithmetic. Not through ``float()``:
compiled by Numba, ``float()`` of a float32 stays float32, so x * w would be rounded to
float32 before being added (seen on an H200; the simulator, which runs the kernels as
Python, hides it). Sizes are read from :mod:`fastgd._config` at every call
(``CUDA_THREADS_PER_BLOCK``, ``CUDA_MAX_BLOCKS``, ``CUDA_SCRATCH_MAX_BYTES``,
``CUDA_SHARED_MAX_BYTES``, ``CUDA_TILE_BYTES``, ``CUDA_REGISTER_KERNEL``).
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
_f64 = numba.float64  # the cast every array element goes through in the kernels

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


_LOCAL = threading.local()


def _scratch(name, shape, dtype=np.float64):
    """A device array for this thread's launches, kept and reused while its shape holds.

    Every entry point ends by copying a result to the host, which waits for its kernels,
    so the next call may overwrite the scratch; each Python thread has its own (kernels of
    two threads on one stream would otherwise interleave over it). Each kernel writes all
    of a scratch array before it reads any of it.
    """
    cache = getattr(_LOCAL, "scratch", None)
    if cache is None:
        cache = _LOCAL.scratch = {}
    a = cache.get(name)
    shape = tuple(np.atleast_1d(shape))
    if a is None or tuple(a.shape) != shape or np.dtype(a.dtype) != np.dtype(dtype):
        a = cache[name] = cuda.device_array(shape, dtype)
    return a


#: Threads per block that any kernel can launch with: 256 threads at 255 registers each
#: (the most a thread may have) fit the 64K registers of every NVIDIA multiprocessor.
_SAFE_THREADS = 256


def _threads_for(kernel):
    """The configured threads per block, capped at what ``kernel``'s registers allow.

    A block larger than the registers allow fails to launch. The cap is known once the
    kernel has been compiled for this device; until then no more than _SAFE_THREADS.
    """
    tpb = _threads()
    if _ON_SIMULATOR or tpb <= _SAFE_THREADS:
        return tpb
    caps = [overload.max_threads_per_block for overload in getattr(kernel, "overloads", {}).values()]
    return min(tpb, *caps) if caps else _SAFE_THREADS


def _group_size(d, tpb):
    """Lanes that share one row in the kernels: the smallest power of two >= d, at most 32
    (a warp) and CUDA_MAX_LANES_PER_ROW, and dividing ``tpb`` so that groups never
    straddle warps."""
    group = 1
    while group < min(d, 32, int(_config.CUDA_MAX_LANES_PER_ROW)) and tpb % (2 * group) == 0:
        group *= 2
    return group


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
def _softmax_loss_dz(r, label):
    """Loss of one sample under softmax from its scores ``r`` (k,), which become dloss/dz.

    ``r`` (float64, this thread's scratch row) holds the scores z on entry and
    p - onehot(label) on return. Returns ``logsumexp(z) - z[label]``, computed after
    subtracting max(z) so exp never overflows.
    """
    k = r.shape[0]
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


if _ON_SIMULATOR:
    # The simulator has no warp shuffles: a group's lanes add their values through shared
    # memory, in lane order, between block barriers. Every thread of the block calls this
    # the same number of times (the row loops are block-uniform), so all reach them.
    @cuda.jit(device=True)
    def _group_sum(v, group, mask, sm, first, lane):
        """The sum of ``v`` over the ``group`` lanes of this thread's group, on every lane."""
        cuda.syncthreads()
        sm[first + lane] = v
        cuda.syncthreads()
        total = 0.0
        for i in range(group):
            total += sm[first + i]
        return total

    @cuda.jit(device=True)
    def _value_of_thread(v, src, mask, sm):
        """``v`` of thread ``src`` of the block (through shared memory ``sm``, tpb long)."""
        cuda.syncthreads()
        sm[cuda.threadIdx.x] = v
        cuda.syncthreads()
        return sm[src]

    @cuda.jit(device=True)
    def _value_of_partner(v, offset, mask, sm):
        """``v`` of the thread whose index is this one's xor ``offset``."""
        return _value_of_thread(v, cuda.threadIdx.x ^ offset, mask, sm)

else:

    @cuda.jit(device=True)
    def _group_sum(v, group, mask, sm, first, lane):
        """The sum of ``v`` over the ``group`` lanes of this thread's group, on every lane.

        A butterfly of xor shuffles: lanes a and b add the same two values in either order,
        so every lane ends with the same bits. ``group`` is a power of two <= 32, and the
        groups tile the warp, so every partner exists. ``sm``, ``first`` and ``lane`` serve
        the simulator's version only.
        """
        for offset in (16, 8, 4, 2, 1):  # a fixed trip count: unrolled, so callers' arrays stay in registers
            if offset < group:
                v += cuda.shfl_xor_sync(mask, v, offset)
        return v

    @cuda.jit(device=True)
    def _value_of_thread(v, src, mask, sm):
        """``v`` of thread ``src`` of the block, which is in this thread's warp.
        ``sm`` serves the simulator's version only."""
        return cuda.shfl_sync(mask, v, src & 31)

    @cuda.jit(device=True)
    def _value_of_partner(v, offset, mask, sm):
        """``v`` of the thread whose index is this one's xor ``offset`` (< its group)."""
        return cuda.shfl_xor_sync(mask, v, offset)


@cuda.jit(device=True)
def _lane_geometry(group):
    """(slots, slot, lane, mask) of this thread in the row-group kernels.

    The block's threads form ``slots = tpb // group`` groups of ``group`` consecutive
    lanes; this thread is lane ``lane`` of group ``slot``. ``mask`` names the lanes of its
    warp (the block's last warp may be partial), for the shuffles of :func:`_group_sum`.
    """
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    slots = tpb // group
    slot = t // group
    in_warp = min(32, tpb - (t - t % 32))
    mask = numba.uint32(0xFFFFFFFF) if in_warp == 32 else numba.uint32((1 << in_warp) - 1)
    return slots, slot, t - slot * group, mask


@cuda.jit(device=True)
def _store_pair_sums(sums, first, second, part):
    """part[block] = (sum of ``first``, sum of ``second``) over the block's threads, added
    in ``sums`` (2 * tpb float64 of shared memory). Every thread of the block calls this."""
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    sums[t] = first
    sums[tpb + t] = second
    _block_tree_sum(sums, 2, t, tpb)
    if t == 0:
        part[cuda.blockIdx.x, 0] = sums[0]
        part[cuda.blockIdx.x, 1] = sums[tpb]


@cuda.jit(device=True)
def _group_accumulators(shared_acc, acc_global, size):
    """(acc, tail): the block's ``size`` group accumulators, zeroed (in shared memory with
    ``shared_acc``, else ``acc_global[block]``), and where the 2 * tpb reduction slots
    start in shared memory. Every thread of the block calls this."""
    t = cuda.threadIdx.x
    sm = cuda.shared.array(0, numba.float64)
    if shared_acc:
        acc = sm
        tail = size
    else:
        acc = acc_global[cuda.blockIdx.x]
        tail = 0
    for e in range(t, size, cuda.blockDim.x):
        acc[e] = 0.0
    cuda.syncthreads()
    return acc, tail


@cuda.jit(device=True)
def _finish_groups(acc, sums, slots, width, part_g, part_lw, loss_sum, weight_sum):
    """The block's totals from its groups' accumulators: part_g[block] and part_lw[block].

    ``acc`` holds ``slots`` runs of ``width = k * (d + 1)`` sums, entry c * (d + 1) + j of
    each; ``sums`` is 2 * tpb float64 of shared memory. Every thread of the block calls this.
    """
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    d1 = part_g.shape[1]
    cuda.syncthreads()  # every group's accumulators are complete
    for e in range(t, width, tpb):
        total = 0.0
        for other in range(slots):
            total += acc[other * width + e]
        c = e // d1
        part_g[blk, e - c * d1, c] = total
    _store_pair_sums(sums, loss_sum, weight_sum, part_lw)


# How the row-group kernels make one pass over X (B blocks of T threads):
#
# The block's threads form T // group groups of ``group`` consecutive lanes (a power of
# two dividing T, at most a warp); each group takes one row at a time, its lanes reading
# neighbouring columns, so a warp's loads are contiguous: one row of d >= 32, or 32 //
# group whole neighbouring rows. The lanes' partial scores are added by _group_sum; every
# lane then holds the score, computes the sample's loss and residual r, and adds r * x for
# the columns it read (now in the L1 cache) into its group's own accumulators. Those live
# in shared memory when they fit (``shared_acc``), else in ``acc_global[block]``; each
# entry has one writer, so no atomics. The row loop is block-uniform: the simulator's
# _group_sum has block barriers. Softmax has its own kernel: its class loops would
# double the registers of the one-output kernel, and with them halve its occupancy.


@cuda.jit(cache=True)
def _loss_grad_groups(X, y, w, b, sw, has_sw, loss_code, group, shared_acc, acc_global, part_g, part_lw):
    """Per-block sums of the weighted loss, weights and gradient of mse or logistic.

    X (n, d); y (n,); w (d,); b float; sw (n,) read only if ``has_sw``; acc_global
    (blocks, slots * (d + 1)) float64, used only without ``shared_acc``; part_g (blocks,
    d + 1, 1) float64 out (row d: the intercept); part_lw (blocks, 2) float64 out: sum of
    s_i l_i and of s_i. Dynamic shared memory: 2 * tpb float64, after slots * (d + 1) of
    accumulators with ``shared_acc``.
    """
    n, d = X.shape
    blk = cuda.blockIdx.x
    slots, slot, lane, mask = _lane_geometry(group)
    width = d + 1
    sm = cuda.shared.array(0, numba.float64)
    acc, tail = _group_accumulators(shared_acc, acc_global, slots * width)
    mine = slot * width
    first = tail + slot * group  # this group's shared scratch (simulator only)
    loss_sum = 0.0
    weight_sum = 0.0
    for base in range(blk * slots, n, cuda.gridDim.x * slots):
        row = base + slot
        valid = row < n
        z = 0.0
        if valid:
            for j in range(lane, d, group):
                z += _f64(X[row, j]) * _f64(w[j])
        z = _group_sum(z, group, mask, sm, first, lane) + b
        if valid:
            s = _f64(sw[row]) if has_sw else 1.0
            loss_i, dz = _scalar_loss_dz(loss_code, z, _f64(y[row]))
            r = s * dz
            for j in range(lane, d, group):
                acc[mine + j] += r * _f64(X[row, j])
            if lane == 0:
                acc[mine + d] += r
                loss_sum += s * loss_i
                weight_sum += s
    _finish_groups(acc, sm[tail:], slots, width, part_g, part_lw, loss_sum, weight_sum)


@cuda.jit(cache=True)
def _softmax_groups(X, y, W, b, sw, has_sw, group, shared_acc, acc_global, R, part_g, part_lw):
    """Per-block sums of the weighted loss, weights and gradient of softmax.

    As :func:`_loss_grad_groups`, with W (d, k), b (k,) and integer labels y; R (blocks *
    tpb, k) float64 holds each thread's scores, then its p - onehot(label); accumulators
    of width k * (d + 1), entry c * (d + 1) + j.
    """
    n, d = X.shape
    k = W.shape[1]
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    slots, slot, lane, mask = _lane_geometry(group)
    width = k * (d + 1)
    sm = cuda.shared.array(0, numba.float64)
    acc, tail = _group_accumulators(shared_acc, acc_global, slots * width)
    mine = slot * width
    first = tail + slot * group
    r = R[blk * tpb + t]
    loss_sum = 0.0
    weight_sum = 0.0
    for base in range(blk * slots, n, cuda.gridDim.x * slots):
        row = base + slot
        valid = row < n
        for c in range(k):
            z = 0.0
            if valid:
                for j in range(lane, d, group):
                    z += _f64(X[row, j]) * _f64(W[j, c])
            r[c] = _group_sum(z, group, mask, sm, first, lane) + _f64(b[c])
        if valid:
            s = _f64(sw[row]) if has_sw else 1.0
            loss_i = _softmax_loss_dz(r, int(y[row]))
            for j in range(lane, d, group):
                x = s * _f64(X[row, j])
                for c in range(k):
                    acc[mine + c * (d + 1) + j] += r[c] * x
            if lane == 0:
                for c in range(k):
                    acc[mine + c * (d + 1) + d] += s * r[c]
                loss_sum += s * loss_i
                weight_sum += s
    _finish_groups(acc, sm[tail:], slots, width, part_g, part_lw, loss_sum, weight_sum)


# How the tile kernels make one pass over X (B blocks of T threads), when a tile of at
# least one row fits in shared memory and X is C-contiguous:
#
# 1. Blocks walk X grid-stride, a tile of ``tile_rows`` consecutive rows at a time. A tile
#    is one contiguous run of X's memory, which the block's threads copy into shared
#    memory, each thread four loads ahead of its stores: coalesced, and enough bytes in
#    flight to keep the memory busy while other blocks on the multiprocessor compute.
# 2. Groups of ``group`` lanes (as in the row-group kernels) compute the tile's scores from
#    shared memory, adding their partial sums with _group_sum, into ``rs``; then every
#    thread takes a row and turns its score(s) into the sample's loss and its weighted
#    residual(s), in place: the tile's losses are computed side by side, not one per group
#    after the other.
# 3. The threads turn to the gradient: thread t owns entry e = t mod width of the
#    width = k * (d + 1) gradient entries (intercept last) and one of tpb // width
#    interleaved shares of the tile's rows, summing rs * x over them into a register.
#    Past width > tpb each thread loops over its entries and adds each tile's sum into
#    part_g[block] directly (one read-modify-write per entry and tile).
# 4. At the end each block adds its threads' registers per entry into part_g[block], and
#    tree-sums its losses and weights into part_lw[block]; _finish adds over blocks.
#
# Shared memory (float64): the tile (tile_rows * d), the residuals (tile_rows * k), w
# (d * k) and 2 * tpb for the reductions (and the simulator's _group_sum).


@cuda.jit(device=True)
def _load_tile(Xf, start, count, tile):
    """tile[:count] = Xf[start : start + count] as float64, by all threads of the block."""
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    e = t
    while e + 3 * tpb < count:  # four independent loads before the first store
        v0 = _f64(Xf[start + e])
        v1 = _f64(Xf[start + e + tpb])
        v2 = _f64(Xf[start + e + 2 * tpb])
        v3 = _f64(Xf[start + e + 3 * tpb])
        tile[e] = v0
        tile[e + tpb] = v1
        tile[e + 2 * tpb] = v2
        tile[e + 3 * tpb] = v3
        e += 4 * tpb
    while e < count:
        tile[e] = _f64(Xf[start + e])
        e += tpb


@cuda.jit(device=True)
def _tile_gradient(tile, rs, rows, d, k, e, share, shares):
    """Sum over the tile's rows i = share, share + shares, ... < rows of rs[i, c] * x[i, j],
    for gradient entry e = c * (d + 1) + j (j = d: the intercept, x = 1)."""
    c = e // (d + 1)
    j = e - c * (d + 1)
    acc = 0.0
    i = share
    if j < d:
        while i < rows:
            acc += rs[i * k + c] * tile[i * d + j]
            i += shares
    else:
        while i < rows:
            acc += rs[i * k + c]
            i += shares
    return acc


@cuda.jit(device=True)
def _tile_gradients(tile, rs, rows, d, k, in_regs, entry, share, shares, part_g):
    """This thread's part of the tile's gradient (step 3 of the plan): returned for its
    register (``in_regs``), else added into part_g[block] for each of its entries (and 0.0
    returned)."""
    if in_regs:
        if share < shares:
            return _tile_gradient(tile, rs, rows, d, k, entry, share, shares)
        return 0.0
    blk = cuda.blockIdx.x
    for e in range(cuda.threadIdx.x, k * (d + 1), cuda.blockDim.x):
        c = e // (d + 1)
        part_g[blk, e - c * (d + 1), c] += _tile_gradient(tile, rs, rows, d, k, e, 0, 1)
    return 0.0


@cuda.jit(device=True)
def _tiles_shared(tile_rows, d, k):
    """The block's shared memory as (tile, rs, wsh, red): tile_rows rows of X (as
    float64), their k residuals each, the d * k coefficients, and the rest for the block
    sums (2 * tpb values)."""
    sm = cuda.shared.array(0, numba.float64)
    at_rs = tile_rows * d
    at_w = at_rs + tile_rows * k
    at_red = at_w + d * k
    return sm[:at_rs], sm[at_rs:at_w], sm[at_w:at_red], sm[at_red:]


@cuda.jit(device=True)
def _tiles_begin(d, width, part_g):
    """(shares, share, entry, in_regs) of this thread; zeroes part_g[block] when the
    gradient is accumulated there (width > tpb)."""
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    shares = tpb // width
    if shares < 1:
        blk = cuda.blockIdx.x
        for e in range(t, width, tpb):
            c = e // (d + 1)
            part_g[blk, e - c * (d + 1), c] = 0.0
        return 1, 0, t, False
    share = t // width
    return shares, share, t - share * width, True


@cuda.jit(device=True)
def _tiles_finish(red, width, in_regs, reg, part_g, part_lw, loss_sum, weight_sum):
    """The block's totals into part_g[block] (from the threads' registers, ``in_regs``) and
    part_lw[block]; ``red`` is 2 * tpb float64 of shared memory. Every thread calls this
    after a barrier."""
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    d1 = part_g.shape[1]
    if in_regs:
        shares = tpb // width
        red[t] = reg if t < shares * width else 0.0
        cuda.syncthreads()
        if t < width:
            total = 0.0
            for share in range(shares):
                total += red[share * width + t]
            c = t // d1
            part_g[blk, t - c * d1, c] = total
        cuda.syncthreads()  # red is written again below
    _store_pair_sums(red, loss_sum, weight_sum, part_lw)


@cuda.jit(cache=True)
def _loss_grad_tiles(Xf, d, y, w, b, sw, has_sw, loss_code, group, tile_rows, part_g, part_lw):
    """Per-block sums of the weighted loss, weights and gradient of mse or logistic.

    Xf (n * d,) is X, C-ordered, flattened; y (n,); w (d,); b float; sw (n,) read only if
    ``has_sw``; part_g (blocks, d + 1, 1) float64 out (row d: the intercept); part_lw
    (blocks, 2) float64 out: sum of s_i l_i and of s_i. The plan is in the comment above.
    """
    n = y.shape[0]
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    slots, slot, lane, mask = _lane_geometry(group)
    width = d + 1
    tile, rs, wsh, red = _tiles_shared(tile_rows, d, 1)
    for j in range(t, d, tpb):
        wsh[j] = _f64(w[j])
    shares, share, entry, in_regs = _tiles_begin(d, width, part_g)
    reg = 0.0
    loss_sum = 0.0
    weight_sum = 0.0
    for r0 in range(blk * tile_rows, n, cuda.gridDim.x * tile_rows):
        rows = min(tile_rows, n - r0)
        cuda.syncthreads()  # the previous tile is used up (and wsh is written)
        _load_tile(Xf, r0 * d, rows * d, tile)
        cuda.syncthreads()
        for i0 in range(0, tile_rows, slots):  # the same trip count on every lane
            i = i0 + slot
            z = 0.0
            if i < rows:
                j = lane
                while j < d:
                    z += tile[i * d + j] * wsh[j]
                    j += group
            z = _group_sum(z, group, mask, red, slot * group, lane)
            if i < rows and lane == 0:
                rs[i] = z + b
        cuda.syncthreads()  # the tile's scores are complete
        for i in range(t, rows, tpb):  # every thread a row: the rows' losses side by side
            s = _f64(sw[r0 + i]) if has_sw else 1.0
            loss_i, dz = _scalar_loss_dz(loss_code, rs[i], _f64(y[r0 + i]))
            rs[i] = s * dz
            loss_sum += s * loss_i
            weight_sum += s
        cuda.syncthreads()  # the tile's residuals are complete
        reg += _tile_gradients(tile, rs, rows, d, 1, in_regs, entry, share, shares, part_g)
    cuda.syncthreads()
    _tiles_finish(red, width, in_regs, reg, part_g, part_lw, loss_sum, weight_sum)


@cuda.jit(cache=True)
def _softmax_tiles(Xf, d, y, W, b, sw, has_sw, group, tile_rows, part_g, part_lw):
    """Per-block sums of the weighted loss, weights and gradient of softmax.

    As :func:`_loss_grad_tiles`, with W (d, k), b (k,), integer labels y, residuals
    rs[i * k + c] = s_i (p_ic - onehot) and part_g (blocks, d + 1, k).
    """
    n = y.shape[0]
    k = W.shape[1]
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    slots, slot, lane, mask = _lane_geometry(group)
    width = k * (d + 1)
    tile, rs, wsh, red = _tiles_shared(tile_rows, d, k)
    for j in range(t, d, tpb):
        for c in range(k):
            wsh[j * k + c] = _f64(W[j, c])
    shares, share, entry, in_regs = _tiles_begin(d, width, part_g)
    reg = 0.0
    loss_sum = 0.0
    weight_sum = 0.0
    for r0 in range(blk * tile_rows, n, cuda.gridDim.x * tile_rows):
        rows = min(tile_rows, n - r0)
        cuda.syncthreads()
        _load_tile(Xf, r0 * d, rows * d, tile)
        cuda.syncthreads()
        for i0 in range(0, tile_rows, slots):
            i = i0 + slot
            for c in range(k):
                z = 0.0
                if i < rows:
                    j = lane
                    while j < d:
                        z += tile[i * d + j] * wsh[j * k + c]
                        j += group
                z = _group_sum(z, group, mask, red, slot * group, lane)
                if i < rows and lane == 0:
                    rs[i * k + c] = z + _f64(b[c])
        cuda.syncthreads()  # the tile's scores are complete
        for i in range(t, rows, tpb):  # every thread a row: the rows' losses side by side
            s = _f64(sw[r0 + i]) if has_sw else 1.0
            r = rs[i * k : (i + 1) * k]
            loss_sum += s * _softmax_loss_dz(r, int(y[r0 + i]))
            weight_sum += s
            for c in range(k):
                r[c] *= s
        cuda.syncthreads()  # the tile's residuals are complete
        reg += _tile_gradients(tile, rs, rows, d, k, in_regs, entry, share, shares, part_g)
    cuda.syncthreads()
    _tiles_finish(red, width, in_regs, reg, part_g, part_lw, loss_sum, weight_sum)


# How the register kernel makes one pass over X (mse and logistic, C-ordered X whose rows
# fit in registers: d <= group * _REGISTER_SLICES), with no shared-memory tiles and, on a
# GPU, no barriers in its row loop:
#
# 1. As in the row-group kernels, groups of ``group`` lanes share a row, lane l reading
#    columns l, l + group, ... (at most _REGISTER_SLICES of them), so a warp's loads are
#    contiguous. Each lane keeps its coefficients in registers.
# 2. Per pass every group takes _REGISTER_ROWS (4) rows (the block's groups interleaved,
#    so that neighbouring groups read neighbouring rows) and loads all their values into
#    registers before using any: up to 16 independent loads in flight per lane.
# 3. The rows' scores. Groups of at least 4 lanes add their partial sums by halving
#    (shuffles): two exchanges leave each lane with half of the rows', then a quarter,
#    and the lanes that now share a row add theirs, so lane l holds the score of row
#    l // (group / 4). Each lane computes that row's loss and weighted residual, and the
#    group fetches the 4 residuals from the lanes that hold them. Smaller groups add
#    each row's partial sums over all their lanes, and every lane computes each row.
# 4. Each lane adds r_i x_ij for its columns into registers; at the end the block's
#    groups add theirs in shared memory into part_g[block], and the losses and weights
#    are tree-summed into part_lw[block].

#: Rows each lane holds in registers per pass of the register kernel (the halving of
#: step 3 is written for 4).
_REGISTER_ROWS = 4
#: Columns of a row each lane holds: rows up to group * _REGISTER_SLICES wide take the
#: register kernel.
_REGISTER_SLICES = 4
_REGISTER_VALUES = _REGISTER_ROWS * _REGISTER_SLICES  # a constant for cuda.local.array


@cuda.jit(device=True)
def _scatter_scores(score, group, lane, mask, sm):
    """The group's sum of the partial scores of row lane // (group // 4) of the 4 in
    ``score`` (group >= 4 lanes): each exchange sends the half of the rows this lane
    gives up and keeps the half its partner gives up. ``sm`` serves the simulator."""
    h = group // 2
    up = (lane & h) != 0
    k0 = score[2] if up else score[0]
    g0 = score[0] if up else score[2]
    k1 = score[3] if up else score[1]
    g1 = score[1] if up else score[3]
    s0 = k0 + _value_of_partner(g0, h, mask, sm)
    s1 = k1 + _value_of_partner(g1, h, mask, sm)
    h = group // 4
    up = (lane & h) != 0
    z = (s1 if up else s0) + _value_of_partner(s0 if up else s1, h, mask, sm)
    for offset in (4, 2, 1):  # the lanes holding the same row: fewer than group // 4
        if offset < h:
            z += _value_of_partner(z, offset, mask, sm)
    return z


@cuda.jit(cache=True)
def _loss_grad_registers(Xf, d, y, w, b, sw, has_sw, loss_code, group, part_g, part_lw):
    """Per-block sums of the weighted loss, weights and gradient of mse or logistic.

    Arguments as :func:`_loss_grad_tiles` (Xf is C-ordered X, flattened), with d <= group
    * _REGISTER_SLICES. Dynamic shared memory: (tpb // group) * (d + 1) + 2 * tpb float64.
    The plan is in the comment above.
    """
    n = y.shape[0]
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blk = cuda.blockIdx.x
    slots, slot, lane, mask = _lane_geometry(group)
    width = d + 1
    sm = cuda.shared.array(0, numba.float64)
    acc_sh = sm[: slots * width]
    red = sm[slots * width :]  # the simulator's shuffles, then the block's sums
    first = slot * group
    split = group >= _REGISTER_ROWS
    share = group // _REGISTER_ROWS  # lanes per row after the halving (split)
    coef = cuda.local.array(_REGISTER_SLICES, numba.float64)
    acc = cuda.local.array(_REGISTER_SLICES, numba.float64)
    xs = cuda.local.array(_REGISTER_VALUES, numba.float64)
    score = cuda.local.array(_REGISTER_ROWS, numba.float64)
    res = cuda.local.array(_REGISTER_ROWS, numba.float64)
    for m in range(_REGISTER_SLICES):
        j = lane + m * group
        coef[m] = _f64(w[j]) if j < d else 0.0
        acc[m] = 0.0
    acc_b = 0.0
    loss_sum = 0.0
    weight_sum = 0.0
    per_pass = slots * _REGISTER_ROWS
    for base in range(blk * per_pass, n, cuda.gridDim.x * per_pass):  # block-uniform
        for i in range(_REGISTER_ROWS):  # every load of the pass before any use
            row = base + i * slots + slot
            z = 0.0
            for m in range(_REGISTER_SLICES):
                j = lane + m * group
                x = 0.0
                if row < n and j < d:
                    x = _f64(Xf[row * d + j])
                xs[i * _REGISTER_SLICES + m] = x
                z += x * coef[m]
            score[i] = z
        if split:
            mine = lane // share
            z = _scatter_scores(score, group, lane, mask, red) + b
            row = base + mine * slots + slot
            r = 0.0
            if row < n:
                s = _f64(sw[row]) if has_sw else 1.0
                loss_i, dz = _scalar_loss_dz(loss_code, z, _f64(y[row]))
                r = s * dz
                if lane - mine * share == 0:
                    loss_sum += s * loss_i
                    weight_sum += s
            for i in range(_REGISTER_ROWS):
                res[i] = _value_of_thread(r, t - lane + i * share, mask, red)
        else:
            for i in range(_REGISTER_ROWS):
                row = base + i * slots + slot
                z = _group_sum(score[i], group, mask, red, first, lane) + b
                r = 0.0
                if row < n:
                    s = _f64(sw[row]) if has_sw else 1.0
                    loss_i, dz = _scalar_loss_dz(loss_code, z, _f64(y[row]))
                    r = s * dz
                    if lane == 0:
                        loss_sum += s * loss_i
                        weight_sum += s
                res[i] = r
        for m in range(_REGISTER_SLICES):
            g = 0.0
            for i in range(_REGISTER_ROWS):
                g += res[i] * xs[i * _REGISTER_SLICES + m]
            acc[m] += g
        for i in range(_REGISTER_ROWS):
            acc_b += res[i]
    cuda.syncthreads()  # the simulator's shuffles are done with red
    for m in range(_REGISTER_SLICES):
        j = lane + m * group
        if j < d:
            acc_sh[slot * width + j] = acc[m]
    if lane == 0:
        acc_sh[slot * width + d] = acc_b
    cuda.syncthreads()
    for e in range(t, width, tpb):
        total = 0.0
        for other in range(slots):
            total += acc_sh[other * width + e]
        part_g[blk, e, 0] = total
    _store_pair_sums(red, loss_sum, weight_sum, part_lw)


@cuda.jit(cache=True)
def _finish(part_g, part_lw, grad_w, grad_b, small):
    """grad_w (d, k) and grad_b (k,) in X's dtype from the per-block sums, and ``small``
    (2 + k,) float64: the sums of s_i l_i and of s_i, then grad_b in float64.

    Every block tree-sums part_lw over blocks itself (the same sums in the same order, so
    the same bits), then divides its share of the (j, c) entries of part_g, summed over
    blocks, by the total weight. Launched with 2 * tpb float64 of shared memory.
    """
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    blocks, d1, k = part_g.shape
    sm = cuda.shared.array(0, numba.float64)
    loss_acc = 0.0
    weight_acc = 0.0
    for i in range(t, blocks, tpb):
        loss_acc += part_lw[i, 0]
        weight_acc += part_lw[i, 1]
    sm[t] = loss_acc
    sm[tpb + t] = weight_acc
    _block_tree_sum(sm, 2, t, tpb)
    if cuda.grid(1) == 0:
        small[0] = sm[0]
        small[1] = sm[tpb]
    inv_weight = 1.0 / sm[tpb]
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
            small[2 + c] = acc * inv_weight


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
def _gd_step_kernel(w, g, lr, l1, l2):
    """w <- soft_threshold(w - lr (g + 2 l2 w), lr l1), elementwise on 1-D w and g."""
    thresh = lr * l1
    for i in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
        wi = _f64(w[i])
        v = wi - lr * (_f64(g[i]) + 2.0 * l2 * wi)
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
    abs_sum = 0.0
    sq_sum = 0.0
    for i in range(cuda.grid(1), w.shape[0], cuda.gridsize(1)):
        v = _f64(w[i])
        abs_sum += abs(v)
        sq_sum += v * v
    sm = cuda.shared.array(0, numba.float64)  # 2 * tpb, sized at launch
    _store_pair_sums(sm, abs_sum, sq_sum, part)


@cuda.jit(cache=True)
def _read_partials(flat, part):
    """part[block, 0] = the sum of the block's grid-stride share of 1-D ``flat``.

    The streaming-read yardstick of the benchmarks: each thread keeps four loads in
    flight (four independent sums), so the read is bound by memory, not by latency.
    """
    t = cuda.threadIdx.x
    tpb = cuda.blockDim.x
    size = flat.shape[0]
    stride = cuda.gridsize(1)
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = cuda.grid(1)
    while i + 3 * stride < size:
        s0 += _f64(flat[i])
        s1 += _f64(flat[i + stride])
        s2 += _f64(flat[i + 2 * stride])
        s3 += _f64(flat[i + 3 * stride])
        i += 4 * stride
    while i < size:
        s0 += _f64(flat[i])
        i += stride
    sm = cuda.shared.array(0, numba.float64)  # tpb, sized at launch
    sm[t] = (s0 + s1) + (s2 + s3)
    _block_tree_sum(sm, 1, t, tpb)
    if t == 0:
        part[cuda.blockIdx.x, 0] = sm[0]


_F64_BYTES = 8


def _sum_over_blocks(part, tpb):
    """The column sums of ``part`` (blocks, m) float64, as a device array of shape (m,)."""
    m = part.shape[1]
    totals = _scratch("totals", m)
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
    d = X_d.shape[1]
    w_d = _to_device(w, dtype)
    k = w_d.shape[1] if softmax else 1
    y_d = _to_device(y)
    if softmax:
        b_arg = _to_device(b) if is_device_array(b) else cuda.to_device(np.asarray(b, np.float64))
    else:  # a one-output loss takes its intercept as a kernel argument: nothing to copy over
        b_arg = float(np.asarray(b.copy_to_host() if is_device_array(b) else b, np.float64).reshape(-1)[0])
    has_sw = sample_weight is not None
    sw_d = _to_device(sample_weight, dtype) if has_sw else _scratch("no_weights", 1, dtype)
    part_g, part_lw = _launch_main(X_d, y_d, w_d, b_arg, sw_d, has_sw, loss_code, k)
    grad_w = cuda.device_array((d, k), dtype)
    grad_b = cuda.device_array(k, dtype)
    small = _scratch("small", 2 + k)
    tpb = _threads()
    _finish[_blocks((d + 1) * k, tpb), tpb, 0, 2 * tpb * _F64_BYTES](part_g, part_lw, grad_w, grad_b, small)
    small = small.copy_to_host()
    value = float(small[0] / small[1])
    grad_w = grad_w if softmax else grad_w.reshape(d)
    if not softmax:  # grad_b rounded to X's dtype as the kernel rounds grad_w
        grad_b = dtype.type(small[2])
    elif not w_on_device:
        grad_b = small[2:].astype(dtype)
    if w_on_device:
        return value, grad_w, grad_b
    return value, grad_w.copy_to_host(), grad_b


def _launch_main(X_d, y_d, w_d, b_arg, sw_d, has_sw, loss_code, k):
    """Step 1 of the plan in the module's docstring: the main kernel for these device
    arrays (register, tile or row-group kernel), launched and not waited for. Returns its
    per-block sums (part_g, part_lw), scratch arrays that the next launch overwrites.
    ``b_arg`` is a float, or for softmax (``k`` classes) a device array."""
    softmax = loss_code == _SOFTMAX
    n, d = X_d.shape
    kernel = _tiles_kernel(softmax) if X_d.is_c_contiguous() else None
    if kernel is not None and not softmax and _takes_registers(X_d.dtype, d):
        parts = _launch_registers(X_d, y_d, w_d, b_arg, sw_d, has_sw, loss_code)
        if parts is not None:
            return parts
    tpb = _threads_for(kernel) if kernel is not None else _threads()
    tile_rows = _tile_rows(n, d, k, tpb) if kernel is not None else 0
    if not tile_rows:
        return _launch_groups(X_d, y_d, w_d, b_arg, sw_d, has_sw, loss_code, softmax, k)
    group = _group_size(d, tpb)
    blocks = _blocks(n, tile_rows, _F64_BYTES * ((d + 1) * k + 2))
    part_g = _scratch("part_g", (blocks, d + 1, k))
    part_lw = _scratch("part_lw", (blocks, 2))
    shared_bytes = _F64_BYTES * (tile_rows * (d + k) + d * k + 2 * tpb)
    kernel[blocks, tpb, 0, shared_bytes](
        X_d.reshape(n * d), d, y_d, w_d, b_arg, sw_d, has_sw, *([] if softmax else [loss_code]),
        group, tile_rows, part_g, part_lw,
    )  # fmt: skip
    return part_g, part_lw


def _takes_registers(dtype, d):
    """Whether mse or logistic on C-ordered X of ``dtype`` and ``d`` features is to take
    the register kernel, by ``_config.CUDA_REGISTER_KERNEL`` (True, False or "auto")."""
    setting = _config.CUDA_REGISTER_KERNEL
    if isinstance(setting, str) and setting == "auto":
        return np.dtype(dtype) == np.float64 or d >= int(_config.CUDA_REGISTER_F32_D_MIN)
    if setting is True or setting is False:
        return setting
    raise ValueError(f'fastgd._config.CUDA_REGISTER_KERNEL must be True, False or "auto", got {setting!r}')


def _launch_registers(X_d, y_d, w_d, b, sw_d, has_sw, loss_code):
    """The register kernel on C-ordered X, if its rows fit in registers and its block
    sums in shared memory: returns (part_g, part_lw), else None."""
    n, d = X_d.shape
    tpb = _threads_for(_loss_grad_registers)
    group = _group_size(d, tpb)
    slots = tpb // group
    shared_bytes = _F64_BYTES * (slots * (d + 1) + 2 * tpb)
    if d > group * _REGISTER_SLICES or shared_bytes > int(_config.CUDA_SHARED_MAX_BYTES):
        return None
    blocks = _blocks(n, slots * _REGISTER_ROWS, _F64_BYTES * (d + 3))
    blocks = min(blocks, _one_wave(_loss_grad_registers, tpb, shared_bytes) or blocks)
    part_g = _scratch("part_g", (blocks, d + 1, 1))
    part_lw = _scratch("part_lw", (blocks, 2))
    _loss_grad_registers[blocks, tpb, 0, shared_bytes](
        X_d.reshape(n * d), d, y_d, w_d, b, sw_d, has_sw, loss_code, group, part_g, part_lw
    )
    return part_g, part_lw


_WAVES = {}  # (kernel, its compiled signatures, tpb, shared_bytes) -> blocks of one wave


def _one_wave(kernel, tpb, shared_bytes):
    """The blocks of ``kernel`` that the GPU runs at once (all multiprocessors full), once
    the kernel is compiled (the fewest over its compiled signatures); None before that and
    on the simulator. A grid-stride kernel launched with more blocks than this runs the
    rest in a second, partial wave. Asking the driver costs more than a launch, so each
    answer is kept."""
    if _ON_SIMULATOR:
        return None
    key = (kernel, len(kernel.overloads), tpb, shared_bytes)
    if key not in _WAVES:
        waves = [o.max_cooperative_grid_blocks(tpb, shared_bytes) for o in kernel.overloads.values()]
        _WAVES[key] = max(1, min(waves)) if waves else None
    return _WAVES[key]


def _tiles_kernel(softmax):
    return _softmax_tiles if softmax else _loss_grad_tiles


def _tile_rows(n, d, k, tpb):
    """Rows per tile of the tile kernels: as many as fit in CUDA_TILE_BYTES of shared
    memory (X as float64 and the residuals), at most n, with the whole block's shared
    memory within CUDA_SHARED_MAX_BYTES; 0 if not even one row fits."""
    rows = min(n, int(_config.CUDA_TILE_BYTES) // (_F64_BYTES * (d + k)))
    while rows >= 1 and _F64_BYTES * (rows * (d + k) + d * k + 2 * tpb) > int(_config.CUDA_SHARED_MAX_BYTES):
        rows //= 2
    return max(0, rows)


def _launch_groups(X_d, y_d, w_d, b_arg, sw_d, has_sw, loss_code, softmax, k):
    """The row-group kernels, for rows too wide for a tile or X not C-contiguous: returns
    (part_g, part_lw)."""
    n, d = X_d.shape
    tpb = _threads_for(_softmax_groups if softmax else _loss_grad_groups)
    group = _group_size(d, tpb)
    slots = tpb // group
    width = k * (d + 1)
    shared_bytes = _F64_BYTES * (slots * width + 2 * tpb)
    shared_acc = shared_bytes <= int(_config.CUDA_SHARED_MAX_BYTES)
    if not shared_acc:
        shared_bytes = _F64_BYTES * 2 * tpb
    scratch = width + (tpb * k if softmax else 0) + (0 if shared_acc else slots * width) + 2
    blocks = _blocks(n, slots, _F64_BYTES * scratch)
    acc_global = _scratch("acc", (1, 1) if shared_acc else (blocks, slots * width))
    part_g = _scratch("part_g", (blocks, d + 1, k))
    part_lw = _scratch("part_lw", (blocks, 2))
    launch = (blocks, tpb, 0, shared_bytes)
    if softmax:
        R = _scratch("R", (blocks * tpb, k))
        _softmax_groups[launch](
            X_d, y_d, w_d, b_arg, sw_d, has_sw, group, shared_acc, acc_global, R, part_g, part_lw
        )
    else:
        _loss_grad_groups[launch](
            X_d, y_d, w_d, b_arg, sw_d, has_sw, loss_code, group, shared_acc, acc_global, part_g, part_lw
        )
    return part_g, part_lw


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
    part = _scratch("penalty_part", (blocks, 2))
    _penalty_partials[blocks, tpb, 0, 2 * tpb * _F64_BYTES](w_d.reshape(size), part)
    abs_sum, sq_sum = _sum_over_blocks(part, tpb).copy_to_host()
    return float(l1 * abs_sum + l2 * sq_sum)


@_one_launch_at_a_time_on_the_simulator
def stream_read(X):
    """Read every element of X once on the GPU and return their sum (a float).

    The yardstick of the GPU benchmarks: the time of one plain streaming read of X from
    GPU memory, which a fused ``loss_grad`` can at best approach. X (any shape, C-ordered)
    is a device array, or a host array that is copied over first.
    """
    flat = _to_device(X).reshape(-1)
    tpb = _threads()
    blocks = _blocks(flat.shape[0], 4 * tpb)
    part = _scratch("read_part", (blocks, 1))
    _read_partials[blocks, tpb, 0, tpb * _F64_BYTES](flat, part)
    return float(_sum_over_blocks(part, tpb).copy_to_host()[0])
