"""Dropout and batch normalisation, float64, against NumPy references and finite differences.

Dropout (inverted, per hidden layer, masks from a counter-based generator keyed by the
network's seed, the training-step counter and the layer):

* the mask of a step is *recovered exactly* from the training-mode gradient of a one-row
  batch: for the layer after a dropped hidden layer ``dE/dW[k, j] = dE/dz[k] * m_j * a_j``
  and ``dE/db[k] = dE/dz[k]``, so ``m_j = gW[k, j] / (gb[k] a_j)`` with ``a_j`` from the
  undropped forward pass (sigmoid units, so ``a_j > 0``).  Every multiplier is 0 or
  ``1/(1-p)`` to 1e-10, the dropped fraction is p within 5 binomial standard deviations,
  the mean multiplier is 1 (inverted scaling keeps the expected activation), and the
  training loss recomputed in NumPy with the recovered masks equals
  ``evaluate(training=True)`` -- which in turn is the loss the next ``train_step`` reports;
* the same seed gives bitwise-identical training, another seed (same initial parameters,
  same shuffling) a different one, and no dropout at all makes the seed irrelevant;
* ``predict``/``evaluate()`` apply no dropout: they equal tests/naive.py's forward pass;
* ``gradient(X, y, training=True)`` is the derivative of ``evaluate(X, y, training=True)``
  (the mask is fixed for a given step counter): five-point finite differences, float64.

Batch normalisation (before the activation; gamma/beta in ``params``; running mean and
*unbiased* variance with momentum, like PyTorch):

* a NumPy reference forward pass (below) reproduces the training-mode loss (batch
  statistics) and ``predict`` (running statistics), rtol 1e-12;
* running statistics after each ``train_step`` equal ``(1 - momentum) * old + momentum *
  batch statistic`` computed from the parameters the step started from; nothing else moves
  them;
* finite-difference gradient checks in training and in eval mode, depths 2-3, relu and tanh
  (inputs redrawn until no stencil straddles a relu kink, checked with the reference);
* a plain SGD step (the fused path) and a momentum step (the gradient buffer path) with
  dropout and batch norm move the parameters by exactly ``-lr * gradient(training=True)``.
"""

from __future__ import annotations

import numpy as np
import pytest

import naive

fastbp = pytest.importorskip("fastbp")

FD_STEP = 1e-3
AGG_TOL = 1e-6
ENTRY_TOL = 1e-5


# --------------------------------------------------------------------------- references


def ref_forward(net, X, training, masks=None):
    """NumPy forward pass with batch norm.  Returns (pre-activations, output).

    ``training``: batch statistics (biased variance in the normalisation) instead of the
    running ones.  ``masks``: per hidden layer multipliers applied after the activation.
    """
    a = np.asarray(X, dtype=np.float64)
    pres = []
    L = len(net.weights)
    for l in range(L):
        z = a @ np.asarray(net.weights[l]).T + net.biases[l]
        if l < L - 1 and net.batch_norm[l]:
            if training:
                mu, var = z.mean(axis=0), z.var(axis=0)
            else:
                mu, var = net.running_mean[l], net.running_var[l]
            z = net.bn_gamma[l] * (z - mu) / np.sqrt(var + net.bn_eps) + net.bn_beta[l]
        pres.append(z)
        a = naive.act(net.activations[l], z)
        if masks is not None and l < L - 1 and masks[l] is not None:
            a = a * masks[l]
    return pres, a


def ref_loss(net, X, y, training, masks=None):
    out = ref_forward(net, X, training, masks)[1]
    return float(np.mean(naive.per_sample_loss(net, out, naive.targets(net, y))))


def crosses_kink(net, X, training, h=FD_STEP):
    """Whether moving any single parameter by +-2h*max(1,|p|) flips the sign of a relu unit's
    input (in the reference forward pass, batch norm included)."""
    relu = [l for l, a in enumerate(net.activations[:-1]) if a == "relu"]
    if not relu:
        return False

    def signs():
        pres = ref_forward(net, X, training)[0]
        return [pres[l] > 0 for l in relu]

    base = signs()
    p = net.params
    for i in range(p.shape[0]):
        old = p[i]
        for k in (2.0, -2.0):
            p[i] = old + k * h * max(1.0, abs(old))
            if any(np.any(s != b) for s, b in zip(signs(), base)):
                p[i] = old
                return True
        p[i] = old
    return False


