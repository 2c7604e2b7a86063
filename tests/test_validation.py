"""Bad input gives a clear Python exception (ValueError or TypeError) whose message names the
problem -- never a Numba TypingError, never a crash -- and a rejected call changes nothing.

The `match` patterns are case-insensitive alternatives of words any message describing the
problem would contain (e.g. an out-of-range label must be described with "label", "class"
or "range")."""

from __future__ import annotations

import numpy as np
import pytest

fastbp = pytest.importorskip("fastbp")

try:
    from numba.core.errors import NumbaError
except ImportError:  # pragma: no cover
    NumbaError = ()

ERRORS = (ValueError, TypeError)


def _assert_clean(excinfo):
    exc = excinfo.value
    msg = str(exc)
    assert msg.strip(), "error message is empty"
    if NumbaError:
        assert not isinstance(exc, NumbaError), f"a Numba error escaped: {exc!r}"
    low = msg.lower()
    assert "numba" not in low and "typingerror" not in low and "nopython" not in low, f"message leaks Numba internals: {msg}"
    # a short message, not a compiler dump
    assert len(msg) < 2000


def raises(pattern):
    return pytest.raises(ERRORS, match="(?i)" + pattern)


# --------------------------------------------------------------------------- constructor

BAD_CONSTRUCTOR = [
    (dict(sizes=[3]), r"size|layer"),
    (dict(sizes=[]), r"size|layer"),
    (dict(sizes=[3, 0, 2]), r"size|positive|layer"),
    (dict(sizes=[3, 4, -1]), r"size|positive|layer"),
    (dict(sizes=[0, 4, 2]), r"size|positive|layer"),
    (dict(sizes=[3, 4, 2], activation="swish"), r"activation|swish"),
    (dict(sizes=[3, 4, 2], activation="softmax"), r"activation|softmax|hidden"),
    (dict(sizes=[3, 4, 5, 2], activation=["relu"]), r"activation|hidden|layer|length"),
    (dict(sizes=[3, 4, 5, 2], activation=["relu", "tanh", "tanh"]), r"activation|hidden|layer|length"),
    (dict(sizes=[3, 4, 5, 2], activation=["relu", "nope"]), r"activation|nope"),
    (dict(sizes=[3, 4, 2], output="relu"), r"output|relu"),
    (dict(sizes=[3, 4, 2], output="logits"), r"output|logits"),
    (dict(sizes=[3, 4, 2], loss="hinge"), r"loss|hinge"),
    (dict(sizes=[3, 4, 2], init="lecun"), r"init|lecun"),
    (dict(sizes=[3, 4, 2], dtype="float16"), r"dtype|float"),
    (dict(sizes=[3, 4, 2], dtype="int32"), r"dtype|float"),
    (dict(sizes=[3, 4, 2], dtype=np.complex128), r"dtype|float|complex"),
    # output / loss combinations
    (dict(sizes=[3, 4, 2], loss="cross_entropy", output="sigmoid"), r"softmax|output|loss|combin"),
    (dict(sizes=[3, 4, 2], loss="cross_entropy", output="identity"), r"softmax|output|loss|combin"),
    (dict(sizes=[3, 4, 2], loss="cross_entropy", output="tanh"), r"softmax|output|loss|combin"),
    (dict(sizes=[3, 4, 2], loss="binary_cross_entropy", output="softmax"), r"sigmoid|output|loss|combin"),
    (dict(sizes=[3, 4, 2], loss="binary_cross_entropy", output="identity"), r"sigmoid|output|loss|combin"),
    (dict(sizes=[3, 4, 2], loss="binary_cross_entropy", output="tanh"), r"sigmoid|output|loss|combin"),
]


