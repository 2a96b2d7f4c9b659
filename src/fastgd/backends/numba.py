"""The Numba backend: parallel CPU kernels, one pass over X.

Rows are split into tasks, contiguous ranges that depend on X alone
(_config.cpu_tasks), which the threads take one at a time as they come free (_tasks);
each task accumulates its loss and gradient in its own float64 buffer row (no sharing),
and the rows are summed in task order at the end, so results do not depend on the number
of threads. One source serves float32 and float64: Numba specialises on the
dtypes. The thread count is passed in from Python because calling
``numba.get_num_threads()`` inside a kernel disables ``cache=True``. mse/logistic walk
each task in small blocks of rows (_scalar_loss_grad), except narrow X: d = 1 and
d = 2 .. NARROW_D_MAX take one pass over the rows (_narrow_rows), and float64 X of
FUSED_D_MIN .. FUSED_D_MAX features (float32: FUSED_F32_D_MIN .. FUSED_F32_D_MAX) one pass
two rows at a time (_fused_rows_loss_grad); with AVX-512, unweighted rows of two to
FUSED_VECTORS_MAX 512-bit vectors one pass four rows at a time (_fused_rows_simd_loss_grad, see
_takes_fused_simd).
"""

import math
import threading

import numba
import numpy as np
from llvmlite import binding as llvm_binding
from numba.core import types
from numba.cpython.unsafe.tuple import tuple_setitem
from numba.extending import intrinsic
from scipy import sparse

from .. import _config
from .._config import LOSSES, MSE, NUMBA_FASTMATH
from . import _csr, _sums
from ._rowmath import scalar_loss_dz
from ._simd import (
    FUSED_VECTORS,
    FUSED_ZEN,
    PANEL_CLASSES_MAX,
    SCORE_ROWS_CLASSES,
    fused_rows_part,
    logistic_one_feature,
    mse_one_feature,
    panel_rows,
    panel_vectors,
    prefetch_line,
    score_group_tile,
    score_rows_tile,
    softmax_steps,
)
from ._tasks import tasks
from ._vecmath import (
    exp_nonpositive,
    exp_nonpositive_as,
    exp_nonpositive_f32,
    exp_ratio_nonpositive,
    log1p_unit,
    logistic_pair,
)

# Row length of the per-task float64 sum buffers: padded so that two tasks' rows (which two
# threads may be writing) never share a cache line (_sums.padded_width).
_padded_width = numba.njit(cache=True)(_sums.padded_width)

NAME = "numba"
#: loss_grad also takes X as a scipy CSR matrix/array (not densified).
SUPPORTS_CSR = True
#: Every stored value of X enters the gradient as a product r * x, compiled without
#: LLVM's nnan/ninf flags, so NaN or infinity in X always makes the result
#: non-finite: fastgd.loss_grad scans X for them only then, not before every call.
PROPAGATES_NONFINITE = True

_FASTMATH = set(NUMBA_FASTMATH)

#: Cache lines of the next block of rows the softmax kernel asks for per pass (of four,
#: two or one classes) at most while it adds up the current block's gradient, so that
#: reading X from memory overlaps that arithmetic: each pass asks for an equal share of
#: four rows' lines, up to this many (one pass per four rows must ask for all of them: 32
#: lines of float64 at d = 64). With a fixed number per pass the requests fell behind for
#: small k (2M x 64 float64, k = 4, in one process: 71 -> 47 ms with the share). The lines
#: go into L2 (see _prefetch); at k = 10 a fixed 8 per two-class pass measured best
#: (111-114 ms against 120-125 with 4, 119-138 with 2, 16 or 32). The Cython kernel has
#: its own (kernels/fastgd_tiles.h).
AHEAD_LINES = 32
#: Rows whose log1p terms the unweighted logistic kernel multiplies before taking a
#: logarithm (factors in [1, 2]: a product of 512 is at most 2**512 = 1.3e154).
PRODUCT_ROWS = 512
#: The same for the float32 d = 1 logistic loop, whose product is a float32 (at most
#: 2**96 < 3.4e38; 96 rows vectorise best); its float32 sums span as many rows.
PRODUCT_ROWS_F32 = 96
#: Rows of the float64 d = 1 logistic loop's two products (exp_ratio_nonpositive's
#: num + den <= 2.4 and den in [0.84, 1.19]: at most 2.4**256 = 2.6e97 and 1.19**256); the
#: ratio of the two, the product of 1 + e, is at most 2**256 = 1.2e77.
PADE_ROWS = 256
#: float64 X of FUSED_D_MIN .. FUSED_D_MAX features takes _fused_rows_loss_grad (rows two
#: at a time, one pass) instead of the blocks. On the 2-core Intel Xeon test VM, fraction
#: of the read (fused / blocks, float64, one process): d = 16 mse 0.90 / 0.74, logistic
#: 0.60 / 0.60; d = 32 0.88 / 0.53, 0.68 / 0.48; d = 64 0.81-0.94 / 0.68-0.73, 0.71-0.84 /
#: 0.61-0.71; d = 128 0.82 / 0.77, 0.78 / 0.71; d = 512 and d = 9 no better.
FUSED_D_MIN = 16
FUSED_D_MAX = 128
#: float32 X of FUSED_F32_D_MIN .. FUSED_F32_D_MAX features takes the fused rows too, its
#: scores and its part sums in float32, unweighted logistic's residuals in float32
#: (logistic_pair), except weighted logistic, whose residuals and log1p terms the blocks
#: vectorise (2M x 64: fused 0.63 against 0.66). Same VM, 128M values of X, kernels loaded
#: from the cache, fraction of the read fused / blocks in one process: d = 48 mse 0.88 /
#: 0.71, logistic 0.68 / 0.68; d = 64 0.91-0.93 / 0.74-0.81, 0.78-0.80 / 0.70-0.74;
#: d = 128 0.96 / 0.77, 0.84 / 0.74; d = 512 0.93 / 0.70, 0.86 / 0.72; d = 1024 0.81 /
#: 0.80, 0.77 / 0.78; d = 32 0.81 / 0.84, 0.60 / 0.73. Scores summed in float64 (d = 64
#: logistic 0.57-0.60), residuals in float64 (0.73 against 0.78-0.80) or through an
#: @overload choosing them by dtype (0.73; float64 mse lost 0.05-0.07 with it) were slower.
FUSED_F32_D_MIN = 48
FUSED_F32_D_MAX = 512
#: Bytes ahead that each step of the fused rows asks for (_prefetch_l1). 2 KB measured
#: better than 1 KB or 4 KB with a four-row variant of the loop (d = 64); with this loop,
#: in one process, of the read, 2 KB -> 3 KB: 2M x 64 logistic float32 0.86-0.88 ->
#: 0.86-0.92, float64 0.91-0.92 -> 0.94-0.95, mse float32 1.02 -> 1.04; 1M x 128 float64
#: logistic 0.96 -> 0.97; 1M x 256 float32 1.01 -> 1.04 (1 KB 0.80-0.93; 4 and 6 KB no
#: better than 3).
FUSED_AHEAD_BYTES = 3072
#: ... but none on AMD Zen, whose hardware prefetchers keep up with the two-row loop: on the
#: 2-core AMD EPYC (Zen 4) test VM, 2M x 64 mse, of the read, in one process, 3 KB ahead ->
#: none: read in its fast state (60-62 GB/s) float64 0.75 -> 0.78, 0.82 -> 0.98, float32
#: 0.75 -> 0.85; in its slow state (33-34 GB/s) float64 0.92 -> 0.93, 0.96 -> 0.94, 0.94
#: -> 0.93, float32 0.97 -> 0.97.
FUSED_AHEAD = 0 if FUSED_ZEN else FUSED_AHEAD_BYTES
#: Whether the SIMD fused rows read rows of whole 64-byte lines, where X starts off a
#: line's start (NumPy's large arrays start 16 bytes past one), in windows of one line
#: (_line_shift), as FGD_FUSED_SHIFT in kernels/fastgd_fused_rows.c, which says why. On the
#: Intel Xeon (Emerald Rapids) VM, 2M x 64, X 16 bytes past a line against X at one, of the
#: read, one process: float64 mse 0.97 / 0.99, logistic 0.95 / 0.95, float32 mse 0.94 /
#: 0.96, logistic 0.97 / 0.97.
FUSED_SHIFT = True
#: Rows per product of the fused rows' log1p factors (each at most 2).
FUSED_PART_ROWS = 64
#: float32 blocks of rows up to BLOCK_AHEAD_MAX_ROW_BYTES each ask, as they start, for
#: their rows' lines this many bytes further on (_prefetch_l1). Intel Xeon test VM, 2M x 64
#: float32, fraction of the read without / with (one process, two runs): mse 0.68 / 0.75,
#: 0.71 / 0.87; logistic 0.66 / 0.74, 0.61 / 0.71 (512 and 4096 bytes: less). At d = 256
#: the same or +0.03; float64 (d = 256, 5,000) and float32 d = 5,000 lost 0.03-0.06.
BLOCK_AHEAD_BYTES = 1024
BLOCK_AHEAD_MAX_ROW_BYTES = 1024
#: Widest X that takes the one-pass loop of _narrow_rows (from d = 2). At d = 8 LLVM
#: (numba 0.68) no longer vectorises that loop, and the block kernel is faster.
NARROW_D_MAX = 7
#: Widest X whose softmax block products take one loop over the block per class
#: (_narrow_class_scores / _narrow_class_accumulate). Wider, the four-class tiles are as
#: fast or faster: 10M values of X, float64, one process, tiles against class loops:
#: d = 2, k = 3 / 10: 30 / 68 -> 17 / 39 ms; d = 4: 15 / 39 -> 10 / 30 ms; d = 7: 11 / 27
#: against 10 / 31 ms.
NARROW_SOFTMAX_D_MAX = 4


def cpu_has(features, *names):
    """Whether every feature in names is on in features, LLVM's map of the host CPU's
    features: the map names every feature LLVM knows, each True or False, so a name's
    presence in it says nothing."""
    return all(features.get(name, False) for name in names)


