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

#: Threads per CUDA block (any size >= 1; the block reductions fold a non-power of two).
CUDA_THREADS_PER_BLOCK = 128

#: Upper bound on CUDA blocks per launch; each block walks its rows grid-stride and
#: owns one row of the per-block partial-gradient buffer, so this bounds its size.
CUDA_MAX_BLOCKS = 1024

#: Upper bound on the bytes of one CUDA launch's float64 scratch (per-block partial
#: gradients and per-thread residuals); with a large d*k fewer blocks are launched.
CUDA_SCRATCH_MAX_BYTES = 1 << 28

#: LLVM fast-math flags for Numba kernels: reassociation lets reductions vectorise.
#: 'nnan'/'ninf' are left out on purpose: non-finite results must stay detectable.
NUMBA_FASTMATH = frozenset({"reassoc", "nsz", "contract"})