def check_gradient(g, g_fd, what):
    """Aggregate relative error <= 1e-6 and per entry <= 1e-5 (floor 1e-3 ||g_fd||_inf; as in
    tests/test_gradients.py)."""
    g = np.asarray(g, dtype=np.float64)
    assert np.all(np.isfinite(g)), what
    scale = np.max(np.abs(g_fd))
    assert scale > 0, f"{what}: degenerate case"
    agg = naive.rel_error(g, g_fd)
    per = np.abs(g - g_fd) / np.maximum(np.abs(g) + np.abs(g_fd), 1e-3 * scale)
    assert agg <= AGG_TOL, f"{what}: aggregate relative error {agg:.3e}"
    i = int(np.argmax(per))
    assert per[i] <= ENTRY_TOL, f"{what}: entry {i}: {g[i]!r} vs {g_fd[i]!r} ({per[i]:.3e})"


def fd_check(net, X, y, training, what):
    E, g = net.gradient(X, y, training=training)
    assert E == pytest.approx(net.evaluate(X, y, training=training), rel=1e-12)
    before = net.params.copy()
    steps = net.steps
    g_fd = naive.finite_difference(lambda: net.evaluate(X, y, training=training), net.params,
                                   h=FD_STEP)
    np.testing.assert_array_equal(net.params, before)
    assert net.steps == steps
    check_gradient(g, g_fd, what)


# --------------------------------------------------------------------------- dropout


def _recover_masks(net, X, y):
    """Exact dropout multipliers of both hidden layers of a [d, h1, h2, 1] sigmoid/identity
    network at the current step, from ``gradient(training=True)`` on one row."""
    assert X.shape[0] == 1
    _, g = net.gradient(X, y, training=True)
    lay = net.layout

    def wb(l):
        n_in, n_out, off = lay[l, :3]
        return (g[off:off + n_in * n_out].reshape(n_out, n_in),
                g[off + n_in * n_out:off + n_in * n_out + n_out])

    a0 = naive.act("sigmoid", X @ net.weights[0].T + net.biases[0])[0]
    gW1, gb1 = wb(1)
    k = int(np.argmax(np.abs(gb1)))
    m0 = gW1[k] / (gb1[k] * a0)
    a1 = naive.act("sigmoid", (m0 * a0) @ net.weights[1].T + net.biases[1])
    gW2, gb2 = wb(2)
    m1 = gW2[0] / (gb2[0] * a1)
    return m0, m1


@pytest.mark.parametrize("rates", [(0.2, 0.5), (0.0, 0.7)])
def test_dropout_masks_are_inverted_bernoulli(rates):
    p0, p1 = rates
    net = fastbp.MLP([4, 3000, 500, 1], activation="sigmoid", loss="mse", dropout=list(rates),
                     seed=5)
    r = np.random.default_rng(0)
    X = r.standard_normal((1, 4))
    y = np.array([[3.0]])
    masks_seen = []
    for step in range(2):
        m0, m1 = _recover_masks(net, X, y)
        for m, p in ((m0, p0), (m1, p1)):
            kept = m > 0.5
            np.testing.assert_allclose(m[kept], 1.0 / (1.0 - p), rtol=1e-10)
            np.testing.assert_allclose(m[~kept], 0.0, atol=1e-10)
            sd = np.sqrt(p * (1 - p) / m.size)
            assert abs(np.mean(~kept) - p) <= 5 * sd + 1e-12, (p, np.mean(~kept))
            assert abs(np.mean(m) - 1.0) <= 5 * sd / (1 - p) + 1e-12
        masks = [np.where(m0 > 0.5, 1.0 / (1 - p0), 0.0), np.where(m1 > 0.5, 1.0 / (1 - p1), 0.0)]
        E_train = net.evaluate(X, y, training=True)
        assert E_train == pytest.approx(ref_loss(net, X, y, True, masks), rel=1e-11)
        assert net.evaluate(X, y, training=True) == E_train  # fixed for this step
        assert net.evaluate(X, y) == pytest.approx(naive.loss(net, X, y), rel=1e-12)
        assert net.evaluate(X, y) != E_train
        # the next train_step trains on exactly this mask
        assert net.train_step(X, y, lr=1e-3) == pytest.approx(E_train, rel=1e-12)
        masks_seen.append(masks)
        assert net.steps == step + 1
    # a new step draws a new mask (for every layer that has dropout)
    assert not np.array_equal(masks_seen[0][1], masks_seen[1][1])
    if p0 == 0.0:
        np.testing.assert_array_equal(masks_seen[0][0], 1.0)
    else:
        assert not np.array_equal(masks_seen[0][0], masks_seen[1][0])