_CPU_FEATURES = llvm_binding.get_host_cpu_features()
#: Whether the softmax kernel takes the LLVM vector code of _simd.py (scores by groups of
#: eight classes, the steps on vectors of rows, the gradient by panels), where the CPU has
#: AVX-512; elsewhere LLVM would split each 512-bit vector in two or four, and the
#: four-by-four tiles and the loops take the blocks.
SOFTMAX_SIMD = cpu_has(_CPU_FEATURES, "avx512f")
#: Whether float32 softmax scores take _simd.score_rows_tile (the rows of a tile in the
#: lanes, as kernels/fastgd_score_rows.h) instead of the groups, on AMD Zen CPUs with
#: AVX-512, where the groups' 64-bit broadcasts take a vector pipe the multiply-adds need.
SCORE_ROWS = SOFTMAX_SIMD and llvm_binding.get_host_cpu_name().startswith("znver")
#: Whether d = 1 mse and unweighted logistic take _simd.mse_one_feature and
#: _simd.logistic_one_feature (512-bit vectors, as kernels/fastgd_one_feature.c), where
#: the CPU has AVX-512 F and DQ (vscalef, vrange, vreduce: x86 intrinsics) and BW and VL
#: (vptestmb on 16 bytes, the labels' mask); elsewhere _mse_one_feature,
#: _logistic_one_feature and _logistic_one_feature_f32.
ONE_FEATURE_SIMD = cpu_has(_CPU_FEATURES, "avx512f", "avx512dq", "avx512bw", "avx512vl")
#: Whether unweighted mse and logistic on rows of FUSED_VECTORS 512-bit vectors take
#: _simd.fused_rows_part (four rows a step, as kernels/fastgd_fused_rows.c), where the CPU
#: has AVX-512; elsewhere _fused_rows_loss_grad's two rows a step.
FUSED_SIMD = cpu_has(_CPU_FEATURES, "avx512f")
#: The most 512-bit vectors a row that takes _simd.fused_rows_part has, by X's itemsize.
#: Rows of 9 to 16 vectors against the two-row loop, one process, of the read, on the
#: 2-core Intel Xeon (Emerald Rapids) VM: float64 logistic d = 72 0.89 -> 0.95, 100 0.89
#: -> 0.97, 128 0.76 -> 0.81; mse 0.96 -> 1.04, 0.91 -> 1.06, 0.79 -> 0.92; float32
#: logistic d = 144 0.85 -> 0.86, 200 0.89 -> 1.03, 224 0.82 -> 0.96, 240 0.91 -> 0.97,
#: 256 0.85 -> 0.92 and 0.98 -> 0.97; mse 224 0.88 -> 0.95, 240 0.85 -> 1.09, 256 0.84
#: -> 0.78 and 0.98 -> 0.97: float32 rows of sixteen vectors keep the two-row loop. On an
#: earlier Intel Xeon VM rows of 9 to 16 vectors were mixed and AMD Zen was not measured
#: with them: there, rows of up to eight.
FUSED_VECTORS_MAX = {8: 8, 4: 8} if FUSED_ZEN else {8: 16, 4: 15}
#: The shares (percent) of the next block's lines that the score groups and the steps ask
#: for on their way; the gradient panels ask for the rest (as in kernels/cython_kernels.pyx).
SCORES_AHEAD_PERCENT = 35
STEPS_AHEAD_PERCENT = 30
#: The softmax kernel's float32 gradient sums (Gb) go into the float64 ones before they
#: would hold more than this many rows of terms, and at the end of the rows, as
#: SOFTMAX_F32_FLUSH_ROWS in kernels/cython_kernels.pyx.
SOFTMAX_F32_FLUSH_ROWS = 512
#: Below this, a softmax row's log1p(rest) is taken as rest - rest^2 / 2 (see _simd.py).
TINY_REST = 2.0**-20
_ZERO_F32 = np.float32(0.0)
_ONE_F32 = np.float32(1.0)


def _prefetch_codegen(locality):
    """LLVM code for a prefetch of ``arr.flat[offset]`` with this locality (read, data)."""

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        offset = context.cast(builder, args[1], sig.args[1], types.intp)
        prefetch_line(builder, builder.gep(data, [offset]), locality)
        return context.get_dummy_value()

    return codegen


@intrinsic
def _prefetch(typingctx, arr, offset):
    """Hint: fetch the cache line holding ``arr.flat[offset]`` into the L2 cache (LLVM's
    prefetch with locality 2, x86 ``prefetcht1``; it never faults and changes no result).

    Into L2, not L1 (the likely cause: lines asked into L1 hold the core's few L1 miss
    buffers until they arrive from memory, and the gradient tiles' own loads wait behind
    them); the score tiles read the block from L2 a moment later. 2M x 64, k = 10, the kernels'
    prefetch into L2 against L1, alternating processes: numba float64 111-114 against
    117-121 ms, float32 78-79 against 84-86 ms."""
    if not isinstance(arr, types.Array) or not isinstance(offset, types.Integer):
        return None
    return types.void(arr, offset), _prefetch_codegen(2)


@intrinsic
def _prefetch_l1(typingctx, arr, offset):
    """_prefetch into the L1 cache (locality 3, x86 ``prefetcht0``), for the fused rows'
    loop (_fused_rows_loss_grad), whose loads come right after: into L2, a four-row
    variant of that loop ran float64 mse at 0.69 of the read against 0.74."""
    if not isinstance(arr, types.Array) or not isinstance(offset, types.Integer):
        return None
    return types.void(arr, offset), _prefetch_codegen(3)


#: Bytes ahead that the d = 1 loops ask for (_prefetch_stream), as
#: FGD_STREAM_AHEAD_BYTES in kernels/fastgd_prefetch.h, which says why.
STREAM_AHEAD_BYTES = 2048
#: Bytes of x per part of the d = 1 mse loop (_mse_one_feature), each part asking for the
#: rows STREAM_AHEAD_BYTES on. Intel Xeon VM, 10M rows (X and y in L3), fraction of the
#: read, one process: float64 0.36-0.38 without the prefetches, 0.49 in parts of 1 KB,
#: 0.47-0.50 of 2 KB, 0.38 of 8 KB; float32 0.39-0.40 without, 0.66 / 0.54-0.56 / 0.56 in
#: parts of 1 / 2 / 4 KB. Into L1 rather than L2: float64 0.51 against 0.45-0.46, float32
#: 0.53 against 0.43 (2 KB ahead; 1, 4 and 8 KB ahead were slower).
MSE_PART_BYTES = 1024


@numba.njit(cache=True, inline="always")
def _prefetch_stream(a, lo, hi, into_l1=False):
    """Elements lo..hi of the 1-d array ``a`` are about to be read: ask for the elements
    STREAM_AHEAD_BYTES further on (one per cache line), those within ``a``, into L2
    (_prefetch), or with ``into_l1`` into L1 (_prefetch_l1)."""
    ahead = STREAM_AHEAD_BYTES // a.itemsize
    for i in range(lo + ahead, min(hi + ahead, a.shape[0]), max(1, 64 // a.itemsize)):
        if into_l1:
            _prefetch_l1(a, i)
        else:
            _prefetch(a, i)


@numba.njit(cache=True)
def _task_buffers(n_tasks, d):
    """Zeroed per-task sums of the mse/logistic kernels: grads (n_tasks, padded d),
    losses and dz_sums (n_tasks,); _task_totals adds them up."""
    return np.zeros((n_tasks, _padded_width(d))), np.zeros(n_tasks), np.zeros(n_tasks)


@numba.njit(cache=True)
def _task_totals(losses, grads, dz_sums, d):
    """(sum of losses, sum of the rows' first d values of grads, sum of dz_sums): the
    mse/logistic kernels' per-task sums added up in task order. Serial: in a kernel
    compiled with parallel=True an array's .sum() is itself split over the threads, and
    the result would change with their number."""
    grad = np.zeros(d)
    for c in range(grads.shape[0]):
        for j in range(d):
            grad[j] += grads[c, j]
    return _total(losses), grad, _total(dz_sums)


@numba.njit(cache=True)
def _total(a):
    """The sum of a's values in order (see _task_totals)."""
    total = 0.0
    for c in range(a.shape[0]):
        total += a[c]
    return total


@numba.njit(cache=True, fastmath=_FASTMATH)
def _block_scores_4rows(X, w, b, zero, start, m, z):
    """z[i] = X[start + i] . w + b for i < m (float64 out; the dot in X's dtype), four rows
    at a time: each w[j] loaded once for four dot products, four independent accumulators.
    Against one row at a time, float32 ran ~8% faster on one core at 2M x 64 (Intel Xeon
    VM); float64, where the blocks serve rows of 8 to 15 values and rows wider than
    FUSED_D_MAX, on the Intel Xeon (Emerald Rapids) VM, of the read, one process: 20,000 x
    5,000 mse 0.65 -> 0.82, logistic 0.55 -> 0.74; 100,000 x 1,000 0.68 -> 0.83, 0.73 ->
    0.86; 400,000 x 256 0.78 -> 0.87, 0.75 -> 0.80; 8M x 12 0.45 -> 0.45, 0.43 -> 0.44. (On
    the earlier Intel Xeon VM float64 blocks at 2M x 64, which now take the fused rows, had
    run ~30% slower with it.)"""
    Xb = X[start : start + m]
    d = X.shape[1]
    i = 0
    while i + 4 <= m:
        x0 = Xb[i]
        x1 = Xb[i + 1]
        x2 = Xb[i + 2]
        x3 = Xb[i + 3]
        a0 = zero
        a1 = zero
        a2 = zero
        a3 = zero
        for j in range(d):
            wj = w[j]
            a0 += x0[j] * wj
            a1 += x1[j] * wj
            a2 += x2[j] * wj
            a3 += x3[j] * wj
        z[i] = a0 + b
        z[i + 1] = a1 + b
        z[i + 2] = a2 + b
        z[i + 3] = a3 + b
        i += 4
    while i < m:
        x = Xb[i]
        acc = zero
        for j in range(d):
            acc += x[j] * w[j]
        z[i] = acc + b
        i += 1


@numba.njit(cache=True, fastmath=_FASTMATH)
def _block_accumulate(X, r, start, m, g, gb, flush):
    """g += X[start:start + m].T @ r[:m], with X's rows still in cache.

    r and the block accumulator gb (d,) are in X's dtype (float32 data is multiplied and
    added as float32, 16 lanes per AVX-512 register). With ``flush`` gb is added into the
    float64 g and zeroed at the end: the float32 kernel flushes every block, so float32
    rounding spans one block of rows only; the float64 one only after its last block.
    Eight rows per pass over gb where the block has them, then four, then one: each pass
    loads and stores all of gb, which for wide rows (d = 5,000) is not in the L1 cache.
    """
    d = X.shape[1]
    Xb = X[start : start + m]
    i = 0
    while i + 8 <= m:
        x0 = Xb[i]
        x1 = Xb[i + 1]
        x2 = Xb[i + 2]
        x3 = Xb[i + 3]
        x4 = Xb[i + 4]
        x5 = Xb[i + 5]
        x6 = Xb[i + 6]
        x7 = Xb[i + 7]
        r0 = r[i]
        r1 = r[i + 1]
        r2 = r[i + 2]
        r3 = r[i + 3]
        r4 = r[i + 4]
        r5 = r[i + 5]
        r6 = r[i + 6]
        r7 = r[i + 7]
        for j in range(d):
            gb[j] += ((r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j])) + (
                (r4 * x4[j] + r5 * x5[j]) + (r6 * x6[j] + r7 * x7[j])
            )
        i += 8
    while i + 4 <= m:
        x0 = Xb[i]
        x1 = Xb[i + 1]
        x2 = Xb[i + 2]
        x3 = Xb[i + 3]
        r0 = r[i]
        r1 = r[i + 1]
        r2 = r[i + 2]
        r3 = r[i + 3]
        for j in range(d):
            gb[j] += (r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j])
        i += 4
    while i < m:
        x0 = Xb[i]
        r0 = r[i]
        for j in range(d):
            gb[j] += r0 * x0[j]
        i += 1
    if flush:
        for j in range(d):
            g[j] += gb[j]
            gb[j] = 0