@pytest.mark.parametrize("kwargs,pattern", BAD_CONSTRUCTOR, ids=[str(i) for i in range(len(BAD_CONSTRUCTOR))])
def test_bad_constructor_arguments(kwargs, pattern):
    kwargs = dict(kwargs)
    sizes = kwargs.pop("sizes")
    with raises(pattern) as ei:
        fastbp.MLP(sizes, **kwargs)
    _assert_clean(ei)


@pytest.mark.parametrize("output", ["identity", "sigmoid", "tanh", "softmax"])
def test_mse_accepts_every_output(output):
    fastbp.MLP([3, 4, 2], output=output, loss="mse")


# --------------------------------------------------------------------------- data


@pytest.fixture
def nets():
    """One network per loss, float64, with nonzero params."""
    out = {}
    for loss, n_out in [("mse", 3), ("cross_entropy", 3), ("binary_cross_entropy", 3)]:
        net = fastbp.MLP([4, 5, n_out], activation="tanh", loss=loss, seed=0)
        net.params[:] = np.random.default_rng(1).standard_normal(net.n_params)
        out[loss] = net
    return out


def _good(loss, n=6, n_out=3):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, 4))
    if loss == "mse":
        y = rng.standard_normal((n, n_out))
    elif loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n)
    else:
        y = rng.random((n, n_out))
    return X, y


def _call(net, method, X, y, **kw):
    if method == "predict":
        return net.predict(X)
    if method == "gradient":
        return net.gradient(X, y)
    if method == "evaluate":
        return net.evaluate(X, y)
    if method == "train_step":
        return net.train_step(X, y, **kw)
    if method == "fit":
        return net.fit(X, y, **kw)
    raise AssertionError(method)


def _check_rejected(net, method, X, y, pattern, **kw):
    before = net.params.copy()
    p = net.params
    with raises(pattern) as ei:
        _call(net, method, X, y, **kw)
    _assert_clean(ei)
    assert net.params is p or np.shares_memory(net.params, p)
    np.testing.assert_array_equal(net.params, before, err_msg="a rejected call changed the params")
    # and the network still works afterwards
    Xg, yg = _good(net.loss)
    if method != "predict":
        net.evaluate(Xg, yg)
    net.predict(Xg)


X_METHODS = ["predict", "gradient", "evaluate", "train_step", "fit"]
Y_METHODS = ["gradient", "evaluate", "train_step", "fit"]

_Xg, _ = _good("mse")
BAD_X = [
    ("1-D", _Xg[0], r"dim|2-d|2d|two|shape|matrix"),
    ("3-D", _Xg[None], r"dim|2-d|2d|two|shape|matrix"),
    ("0-D", np.float64(1.0), r"dim|2-d|2d|two|shape|matrix|array"),
    ("features+1", np.ones((6, 5)), r"feature|column|shape|input|size"),
    ("features-1", np.ones((6, 3)), r"feature|column|shape|input|size"),
    ("empty", np.ones((0, 4)), r"empty|zero|sample|at least"),
    ("nan", np.where(np.arange(24).reshape(6, 4) == 5, np.nan, 1.0), r"nan|finite|\binf"),
    ("inf", np.where(np.arange(24).reshape(6, 4) == 5, np.inf, 1.0), r"nan|finite|\binf"),
    ("-inf", np.where(np.arange(24).reshape(6, 4) == 5, -np.inf, 1.0), r"nan|finite|\binf"),
    ("complex", _Xg.astype(np.complex128), r"complex|dtype|real|type|numeric"),
    ("object", _Xg.astype(object), r"object|dtype|type|numeric|real"),
    ("string", np.full((6, 4), "a"), r"\bstr|dtype|type|numeric|real|unicode"),
    ("object-mixed", np.array([[1.0, "x", None, 2.0]] * 6, dtype=object), r"object|dtype|type|numeric|real|str"),
]


@pytest.mark.parametrize("method", X_METHODS)
@pytest.mark.parametrize("case", BAD_X, ids=[c[0] for c in BAD_X])
def test_bad_X(nets, case, method):
    _, X, pattern = case
    for loss, net in nets.items():
        _, y = _good(loss)
        _check_rejected(net, method, X, y, pattern)


