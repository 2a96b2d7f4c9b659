"""Tunables of fastgd, in one place.

Everything here is read at call time, so tests and users may change a value on the
module (``fastgd._config.CUDA_THREADS_PER_BLOCK = 32``) and the next call uses it.
"""

#: Names of the losses, in the order of their integer codes used by compiled kernels.
LOSSES = ("mse", "logistic", "softmax")
MSE, LOGISTIC, SOFTMAX = 0, 1, 2

#: Preference order for the default backend: the first one available wins.
CPU_BACKEND_PREFERENCE = ("cython", "numba", "numpy")

#: Environment variable naming the default backend.
BACKEND_ENV_VAR = "FASTGD_BACKEND"

#: Rows of float64 X the CPU kernels process as one block: the block's scores, then its
#: losses (vectorised over the block), then its gradient update while its rows are still in
#: the L1 cache. Small blocks keep the phases short, so the next rows' reads from memory
#: start soon after the last ones ended (16 measured best on this project's first 2-core
#: test machine, an AMD EPYC). float32 blocks take as many bytes, twice the rows: on the
#: Intel Xeon test VM, 2M x 64 float32, in one process, 16 -> 32 rows: mse cython 0.56 ->
#: 0.69 of the read, numba 0.61 -> 0.65; logistic 0.51 -> 0.62-0.63 and 0.56-0.57 -> 0.60.
CPU_BLOCK_ROWS = 16
#: Rows per block of the softmax kernels, which are bound by their arithmetic (k score and
#: gradient multiply-adds per value of X), not by the reads: longer blocks make longer loops
#: over the block's rows in the per-class softmax steps and fewer of each block's fixed
#: costs (2,000,000 x 64, k = 10, 128 rows against 16: float64 numba 143 -> 129 ms, cython
#: 130 -> 126 ms; float32 100 -> 87 and 123 -> 98 ms, in one process). The gradient panels
#: have a case compiled for this stride (kernels/fastgd_tiles.h, FGD_PANEL_LDR, and
#: _simd.PANEL_LDR; other values run a slower case).
CPU_SOFTMAX_BLOCK_ROWS = 384
#: ... but fewer where CPU_SOFTMAX_BLOCK_ROWS rows would hold more than
#: CPU_SOFTMAX_BLOCK_BYTES of X, down to CPU_SOFTMAX_BLOCK_ROWS_MIN rows: 384 rows against
#: 128 took numba's float32 softmax at 2M x 64 (96 KB a block) 1.03-1.05x faster, but
#: float64 at 500,000 x 256 (768 KB a block) 1.06x slower (the README's fifth AMD EPYC
#: session).
CPU_SOFTMAX_BLOCK_BYTES = 128 * 1024
CPU_SOFTMAX_BLOCK_ROWS_MIN = 128
#: ... and for float64 X at most this many bytes, down to this many rows: a block in L1
#: (48 KiB on the Intel Xeon test VM) with its class scores, so that the gradient's panels
#: read its rows from L1 and the next block's lines asked for along the way are fewer. 64
#: rows at 2M x 64 against 256 (128 KiB), in one process, rounds interleaved, at a quiet
#: time: Cython 0.944x the time, numba 0.949x (200,000 x 64: 0.948x / 0.965x); 500,000 x
#: 256 (64 rows against 128) 0.973x / 0.986x; 4M x 32 (128 rows against 384) 0.992x /
#: 0.966x; in a slow spell 0.95x-1.00x. float32 at 2M x 64, 128 rows against 384: Cython
#: 0.96x-0.97x, numba 0.97x-1.03x, so float32 keeps its blocks. (float64 blocks then take
#: the gradient panels' case for any stride, as fast for float64 as the compiled one:
#: numba's panels in L2 0.99x-1.00x its time.)
CPU_SOFTMAX_F64_BLOCK_BYTES = 32 * 1024
CPU_SOFTMAX_F64_BLOCK_ROWS_MIN = 64
#: ... but at most this many bytes of X per block (wide rows), so the block stays in the
#: 1 MB L2 cache. 768 KB keeps 16 rows at d = 5,000 float64 (20,000 x 5,000 softmax,
#: k = 10: 129 -> 94 ms against 6 rows under a 256 KB cap; logistic 0.69 -> 0.79 of the read).
CPU_BLOCK_MAX_BYTES = 768 * 1024