@numba.njit(cache=True, inline="always")
def _fold_product(p, prod, loss_sum):
    """(prod * p, loss_sum) for a product of log1p factors, its logarithm moved into
    loss_sum whenever it passes 1e150 (p <= 2**PRODUCT_ROWS, so prod never overflows)."""
    prod *= p
    if prod > 1e150:
        return 1.0, loss_sum + math.log(prod)
    return prod, loss_sum


@numba.njit(cache=True, fastmath=_FASTMATH)
def _mse_one_feature(x, y, sw, w0, b, has_sw):
    """(sum s r^2, sum 2 s r x, sum 2 s r) with r = x w0 + b - y, for d = 1: one loop that
    reads x and y once, with no per-block passes (at 8 bytes a row they would cost more
    than the read), in parts of MSE_PART_BYTES of x, each asking for the rows
    STREAM_AHEAD_BYTES further on into L1 (_prefetch_stream)."""
    loss_sum = 0.0
    g = 0.0
    dz_sum = 0.0
    n = x.shape[0]
    part_rows = MSE_PART_BYTES // x.itemsize
    for lo in range(0, n, part_rows):
        hi = min(n, lo + part_rows)
        _prefetch_stream(x, lo, hi, True)
        _prefetch_stream(y, lo, hi, True)
        xs = x[lo:hi]
        ys = y[lo:hi]
        if has_sw:
            _prefetch_stream(sw, lo, hi, True)
            ss = sw[lo:hi]
            for i in range(hi - lo):
                r = xs[i] * w0 + b - ys[i]
                sr = ss[i] * r
                loss_sum += sr * r
                dz_sum += sr
                g += sr * xs[i]
        else:
            for i in range(hi - lo):
                r = xs[i] * w0 + b - ys[i]
                loss_sum += r * r
                dz_sum += r
                g += r * xs[i]
    return loss_sum, 2.0 * g, 2.0 * dz_sum


@numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _logistic_one_feature_f32(x, y, w0, b):
    """Unweighted float32 logistic for d = 1, as _logistic_one_feature but in float32
    arithmetic (twice the lanes, an exponential of half the terms; w0, b float32): float32
    sums over PRODUCT_ROWS_F32 rows, then float64."""
    loss_sum = 0.0
    g = 0.0
    dz_sum = 0.0
    prod = 1.0
    for lo in range(0, x.shape[0], PRODUCT_ROWS_F32):
        xs = x[lo : lo + PRODUCT_ROWS_F32]
        ys = y[lo : lo + PRODUCT_ROWS_F32]
        _prefetch_stream(x, lo, lo + xs.shape[0])
        _prefetch_stream(y, lo, lo + xs.shape[0])
        p = _ONE_F32
        part_loss = _ZERO_F32
        part_g = _ZERO_F32
        part_dz = _ZERO_F32
        for i in range(xs.shape[0]):
            xi = xs[i]
            yi = ys[i]
            z = xi * w0 + b
            e = exp_nonpositive_f32(-abs(z))
            r = (_ONE_F32 if z >= _ZERO_F32 else e) / (_ONE_F32 + e) - yi
            part_dz += r
            part_g += r * xi
            part_loss += max(z, _ZERO_F32) - yi * z
            p *= _ONE_F32 + e
        loss_sum += np.float64(part_loss)
        g += np.float64(part_g)
        dz_sum += np.float64(part_dz)
        prod, loss_sum = _fold_product(np.float64(p), prod, loss_sum)
    return loss_sum + math.log(prod), g, dz_sum


@numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _logistic_one_feature(x, y, sw, w0, b, has_sw):
    """(sum s l, sum s (sigmoid(z) - y) x, sum s (sigmoid(z) - y)) with z = x w0 + b, for
    d = 1: one vectorised loop that reads x and y once and keeps every per-row value in
    registers (the per-block arrays cost more than the exponential at d = 1). The numpy
    error model drops the zero-division check (1 + e >= 1) that stops vectorisation.
    Unweighted, e^-|z| is taken as a ratio (exp_ratio_nonpositive), whose denominator
    joins the division the sigmoid needs anyway: 3 fewer multiply-adds a row than the
    exponential, where this loop is bound by them (10M rows, A/B in one process, 5.3 ->
    4.7 ms)."""
    loss_sum = 0.0
    g = 0.0
    dz_sum = 0.0
    n = x.shape[0]
    if has_sw:
        for lo in range(0, n, PADE_ROWS):
            hi = min(n, lo + PADE_ROWS)
            _prefetch_stream(x, lo, hi)
            _prefetch_stream(y, lo, hi)
            _prefetch_stream(sw, lo, hi)
            for i in range(lo, hi):
                xi = np.float64(x[i])
                yi = np.float64(y[i])
                s = np.float64(sw[i])
                z = xi * w0 + b
                e = exp_nonpositive(-abs(z))
                r = s * ((1.0 if z >= 0.0 else e) / (1.0 + e) - yi)  # s (sigmoid(z) - y)
                dz_sum += r
                g += r * xi
                loss_sum += s * (max(z, 0.0) + log1p_unit(e) - yi * z)
        return loss_sum, g, dz_sum
    # e^-|z| = num / den (exp_ratio_nonpositive): sigmoid(z) is den / (num + den) or
    # num / (num + den), and the log1p terms add up to the logarithm of the products of
    # num + den over those of den, as in _scalar_loss_grad, PADE_ROWS rows at a time.
    prod = 1.0
    for lo in range(0, n, PADE_ROWS):
        xs = x[lo : lo + PADE_ROWS]
        ys = y[lo : lo + PADE_ROWS]
        _prefetch_stream(x, lo, lo + xs.shape[0])
        _prefetch_stream(y, lo, lo + xs.shape[0])
        p_sum = 1.0
        p_den = 1.0
        for i in range(xs.shape[0]):
            xi = np.float64(xs[i])
            yi = np.float64(ys[i])
            z = xi * w0 + b
            num, den = exp_ratio_nonpositive(-abs(z))
            t = num + den
            r = (den if z >= 0.0 else num) / t - yi
            dz_sum += r
            g += r * xi
            loss_sum += max(z, 0.0) - yi * z
            p_sum *= t
            p_den *= den
        prod, loss_sum = _fold_product(p_sum / p_den, prod, loss_sum)
    return loss_sum + math.log(prod), g, dz_sum


@numba.njit(cache=True, inline="always")
def _zeros_like_tuple(t):
    """A tuple of t's length and type, all zeros."""
    for j in range(len(t)):
        t = tuple_setitem(t, j, 0.0)
    return t


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _narrow_score(xs, i, wt, b):
    """b + row i of the flat rows xs, dotted with the tuple wt (its length the row's)."""
    d = len(wt)
    z = b
    for j in range(d):
        z += xs[i * d + j] * wt[j]
    return z


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _narrow_add(g, r, xs, i):
    """The tuple g plus r times row i of the flat rows xs."""
    d = len(g)
    for j in range(d):
        g = tuple_setitem(g, j, g[j] + r * xs[i * d + j])
    return g


@numba.njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _narrow_rows(xs, y, sw, wt, b, loss_code, has_sw):
    """(sum s l, sum s dl/dz x as a tuple, sum s dl/dz) over the rows of xs, the flat
    C-ordered rows of a narrow X (len(wt) values each): one pass, the loop vectorised
    over rows, as _logistic_one_feature. w comes as a tuple, so its length d is a
    compile-time constant (one compilation per d): the loops over a row's values unroll,
    the d gradient sums stay in registers as a tuple, and LLVM loads the d interleaved
    columns with shuffles. Arithmetic in float64, whatever X's dtype."""
    g = _zeros_like_tuple(wt)
    loss_sum = 0.0
    dz_sum = 0.0
    if loss_code == MSE:
        for i in range(y.shape[0]):
            r = _narrow_score(xs, i, wt, b) - np.float64(y[i])
            if has_sw:
                sr = np.float64(sw[i]) * r
            else:
                sr = r
            loss_sum += sr * r
            dz_sum += sr
            g = _narrow_add(g, sr, xs, i)
        for j in range(len(g)):
            g = tuple_setitem(g, j, 2.0 * g[j])
        return loss_sum, g, 2.0 * dz_sum
    if has_sw:
        for i in range(y.shape[0]):
            z = _narrow_score(xs, i, wt, b)
            yi = np.float64(y[i])
            s = np.float64(sw[i])
            e = exp_nonpositive(-abs(z))
            r = s * ((1.0 if z >= 0.0 else e) / (1.0 + e) - yi)  # s (sigmoid(z) - y)
            dz_sum += r
            g = _narrow_add(g, r, xs, i)
            loss_sum += s * (max(z, 0.0) + log1p_unit(e) - yi * z)
        return loss_sum, g, dz_sum
    # Unweighted: e^-|z| as a ratio and the log1p terms as products, as in
    # _logistic_one_feature.
    d = len(wt)
    prod = 1.0
    for lo in range(0, y.shape[0], PADE_ROWS):
        hi = min(y.shape[0], lo + PADE_ROWS)
        xp = xs[lo * d : hi * d]
        yp = y[lo:hi]
        p_sum = 1.0
        p_den = 1.0
        for i in range(hi - lo):
            z = _narrow_score(xp, i, wt, b)
            yi = np.float64(yp[i])
            num, den = exp_ratio_nonpositive(-abs(z))
            t = num + den
            r = (den if z >= 0.0 else num) / t - yi
            dz_sum += r
            g = _narrow_add(g, r, xp, i)
            loss_sum += max(z, 0.0) - yi * z
            p_sum *= t
            p_den *= den
        prod, loss_sum = _fold_product(p_sum / p_den, prod, loss_sum)
    return loss_sum + math.log(prod), g, dz_sum


@numba.njit(parallel=True, cache=True)
def _narrow_loss_grad(X, y, wt, b, sw, loss_code, n_tasks, n_threads):
    """_scalar_loss_grad's sums for narrow X (2 <= d <= NARROW_D_MAX, d = len(wt)): each
    task one contiguous range of rows through _narrow_rows."""
    n, d = X.shape
    has_sw = sw.shape[0] > 0
    chunk = (n + n_tasks - 1) // n_tasks
    flat = X.reshape(n * d)
    grads, losses, dz_sums = _task_buffers(n_tasks, d)
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            lo = min(n, c * chunk)
            hi = min(n, lo + chunk)
            sc = sw[lo:hi] if has_sw else sw
            loss_c, g, dz_sums[c] = _narrow_rows(
                flat[lo * d : hi * d], y[lo:hi], sc, wt, b, loss_code, has_sw
            )
            losses[c] = loss_c
            for j in range(d):
                grads[c, j] = g[j]
    return _task_totals(losses, grads, dz_sums, d)


