"""Dynamic scheduling for the numba kernels: tasks handed to threads as they come free.

A parallel kernel splits its rows into ``n_tasks`` contiguous ranges (``_config.cpu_tasks``)
and runs ``for _ in numba.prange(n_threads): for c in tasks(counter, n_tasks): ...`` with
``counter = np.zeros(1, np.int64)`` made before the loop: each thread takes the next task
number from the shared counter (one atomic add) until none are left, and writes task c's
sums to row c of its buffers. numba's own prange hands each thread a fixed share up front,
so a thread that the machine slows holds up the whole call.
"""

import numba
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def next_task(typingctx, counter):
    """counter[0] += 1 as one atomic add (int64 array); returns the value before it."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen


@numba.njit  # not cache=True: a kernel compiled in a later process against a cached generator
# failed to find the generator's implementation (KeyError in numba's get_generator_impl)
def tasks(counter, n_tasks):
    """The task numbers below n_tasks that this thread takes from counter, one at a time."""
    while True:
        c = next_task(counter)
        if c >= n_tasks:
            return
        yield c
