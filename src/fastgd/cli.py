"""Command line.

``fastgd demo``  the textbook example (y = 3x + noise fitted by gradient descent) on every
                 backend, with a plot of the points, the fitted line and the loss curve;
``fastgd bench`` times the fused loss_grad kernel on every backend;
``fastgd report BENCH.json`` tables (and a bar chart) from a pytest-benchmark JSON file.
"""

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
        f"X={args.n * args.d * dtype.itemsize / 1e6:,.0f} MB, median of {args.repeat} interleaved rounds"
    )
    print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    rows = _bench.kernel_table(args.n, args.d, args.loss, dtype, names, repeat=args.repeat, k=args.k)
    softmax = args.loss == "softmax"
    header = f"{'backend':<14} {'time [ms]':>10} {'GB/s':>8} {'of read':>8} {'vs numpy':>9}"
    print(header + (f" {'/ logistic':>11}" if softmax else ""))
    for name, sec, gbs, frac, speedup, logistic in rows:
        versus = f"{speedup:>8.2f}x" if speedup == speedup else f"{'-':>9}"  # NaN: numpy not run
        line = f"{name:<14} {sec * 1e3:>10.2f} {gbs:>8.2f} {frac:>8.2f} {versus}"
        if softmax:
            line += f" {logistic:>10.2f}x" if logistic == logistic else f" {'-':>11}"
        print(line)
    print("stream-read+y: a read of X and y in one pass, the bytes every loss_grad reads; its")
    print("'of read' is the most any backend could reach")
    if softmax:
        print("/ logistic: the time against the same backend's logistic loss_grad on the same X, timed")
        print("in the same rounds (median of the per-round ratios)")
    if "cuda" in names:
        print("of read: cuda and gpu-read against a read of X in GPU memory (gpu-read, X copied there")
        print("once, untimed); the CPU backends against a read of X in host memory (stream-read)")
    return 0


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def textbook_data(n=100, seed=0):
    """The textbook example: x ~ U(0, 1), y = 3 x + U(0, 1) noise."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    return x[:, None], 3.0 * x + rng.random(n)


def _demo(args):
    import time

    from . import _registry
    from .solvers import minimize

    X, y = textbook_data(args.n, args.seed)
    names = (
        args.backends.split(",")
        if args.backends
        else [b for b in _registry.available_backends() if b != "cuda" or _real_gpu()]
    )
    slope, intercept = np.polyfit(X[:, 0], y, 1)
    print(f"fastgd demo: {args.n} points, y = 3x + U(0,1) noise; gradient descent, lr={args.lr}")
    print(f"least squares (np.polyfit): y = {slope:.6f} x + {intercept:.6f}")
    print(f"{'backend':<8} {'fitted line':<28} {'iterations':>10} {'time [ms]':>10}")
    result = None
    for name in names:
        minimize(X, y, solver="gd", lr=args.lr, max_iter=5, backend=name)  # JIT warm-up, untimed
        start = time.perf_counter()
        result = minimize(X, y, solver="gd", lr=args.lr, max_iter=args.max_iter, tol=1e-8, backend=name)
        elapsed = time.perf_counter() - start
        line = f"y = {result.coef[0]:.6f} x + {float(result.intercept):.6f}"
        print(f"{name:<8} {line:<28} {result.n_iter:>10} {elapsed * 1e3:>10.2f}")
    if args.plot and result is not None:
        _demo_plot(X, y, result, args.plot)
    return 0


def _demo_plot(X, y, result, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: matplotlib is not installed; pip install fastgd[demo])")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.scatter(X[:, 0], y, s=12, alpha=0.7, label="data")
    grid = np.linspace(0.0, 1.0, 2)
    left.plot(grid, result.coef[0] * grid + result.intercept, "r-", lw=2,
              label=f"fit: y = {result.coef[0]:.3f} x + {float(result.intercept):.3f}")  # fmt: skip
    left.set(xlabel="x", ylabel="y", title="y = 3x + U(0,1) noise")
    left.legend()
    right.semilogy(result.history - result.history.min() + 1e-16)
    right.set(xlabel="iteration", ylabel="objective - final", title="gradient descent, mse loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")


def _report(args):
    from . import _report

    err = lambda message: print(message, file=sys.stderr)
    try:
        _report.report(args.json, png=args.png, md=args.md, out=print, err=err)
    except (OSError, ValueError) as exc:  # unreadable, not JSON, not pytest-benchmark's
        err(f"fastgd report: {exc}")
        return 2
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
    demo = sub.add_parser("demo", help="fit y = 3x + noise by gradient descent on each backend and plot it")
    demo.add_argument("--n", type=int, default=100, help="points (default 100)")
    demo.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    demo.add_argument("--max-iter", type=int, default=10_000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--backends", default=None, help="comma-separated (default: all available)")
    demo.add_argument("--plot", default="fastgd-demo.png", help="PNG path ('' for none)")
    demo.set_defaults(func=_demo)
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
    report = sub.add_parser(
        "report",
        help="markdown tables and a bar chart from a pytest-benchmark JSON file",
        description="Reads the file written by `pytest bench --benchmark-only --benchmark-json FILE` "
        "and prints one markdown table per benchmark group: kernel groups against the "
        "stream-read yardstick and numpy, solver groups against sklearn-lbfgs.",
    )
    report.add_argument("json", metavar="BENCH.json", help="pytest-benchmark JSON file")
    report.add_argument("--png", default=None, help="write a horizontal bar chart to this PNG")
    report.add_argument("--md", default=None, help="write the tables to this markdown file")
    report.set_defaults(func=_report)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
