"""Every backend's fused loss_grad against the independent reference in tests/naive.py."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastgd

from naive import RTOL, assert_matches_naive, make_problem
from naive import loss_grad as naive_loss_grad

LOSSES = ["mse", "logistic", "softmax"]


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_independent_reference(backend, loss, dtype, weighted, intercept, rng):
    X, y, w, b, sw = make_problem(rng, 203, 9, loss, dtype, k=4, weighted=weighted, intercept=intercept)
    result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
    assert_matches_naive(result, X, y, w, b, loss, sw, RTOL[dtype])


@pytest.mark.parametrize("k", [2, 4, 5, 7, 10])
@pytest.mark.parametrize("n,d", [(1, 1), (5, 3), (6, 4), (35, 9), (35, 16), (18, 70)], ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_softmax_tile_edges(backend, n, d, k, dtype, rng, monkeypatch):
    """The CPU softmax kernels score k - 1 classes relative to the last one (k = 2, 5, 7, 10:
    1, 4, 6, 9 score rows, with 1, 0, 2, 1 classes outside the tiles of four) or, for k a
    multiple of four, all k classes (k = 4), in tiles of four rows by four classes; row
    counts with one to three left over, several blocks of rows (16 rows a block here), and
    widths below and above a vector, whole vectors among them (d = 4, 16: the tiles' sums
    across lanes all at once); all against the reference."""
    if backend == "cuda" and (k, n) != (10, 35):
        pytest.skip("the simulator runs one shape here; the CUDA kernel has no tiles")
    from fastgd import _config

    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_ROWS", 16)
    X, y, w, b, sw = make_problem(rng, n, d, "softmax", dtype, k=k, weighted=True)
    result = fastgd.loss_grad(X, y, w, b, loss="softmax", sample_weight=sw, backend=backend)
    assert_matches_naive(result, X, y, w, b, "softmax", sw, RTOL[dtype])
    unweighted = fastgd.loss_grad(X, y, w, b, loss="softmax", backend=backend)
    assert_matches_naive(unweighted, X, y, w, b, "softmax", None, RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_row_scores_widths(backend, loss, dtype, rng):
    """Rows of four vectors or more take the Cython one-row scores with four vector sums
    (fastgd_tiles_impl.h's fgd_row_scores), shorter ones gcc's loop: widths either side of
    four vectors (32 float64, 64 float32), with a vector and values left over after the
    four-vector steps, against the reference, weighted and not. (With AVX-512, rows up to
    64 float64 or 128 float32 values take fastgd_fused_rows.c instead.)"""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    for d in (31, 32, 33, 40, 63, 64, 65, 79, 100, 129):
        X, y, w, b, sw = make_problem(rng, 101, d, loss, dtype, weighted=True)
        for weights in (sw, None):
            result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=weights, backend=backend)
            assert_matches_naive(result, X, y, w, b, loss, weights, tight)


def test_softmax_block_rows_match_the_compiled_panel_stride():
    """The Cython and Numba softmax gradient panels have a case compiled for one residual
    stride, the default softmax block (any other runs correctly, on a slower case): they
    agree."""
    from fastgd import _config
    from fastgd.backends import _simd

    assert _config.CPU_SOFTMAX_BLOCK_ROWS == _simd.PANEL_LDR
    assert _config.cpu_block_rows(64, 4, softmax=True) == _simd.PANEL_LDR  # 2M x 64 float32
    cython_kernels = pytest.importorskip("fastgd.backends._cython_kernels")
    assert _config.CPU_SOFTMAX_BLOCK_ROWS == cython_kernels.PANEL_LDR


def test_softmax_blocks_shrink_for_wide_rows(monkeypatch):
    """A softmax block holds CPU_SOFTMAX_BLOCK_ROWS rows while they fit in
    CPU_SOFTMAX_BLOCK_BYTES (float64: CPU_SOFTMAX_F64_BLOCK_BYTES), fewer rows (down to
    CPU_SOFTMAX_BLOCK_ROWS_MIN, float64 CPU_SOFTMAX_F64_BLOCK_ROWS_MIN) for wider ones,
    and never more than CPU_BLOCK_MAX_BYTES of X."""
    from fastgd import _config

    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_ROWS", 384)
    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_BYTES", 128 * 1024)
    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_ROWS_MIN", 128)
    monkeypatch.setattr(_config, "CPU_SOFTMAX_F64_BLOCK_BYTES", 32 * 1024)
    monkeypatch.setattr(_config, "CPU_SOFTMAX_F64_BLOCK_ROWS_MIN", 64)
    monkeypatch.setattr(_config, "CPU_BLOCK_MAX_BYTES", 768 * 1024)
    # (d, itemsize): rows; 384 float32 rows fit in 128 KB up to 341 bytes a row, float64
    # rows fill 32 KB from 85 bytes a row, down to 64 rows from 512 bytes
    expected = {
        (1, 4): 384,
        (64, 4): 384,
        (100, 4): 327,
        (400, 4): 128,
        (1, 8): 384,
        (16, 8): 256,
        (64, 8): 64,
        (200, 8): 64,
        (5_000, 8): 19,
    }
    for (d, itemsize), rows in expected.items():
        assert _config.cpu_block_rows(d, itemsize, softmax=True) == rows, (d, itemsize)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_numba_softmax_without_vector_code(dtype, rng, monkeypatch):
    """Where the CPU has no AVX-512 the Numba softmax kernel keeps its tiles and loops
    (numba.SOFTMAX_SIMD false): they still match the reference, weighted and not."""
    from fastgd.backends import numba as numba_backend

    monkeypatch.setattr(numba_backend, "SOFTMAX_SIMD", False)
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    for k, d in [(2, 9), (3, 16), (10, 64), (13, 33)]:
        X, y, w, b, sw = make_problem(rng, 300, d, "softmax", dtype, k=k, weighted=True)
        for weights in (sw, None):
            result = fastgd.loss_grad(X, y, w, b, loss="softmax", sample_weight=weights, backend="numba")
            assert_matches_naive(result, X, y, w, b, "softmax", weights, tight)


@pytest.mark.parametrize("block", [384, 16], ids=["default-block", "block-16"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_softmax_gradient_panels(backend, dtype, block, rng, monkeypatch):
    """The softmax kernels' block steps with AVX-512 (Cython: kernels/fastgd_tiles_impl.h,
    fastgd_score_groups.h, fastgd_score_rows.h, fastgd_softmax_steps.h; Numba: _simd.py):
    the gradient panels of classes by two or four vectors of columns, the scores by groups
    of eight classes (float32: eight classes by two columns; on AMD Zen sixteen rows in the
    lanes, in passes of at most ten classes) and the softmax steps on vectors of rows, two
    a step. k = 2 .. 150: one scored class (dot products alone), a part of a group, one
    whole group, a group and a class by dot products (k = 10), two groups (one partial), two
    groups and a dot class, three and more groups (and passes), and more classes than the
    steps keep their sums of residuals for on the stack; widths with whole vectors, a partial one,
    several panels, and 1,501 columns; blocks that leave a partial tile of rows; the
    residuals' stride the compiled one (384 rows a block) and another (16). Weighted and
    not, against the reference."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    from fastgd import _config

    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_ROWS", block)
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    cases = [(k, d) for k in (2, 3, 9, 10, 11, 17, 18, 27, 150) for d in (9, 16, 17, 31, 33, 64, 70)]
    for k, d in cases + [(10, 1_501)]:  # and wide rows, fewer of them a block
        X, y, w, b, sw = make_problem(rng, 300, d, "softmax", dtype, k=k, weighted=True)
        for weights in (sw, None):
            result = fastgd.loss_grad(X, y, w, b, loss="softmax", sample_weight=weights, backend=backend)
            assert_matches_naive(result, X, y, w, b, "softmax", weights, tight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_softmax_long_blocks(backend, dtype, rng, monkeypatch):
    """Blocks of 600 rows: the float32 softmax steps add their float32 sums of residuals
    into float64 every 16 tiles of 16 rows (kernels/fastgd_softmax_steps.h, numba's
    _simd.softmax_steps), so a block's steps fold them twice and at the end; against the
    reference, weighted and not."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    from fastgd import _config

    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_ROWS", 600)
    monkeypatch.setattr(_config, "CPU_SOFTMAX_BLOCK_ROWS_MIN", 600)
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    X, y, w, b, sw = make_problem(rng, 1_300, 64, "softmax", dtype, k=10, weighted=True)
    for weights in (sw, None):
        result = fastgd.loss_grad(X, y, w, b, loss="softmax", sample_weight=weights, backend=backend)
        assert_matches_naive(result, X, y, w, b, "softmax", weights, tight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_softmax_logarithms_carried_across_blocks(backend, dtype, rng):
    """Unweighted, the AVX-512 softmax steps multiply each row's 1 + rest into per-lane
    products that run on from block to block and are folded into logarithms every
    1000 / log2(k) tiles (k = 150: 138): 12,000 rows of 384-row blocks, several folds and
    blocks between them, and rows whose rest is below 2**-20 (one class far ahead: their
    log1p as a series); against the reference."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    X, y, w, b, _ = make_problem(rng, 12_000, 9, "softmax", dtype, k=150)
    w[0, 3] += dtype(40.0)  # class 3 far ahead where the first column is well above 0
    result = fastgd.loss_grad(X, y, w, b, loss="softmax", backend=backend)
    assert_matches_naive(result, X, y, w, b, "softmax", None, tight)


@pytest.mark.parametrize("dtype,d", [(np.float64, 2_051), (np.float32, 4_103)], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_wide_rows(backend, loss, dtype, d, rng):
    """Rows over 16 KB take the Cython kernel's four-row dot products: 11 rows (two tiles
    of four and three left over) with a width that leaves a partial vector, weighted and
    not, against the reference."""
    if backend == "cuda":
        pytest.skip("wide rows are a CPU kernel path")
    X, y, w, b, sw = make_problem(rng, 11, d, loss, dtype, weighted=True)
    for weights in (sw, None):
        result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=weights, backend=backend)
        assert_matches_naive(result, X, y, w, b, loss, weights, RTOL[dtype])


@pytest.mark.parametrize("max_bytes", [1, 3 * 8 * 70, 1 << 20], ids=["one-row", "three-rows", "default-rows"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", LOSSES)
def test_block_sizes_from_the_bytes_cap(backend, loss, dtype, max_bytes, monkeypatch, rng):
    """Wide rows are taken a few per block (fastgd._config.CPU_BLOCK_MAX_BYTES): blocks of
    one row, of three rows (fewer than a tile or a gradient pass) and of CPU_BLOCK_ROWS give
    the reference's result, weighted and not. Softmax with k = 5 and 10 (four and nine
    scored classes: the float32 tiles store two classes from a vector, class 2 c + 1 eight
    elements early where a block holds eight rows or more, else moved down first)."""
    if backend not in ("numba", "cython"):
        pytest.skip("the block size is a setting of the CPU kernels")
    from fastgd import _config

    monkeypatch.setattr(_config, "CPU_BLOCK_MAX_BYTES", max_bytes)
    for k in (5, 10) if loss == "softmax" else (5,):
        X, y, w, b, sw = make_problem(rng, 41, 70, loss, dtype, k=k, weighted=True)
        for weights in (sw, None):
            result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=weights, backend=backend)
            assert_matches_naive(result, X, y, w, b, loss, weights, RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", LOSSES)
def test_outputs_keep_dtype_and_shape(backend, loss, dtype, rng):
    X, y, w, b, sw = make_problem(rng, 31, 5, loss, dtype, k=3, weighted=True)
    value, grad_w, grad_b = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
    assert isinstance(value, float)
    assert isinstance(grad_w, np.ndarray) and grad_w.dtype == dtype and grad_w.shape == w.shape
    if loss == "softmax":
        assert isinstance(grad_b, np.ndarray) and grad_b.dtype == dtype and grad_b.shape == (3,)
    else:
        assert np.ndim(grad_b) == 0 and np.asarray(grad_b).dtype == dtype


@pytest.mark.parametrize("loss", LOSSES)
def test_agrees_with_numpy_backend(backend, loss, rng):
    """The numpy backend is the reference users read; the others must match it too."""
    X, y, w, b, sw = make_problem(rng, 150, 6, loss, np.float64, k=3, weighted=True)
    got = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
    ref = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend="numpy")
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss", LOSSES)
def test_reference_gradient_matches_finite_differences(loss, weighted, rng):
    """The numpy reference's gradient is the derivative of its loss (central differences)."""
    X, y, w, b, sw = make_problem(rng, 40, 4, loss, np.float64, k=3, weighted=weighted)
    _, grad_w, grad_b = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend="numpy")
    h = 1e-6

    def f(w_, b_):
        return fastgd.loss_grad(X, y, w_, b_, loss=loss, sample_weight=sw, backend="numpy")[0]

    fd_w = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[idx] = h
        fd_w[idx] = (f(w + e, b) - f(w - e, b)) / (2 * h)
    np.testing.assert_allclose(grad_w, fd_w, rtol=1e-6, atol=1e-8)
    if loss == "softmax":
        fd_b = np.array([(f(w, b + h * e) - f(w, b - h * e)) / (2 * h) for e in np.eye(len(b))])
    else:
        fd_b = (f(w, b + h) - f(w, b - h)) / (2 * h)
    np.testing.assert_allclose(grad_b, fd_b, rtol=1e-6, atol=1e-8)


def test_closed_form_values(backend):
    """Hand-computed values: z = 0 gives log 2 (logistic) and log k (softmax)."""
    X = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]])
    w = np.zeros(2)
    # mse with w = 0, b = 1: mean((1 - y)^2), gradient -2 mean((y - 1) x).
    y = np.array([2.0, 0.0, 1.0])
    value, gw, gb = fastgd.loss_grad(X, y, w, 1.0, loss="mse", backend=backend)
    assert value == pytest.approx((1 + 1 + 0) / 3)
    np.testing.assert_allclose(gw, 2 * ((1 - y) @ X) / 3)
    assert gb == pytest.approx(2 * np.mean(1 - y))
    value, gw, gb = fastgd.loss_grad(X, np.array([1, 0, 1]), w, loss="logistic", backend=backend)
    assert value == pytest.approx(np.log(2))
    np.testing.assert_allclose(gw, (0.5 - np.array([1, 0, 1])) @ X / 3)
    value, gw, gb = fastgd.loss_grad(
        X, np.array([0, 3, 2]), np.zeros((2, 4)), loss="softmax", backend=backend
    )
    assert value == pytest.approx(np.log(4))
    np.testing.assert_allclose(gb, [0.25 - 1 / 3, 0.25, 0.25 - 1 / 3, 0.25 - 1 / 3])


