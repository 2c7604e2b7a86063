"""Huber, MAE, quantile (pinball) and Poisson losses.

Conventions under test (see ``fastbp/_kernels/losses.py``): per sample, summed over the
outputs, averaged over the batch; ``r = output - target``.

* huber:    r^2/2 for |r| <= delta, else delta (|r| - delta/2)
* mae:      |r|, subgradient sign(0) = 0
* quantile: tau (d - y) if y <= d else (1 - tau)(y - d), subgradient 0 at r = 0
* poisson:  exp output y = exp(z); half the Poisson deviance exp(z) - d z + d log d - d

Finite differences: the losses' own kinks (MAE and quantile at r = 0; Huber's second
derivative jumps at |r| = delta) are kept at least ``MARGIN`` away from every output, by
drawing targets relative to the network's current outputs.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import naive
from test_gradients import FD_STEP, _check

fastbp = pytest.importorskip("fastbp")
import fastbp.jit  # noqa: E402

ROBUST = ("huber", "mae", "quantile")
MARGIN = 0.2


def _kink_free_targets(net, X, rng):
    """Targets whose residuals avoid 0 and +-huber_delta by at least MARGIN (delta/4 if less)."""
    out = naive.forward(net, X)[-1]
    n, m = out.shape
    if net.loss == "poisson":
        return rng.uniform(0.0, 3.0, (n, m)) * (rng.random((n, m)) > 0.2)  # some zeros
    delta = net.huber_delta
    gap = min(MARGIN, delta / 4)
    # |r| in [gap, delta - gap] (quadratic part) or [delta + gap, 3 delta]
    small = rng.uniform(gap, delta - gap, (n, m))
    large = rng.uniform(delta + gap, 3.0 * delta, (n, m))
    mag = np.where(rng.random((n, m)) < 0.5, small, large)
    sign = np.where(rng.random((n, m)) < 0.5, -1.0, 1.0)
    return out - sign * mag


def _case(loss, output, depth, seed, batch=6, **kw):
    sizes = {1: [4, 3], 2: [4, 5, 3], 3: [3, 5, 4, 3]}[depth]
    net = fastbp.MLP(sizes, activation="tanh", output=output, loss=loss, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    net.params[:] = net.params + 0.1 * rng.standard_normal(net.n_params)
    X = rng.standard_normal((batch, sizes[0]))
    return net, X, _kink_free_targets(net, X, rng)


CASES = [(loss, out) for loss in ROBUST for out in ("identity", "sigmoid", "tanh", "softmax")]
CASES += [("poisson", "exp")]


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("loss,output", CASES, ids=[f"{l}-{o}" for l, o in CASES])
def test_finite_differences_and_reference(loss, output, depth):
    kw = {"huber_delta": 0.7} if loss == "huber" else {"quantile": 0.8} if loss == "quantile" \
        else {}
    net, X, y = _case(loss, output, depth, seed=depth + 10 * CASES.index((loss, output)), **kw)
    E, g = net.gradient(X, y)
    what = f"{loss}/{output} depth={depth}"
    g_fd = naive.finite_difference(lambda: net.evaluate(X, y), net.params, h=FD_STEP)
    _check(g, g_fd, what)
    E_ref, g_ref = naive.gradient(net, X, y)
    assert E == pytest.approx(E_ref, rel=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-13)
    assert E == pytest.approx(net.evaluate(X, y), rel=1e-13)


def _fit_one_epoch(net, X, y, **kw):
    net.fit(X, y, epochs=1, batch_size=2, lr=0.05, shuffle=False, **kw)
    return net.params.copy()


@pytest.mark.parametrize("loss,output", [("huber", "identity"), ("mae", "sigmoid"),
                                         ("quantile", "tanh"), ("quantile", "softmax"),
                                         ("poisson", "exp")])
def test_sgd_epoch_both_engines_match_reference(loss, output):
    """fit's small-network engine and the general engine (forced by a no-op clip_norm)
    give the reference's plain SGD trajectory."""
    kw = {"quantile": 0.3} if loss == "quantile" else {}
    net, X, y = _case(loss, output, 2, seed=7, batch=6, **kw)
    ref_params, _ = naive.fit_sequential(net, X, y, epochs=1, batch_size=2, lr=0.05)
    small = _fit_one_epoch(net.copy(), X, y)
    general = _fit_one_epoch(net.copy(), X, y, clip_norm=1e30)
    np.testing.assert_allclose(small, ref_params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(general, ref_params, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ values by hand


def _constant_net(loss, b, n_out=1, **kw):
    """A network whose output is the constant ``b`` (identity, or exp for poisson)."""
    net = fastbp.MLP([1, n_out], loss=loss, seed=0, **kw)
    net.weights[0][:] = 0.0
    net.biases[0][:] = b
    return net


X1 = np.zeros((1, 1))


@pytest.mark.parametrize("loss,kw,b,d,value,grad_b", [
    ("huber", {}, 0.5, 0.0, 0.125, 0.5),
    ("huber", {}, 3.0, 0.0, 2.5, 1.0),
    ("huber", {"huber_delta": 2.0}, -1.0, 2.0, 4.0, -2.0),  # |r| = 3 > 2: 2 (3 - 1)
    ("huber", {"huber_delta": 2.0}, 1.0, 2.5, 1.125, -1.5),
    ("mae", {}, 1.0, 3.5, 2.5, -1.0),
    ("mae", {}, 2.0, -1.0, 3.0, 1.0),
    ("quantile", {"quantile": 0.9}, 0.0, 2.0, 1.8, -0.9),   # under-prediction
    ("quantile", {"quantile": 0.9}, 2.0, 0.0, 0.2, 0.1),    # over-prediction
    ("quantile", {"quantile": 0.5}, 0.0, -4.0, 2.0, 0.5),   # half the MAE
    ("poisson", {}, math.log(2.0), 3.0, 2.0 - 3.0 * math.log(2.0) + 3.0 * math.log(3.0) - 3.0,
     2.0 - 3.0),
    ("poisson", {}, math.log(2.0), 0.0, 2.0, 2.0),
    ("poisson", {}, math.log(3.0), 3.0, 0.0, 0.0),          # perfect fit: deviance 0
])
def test_values_by_hand(loss, kw, b, d, value, grad_b):
    net = _constant_net(loss, b, **kw)
    y = np.array([[d]])
    assert net.evaluate(X1, y) == pytest.approx(value, rel=1e-12, abs=1e-14)
    E, g = net.gradient(X1, y)
    assert g[-1] == pytest.approx(grad_b, rel=1e-12, abs=1e-14)  # d E / d bias
    assert g[0] == 0.0  # input is 0, so d E / d w = 0


def test_sums_over_outputs_means_over_batch():
    net = _constant_net("mae", 0.0, n_out=2)
    X = np.zeros((2, 1))
    y = np.array([[1.0, -2.0], [3.0, 0.5]])
    assert net.evaluate(X, y) == pytest.approx((1 + 2 + 3 + 0.5) / 2)


def test_predict_returns_the_poisson_rate():
    net = _constant_net("poisson", math.log(2.5))
    assert net.activations[-1] == "exp"
    np.testing.assert_allclose(net.predict(np.zeros((3, 1))), 2.5, rtol=1e-15)


@pytest.mark.parametrize("loss", ["mae", "quantile", "huber"])
def test_subgradient_zero_at_the_kink(loss):
    """Output exactly equal to the target: the gradient used is 0 (sign(0) = 0)."""
    net = _constant_net(loss, 1.25, n_out=2, quantile=0.9)
    X = np.ones((3, 1))
    net.weights[0][:] = 0.0
    y = np.full((3, 2), 1.25)
    E, g = net.gradient(X, y)
    assert E == 0.0
    np.testing.assert_array_equal(g, 0.0)
    # the SGD step on the small engine takes the same subgradient: nothing moves
    before = net.params.copy()
    net.fit(X, y, epochs=1, batch_size=3, lr=0.1, shuffle=False)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("loss", ["huber", "mae", "quantile", "poisson"])
def test_float32_close_to_float64(loss):
    net64, X, y = _case(loss, "exp" if loss == "poisson" else "identity", 2, seed=3)
    net32 = fastbp.MLP(net64.sizes, activation="tanh", loss=loss, dtype="float32")
    net32.params[:] = net64.params
    E64, g64 = net64.gradient(X, y)
    E32, g32 = net32.gradient(X, y)
    assert g32.dtype == np.float32
    assert E32 == pytest.approx(E64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_huber_with_large_delta_is_mse():
    a, X, _ = _case("huber", "identity", 2, seed=5, huber_delta=1e6)
    y = np.random.default_rng(5).standard_normal((X.shape[0], 3))
    b = fastbp.MLP(a.sizes, activation="tanh", loss="mse")
    b.params[:] = a.params
    assert a.evaluate(X, y) == pytest.approx(b.evaluate(X, y), rel=1e-14)
    np.testing.assert_allclose(a.gradient(X, y)[1], b.gradient(X, y)[1], rtol=1e-14)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kw,exc,match", [
    ({"huber_delta": 0.0}, ValueError, "huber_delta"),
    ({"huber_delta": -1.0}, ValueError, "huber_delta"),
    ({"huber_delta": float("nan")}, ValueError, "huber_delta"),
    ({"huber_delta": "1"}, TypeError, "huber_delta"),
    ({"quantile": 0.0}, ValueError, "quantile"),
    ({"quantile": 1.0}, ValueError, "quantile"),
    ({"quantile": -0.1}, ValueError, "quantile"),
    ({"quantile": 1.5}, ValueError, "quantile"),
    ({"loss": "poisson", "output": "softmax"}, ValueError, "exp"),
    ({"loss": "poisson", "output": "identity"}, ValueError, "exp"),
    ({"loss": "mse", "output": "exp"}, ValueError, "poisson"),
    ({"loss": "huberr"}, ValueError, "huber"),
])
def test_bad_settings(kw, exc, match):
    kw = {"loss": "quantile" if "quantile" in kw else "huber", **kw}
    with pytest.raises(exc, match=match):
        fastbp.MLP([2, 3, 1], **kw)


def test_poisson_negative_targets_refused_nothing_changes():
    net = fastbp.MLP([2, 3, 1], loss="poisson", seed=0)
    X = np.ones((4, 2))
    y = np.array([1.0, 0.0, -0.5, 2.0])
    before = net.params.copy()
    for call in (lambda: net.fit(X, y), lambda: net.evaluate(X, y),
                 lambda: net.gradient(X, y), lambda: net.train_step(X, y)):
        with pytest.raises(ValueError, match="negative"):
            call()
    np.testing.assert_array_equal(net.params, before)
    assert net.steps == 0
    st = net.state(batch_size=4)
    for f in (fastbp.jit.loss, fastbp.jit.gradient, fastbp.jit.train_step):
        with pytest.raises(ValueError, match="poisson"):
            f(st, X, y.reshape(-1, 1))
    np.testing.assert_array_equal(net.params, before)


# ------------------------------------------------------------------ learning


def _line_with_outliers(rng, n=200):
    x = rng.uniform(-1.0, 1.0, (n, 1))
    y = 2.0 * x[:, 0] + 1.0 + 0.05 * rng.standard_normal(n)
    bad = rng.choice(n, size=n // 10, replace=False)
    y[bad] += 30.0  # gross outliers, all on one side
    return x, y


def test_huber_and_mae_resist_outliers():
    rng = np.random.default_rng(0)
    X, y = _line_with_outliers(rng)
    err = {}
    for loss in ("mse", "huber", "mae"):
        net = fastbp.MLP([1, 1], loss=loss, seed=1)
        net.fit(X, y, epochs=300, batch_size=20, lr=0.05, optimizer="adam", seed=2)
        err[loss] = abs(net.weights[0][0, 0] - 2.0) + abs(net.biases[0][0] - 1.0)
    assert err["mse"] > 2.0          # the mean is pulled up by 3 (10 % x 30)
    assert err["huber"] < 0.3 * err["mse"]
    assert err["mae"] < 0.3 * err["mse"]


def test_quantile_fit_covers_the_quantile():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1.0, 1.0, (400, 1))
    y = X[:, 0] + rng.standard_normal(400)
    net = fastbp.MLP([1, 1], loss="quantile", quantile=0.9, seed=0)
    net.fit(X, y, epochs=300, batch_size=40, lr=0.02, optimizer="adam", seed=0)
    below = float(np.mean(y < net.predict(X)[:, 0]))
    assert abs(below - 0.9) < 0.04


def test_poisson_fit_recovers_the_rate():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1.0, 1.0, (1000, 1))
    y = rng.poisson(np.exp(0.5 + 0.8 * X[:, 0])).astype(float)
    net = fastbp.MLP([1, 1], loss="poisson", seed=0)
    net.fit(X, y, epochs=100, batch_size=50, lr=0.02, optimizer="adam", seed=0)
    assert net.weights[0][0, 0] == pytest.approx(0.8, abs=0.15)
    assert net.biases[0][0] == pytest.approx(0.5, abs=0.15)


