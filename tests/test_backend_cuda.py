"""The CUDA backend on the Numba CUDA simulator, against the NumPy reference backend.

Blocks are shrunk (8 threads, at most 3 blocks) so that inputs of tens of rows span
several blocks and several grid-stride passes, which is where block-reduction bugs hide.
The simulator runs one Python thread per CUDA thread: sizes stay small on purpose.
"""

import contextlib
import os
import subprocess
import sys

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")  # before numba is imported (conftest does it too)

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgd import _config
from fastgd._registry import BackendUnavailableError

try:
    from fastgd.backends import cuda as cuda_backend
except BackendUnavailableError as exc:  # pragma: no cover - only without numba-cuda
    pytest.skip(f"cuda backend unavailable: {exc}", allow_module_level=True)

from numba import cuda

from fastgd.backends import _rowmath
from fastgd.backends import numpy as reference

LOSSES = ["mse", "logistic", "softmax"]
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-9, np.float32: 2e-4}
TPB, MAX_BLOCKS = 8, 3  # one grid-stride pass covers TPB * MAX_BLOCKS = 24 rows


@contextlib.contextmanager
def cuda_sizes(threads, blocks):
    """Set the CUDA launch sizes for a block of code (usable inside hypothesis tests)."""
    old = _config.CUDA_THREADS_PER_BLOCK, _config.CUDA_MAX_BLOCKS
    _config.CUDA_THREADS_PER_BLOCK, _config.CUDA_MAX_BLOCKS = threads, blocks
    try:
        yield
    finally:
        _config.CUDA_THREADS_PER_BLOCK, _config.CUDA_MAX_BLOCKS = old


@pytest.fixture(autouse=True)
def lanes_share_rows(monkeypatch):
    """Up to a warp of lanes per row here (conftest keeps one elsewhere, for speed)."""
    monkeypatch.setattr(_config, "CUDA_MAX_LANES_PER_ROW", 32)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", TPB)
    monkeypatch.setattr(_config, "CUDA_MAX_BLOCKS", MAX_BLOCKS)


def make_problem(rng, loss, n, d, dtype, k=3, weighted=False):
    """Validated-looking inputs, as the backends receive them."""
    X = rng.normal(size=(n, d)).astype(dtype)
    if loss == "softmax":
        y = rng.integers(0, k, size=n).astype(np.intp)
        w = rng.normal(size=(d, k)).astype(dtype)
        b = rng.normal(size=k).astype(dtype)
    else:
        y = rng.normal(size=n) if loss == "mse" else (rng.random(n) < 0.5).astype(float)
        y = y.astype(dtype)
        w = rng.normal(size=d).astype(dtype)
        b = 0.25
    sw = rng.uniform(0.1, 2.0, size=n).astype(dtype) if weighted else None
    return X, y, w, b, sw


