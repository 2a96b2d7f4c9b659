"""Command line: ``fastgd bench`` times the fused loss_grad kernel on every backend."""

import argparse
import os
import platform
import sys

import numpy as np


def _bench(args):
    from . import _bench, _registry

    available = _registry.available_backends()
    names = (
        args.backends.split(",") if args.backends else [b for b in available if b != "cuda" or _real_gpu()]
    )
    for name in names:
        _registry.load(name)  # unknown or unavailable -> clear error now
    dtype = np.dtype(args.dtype)
    print(
        f"fastgd bench: loss_grad, loss={args.loss}, n={args.n:,}, d={args.d}, dtype={dtype}, "
        f"X={args.n * args.d * dtype.itemsize / 1e6:,.0f} MB, median of {args.repeat}"
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    rows = _bench.kernel_table(args.n, args.d, args.loss, dtype, names, repeat=args.repeat, k=args.k)
    print(f"{'backend':<12} {'time [ms]':>10} {'GB/s':>8} {'of read':>8} {'vs numpy':>9}")
    for name, sec, gbs, frac, speedup in rows:
        print(f"{name:<12} {sec * 1e3:>10.2f} {gbs:>8.2f} {frac:>8.2f} {speedup:>8.2f}x")
    return 0


def _real_gpu():
    import numba

    if numba.config.ENABLE_CUDASIM:
        return False
    try:
        from numba import cuda
    except ImportError:
        return False
    return cuda.is_available()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastgd", description="fast gradient-descent training of linear models"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="time loss_grad on each backend against numpy and a plain read of X")
    bench.add_argument("--n", type=int, default=1_000_000, help="rows of X (default 1,000,000)")
    bench.add_argument("--d", type=int, default=64, help="columns of X (default 64)")
    bench.add_argument("--k", type=int, default=10, help="classes for --loss softmax (default 10)")
    bench.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    bench.add_argument("--loss", choices=["mse", "logistic", "softmax"], default="mse")
    bench.add_argument(
        "--backends", default=None, help="comma-separated, e.g. numpy,numba (default: all available)"
    )
    bench.add_argument("--repeat", type=int, default=5)
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