# ------------------------------------------------------------------ saving, pickling


@pytest.mark.parametrize("loss,kw", [("huber", {"huber_delta": 0.3}),
                                     ("quantile", {"quantile": 0.75}),
                                     ("mae", {}), ("poisson", {})])
def test_save_load_round_trip(tmp_path, loss, kw):
    net, X, y = _case(loss, "exp" if loss == "poisson" else "identity", 2, seed=4, **kw)
    path = tmp_path / "net.npz"
    net.save(path)
    back = fastbp.load(path)
    assert back.loss == loss
    assert (back.huber_delta, back.quantile) == (net.huber_delta, net.quantile)
    assert back.evaluate(X, y) == net.evaluate(X, y)
    np.testing.assert_array_equal(back.gradient(X, y)[1], net.gradient(X, y)[1])
    np.testing.assert_array_equal(back.predict(X), net.predict(X))


def _meta(path):
    import json
    with np.load(path, allow_pickle=False) as z:
        return json.loads(bytes(z["meta"]).decode())


def test_files_of_other_losses_keep_the_old_keys(tmp_path):
    """mse files carry no loss-parameter keys: the format older readers know."""
    old_keys = {"sizes", "activations", "loss", "dtype", "leaky_slope", "elu_alpha", "init",
                "dropout", "batch_norm", "bn_momentum", "bn_eps"}
    fastbp.MLP([2, 3, 1], seed=0).save(tmp_path / "a.npz")
    assert set(_meta(tmp_path / "a.npz")["architecture"]) == old_keys
    fastbp.MLP([2, 3, 1], loss="huber", huber_delta=2.0).save(tmp_path / "b.npz")
    assert _meta(tmp_path / "b.npz")["architecture"]["huber_delta"] == 2.0


