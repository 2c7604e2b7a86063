"""One SGD step on a 2-2-1 network worked out by hand.

Sigmoid hidden layer, sigmoid output, E = 1/2 (d - o)^2, update w <- w - eta dE/dw
(../shared/reference/backpropagation.md).  Every derivative is written out as a scalar
formula below; nothing here calls tests/naive.py.  The steps are taken by ``train_step`` and
by ``fit`` on every training engine (tests/engines.py).

    net_h1 = w11 x1 + w12 x2 + b1        h1 = s(net_h1)        s(z) = 1 / (1 + e^-z)
    net_h2 = w21 x1 + w22 x2 + b2        h2 = s(net_h2)        s'(z) = s(z) (1 - s(z))
    net_o  = v1 h1 + v2 h2 + c           o  = s(net_o)

    dE/do      = o - d
    delta_o    = (o - d) o (1 - o)                 dE/dv1 = delta_o h1, dE/dv2 = delta_o h2, dE/dc = delta_o
    delta_h1   = delta_o v1 h1 (1 - h1)            dE/dw11 = delta_h1 x1, dE/dw12 = delta_h1 x2, dE/db1 = delta_h1
    delta_h2   = delta_o v2 h2 (1 - h2)            dE/dw21 = delta_h2 x1, dE/dw22 = delta_h2 x2, dE/db2 = delta_h2

In the library's layout W_0 = [[w11, w12], [w21, w22]] (row j = hidden unit j), b_0 = [b1, b2],
W_1 = [[v1, v2]], b_1 = [c].
"""

from __future__ import annotations

import math

import numpy as np
import pytest

fastbp = pytest.importorskip("fastbp")
import engines  # noqa: E402

#: ``train_step`` (the per-batch API) and every training engine, forced through fit
STEPPERS = ("train_step",) + engines.ENGINES

# the classic worked example's numbers (Mazur's "step by step" backpropagation example,
# reduced to one output)
W11, W12, W21, W22 = 0.15, 0.20, 0.25, 0.30
B1, B2 = 0.35, 0.35
V1, V2 = 0.40, 0.45
C = 0.60
ETA = 0.5


def s(z):
    return 1.0 / (1.0 + math.exp(-z))


def hand_sample(x1, x2, d, w=(W11, W12, W21, W22, B1, B2, V1, V2, C)):
    """Loss and the gradient of one sample, as a dict of named scalars."""
    w11, w12, w21, w22, b1, b2, v1, v2, c = w
    h1 = s(w11 * x1 + w12 * x2 + b1)
    h2 = s(w21 * x1 + w22 * x2 + b2)
    o = s(v1 * h1 + v2 * h2 + c)
    E = 0.5 * (d - o) ** 2
    delta_o = (o - d) * o * (1.0 - o)
    delta_h1 = delta_o * v1 * h1 * (1.0 - h1)
    delta_h2 = delta_o * v2 * h2 * (1.0 - h2)
    grad = dict(
        w11=delta_h1 * x1, w12=delta_h1 * x2, w21=delta_h2 * x1, w22=delta_h2 * x2,
        b1=delta_h1, b2=delta_h2,
        v1=delta_o * h1, v2=delta_o * h2, c=delta_o,
    )
    return E, grad, o