def assert_close(actual, expected, rtol):
    """Elementwise rtol, with an absolute floor of rtol * max|expected| for entries that
    cancel to near zero (their summation order differs between backends)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=rtol * scale)


def assert_matches_reference(result, X, y, w, b, loss, sw):
    dtype = X.dtype.type
    value, grad_w, grad_b = result
    ref_value, ref_w, ref_b = reference.loss_grad(X, y, w, b, loss, sw)
    assert type(value) is float
    assert value == pytest.approx(ref_value, rel=RTOL[dtype])
    assert isinstance(grad_w, np.ndarray) and grad_w.dtype == dtype and grad_w.shape == w.shape
    assert_close(grad_w, ref_w, RTOL[dtype])
    if loss == "softmax":
        assert isinstance(grad_b, np.ndarray) and grad_b.dtype == dtype and grad_b.shape == (w.shape[1],)
    else:
        assert type(grad_b) is dtype
    assert_close(grad_b, ref_b, RTOL[dtype])


def to_host(a):
    return a.copy_to_host() if cuda_backend.is_device_array(a) else a


# ------------------------------------------------------------------------- loss_grad

# (n, d): one row and one feature; n not a multiple of TPB over several grid-stride
# passes (61 rows = 2.5 passes of 24); d > TPB so threads stride over features too;
# fewer rows than one block.
SHAPES = [(1, 1), (61, 3), (61, 1), (29, 20), (5, 9)]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"n{n}-d{d}" for n, d in SHAPES])
def test_loss_grad_matches_reference(small_blocks, rng, shape, loss, dtype, weighted):
    X, y, w, b, sw = make_problem(rng, loss, *shape, dtype, weighted=weighted)
    result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
    assert_matches_reference(result, X, y, w, b, loss, sw)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("k", [2, 5])
def test_softmax_class_counts(small_blocks, rng, k, dtype):
    X, y, w, b, sw = make_problem(rng, "softmax", 37, 4, dtype, k=k, weighted=True)
    assert_matches_reference(cuda_backend.loss_grad(X, y, w, b, "softmax", sw), X, y, w, b, "softmax", sw)


@pytest.mark.parametrize("loss", LOSSES)
def test_large_scores_stay_finite(small_blocks, rng, loss):
    """Scores of several hundreds: no overflow in exp (logistic, softmax)."""
    X, y, w, b, sw = make_problem(rng, loss, 30, 3, np.float64)
    w = w * 300.0
    result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
    assert np.isfinite(result[0]) and np.all(np.isfinite(result[1]))
    assert_matches_reference(result, X, y, w, b, loss, sw)


@pytest.mark.parametrize("register_kernel", [True, False], ids=["registers", "tiles"])
@pytest.mark.parametrize("loss", LOSSES)
def test_float32_data_accumulates_in_float64(small_blocks, rng, loss, register_kernel, monkeypatch):
    """float32 X gives the float64 results of its exact values, rounded only at the end.

    Scores of about 10 with the labels they predict make small losses that cancel
    (log(1 + e^z) - z): float32 scores would be off by ~1e-3 relative. (The NumPy reference
    computes X @ w in X's dtype, so it is run here on the float64 copies.)
    """
    monkeypatch.setattr(_config, "CUDA_REGISTER_KERNEL", register_kernel)
    X, y, w, b, sw = make_problem(rng, loss, 45, 4, np.float32, weighted=True)
    w = (w * 4.0).astype(np.float32)
    z = X.astype(np.float64) @ w.astype(np.float64) + b
    if loss == "logistic":
        y = (z > 0).astype(np.float32)
    elif loss == "softmax":
        y = np.argmax(z, axis=1).astype(np.intp)
    value, grad_w, grad_b = cuda_backend.loss_grad(X, y, w, b, loss, sw)
    y64 = y if loss == "softmax" else y.astype(np.float64)
    b64 = b.astype(np.float64) if loss == "softmax" else b
    ref_value, ref_w, ref_b = reference.loss_grad(
        X.astype(np.float64), y64, w.astype(np.float64), b64, loss, sw.astype(np.float64)
    )
    assert value == pytest.approx(ref_value, rel=1e-9)
    assert_close(grad_w, ref_w, 1e-6)  # float32 rounding of the result only
    assert_close(grad_b, ref_b, 1e-6)


def test_zero_weights_are_ignored(small_blocks, rng):
    X, y, w, b, sw = make_problem(rng, "logistic", 40, 3, np.float64, weighted=True)
    sw[::3] = 0.0
    kept = sw > 0
    full = cuda_backend.loss_grad(X, y, w, b, "logistic", sw)
    dropped = cuda_backend.loss_grad(X[kept], y[kept], w, b, "logistic", sw[kept])
    assert full[0] == pytest.approx(dropped[0], rel=1e-12)
    assert_close(full[1], dropped[1], 1e-12)


def test_inputs_are_not_modified(small_blocks, rng):
    X, y, w, b, sw = make_problem(rng, "softmax", 30, 4, np.float32, weighted=True)
    copies = [a.copy() for a in (X, y, w, b, sw)]
    cuda_backend.loss_grad(X, y, w, b, "softmax", sw)
    for before, after in zip(copies, (X, y, w, b, sw), strict=True):
        np.testing.assert_array_equal(before, after)


def test_read_only_X(small_blocks, rng):
    X, y, w, b, sw = make_problem(rng, "mse", 30, 3, np.float64)
    X.setflags(write=False)
    assert_matches_reference(cuda_backend.loss_grad(X, y, w, b, "mse", sw), X, y, w, b, "mse", sw)


def test_scratch_cap_reduces_blocks(small_blocks, rng, monkeypatch):
    """With the scratch budget of a single block, one block walks every tile."""
    assert cuda_backend._blocks(1000, TPB) == MAX_BLOCKS
    assert cuda_backend._blocks(1000, TPB, bytes_per_block=_config.CUDA_SCRATCH_MAX_BYTES) == 1
    monkeypatch.setattr(_config, "CUDA_SCRATCH_MAX_BYTES", 1)
    X, y, w, b, sw = make_problem(rng, "softmax", 50, 3, np.float64, weighted=True)
    assert_matches_reference(cuda_backend.loss_grad(X, y, w, b, "softmax", sw), X, y, w, b, "softmax", sw)


# The kernel paths of loss_grad, each forced through the sizes in fastgd._config: the
# register kernel (mse and logistic; softmax takes the tiles); tiles of several rows; tiles
# of one row (rows as wide as a tile); the row-group kernels (rows wider than a tile) with
# their accumulators in shared memory or in global scratch.
_NO_REGISTERS = {"CUDA_REGISTER_KERNEL": False}
PATHS = {
    "registers": {"CUDA_REGISTER_KERNEL": True},
    "tiles": _NO_REGISTERS,
    "one-row-tiles": _NO_REGISTERS,  # CUDA_TILE_BYTES: one row's bytes, set in the test
    "groups-shared-acc": {**_NO_REGISTERS, "CUDA_TILE_BYTES": 0},
    "groups-global-acc": {**_NO_REGISTERS, "CUDA_TILE_BYTES": 0, "CUDA_SHARED_MAX_BYTES": 0},
}


def spy_register_launches(monkeypatch):
    """A list that gets True for each loss_grad call served by the register kernel, False
    for each that fell through to the other kernels."""
    seen = []
    launch = cuda_backend._launch_registers

    def spy(*args):
        parts = launch(*args)
        seen.append(parts is not None)
        return parts

    monkeypatch.setattr(cuda_backend, "_launch_registers", spy)
    return seen


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("threads", "d"), [(64, 40), (32, 70), (48, 9), (12, 2), (8, 1)])
def test_every_kernel_path(rng, loss, path, threads, d, monkeypatch):
    """Each path against the reference, with groups of up to 32 lanes (a warp) per row,
    several groups per block, gradient entries fewer or more than the threads (kept in
    registers or added to the block's partial sums per tile) and a partial last tile."""
    k = 3 if loss == "softmax" else 1
    for name, value in PATHS[path].items():
        monkeypatch.setattr(_config, name, value)
    if path == "one-row-tiles":
        monkeypatch.setattr(_config, "CUDA_TILE_BYTES", 8 * (d + k) + 7)
    group = cuda_backend._group_size(d, threads)
    assert group == {40: 32, 70: 32, 9: 16, 2: 2, 1: 1}[d]
    if path != "registers":
        tile_rows = cuda_backend._tile_rows(23, d, k, threads)
        assert (tile_rows > 1) if path == "tiles" else tile_rows == {"one-row-tiles": 1}.get(path, 0)
    seen = spy_register_launches(monkeypatch)
    X, y, w, b, sw = make_problem(rng, loss, 23, d, np.float64, k=k, weighted=True)
    with cuda_sizes(threads, 2):
        result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
    assert_matches_reference(result, X, y, w, b, loss, sw)
    assert seen == ([] if path != "registers" or loss == "softmax" else [True])


# (threads, d): groups of 32 lanes with one, two and four slices of a row each (d = 128:
# as wide as the register kernel takes); 16 lanes on 9 columns; 4 lanes, the fewest that split
# the rows' scores by halving; 2 lanes and 1 lane, which compute every row on every lane;
# 96 threads: three warps, blocks not a power of two. n = 70 leaves a partial pass.
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
@pytest.mark.parametrize(
    ("threads", "d"), [(32, 23), (64, 64), (32, 128), (32, 9), (8, 4), (8, 2), (4, 1), (96, 40)]
)
def test_register_kernel(rng, loss, threads, d, weighted, monkeypatch):
    monkeypatch.setattr(_config, "CUDA_REGISTER_KERNEL", True)
    seen = spy_register_launches(monkeypatch)
    for dtype in DTYPES:
        X, y, w, b, sw = make_problem(rng, loss, 70, d, dtype, weighted=weighted)
        with cuda_sizes(threads, 2):
            result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
        assert_matches_reference(result, X, y, w, b, loss, sw)
    assert seen == [True, True]


def test_register_kernel_hands_wider_rows_to_the_tiles(rng, monkeypatch):
    """Rows wider than the lanes' registers hold, or block sums larger than shared
    memory, go to the tile kernel."""
    monkeypatch.setattr(_config, "CUDA_REGISTER_KERNEL", True)
    seen = spy_register_launches(monkeypatch)
    lanes = 32 * cuda_backend._REGISTER_SLICES
    for d, shared in [(lanes, 48 * 1024), (lanes + 1, 48 * 1024), (8, 64)]:
        monkeypatch.setattr(_config, "CUDA_SHARED_MAX_BYTES", shared)
        X, y, w, b, sw = make_problem(rng, "logistic", 9, d, np.float64)
        with cuda_sizes(32, 1):
            result = cuda_backend.loss_grad(X, y, w, b, "logistic", sw)
        assert_matches_reference(result, X, y, w, b, "logistic", sw)
    assert seen == [True, False, False]


def test_register_kernel_by_default_for_float64_and_wide_float32(rng, monkeypatch):
    """CUDA_REGISTER_KERNEL "auto" (the default) sends float64 X, and float32 X of at
    least CUDA_REGISTER_F32_D_MIN features, to the register kernel; narrower float32 X
    and softmax to the tiles. Any other setting than True, False and "auto" is refused."""
    monkeypatch.setattr(_config, "CUDA_REGISTER_KERNEL", "auto")
    monkeypatch.setattr(_config, "CUDA_REGISTER_F32_D_MIN", 6)
    seen = spy_register_launches(monkeypatch)
    cases = [
        (np.float64, 1, "mse"),
        (np.float32, 5, "logistic"),
        (np.float32, 6, "mse"),
        (np.float64, 3, "softmax"),
    ]
    for dtype, d, loss in cases:
        X, y, w, b, sw = make_problem(rng, loss, 9, d, dtype)
        with cuda_sizes(32, 1):
            result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
        assert_matches_reference(result, X, y, w, b, loss, sw)
    assert seen == [True, True]  # float64 d = 1 and float32 d = 6; never called for the others
    monkeypatch.setattr(_config, "CUDA_REGISTER_KERNEL", "yes")
    X, y, w, b, sw = make_problem(rng, "mse", 9, 2, np.float64)
    with pytest.raises(ValueError, match="CUDA_REGISTER_KERNEL"):
        cuda_backend.loss_grad(X, y, w, b, "mse", sw)


@pytest.mark.parametrize("loss", LOSSES)
def test_strided_device_X_takes_the_row_group_kernels(small_blocks, rng, loss):
    """A device X that is not C-contiguous cannot be read as one flat run of memory."""
    X, y, w, b, sw = make_problem(rng, loss, 20, 6, np.float64, weighted=True)
    wide = cuda.to_device(np.repeat(X, 2, axis=1))
    strided = wide[:, ::2]
    assert not strided.is_c_contiguous()
    b_arg = cuda.to_device(b) if loss == "softmax" else b
    result = cuda_backend.loss_grad(strided, y, w, b_arg, loss, sw)
    assert_matches_reference((result[0], to_host(result[1]), to_host(result[2])), X, y, w, b, loss, sw)


@pytest.mark.skipif(cuda_backend._ON_SIMULATOR, reason="register limits exist on a GPU only")
@pytest.mark.parametrize("loss", LOSSES)
def test_blocks_larger_than_the_registers_allow_are_capped(rng, loss):
    """1024 threads per block exceed the registers of the kernels: they still launch."""
    X, y, w, b, sw = make_problem(rng, loss, 3000, 40, np.float64, k=4, weighted=True)
    with cuda_sizes(1024, 8):
        for _ in range(2):  # before and after the kernel was compiled
            result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
            assert_matches_reference(result, X, y, w, b, loss, sw)


def test_scratch_is_reused_and_resized(small_blocks, rng):
    """Scratch buffers kept between calls: a call with other sizes in between, or on
    another thread, leaves the next result unchanged."""
    import threading

    first = make_problem(rng, "softmax", 31, 6, np.float64, k=4, weighted=True)
    other = make_problem(rng, "logistic", 50, 2, np.float32)
    want = cuda_backend.loss_grad(*first[:4], "softmax", first[4])
    assert_matches_reference(want, *first[:4], "softmax", first[4])
    cuda_backend.loss_grad(*other[:4], "logistic", other[4])
    again = cuda_backend.loss_grad(*first[:4], "softmax", first[4])
    assert again[0] == want[0]
    np.testing.assert_array_equal(again[1], want[1])
    np.testing.assert_array_equal(again[2], want[2])
    assert_matches_reference(
        cuda_backend.loss_grad(*other[:4], "logistic", other[4]), *other[:4], "logistic", other[4]
    )
    results = []
    worker = threading.Thread(
        target=lambda: results.append(cuda_backend.loss_grad(*first[:4], "softmax", first[4]))
    )
    worker.start()
    worker.join()
    np.testing.assert_array_equal(results[0][1], want[1])


@settings(max_examples=15)
@given(
    loss=st.sampled_from(LOSSES),
    n=st.integers(1, 50),
    d=st.integers(1, 12),
    k=st.integers(2, 4),
    threads=st.sampled_from([1, 3, 8, 12, 16]),  # not only powers of two
    blocks=st.integers(1, 3),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_launch_size_matches_reference(loss, n, d, k, threads, blocks, weighted, seed):
    X, y, w, b, sw = make_problem(np.random.default_rng(seed), loss, n, d, np.float64, k=k, weighted=weighted)
    with cuda_sizes(threads, blocks):
        result = cuda_backend.loss_grad(X, y, w, b, loss, sw)
    assert_matches_reference(result, X, y, w, b, loss, sw)


# ---------------------------------------------------------------- device-array inputs


def test_is_device_array():
    assert cuda_backend.is_device_array(cuda.to_device(np.zeros(3)))
    assert not cuda_backend.is_device_array(np.zeros(3))
    assert not cuda_backend.is_device_array([0.0, 1.0])
    assert not cuda_backend.is_device_array(1.5)

    class ForeignGPUArray:  # e.g. a CuPy array: known only by its interface
        __cuda_array_interface__ = {}

    assert cuda_backend.is_device_array(ForeignGPUArray())


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("loss", LOSSES)
def test_device_inputs_give_device_gradients(small_blocks, rng, loss, dtype):
    X, y, w, b, sw = make_problem(rng, loss, 43, 5, dtype, weighted=True)
    host = cuda_backend.loss_grad(X, y, w, b, loss, sw)
    b_dev = cuda.to_device(b) if loss == "softmax" else b
    dev = cuda_backend.loss_grad(
        cuda.to_device(X), cuda.to_device(y), cuda.to_device(w), b_dev, loss, cuda.to_device(sw)
    )
    value, grad_w, grad_b = dev
    assert type(value) is float
    assert cuda_backend.is_device_array(grad_w)
    assert tuple(grad_w.shape) == w.shape and np.dtype(grad_w.dtype) == dtype
    if loss == "softmax":
        assert cuda_backend.is_device_array(grad_b) and tuple(grad_b.shape) == (w.shape[1],)
    else:
        assert type(grad_b) is dtype
    # The same kernels ran on the same numbers: identical results.
    assert value == host[0]
    np.testing.assert_array_equal(grad_w.copy_to_host(), host[1])
    np.testing.assert_array_equal(to_host(grad_b), host[2])


@pytest.mark.parametrize("on_device", ["X", "y", "w", "sample_weight"])
def test_mixed_host_and_device_inputs(small_blocks, rng, on_device):
    X, y, w, b, sw = make_problem(rng, "logistic", 33, 4, np.float64, weighted=True)
    args = {"X": X, "y": y, "w": w, "sample_weight": sw}
    args[on_device] = cuda.to_device(args[on_device])
    value, grad_w, grad_b = cuda_backend.loss_grad(
        args["X"], args["y"], args["w"], b, "logistic", args["sample_weight"]
    )
    assert cuda_backend.is_device_array(grad_w) == (on_device == "w")
    assert_matches_reference((value, to_host(grad_w), grad_b), X, y, w, b, "logistic", sw)


@pytest.mark.parametrize("loss", LOSSES)
def test_device_inputs_are_not_copied_from_the_host(small_blocks, rng, monkeypatch, loss):
    """Device X, y, w and weights are used in place: nothing of their size crosses over."""
    X, y, w, b, sw = make_problem(rng, loss, 30, 4, np.float64, weighted=True)
    d_args = [cuda.to_device(a) for a in (X, y, w, sw)]
    b_arg = cuda.to_device(b) if loss == "softmax" else b
    copied = []
    real_to_device = cuda_backend.cuda.to_device

    def spy(a, *args, **kwargs):
        copied.append(np.shape(a))
        return real_to_device(a, *args, **kwargs)

    monkeypatch.setattr(cuda_backend.cuda, "to_device", spy)
    cuda_backend.loss_grad(d_args[0], d_args[1], d_args[2], b_arg, loss, d_args[3])
    # Nothing: the scalar intercept of mse/logistic is a kernel argument.
    assert copied == []


# ---------------------------------------------------------------- gd_step and penalty


def expected_step(w, g, lr, l1, l2):
    w64 = w.astype(np.float64)
    v = w64 - lr * (g.astype(np.float64) + 2.0 * l2 * w64)
    return np.sign(v) * np.maximum(np.abs(v) - lr * l1, 0.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(1,), (7,), (100,), (9, 4)])
@pytest.mark.parametrize(("l1", "l2"), [(0.0, 0.0), (0.5, 0.0), (0.0, 0.3), (0.5, 0.3)])
def test_gd_step_on_host_arrays(small_blocks, rng, shape, dtype, l1, l2):
    w = rng.normal(size=shape).astype(dtype)
    g = rng.normal(size=shape).astype(dtype)
    want = expected_step(w, g, 0.1, l1, l2)
    ref = reference.gd_step(w.copy(), g, 0.1, l1, l2)
    out = cuda_backend.gd_step(w, g, 0.1, l1, l2)
    assert out is w and w.dtype == dtype and w.shape == shape
    assert_close(w, want, RTOL[dtype])
    assert_close(w, ref, RTOL[dtype])
    np.testing.assert_array_equal(w == 0.0, want == 0.0)  # the threshold zeroes exactly
    if l1 > 0 and w.size >= 100:
        assert np.any(w == 0.0)


@pytest.mark.parametrize("grad_on_device", [True, False])
def test_gd_step_on_device_w_updates_in_place(small_blocks, rng, grad_on_device):
    w = rng.normal(size=(30, 2))
    g = rng.normal(size=(30, 2))
    w_dev = cuda.to_device(w)
    out = cuda_backend.gd_step(w_dev, cuda.to_device(g) if grad_on_device else g, 0.2, 0.1, 0.05)
    assert out is w_dev
    assert_close(w_dev.copy_to_host(), expected_step(w, g, 0.2, 0.1, 0.05), 1e-12)


def test_gd_step_host_w_device_grad(small_blocks, rng):
    w = rng.normal(size=20).astype(np.float32)
    g = rng.normal(size=20).astype(np.float32)
    want = expected_step(w, g, 0.1, 0.2, 0.0)
    assert cuda_backend.gd_step(w, cuda.to_device(g), 0.1, 0.2, 0.0) is w
    assert_close(w, want, RTOL[np.float32])


def test_public_gd_step_leaves_w_alone_on_the_device(small_blocks, rng):
    """fastgd.gd_step returns new weights where w lives; out=w updates in place."""
    import fastgd

    w = rng.normal(size=(12, 3))
    g = rng.normal(size=(12, 3))
    want = expected_step(w, g, 0.1, 0.2, 0.3)
    w_dev = cuda.to_device(w)
    new = fastgd.gd_step(w_dev, g, 0.1, 0.2, 0.3, backend="cuda")
    assert cuda_backend.is_device_array(new) and new is not w_dev
    assert_close(new.copy_to_host(), want, 1e-12)
    np.testing.assert_array_equal(w_dev.copy_to_host(), w)  # w untouched
    on_host = fastgd.gd_step(w, cuda.to_device(g), 0.1, 0.2, 0.3, backend="cuda")
    assert isinstance(on_host, np.ndarray)
    assert_close(on_host, want, 1e-12)
    assert fastgd.gd_step(w_dev, g, 0.1, 0.2, 0.3, out=w_dev, backend="cuda") is w_dev
    assert_close(w_dev.copy_to_host(), want, 1e-12)


def test_gd_step_keeps_nan_visible(small_blocks):
    """A NaN or inf is not thresholded to 0: a diverging run must stay detectable."""
    w = np.array([np.nan, 1.0, np.inf, -np.inf, 0.01])
    g = np.array([0.0, 0.0, 0.0, 0.0, np.nan])
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference
        ref = reference.gd_step(w.copy(), g, 0.1, 1.0, 0.0)
    cuda_backend.gd_step(w, g, 0.1, 1.0, 0.0)
    assert not np.any(np.isfinite(w[[0, 2, 3, 4]]))
    assert w[1] == pytest.approx(0.9)
    np.testing.assert_array_equal(np.isfinite(w), np.isfinite(ref))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("shape", [(1,), (7,), (100,), (13, 3)])
@pytest.mark.parametrize("on_device", [False, True], ids=["host", "device"])
def test_penalty(small_blocks, rng, shape, dtype, on_device):
    w = rng.normal(size=shape).astype(dtype)
    w64 = w.astype(np.float64)
    want = 0.3 * np.abs(w64).sum() + 0.7 * (w64 * w64).sum()
    got = cuda_backend.penalty(cuda.to_device(w) if on_device else w, 0.3, 0.7)
    assert type(got) is float
    assert got == pytest.approx(want, rel=1e-12)  # float64 accumulation, even for float32 w
    assert got == pytest.approx(reference.penalty(w, 0.3, 0.7), rel=1e-12)
    assert cuda_backend.penalty(w, 0.0, 0.0) == 0.0


@pytest.mark.parametrize("threads", [1, 5, 8])
def test_penalty_any_block_size(rng, threads):
    w = rng.normal(size=41)
    with cuda_sizes(threads, 2):
        got = cuda_backend.penalty(w, 1.0, 2.0)
    assert got == pytest.approx(np.abs(w).sum() + 2.0 * (w * w).sum(), rel=1e-12)


# ----------------------------------------------------------- shared per-sample maths


def test_device_helpers_are_compiled_from_rowmath_source():
    """The kernels use CUDA device functions compiled from _rowmath's Python source,
    not the njit dispatchers (calling those from kernels is undocumented)."""
    assert cuda_backend._scalar_loss_dz is not _rowmath.scalar_loss_dz
    assert cuda_backend._scalar_loss_dz.py_func.__code__ is _rowmath.scalar_loss_dz.py_func.__code__


def test_scalar_helpers_on_device_match_njit():
    z = np.array([-800.0, -30.0, -1.5, 0.0, 0.7, 30.0, 800.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    out = cuda.device_array((2, 2, z.size))

    @cuda.jit
    def kernel(z, y, out):
        i = cuda.grid(1)
        if i < z.size:
            for code in range(2):
                loss, dz = cuda_backend._scalar_loss_dz(code, z[i], y[i])
                out[code, 0, i] = loss
                out[code, 1, i] = dz

    kernel[2, 4](z, y, out)
    got = out.copy_to_host()
    for code in range(2):
        want = np.array([_rowmath.scalar_loss_dz(code, zi, yi) for zi, yi in zip(z, y, strict=True)]).T
        np.testing.assert_allclose(got[code], want, rtol=1e-15)
    assert np.all(np.isfinite(got))


def test_compile_with_njit_gives_the_same_functions():
    import numba

    funcs = _rowmath.compile_with(numba.njit)
    for code, z, y in [(0, 1.5, 0.5), (1, -3.0, 1.0), (1, 40.0, 0.0)]:
        assert funcs["scalar_loss_dz"](code, z, y) == _rowmath.scalar_loss_dz(code, z, y)
    assert funcs["mse_loss_dz"](2.0, 0.5) == _rowmath.mse_loss_dz(2.0, 0.5)


# ------------------------------------------------------------------------ availability

_NO_GPU_PROBE = r"""
import json
import numba
from numba import cuda
if cuda.is_available():
    print(json.dumps({"gpu": True}))
else:
    from fastgd._registry import BackendUnavailableError
    try:
        import fastgd.backends.cuda
        print(json.dumps({"gpu": False, "raised": None}))
    except BackendUnavailableError as exc:
        print(json.dumps({"gpu": False, "raised": str(exc)}))
"""


def test_unavailable_without_gpu_or_simulator():
    import json

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run(
        [sys.executable, "-c", _NO_GPU_PROBE], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    if answer["gpu"]:
        pytest.skip("a CUDA GPU is present: the backend is available for real")
    assert answer["raised"] is not None, "importing the backend without a GPU must raise"
    assert "no CUDA GPU" in answer["raised"] and "NUMBA_ENABLE_CUDASIM=1" in answer["raised"]


def test_kernel_timing_script_runs_every_variant():
    """bench/cuda_kernels.py (the kernel-only timings for a GPU) runs on the simulator with
    a few rows: both kernels of a case, each matching the numpy backend."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "cuda_kernels.py")
    args = ["--scale", "0.000003", "--reps", "1", "--threads", "32", "--cases", "0", "--dtypes", "float64"]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    variants = [line for line in lines if "threads: call" in line]
    assert [line.split()[0] for line in variants] == ["register", "tiles/groups"]
    assert all(float(line.rsplit("difference", 1)[1]) < 1e-12 for line in variants)
    assert any(line.startswith("launch path") for line in lines)