def test_pickle_and_pre_loss_parameter_pickles():
    net, X, y = _case("quantile", "identity", 2, seed=6, quantile=0.2)
    back = pickle.loads(pickle.dumps(net))
    assert back.evaluate(X, y) == net.evaluate(X, y)
    # a pickle from before the loss-parameter column (4 columns, no attributes) still works
    m, Xm, ym = _case("mae", "identity", 2, seed=6)
    st = m.__getstate__()
    del st["huber_delta"], st["quantile"]
    st["_lparams"] = st["_lparams"][:, :4].copy()
    old = object.__new__(fastbp.MLP)
    old.__setstate__(st)
    assert old.evaluate(Xm, ym) == m.evaluate(Xm, ym)


# ------------------------------------------------------------------ jit, Population


@pytest.mark.parametrize("loss", ["huber", "poisson"])
def test_jit_facade(loss):
    net, X, y = _case(loss, "exp" if loss == "poisson" else "identity", 2, seed=8,
                      huber_delta=0.5)
    st = net.state(batch_size=X.shape[0])
    assert fastbp.jit.loss(st, X, y) == pytest.approx(net.evaluate(X, y), rel=1e-14)
    E, g = net.gradient(X, y)
    assert fastbp.jit.gradient(st, X, y) == pytest.approx(E, rel=1e-14)
    np.testing.assert_allclose(st.work.grad, g, rtol=1e-13)
    twin = net.copy()
    fastbp.jit.train_step(st, X, y)
    twin.train_step(X, y, lr=st.hyper[0])
    np.testing.assert_allclose(net.params, twin.params, rtol=1e-13)