def test_nan_in_float32_X_and_float32_net():
    net = fastbp.MLP([4, 5, 3], dtype="float32", seed=0)
    X = np.ones((6, 4), dtype=np.float32)
    X[2, 1] = np.nan
    y = np.zeros((6, 3), dtype=np.float32)
    for method in X_METHODS:
        _check_rejected(net, method, X, y, r"nan|finite|\binf")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_float64_X_overflowing_float32_is_rejected_or_finite():
    """A finite float64 value beyond float32's range must not silently become inf inside a
    float32 net: either it is rejected, or the result is still computed (finite output)."""
    net = fastbp.MLP([4, 5, 3], activation="tanh", output="sigmoid", dtype="float32", seed=0)
    X = np.ones((2, 4))
    X[0, 0] = 1e300
    try:
        out = net.predict(X)
    except ERRORS as e:
        assert "numba" not in str(e).lower()
    else:
        assert out.dtype == np.float32 and not np.any(np.isnan(out))


_, _ym = _good("mse")
BAD_Y = {
    "mse": [
        ("nan", np.where(np.arange(18).reshape(6, 3) == 4, np.nan, 0.5), r"nan|finite|\binf"),
        ("inf", np.where(np.arange(18).reshape(6, 3) == 4, np.inf, 0.5), r"nan|finite|\binf"),
        ("n-1", _ym[:5], r"sample|length|mismatch|row|shape|same|number|inconsistent"),
        ("n+1", np.vstack([_ym, _ym[:1]]), r"sample|length|mismatch|row|shape|same|number|inconsistent"),
        ("outputs+1", np.ones((6, 4)), r"shape|output|column|target"),
        ("outputs-1", np.ones((6, 2)), r"shape|output|column|target"),
        ("1-D with n_out 3", np.ones(6), r"shape|output|column|target|dim"),
        ("3-D", np.ones((6, 3, 1)), r"shape|dim|target"),
        ("complex", _ym.astype(np.complex128), r"complex|dtype|real|type|numeric"),
        ("object", _ym.astype(object), r"object|dtype|type|numeric|real"),
        ("string", np.full((6, 3), "a"), r"\bstr|dtype|type|numeric|real|unicode"),
    ],
    "cross_entropy": [
        ("label -1", np.array([0, 1, 2, -1, 0, 1]), r"label|class|range|negative"),
        ("label == n_out", np.array([0, 1, 2, 3, 0, 1]), r"label|class|range"),
        ("label huge", np.array([0, 1, 2, 10**12, 0, 1]), r"label|class|range"),
        ("float non-integer", np.array([0.0, 1.0, 2.0, 1.5, 0.0, 1.0]), r"label|integer|class"),
        ("float nan", np.array([0.0, 1.0, np.nan, 1.0, 0.0, 1.0]), r"nan|finite|\binf|label|integer"),
        ("n-1", np.array([0, 1, 2, 1, 0]), r"sample|length|mismatch|row|shape|same|number|inconsistent"),
        ("onehot width", np.eye(4)[[0, 1, 2, 3, 0, 1]], r"shape|output|column|class|target"),
        ("onehot nan", np.where(np.eye(3)[[0, 1, 2, 1, 0, 1]] == 1, np.nan, 0.0), r"nan|finite|\binf"),
        ("2-D single column labels", np.array([[0], [1], [2], [1], [0], [1]]), r"shape|output|column|class|target"),
        ("string labels", np.array(["a", "b", "c", "a", "b", "c"]), r"\bstr|dtype|type|numeric|label|integer|unicode"),
        ("complex", np.array([0, 1, 2, 1, 0, 1], dtype=np.complex128), r"complex|dtype|real|type|numeric|label"),
    ],
    "binary_cross_entropy": [
        ("nan", np.where(np.arange(18).reshape(6, 3) == 4, np.nan, 0.5), r"nan|finite|\binf"),
        ("n+1", np.full((7, 3), 0.5), r"sample|length|mismatch|row|shape|same|number|inconsistent"),
        ("outputs-1", np.full((6, 2), 0.5), r"shape|output|column|target"),
        ("1-D with n_out 3", np.full(6, 0.5), r"shape|output|column|target|dim"),
    ],
}
_Y_CASES = [(loss, c) for loss, cases in BAD_Y.items() for c in cases]


