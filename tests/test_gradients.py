"""Analytic gradients (net.gradient) against central finite differences, float64.

Coverage: every hidden activation x every valid (output, loss) pair, depths 1-4 (number of
weight layers), odd widths, batch sizes 1 and 7, mixed per-layer activation lists, and the
naive reference's own chain rule checked the same way (test_reference relies on it).

Finite differences: the five-point central stencil with h = 1e-3 * max(1, |p|) (truncation
O(h^4) ~ 1e-13 relative, round-off ~1.5 eps |E| / h ~ 1e-13 |E|).  The plain three-point formula with
h = 1e-6 has round-off ~1e-10 |E|, which is ~1e-6 of the gradient whenever the gradient is
~1e-4 of the loss (deep nets, batch 1) -- too coarse to hold analytic gradients to 1e-6.

Error measure, per case:
  * aggregate   ||g - g_fd|| / (||g|| + ||g_fd||)                           <= 1e-6
  * per entry   |g_i - g_fd_i| / max(|g_i| + |g_fd_i|, 1e-3 * ||g_fd||_inf)  <= 1e-5
    (the floor keeps entries that are ~0 -- dead relus, saturated units -- from turning
    the round-off of the differences into a spurious relative error).
Correct gradients sit orders of magnitude below both bounds; a real mistake (a missing factor,
a wrong derivative, a transposed index) gives errors of order 1.

Engines: every case also runs on every training engine (fastbp._engine, forced by
tests/engines.py).  The gradient an engine steps along is read off one full-batch SGD step
with lr 1 (g = p_before - p_after, exact to ~eps |p|) and held to the same bounds; the
finite differences are computed once per case and shared by the engines.

Kinks: relu and leaky_relu have a kink at 0 and elu a jump in f'' there; a finite difference
whose stencil straddles one is wrong by O(1).  Each case therefore redraws its inputs (seeded,
deterministic) until no single-parameter move of up to 2h flips the sign of any such hidden
pre-activation (naive.stencil_crosses_kink), and asserts that again before differencing.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import engines
import naive

fastbp = pytest.importorskip("fastbp")

HIDDEN = naive.HIDDEN

# (output, loss, label kind) -- every valid combination of the contract
OUT_LOSS = [
    ("identity", "mse", None),
    ("sigmoid", "mse", None),
    ("tanh", "mse", None),
    ("softmax", "mse", None),
    ("softmax", "cross_entropy", "int"),
    ("softmax", "cross_entropy", "onehot"),
    ("sigmoid", "binary_cross_entropy", None),
]
OUT_LOSS_IDS = [f"{o}-{l}" + (f"-{k}" if k else "") for o, l, k in OUT_LOSS]

# odd widths; depth = number of weight layers
WIDTHS = {1: [5, 3], 2: [5, 7, 3], 3: [3, 5, 7, 3], 4: [5, 3, 7, 5, 3]}

FD_STEP = 1e-3
AGG_TOL = 1e-6
ENTRY_TOL = 1e-5


def _check(g, g_fd, what):
    g = np.asarray(g, dtype=np.float64)
    assert g.shape == g_fd.shape, f"{what}: gradient shape {g.shape} != {g_fd.shape}"
    assert np.all(np.isfinite(g)), f"{what}: non-finite gradient"
    scale = np.max(np.abs(g_fd))
    assert scale > 0, f"{what}: degenerate test case (zero gradient)"
    agg = naive.rel_error(g, g_fd)
    den = np.maximum(np.abs(g) + np.abs(g_fd), 1e-3 * scale)
    per = np.abs(g - g_fd) / den
    worst = int(np.argmax(per))
    assert agg <= AGG_TOL, f"{what}: aggregate relative error {agg:.3e} > {AGG_TOL}"
    assert per[worst] <= ENTRY_TOL, (
        f"{what}: entry {worst} analytic {g[worst]!r} vs finite-difference {g_fd[worst]!r} "
        f"(relative error {per[worst]:.3e} > {ENTRY_TOL})"
    )


def _case(hidden, output, loss, label_kind, depth, batch, seed, n_out=None, y_1d=False, **kw):
    sizes = list(WIDTHS[depth])
    if n_out is not None:
        sizes[-1] = n_out
    net = fastbp.MLP(sizes, activation=hidden, output=output, loss=loss, dtype="float64", seed=seed, **kw)
    rng = np.random.default_rng(1000 + seed)
    p0 = net.params.copy()
    for attempt in range(400):
        if attempt % 10 == 0:
            # biases start at 0; give them values so their gradients are exercised in general
            # position (redrawn too if the inputs alone cannot avoid the kinks)
            net.params[:] = p0 + 0.1 * rng.standard_normal(net.n_params)
        X = rng.standard_normal((batch, sizes[0]))
        if not naive.stencil_crosses_kink(net, X, net.params, FD_STEP):
            break
    else:  # pragma: no cover
        raise AssertionError("could not draw inputs away from the activation kinks")
    y = naive.make_targets(loss, batch, sizes[-1], rng, label_kind or "int")
    if y_1d:
        y = y.reshape(-1)
    return net, X, y


_REFERENCE = {}  # case -> finite-difference gradient, checked once, shared by the engines


def _reference(net, X, y, what, check_naive):
    """Finite differences of the library's loss, checked against ``net.gradient`` and (with
    ``check_naive``) the naive reference's chain rule; computed once per case and reused by
    every engine's test of it."""
    key = (what, X.tobytes(), np.asarray(y).tobytes(), net.params.tobytes())
    if key in _REFERENCE:
        return _REFERENCE[key]
    E, g = net.gradient(X, y)
    assert isinstance(E, float), f"{what}: loss should be a Python float, got {type(E)}"
    assert g.dtype == np.float64 and g.ndim == 1 and g.shape[0] == net.n_params, what
    p = net.params
    before = p.copy()
    assert not naive.stencil_crosses_kink(net, X, p, FD_STEP)
    g_fd = naive.finite_difference(lambda: net.evaluate(X, y), p, h=FD_STEP)
    np.testing.assert_array_equal(net.params, before)  # FD restored everything
    # gradient() is the gradient of the same loss that evaluate() reports
    assert E == pytest.approx(net.evaluate(X, y), rel=1e-12, abs=1e-300)
    _check(g, g_fd, what)
    if check_naive:
        # the reference's chain rule must pass the same test (it is the oracle elsewhere)
        E_ref, g_ref = naive.gradient(net, X, y)
        g_fd_ref = naive.finite_difference(lambda: naive.loss(net, X, y), p, h=FD_STEP)
        _check(g_ref, g_fd_ref, what + " [naive reference]")
        assert E == pytest.approx(E_ref, rel=1e-10)
    _REFERENCE[key] = g_fd
    return g_fd


