"""A solver loop allocates nothing proportional to the number of samples per iteration.

tracemalloc sees every NumPy array (NumPy reports its data buffers to it) and every Python
object; it does not see what Numba's compiled kernels allocate internally (the NRT
allocator bypasses it), which is fine here: those are per-thread buffers of d floats, and
the question is whether the Python solver loop around the kernels makes arrays of n rows.

Two measurements per (backend, solver) on n = 100,000 x d = 8 float64 data:

- per iteration: the callback resets tracemalloc's peak after every iteration and reads
  it after the next, so each reading is what one iteration allocated above what was live
  when it began; the largest reading must stay below 5% of X and below one byte per row
  (one float64 per row would be 12.5% of X here; a boolean mask over the rows, 1.6%);
- per fit: the traced peak of a whole fit (validation and set-up included) must not grow
  between a short and a three times longer run (20 and 60 iterations; 2 and 6 epochs
  for sgd, whose epochs are n / batch_size steps each).
"""

import tracemalloc

import numpy as np
import pytest

import fastgd
from fastgd import _registry

N, D = 100_000, 8
L2 = 1e-3
# Fixed steps below 1/L (L ~ 25 here), so that no Lipschitz estimate runs: it is a one-off
# n-sized pass that would only blur the per-fit comparison. tol=0 and, for sgd,
# n_iter_no_change above max_iter keep every solver running for exactly max_iter
# iterations; lbfgs stops when scipy's own tests are met, after ~55 iterations here.
SOLVERS = {
    "gd": dict(lr=0.03),
    "nesterov": dict(lr=0.03),
    "fista": dict(lr=0.03),
    "lbfgs": dict(),
    "sgd": dict(lr=0.03, batch_size=256, schedule="constant", n_iter_no_change=1000, random_state=0),
}
# (short, long) max_iter per solver; an sgd iteration is an epoch of n / 256 = 391 steps.
ITERATIONS = {"sgd": (2, 6)}
DEFAULT_ITERATIONS = (20, 60)
BACKENDS = [
    pytest.param(
        name,
        id=name,
        marks=pytest.mark.skipif(not _registry.is_available(name), reason=f"backend {name} unavailable"),
    )
    for name in ("numba", "cython")
]


@pytest.fixture(scope="module")
def data():
    """Non-separable logistic data, labels from a noisy logistic model.

    Column scales spread over two decades make the problem ill-conditioned enough that
    lbfgs needs more than the short run's iterations.
    """
    rng = np.random.default_rng(7)
    scales = np.logspace(-1, 1, D)
    X = rng.standard_normal((N, D)) * scales
    z = X @ (rng.standard_normal(D) / scales) + 0.3
    y = (rng.random(N) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    return X, y


class IterationPeaks:
    """A minimize callback that records the traced peak of each iteration above its start."""

    def __init__(self):
        self.peaks = []
        self.start = None
        self.highest = 0  # the highest traced peak seen, set-up before the first call included

    def __call__(self, iteration, w, b, objective):
        peak = tracemalloc.get_traced_memory()[1]
        self.highest = max(self.highest, peak)
        if self.start is not None:
            self.peaks.append(peak - self.start)
        tracemalloc.reset_peak()
        self.start = tracemalloc.get_traced_memory()[0]
        return False


def traced_fit(X, y, backend, solver, max_iter):
    """(peak of the whole fit above the memory in use before it, per-iteration peaks, result)."""
    peaks = IterationPeaks()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    result = fastgd.minimize(
        X, y, loss="logistic", l2=L2, solver=solver, max_iter=max_iter, tol=0.0,
        backend=backend, callback=peaks, **SOLVERS[solver],
    )  # fmt: skip
    # The callback resets the peak: the fit's peak is the highest it saw or what the rest
    # of the fit (after the last iteration) reached.
    fit_peak = max(peaks.highest, tracemalloc.get_traced_memory()[1])
    return fit_peak - before, peaks.peaks, result


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_per_iteration_allocation_proportional_to_n(data, backend, solver):
    X, y = data
    # Warm-up, untraced: JIT compilation and first-call caches allocate once.
    fastgd.minimize(X[:1000], y[:1000], loss="logistic", solver=solver, max_iter=2, backend=backend,
                    **SOLVERS[solver])  # fmt: skip
    n_short, n_long = ITERATIONS.get(solver, DEFAULT_ITERATIONS)
    limit = min(0.05 * X.nbytes, N)  # 5% of X, and under one byte per row
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        short_peak, short_iters, short = traced_fit(X, y, backend, solver, n_short)
        long_peak, long_iters, long = traced_fit(X, y, backend, solver, n_long)
    finally:
        if not tracing:
            tracemalloc.stop()
    assert short.n_iter == n_short
    assert long.n_iter == n_long or (solver == "lbfgs" and n_short < long.n_iter <= n_long)
    assert len(short_iters) == short.n_iter and len(long_iters) == long.n_iter
    worst = max(short_iters + long_iters)
    assert worst < limit, (
        f"{solver} on {backend}: one iteration allocated {worst:,} bytes "
        f"(X is {X.nbytes:,} bytes, n = {N:,}); the limit is {limit:,.0f}"
    )
    # More iterations, same peak: a margin of 1% of X for the objective history and noise.
    assert long_peak <= short_peak + 0.01 * X.nbytes, (
        f"{solver} on {backend}: the fit's peak grew from {short_peak:,} bytes at "
        f"{short.n_iter} iterations to {long_peak:,} bytes at {long.n_iter}"
    )