@pytest.mark.parametrize("method", Y_METHODS)
@pytest.mark.parametrize("loss,case", _Y_CASES, ids=[f"{l}-{c[0]}" for l, c in _Y_CASES])
def test_bad_y(nets, loss, case, method):
    _, y, pattern = case
    net = nets[loss]
    X, _ = _good(loss)
    _check_rejected(net, method, X, y, pattern)


def test_single_output_1d_y_is_accepted():
    net = fastbp.MLP([4, 5, 1], seed=0)
    X, _ = _good("mse")
    net.gradient(X, np.zeros(6))
    net.gradient(X, np.zeros((6, 1)))
    with raises(r"sample|length|mismatch|row|shape|same|number|inconsistent") as ei:
        net.gradient(X, np.zeros(5))
    _assert_clean(ei)


# --------------------------------------------------------------------------- hyper-parameters

BAD_HYPER = [
    ("train_step", dict(lr=0.0), r"lr|learning|rate|positive"),
    ("train_step", dict(lr=-0.1), r"lr|learning|rate|positive"),
    ("train_step", dict(lr=float("nan")), r"lr|learning|rate|finite|nan"),
    ("train_step", dict(lr=float("inf")), r"lr|learning|rate|finite|\binf"),
    ("fit", dict(lr=0.0), r"lr|learning|rate|positive"),
    ("fit", dict(lr=-1.0), r"lr|learning|rate|positive"),
    ("fit", dict(lr=float("nan")), r"lr|learning|rate|finite|nan"),
    ("fit", dict(lr=float("inf")), r"lr|learning|rate|finite|\binf"),
    ("fit", dict(batch_size=0), r"batch"),
    ("fit", dict(batch_size=-4), r"batch"),
    ("fit", dict(epochs=-1), r"epoch"),
]


@pytest.mark.parametrize("method,kw,pattern", BAD_HYPER, ids=[f"{m}-{k}" for m, k, _ in BAD_HYPER])
def test_bad_hyperparameters(nets, method, kw, pattern):
    net = nets["mse"]
    X, y = _good("mse")
    _check_rejected(net, method, X, y, pattern, **kw)


def test_accepted_edge_cases(nets):
    """Valid corners that must not be rejected."""
    net = nets["cross_entropy"]
    X, y = _good("cross_entropy", n=5)
    before = net.params.copy()
    hist = net.fit(X, y, epochs=0)  # epochs == 0 is a no-op
    assert list(hist.loss) == []
    np.testing.assert_array_equal(net.params, before)
    net.fit(X, y, epochs=1, batch_size=100, lr=0.1)  # batch larger than n: one short batch
    net.fit(X[:1], y[:1], epochs=1, batch_size=1, lr=0.1)  # a single sample
    net.train_step(X[:1], y[:1], lr=1e-3)
    assert net.predict(X[:1]).shape == (1, 3)
    # y with a single class present, labels as int32, uint8
    net.gradient(X, np.zeros(5, dtype=np.int32))
    net.gradient(X, np.full(5, 2, dtype=np.uint8))


def test_empty_X_and_y(nets):
    for loss, net in nets.items():
        X = np.ones((0, 4))
        y = np.zeros(0, dtype=np.int64) if loss == "cross_entropy" else np.ones((0, 3))
        for method in X_METHODS:
            _check_rejected(net, method, X, y, r"empty|zero|sample|at least")


