"""Bad input gets a clear error naming the problem, before any kernel runs (NaN/inf in X:
for the numba and cython kernels, which carry them into the result, right after it)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import sparse

import fastgd

from naive import loss_grad as naive_loss_grad
from naive import make_problem


def good(loss="mse", n=6, d=3, k=3):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    if loss == "softmax":
        return X, np.arange(n) % k, np.zeros((d, k))
    return X, (np.arange(n) % 2).astype(float), np.zeros(d)


@pytest.mark.parametrize(
    "loss, change, error, message",
    [
        ("mse", dict(loss="hinge"), ValueError, "unknown loss 'hinge'"),
        ("mse", dict(X=np.ones(6)), ValueError, "X must be 2-D"),
        ("mse", dict(X=np.ones((0, 3)), y=np.ones(0)), ValueError, "X is empty"),
        ("mse", dict(X=np.full((6, 3), "a")), TypeError, "X must hold real numbers"),
        ("mse", dict(X=np.ones((6, 3), complex)), TypeError, "X must hold real numbers"),
        (
            "mse",
            dict(X=np.where(np.eye(6, 3) > 0, np.nan, 1.0)),
            ValueError,
            r"X contains NaN or infinity \(first at index \(0, 0\)\)",
        ),
        ("mse", dict(X=np.full((6, 3), np.inf)), ValueError, "X contains NaN or infinity"),
        ("mse", dict(y=np.ones(5)), ValueError, "y has 5 entries but X has 6 rows"),
        ("mse", dict(y=np.array([1, 2, np.nan, 0, 0, 0.0])), ValueError, "y contains NaN"),
        ("mse", dict(w=np.zeros(4)), ValueError, r"mse needs w of shape \(n_features,\) = \(3,\)"),
        ("mse", dict(b=np.zeros(2)), ValueError, "scalar intercept"),
        ("mse", dict(b=np.inf), ValueError, "b contains NaN"),
        (
            "logistic",
            dict(y=np.array([0, 1, 2, 0, 1, 0.0])),
            ValueError,
            r"logistic loss needs y in \{0, 1\}",
        ),
        ("softmax", dict(y=np.array([0, 1, 3, 0, 1, 2])), ValueError, r"labels must lie in 0..2"),
        ("softmax", dict(y=np.array([0, 1, 0.5, 0, 1, 2])), ValueError, "integer class labels"),
        ("softmax", dict(w=np.zeros(3)), ValueError, r"softmax needs w of shape \(n_features, n_classes\)"),
        ("softmax", dict(b=np.zeros(2)), ValueError, r"softmax needs b of shape \(n_classes,\) = \(3,\)"),
        ("mse", dict(sample_weight=-np.ones(6)), ValueError, "sample_weight must be >= 0"),
        ("mse", dict(sample_weight=np.zeros(6)), ValueError, "sample_weight sums to zero"),
        ("mse", dict(sample_weight=np.ones(4)), ValueError, r"sample_weight must have shape \(6,\)"),
    ],
)
def test_bad_input_is_named(backend, loss, change, error, message):
    X, y, w = good(loss)
    args = dict(X=X, y=y, w=w, b=0.0, loss=loss, sample_weight=None)
    args.update(change)
    with pytest.raises(error, match=message):
        fastgd.loss_grad(
            args["X"],
            args["y"],
            args["w"],
            args["b"],
            loss=args["loss"],
            sample_weight=args["sample_weight"],
            backend=backend,
        )


def test_nan_found_even_when_sum_overflows():
    X = np.full((4, 2), 1e308)
    value = fastgd.loss_grad(X, np.zeros(4), np.zeros(2), backend="numpy")[0]
    assert value == 0.0  # finite X whose sum overflows is accepted
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index \(3, 1\)\)"):
        fastgd.loss_grad(X, np.zeros(4), np.zeros(2), backend="numpy")


def test_check_input_false_skips_value_scans_only():
    X, y, w = good()
    with pytest.raises(ValueError, match="y has"):
        fastgd.loss_grad(X, y[:3], w, check_input=False)
    value, _, _ = fastgd.loss_grad(X, y, w, check_input=False)
    assert value == pytest.approx(np.mean(y**2))


@st.composite
def bad_X_problems(draw):
    """A valid problem, then one NaN/inf anywhere in X, with every way the kernels could
    lose it: a zero weight on its row, a zero coefficient (or all zero) on its column, a
    score of +-inf that makes the residual exactly 0, float32, d = 1, CSR."""
    loss = draw(st.sampled_from(["mse", "logistic", "softmax"]))
    n = draw(st.integers(1, 70))
    d = draw(st.one_of(st.just(1), st.integers(1, 9)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    weighted = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X, y, w, b, sw = make_problem(rng, n, d, loss, dtype, k=3, weighted=weighted)
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))
    X[i, j] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    zero_w = draw(st.sampled_from(["none", "column", "all"]))
    if zero_w == "column":
        w[j] = 0
    elif zero_w == "all":
        w[...] = 0
    if weighted and n > 1 and draw(st.booleans()):  # the other weights stay positive
        sw[i] = 0
    if draw(st.booleans()):
        X = sparse.csr_matrix(X)
    return X, y, w, b, sw, loss, (i, j)


@given(problem=bad_X_problems())
def test_nan_or_inf_anywhere_in_X_is_named_on_every_cpu_backend(problem):
    X, y, w, b, sw, loss, (i, j) = problem
    message = rf"X contains NaN or infinity \(first at index \({i}, {j}\)\)"
    if sparse.issparse(X):  # CSR: the index into X.data
        message = r"X contains NaN or infinity \(first at index \d+\)"
    for name in ("numpy", "numba", "cython"):
        if name in fastgd.available_backends():
            with pytest.raises(ValueError, match=message):
                fastgd.loss_grad(X, y, w, b, loss=loss, sample_weight=sw, backend=name)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.int64, np.uint64, np.float32, np.float64])
def test_softmax_labels_of_any_integral_dtype(dtype):
    """Labels of any integer dtype, or integral floats, give the independent reference's
    result (computed with intp labels) on every CPU backend."""
    X, y, w = good("softmax", n=7)
    w = w + np.arange(9.0).reshape(3, 3) / 10
    want, want_w, want_b = naive_loss_grad(X, y.astype(np.intp), w, np.zeros(3), "softmax")[:3]
    for backend in set(fastgd.available_backends()) & {"numpy", "numba", "cython"}:
        got = fastgd.loss_grad(X, y.astype(dtype), w, np.zeros(3), loss="softmax", backend=backend)
        np.testing.assert_allclose(got[0], want, rtol=1e-12)
        np.testing.assert_allclose(got[1], want_w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got[2], want_b, rtol=1e-12, atol=1e-15)


def test_softmax_intp_labels_are_not_copied():
    from fastgd import _validate

    y = np.arange(10) % 3
    labels = _validate.check_targets(y, "softmax", 10, np.float64, 3)
    assert labels.dtype == np.intp and np.shares_memory(labels, y)
    strided = _validate.check_targets(np.repeat(y, 2)[::2], "softmax", 10, np.float64, 3)
    assert strided.flags.c_contiguous
    np.testing.assert_array_equal(strided, y)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array([0, 1, 2**63 + 5, 0], dtype=np.uint64), r"found labels from 0 to 9223372036854775813"),
        (np.array([0, 1, -3, 2], dtype=np.int8), "found label -3"),
        (np.array([0, 1, np.inf, 2]), "y contains NaN or infinity"),
    ],
)
def test_softmax_labels_out_of_range(y, message):
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match=message):
        fastgd.loss_grad(X, y, np.zeros((2, 3)), np.zeros(3), loss="softmax", backend="numpy")


def test_softmax_huge_labels_without_known_classes():
    from fastgd import _validate

    y = np.array([0, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueError, match="found label 9223372036854775813"):
        _validate.check_targets(y, "softmax", 2, np.float64)


@pytest.mark.parametrize("bad", [0.5, np.nan, np.inf, -1.0, 2.0])
def test_logistic_target_error_names_value_and_index_past_first_chunk(bad):
    from fastgd import _validate

    n = 2 * _validate._BINARY_CHUNK + 7
    y = (np.arange(n) % 2).astype(float)
    at = _validate._BINARY_CHUNK + 3
    y[at] = bad
    with pytest.raises(ValueError, match=rf"needs y in \{{0, 1\}}, found {float(bad)!r} at index {at}$"):
        fastgd.loss_grad(np.ones((n, 1)), y, np.zeros(1), loss="logistic", backend="numpy")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.uint64])
@pytest.mark.parametrize("bad", [2, 256, -1])
def test_logistic_integer_labels_outside_zero_one_are_refused(dtype, bad):
    """Integer y is checked before its cast to uint8 labels: 256 would wrap to 0 and -1 to
    255."""
    from fastgd import _validate

    if np.iinfo(dtype).min > bad or np.iinfo(dtype).max < bad:
        pytest.skip("not representable")
    y = (np.arange(200) % 2).astype(dtype)
    y[150] = bad
    with pytest.raises(ValueError, match=rf"needs y in \{{0, 1\}}, found {float(bad)!r} at index 150$"):
        _validate.check_targets(y, "logistic", 200, np.float64)


def test_logistic_labels_become_uint8_without_copying_bool_or_uint8():
    from fastgd import _validate

    y = np.arange(10) % 3 == 0
    labels = _validate.check_targets(y, "logistic", 10, np.float32)
    assert labels.dtype == np.uint8 and np.shares_memory(labels, y)
    np.testing.assert_array_equal(labels, y)
    u8 = y.astype(np.uint8)
    assert _validate.check_targets(u8, "logistic", 10, np.float32) is u8
    ints = _validate.check_targets(y.astype(np.int64), "logistic", 10, np.float64)
    assert ints.dtype == np.uint8 and ints.flags.c_contiguous
    np.testing.assert_array_equal(ints, y)
    floats = _validate.check_targets(y.astype(np.float32), "logistic", 10, np.float32)
    assert floats.dtype == np.float32  # float y stays in X's dtype: no conversion per call
    strided = _validate.check_targets(np.repeat(y, 2)[::2], "logistic", 10, np.float64)
    assert strided.flags.c_contiguous and strided.dtype == np.uint8
    np.testing.assert_array_equal(strided, y)
