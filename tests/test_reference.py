"""fastbp against the slow NumPy reference (tests/naive.py), plus the structural contract:
flat parameter layout and views, dtype preservation, float32 / float64 agreement, seeding,
initialisation statistics, input conversion, fit semantics (batches in order, short last
batch, seeded shuffling).  The training references run on every training engine (the
``engine`` fixture, tests/engines.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import engines
import naive

fastbp = pytest.importorskip("fastbp")

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

DTYPES = ["float32", "float64"]

# (hidden activation(s), output, loss, label kind)
CONFIGS = [
    ("relu", "identity", "mse", None),
    ("sigmoid", "sigmoid", "mse", None),
    ("tanh", "tanh", "mse", None),
    ("identity", "softmax", "mse", None),
    ("leaky_relu", "softmax", "cross_entropy", "int"),
    ("elu", "softmax", "cross_entropy", "onehot"),
    ("softplus", "sigmoid", "binary_cross_entropy", None),
    ("gelu", "identity", "mse", None),
    (["tanh", "relu"], "softmax", "cross_entropy", "int"),
    (["gelu", "elu", "sigmoid"], "sigmoid", "binary_cross_entropy", None),
]
CONFIG_IDS = [f"{h if isinstance(h, str) else '+'.join(h)}-{o}-{l}" for h, o, l, _ in CONFIGS]


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=1e-4, atol=1e-5)


def assert_close(actual, desired, dtype, what=""):
    """rtol/atol for the dtype, with the absolute part scaled by the magnitude of the reference
    (a gradient entry that is ~0 by cancellation is only known to ~eps * scale)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    t = _tol(dtype)
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=t["rtol"], atol=t["atol"] * scale, err_msg=what)


def _make(cfg, dtype, seed=0, n=9, sizes=None):
    hidden, output, loss, kind = cfg
    n_hidden = 1 if isinstance(hidden, str) else len(hidden)
    if sizes is None:
        sizes = [6] + [8, 5, 7][:n_hidden] + [3]
    net = fastbp.MLP(sizes, activation=hidden, output=output, loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 77)
    # nonzero biases, in the net's own dtype
    net.params[:] = (net.params.astype(np.float64) + 0.1 * rng.standard_normal(net.n_params)).astype(net.dtype)
    X = rng.standard_normal((n, sizes[0]))
    y = naive.make_targets(loss, n, sizes[-1], rng, kind or "int")
    return net, X, y


# --------------------------------------------------------------------------- structure


def test_flat_layout_and_views():
    sizes = [4, 6, 5, 3]
    net = fastbp.MLP(sizes, activation="tanh", seed=1)
    n_params = sum(sizes[i + 1] * sizes[i] + sizes[i + 1] for i in range(len(sizes) - 1))
    assert net.n_params == n_params
    p = net.params
    assert isinstance(p, np.ndarray) and p.ndim == 1 and p.shape == (n_params,)
    assert p.flags.c_contiguous
    assert net.sizes == tuple(sizes) and isinstance(net.sizes, tuple)
    assert len(net.weights) == len(net.biases) == len(sizes) - 1
    off = 0
    for l in range(len(sizes) - 1):
        W, b = net.weights[l], net.biases[l]
        assert W.shape == (sizes[l + 1], sizes[l]) and b.shape == (sizes[l + 1],)
        assert W.dtype == p.dtype and b.dtype == p.dtype
        assert np.shares_memory(W, p) and np.shares_memory(b, p)
        np.testing.assert_array_equal(p[off : off + W.size], W.ravel(order="C"))
        off += W.size
        np.testing.assert_array_equal(p[off : off + b.size], b)
        assert np.all(b == 0), "biases start at 0"
        off += b.size
    assert off == n_params
    np.testing.assert_array_equal(naive.flatten(net.weights, net.biases), p)

    # writing a view changes params, writing params changes the views
    net.weights[1][2, 3] = 42.0
    assert p[sizes[1] * sizes[0] + sizes[1] + 2 * sizes[1] + 3] == 42.0
    net.biases[2][:] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(p[-3:], [1.0, 2.0, 3.0])
    p[0] = -7.0
    assert net.weights[0][0, 0] == -7.0
    p[sizes[1] * sizes[0]] = 0.5
    assert net.biases[0][0] == 0.5
    # and the network uses what was written
    X = np.ones((2, 4))
    ref = naive.forward(net, X)[-1]
    np.testing.assert_allclose(net.predict(X), ref, rtol=1e-10, atol=1e-12)