def test_population_routes_new_losses_to_the_per_network_kernel(monkeypatch):
    import fastbp.population as popmod
    calls = []
    real = popmod.lanes_epoch
    monkeypatch.setattr(popmod, "lanes_epoch", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    y = rng.standard_normal((12, 2))
    pop = fastbp.Population([3, 4, 2], k=3, loss="huber", huber_delta=0.5, seed=0)
    nets = [pop.network(i).copy() for i in range(3)]
    pop.fit(X, y, epochs=2, batch_size=4, lr=0.05, shuffle=False)
    assert calls == []  # not the lane kernel
    for i, net in enumerate(nets):
        net.fit(X, y, epochs=2, batch_size=4, lr=0.05, shuffle=False)
        np.testing.assert_allclose(pop.params[i], net.params, rtol=1e-12, atol=1e-14)
    fastbp.Population([3, 4, 2], k=2, seed=0).fit(X, y, epochs=1)  # mse: lanes
    assert calls == [1]


def test_population_poisson_predicts_rates():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 3))
    y = rng.poisson(2.0, (10, 1)).astype(float)
    pop = fastbp.Population([3, 4, 1], k=2, loss="poisson", seed=0)
    pop.fit(X, y, epochs=2, batch_size=5, lr=0.05)
    out = pop.predict(X)
    for i in range(2):
        np.testing.assert_allclose(out[i], pop.network(i).predict(X), rtol=1e-12)
    assert (out > 0).all()


