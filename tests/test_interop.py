"""fastbp.interop: networks to and from torch.nn.Sequential, predictions agree both ways."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fastbp
from fastbp import interop

torch = pytest.importorskip("torch")
nn = torch.nn

TOL = {"float32": 1e-5, "float64": 1e-12}

NETS = [
    dict(sizes=[5, 7, 3], activation="relu"),
    dict(sizes=[5, 7, 6, 3], activation=["tanh", "sigmoid"], loss="cross_entropy"),
    dict(sizes=[5, 6, 6, 2], activation=["leaky_relu", "elu"], leaky_slope=0.2, elu_alpha=0.5,
         output="sigmoid", loss="binary_cross_entropy"),
    dict(sizes=[5, 6, 6, 6, 2], activation=["softplus", "gelu", "identity"], output="tanh"),
    dict(sizes=[5, 2]),
    dict(sizes=[5, 7, 6, 3], activation=["relu", "tanh"], batch_norm=[True, False],
         dropout=[0.0, 0.25], bn_eps=1e-3, bn_momentum=0.2, loss="cross_entropy"),
    dict(sizes=[5, 7, 6, 3], activation="identity", batch_norm=True, dropout=0.5),
]
IDS = ["relu", "tanh-sig-softmax", "leaky-elu-sigmoid", "softplus-gelu-id-tanh", "single-layer",
       "bn-dropout", "bn-identity"]


def _net(cfg, dtype):
    cfg = dict(cfg)
    net = fastbp.MLP(cfg.pop("sizes"), dtype=dtype, seed=4, **cfg)
    r = np.random.default_rng(9)
    net.params[:] = 0.5 * r.standard_normal(net.n_params)  # nonzero biases too
    for mean, var in zip(net.running_mean, net.running_var):
        if mean is not None:
            mean[:] = r.standard_normal(mean.size)
            var[:] = r.uniform(0.5, 2.0, var.size)
    return net


def _X(dtype, n=23, d=5):
    return np.random.default_rng(1).standard_normal((n, d)).astype(dtype)


def _torch_predict(seq, X):
    with torch.no_grad():
        return seq(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", NETS, ids=IDS)
def test_to_torch_predictions_agree(cfg, dtype):
    net = _net(cfg, dtype)
    X = _X(dtype)
    seq = interop.to_torch_sequential(net, include_output=True)
    out = _torch_predict(seq, X)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, net.predict(X), rtol=TOL[dtype], atol=TOL[dtype])
    sd = interop.to_torch_state_dict(net)
    if not any(net.batch_norm) and not any(net.dropout):
        # parameters copied exactly, Linear layers at the even indices
        assert list(sd) == [f"{2 * l}.{k}" for l in range(net.n_layers) for k in ("weight", "bias")]
        for l in range(net.n_layers):
            assert isinstance(seq[2 * l], nn.Linear)
            assert np.array_equal(sd[f"{2 * l}.weight"].numpy(), net.weights[l])
            assert np.array_equal(seq[2 * l].bias.detach().numpy(), net.biases[l])
    assert set(sd) == set(seq.state_dict())
    # copies, not views
    sd["0.weight"].zero_()
    assert np.any(net.weights[0] != 0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", NETS, ids=IDS)
def test_round_trip_through_torch_is_exact(cfg, dtype):
    net = _net(cfg, dtype)
    X = _X(dtype)
    seq = interop.to_torch_sequential(net, include_output=True)
    back = interop.from_torch(seq, loss=net.loss)
    assert back.sizes == net.sizes and back.activations == net.activations
    assert back.leaky_slope == pytest.approx(net.leaky_slope)
    assert back.elu_alpha == pytest.approx(net.elu_alpha)
    assert back.dtype == net.dtype
    assert back.dropout == net.dropout and back.batch_norm == net.batch_norm
    if any(net.batch_norm):
        assert (back.bn_eps, back.bn_momentum) == (net.bn_eps, net.bn_momentum)
    assert back.params.tobytes() == net.params.tobytes()
    assert back._stats.tobytes() == net._stats.tobytes()
    assert back.predict(X).tobytes() == net.predict(X).tobytes()
    # and from the state dict, giving the settings a state dict cannot hold
    sd_back = interop.from_torch(seq.state_dict(), activation=list(net.activations[:-1]),
                                 output=net.activations[-1], loss=net.loss,
                                 leaky_slope=net.leaky_slope, elu_alpha=net.elu_alpha,
                                 dropout=list(net.dropout), bn_eps=net.bn_eps,
                                 bn_momentum=net.bn_momentum)
    assert sd_back.params.tobytes() == net.params.tobytes()
    assert sd_back.predict(X).tobytes() == net.predict(X).tobytes()


def test_softmax_only_with_include_output():
    net = _net(NETS[1], "float64")
    X = _X("float64")
    logits = interop.to_torch_sequential(net)
    assert not any(isinstance(m, nn.Softmax) for m in logits)
    assert len(logits) == 2 * net.n_layers - 1
    probs = interop.to_torch_sequential(net, include_output=True)
    assert isinstance(probs[-1], nn.Softmax) and probs[-1].dim == 1
    z = _torch_predict(logits, X)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(z), dim=1).numpy(), net.predict(X),
                               rtol=1e-12, atol=1e-12)
    # a logits Sequential + cross_entropy comes back with its softmax
    back = interop.from_torch(logits, loss="cross_entropy")
    assert back.activations[-1] == "softmax"
    assert back.predict(X).tobytes() == net.predict(X).tobytes()
    # and the loss defaults to cross_entropy for a trailing Softmax
    assert interop.from_torch(probs).loss == "cross_entropy"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_module_built_in_torch(dtype):
    tdt = torch.float32 if dtype == "float32" else torch.float64
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(5, 8, dtype=tdt), nn.GELU(approximate="tanh"),
                        nn.Linear(8, 4, dtype=tdt), nn.LeakyReLU(0.3),
                        nn.Linear(4, 3, dtype=tdt), nn.Sigmoid())
    net = interop.from_torch(seq)
    assert net.activations == ("gelu", "leaky_relu", "sigmoid")
    assert net.leaky_slope == pytest.approx(0.3) and net.dtype == np.dtype(dtype)
    X = _X(dtype)
    np.testing.assert_allclose(net.predict(X), _torch_predict(seq, X),
                               rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_state_dict(dtype):
    tdt = torch.float32 if dtype == "float32" else torch.float64
    torch.manual_seed(1)
    seq = nn.Sequential(nn.Linear(5, 6, dtype=tdt), nn.Tanh(), nn.Linear(6, 2, dtype=tdt))
    net = interop.from_torch(seq.state_dict(), sizes=[5, 6, 2], activation="tanh")
    X = _X(dtype)
    np.testing.assert_allclose(net.predict(X), _torch_predict(seq, X),
                               rtol=TOL[dtype], atol=TOL[dtype])
    # relu is the state-dict default
    assert interop.from_torch(seq.state_dict()).activations == ("relu", "identity")


def test_trained_network_matches_torch_after_training():
    """Train in fastbp, export; and import a torch model, train it in fastbp."""
    r = np.random.default_rng(0)
    X = r.standard_normal((40, 5))
    y = np.tanh(X[:, :3])
    net = fastbp.MLP([5, 8, 3], activation="tanh", seed=0)
    net.fit(X, y, epochs=3, batch_size=8, lr=0.05)
    seq = interop.to_torch_sequential(net)
    np.testing.assert_allclose(_torch_predict(seq, X), net.predict(X), rtol=1e-12, atol=1e-12)
    # one plain SGD step in torch equals one train_step in fastbp (mse = 1/2 sum, batch mean)
    back = interop.from_torch(seq)
    xb, yb = torch.from_numpy(X[:8]), torch.from_numpy(y[:8])
    seq.train()
    loss = 0.5 * ((seq(xb) - yb) ** 2).sum(dim=1).mean()
    loss.backward()
    with torch.no_grad():
        for p in seq.parameters():
            p -= 0.1 * p.grad
    back.train_step(X[:8], y[:8], lr=0.1)
    np.testing.assert_allclose(back.params,
                               interop.from_torch(seq).params, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------- errors
def test_from_torch_errors():
    f64 = torch.float64
    with pytest.raises(ValueError, match="unsupported module"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="BatchNorm1d.*follow"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.BatchNorm1d(4),
                                         nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="affine"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, affine=False),
                                         nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="hidden layers only"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2),
                                         nn.Dropout(0.1)))
    with pytest.raises(ValueError, match="bn_eps"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, eps=1e-3), nn.ReLU(),
                                         nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(),
                                         nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="approximate"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="beta"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="outputs|inputs"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match="start with nn.Linear"):
        interop.from_torch(nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    with pytest.raises(ValueError, match="no nn.Linear"):
        interop.from_torch(nn.Sequential())
    with pytest.raises(ValueError, match="output activation"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    with pytest.raises(ValueError, match="at most one activation"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="leaky_slope"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.1), nn.Linear(4, 4),
                                         nn.LeakyReLU(0.2), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="sizes"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 2, dtype=f64)), sizes=[3, 4, 2])
    with pytest.raises(ValueError, match="disagrees"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
                           activation="tanh")
    with pytest.raises(ValueError, match="disagrees"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 2), nn.Sigmoid()), output="tanh")
    with pytest.raises(TypeError, match="Sequential"):
        interop.from_torch(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="Sequential|state dict"):
        interop.from_torch(42)
    with pytest.raises(TypeError, match="dtype"):
        interop.from_torch(nn.Sequential(nn.Linear(3, 2, dtype=torch.float16)))
    half = interop.from_torch(nn.Sequential(nn.Linear(3, 2, dtype=torch.float16)), dtype="float32")
    assert half.dtype == np.float32
    with pytest.raises(ValueError, match="key"):
        interop.from_torch({"0.weight": torch.zeros(2, 3), "1.scale": torch.zeros(2)})
    with pytest.raises(ValueError, match="no '1.weight'"):
        interop.from_torch({"0.weight": torch.zeros(2, 3), "1.running_mean": torch.zeros(2)})
    with pytest.raises(ValueError, match="lacks"):
        interop.from_torch({"0.weight": torch.zeros(2, 3), "1.weight": torch.ones(2),
                            "1.bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="bias"):
        interop.from_torch({"0.weight": torch.zeros(2, 3, dtype=f64),
                            "0.bias": torch.zeros(3, dtype=f64)})
    with pytest.raises(ValueError, match="2-D"):
        interop.from_torch({"0.weight": torch.zeros(2, 3, 1, dtype=f64)})
    with pytest.raises(ValueError, match="NaN|infinite"):
        interop.from_torch({"0.weight": torch.full((2, 3), float("nan"), dtype=f64)})
    with pytest.raises(ValueError, match="no layer"):
        interop.from_torch({})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_with_batch_norm_trained_in_torch(dtype):
    """Running statistics collected by torch's training mode carry over."""
    tdt = torch.float32 if dtype == "float32" else torch.float64
    torch.manual_seed(3)
    seq = nn.Sequential(nn.Linear(5, 8, dtype=tdt), nn.BatchNorm1d(8, dtype=tdt), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(8, 3, dtype=tdt))
    seq.train()
    with torch.no_grad():
        for _ in range(3):
            seq(torch.randn(16, 5, dtype=tdt) * 2 + 1)
    seq.eval()
    net = interop.from_torch(seq)
    assert net.batch_norm == (True,) and net.dropout == (0.2,)
    X = _X(dtype)
    np.testing.assert_allclose(net.predict(X), _torch_predict(seq, X),
                               rtol=TOL[dtype], atol=TOL[dtype])
    # dropout is a no-op in predict / eval mode on both sides
    assert interop.to_torch_sequential(net).training is False


def test_linear_without_bias_gets_zero_bias():
    seq = nn.Sequential(nn.Linear(3, 2, bias=False, dtype=torch.float64))
    net = interop.from_torch(seq)
    assert np.all(net.biases[0] == 0)
    X = _X("float64", d=3)
    np.testing.assert_allclose(net.predict(X), _torch_predict(seq, X), rtol=1e-12, atol=1e-12)


def test_missing_torch_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    net = fastbp.MLP([3, 2], seed=0)
    for call in (lambda: interop.to_torch_state_dict(net),
                 lambda: interop.to_torch_sequential(net),
                 lambda: interop.from_torch({})):
        with pytest.raises(ImportError, match="pip install torch"):
            call()