@numba.njit(parallel=True, cache=True)
def _mse_one_feature_simd(x, y, sw, w0, b, has_sw, n_tasks, n_threads):
    """d = 1 mse sums (sum s l, sum s dl/dz x, sum s dl/dz) of x (n,) and y (n,), one
    contiguous range of rows per task, by _simd.mse_one_feature."""
    n = x.shape[0]
    chunk = (n + n_tasks - 1) // n_tasks
    sums = np.zeros((n_tasks, 3))
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            lo = min(n, c * chunk)
            hi = min(n, lo + chunk)
            sums[c, 0], sums[c, 1], sums[c, 2] = mse_one_feature(x, y, sw, lo, hi, w0, b, has_sw)
    return _task_totals(sums[:, 0], sums[:, 1:2], sums[:, 2], 1)


@numba.njit(parallel=True, cache=True)
def _logistic_one_feature_simd(x, y, w0, b, n_tasks, n_threads):
    """d = 1 unweighted logistic sums, as _mse_one_feature_simd, by
    _simd.logistic_one_feature (y in x's dtype or uint8 labels)."""
    n = x.shape[0]
    chunk = (n + n_tasks - 1) // n_tasks
    sums = np.zeros((n_tasks, 3))
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            lo = min(n, c * chunk)
            hi = min(n, lo + chunk)
            sums[c, 0], sums[c, 1], sums[c, 2] = logistic_one_feature(x, y, lo, hi, w0, b)
    return _task_totals(sums[:, 0], sums[:, 1:2], sums[:, 2], 1)


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _scalar_loss_grad(X, y, w, b, sw, loss_code, zero, n_tasks, n_threads, block, narrow_sums, ahead):
    """Loss and gradient sums for mse/logistic.

    X (n, d), y (n,), w (d,), sw (n,) or (0,) for no weights, all of X's dtype;
    b float64; zero X.dtype's 0 (keeps the row dot product in X's dtype, so float32
    data is read and multiplied as float32). Returns (sum s l, sum s dl/dz x, sum s dl/dz),
    float64.

    Each task takes one contiguous range of rows and walks it in blocks of ``block``
    rows, three loops per block: the scores of the block (reads its rows of X), the
    per-sample losses and residuals (vectorised, see _vecmath), and the residuals times
    the block's rows, which are still in cache, added into the task's own gradient.
    With ``ahead`` > 0 each block first asks for the values that far beyond its own
    (_prefetch_l1; see BLOCK_AHEAD_BYTES).
    """
    n, d = X.shape
    has_sw = sw.shape[0] > 0
    chunk = (n + n_tasks - 1) // n_tasks
    grads, losses, dz_sums = _task_buffers(n_tasks, d)
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            if d == 1:  # the textbook case: one fused pass, no blocks
                lo = min(n, c * chunk)
                hi = min(n, lo + chunk)
                xc = X.reshape(n)[lo:hi]
                sc = sw[lo:hi] if has_sw else sw
                if loss_code == MSE:
                    losses[c], grads[c, 0], dz_sums[c] = _mse_one_feature(xc, y[lo:hi], sc, w[0], b, has_sw)
                elif X.itemsize == 4 and not has_sw:
                    losses[c], grads[c, 0], dz_sums[c] = _logistic_one_feature_f32(
                        xc, y[lo:hi], np.float32(w[0]), np.float32(b)
                    )
                else:
                    losses[c], grads[c, 0], dz_sums[c] = _logistic_one_feature(
                        xc, y[lo:hi], sc, np.float64(w[0]), b, has_sw
                    )
                continue
            g = grads[c, :d]
            gb = np.zeros(d, X.dtype)
            z = np.empty(block)
            r = np.empty(block, X.dtype)
            e = np.empty(block)
            loss_sum = 0.0
            dz_sum = 0.0
            prod = 1.0
            stop = min(n, (c + 1) * chunk)
            flat = X.reshape(n * d)
            line = max(1, 64 // X.itemsize)
            for start in range(c * chunk, stop, block):
                m = min(block, stop - start)
                if ahead > 0:  # ask for the rows ``ahead`` values on (see BLOCK_AHEAD_BYTES)
                    for a in range(start * d + ahead, min(n * d, (start + m) * d + ahead), line):
                        _prefetch_l1(flat, a)
                _block_scores_4rows(X, w, b, zero, start, m, z)
                yb = y[start : start + m]
                # Per-sample losses into e and d loss / dz into z, then the weights: every
                # loop is branch-free in i, so each vectorises.
                if loss_code == MSE:
                    for i in range(m):
                        res = z[i] - np.float64(yb[i])
                        e[i] = res * res
                        z[i] = 2.0 * res
                else:
                    # log(1 + e^z) - y z = max(z, 0) + log1p(e^-|z|) - y z, never overflowing.
                    for i in range(m):
                        e[i] = exp_nonpositive(-abs(z[i]))
                    if has_sw:
                        for i in range(m):
                            zi = z[i]
                            yi = np.float64(yb[i])
                            ei = e[i]
                            z[i] = (1.0 if zi >= 0.0 else ei) / (1.0 + ei) - yi  # sigmoid(z) - y
                            e[i] = max(zi, 0.0) + log1p_unit(ei) - yi * zi
                    else:
                        # Unweighted, the log1p terms add up to the logarithm of a product of
                        # factors in [1, 2]: a product per PRODUCT_ROWS rows (at most 2**512),
                        # and one logarithm whenever the running product passes 1e150.
                        for lo in range(0, m, PRODUCT_ROWS):
                            p = 1.0
                            hi = min(m, lo + PRODUCT_ROWS)
                            zs = z[lo:hi]
                            es = e[lo:hi]
                            ys = yb[lo:hi]
                            for i in range(hi - lo):
                                zi = zs[i]
                                yi = np.float64(ys[i])
                                ei = es[i]
                                zs[i] = (1.0 if zi >= 0.0 else ei) / (1.0 + ei) - yi  # sigmoid(z) - y
                                es[i] = max(zi, 0.0) - yi * zi
                                p *= 1.0 + ei
                            prod, loss_sum = _fold_product(p, prod, loss_sum)
                if has_sw:
                    sb = sw[start : start + m]
                    for i in range(m):
                        s = np.float64(sb[i])
                        loss_sum += s * e[i]
                        z[i] *= s
                else:
                    for i in range(m):
                        loss_sum += e[i]
                for i in range(m):
                    dz_sum += z[i]
                    r[i] = z[i]
                _block_accumulate(X, r, start, m, g, gb, narrow_sums or start + m >= stop)
            losses[c] = loss_sum + math.log(prod)
            dz_sums[c] = dz_sum
    return _task_totals(losses, grads, dz_sums, d)


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _row_terms(z, y, s, loss_code, has_sw):
    """One row's (residual, loss term, log1p factor), float64, from its score z, label y
    and weight s (1 unweighted) in X's dtype, as the block kernel's: mse 2 s (z - y) and
    s (z - y)^2; logistic s (sigmoid(z) - y) and s l, except unweighted, where the loss
    term leaves out log1p(e^-|z|) and the factor 1 + e^-|z| carries it (the caller
    multiplies the factors and takes one logarithm). The factor is 1 where there is none.
    Computed in float64 (the fused rows take unweighted logistic through logistic_pair,
    in X's dtype)."""
    zd = np.float64(z)
    yd = np.float64(y)
    sd = np.float64(s)
    if loss_code == MSE:
        res = zd - yd
        sr = sd * res
        return 2.0 * sr, sr * res, 1.0
    e = exp_nonpositive(-abs(zd))
    r = (1.0 if zd >= 0.0 else e) / (1.0 + e) - yd
    if has_sw:
        return sd * r, sd * (max(zd, 0.0) + log1p_unit(e) - yd * zd), 1.0
    return r, max(zd, 0.0) - yd * zd, 1.0 + e


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH, error_model="numpy")
def _fused_rows_loss_grad(X, y, w, b, sw, loss_code, n_tasks, n_threads, ahead):
    """_scalar_loss_grad's sums for X of FUSED_D_MIN .. FUSED_D_MAX (float64) or
    FUSED_F32_D_MIN .. FUSED_F32_D_MAX (float32) features, in one pass over the rows two
    at a time: both rows' scores in one loop over their values (in X's dtype), their
    residuals (_row_terms; unweighted logistic's both in one vector, logistic_pair), then
    both rows times their residuals into a local gradient of X's dtype in a second loop,
    the rows now in the L1 cache; in float32 that gradient goes into a float64 one every
    FUSED_PART_ROWS rows. With ahead > 0 each step asks for its rows' lines ``ahead``
    values further on (_prefetch_l1; FUSED_AHEAD). The log1p factors of unweighted
    logistic are multiplied over FUSED_PART_ROWS rows (at most 2**64), then folded as in
    _fold_product."""
    n, d = X.shape
    has_sw = sw.shape[0] > 0
    chunk = (n + n_tasks - 1) // n_tasks
    grads, losses, dz_sums = _task_buffers(n_tasks, d)
    flat = X.reshape(n * d)
    line = max(1, 64 // X.itemsize)
    zero = X.dtype.type(0)
    one = X.dtype.type(1)
    bx = X.dtype.type(b)
    size = X.itemsize  # a constant of the compiled kernel
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            lo = min(n, c * chunk)
            hi = min(n, lo + chunk)
            # Local contiguous sums, into grads[c, :d] at the end: gp in X's dtype, in float32
            # one part's (added into the float64 g after each part), in float64 all rows'.
            g = np.zeros(d)
            gp = np.zeros(d, X.dtype)
            loss_sum = 0.0
            dz_sum = 0.0
            prod = 1.0
            for part in range(lo, hi, FUSED_PART_ROWS):
                part_end = min(hi, part + FUSED_PART_ROWS)
                p = 1.0
                i = part
                while i + 2 <= part_end:
                    if ahead > 0:
                        for a in range(i * d + ahead, min(n * d, (i + 2) * d + ahead), line):
                            _prefetch_l1(flat, a)
                    x0 = X[i]
                    x1 = X[i + 1]
                    a0 = zero
                    a1 = zero
                    for j in range(d):
                        a0 += x0[j] * w[j]
                        a1 += x1[j] * w[j]
                    if loss_code != MSE and not has_sw:  # both rows in one vector
                        r0, r1, terms, factors = logistic_pair(a0 + bx, a1 + bx, y[i], y[i + 1])
                    else:
                        s0 = sw[i] if has_sw else one
                        s1 = sw[i + 1] if has_sw else one
                        r0, l0, f0 = _row_terms(a0 + bx, y[i], s0, loss_code, has_sw)
                        r1, l1, f1 = _row_terms(a1 + bx, y[i + 1], s1, loss_code, has_sw)
                        terms = l0 + l1
                        factors = f0 * f1
                    loss_sum += terms
                    dz_sum += r0 + r1
                    p *= factors
                    q0 = X.dtype.type(r0)
                    q1 = X.dtype.type(r1)
                    for j in range(d):
                        gp[j] += q0 * x0[j] + q1 * x1[j]
                    i += 2
                if i < part_end:  # an odd row at the end of the chunk
                    x0 = X[i]
                    a0 = zero
                    for j in range(d):
                        a0 += x0[j] * w[j]
                    if loss_code != MSE and not has_sw:
                        # paired with a row of score 0 and label 0: term 0, factor exactly 2
                        r0, _, l0, f0 = logistic_pair(a0 + bx, zero, y[i], zero)
                        f0 *= 0.5
                    else:
                        r0, l0, f0 = _row_terms(a0 + bx, y[i], sw[i] if has_sw else one, loss_code, has_sw)
                    loss_sum += l0
                    dz_sum += r0
                    p *= f0
                    q0 = X.dtype.type(r0)
                    for j in range(d):
                        gp[j] += q0 * x0[j]
                if size == 4:
                    for j in range(d):
                        g[j] += gp[j]
                        gp[j] = zero
                prod, loss_sum = _fold_product(p, prod, loss_sum)
            if size == 4:
                grads[c, :d] = g
            else:
                grads[c, :d] = gp
            losses[c] = loss_sum + math.log(prod)
            dz_sums[c] = dz_sum
    return _task_totals(losses, grads, dz_sums, d)


@numba.njit(parallel=True, cache=True)
def _fused_rows_simd_loss_grad(X, y, wp, b, shift, logistic, n_tasks, n_threads):
    """_fused_rows_loss_grad's sums, unweighted, by _simd.fused_rows_part: four rows a step,
    parts of FUSED_PART_ROWS rows, each row read from ``shift`` values before its start
    (_line_shift); wp is w at shift, zero-padded to whole 512-bit vectors. The log1p factors'
    products are folded into a logarithm before they pass 1e150."""
    n, d = X.shape
    chunk = (n + n_tasks - 1) // n_tasks
    grads, losses, dz_sums = _task_buffers(n_tasks, d)
    scale = 1.0 if logistic else 2.0  # mse's residual sums are of z - y
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            lo = min(n, c * chunk)
            hi = min(n, lo + chunk)
            g = np.zeros(d)
            acc = np.zeros(3)  # loss terms, residuals, product of log1p factors
            acc[2] = 1.0
            logs = 0.0
            for part in range(lo, hi, FUSED_PART_ROWS):
                fused_rows_part(X, y, wp, b, part, min(hi, part + FUSED_PART_ROWS), shift, logistic, g, acc)
                if acc[2] > 1e150:
                    logs += math.log(acc[2])
                    acc[2] = 1.0
            for j in range(d):
                grads[c, j] = scale * g[j]
            losses[c] = acc[0] + (logs + math.log(acc[2]))
            dz_sums[c] = scale * acc[1]
    return _task_totals(losses, grads, dz_sums, d)


@numba.njit(cache=True, fastmath=_FASTMATH)
def _block_class_scores(X, Wt, b, zero, start, m, ZT):
    """ZT[q, i] = X[start + i] . Wt[q] + b[q] for i < m (class-major), stored in ZT's dtype.

    Tiles of four rows by four classes: per step along d, eight loads feed sixteen
    multiply-adds (a four-row, one-class tile needs five loads for four), so the loop is
    bound by arithmetic, not by loads. Leftover classes take four-row, one-class tiles,
    leftover rows one-row tiles.
    """
    d = X.shape[1]
    k = Wt.shape[0]
    Xb = X[start : start + m]
    i = 0
    while i + 4 <= m:
        x0 = Xb[i]
        x1 = Xb[i + 1]
        x2 = Xb[i + 2]
        x3 = Xb[i + 3]
        q = 0
        while q + 4 <= k:
            w0 = Wt[q]
            w1 = Wt[q + 1]
            w2 = Wt[q + 2]
            w3 = Wt[q + 3]
            a00 = a01 = a02 = a03 = zero
            a10 = a11 = a12 = a13 = zero
            a20 = a21 = a22 = a23 = zero
            a30 = a31 = a32 = a33 = zero
            for j in range(d):
                u0 = w0[j]
                u1 = w1[j]
                u2 = w2[j]
                u3 = w3[j]
                v = x0[j]
                a00 += v * u0
                a01 += v * u1
                a02 += v * u2
                a03 += v * u3
                v = x1[j]
                a10 += v * u0
                a11 += v * u1
                a12 += v * u2
                a13 += v * u3
                v = x2[j]
                a20 += v * u0
                a21 += v * u1
                a22 += v * u2
                a23 += v * u3
                v = x3[j]
                a30 += v * u0
                a31 += v * u1
                a32 += v * u2
                a33 += v * u3
            z0 = ZT[q]
            z1 = ZT[q + 1]
            z2 = ZT[q + 2]
            z3 = ZT[q + 3]
            b0, b1, b2, b3 = b[q], b[q + 1], b[q + 2], b[q + 3]
            z0[i], z0[i + 1], z0[i + 2], z0[i + 3] = a00 + b0, a10 + b0, a20 + b0, a30 + b0
            z1[i], z1[i + 1], z1[i + 2], z1[i + 3] = a01 + b1, a11 + b1, a21 + b1, a31 + b1
            z2[i], z2[i + 1], z2[i + 2], z2[i + 3] = a02 + b2, a12 + b2, a22 + b2, a32 + b2
            z3[i], z3[i + 1], z3[i + 2], z3[i + 3] = a03 + b3, a13 + b3, a23 + b3, a33 + b3
            q += 4
        while q < k:
            wq = Wt[q]
            a0 = a1 = a2 = a3 = zero
            for j in range(d):
                u = wq[j]
                a0 += x0[j] * u
                a1 += x1[j] * u
                a2 += x2[j] * u
                a3 += x3[j] * u
            zq = ZT[q]
            zq[i] = a0 + b[q]
            zq[i + 1] = a1 + b[q]
            zq[i + 2] = a2 + b[q]
            zq[i + 3] = a3 + b[q]
            q += 1
        i += 4
    while i < m:
        x0 = Xb[i]
        for q in range(k):
            wq = Wt[q]
            a0 = zero
            for j in range(d):
                a0 += x0[j] * wq[j]
            ZT[q, i] = a0 + b[q]
        i += 1


@numba.njit(cache=True)
def _block_class_scores_groups(X, Wg, wdot, dot, b, start, m, ZT, kq, pf_at, pf_lines):
    """_block_class_scores by groups of eight classes (score_group_tile of _simd.py, the
    Cython kernel's kernels/fastgd_score_groups.h in LLVM vector code): Wg, wdot and dot
    from _group_coefficients. Asks for pf_lines cache lines of X from the flat offset pf_at
    on the way, an equal share in each tile of eight rows."""
    kg = kq - len(dot)
    groups = (kg + 7) // 8
    tiles = (m + 7) // 8
    per_tile = (pf_lines + tiles - 1) // tiles
    per_line = 64 // X.itemsize
    for t in range(tiles):
        i0 = 8 * t
        rows = min(8, m - i0)
        lines = min(per_tile, pf_lines)
        pf_lines -= lines
        if kg == 0:  # one class, by dot products alone
            score_group_tile(X, start + i0, rows, Wg, 0, wdot, (0,), (), ZT, i0, 0, kq - 1, b, pf_at, lines)
        else:
            score_group_tile(
                X, start + i0, rows, Wg, 0, wdot, dot, (0,), ZT, i0, min(8, kg), kq - 1, b, pf_at, lines
            )
            for g in range(1, groups):
                nq = min(8, kg - 8 * g)
                score_group_tile(X, start + i0, rows, Wg, 8 * g, wdot, (), (0,), ZT, i0, nq, kq - 1, b, 0, 0)
        pf_at += lines * per_line


@numba.njit(cache=True)
def _score_rows_pass_classes(kq, q0, s):
    """The classes of pass s (from class q0) of _block_class_scores_rows: kq classes in
    passes of at most SCORE_ROWS_CLASSES, of as even sizes as can be."""
    passes = (kq + SCORE_ROWS_CLASSES - 1) // SCORE_ROWS_CLASSES
    return (kq - q0 + passes - s - 1) // (passes - s)


def _score_rows_coefficients(Wt):
    """Wt (kq, d) as _simd.score_rows_tile takes it, flat (kq d,): pass by pass of
    _block_class_scores_rows, the pass's nq classes' coefficients transposed, (d, nq)."""
    kq, d = Wt.shape
    Wr = np.empty(kq * d, Wt.dtype)
    q0, s = 0, 0
    while q0 < kq:
        nq = _score_rows_pass_classes(kq, q0, s)
        Wr[q0 * d : (q0 + nq) * d] = Wt[q0 : q0 + nq].T.ravel()
        q0, s = q0 + nq, s + 1
    return Wr


@numba.njit(cache=True)
def _score_rows_pass(X, Wr, b, start, m, ZT, q0, classes, pf_at, pf_lines):
    """One pass of _block_class_scores_rows: classes q0 .. q0 + len(classes) - 1 of the
    block's tiles; asks for pf_lines lines from pf_at, an equal share in each tile."""
    nl = 64 // X.itemsize
    tiles = (m + nl - 1) // nl
    per_tile = (pf_lines + tiles - 1) // tiles
    per_line = 64 // X.itemsize
    for t in range(tiles):
        i0 = nl * t
        lines = min(per_tile, pf_lines)
        pf_lines -= lines
        score_rows_tile(X, start + i0, min(nl, m - i0), Wr, q0, classes, ZT, i0, b, pf_at, lines)
        pf_at += lines * per_line


@numba.njit(cache=True)
def _block_class_scores_rows(X, Wr, b, start, m, ZT, kq, pf_at, pf_lines):
    """_block_class_scores with the rows of a tile in the lanes (score_rows_tile of
    _simd.py; SCORE_ROWS): Wr from _score_rows_coefficients, the classes in passes of at
    most SCORE_ROWS_CLASSES, of as even sizes as can be (each size one compiled case). Asks
    for pf_lines cache lines of X from the flat offset pf_at during the first pass."""
    passes = (kq + SCORE_ROWS_CLASSES - 1) // SCORE_ROWS_CLASSES
    q0 = 0
    for s in range(passes):
        nq = _score_rows_pass_classes(kq, q0, s)
        lines = pf_lines if s == 0 else 0
        if nq == 1:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0,), pf_at, lines)
        elif nq == 2:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0), pf_at, lines)
        elif nq == 3:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0), pf_at, lines)
        elif nq == 4:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0), pf_at, lines)
        elif nq == 5:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0, 0), pf_at, lines)
        elif nq == 6:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0, 0, 0), pf_at, lines)
        elif nq == 7:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0, 0, 0, 0), pf_at, lines)
        elif nq == 8:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0, 0, 0, 0, 0), pf_at, lines)
        elif nq == 9:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0, 0, 0, 0, 0, 0), pf_at, lines)
        else:
            _score_rows_pass(X, Wr, b, start, m, ZT, q0, (0, 0, 0, 0, 0, 0, 0, 0, 0, 0), pf_at, lines)
        q0 += nq


