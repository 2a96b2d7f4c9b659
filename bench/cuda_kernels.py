"""The cuda backend's kernels, each variant beside a streaming read of X on the GPU.

Run on a machine with a GPU: ``python bench/cuda_kernels.py`` (about a minute; options:
``--help``). For each case it prints the read's time, then for the register kernel and
the tile kernel (where they apply) at each block size: the time of a whole ``loss_grad``
call and of the main kernel alone (launched ``--reps`` times back to back, without
``_finish`` and the copies back), each also as a fraction of the read, and the largest
relative difference from the numpy backend. Then the time of a call on small data (the
launch path) and the registers and local memory of each compiled kernel. X, y and w are
in GPU memory before timing, as in ``pytest bench --benchmark-only -k cuda``; this script
adds the kernel-only times and the block sizes, from which ``_config``'s CUDA defaults
are chosen. With ``NUMBA_ENABLE_CUDASIM=1`` it runs on the simulator (use ``--scale
0.00001``: for checking the script only).
"""

import argparse
import os
import time

import numba
import numpy as np
from numba import cuda

from fastgd import _bench, _config, _registry

CASES = [
    (2_000_000, 64, "mse"),
    (2_000_000, 64, "logistic"),
    (2_000_000, 64, "softmax"),
    (10_000_000, 1, "mse"),
    (10_000_000, 1, "logistic"),
    (2_500_000, 4, "logistic"),
    (2_000_000, 128, "logistic"),
    (20_000, 5_000, "logistic"),
]


def seconds(fn, reps, pipelined=False):
    """Median seconds of fn() waited for each time, or (pipelined) the mean over reps
    launches back to back with one wait at the end."""
    fn()
    cuda.synchronize()
    if pipelined:
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        cuda.synchronize()
        return (time.perf_counter() - start) / reps
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def largest_difference(got, want):
    value, grad_w = got[0], got[1]
    grad_w = grad_w.copy_to_host() if hasattr(grad_w, "copy_to_host") else grad_w
    return max(
        abs(value - want[0]) / abs(want[0]), float(np.max(np.abs(grad_w - want[1])) / np.max(np.abs(want[1])))
    )


def run_case(cb, ref, n, d, loss, dtype, threads, reps):
    X, y, w, b = _bench.make_data(n, d, loss, dtype)
    want = ref.loss_grad(X, y, w, b, loss, None)
    X_d, y_d, w_d = (cb.device_copy(a) for a in (X, y, w))
    b_d = cb.device_copy(b) if np.ndim(b) else b
    read = seconds(lambda: cb.stream_read(X_d), reps)
    print(
        f"{n:,} x {d:,} {loss} {dtype}: read {read * 1e3:.3f} ms ({X.nbytes / read / 1e9:.0f} GB/s)",
        flush=True,
    )
    code = _config.LOSSES.index(loss)
    k = w.shape[1] if loss == "softmax" else 1
    no_weights = cb._scratch("no_weights", 1, X_d.dtype)
    for register in (True, False):
        if register and (loss == "softmax" or d > 32 * cb._REGISTER_SLICES):
            continue
        _config.CUDA_REGISTER_KERNEL = register
        for tpb in threads:
            _config.CUDA_THREADS_PER_BLOCK = tpb
            call = lambda: cb.loss_grad(X_d, y_d, w_d, b_d, loss, None)
            difference = largest_difference(call(), want)
            call_s = seconds(call, reps)
            main = lambda: cb._launch_main(X_d, y_d, w_d, b_d, no_weights, False, code, k)
            kernel_s = seconds(main, reps, pipelined=True)
            name = "register" if register else "tiles/groups"
            print(
                f"  {name:12s} {tpb:4d} threads: call {call_s * 1e3:7.3f} ms ({read / call_s:.2f} of read),"
                f" kernel {kernel_s * 1e3:7.3f} ms ({read / kernel_s:.2f}), difference {difference:.1e}",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every case's row count")
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--threads", default="128,256,512", help="threads per block to try, comma-separated")
    parser.add_argument("--cases", default=None, help="indices into CASES, comma-separated (default: all)")
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args()
    cb = _registry.load("cuda")
    ref = _registry.load("numpy")
    if not numba.config.ENABLE_CUDASIM:
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else device.name
        sms = device.MULTIPROCESSOR_COUNT
        print(f"{name}, {sms} multiprocessors; numba {numba.__version__}, numpy {np.__version__}")
    cases = CASES if args.cases is None else [CASES[int(i)] for i in args.cases.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    saved = _config.CUDA_REGISTER_KERNEL, _config.CUDA_THREADS_PER_BLOCK
    try:
        for dtype in args.dtypes.split(","):
            for n, d, loss in cases:
                run_case(cb, ref, max(1, int(n * args.scale)), d, loss, dtype, threads, args.reps)
    finally:
        _config.CUDA_REGISTER_KERNEL, _config.CUDA_THREADS_PER_BLOCK = saved
    X, y, w, b = _bench.make_data(40 if numba.config.ENABLE_CUDASIM else 1000, 64, "logistic", "float64")
    X_d, y_d, w_d = (cb.device_copy(a) for a in (X, y, w))
    small = seconds(lambda: cb.loss_grad(X_d, y_d, w_d, b, "logistic", None), args.reps)
    print(f"launch path: loss_grad on {X.shape[0]:,} x 64 device arrays {small * 1e6:.0f} us a call")
    if not numba.config.ENABLE_CUDASIM:
        for kernel in (cb._loss_grad_registers, cb._loss_grad_tiles, cb._softmax_tiles, cb._loss_grad_groups):
            for signature, regs in kernel.get_regs_per_thread().items():
                local = kernel.get_local_mem_per_thread(signature)
                name = kernel.py_func.__name__
                print(f"{name}({signature[0]}): {regs} registers, {local} bytes of local memory")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