def _fd_check(net, X, y, what, engine, check_naive=True):
    """``net.gradient`` and the gradient ``engine`` steps along (one full-batch SGD step with
    lr 1, ``tests/engines.py``) against central finite differences."""
    g_fd = _reference(net, X, y, what, check_naive)
    E, g = engines.gradient(engine, net, X, y)
    assert E == pytest.approx(net.evaluate(X, y), rel=1e-12), f"{what} [{engine}]: loss"
    _check(g, g_fd, f"{what} [{engine} engine]")


def _rotate_on_generated(engine, keep):
    """Every engine but the general one runs a rotating sample of the three grids below
    (each activation, each (output, loss) pair and each depth still gets a finite-difference
    check on every engine): the full grids on six engines cost CI minutes of compilation
    (the generated engine compiles one kernel per architecture)."""
    if engine != "general" and not keep:
        pytest.skip(f"{engine} engine: a rotating sample of this grid")


# ---------------------------------------------------------------------------
# 1. every hidden activation x every (output, loss) pair, depth 2 and batch 7 / 1
#    (depth rotates 2..4 through the grid so deeper nets see every pair too)


@pytest.mark.parametrize("out_loss", OUT_LOSS, ids=OUT_LOSS_IDS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_activation_every_loss(hidden, out_loss, engine):
    output, loss, kind = out_loss
    i, j = HIDDEN.index(hidden), OUT_LOSS.index(out_loss)
    _rotate_on_generated(engine, (i + j) % 4 == 0)
    depth = 2 + (i + j) % 3
    batch = 7 if (i + j) % 2 == 0 else 1
    seed = 10 * i + j
    net, X, y = _case(hidden, output, loss, kind, depth, batch, seed)
    _fd_check(net, X, y, f"{hidden}/{output}/{loss}/{kind} depth={depth} batch={batch}", engine, check_naive=(j % 2 == 0))


# ---------------------------------------------------------------------------
# 2. every hidden activation at every depth with a hidden layer, both batch sizes


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_every_activation_every_depth(hidden, depth, batch, engine):
    i = HIDDEN.index(hidden)
    _rotate_on_generated(engine, batch == 7 and depth == 2 + i % 3)
    output, loss, kind = OUT_LOSS[(i + depth) % len(OUT_LOSS)]
    net, X, y = _case(hidden, output, loss, kind, depth, batch, seed=100 + 7 * i + depth)
    _fd_check(net, X, y, f"{hidden}/{output}/{loss} depth={depth} batch={batch}", engine, check_naive=False)


# ---------------------------------------------------------------------------
# 3. every (output, loss) pair at every depth 1..4 (depth 1 = perceptron), both batch sizes


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("out_loss", OUT_LOSS, ids=OUT_LOSS_IDS)
def test_every_loss_every_depth(out_loss, depth, batch, engine):
    output, loss, kind = out_loss
    j = OUT_LOSS.index(out_loss)
    _rotate_on_generated(engine, depth == 1 + j % 4 and batch == (1 if j % 2 else 7))
    hidden = HIDDEN[(j + depth) % len(HIDDEN)]
    net, X, y = _case(hidden, output, loss, kind, depth, batch, seed=200 + 5 * j + depth)
    _fd_check(net, X, y, f"{hidden}/{output}/{loss}/{kind} depth={depth} batch={batch}", engine, check_naive=False)


# ---------------------------------------------------------------------------
# 4. special cases


@pytest.mark.parametrize("depth", [2, 4])
def test_mixed_activation_list(depth, engine):
    """A different activation per hidden layer (list form)."""
    hidden = list(itertools.islice(itertools.cycle(["gelu", "leaky_relu", "elu", "softplus"]), depth - 1))
    for output, loss, kind in [("identity", "mse", None), ("softmax", "cross_entropy", "int")]:
        net, X, y = _case(hidden, output, loss, kind, depth, 7, seed=300 + depth)
        assert tuple(net.activations[:-1]) == tuple(hidden)
        _fd_check(net, X, y, f"{hidden}/{output}/{loss} depth={depth}", engine)


@pytest.mark.parametrize("loss,output", [("mse", "identity"), ("mse", "sigmoid"), ("binary_cross_entropy", "sigmoid")])
def test_single_output_with_1d_targets(loss, output, engine):
    """n_out == 1 with y of shape (n,)."""
    net, X, y = _case("tanh", output, loss, None, 3, 7, seed=400, n_out=1, y_1d=True)
    assert y.ndim == 1
    _fd_check(net, X, y, f"{output}/{loss} y 1-D", engine)


def test_cross_entropy_soft_targets(engine):
    """cross_entropy with (n, n_out) probability rows (not one-hot)."""
    net = fastbp.MLP([5, 7, 4], activation="tanh", loss="cross_entropy", dtype="float64", seed=3)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((7, 5))
    y = naive.make_targets("cross_entropy", 7, 4, rng, "proba")
    _fd_check(net, X, y, "cross_entropy soft targets", engine)


@pytest.mark.parametrize("hidden,kw", [("leaky_relu", {"leaky_slope": 0.2}), ("elu", {"elu_alpha": 0.5})])
def test_activation_hyperparameters(hidden, kw, engine):
    """Non-default leaky_slope / elu_alpha reach the derivative too (finite differences of the
    library's own loss) and the forward pass (against the reference with those values)."""
    net, X, y = _case(hidden, "identity", "mse", None, 3, 7, seed=500, **kw)
    _fd_check(net, X, y, f"{hidden} {kw}", engine, check_naive=False)
    ref = naive.Net.copy_of(net)
    for k, v in kw.items():
        setattr(ref, k, v)
    np.testing.assert_allclose(net.predict(X), naive.forward(ref, X)[-1], rtol=1e-10, atol=1e-12)
    E_ref, g_ref = naive.gradient(ref, X, y)
    np.testing.assert_allclose(net.gradient(X, y)[1], g_ref, rtol=1e-9, atol=1e-12)


def test_gradient_of_batch_mean_is_mean_of_sample_gradients():
    """grad(batch) == mean of per-sample grads; loss(batch) == mean of per-sample losses."""
    net, X, y = _case("gelu", "softmax", "cross_entropy", "int", 3, 7, seed=600)
    E, g = net.gradient(X, y)
    per = [net.gradient(X[i : i + 1], y[i : i + 1]) for i in range(7)]
    assert E == pytest.approx(np.mean([p[0] for p in per]), rel=1e-12)
    np.testing.assert_allclose(g, np.mean([p[1] for p in per], axis=0), rtol=1e-10, atol=1e-14)


def test_gradient_does_not_update():
    net, X, y = _case("relu", "identity", "mse", None, 2, 7, seed=700)
    before = net.params.copy()
    net.gradient(X, y)
    net.evaluate(X, y)
    net.predict(X)
    np.testing.assert_array_equal(net.params, before)