#: The CPU kernels split X's rows into tasks, contiguous ranges that each sum into their
#: own row of float64 sums; the threads take the tasks one at a time, the next free one
#: whenever a thread is done (OpenMP's dynamic schedule in Cython, an atomic counter in
#: numba, backends/_tasks.py). A thread that the machine slows (another process on its
#: core, a VM's stolen time) then takes fewer tasks instead of holding up the call, and
#: since the tasks depend on X alone and their sums are added in task order, results are
#: the same to the bit with any number of threads. One task per CPU_TASK_BYTES of X
#: (numba's softmax at 2M x 64 float32 on the shared 2-core Intel Xeon VM, against one
#: chunk a thread, both in one process, rounds interleaved: 64 tasks, 2,500 rounds, median
#: 34.4 -> 34.4 ms, 90th percentile 44.9 -> 40.3 ms; these 123 tasks, 200 rounds, 36.1 ->
#: 35.8 and 48.2 -> 43.0; 600 quiet rounds, 33.8 -> 34.1 and 37.7 -> 36.8; the logistic
#: at 2M x 64 and 10M x 1 and mse at 20,000 x 5,000 within 2% of the old medians), ...
CPU_TASK_BYTES = 4 << 20
#: ... at least CPU_TASKS_MIN where each still reads CPU_TASK_MIN_BYTES (small X keeps its
#: threads), at most CPU_TASKS_MAX, and at least CPU_TASK_MIN_ROWS rows a task where X
#: has them (wide rows: each task's float64 sums are one gradient, d values, so that many
#: rows keep them below 1/128 of what the task reads).
CPU_TASKS_MIN = 8
CPU_TASK_MIN_BYTES = 64 << 10
CPU_TASKS_MAX = 1024
CPU_TASK_MIN_ROWS = 256


def cpu_tasks(n, row_bytes):
    """Tasks of the CPU kernels for n rows of about row_bytes bytes each (see
    CPU_TASK_BYTES): a function of X's size alone, never of the thread count."""
    total = int(n) * max(1, int(row_bytes))
    tasks = max(-(-total // int(CPU_TASK_BYTES)), min(int(CPU_TASKS_MIN), total // int(CPU_TASK_MIN_BYTES)))
    tasks = min(tasks, max(1, int(n) // int(CPU_TASK_MIN_ROWS)))
    return max(1, min(tasks, int(CPU_TASKS_MAX), int(n)))


def cpu_block_rows(d, itemsize, softmax=False):
    """Rows per block of the CPU kernels for X with d features of itemsize bytes:
    CPU_BLOCK_ROWS scaled to the same bytes as float64 rows (softmax: CPU_SOFTMAX_BLOCK_ROWS,
    fewer for wider rows, see CPU_SOFTMAX_BLOCK_BYTES and, for float64,
    CPU_SOFTMAX_F64_BLOCK_BYTES), at most CPU_BLOCK_MAX_BYTES of X.
    (mse and logistic on narrow X, d up to 7 or 8, take a one-pass loop with no blocks.)"""
    rows = int(CPU_BLOCK_ROWS) * 8 // itemsize
    if softmax:
        cap, least = CPU_SOFTMAX_BLOCK_BYTES, CPU_SOFTMAX_BLOCK_ROWS_MIN
        if itemsize == 8:
            cap, least = CPU_SOFTMAX_F64_BLOCK_BYTES, CPU_SOFTMAX_F64_BLOCK_ROWS_MIN
        fit = max(int(least), int(cap) // (d * itemsize))
        rows = min(int(CPU_SOFTMAX_BLOCK_ROWS), fit)
    return max(1, min(int(rows), int(CPU_BLOCK_MAX_BYTES) // (d * itemsize)))


#: Threads per CUDA block (any size >= 1; the block reductions fold a non-power of two).
CUDA_THREADS_PER_BLOCK = 128

#: Upper bound on CUDA blocks per launch; each block walks its rows grid-stride and
#: owns one row of the per-block partial-gradient buffer, so this bounds its size.
CUDA_MAX_BLOCKS = 1024

#: Upper bound on the bytes of one CUDA launch's float64 scratch (per-block partial
#: gradients and per-thread residuals); with a large d*k fewer blocks are launched.
CUDA_SCRATCH_MAX_BYTES = 1 << 28

#: Shared memory a CUDA block may take (the most a block gets without opting in).
CUDA_SHARED_MAX_BYTES = 48 * 1024

#: Most CUDA lanes that share the reading of one row (at most 32, a warp). The tests on the
#: CUDA simulator use 1 except where they test the lanes' sums: the simulator adds them
#: through block barriers, which it runs slowly.
CUDA_MAX_LANES_PER_ROW = 32

#: Bytes of one tile of X's rows (held as float64, with their residuals) that a CUDA block
#: copies into shared memory at a time; rows wider than this take the row-group kernels.
CUDA_TILE_BYTES = 32 * 1024

#: Which mse and logistic calls on C-ordered X take the CUDA register kernel (rows of up
#: to 4 x 32 features held in registers, no shared-memory tiles) instead of the tile
#: kernel: True (every one whose rows fit), False (none), or "auto": float64 X, and
#: float32 X of at least CUDA_REGISTER_F32_D_MIN features. Measured on an H100, kernel
#: alone: float64 2,000,000 x 64 logistic 0.76 ms against 1.16 ms, x 128 0.89 against
#: 1.82; float32 x 64 and x 128 as fast or faster, but d = 1 and d = 4 slower (0.34 and
#: 0.20 ms against 0.28 and 0.16). ``pytest bench --benchmark-only -k cuda`` times both.
CUDA_REGISTER_KERNEL = "auto"
CUDA_REGISTER_F32_D_MIN = 64

#: LLVM fast-math flags for Numba kernels: reassociation lets reductions vectorise.
#: 'nnan'/'ninf' are left out on purpose: non-finite results must stay detectable.
NUMBA_FASTMATH = frozenset({"reassoc", "nsz", "contract"})