def _net():
    net = fastbp.MLP([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64", seed=0)
    net.weights[0][:] = [[W11, W12], [W21, W22]]
    net.biases[0][:] = [B1, B2]
    net.weights[1][:] = [[V1, V2]]
    net.biases[1][:] = [C]
    return net


def _steps(how, net, X, d, steps=1):
    """``steps`` SGD steps with lr ``ETA`` on the whole batch ``(X, d)`` by ``how``
    (``train_step`` or an engine); returns the loss before each step."""
    if how == "train_step":
        return [net.train_step(X, d, lr=ETA) for _ in range(steps)]
    return list(engines.fit(how, net, X, d, epochs=steps, lr=ETA))


def _as_params(w11, w12, w21, w22, b1, b2, v1, v2, c):
    return np.array([w11, w12, w21, w22, b1, b2, v1, v2, c])


def test_forward_by_hand():
    net = _net()
    h1 = s(W11 * 0.05 + W12 * 0.10 + B1)
    h2 = s(W21 * 0.05 + W22 * 0.10 + B2)
    o = s(V1 * h1 + V2 * h2 + C)
    # the textbook numbers: h1 = 0.593269992, h2 = 0.596884378
    assert h1 == pytest.approx(0.593269992, abs=1e-9)
    assert h2 == pytest.approx(0.596884378, abs=1e-9)
    assert net.predict(np.array([[0.05, 0.10]]))[0, 0] == pytest.approx(o, abs=1e-12)


@pytest.mark.parametrize("how", STEPPERS)
def test_one_sgd_step_by_hand(how):
    net = _net()
    x1, x2, d = 0.05, 0.10, 0.01
    E, g, o = hand_sample(x1, x2, d)

    expected = _as_params(
        W11 - ETA * g["w11"], W12 - ETA * g["w12"], W21 - ETA * g["w21"], W22 - ETA * g["w22"],
        B1 - ETA * g["b1"], B2 - ETA * g["b2"],
        V1 - ETA * g["v1"], V2 - ETA * g["v2"], C - ETA * g["c"],
    )
    (loss,) = _steps(how, net, np.array([[x1, x2]]), np.array([[d]]))

    assert loss == pytest.approx(E, abs=1e-12)  # loss before the update
    np.testing.assert_allclose(net.params, expected, rtol=0, atol=1e-12)
    # and through the views
    np.testing.assert_allclose(net.weights[0], [[expected[0], expected[1]], [expected[2], expected[3]]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.biases[0], expected[4:6], rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.weights[1], [expected[6:8]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.biases[1], expected[8:9], rtol=0, atol=1e-12)
    # sanity: every weight moved, and in the direction that lowers the error (o > d)
    assert o > d
    assert np.all(net.params < _as_params(W11, W12, W21, W22, B1, B2, V1, V2, C))
    assert net.evaluate(np.array([[x1, x2]]), np.array([[d]])) < E


def test_gradient_by_hand():
    net = _net()
    E, g, _ = hand_sample(0.05, 0.10, 0.01)
    loss, grad = net.gradient(np.array([[0.05, 0.10]]), np.array([0.01]))  # (n,) targets, n_out == 1
    assert loss == pytest.approx(E, abs=1e-12)
    np.testing.assert_allclose(grad, _as_params(*(g[k] for k in ("w11", "w12", "w21", "w22", "b1", "b2", "v1", "v2", "c"))), rtol=0, atol=1e-12)


@pytest.mark.parametrize("how", STEPPERS)
def test_two_sample_batch_by_hand(how):
    """Batch of two: loss and gradient are the means of the per-sample ones."""
    net = _net()
    X = np.array([[0.05, 0.10], [1.0, -2.0]])
    d = np.array([[0.01], [0.99]])
    E1, g1, _ = hand_sample(0.05, 0.10, 0.01)
    E2, g2, _ = hand_sample(1.0, -2.0, 0.99)
    names = ("w11", "w12", "w21", "w22", "b1", "b2", "v1", "v2", "c")
    w0 = _as_params(W11, W12, W21, W22, B1, B2, V1, V2, C)
    expected = w0 - ETA * np.array([(g1[k] + g2[k]) / 2.0 for k in names])
    (loss,) = _steps(how, net, X, d)
    assert loss == pytest.approx((E1 + E2) / 2.0, abs=1e-12)
    np.testing.assert_allclose(net.params, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("how", STEPPERS)
def test_two_steps_by_hand(how):
    """Two consecutive steps on the same sample: the second uses the updated weights."""
    net = _net()
    x1, x2, d = 0.05, 0.10, 0.01
    names = ("w11", "w12", "w21", "w22", "b1", "b2", "v1", "v2", "c")
    w = _as_params(W11, W12, W21, W22, B1, B2, V1, V2, C)
    losses = []
    for _ in range(2):
        E, g, _ = hand_sample(x1, x2, d, tuple(w))
        losses.append(E)
        w = w - ETA * np.array([g[k] for k in names])
    got = _steps(how, net, np.array([[x1, x2]]), np.array([[d]]), steps=2)
    np.testing.assert_allclose(got, losses, rtol=0, atol=1e-12)
    assert losses[1] < losses[0]
    np.testing.assert_allclose(net.params, w, rtol=0, atol=1e-12)