def test_lane_kernel_refuses_other_losses():
    from fastbp._kernels.lanes import lanes_loss
    from fastbp.spec import LOSSES
    assert [lanes_loss(LOSSES[n]) for n in ("mse", "cross_entropy", "binary_cross_entropy",
                                            "huber", "mae", "quantile", "poisson")] == \
        [True] * 3 + [False] * 4


# ------------------------------------------------------------------ estimator


def test_regressor_losses():
    from sklearn.base import clone

    from fastbp.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.exp(0.3 * X[:, 0])
    kw = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0, learning_rate_init=0.01)
    a = MLPRegressor(loss="squared_error", **kw).fit(X, y)
    b = MLPRegressor(loss="mse", **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.net_.loss == "mse"
    for loss, net_loss in [("huber", "huber"), ("absolute_error", "mae"),
                           ("quantile", "quantile"), ("poisson", "poisson")]:
        est = MLPRegressor(loss=loss, huber_delta=0.4, quantile=0.7, **kw).fit(X, y)
        assert est.net_.loss == net_loss
        assert (est.net_.huber_delta, est.net_.quantile) == (0.4, 0.7)
        assert clone(est).get_params()["loss"] == loss
        assert est.out_activation_ == ("exp" if loss == "poisson" else "identity")
    assert (est.predict(X) > 0).all()
    # the same half deviance scikit-learn's MLPRegressor(loss="poisson") reports
    from sklearn.neural_network._base import poisson_loss
    assert est.net_.evaluate(X, y) == pytest.approx(
        poisson_loss(y.reshape(-1, 1), est.predict(X).reshape(-1, 1)), rel=1e-10)
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson", **kw).fit(X, -y)
    for bad in ({"loss": "hinge"}, {"huber_delta": 0.0}, {"quantile": 1.0}):
        with pytest.raises(ValueError):
            MLPRegressor(**{**kw, **bad}).fit(X, y)


def test_torch_export_of_a_poisson_network_gives_log_rates():
    torch = pytest.importorskip("torch")
    from fastbp.interop import to_torch_sequential
    net = fastbp.MLP([3, 4, 1], loss="poisson", seed=0)
    X = np.random.default_rng(0).standard_normal((5, 3))
    seq = to_torch_sequential(net)
    with torch.no_grad():
        eta = seq(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(np.exp(eta), net.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="log-rates"):
        to_torch_sequential(net, include_output=True)