def _blobs(n=120, d=6, k=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    y = np.argmax(X[:, :k] + 0.5 * r.standard_normal((n, k)), axis=1).astype(np.int64)
    return X, y


@pytest.mark.parametrize("batch_norm", [False, True])
def test_dropout_is_reproducible_for_a_seed(batch_norm):
    X, y = _blobs()
    kw = dict(activation="relu", loss="cross_entropy", dropout=[0.3, 0.5], batch_norm=batch_norm)
    runs = []
    for net_seed in (3, 3, 4):
        net = fastbp.MLP([6, 16, 12, 3], seed=net_seed, **kw)
        if runs:
            net.params = runs[0][0]  # same start: only the dropout seed can differ
        p0 = net.params.copy()
        net.fit(X, y, epochs=3, batch_size=16, lr=0.05, seed=0)
        runs.append((p0, net.params.copy(), net.predict(X)))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    assert not np.allclose(runs[0][1], runs[2][1], rtol=1e-6)
    # control: without dropout the network's seed does not matter once params are equal
    ctl = []
    for net_seed in (3, 4):
        net = fastbp.MLP([6, 16, 12, 3], seed=net_seed, **{**kw, "dropout": 0.0})
        net.params = runs[0][0]
        net.fit(X, y, epochs=3, batch_size=16, lr=0.05, seed=0)
        ctl.append(net.params.copy())
    np.testing.assert_array_equal(ctl[0], ctl[1])


def test_predict_applies_no_dropout():
    X, y = _blobs()
    net = fastbp.MLP([6, 16, 12, 3], activation="tanh", loss="cross_entropy", dropout=0.5, seed=2)
    net.fit(X, y, epochs=2, batch_size=16, lr=0.05, seed=0)
    out = net.predict(X)
    np.testing.assert_array_equal(out, net.predict(X))
    np.testing.assert_allclose(out, naive.forward(net, X)[-1], rtol=1e-12, atol=1e-15)
    assert net.evaluate(X, y) == pytest.approx(naive.loss(net, X, y), rel=1e-12)
    E, g = net.gradient(X, y)
    np.testing.assert_allclose(g, naive.gradient(net, X, y)[1], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("case", ["tanh-mse", "sigmoid-ce-deep", "tanh-bn-ce"])
def test_dropout_gradient_finite_differences(case):
    r = np.random.default_rng(["tanh-mse", "sigmoid-ce-deep", "tanh-bn-ce"].index(case))
    if case == "tanh-mse":
        net = fastbp.MLP([5, 9, 3], activation="tanh", dropout=0.4, seed=1)
        y = r.standard_normal((7, 3))
    elif case == "sigmoid-ce-deep":
        net = fastbp.MLP([5, 9, 7, 3], activation="sigmoid", loss="cross_entropy",
                         dropout=[0.3, 0.6], seed=2)
        y = r.integers(0, 3, 7)
    else:
        net = fastbp.MLP([5, 9, 7, 3], activation="tanh", loss="cross_entropy",
                         dropout=[0.5, 0.2], batch_norm=[True, True], seed=3)
        y = r.integers(0, 3, 7)
    net.params[:] += 0.1 * r.standard_normal(net.n_params)
    X = r.standard_normal((7, 5))
    net.train_step(X, y, lr=0.01)  # a step counter other than 0
    net.train_step(X, y, lr=0.01)
    assert net.evaluate(X, y, training=True) != pytest.approx(net.evaluate(X, y), rel=1e-3)
    fd_check(net, X, y, True, case)


# --------------------------------------------------------------------------- batch norm


def test_batch_norm_parameters_and_initial_state():
    net = fastbp.MLP([5, 9, 7, 3], batch_norm=[True, False], seed=0)
    assert net.n_params == (9 * 5 + 9 + 2 * 9) + (7 * 9 + 7) + (3 * 7 + 3)
    lay = net.layout
    assert lay[0, 4] == 9 * 5 + 9 and lay[1, 4] == -1 and lay[2, 4] == -1
    np.testing.assert_array_equal(net.bn_gamma[0], 1.0)
    np.testing.assert_array_equal(net.bn_beta[0], 0.0)
    np.testing.assert_array_equal(net.running_mean[0], 0.0)
    np.testing.assert_array_equal(net.running_var[0], 1.0)
    assert net.bn_gamma[1] is None and net.running_mean[2] is None
    # gamma and beta are views into the flat buffer, right after W_0, b_0
    assert np.shares_memory(net.bn_gamma[0], net.params)
    net.bn_gamma[0][:] = 2.0
    net.bn_beta[0][:] = -0.5
    np.testing.assert_array_equal(net.params[54:63], 2.0)
    np.testing.assert_array_equal(net.params[63:72], -0.5)


@pytest.mark.parametrize("momentum,eps", [(0.1, 1e-5), (0.3, 1e-2)])
def test_running_statistics_follow_the_momentum_rule(momentum, eps):
    net = fastbp.MLP([5, 9, 7, 3], activation="relu", loss="cross_entropy", batch_norm=True,
                     bn_momentum=momentum, bn_eps=eps, seed=4)
    r = np.random.default_rng(4)
    net.params[:] += 0.1 * r.standard_normal(net.n_params)
    rm = [np.zeros(9), np.zeros(7)]
    rv = [np.ones(9), np.ones(7)]
    for step in range(3):
        X = r.standard_normal((16, 5)) * 2 + 1
        y = r.integers(0, 3, 16)
        # the batch statistics of each BN layer's linear output, from the starting params
        a = X
        for l in range(2):
            z = a @ net.weights[l].T + net.biases[l]
            rm[l] = (1 - momentum) * rm[l] + momentum * z.mean(axis=0)
            rv[l] = (1 - momentum) * rv[l] + momentum * z.var(axis=0, ddof=1)
            zn = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + eps)
            a = naive.act("relu", net.bn_gamma[l] * zn + net.bn_beta[l])
        assert net.evaluate(X, y, training=True) == pytest.approx(ref_loss(net, X, y, True),
                                                                  rel=1e-12)
        # nothing but a training step moves the running statistics
        stats = [s.copy() for s in net.running_mean[:2] + net.running_var[:2]]
        net.evaluate(X, y, training=True)
        net.gradient(X, y, training=True)
        net.gradient(X, y)
        net.predict(X)
        for s, now in zip(stats, net.running_mean[:2] + net.running_var[:2]):
            np.testing.assert_array_equal(s, now)
        net.train_step(X, y, lr=0.05, momentum=0.5)
        for l in range(2):
            np.testing.assert_allclose(net.running_mean[l], rm[l], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(net.running_var[l], rv[l], rtol=1e-12)


def test_eval_mode_uses_running_statistics():
    X, y = _blobs(200, 6, 3, seed=1)
    net = fastbp.MLP([6, 16, 12, 3], activation="relu", loss="cross_entropy", batch_norm=True,
                     seed=6)
    net.fit(X, y, epochs=3, batch_size=20, lr=0.05, optimizer="adam", seed=0)
    assert not np.allclose(net.running_mean[0], 0.0)
    Xt = X[:37] * 1.5
    out = net.predict(Xt)
    np.testing.assert_allclose(out, ref_forward(net, Xt, training=False)[1], rtol=1e-12,
                               atol=1e-15)
    # eval mode does not depend on what else is in the batch
    for i in (0, 17, 36):
        np.testing.assert_allclose(net.predict(Xt[i:i + 1])[0], out[i], rtol=1e-13, atol=1e-16)
    assert net.evaluate(Xt, y[:37]) == pytest.approx(ref_loss(net, Xt, y[:37], False), rel=1e-12)
    # training mode uses the batch's own statistics instead
    assert net.evaluate(Xt, y[:37], training=True) == pytest.approx(
        ref_loss(net, Xt, y[:37], True), rel=1e-12)


BN_FD_CASES = {
    # name: (sizes, activation, batch_norm, loss, training)
    "relu-d2-train": ([5, 9, 3], "relu", True, "mse", True),
    "relu-d2-eval": ([5, 9, 3], "relu", True, "mse", False),
    "tanh-d3-train": ([5, 9, 7, 3], "tanh", True, "cross_entropy", True),
    "tanh-d3-eval": ([5, 9, 7, 3], "tanh", True, "cross_entropy", False),
    "relu-d3-mixed-train": ([4, 8, 6, 3], "relu", [False, True], "cross_entropy", True),
    "relu-d3-mixed-eval": ([4, 8, 6, 3], "relu", [True, False], "mse", False),
}


@pytest.mark.parametrize("case", list(BN_FD_CASES))
def test_batch_norm_gradient_finite_differences(case):
    sizes, act, bn, loss, training = BN_FD_CASES[case]
    r = np.random.default_rng(sorted(BN_FD_CASES).index(case))
    net = fastbp.MLP(sizes, activation=act, loss=loss, batch_norm=bn, seed=7)
    net.params[:] += 0.1 * r.standard_normal(net.n_params)  # gamma != 1, beta != 0, b != 0
    for l, on in enumerate(net.batch_norm):  # non-trivial running statistics
        if on:
            net.running_mean[l][:] = 0.3 * r.standard_normal(sizes[l + 1])
            net.running_var[l][:] = r.uniform(0.5, 2.0, sizes[l + 1])
    for _ in range(200):
        X = r.standard_normal((8, sizes[0]))
        if not crosses_kink(net, X, training):
            break
    else:  # pragma: no cover
        raise AssertionError("no kink-free inputs found")
    y = naive.make_targets(loss, 8, sizes[-1], r)
    assert net.evaluate(X, y, training=training) == pytest.approx(
        ref_loss(net, X, y, training), rel=1e-12)
    fd_check(net, X, y, training, case)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_step_with_dropout_and_batch_norm_uses_the_training_gradient(momentum):
    """Plain SGD takes the fused path (no gradient buffer), momentum the buffered one; both
    move the parameters by -lr * gradient(training=True) on the first step."""
    X, y = _blobs(40, 6, 3, seed=3)
    net = fastbp.MLP([6, 16, 12, 3], activation="relu", loss="cross_entropy", dropout=[0.3, 0.3],
                     batch_norm=[True, False], seed=8)
    for _ in range(3):
        p = net.params.copy()
        _, g = net.gradient(X, y, training=True)
        net.train_step(X, y, lr=0.1, momentum=momentum)
        np.testing.assert_allclose(net.params, p - 0.1 * g, rtol=1e-12, atol=1e-15)


def test_eval_mode_over_several_chunks():
    """Inference works in chunks of 2048 rows; with batch norm (running statistics) and
    dropout (off) the chunked loss, gradient and predictions equal single-chunk ones."""
    X, y = _blobs(2500, 6, 3, seed=9)
    net = fastbp.MLP([6, 16, 12, 3], activation="tanh", loss="cross_entropy", batch_norm=True,
                     dropout=0.3, seed=9)
    net.fit(X[:300], y[:300], epochs=2, batch_size=30, lr=0.05, seed=0)
    E, g = net.gradient(X, y)  # 2048 + 452 rows
    Ea, ga = net.gradient(X[:1000], y[:1000])
    Eb, gb = net.gradient(X[1000:], y[1000:])
    assert E == pytest.approx((1000 * Ea + 1500 * Eb) / 2500, rel=1e-12)
    np.testing.assert_allclose(g, (1000 * ga + 1500 * gb) / 2500, rtol=1e-10, atol=1e-16)
    assert net.evaluate(X, y) == pytest.approx(ref_loss(net, X, y, False), rel=1e-12)
    np.testing.assert_allclose(net.predict(X), ref_forward(net, X, False)[1], rtol=1e-12,
                               atol=1e-15)
