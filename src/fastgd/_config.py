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

#: Threads per CUDA block. A power of two (block reductions halve it).
CUDA_THREADS_PER_BLOCK = 128

#: Upper bound on CUDA blocks per launch; each block walks its rows grid-stride and
#: owns one row of the per-block partial-gradient buffer, so this bounds its size.
CUDA_MAX_BLOCKS = 1024

#: LLVM fast-math flags for Numba kernels: reassociation lets reductions vectorise.
#: 'nnan'/'ninf' are left out on purpose: non-finite results must stay detectable.
NUMBA_FASTMATH = frozenset({"reassoc", "nsz", "contract"})