@pytest.mark.parametrize("n,d", [(3000, 8), (70001, 1), (70001, 2)], ids=lambda v: str(v))
def test_logistic_loss_over_many_rows_in_closed_form(backend, n, d, rng):
    """At z = 0 every row's logistic loss is log 2. Unweighted, the CPU kernels take the
    log1p terms as logarithms of products (here of factors all 2, so 2**n overall): of up
    to 512 factors in the blocks of 16 rows (d = 8, numba), of 256 in the one-pass loops
    of narrow rows (d = 1, 2): the products must be flushed before they overflow."""
    if backend == "cuda":
        pytest.skip("too many rows for the simulator; the CUDA kernel takes no products")
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < 0.5).astype(np.float64)
    value, gw, gb = fastgd.loss_grad(X, y, np.zeros(d), 0.0, loss="logistic", backend=backend)
    assert value == pytest.approx(np.log(2), rel=1e-13)
    np.testing.assert_allclose(gw, (0.5 - y) @ X / n, rtol=1e-10, atol=1e-15)
    assert gb == pytest.approx(np.mean(0.5 - y), rel=1e-10, abs=1e-15)
    # And far from zero, against the independent reference.
    w = np.full(d, 3.0 / np.sqrt(d))
    result = fastgd.loss_grad(X, y, w, 0.5, loss="logistic", backend=backend)
    assert_matches_naive(result, X, y, w, 0.5, "logistic", None, RTOL[np.float64])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_one_feature_loops_over_many_parts(backend, loss, dtype, weighted, rng):
    """d = 1 on the CPU backends: one loop per thread's rows, in parts of 96 to 256 rows
    (each asking for the rows 2 KB ahead, up to the end of the thread's rows); a partial
    last part, and the weighted loops too, against the independent reference."""
    if backend == "cuda":
        pytest.skip("too many rows for the simulator")
    n = 4099
    X = rng.normal(size=(n, 1)).astype(dtype)
    y = (rng.random(n) < 0.5).astype(dtype) if loss == "logistic" else rng.normal(size=n).astype(dtype)
    sw = rng.uniform(0.1, 2.0, size=n).astype(dtype) if weighted else None
    w = np.array([1.3], dtype=dtype)
    result = fastgd.loss_grad(X, y, w, 0.2, loss=loss, sample_weight=sw, backend=backend)
    assert_matches_naive(result, X, y, w, 0.2, loss, sw, RTOL[dtype])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_float32_softmax_with_far_apart_scores(backend, weighted, rng):
    """float32 softmax (whose CPU softmax steps run in float32): scores hundreds apart, so
    that most exponentials fall below the float32 range, still give the loss and gradient
    of float64 arithmetic on the same values, within float32 roundings."""
    n, d, k = (300, 5, 7) if backend == "cuda" else (5_000, 5, 7)
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = (rng.normal(size=(d, k)) * 60).astype(np.float32)
    b = np.linspace(-100, 100, k).astype(np.float32)
    y = rng.integers(0, k, n)
    sw = rng.uniform(0.5, 2.0, n).astype(np.float32) if weighted else None
    v32, g32, gb32 = fastgd.loss_grad(X, y, W, b, loss="softmax", sample_weight=sw, backend=backend)
    v64, g64, gb64 = naive_loss_grad(
        X.astype(np.float64),
        y,
        W.astype(np.float64),
        b.astype(np.float64),
        "softmax",
        None if sw is None else sw.astype(np.float64),
    )[:3]
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-5 * np.abs(g64).max())
    np.testing.assert_allclose(gb32, gb64, rtol=1e-5, atol=1e-5 * np.abs(gb64).max())


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "unweighted"])
@pytest.mark.parametrize("d", [1, 4, 64])
@pytest.mark.parametrize("loss", LOSSES)
def test_float32_accumulates_like_float64(backend, loss, d, weighted, rng):
    """float32 data: loss and gradient within 1e-5 of the float64 computation on the same
    values. n is large enough that float32 accumulators would miss this; d = 1 takes the
    CPU kernels' one-loop paths (unweighted logistic: float32 arithmetic, float64 sums),
    d = 64 Cython's four-row steps (float32 sums over 64 rows, then float64)."""
    if d == 1 and backend == "numpy":
        pytest.skip("d = 1 is for the CPU kernels' one-loop paths; numpy sums float32 in BLAS")
    n = 600 if backend == "cuda" else 300_000
    X32, y, w32, b, sw = make_problem(rng, n, d, loss, np.float32, k=3, weighted=weighted)
    X32 += np.float32(0.5)  # a common offset makes the sums large and cancellation-free
    v32, g32, gb32 = fastgd.loss_grad(X32, y, w32, b, loss=loss, sample_weight=sw, backend=backend)
    v64, g64, gb64 = fastgd.loss_grad(
        X32.astype(np.float64), y, w32.astype(np.float64), b, loss=loss, sample_weight=sw, backend=backend
    )
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-5 * np.abs(g64).max())
    np.testing.assert_allclose(gb32, gb64, rtol=1e-5, atol=1e-5 * np.abs(gb64).max())


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", LOSSES)
def test_narrow_rows_every_width(backend, loss, dtype, weighted, rng):
    """d = 2 .. 9: the CPU kernels' one-pass loops for narrow rows take each width up to 7
    or 8 as its own compiled case (kernels/fastgd_narrow.c, numba's _narrow_rows), as do
    the Cython softmax kernel's block products; 9 takes the block kernels. Every width
    against the independent reference, scores of both signs and far from zero."""
    n = 300 if backend == "cuda" else 2001
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    for d in range(2, 10):
        X, y, w, b, sw = make_problem(rng, n, d, loss, dtype, weighted=weighted, scale=4.0)
        result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
        assert_matches_naive(result, X, y, w, b, loss, sw, tight)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_fused_rows_every_vector_count(backend, loss, dtype, weighted, rng):
    """With AVX-512, Cython's mse/logistic take rows of 9 to 128 float64 (256 float32)
    values four at a time (kernels/fastgd_fused_rows.c), a case compiled for each count
    of 512-bit vectors (two copies: up to 8 and 9 to 16), the last one masked; numba's
    take float64 rows of 16 to 128 values and float32 rows of 48 to 512 two at a time
    (_fused_rows_loss_grad), and unweighted rows of two to eight vectors four at a time
    (_fused_rows_simd_loss_grad).
    Widths at and either side of each count and of the limits, row counts that leave one
    to three rows after the steps of four, over several 64-row parts per thread, scores
    of both signs and far from zero."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    lanes = 64 // np.dtype(dtype).itemsize
    counts = {v * lanes + e for v in range(1, 17) for e in (-1, 0, 1)} - {lanes - 1}
    widths = sorted({9, 15, 511, 512, 513} | counts)
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    for n, d in zip([1, 2, 3, 5, 258, 1001, 1003] * 8, widths, strict=False):
        X, y, w, b, sw = make_problem(rng, n, d, loss, dtype, weighted=weighted, scale=4.0)
        result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
        assert_matches_naive(result, X, y, w, b, loss, sw, tight)


def placed_in_nans(X, offset):
    """A copy of X starting ``offset`` bytes past a 64-byte line's start, in a buffer of NaN
    (a kernel that reads a value before or after X gives NaN)."""
    itemsize = X.dtype.itemsize
    buffer = np.full((X.nbytes + 256) // itemsize, np.nan, X.dtype)
    start = ((-buffer.ctypes.data) % 64 + 64 + offset) // itemsize
    placed = buffer[start : start + X.size].reshape(X.shape)
    placed[...] = X
    assert placed.ctypes.data % 64 == offset and placed.flags.c_contiguous
    return placed


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_fused_rows_from_every_offset_in_a_line(backend, loss, dtype, weighted, rng, monkeypatch):
    """Rows of whole 64-byte lines are read in windows of one line each, from wherever X
    starts (FGD_FUSED_SHIFT in kernels/fastgd_fused_rows.c, numba's _line_shift): X at every
    offset in a line that its dtype allows, between NaN; rows of one to sixteen lines and
    widths beside them (not whole lines: read as they start), row counts that leave rows
    after the steps of four; against the reference, and numba's with the windows off too."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    from fastgd.backends import numba as numba_backend

    itemsize = np.dtype(dtype).itemsize
    lanes = 64 // itemsize
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    widths = [lanes, 2 * lanes, 3 * lanes, 8 * lanes, 16 * lanes, 2 * lanes + 1]
    cases = zip([1, 5, 67, 258, 7, 66], widths, strict=True)
    for n, d in cases:
        X, y, w, b, sw = make_problem(rng, n, d, loss, dtype, weighted=weighted, scale=4.0)
        for offset in range(0, 64, itemsize):
            placed = placed_in_nans(X, offset)
            for shift in (True, False) if backend == "numba" else (True,):
                monkeypatch.setattr(numba_backend, "FUSED_SHIFT", shift)
                result = fastgd.loss_grad(placed, y, w, b, loss=loss, sample_weight=sw, backend=backend)
                assert_matches_naive(result, X, y, w, b, loss, sw, tight)


#: Widths that reach each CPU kernel path of logistic: d = 1, the narrow rows, the rows of
#: two to eight and of nine to sixteen 512-bit vectors, and the blocks (wide rows).
LABEL_WIDTHS = [1, 2, 5, 8, 9, 12, 16, 17, 33, 40, 64, 100, 129, 200, 300, 600]


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("labels", ["bool", "uint8", "int64"])
def test_logistic_binary_labels_every_path(backend, labels, dtype, weighted, rng):
    """Logistic y as bool/integer labels reaches the kernels as uint8 (one byte a row):
    every width's path against the independent reference, row counts over several parts
    and with partial last vectors, and the same result as y in X's dtype."""
    widths = [1, 5, 17, 64] if backend == "cuda" else LABEL_WIDTHS
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    rows = [70001, 3, 1003, 1, 258, 1001, 67, 2, 5, 130, 259, 66, 1000, 7, 501, 90]
    for n, d in zip(rows, widths, strict=False):
        if backend == "cuda":
            n = min(n, 300)
        X, y, w, b, sw = make_problem(rng, n, d, "logistic", dtype, weighted=weighted, scale=4.0)
        y_labels = (y != 0).astype(labels)
        before = y_labels.copy()
        result = fastgd.loss_grad(X, y_labels, w, b, loss="logistic", sample_weight=sw, backend=backend)
        assert np.array_equal(y_labels, before)
        assert_matches_naive(result, X, y, w, b, "logistic", sw, tight)
        float_y = fastgd.loss_grad(X, y, w, b, loss="logistic", sample_weight=sw, backend=backend)
        np.testing.assert_allclose(result[0], float_y[0], rtol=tight)
        np.testing.assert_allclose(result[1], float_y[1], rtol=tight, atol=tight * np.abs(float_y[1]).max())
        np.testing.assert_allclose(result[2], float_y[2], rtol=tight, atol=tight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_numba_rows_of_two_to_sixteen_vectors_either_way(monkeypatch, loss, dtype, rng):
    """numba's unweighted rows of two to FUSED_VECTORS_MAX 512-bit vectors (float64 up to
    128 values, float32 up to 240) take _fused_rows_simd_loss_grad where the CPU has
    AVX-512, and the loops it replaced elsewhere (numba.FUSED_SIMD): both against the
    reference, widths either side of the vectors' ends, rows left over after the steps of
    four; the longest rows the vector code can take (sixteen vectors) with it too."""
    from fastgd.backends import numba as numba_backend

    lanes = 64 // np.dtype(dtype).itemsize
    widths = [lanes + 1, 2 * lanes, 3 * lanes - 1, 4 * lanes + 1, 6 * lanes, 8 * lanes - 1, 8 * lanes]
    widths += [8 * lanes + 1, 12 * lanes - 3, 15 * lanes, 16 * lanes - 1, 16 * lanes]
    rows = [1, 6, 67, 130, 259, 3, 66, 5, 131, 2, 69, 258]
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    monkeypatch.setattr(numba_backend, "FUSED_VECTORS_MAX", {8: 16, 4: 16})
    for fused_simd in (numba_backend.FUSED_SIMD, False):
        monkeypatch.setattr(numba_backend, "FUSED_SIMD", fused_simd)
        for n, d in zip(rows, widths, strict=True):
            X, y, w, b, _ = make_problem(rng, n, d, loss, dtype, scale=4.0)
            result = fastgd.loss_grad(X, y, w, b, loss=loss, backend="numba")
            assert_matches_naive(result, X, y, w, b, loss, None, tight)


@pytest.mark.parametrize("d", [3, 12], ids=["narrow", "block"])
def test_softmax_many_classes_in_closed_form(backend, d, rng):
    """k = 2,000 classes, all scores equal: every row's loss is log k, and unweighted the CPU
    kernels take the log-sum-exps as logarithms of products of the per-row sums (here all
    k, 2000**128 = 1e422 over a block of rows): the products must stay finite."""
    if backend == "cuda":
        pytest.skip("minutes on the simulator; the CUDA kernel takes no products")
    n, k = 300, 2000
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    value, gw, gb = fastgd.loss_grad(X, y, np.zeros((d, k)), np.zeros(k), loss="softmax", backend=backend)
    assert value == pytest.approx(np.log(k), rel=1e-13)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    np.testing.assert_allclose(gw, X.T @ (1.0 / k - onehot) / n, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(gb, np.mean(1.0 / k - onehot, axis=0), rtol=1e-10, atol=1e-15)


def test_logistic_one_feature_row_by_row(backend):
    """One row at a time (x = 1, y = 0, so the gradient is sigmoid(z) and the loss
    log(1 + e^z)), scores z from -708 to 40: the d = 1 kernels' sigmoid within 3.5e-16 +
    |z| 2**-52 of extended precision (the unweighted float64 loop computes it from a Pade
    ratio of 2**(z / ln 2), whose rounding of z / ln 2 costs up to |z| 2**-52: 6e-14 at z =
    -660, as much as computing z = x w + b in float64 may), and the loss within 4e-16 of it
    in absolute terms (it is the logarithm of a product of 1 - sigmoid(-|z|), which keeps
    e^-|z| to the last place of 1)."""
    if backend == "cuda":
        pytest.skip("hundreds of launches on the simulator; the CUDA kernel has no d = 1 path")
    X = np.ones((1, 1))
    y = np.zeros(1)
    for z in np.concatenate([np.linspace(-708.0, 40.0, 331), [-1e-9, 0.0, 1e-9]]):
        value, gw, gb = fastgd.loss_grad(X, y, np.array([z]), 0.0, loss="logistic", backend=backend)
        zl = np.longdouble(z)
        sigmoid = 1 / (1 + np.exp(-zl)) if z >= 0 else np.exp(zl) / (1 + np.exp(zl))
        assert abs(gw[0] - sigmoid) <= (3.5e-16 + abs(zl) * 2.0**-52) * sigmoid and gb == gw[0], z
        want = max(zl, 0) + np.log1p(np.exp(-abs(zl)))
        assert abs(value - want) <= 4e-16 * max(want, 1), z


def test_float32_logistic_one_feature_is_float32_exact(backend, rng):
    """The CPU kernels' float32 arithmetic for unweighted d = 1 logistic (a float32
    exponential, float32 sums over short runs of rows): within a few float32 roundings
    (5e-7) of float64 arithmetic on the same float32 values, over scores from -60 to 60."""
    if backend == "cuda":
        pytest.skip("too many rows for the simulator; the CUDA kernel has no float32 path")
    n = 200_001
    X = rng.uniform(-3.0, 3.0, size=(n, 1)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    for w0, b in [(0.7, 0.3), (20.0, -1.0)]:
        w = np.array([w0], np.float32)
        v32, g32, gb32 = fastgd.loss_grad(X, y, w, b, loss="logistic", backend=backend)
        v64, g64, gb64 = naive_loss_grad(
            X.astype(np.float64), y.astype(np.float64), w.astype(np.float64), float(np.float32(b)), "logistic"
        )[:3]
        assert v32 == pytest.approx(v64, rel=5e-7)
        np.testing.assert_allclose(g32, g64, rtol=5e-7)
        assert gb32 == pytest.approx(gb64, rel=5e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_one_feature_vectors(backend, loss, dtype, rng):
    """d = 1 with AVX-512 (kernels/fastgd_one_feature.c; numba's _simd.mse_one_feature and
    _simd.logistic_one_feature): mse weighted or not and unweighted logistic, eight float64
    or sixteen float32 rows a vector (float32 mse widened to float64), logistic in parts of
    4 KB of x, logistic with y in X's dtype and as uint8 labels. Row counts either side of
    a vector, of a part (512 float64, 1024 float32 rows), of two, four and sixteen (where
    float32 parts take steps of 64 rows, four vectors with one division: 4 KB of rows must
    follow the part), so that each thread's rows end in a partial vector or none; scores
    of both signs up to +-900 (past the exponential's clamp) and exactly 0; against the
    independent reference."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    lanes = 64 // np.dtype(dtype).itemsize
    part = 4096 // np.dtype(dtype).itemsize
    ends = (lanes, 2 * lanes, part, 2 * part, 4 * part, 16 * part)
    counts = {1, 2, 3} | {m + e for m in ends for e in (-1, 0, 1)}
    for n in sorted(counts):
        X = rng.normal(size=(n, 1)).astype(dtype)
        X[::5] = 0.0  # z = b there (logistic: sigmoid 1/2 at b = 0)
        if loss == "logistic":
            y = (rng.random(n) < 0.5).astype(dtype)
            weights = [None]
        else:
            y = rng.normal(size=n).astype(dtype)
            weights = [None, rng.uniform(0.1, 2.0, size=n).astype(dtype)]
        targets = [y, y.astype(np.uint8)] if loss == "logistic" else [y]  # labels: their own masks
        for w0, b in [(1.7, 0.0), (-3.0, 0.4), (300.0, 0.0)]:
            w = np.array([w0], dtype)
            for sw in weights:
                for yk in targets:
                    result = fastgd.loss_grad(X, yk, w, b, loss=loss, sample_weight=sw, backend=backend)
                    assert_matches_naive(result, X, y, w, b, loss, sw, tight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_one_feature_logistic_at_every_alignment(backend, dtype, rng):
    """Unweighted d = 1 logistic with x starting at each element of a 64-byte line: the
    CPU loops take the rows before x's first line boundary as a part of their own, then
    whole aligned vectors (NumPy's large arrays start 16 bytes past a line). Fewer rows
    than that head, about a vector, several parts and a few thousand rows, y as uint8
    labels and in X's dtype, against float64 arithmetic on the same values (float32:
    within the few float32 roundings of test_float32_logistic_one_feature_is_float32_exact,
    relative to the loss and the gradient's scales)."""
    if backend == "cuda":
        pytest.skip("a CPU kernel path")
    itemsize = np.dtype(dtype).itemsize
    lanes, part = 64 // itemsize, 4096 // itemsize
    size = 3 * part + 2 * lanes + 1000
    buf = rng.uniform(-3.0, 3.0, size=size + lanes).astype(dtype)
    labels = rng.random(size + lanes) < 0.5
    first = (-buf.ctypes.data % 64) // itemsize  # buf[first] starts a line
    # float32: z = x w + b rounds by up to |z| 2**-24 a row, which the sums of thousands of
    # rows average out (5e-7 then) but not a few rows' (up to 4.4e-6 of a row's loss)
    rel = {np.float64: lambda n: 1e-12, np.float32: lambda n: 5e-7 if n > 1000 else 2e-5}[dtype]
    w = np.array([1.3], dtype)
    for shift in range(lanes):
        start = first + shift
        for n in (1, 3, lanes + 1, 3 * part + 5, size - lanes):
            X = buf[start : start + n].reshape(n, 1)
            assert X.ctypes.data % 64 == shift * itemsize
            yb = labels[start : start + n]
            X64, y64 = X.astype(np.float64), yb.astype(np.float64)
            for y in (yb.astype(np.uint8), yb.astype(dtype)):
                result = fastgd.loss_grad(X, y, w, np.float32(0.2), loss="logistic", backend=backend)
                assert_matches_naive(
                    result, X64, y64, w.astype(np.float64), float(np.float32(0.2)), "logistic", None, rel(n)
                )


def test_numba_vector_code_follows_the_cpu_features():
    """The numba backend takes its AVX-512 code only where LLVM's map of the host's features
    says True: the map lists every feature LLVM knows, also those the CPU lacks."""
    from llvmlite import binding as llvm_binding

    from fastgd.backends import numba as numba_backend

    assert not numba_backend.cpu_has({"avx512f": False, "avx512dq": True}, "avx512f")
    assert not numba_backend.cpu_has({"avx512f": True}, "avx512f", "avx512dq")
    assert numba_backend.cpu_has({"avx512f": True, "avx512dq": True}, "avx512f", "avx512dq")
    features = llvm_binding.get_host_cpu_features()
    assert numba_backend.SOFTMAX_SIMD == bool(features["avx512f"])
    assert numba_backend.ONE_FEATURE_SIMD == all(
        features[f] for f in ("avx512f", "avx512dq", "avx512bw", "avx512vl")
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("loss", ["mse", "logistic"])
def test_numba_one_feature_without_vector_code(loss, dtype, rng, monkeypatch):
    """Where the CPU has no AVX-512 the Numba backend takes d = 1 through its loops of
    scalar code, which LLVM vectorises (numba.ONE_FEATURE_SIMD false): they still match
    the reference, weighted and not."""
    from fastgd.backends import numba as numba_backend

    monkeypatch.setattr(numba_backend, "ONE_FEATURE_SIMD", False)
    tight = {np.float64: 1e-12, np.float32: RTOL[np.float32]}[dtype]
    for n in (1, 17, 4099):
        X, y, w, b, sw = make_problem(rng, n, 1, loss, dtype, weighted=True, scale=4.0)
        for weights in (None, sw):
            result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=weights, backend="numba")
            assert_matches_naive(result, X, y, w, b, loss, weights, tight)


def test_readonly_memmap_used_in_place(backend, rng, tmp_path):
    X, y, w, b, sw = make_problem(rng, 97, 5, "logistic", np.float32, weighted=True)
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    assert not Xm.flags.writeable
    got = fastgd.loss_grad(Xm, y, w, b, loss="logistic", sample_weight=sw, backend=backend)
    assert_matches_naive(got, X, y, w, b, "logistic", sw, RTOL[np.float32])


@pytest.mark.parametrize("layout", ["fortran", "strided", "int", "bool"])
def test_other_layouts_and_dtypes_give_same_result(backend, layout, rng):
    X, y, w, b, _ = make_problem(rng, 64, 5, "mse", np.float64)
    if layout == "fortran":
        Xa = np.asfortranarray(X)
    elif layout == "strided":
        big = np.zeros((128, 10))
        big[::2, ::2] = X
        Xa = big[::2, ::2]
    elif layout == "int":
        X = np.round(X * 3)
        Xa = X.astype(np.int64)
    else:
        X = (X > 0).astype(np.float64)
        Xa = X > 0
    got = fastgd.loss_grad(Xa, y, w, b, loss="mse", backend=backend)
    ref = fastgd.loss_grad(X, y, w, b, loss="mse", backend="numpy")
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_inputs_are_not_modified(backend, loss, rng):
    X, y, w, b, sw = make_problem(rng, 40, 3, loss, np.float64, weighted=True)
    copies = [np.copy(a) for a in (X, y, w, b, sw)]
    fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=backend)
    for before, after in zip(copies, (X, y, w, b, sw), strict=True):
        np.testing.assert_array_equal(before, after)


# Property tests: random shapes (n = 1 and d = 1 included), dtypes, weights, scales.
CUDA_MAX_N = 40


@st.composite
def problems(draw, max_n=300):
    loss = draw(st.sampled_from(LOSSES))
    n = draw(st.one_of(st.just(1), st.integers(1, max_n)))
    d = draw(st.one_of(st.just(1), st.integers(1, 12)))
    k = draw(st.integers(2, 5))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    weighted = draw(st.booleans())
    intercept = draw(st.booleans())
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X, y, w, b, sw = make_problem(
        rng, n, d, loss, dtype, k=k, weighted=weighted, intercept=intercept, scale=scale
    )
    return X, y, w, b, sw, loss, dtype


@given(problem=problems())
def test_property_cpu_backends(problem):
    X, y, w, b, sw, loss, dtype = problem
    for name in ("numpy", "numba", "cython"):
        if name in fastgd.available_backends():
            result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=name)
            assert_matches_naive(result, X, y, w, b, loss, sw, RTOL[dtype])


@st.composite
def softmax_problems(draw):
    """Softmax problems over the class counts and widths of the CPU kernels' vector code:
    k from 2 to 20 (a part of a group of eight classes, whole groups, a group and one class
    by dot products, two and three groups, panels of up to twelve classes and more), d from
    1 to 40 (partial vectors and column pairs), n from 1 to 200 (partial tiles of rows)."""
    n = draw(st.integers(1, 200))
    d = draw(st.integers(1, 40))
    k = draw(st.integers(2, 20))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    weighted = draw(st.booleans())
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X, y, w, b, sw = make_problem(
        rng, n, d, "softmax", dtype, k=k, weighted=weighted, intercept=True, scale=scale
    )
    return X, y, w, b, sw, dtype


@given(problem=softmax_problems())
def test_property_softmax_cpu_backends(problem):
    X, y, w, b, sw, dtype = problem
    for name in ("numba", "cython"):
        if name in fastgd.available_backends():
            result = fastgd.loss_grad(X, y, w, b, loss="softmax", sample_weight=sw, backend=name)
            assert_matches_naive(result, X, y, w, b, "softmax", sw, RTOL[dtype])


@given(problem=problems(max_n=CUDA_MAX_N))
def test_property_cuda(problem):
    if "cuda" not in fastgd.available_backends():
        pytest.skip("cuda backend unavailable")
    X, y, w, b, sw, loss, dtype = problem
    result = fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend="cuda")
    assert_matches_naive(result, X, y, w, b, loss, sw, RTOL[dtype])


def test_softmax_coefficients_score_relative_to_the_last_class(rng):
    """The CPU kernels' softmax rows: k - 1 differences whose scores (the last class at 0)
    give the same probabilities as the k original scores, or the k classes as they are when
    k is a multiple of the tile's four; the gradient's missing last row is minus the sum of
    the others."""
    from fastgd.backends import _sums

    X = rng.normal(size=(7, 6))
    w, b = rng.normal(size=(6, 5)), rng.normal(size=5)
    w_before, b_before = w.copy(), b.copy()
    Wt, b_t = _sums.softmax_coefficients(w, b, np.dtype(np.float32))
    assert Wt.shape == (4, 6) and Wt.dtype == np.float32 and Wt.flags.c_contiguous
    assert b_t.shape == (4,) and b_t.dtype == np.float64
    z = X @ w + b
    z_rel = np.hstack([X @ Wt.T.astype(np.float64) + b_t, np.zeros((7, 1))])
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p_rel = np.exp(z_rel - z_rel.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p_rel / p_rel.sum(1, keepdims=True), p / p.sum(1, keepdims=True), rtol=1e-5)
    assert np.array_equal(w, w_before) and np.array_equal(b, b_before)

    w4 = rng.normal(size=(6, 4))
    Wt4, b_t4 = _sums.softmax_coefficients(w4, np.arange(4.0), np.dtype(np.float64))
    assert np.array_equal(Wt4, w4.T) and np.array_equal(b_t4, np.arange(4.0))

    rows = rng.normal(size=(3, 6))
    full = _sums.softmax_gradient(rows, 4)
    assert full.shape == (4, 6) and np.array_equal(full[:3], rows)
    np.testing.assert_allclose(full[3], -rows.sum(axis=0))
    assert _sums.softmax_gradient(full, 4) is full