def test_metadata_and_default_outputs():
    net = fastbp.MLP([3, 4, 2])
    assert net.loss == "mse" and net.activations == ("relu", "identity")
    assert isinstance(net.activations, tuple)
    assert net.dtype == np.dtype("float64") and isinstance(net.dtype, np.dtype)
    assert fastbp.MLP([3, 4, 2], loss="cross_entropy").activations == ("relu", "softmax")
    assert fastbp.MLP([3, 4, 2], loss="binary_cross_entropy").activations == ("relu", "sigmoid")
    net = fastbp.MLP([3, 4, 5, 2], activation=["tanh", "gelu"], output="tanh", dtype=np.float32)
    assert net.activations == ("tanh", "gelu", "tanh") and net.dtype == np.dtype("float32")
    assert fastbp.MLP([3, 2], output="sigmoid").activations == ("sigmoid",)  # perceptron
    assert fastbp.MLP([3, 4, 5, 2], activation="elu").activations == ("elu", "elu", "identity")


# --------------------------------------------------------------------------- vs naive


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_forward_and_loss_match_naive(cfg, dtype):
    net, X, y = _make(cfg, dtype)
    out = net.predict(X)
    assert out.dtype == np.dtype(dtype) and out.shape == (X.shape[0], net.sizes[-1])
    assert_close(out, naive.forward(net, X)[-1], dtype, "predict")
    E = net.evaluate(X, y)
    assert isinstance(E, float)
    assert_close(E, naive.loss(net, X, y), dtype, "evaluate")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_gradient_matches_naive(cfg, dtype):
    net, X, y = _make(cfg, dtype)
    E, g = net.gradient(X, y)
    E_ref, g_ref = naive.gradient(net, X, y)
    assert isinstance(E, float)
    assert g.dtype == np.dtype(dtype) and g.shape == (net.n_params,)
    assert_close(E, E_ref, dtype, "loss")
    assert_close(g, g_ref, dtype, "gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS[::3], ids=CONFIG_IDS[::3])
def test_train_step_matches_naive(cfg, dtype):
    net, X, y = _make(cfg, dtype)
    E_ref, new_ref = naive.sgd_step(net, X, y, lr=0.3)
    p = net.params
    E = net.train_step(X, y, lr=0.3)
    assert isinstance(E, float)
    assert net.params is p or np.shares_memory(net.params, p), "update must be in place"
    assert net.params.dtype == np.dtype(dtype)
    assert_close(E, E_ref, dtype, "loss before the update")
    assert_close(net.params, new_ref, dtype, "params after one step")
    # the loss is now the loss at the new params
    assert_close(net.evaluate(X, y), naive.loss(net, X, y), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_one_step_on_every_engine_matches_naive(cfg, dtype, engine):
    """One full-batch SGD step by fit, on each training engine (tests/engines.py)."""
    net, X, y = _make(cfg, dtype)
    E_ref, new_ref = naive.sgd_step(net, X, y, lr=0.3)
    losses = engines.fit(engine, net, X, y, epochs=1, lr=0.3)
    assert net.params.dtype == np.dtype(dtype)
    assert_close(losses[0], E_ref, dtype, f"{engine}: loss before the update")
    assert_close(net.params, new_ref, dtype, f"{engine}: params after one step")


def test_train_step_default_lr_is_sgd_default_0_01():
    # train_step and fit share one default: SGD's lr=0.01 (fastbp.network.DEFAULT_LR)
    net, X, y = _make(CONFIGS[0], "float64")
    _, new_ref = naive.sgd_step(net, X, y, lr=0.01)
    net.train_step(X, y)
    assert_close(net.params, new_ref, "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,batch_size", [(37, 8), (32, 8), (10, 32), (5, 1)])
def test_fit_without_shuffle_is_sequential_sgd(dtype, n, batch_size, engine):
    cfg = ("tanh", "softmax", "cross_entropy", "int")
    net, X, y = _make(cfg, dtype, seed=3, n=n)
    epochs, lr = 3, 0.05
    ref_params, ref_hist = naive.fit_sequential(net, X, y, epochs=epochs, batch_size=batch_size, lr=lr)
    losses = engines.fit(engine, net, X, y, epochs=epochs, batch_size=batch_size, lr=lr)
    assert net.params.dtype == np.dtype(dtype)
    # float32 drifts a little more over several steps
    t = dict(rtol=1e-9, atol=1e-11) if dtype == "float64" else dict(rtol=5e-4, atol=5e-5)
    np.testing.assert_allclose(net.params, ref_params, **t)
    losses = [float(v) for v in losses]
    assert len(losses) == epochs and all(isinstance(v, float) for v in losses)
    for e in range(epochs):
        b = ref_hist[e]
        if n % batch_size == 0 or len(b) == 1:
            # all batches the same size: the epoch's mean training loss is unambiguous
            np.testing.assert_allclose(losses[e], np.mean(b), **t)
        else:
            assert min(b) - 1e-4 <= losses[e] <= max(b) + 1e-4


def test_fit_defaults_and_return():
    """Defaults: epochs=1, batch_size=32, lr=0.01; with shuffle=False that is one pass of
    sequential batches of 32."""
    cfg = ("relu", "identity", "mse", None)
    net, X, y = _make(cfg, "float64", seed=5, n=70)
    ref_params, ref_hist = naive.fit_sequential(net, X, y, epochs=1, batch_size=32, lr=0.01)
    hist = net.fit(X, y, shuffle=False)
    assert len(hist.loss) == 1
    np.testing.assert_allclose(net.params, ref_params, rtol=1e-9, atol=1e-11)


def test_fit_full_batch_shuffle_is_gradient_descent(engine):
    """With one batch per epoch, shuffling cannot matter (up to summation order)."""
    cfg = ("sigmoid", "identity", "mse", None)
    net, X, y = _make(cfg, "float64", seed=4, n=20)
    ref_params, _ = naive.fit_sequential(net, X, y, epochs=5, batch_size=20, lr=0.2)
    engines.fit(engine, net, X, y, epochs=5, batch_size=20, lr=0.2, shuffle=True, seed=9)
    np.testing.assert_allclose(net.params, ref_params, rtol=1e-9, atol=1e-11)


def test_fit_shuffle_seed_reproducible():
    cfg = ("tanh", "identity", "mse", None)
    a, X, y = _make(cfg, "float64", seed=6, n=40)
    b, _, _ = _make(cfg, "float64", seed=6, n=40)
    c, _, _ = _make(cfg, "float64", seed=6, n=40)
    d, _, _ = _make(cfg, "float64", seed=6, n=40)
    np.testing.assert_array_equal(a.params, b.params)
    ha = a.fit(X, y, epochs=3, batch_size=7, lr=0.05, shuffle=True, seed=123)
    hb = b.fit(X, y, epochs=3, batch_size=7, lr=0.05, shuffle=True, seed=123)
    c.fit(X, y, epochs=3, batch_size=7, lr=0.05, shuffle=True, seed=124)
    d.fit(X, y, epochs=3, batch_size=7, lr=0.05, shuffle=False)
    np.testing.assert_array_equal(a.params, b.params)
    assert list(ha.loss) == list(hb.loss)
    assert not np.array_equal(a.params, c.params), "different shuffle seeds gave identical training"
    assert not np.array_equal(a.params, d.params), "shuffle=True gave the same result as no shuffling"


def test_fit_shuffle_is_a_permutation_of_batches(engine):
    """Each epoch with shuffle visits every sample exactly once: with lr tiny the total update
    is first-order the full-data gradient summed over batches, whatever the order.  The
    second-order rest (~10 lr |H g|) depends on the batch order, which differs by engine:
    lr 1e-8 keeps it below the tolerance for every order (at 1e-7 it is ~1e-6)."""
    cfg = ("tanh", "identity", "mse", None)
    net, X, y = _make(cfg, "float64", seed=8, n=24)
    p0 = net.params.copy()
    lr = 1e-8
    engines.fit(engine, net, X, y, epochs=1, batch_size=6, lr=lr, shuffle=True, seed=1)
    # sum over 4 batches of (mean grad over 6 samples) = 4 * full mean gradient
    _, g_full = naive.gradient(net, X, y)  # (params have moved by ~1e-8: second order)
    np.testing.assert_allclose((p0 - net.params) / lr, 4 * g_full, rtol=1e-5, atol=1e-7)


def test_fit_epochs_zero_is_a_no_op():
    net, X, y = _make(CONFIGS[0], "float64", n=10)
    before = net.params.copy()
    hist = net.fit(X, y, epochs=0)
    assert list(hist.loss) == []
    np.testing.assert_array_equal(net.params, before)


def test_fit_loss_decreases():
    cfg = ("tanh", "identity", "mse", None)
    net, X, y = _make(cfg, "float64", seed=2, n=64)
    hist = net.fit(X, y, epochs=30, batch_size=8, lr=0.05, shuffle=True, seed=0)
    assert len(hist.loss) == 30
    assert hist.loss[-1] < 0.7 * hist.loss[0]


# --------------------------------------------------------------------------- targets forms


def test_int_labels_equal_one_hot():
    net, X, _ = _make(("gelu", "softmax", "cross_entropy", "int"), "float64", n=11)
    lab = np.random.default_rng(0).integers(0, 3, size=11)
    onehot = np.eye(3)[lab]
    E1, g1 = net.gradient(X, lab)
    E2, g2 = net.gradient(X, onehot)
    assert E1 == pytest.approx(E2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)
    for lab_dtype in (np.int32, np.int64, np.uint8, np.float64):  # integer-valued floats are labels too
        E3, g3 = net.gradient(X, lab.astype(lab_dtype))
        assert E3 == pytest.approx(E1, rel=1e-12)
        np.testing.assert_allclose(g3, g1, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss,output", [("mse", "identity"), ("binary_cross_entropy", "sigmoid")])
def test_single_output_1d_targets_equal_2d(loss, output):
    net = fastbp.MLP([4, 5, 1], activation="tanh", output=output, loss=loss, seed=0)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 4))
    y = rng.random(8)
    E1, g1 = net.gradient(X, y)
    E2, g2 = net.gradient(X, y.reshape(-1, 1))
    assert E1 == E2
    np.testing.assert_array_equal(g1, g2)
    assert_close(E1, naive.loss(net, X, y), "float64")


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.float64])
def test_dtype_preserved_everywhere(dtype):
    dt = np.dtype(dtype)
    net = fastbp.MLP([4, 6, 3], activation="tanh", loss="cross_entropy", dtype=dtype, seed=0)
    assert net.dtype == dt and net.params.dtype == dt
    assert all(w.dtype == dt for w in net.weights) and all(b.dtype == dt for b in net.biases)
    rng = np.random.default_rng(0)
    X64 = rng.standard_normal((5, 4))
    lab = np.array([0, 1, 2, 1, 0])
    for X in (X64, X64.astype(np.float32), X64.astype(np.float64), (X64 * 3).astype(np.int64), X64 > 0):
        assert net.predict(X).dtype == dt
        E, g = net.gradient(X, lab)
        assert g.dtype == dt and isinstance(E, float)
        assert isinstance(net.evaluate(X, lab), float)
    p = net.params
    E = net.train_step(X64, lab, lr=0.1)
    assert isinstance(E, float) and net.params.dtype == dt and np.shares_memory(net.params, p)
    hist = net.fit(X64, lab, epochs=2, batch_size=2, lr=0.1)
    assert net.params.dtype == dt and np.shares_memory(net.params, p)
    assert all(isinstance(v, float) for v in hist.loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_int_and_bool_inputs_are_converted(dtype):
    net = fastbp.MLP([3, 5, 2], activation="relu", dtype=dtype, seed=0)
    Xi = np.array([[1, 0, 2], [3, -1, 0]], dtype=np.int32)
    Xb = Xi > 0
    np.testing.assert_array_equal(net.predict(Xi), net.predict(Xi.astype(dtype)))
    np.testing.assert_array_equal(net.predict(Xb), net.predict(Xb.astype(dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    net, X, y = _make(("tanh", "identity", "mse", None), dtype, n=12)
    Xf = np.asfortranarray(X)
    Xs = np.repeat(X, 2, axis=0)[::2]
    assert not Xf.flags.c_contiguous and not Xs.flags.c_contiguous
    ref = net.predict(np.ascontiguousarray(X))
    assert_close(net.predict(Xf), ref, dtype)
    assert_close(net.predict(Xs), ref, dtype)
    E, g = net.gradient(X, y)
    E2, g2 = net.gradient(Xf, np.asfortranarray(y))
    assert_close(E2, E, dtype)
    assert_close(g2, g, dtype)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_float32_and_float64_agree(cfg):
    n64, X, y = _make(cfg, "float64", seed=5)
    n32, _, _ = _make(cfg, "float32", seed=5)
    n32.params[:] = n64.params.astype(np.float32)
    n64.params[:] = n32.params.astype(np.float64)  # identical values in both nets
    assert_close(n32.predict(X), n64.predict(X), "float32")
    E32, g32 = n32.gradient(X, y)
    E64, g64 = n64.gradient(X, y)
    assert_close(E32, E64, "float32")
    assert_close(g32, g64, "float32")
    # one SGD step each
    n32.train_step(X, y, lr=0.1)
    n64.train_step(X, y, lr=0.1)
    assert_close(n32.params, n64.params, "float32")


# --------------------------------------------------------------------------- seeding and init


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal"])
def test_same_seed_same_params(init, dtype):
    a = fastbp.MLP([7, 9, 4], init=init, dtype=dtype, seed=42)
    b = fastbp.MLP([7, 9, 4], init=init, dtype=dtype, seed=42)
    c = fastbp.MLP([7, 9, 4], init=init, dtype=dtype, seed=43)
    assert a.params.tobytes() == b.params.tobytes()
    assert not np.array_equal(a.params, c.params)
    assert not np.shares_memory(a.params, b.params)


def test_unseeded_nets_differ():
    a = fastbp.MLP([7, 9, 4])
    b = fastbp.MLP([7, 9, 4])
    assert not np.array_equal(a.params, b.params)


def test_seed_does_not_depend_on_global_numpy_state():
    np.random.seed(0)
    a = fastbp.MLP([7, 9, 4], seed=5)
    np.random.seed(1)
    np.random.random(100)
    b = fastbp.MLP([7, 9, 4], seed=5)
    np.testing.assert_array_equal(a.params, b.params)


def _expected(init, fan_in, fan_out):
    """(std, uniform bound or None)"""
    if init == "xavier_uniform":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return a / math.sqrt(3.0), a
    if init == "xavier_normal":
        return math.sqrt(2.0 / (fan_in + fan_out)), None
    if init == "he_uniform":
        a = math.sqrt(6.0 / fan_in)
        return a / math.sqrt(3.0), a
    if init == "he_normal":
        return math.sqrt(2.0 / fan_in), None
    raise ValueError(init)


@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal"])
def test_init_statistics(init):
    """Layer 0 is 400 x 300 (fan_in 300, fan_out 400); layer 1 is 10 x 400."""
    net = fastbp.MLP([300, 400, 10], activation="tanh", init=init, seed=0)
    for l, (fan_in, fan_out) in enumerate([(300, 400), (400, 10)]):
        W = net.weights[l].astype(np.float64)
        std, bound = _expected(init, fan_in, fan_out)
        assert abs(W.mean()) < 0.05 * std, f"layer {l}: mean {W.mean()}"
        assert abs(W.std() / std - 1.0) < 0.10, f"layer {l}: std {W.std():.5f}, expected {std:.5f}"
        np.testing.assert_array_equal(net.biases[l], 0.0)
        if l == 0:
            if bound is not None:
                assert np.max(np.abs(W)) <= bound
                assert np.max(np.abs(W)) > 0.99 * bound
                # flat histogram: each quarter of [-a, a] holds ~25 %
                q = np.histogram(W, bins=4, range=(-bound, bound))[0] / W.size
                np.testing.assert_allclose(q, 0.25, atol=0.01)
            else:
                # a normal has ~8 % of its mass beyond sqrt(3) std (a uniform has none)
                frac = np.mean(np.abs(W) > math.sqrt(3.0) * std)
                assert frac > 0.02, f"{init} looks uniform (fraction beyond sqrt(3) std: {frac})"


@pytest.mark.parametrize("alias,canonical", [("xavier", "xavier_uniform"), ("glorot", "xavier_uniform"), ("he", "he_normal"), ("kaiming", "he_normal")])
def test_init_aliases(alias, canonical):
    a = fastbp.MLP([20, 30, 5], activation="tanh", init=alias, seed=3)
    b = fastbp.MLP([20, 30, 5], activation="tanh", init=canonical, seed=3)
    np.testing.assert_array_equal(a.params, b.params)


@pytest.mark.parametrize(
    "activation,canonical",
    [("relu", "he_normal"), (["relu", "leaky_relu"], "he_normal"), ("tanh", "xavier_uniform"), ("sigmoid", "xavier_uniform"), (["relu", "tanh"], "xavier_uniform")],
)
def test_init_auto(activation, canonical):
    sizes = [20, 30, 5] if isinstance(activation, str) else [20, 30, 25, 5]
    a = fastbp.MLP(sizes, activation=activation, init="auto", seed=3)
    b = fastbp.MLP(sizes, activation=activation, init=canonical, seed=3)
    c = fastbp.MLP(sizes, activation=activation, seed=3)  # "auto" is the default
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(c.params, b.params)


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["sigmoid", "tanh", "softmax", "identity"])
def test_large_preactivations_stay_finite(output, dtype):
    net = fastbp.MLP([2, 3], output=output, dtype=dtype, seed=0)
    net.weights[0][:] = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    X = np.array([[800.0, 0.0], [-800.0, 30.0], [0.0, -1000.0]])
    out = net.predict(X)
    assert np.all(np.isfinite(out))
    if output == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    if output == "sigmoid":
        assert np.all((out >= 0) & (out <= 1))


# --------------------------------------------------------------------------- property-based

if given is not None:
    _hidden = st.sampled_from(naive.HIDDEN)
    _out_loss = st.sampled_from(
        [("identity", "mse", None), ("sigmoid", "mse", None), ("tanh", "mse", None), ("softmax", "mse", None),
         ("softmax", "cross_entropy", "int"), ("softmax", "cross_entropy", "onehot"), ("sigmoid", "binary_cross_entropy", None)]
    )

    _arch = dict(
        sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
        hidden=st.data(),
        out_loss=_out_loss,
        n=st.integers(1, 9),
        seed=st.integers(0, 2**31 - 1),
    )

    @pytest.mark.parametrize("engine", [e for e in engines.ENGINES if e != "generated"])
    @given(**_arch)
    def test_random_architectures_match_naive(engine, sizes, hidden, out_loss, n, seed):
        _random_architecture_matches_naive(engine, sizes, hidden, out_loss, n, seed)

    # Every example is a new architecture, so a new generated kernel to compile (seconds
    # each); a third of the examples (the profile's share: more under fastbp-thorough).
    @settings(max_examples=max(8, settings.default.max_examples // 3))
    @given(**_arch)
    def test_random_architectures_match_naive_generated(sizes, hidden, out_loss, n, seed):
        _random_architecture_matches_naive("generated", sizes, hidden, out_loss, n, seed)

    def _random_architecture_matches_naive(engine, sizes, hidden, out_loss, n, seed):
        output, loss, kind = out_loss
        acts = hidden.draw(st.lists(_hidden, min_size=len(sizes) - 2, max_size=len(sizes) - 2))
        net = fastbp.MLP(sizes, activation=acts if acts else "relu", output=output, loss=loss, seed=seed)
        rng = np.random.default_rng(seed)
        net.params[:] = net.params + 0.1 * rng.standard_normal(net.n_params)
        X = rng.standard_normal((n, sizes[0]))
        y = naive.make_targets(loss, n, sizes[-1], rng, kind or "int")
        assert_close(net.predict(X), naive.forward(net, X)[-1], "float64")
        E, g = net.gradient(X, y)
        E_ref, g_ref = naive.gradient(net, X, y)
        assert_close(E, E_ref, "float64")
        assert_close(g, g_ref, "float64")
        before = net.params.copy()
        on_engine = net.copy()
        E_step = net.train_step(X, y, lr=0.05)
        assert_close(E_step, E_ref, "float64")
        assert_close(net.params, before - 0.05 * g_ref, "float64")
        losses = engines.fit(engine, on_engine, X, y, epochs=1, lr=0.05)
        assert_close(losses[0], E_ref, "float64", engine)
        assert_close(on_engine.params, before - 0.05 * g_ref, "float64", engine)


def test_fit_verbose(capsys):
    net, X, y = _make(CONFIGS[0], "float64", n=10)
    net.fit(X, y, epochs=2, batch_size=4, verbose=False)
    assert capsys.readouterr().out == ""
    net.fit(X, y, epochs=2, batch_size=4, verbose=True)
    assert capsys.readouterr().out.strip() != ""