@numba.njit(cache=True, fastmath=_FASTMATH)
def _block_class_accumulate(X, RT, start, m, G, Gb, ahead, ahead_lines, skip):
    """G[q] += sum_i RT[q, i] X[start + i] for i < m; Gb (k, d) in X's dtype, as in
    _block_accumulate: four rows per pass, then Gb is added into G and zeroed.

    Four classes per pass over Gb while four are left (each loaded value of X feeds four
    rows of Gb), then two, then one. Everything is indexed in two dimensions, X[row, j]
    and Gb[q, j]: with row views (x0 = X[row], ga = Gb[q]) LLVM saw sixteen pairs of
    arrays that might overlap, too many to check at run time, and two classes a pass was
    the most it vectorised. 2M x 64 float64, k = 10, the tiles alone in one process: 45-46 -> 38-39 ms
    (two classes a pass with views; one class a pass was 7-15% slower still).
    """
    d = X.shape[1]
    k = G.shape[0]
    per_line = 64 // X.itemsize
    at = (start + m) * d + skip  # the first skip elements were asked for by the scores
    end = (start + m) * d + ahead
    # Each pass asks for an equal share of the next block's lines for four rows (at most
    # ahead_lines), so the requests keep pace with the rows read whatever k is.
    passes = k // 4 + (k % 4 + 1) // 2
    lines = min(ahead_lines, (4 * d + per_line * passes - 1) // (per_line * passes))
    i = 0
    while i + 4 <= m:
        r = start + i
        q = 0
        while q < k:
            for _ in range(lines):
                if at < end:
                    _prefetch(X, at)
                    at += per_line
            a0 = RT[q, i]
            a1 = RT[q, i + 1]
            a2 = RT[q, i + 2]
            a3 = RT[q, i + 3]
            if q + 3 < k:
                c0 = RT[q + 1, i]
                c1 = RT[q + 1, i + 1]
                c2 = RT[q + 1, i + 2]
                c3 = RT[q + 1, i + 3]
                e0 = RT[q + 2, i]
                e1 = RT[q + 2, i + 1]
                e2 = RT[q + 2, i + 2]
                e3 = RT[q + 2, i + 3]
                f0 = RT[q + 3, i]
                f1 = RT[q + 3, i + 1]
                f2 = RT[q + 3, i + 2]
                f3 = RT[q + 3, i + 3]
                for j in range(d):
                    v0 = X[r, j]
                    v1 = X[r + 1, j]
                    v2 = X[r + 2, j]
                    v3 = X[r + 3, j]
                    Gb[q, j] += (a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3)
                    Gb[q + 1, j] += (c0 * v0 + c1 * v1) + (c2 * v2 + c3 * v3)
                    Gb[q + 2, j] += (e0 * v0 + e1 * v1) + (e2 * v2 + e3 * v3)
                    Gb[q + 3, j] += (f0 * v0 + f1 * v1) + (f2 * v2 + f3 * v3)
                q += 4
            elif q + 1 < k:
                c0 = RT[q + 1, i]
                c1 = RT[q + 1, i + 1]
                c2 = RT[q + 1, i + 2]
                c3 = RT[q + 1, i + 3]
                for j in range(d):
                    v0 = X[r, j]
                    v1 = X[r + 1, j]
                    v2 = X[r + 2, j]
                    v3 = X[r + 3, j]
                    Gb[q, j] += (a0 * v0 + a1 * v1) + (a2 * v2 + a3 * v3)
                    Gb[q + 1, j] += (c0 * v0 + c1 * v1) + (c2 * v2 + c3 * v3)
                q += 2
            else:
                for j in range(d):
                    Gb[q, j] += (a0 * X[r, j] + a1 * X[r + 1, j]) + (a2 * X[r + 2, j] + a3 * X[r + 3, j])
                q += 1
        i += 4
    while i < m:
        for q in range(k):
            c0 = RT[q, i]
            for j in range(d):
                Gb[q, j] += c0 * X[start + i, j]
        i += 1
    for q in range(k):
        for j in range(d):
            G[q, j] += Gb[q, j]
            Gb[q, j] = 0


@numba.njit(cache=True)
def _block_class_accumulate_panels(X, RT, start, m, G, Gb, ahead, skip, flush):
    """_block_class_accumulate by panels (panel_rows of _simd.py, the Cython kernel's
    gradient panels in LLVM vector code): the k classes in as few groups of at most
    PANEL_CLASSES_MAX as will do (sizes differing by one at most), each group's panels of
    panel_vectors(Q) vectors of columns across d, their sums in registers over the block's
    rows; then, with flush, Gb is added into G and zeroed (float32 sums every
    SOFTMAX_F32_FLUSH_ROWS rows at most, float64 ones at the end of the rows: a flush per
    block of 128 rows cost as many loads and stores as a fifth of the panels' work at
    d = 64, k = 10). The next block's elements from (start + m) d + skip to (start + m) d
    + ahead are asked for on the way, an equal share in each panel."""
    d = X.shape[1]
    k = G.shape[0]
    lanes = 64 // X.itemsize
    groups = (k + PANEL_CLASSES_MAX - 1) // PANEL_CLASSES_MAX
    base = k // groups
    bigger = k % groups  # the first `bigger` groups: base + 1 classes
    panels = 0
    for g in range(groups):
        columns = panel_vectors(base + (g < bigger)) * lanes
        panels += (d + columns - 1) // columns
    at = (start + m) * d + skip
    lines = max(0, (start + m) * d + ahead - at) // lanes
    per_panel = (lines + panels - 1) // panels
    q0 = 0
    for g in range(groups):
        n_classes = base + (g < bigger)
        columns = panel_vectors(n_classes) * lanes
        for j0 in range(0, d, columns):
            n = min(per_panel, lines)
            panel_rows(X, start, m, RT, q0, n_classes, j0, Gb, at, n)
            at += n * lanes
            lines -= n
        q0 += n_classes
    if flush:
        for q in range(k):
            for j in range(d):
                G[q, j] += Gb[q, j]
                Gb[q, j] = 0


@numba.njit(cache=True, fastmath=_FASTMATH)
def _narrow_class_scores(flat, Wt, b, start, m, ZT, shape):
    """_block_class_scores for narrow rows (d = len(shape) <= NARROW_SOFTMAX_D_MAX, a
    compile-time constant): ZT[q, i] = b[q] + row start + i of the flat rows . Wt[q], one
    loop over the block's rows per class, vectorised over rows as in _narrow_rows."""
    d = len(shape)
    xs = flat[start * d : (start + m) * d]
    for q in range(Wt.shape[0]):
        w = shape
        for j in range(d):
            w = tuple_setitem(w, j, np.float64(Wt[q, j]))
        for i in range(m):
            ZT[q, i] = _narrow_score(xs, i, w, b[q])


@numba.njit(cache=True, fastmath=_FASTMATH)
def _narrow_class_accumulate(flat, RT, start, m, G, shape):
    """_block_class_accumulate for narrow rows (as _narrow_class_scores): G[q] += the sum
    over the block's rows i of RT[q, i] times row start + i, for the rows of G; each class's
    d sums in registers (a tuple), in float64."""
    d = len(shape)
    xs = flat[start * d : (start + m) * d]
    for q in range(G.shape[0]):
        g = _zeros_like_tuple(shape)
        for i in range(m):
            g = _narrow_add(g, np.float64(RT[q, i]), xs, i)
        for j in range(d):
            G[q, j] += g[j]


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _softmax_loss_grad(
    X, y, Wt, b, k, sw, zero, n_tasks, n_threads, block, ahead_lines, narrow, simd, Wg, wdot, dot, rows
):
    """Loss and gradient sums for softmax over k classes.

    X (n, d); Wt (kq, d) and b (kq,) float64 from _sums.softmax_coefficients, transposed so
    that every inner loop runs over d contiguous values: the k classes' coefficients, or
    (kq = k - 1) the first k - 1 classes' minus the last one's, the last class then scoring
    0 and only k - 1 classes' products computed; sw (n,) or (0,) in X's dtype; y (n,) int
    labels; narrow a tuple of d zeros for narrow rows (2 <= d <= NARROW_SOFTMAX_D_MAX: the
    block products of _narrow_class_scores / _narrow_class_accumulate, compiled for that
    d), else (); simd (SOFTMAX_SIMD): the block's scores by _block_class_scores_groups
    (with Wg, wdot and dot from _group_coefficients; not for narrow rows), or with rows =
    (0,) by _block_class_scores_rows (Wg then from _score_rows_coefficients), its steps by
    _simd.softmax_steps and its gradient by _block_class_accumulate_panels, the three
    asking for the next block's lines in shares; else the four-by-four tiles and the loops
    below. Returns (sum s l, sum s (p - onehot) x^T as (k, d), sum s (p - onehot) of shape
    (k,)), float64; with kq = k - 1 the gradient's last row is minus the sum of the others
    (each row's residuals sum to zero over the classes). Blocks of rows as in
    _scalar_loss_grad. The block's scores are stored class-major (ZT[q, i]), so each
    softmax step loops over the block's rows and vectorises; they turn into the residuals
    in place. The steps run in X's dtype (float32 data: a float32 exponential, sixteen
    lanes), the loss and residual sums in float64. A sample's loss is
    ``log(sum_q e^(z_q - max z)) - (z_y - max z)``; without sample weights the logarithms
    of a block's rows are taken as one logarithm of their product (each factor lies in
    [1, k]; the product is flushed before it could overflow).
    """
    n, d = X.shape
    kq = Wt.shape[0]  # classes with a score row in Wt and a gradient row in G
    has_sw = sw.shape[0] > 0
    chunk = (n + n_tasks - 1) // n_tasks
    prod_rows = max(1, int(1000.0 / math.log2(k)))  # see the unweighted log-sum-exps below
    flat = X.reshape(n * d)
    grads = np.zeros((n_tasks, _padded_width(kq * d)))
    losses = np.zeros(n_tasks)
    r_sums = np.zeros((n_tasks, k))
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        # A thread's scratch, made once for all its tasks: a task's last block leaves Gb
        # zeroed (its flush); the task's sums below start again at each task.
        Gb = np.zeros((kq, d), X.dtype)
        ZT = np.empty((k, block), X.dtype)
        top = np.empty(block, X.dtype)
        sum_e = np.empty(block, X.dtype)
        rest = np.empty(block)
        ties = np.empty(block)
        wt = np.ones(block, X.dtype)
        rs = np.empty(k)
        rsv = np.empty((k, 64 // X.itemsize))  # softmax_steps' sums of residuals by lane
        lanes = 64 // X.itemsize
        logs = np.empty(2 * lanes + 1)  # softmax_steps' unweighted logarithms, block to block
        for c in tasks(counter, n_tasks):
            G = grads[c, : kq * d].reshape((kq, d))
            for q in range(k):
                rs[q] = 0.0
                for lane in range(lanes):
                    rsv[q, lane] = 0.0
            for lane in range(2 * lanes + 1):
                logs[lane] = 1.0 if lane < lanes else 0.0
            loss_sum = 0.0
            rows_in_gb = 0
            stop = min(n, (c + 1) * chunk)
            for start in range(c * chunk, stop, block):
                m = min(block, stop - start)
                ahead = min(block, stop - start - m) * d  # the next block's elements
                skip = 0
                if len(narrow) > 0:  # a compile-time constant: d for narrow rows, else 0
                    _narrow_class_scores(flat, Wt, b, start, m, ZT, narrow)
                elif simd:
                    lines = ahead * SCORES_AHEAD_PERCENT // 100 * X.itemsize // 64
                    if len(rows) > 0:  # a compile-time constant, as narrow
                        _block_class_scores_rows(X, Wg, b, start, m, ZT, kq, (start + m) * d, lines)
                    else:
                        _block_class_scores_groups(
                            X, Wg, wdot, dot, b, start, m, ZT, kq, (start + m) * d, lines
                        )
                    skip = lines * 64 // X.itemsize
                else:
                    _block_class_scores(X, Wt, b, zero, start, m, ZT)
                if simd:  # the steps eight or sixteen rows a vector, with a share of the next block's lines
                    steps_lines = ahead * STEPS_AHEAD_PERCENT // 100 * X.itemsize // 64
                    at = (start + m) * d + skip
                    loss_sum += softmax_steps(
                        ZT, m, k, kq, y, start, sw, has_sw, rsv, logs, X, at, steps_lines
                    )
                    skip += steps_lines * 64 // X.itemsize
                else:
                    yb = y[start : start + m]
                    if has_sw:
                        sb = sw[start : start + m]
                        for i in range(m):
                            wt[i] = sb[i]
                    # Two-dimensional indexing (no row views): a view made in a loop costs a
                    # reference count increment and decrement each time.
                    for q in range(kq, k):  # the last class, when it scores 0
                        for i in range(m):
                            ZT[q, i] = 0
                    for i in range(m):
                        top[i] = ZT[0, i]
                        sum_e[i] = 0
                        rest[i] = 0.0
                        ties[i] = 0.0
                    for q in range(1, k):
                        for i in range(m):
                            top[i] = max(top[i], ZT[q, i])
                    for i in range(m):
                        loss_sum -= np.float64(wt[i]) * np.float64(ZT[yb[i], i] - top[i])
                    for q in range(k):
                        for i in range(m):
                            z = ZT[q, i]
                            e = exp_nonpositive_as(z - top[i])
                            ZT[q, i] = e
                            sum_e[i] += e
                            # The sum but the maximum's 1, for log1p (see fgd_log1p_split in
                            # kernels/fastgd_softmax_steps.h): log of the rounded sum lost it.
                            rest[i] += np.float64(e) if z < top[i] else 0.0
                            ties[i] += 1.0 if z == top[i] else 0.0
                    for i in range(m):
                        rest[i] += ties[i] - 1.0
                    if has_sw:
                        for i in range(m):
                            loss_sum += np.float64(wt[i]) * math.log1p(rest[i])
                    else:
                        # Unweighted, logarithms of products of prod_rows rows of 1 + rest, as in
                        # the Cython kernel (each factor in [1, k]: a product below 2**1000);
                        # rest below 2**-20 as rest - rest^2 / 2.
                        for lo in range(0, m, prod_rows):
                            part = rest[lo : min(m, lo + prod_rows)]
                            prod = 1.0
                            tiny = 0.0
                            for i in range(part.shape[0]):  # from 0: no wraparound checks, vectorised
                                r = part[i]
                                small = r < TINY_REST
                                prod *= 1.0 if small else 1.0 + r
                                tiny += r - 0.5 * r * r if small else 0.0
                            loss_sum += math.log(prod) + tiny
                    for i in range(m):
                        sum_e[i] = wt[i] / sum_e[i]  # now the scale of row i
                    for q in range(k):  # probabilities, and their sums (one pass)
                        acc = 0.0
                        for i in range(m):
                            p = ZT[q, i] * sum_e[i]
                            ZT[q, i] = p
                            acc += np.float64(p)
                        rs[q] += acc
                    for i in range(m):  # minus the one-hot labels: residuals
                        ZT[yb[i], i] -= wt[i]
                        rs[yb[i]] -= np.float64(wt[i])
                if len(narrow) > 0:
                    _narrow_class_accumulate(flat, ZT, start, m, G, narrow)
                elif simd:
                    rows_in_gb += m  # float32 sums go into G before they hold SOFTMAX_F32_FLUSH_ROWS rows
                    flush = (
                        X.itemsize == 4 and rows_in_gb + block > SOFTMAX_F32_FLUSH_ROWS
                    ) or start + m == stop
                    if flush:
                        rows_in_gb = 0
                    _block_class_accumulate_panels(X, ZT, start, m, G, Gb, ahead, skip, flush)
                else:
                    _block_class_accumulate(X, ZT, start, m, G, Gb, ahead, ahead_lines, skip)
            for lane in range(lanes):  # what softmax_steps carried (products of 1 at the start)
                loss_sum += math.log(logs[lane]) + logs[lanes + lane]
            losses[c] = loss_sum
            for q in range(k):
                r_sums[c, q] = rs[q] + rsv[q].sum()
    grad = np.zeros((k, d))
    r_sum = np.zeros(k)
    for c in range(n_tasks):
        for q in range(k):
            r_sum[q] += r_sums[c, q]
        for q in range(kq):
            for j in range(d):
                grad[q, j] += grads[c, q * d + j]
    for q in range(kq, k):  # the last class, from the others
        for p in range(kq):
            for j in range(d):
                grad[q, j] -= grad[p, j]
    return _total(losses), grad, r_sum


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _csr_scalar_loss_grad(data, indices, indptr, bounds, d, y, w, b, sw, loss_code, n_threads):
    """mse/logistic sums for CSR X (data, indices, indptr): task c takes rows
    bounds[c]..bounds[c + 1] (cut so each task gets about the same number of stored
    values), computes each row's score from its stored values only and scatters
    s dl/dz x into its own float64 gradient. Returns what _scalar_loss_grad returns."""
    n_tasks = bounds.shape[0] - 1
    has_sw = sw.shape[0] > 0
    grads, losses, dz_sums = _task_buffers(n_tasks, d)
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            g = grads[c, :d]
            loss_sum = 0.0
            dz_sum = 0.0
            for i in range(bounds[c], bounds[c + 1]):
                values = data[indptr[i] : indptr[i + 1]]
                columns = indices[indptr[i] : indptr[i + 1]]
                z = b
                for p in range(values.shape[0]):
                    z += np.float64(values[p]) * np.float64(w[columns[p]])
                loss_i, dz = scalar_loss_dz(loss_code, z, np.float64(y[i]))
                if has_sw:
                    s = np.float64(sw[i])
                    loss_i *= s
                    dz *= s
                loss_sum += loss_i
                dz_sum += dz
                for p in range(values.shape[0]):
                    g[columns[p]] += dz * values[p]
            losses[c] = loss_sum
            dz_sums[c] = dz_sum
    return _task_totals(losses, grads, dz_sums, d)


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _csr_softmax_loss_grad(data, indices, indptr, bounds, W, b, y, sw, n_threads):
    """softmax sums for CSR X, rows split as in _csr_scalar_loss_grad; W (d, k) so the k
    coefficients of a stored feature are contiguous. Returns (sum s l, (d, k) gradient
    sum, (k,) residual sum), float64."""
    n_tasks = bounds.shape[0] - 1
    d, k = W.shape
    has_sw = sw.shape[0] > 0
    grads = np.zeros((n_tasks, _padded_width(d * k)))
    losses = np.zeros(n_tasks)
    r_sums = np.zeros((n_tasks, _padded_width(k)))  # updated row by row
    counter = np.zeros(1, np.int64)  # the next task's number (see _tasks)
    for _thread in numba.prange(n_threads):  # each takes tasks until none are left
        for c in tasks(counter, n_tasks):
            G = grads[c, : d * k].reshape((d, k))
            z = np.empty(k)
            loss_sum = 0.0
            for i in range(bounds[c], bounds[c + 1]):
                values = data[indptr[i] : indptr[i + 1]]
                columns = indices[indptr[i] : indptr[i + 1]]
                for q in range(k):
                    z[q] = b[q]
                for p in range(values.shape[0]):
                    v = np.float64(values[p])
                    wj = W[columns[p]]
                    for q in range(k):
                        z[q] += v * wj[q]
                top = z[0]
                for q in range(1, k):
                    top = max(top, z[q])
                label = y[i]
                margin = z[label] - top
                sum_e = 0.0
                for q in range(k):
                    z[q] = math.exp(z[q] - top)
                    sum_e += z[q]
                s = np.float64(sw[i]) if has_sw else 1.0
                loss_sum += s * (math.log(sum_e) - margin)
                scale = s / sum_e
                for q in range(k):
                    z[q] *= scale
                z[label] -= s
                for q in range(k):
                    r_sums[c, q] += z[q]
                for p in range(values.shape[0]):
                    v = np.float64(values[p])
                    gj = G[columns[p]]
                    for q in range(k):
                        gj[q] += v * z[q]
            losses[c] = loss_sum
    grad = np.zeros((d, k))
    r_sum = np.zeros(k)
    for c in range(n_tasks):
        for q in range(k):
            r_sum[q] += r_sums[c, q]
        for j in range(d):
            for q in range(k):
                grad[j, q] += grads[c, j * k + q]
    return _total(losses), grad, r_sum


def _csr_loss_grad(X, y, w, b, loss, sample_weight, n_threads):
    dtype = X.dtype
    n, d = X.shape
    sw, total = _sums.weights(sample_weight, n, dtype)
    bounds = _csr.row_bounds(X.indptr, _csr.tasks(X))
    if loss == "softmax":
        sums = _csr_softmax_loss_grad(
            X.data, X.indices, X.indptr, bounds, w, b.astype(np.float64), y, sw, n_threads
        )
    else:
        sums = _csr_scalar_loss_grad(
            X.data, X.indices, X.indptr, bounds, d, y, w, float(b), sw, LOSSES.index(loss), n_threads
        )
    return _sums.normalised(*sums, total, dtype, loss == "softmax")


# Numba's "workqueue" threading layer (its fallback when neither OpenMP nor TBB loads)
# aborts the whole process when parallel kernels are launched from two Python threads at
# once. Calls are serialised until the first kernel has run and told which layer is in
# use, and for good under workqueue; OpenMP and TBB take concurrent launches.
_LAUNCH_LOCK = threading.Lock()
_concurrent_launches_ok = False


def loss_grad(X, y, w, b, loss, sample_weight):
    global _concurrent_launches_ok
    if _concurrent_launches_ok:
        return _loss_grad(X, y, w, b, loss, sample_weight)
    with _LAUNCH_LOCK:
        result = _loss_grad(X, y, w, b, loss, sample_weight)
        _concurrent_launches_ok = numba.threading_layer() != "workqueue"
    return result


def _group_coefficients(Wt, groups):
    """(Wg, wdot, dot) for _block_class_scores_groups from the coefficients Wt (kq, d): the
    classes in groups of eight, where kq = 8 g + 1 all but the last, which (dot = (0,))
    is wdot and scored by dot products. Group by group, a row of Wg per column (float64:
    Wg (G d, 8), class 8 g + c of column j at [g d + j, c]) or per column pair (float32,
    as fgd_score_coefficients_f: Wg (G P, 16), P = (d + 1) // 2, class 8 g + c of columns
    2 p and 2 p + 1 at [g P + p, 2 c] and [g P + p, 2 c + 1]), so that the tile's rows of
    coefficients lie a constant 64 bytes apart; zeros past the classes and columns. Without
    groups, empty arrays (the tiles take the scores)."""
    kq, d = Wt.shape
    dot = (0,) if kq % 8 == 1 else ()
    if not groups:
        return np.zeros((0, 0), Wt.dtype), np.zeros(0, Wt.dtype), dot
    kg = kq - len(dot)
    n_groups = max(1, (kg + 7) // 8)
    rows = np.zeros((8 * n_groups, d + d % 2), Wt.dtype)
    rows[:kg, :d] = Wt[:kg]
    if Wt.dtype.itemsize == 8:  # rows[8 g + c, j] -> Wg[g d + j, c]
        Wg = rows[:, :d].reshape(n_groups, 8, d).transpose(0, 2, 1).reshape(n_groups * d, 8)
    else:  # rows[8 g + c, 2 p + e] -> Wg[g P + p, 2 c + e]
        pairs = (d + 1) // 2
        Wg = rows.reshape(n_groups, 8, pairs, 2).transpose(0, 2, 1, 3).reshape(n_groups * pairs, 16)
    wdot = np.ascontiguousarray(Wt[-1]) if dot else np.zeros(d, Wt.dtype)
    return np.ascontiguousarray(Wg), wdot, dot


def _takes_fused_rows(dtype, d, loss, weighted):
    """Whether mse/logistic on dense X of this dtype and width take _fused_rows_loss_grad
    (see FUSED_D_MIN and FUSED_F32_D_MIN)."""
    if dtype.itemsize == 8:
        return FUSED_D_MIN <= d <= FUSED_D_MAX
    return FUSED_F32_D_MIN <= d <= FUSED_F32_D_MAX and not (weighted and loss == "logistic")


def _row_vectors(dtype, d):
    """512-bit vectors a row of d values of dtype takes (the last one partial)."""
    return -(-d // (64 // dtype.itemsize))


def _takes_fused_simd(dtype, d, weighted):
    """Whether unweighted mse/logistic on dense X take _fused_rows_simd_loss_grad: rows of
    two to FUSED_VECTORS_MAX 512-bit vectors (wider than NARROW_D_MAX), where the CPU has
    AVX-512. In one process against the loops they replace, of the read (Intel Xeon VM): float64 10M x
    12 mse 0.46 -> 0.86, logistic 0.41 -> 0.76; 8M x 16 logistic 0.65 -> 0.79; 3.2M x 40
    0.73 -> 0.85; 2M x 64 0.89 -> 0.90; float32 6M x 20 mse 0.66 -> 0.87; 4M x 32 0.85 ->
    0.92, logistic 0.69 -> 0.78; 2M x 64 logistic 0.89 -> 0.98; 1.28M x 100 0.87 -> 0.95.
    mse at 2M x 64 against _fused_rows_loss_grad's two rows a step: 0.94 against 0.97 on
    that VM, but on the Intel Xeon (Emerald Rapids) VM, in one process, two runs each,
    float64 1.01-1.04 against 0.93-0.94 and float32 0.95 against 0.83-0.86."""
    vectors = _row_vectors(dtype, d)
    fits = vectors in FUSED_VECTORS and vectors <= FUSED_VECTORS_MAX[dtype.itemsize]
    return FUSED_SIMD and not weighted and d > NARROW_D_MAX and fits


def _line_shift(X):
    """Values of X before its start in its first 64-byte line, where its rows are whole
    lines (and FUSED_SHIFT): _simd.fused_rows_part then reads each row in windows of one
    line; else 0."""
    address, itemsize = X.ctypes.data, X.dtype.itemsize
    if not FUSED_SHIFT or (X.shape[1] * itemsize) % 64 or address % itemsize:
        return 0
    return address % 64 // itemsize


def _loss_grad(X, y, w, b, loss, sample_weight):
    n_threads = numba.get_num_threads()
    if sparse.issparse(X):
        return _csr_loss_grad(X, y, w, b, loss, sample_weight, n_threads)
    dtype = X.dtype
    n, d = X.shape
    n_tasks = _config.cpu_tasks(n, d * dtype.itemsize)
    sw, total = _sums.weights(sample_weight, n, dtype)
    if loss == "softmax":
        block = _config.cpu_block_rows(d, dtype.itemsize, softmax=True)
        Wt, b_t = _sums.softmax_coefficients(w, b, dtype)  # (k - 1 or k, d): small
        # Narrow rows: a tuple of d zeros, whose length fixes d when compiling, picks the
        # one-loop-per-class products; otherwise an empty tuple.
        narrow = (0.0,) * d if 2 <= d <= NARROW_SOFTMAX_D_MAX else ()
        simd = SOFTMAX_SIMD and not narrow
        rows = (0,) if simd and SCORE_ROWS and dtype.itemsize == 4 else ()
        if rows:  # float32 scores with the rows in the lanes: Wt transposed by pass
            Wg, wdot, dot = _score_rows_coefficients(Wt), np.zeros(d, dtype), ()
        else:
            Wg, wdot, dot = _group_coefficients(Wt, simd)
        value, grad_t, grad_b = _softmax_loss_grad(
            X,
            y,
            Wt,
            b_t,
            w.shape[1],
            sw,
            dtype.type(0),
            n_tasks,
            n_threads,
            block,
            AHEAD_LINES,
            narrow,
            SOFTMAX_SIMD,
            Wg,
            wdot,
            dot,
            rows,
        )
        return _sums.normalised(value, grad_t.T, grad_b, total, dtype, True)
    if d == 1 and ONE_FEATURE_SIMD and (loss == "mse" or sample_weight is None):
        if loss == "mse":
            has_sw = sw.shape[0] > 0
            sums = _mse_one_feature_simd(
                X.reshape(n), y, sw, float(w[0]), float(b), has_sw, n_tasks, n_threads
            )
        else:
            sums = _logistic_one_feature_simd(X.reshape(n), y, float(w[0]), float(b), n_tasks, n_threads)
        return _sums.normalised(*sums, total, dtype, False)
    if 2 <= d <= NARROW_D_MAX:
        wt = tuple(float(v) for v in w)  # its length fixes d when compiling
        sums = _narrow_loss_grad(X, y, wt, float(b), sw, LOSSES.index(loss), n_tasks, n_threads)
        return _sums.normalised(*sums, total, dtype, False)
    fused = _takes_fused_rows(dtype, d, loss, sample_weight is not None)
    contiguous = X.flags.c_contiguous and y.flags.c_contiguous  # as _simd.fused_rows_part takes them
    if contiguous and _takes_fused_simd(dtype, d, sample_weight is not None):
        shift = _line_shift(X)
        wp = np.zeros((_row_vectors(dtype, d) + 1) * (64 // dtype.itemsize), dtype)  # w at shift, 0 elsewhere
        wp[shift : shift + d] = w
        sums = _fused_rows_simd_loss_grad(
            X, y, wp, float(b), shift, int(loss == "logistic"), n_tasks, n_threads
        )
        return _sums.normalised(*sums, total, dtype, False)
    if fused:
        sums = _fused_rows_loss_grad(
            X, y, w, float(b), sw, LOSSES.index(loss), n_tasks, n_threads, FUSED_AHEAD // dtype.itemsize
        )
        return _sums.normalised(*sums, total, dtype, False)
    block = _config.cpu_block_rows(d, dtype.itemsize)
    narrow_sums = dtype.itemsize == 4  # float32 block sums go into float64 every block
    ahead = BLOCK_AHEAD_BYTES // 4 if dtype.itemsize == 4 and d * 4 <= BLOCK_AHEAD_MAX_ROW_BYTES else 0
    code = LOSSES.index(loss)
    zero = dtype.type(0)
    sums = _scalar_loss_grad(
        X, y, w, float(b), sw, code, zero, n_tasks, n_threads, block, narrow_sums, ahead=ahead
    )
    return _sums.normalised(*sums, total, dtype, False)


@numba.njit(cache=True, fastmath=_FASTMATH)
def _gd_step(w, g, lr, l1, l2):
    """In place on the flat views w, g: w <- soft_threshold(w - lr (g + 2 l2 w), lr l1)."""
    t = lr * l1
    for j in range(w.shape[0]):
        v = w[j] - lr * (g[j] + 2.0 * l2 * w[j])
        if v > t:
            w[j] = v - t
        elif v < -t:
            w[j] = v + t
        elif v == v:
            w[j] = 0.0
        else:  # NaN stays NaN: a diverging run must stay detectable
            w[j] = v


@numba.njit(cache=True, fastmath=_FASTMATH)
def _penalty(w, l1, l2):
    abs_sum = 0.0
    sq_sum = 0.0
    for j in range(w.shape[0]):
        v = np.float64(w[j])
        abs_sum += abs(v)
        sq_sum += v * v
    return l1 * abs_sum + l2 * sq_sum


def gd_step(w, grad_w, lr, l1, l2):
    _gd_step(w.reshape(-1), grad_w.reshape(-1), lr, l1, l2)
    return w


def penalty(w, l1, l2):
    return float(_penalty(w.reshape(-1), l1, l2))