@pytest.mark.parametrize("bad", ["label", "nan"])
def test_bad_value_in_last_batch_changes_nothing(nets, bad):
    """Validation happens before training starts: an error in the last mini-batch does not
    leave the earlier batches' updates behind."""
    net = nets["cross_entropy"]
    X, y = _good("cross_entropy", n=10)
    if bad == "label":
        y[-1] = 7
        pattern = r"label|class|range"
    else:
        X = X.copy()
        X[-1, 0] = np.nan
        pattern = r"nan|finite|\binf"
    _check_rejected(net, "fit", X, y, pattern, epochs=3, batch_size=2, lr=0.1, shuffle=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_finds_one_bad_value_anywhere(dtype):
    """The vectorised scan (blocks of 4096 bit patterns) misses nothing."""
    from fastbp._kernels.checks import all_finite
    a = np.random.default_rng(0).standard_normal(3 * 4096 + 17).astype(dtype)
    assert all_finite(a) and all_finite(a.reshape(-1, 1)) and all_finite(a[::3])
    for pos in (0, 4095, 4096, 8191, a.size - 1):
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[pos] = bad
            assert not all_finite(b)
            assert not all_finite(b.reshape(-1, 1))
            assert not all_finite(b[pos % 3::3])
    assert all_finite(np.array([np.finfo(dtype).max, -np.finfo(dtype).max, 0.0], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boundary_scan_finds_one_bad_value_anywhere(dtype):
    """The boundary's blocked numpy scan (``_validate._finite``) misses no position, in
    1-D and 2-D arrays of any layout, across its block edges."""
    from fastbp._validate import _FINITE_BLOCK, _finite
    n = 2 * _FINITE_BLOCK + 7
    a = np.random.default_rng(0).standard_normal(n).astype(dtype)
    wide = np.random.default_rng(1).standard_normal((3, _FINITE_BLOCK + 5)).astype(dtype)
    for arr in (a, a.reshape(-1, 1), a[::3], wide, wide.T):
        _finite(arr, "X")
        last = arr.size - 1
        for pos in {0, min(_FINITE_BLOCK - 1, last), min(_FINITE_BLOCK, last), last}:
            for bad in (np.nan, np.inf, -np.inf):
                b = arr.copy(order="K")
                b.flat[pos] = bad
                with pytest.raises(ValueError, match="NaN or infinite"):
                    _finite(b, "X")


def test_boundary_scan_of_a_large_array_in_two_halves_finds_each_bad_value():
    """From ``_FINITE_SPLIT`` elements on the main thread's scan gives its second half to
    the pool: a bad value on either side of the split, or at its edges, is found."""
    import numba
    from fastbp._validate import _FINITE_SPLIT, _finite
    a = np.zeros((_FINITE_SPLIT // 64 + 3, 64), np.float32)
    with fastbp.threads(2):
        if numba.get_num_threads() < 2:
            pytest.skip("one thread: the scan is not split")
        _finite(a, "y")
        n = a.shape[0]
        for row in (0, n // 2 - 1, n // 2, n // 2 + 1, n - 1):
            for bad in (np.nan, np.inf):
                a[row, 7] = bad
                with pytest.raises(ValueError, match="y contains NaN or infinite"):
                    _finite(a, "y")
                a[row, 7] = 0.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_boundary_scan_accepts_finite_values_whose_sum_overflows(dtype):
    """``_finite`` first sums each block (a finite sum proves it clean); finite values too
    large to sum are checked term by term: accepted, with no overflow warning, and one
    bad value among them is still found."""
    import warnings
    from fastbp._validate import _finite
    big = np.full((64, 8), np.finfo(dtype).max / 2, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _finite(big, "y")
    for bad in (np.nan, np.inf, -np.inf):
        b = big.copy()
        b[40, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            _finite(b, "y")
