"""Hypothesis battery over every public entry point.

Each call either works correctly or raises ValueError/TypeError with a clean
message (no Numba internals); never any other exception.  Accepted odd inputs
(integer/bool/float16 arrays, Fortran-ordered, strided, read-only arrays,
lists) give exactly the result of the explicitly converted contiguous array;
user arrays are never modified; a rejected call leaves the parameters as they
were.

A few module-level networks are reused so that Numba compiles only a handful of
signatures (inputs are converted to the network's dtype before any kernel).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastbp

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given, settings, strategies as st  # noqa: E402

try:
    from numba.core.errors import NumbaError
except ImportError:  # pragma: no cover
    NumbaError = ()

ERRORS = (ValueError, TypeError)
METHODS = ["predict", "evaluate", "gradient", "train_step", "fit"]
N_IN, N_OUT = 4, 3


def _make(loss, dtype):
    net = fastbp.MLP([N_IN, 5, N_OUT], activation="tanh", loss=loss, dtype=dtype, seed=0)
    net.params[:] = 0.5 * np.random.default_rng(1).standard_normal(net.n_params)
    return net


NETS = {
    "mse64": _make("mse", "float64"),
    "mse32": _make("mse", "float32"),
    "ce64": _make("cross_entropy", "float64"),
    "bce64": _make("binary_cross_entropy", "float64"),
}


def _check_clean(exc):
    assert isinstance(exc, ERRORS), f"wrong exception type {type(exc).__name__}: {exc}"
    if NumbaError:
        assert not isinstance(exc, NumbaError), f"a Numba error escaped: {exc!r}"
    msg = str(exc)
    assert msg.strip(), "empty error message"
    low = msg.lower()
    assert "numba" not in low and "typingerror" not in low and "nopython" not in low, msg
    assert len(msg) < 2000


def _good_y(key, n, rng):
    if key.startswith("mse"):
        return rng.standard_normal((n, N_OUT)).astype(NETS[key].dtype)
    if key == "ce64":
        return rng.integers(0, N_OUT, size=n)
    return rng.random((n, N_OUT))


def _call(net, method, X, y, **kw):
    """Run one entry point; return a comparable summary of the result and state."""
    if method == "predict":
        return net.predict(X)
    if method == "evaluate":
        return np.float64(net.evaluate(X, y))
    if method == "gradient":
        loss, grad = net.gradient(X, y)
        return np.concatenate([[loss], grad.astype(np.float64)])
    if method == "train_step":
        loss = net.train_step(X, y, lr=kw.pop("lr", 0.05), **kw)
        return np.concatenate([[loss], net.params.astype(np.float64)])
    if method == "fit":
        kw.setdefault("epochs", 2)
        kw.setdefault("batch_size", 3)
        kw.setdefault("lr", 0.05)
        hist = net.fit(X, y, **kw)
        return np.concatenate([hist.loss, net.params.astype(np.float64)])
    raise AssertionError(method)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), "results differ"


def _snapshot(a):
    if isinstance(a, np.ndarray):
        return (a.dtype, a.shape, a.tobytes(), a.flags.writeable)
    return repr(a)


def _expect_rejected(net, method, X, y, **kw):
    """The call raises a clean ValueError/TypeError and changes nothing."""
    before = net.params.copy()
    sx, sy = _snapshot(X), _snapshot(y)
    with pytest.raises(Exception) as ei:
        _call(net, method, X, y, **kw)
    _check_clean(ei.value)
    assert net.params.tobytes() == before.tobytes(), "a rejected call changed params"
    assert _snapshot(X) == sx and _snapshot(y) == sy, "a rejected call modified the input"


def _layout(a, layout):
    """``a`` (2-D or 1-D) in the requested memory layout; equal values."""
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],) if a.ndim == 2 else (2 * a.shape[0],),
                        dtype=a.dtype)
        if a.ndim == 2:
            wide[:, ::2] = a
            out = wide[:, ::2]
        else:
            wide[::2] = a
            out = wide[::2]
        assert not out.flags.c_contiguous
        return out
    if layout == "readonly":
        out = np.array(a, copy=True)
        out.flags.writeable = False
        return out
    if layout == "list":
        return a.tolist()
    raise AssertionError(layout)


X_DTYPES = [np.int8, np.int64, np.uint8, np.bool_, np.float16, np.float32, np.float64]


# ------------------------------------------------------------- accepted inputs
@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(sorted(NETS)), method=st.sampled_from(METHODS),
       dtype=st.sampled_from(X_DTYPES), layout=st.sampled_from(["C", "F", "strided", "readonly", "list"]),
       n=st.integers(1, 7), seed=st.integers(0, 2 ** 16))
def test_X_conversions_equal_explicit_conversion(key, method, dtype, layout, n, seed):
    net = NETS[key]
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        base = rng.integers(0, 2, size=(n, N_IN)).astype(np.bool_)
    elif dtype == np.uint8:
        base = rng.integers(0, 4, size=(n, N_IN)).astype(np.uint8)
    else:
        base = (rng.integers(-6, 7, size=(n, N_IN)) / 2).astype(dtype) if dtype in (
            np.float16, np.float32, np.float64) else rng.integers(-3, 4, size=(n, N_IN)).astype(dtype)
    X = _layout(base, layout)
    ref_X = np.ascontiguousarray(base.astype(net.dtype))
    y = _good_y(key, n, rng)
    sx, sy = _snapshot(X), _snapshot(y)
    before = net.params.copy()
    got = _call(net.copy(), method, X, y)
    want = _call(net.copy(), method, ref_X, y)
    _same(got, want)
    assert _snapshot(X) == sx and _snapshot(y) == sy, "user arrays were modified"
    assert net.params.tobytes() == before.tobytes()
    assert np.all(np.isfinite(got))


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(sorted(NETS)), method=st.sampled_from(METHODS[1:]),
       dtype=st.sampled_from(["same", np.int8, np.int32, np.uint8, np.bool_, np.float16,
                              np.float32, "float-labels"]),
       layout=st.sampled_from(["C", "F", "strided", "readonly", "list"]),
       n=st.integers(1, 6), seed=st.integers(0, 2 ** 16))
def test_y_conversions_equal_explicit_conversion(key, method, dtype, layout, n, seed):
    net = NETS[key]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN)).astype(net.dtype)
    if key == "ce64":  # integer class labels
        base = rng.integers(0, N_OUT, size=n)
        if dtype == "float-labels":
            base = base.astype(np.float64)
        elif dtype not in ("same", np.float16, np.float32, np.bool_):
            base = base.astype(dtype)
        ref_y = base.astype(np.int64)
    else:
        base = (rng.integers(0, 3, size=(n, N_OUT)) / 2).astype(net.dtype)
        if dtype == np.bool_:
            base = base > 0.4
        elif dtype not in ("same", "float-labels"):
            base = base.astype(dtype) if np.dtype(dtype).kind == "f" else (base * 2).astype(dtype) \
                if key.startswith("mse") else (base > 0.4).astype(dtype)
        ref_y = np.ascontiguousarray(base.astype(net.dtype))
    y = _layout(base, layout)
    sy = _snapshot(y)
    got = _call(net.copy(), method, X, y)
    want = _call(net.copy(), method, X, ref_y)
    _same(got, want)
    assert _snapshot(y) == sy


def test_one_output_network_accepts_1d_targets():
    net = fastbp.MLP([N_IN, 5, 1], activation="tanh", seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, N_IN)), rng.standard_normal(5)
    for method in METHODS[1:]:
        _same(_call(net.copy(), method, X, y), _call(net.copy(), method, X, y.reshape(-1, 1)))


# ------------------------------------------------------------- rejected inputs
def _bad_X(kind, n, rng):
    good = rng.standard_normal((n, N_IN))
    if kind == "complex":
        return good.astype(np.complex128)
    if kind == "object":
        return good.astype(object)
    if kind == "object-dicts":
        a = np.empty((n, N_IN), dtype=object)
        a[...] = {}
        return a
    if kind == "strings":
        return good.astype(str)
    if kind == "str":
        return "1,2,3,4"
    if kind == "bytes":
        return b"\x00" * 32
    if kind == "nan":
        good[rng.integers(n), rng.integers(N_IN)] = np.nan
        return good
    if kind == "inf":
        good[rng.integers(n), rng.integers(N_IN)] = -np.inf
        return good
    if kind == "nan-f16":
        g = good.astype(np.float16)
        g[0, 0] = np.inf
        return g
    if kind == "overflow-f32":  # finite in float64, inf once converted to float32
        good[0, 0] = 1e300
        return good
    if kind == "empty":
        return np.empty((0, N_IN))
    if kind == "no-features":
        return np.empty((n, 0))
    if kind == "wide":
        return rng.standard_normal((n, N_IN + 1))
    if kind == "narrow":
        return rng.standard_normal((n, N_IN - 1))
    if kind == "1d":
        return good[0]
    if kind == "3d":
        return good[None]
    if kind == "0d":
        return np.float64(1.0)
    if kind == "none":
        return None
    if kind == "ragged":
        return [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]
    if kind == "wide-strided-readonly":
        w = rng.standard_normal((n, 2 * N_IN + 2))[:, ::2]
        w.flags.writeable = False
        return w
    raise AssertionError(kind)


BAD_X = ["complex", "object", "object-dicts", "strings", "str", "bytes", "nan", "inf", "nan-f16",
         "empty", "no-features", "wide", "narrow", "1d", "3d", "0d", "none", "ragged",
         "wide-strided-readonly"]


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(sorted(NETS)), method=st.sampled_from(METHODS),
       kind=st.sampled_from(BAD_X), n=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_bad_X_is_rejected_cleanly(key, method, kind, n, seed):
    net = NETS[key]
    rng = np.random.default_rng(seed)
    X = _bad_X(kind, n, rng)
    y = _good_y(key, n, rng)
    _expect_rejected(net, method, X, y)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_float64_overflow_for_float32_network_is_rejected():
    X = _bad_X("overflow-f32", 3, np.random.default_rng(0))
    for method in METHODS:
        _expect_rejected(NETS["mse32"], method, X, _good_y("mse32", 3, np.random.default_rng(1)))


def _bad_y(key, kind, n, rng):
    if kind == "label-high":
        return np.array([0] * (n - 1) + [N_OUT])
    if kind == "label-negative":
        return np.array([-1] + [0] * (n - 1))
    if kind == "label-huge":
        return np.full(n, 2 ** 62, dtype=np.int64)
    if kind == "label-uint64-huge":
        return np.full(n, 2 ** 64 - 1, dtype=np.uint64)
    if kind == "label-fraction":
        return np.full(n, 0.5)
    if kind == "label-nan":
        return np.full(n, np.nan)
    if kind == "too-few":
        return _good_y(key, n + 1, rng)[:n - 1] if n > 1 else _good_y(key, 2, rng)
    if kind == "too-many":
        return _good_y(key, n + 1, rng)
    if kind == "columns":
        return rng.random((n, N_OUT + 1))
    if kind == "1d-multi-output" and key != "ce64":
        return rng.random(n)
    if kind == "1d-multi-output":
        return rng.random((n, 1))
    if kind == "3d":
        return rng.random((n, N_OUT, 1))
    if kind == "0d":
        return np.float64(0.0)
    if kind == "nan":
        y = rng.random((n, N_OUT))
        y[-1, 0] = np.nan
        return y
    if kind == "inf":
        y = rng.random((n, N_OUT))
        y[0, -1] = np.inf
        return y
    if kind == "complex":
        return rng.random((n, N_OUT)).astype(np.complex64)
    if kind == "object":
        return rng.random((n, N_OUT)).astype(object)
    if kind == "strings":
        return rng.integers(0, N_OUT, size=n).astype(str)
    if kind == "none":
        return None
    if kind == "prob-out-of-range":  # cross-entropies need targets in [0, 1]
        y = rng.random((n, N_OUT))
        y[0, 0] = 1.5 if key != "mse64" else np.nan
        return y
    raise AssertionError(kind)


BAD_Y = ["label-high", "label-negative", "label-huge", "label-uint64-huge", "label-fraction",
         "label-nan", "too-few", "too-many", "columns", "1d-multi-output", "3d", "0d", "nan",
         "inf", "complex", "object", "strings", "none", "prob-out-of-range"]
LABEL_ONLY = {"label-high", "label-negative", "label-huge", "label-uint64-huge", "label-fraction",
              "label-nan"}


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(["mse64", "ce64", "bce64"]), method=st.sampled_from(METHODS[1:]),
       kind=st.sampled_from(BAD_Y), n=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_bad_y_is_rejected_cleanly(key, method, kind, n, seed):
    if kind in LABEL_ONLY and key != "ce64":
        kind = "nan"
    net = NETS[key]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN))
    y = _bad_y(key, kind, n, rng)
    _expect_rejected(net, method, X, y)


# ----------------------------------------------------------------- constructor
_names = ["identity", "linear", "sigmoid", "logistic", "tanh", "relu", "leaky_relu", "elu",
          "softplus", "gelu", "softmax", "RELU", "swish", "", None, 3]
_width = st.one_of(st.integers(-2, 6), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2),
                   st.none(), st.integers(1, 6).map(np.int32), st.just(np.float64(3.0)))
_reals = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.integers(-3, 3),
                   st.booleans(), st.none(), st.just("0.1"), st.just(np.float32(0.5)))


_WILD = {
    "sizes": st.one_of(st.lists(_width, max_size=4),
                       st.sampled_from([None, 5, "345", (3, 2), np.array([3, 4, 2]), [[3], [2]]])),
    "activation": st.one_of(st.sampled_from(_names), st.lists(st.sampled_from(_names), max_size=3)),
    "output": st.one_of(st.none(), st.sampled_from(_names)),
    "loss": st.sampled_from(["mse", "cross_entropy", "binary_cross_entropy", "MSE",
                             "squared_error", "hinge", None, 1]),
    "init": st.sampled_from(["auto", "xavier", "he_uniform", "Kaiming", "lecun", None, 0]),
    "dtype": st.sampled_from(["float32", "float64", np.float32, "f8", "float16", "int32", complex,
                              object, "bogus", np.dtype("U3"), None]),
    "seed": st.one_of(st.none(), st.integers(-2, 2 ** 70), st.just("abc"), st.just(1.5)),
    "leaky_slope": _reals,
    "elu_alpha": _reals,
    "dropout": st.one_of(_reals, st.lists(st.sampled_from([0.0, 0.5, 1.0, -0.1, math.nan]),
                                          max_size=3)),
    "batch_norm": st.one_of(st.booleans(), st.lists(st.booleans(), max_size=3), st.none()),
    "bn_momentum": _reals,
    "bn_eps": _reals,
}


@st.composite
def _constructor_args(draw):
    """A valid configuration with up to two arguments replaced by wild values."""
    n_hidden = draw(st.integers(0, 2))
    kw = {
        "sizes": draw(st.lists(st.integers(1, 6), min_size=n_hidden + 2, max_size=n_hidden + 2)),
        "activation": draw(st.sampled_from(_names[:10])),
        "output": None,
        "loss": "mse",
        "init": draw(st.sampled_from(["auto", "xavier_normal", "he"])),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "seed": draw(st.integers(0, 100)),
        "leaky_slope": 0.01, "elu_alpha": 1.0,
        "dropout": draw(st.sampled_from([0.0, 0.3])),
        "batch_norm": draw(st.booleans()),
        "bn_momentum": 0.1, "bn_eps": 1e-5,
    }
    for key in draw(st.lists(st.sampled_from(sorted(_WILD)), max_size=2, unique=True)):
        kw[key] = draw(_WILD[key])
    return kw


@settings(max_examples=60, deadline=None)
@given(kw=st.one_of(_constructor_args(), st.fixed_dictionaries(_WILD)))
def test_constructor_accepts_or_rejects_cleanly(kw):
    kw = dict(kw)
    sizes = kw.pop("sizes")
    try:
        net = fastbp.MLP(sizes, **kw)
    except Exception as exc:
        event(f"rejected: {type(exc).__name__}")
        _check_clean(exc)
        return
    event("constructed")
    widths = list(net.sizes)
    assert all(isinstance(s, int) and s > 0 for s in widths) and len(widths) >= 2
    bn = list(net.batch_norm) + [False]
    assert net.n_params == sum(a * b + b + 2 * b * f for a, b, f in zip(widths[:-1], widths[1:], bn))
    assert net.dtype in (np.float32, np.float64)
    assert np.all(np.isfinite(net.params))
    assert math.isfinite(net.leaky_slope) and net.leaky_slope >= 0
    assert math.isfinite(net.elu_alpha) and net.elu_alpha > 0
    assert all(0 <= p < 1 for p in net.dropout) and len(net.batch_norm) == len(widths) - 2
    out = net.predict(np.ones((2, widths[0]), dtype=net.dtype))
    assert out.shape == (2, widths[-1]) and np.all(np.isfinite(out))


# ------------------------------------------------------------ hyper-parameters
_hyper = st.fixed_dictionaries({}, optional={
    "epochs": st.sampled_from([0, 1, 2, -1, 1.0, True, np.int64(2), None, "2"]),
    "batch_size": st.sampled_from([1, 3, 10 ** 9, 0, -2, 2.5, False, np.int32(4), None]),
    "lr": st.sampled_from([0.01, np.float32(0.02), 0.0, -0.1, math.nan, math.inf, True, "0.1", None,
                           1e-300]),
    "optimizer": st.sampled_from(["sgd", "adam", "AdamW", "rmsprop", 5, None]),
    "momentum": st.sampled_from([0.0, 0.9, 1.0, -0.5, math.nan, "0.9"]),
    "nesterov": st.sampled_from([True, False]),
    "weight_decay": st.sampled_from([0.0, 1e-3, -1.0, math.inf]),
    "betas": st.sampled_from([(0.9, 0.999), (1.0, 0.9), (0.9,), 5]),
    "eps": st.sampled_from([1e-8, 0.0, -1.0]),
    "on_divergence": st.sampled_from(["raise", "warn", "ignore", None]),
    "shuffle": st.sampled_from([True, False]),
    "seed": st.sampled_from([None, 0, 7, -1, "x"]),
    "bogus_option": st.just(1),
})


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(["mse64", "ce64"]), method=st.sampled_from(["fit", "train_step"]),
       kw=_hyper)
def test_training_options_accept_or_reject_cleanly(key, method, kw):
    net = NETS[key].copy()
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, N_IN))
    y = _good_y(key, 7, rng)
    if method == "train_step":
        for k in ("epochs", "batch_size", "on_divergence", "shuffle", "seed"):
            kw.pop(k, None)
    before = net.params.copy()
    try:
        res = _call(net, method, X, y, **kw)
    except Exception as exc:
        event(f"rejected: {type(exc).__name__}")
        _check_clean(exc)
        assert net.params.tobytes() == before.tobytes(), "a rejected call changed params"
        return
    event("accepted")
    assert np.all(np.isfinite(res)) and np.all(np.isfinite(net.params))


def test_non_callable_callback_rejected_before_training():
    net = NETS["mse64"].copy()
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((7, N_IN)), _good_y("mse64", 7, rng)
    _expect_rejected(net, "fit", X, y, callbacks=[42])


@pytest.mark.parametrize("shuffle", [1, np.bool_(False), None])
def test_shuffle_flag_types(shuffle):
    """Truthy/falsy non-bool shuffle values behave like bool(shuffle) or are rejected cleanly."""
    net = NETS["mse64"]
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((7, N_IN)), _good_y("mse64", 7, rng)
    try:
        got = _call(net.copy(), "fit", X, y, shuffle=shuffle)
    except Exception as exc:
        _check_clean(exc)
        return
    _same(got, _call(net.copy(), "fit", X, y, shuffle=bool(shuffle)))


def test_optimizer_bound_to_other_network_is_rejected():
    other = fastbp.MLP([N_IN, 7, N_OUT], seed=0)
    opt = fastbp.Adam(0.01)
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((7, N_IN)), _good_y("mse64", 7, rng)
    other.fit(X, y, epochs=1, optimizer=opt)
    net = NETS["mse64"]
    for method in ("fit", "train_step"):
        _expect_rejected(net, method, X, y, optimizer=opt)
    with pytest.raises(TypeError, match="optimizer"):
        net.copy().fit(X, y, optimizer=opt, momentum=0.9)
