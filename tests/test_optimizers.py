"""Optimizers against NumPy references of their update rules, float64.

Every rule is re-implemented in tests/naive.py (:class:`naive.RefOptimizer`) from its
published definition, independently of fastbp's kernels:

* SGD ``w <- w - lr g``; momentum ``v <- mu v + g``, ``w <- w - lr v``, Nesterov
  ``w <- w - lr (g + mu v)`` (PyTorch's conventions, ``dampening = 0``);
* Adam exactly as Kingma & Ba (2015), Algorithm 1 (bias-corrected moments
  ``m_hat = m / (1 - beta1^t)``, ``v_hat = v / (1 - beta2^t)``,
  ``w <- w - lr m_hat / (sqrt(v_hat) + eps)``); L2 ``weight_decay`` is added to
  the gradient (coupled), AdamW decays the weights first, ``w <- w (1 - lr wd)``
  (Loshchilov & Hutter, PyTorch's order);
* iRPROP- (Igel & Huesken 2000): per-weight steps grow by ``eta_plus`` while the
  gradient keeps its sign, shrink by ``eta_minus`` (clamped to
  ``[delta_min, delta_max]``) when it flips, and a flipped gradient is treated
  as zero for that step and remembered as zero;
* regularisation on weight entries only (biases and batch-norm gamma/beta are
  left alone -- fastbp's documented choice): L2 ``g += wd w``, L1
  ``g += l1 sign(w)``; gradient clipping rescales the *loss* gradient to global
  Euclidean norm ``clip_norm`` before the L2/L1 terms are added (PyTorch's
  ``clip_grad_norm_`` then ``step()``).

Two ways of driving the comparison:

1. *Same gradients*: before each ``train_step`` the test takes the gradient the
   step will use (``net.gradient(X, y, training=True)`` on the same parameters:
   the same compiled code path, bitwise the same numbers), applies the
   reference rule with the reference's own state (momentum buffer, moments,
   RPROP steps and previous gradient, step count t), and compares the
   parameters after the step with rtol 1e-12.  The reference state is never
   read back from the library, so multi-step state handling is checked.  Runs
   on a tanh/MSE network and on a ReLU/cross-entropy network with batch norm
   (so gamma/beta are in the buffer and must be exempt from decay).
2. *Independent trajectories*: the reference trains its own copy with
   gradients from tests/naive.py (no fastbp code) for 8 steps; parameters agree
   with rtol 1e-10.

Both, and the fit plumbing, also run on every training engine (the ``engine``
fixture, tests/engines.py: each engine forced through ``fastbp._engine``).

L-BFGS (``fit(optimizer="lbfgs")``) is compared with ``scipy.optimize.minimize``
run by the test on the objective computed by tests/naive.py, and checked for
stationarity of ``loss + wd/2 ||W||^2`` at convergence.
"""

from __future__ import annotations

import numpy as np
import pytest

import engines
import naive

fastbp = pytest.importorskip("fastbp")
from fastbp.optim import SGD, Adam, AdamW, RPROP  # noqa: E402

RTOL = 1e-12
ATOL = 1e-15


# --------------------------------------------------------------------------- problems


def _problem(kind):
    """(net, X, y) -- float64; ``tanh``: 5-7-3 MSE, 37 rows; ``bn``: 6-8-7-4 ReLU with batch
    norm on both hidden layers, cross-entropy on integer labels, 29 rows."""
    if kind == "tanh":
        r = np.random.default_rng(7)
        X = r.standard_normal((37, 5))
        y = np.tanh(X @ r.standard_normal((5, 3))) + 0.1 * r.standard_normal((37, 3))
        net = fastbp.MLP([5, 7, 3], activation="tanh", loss="mse", seed=0)
        net.params[:] += 0.05 * r.standard_normal(net.n_params)  # nonzero biases
        return net, X, y
    r = np.random.default_rng(11)
    X = r.standard_normal((29, 6))
    y = np.argmax(X[:, :4] + 0.3 * r.standard_normal((29, 4)), axis=1).astype(np.int64)
    net = fastbp.MLP([6, 8, 7, 4], activation="relu", loss="cross_entropy", batch_norm=True,
                     seed=1)
    net.params[:] += 0.05 * r.standard_normal(net.n_params)  # gamma != 1, beta != 0
    return net, X, y


# (library class, reference kind, keyword arguments); lr is part of the keywords
CASES = {
    "sgd": (SGD, "sgd", dict(lr=0.1)),
    "sgd-wd": (SGD, "sgd", dict(lr=0.1, weight_decay=0.3)),
    "sgd-l1": (SGD, "sgd", dict(lr=0.1, l1=0.02)),
    "sgd-clip": (SGD, "sgd", dict(lr=0.1, clip_norm=0.05)),
    "sgd-wd-l1-clip": (SGD, "sgd", dict(lr=0.1, weight_decay=0.3, l1=0.02, clip_norm=0.05)),
    "momentum": (SGD, "sgd", dict(lr=0.05, momentum=0.9)),
    "nesterov": (SGD, "sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "nesterov-wd-clip": (SGD, "sgd", dict(lr=0.05, momentum=0.8, nesterov=True,
                                          weight_decay=0.2, clip_norm=0.1)),
    "adam": (Adam, "adam", dict(lr=0.01)),
    "adam-betas-eps": (Adam, "adam", dict(lr=0.01, betas=(0.5, 0.7), eps=1e-2)),
    "adam-l2": (Adam, "adam", dict(lr=0.01, weight_decay=0.5)),
    "adam-l1-clip": (Adam, "adam", dict(lr=0.01, l1=0.05, clip_norm=0.05)),
    "adamw": (AdamW, "adamw", dict(lr=0.01, weight_decay=0.5)),
    "adamw-l1": (AdamW, "adamw", dict(lr=0.01, weight_decay=0.5, l1=0.05)),
    "rprop": (RPROP, "rprop", dict()),
    "rprop-bounds": (RPROP, "rprop", dict(eta_plus=1.5, eta_minus=0.3, delta0=0.05,
                                          delta_min=0.01, delta_max=0.08)),
    "rprop-wd": (RPROP, "rprop", dict(weight_decay=0.1)),
}


# --------------------------------------------------------------------------- 1. same gradients


@pytest.mark.parametrize("problem", ["tanh", "bn"])
@pytest.mark.parametrize("case", list(CASES))
def test_update_rule_matches_reference(case, problem):
    cls, kind, kw = CASES[case]
    net, X, y = _problem(problem)
    opt = cls(**kw)
    ref = naive.RefOptimizer(kind, naive.weight_mask(net), **kw)
    steps = 8 if kind == "rprop" else 5
    # Batch-normalised layers' biases have an exact gradient of 0; the computed value is
    # rounding noise whose bits depend on the compiled entry point (gradient() vs
    # train_step()), and scale-free rules (Adam: g / (|g| + eps), RPROP: sign g) turn that
    # noise into O(lr) moves.  They are compared only for their (zero) gradient.
    noise = naive.bn_bias_mask(net)
    assert (problem == "bn") == bool(noise.any())
    flips = 0
    for t in range(steps):
        p = net.params.copy()
        _, g = net.gradient(X, y, training=True)
        assert np.max(np.abs(g[noise]), initial=0.0) < 1e-14
        expected = ref.step(p, g)
        net.train_step(X, y, optimizer=opt)
        np.testing.assert_allclose(net.params[~noise], expected[~noise], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case}/{problem}: step {t + 1}")
        net.params[noise] = expected[noise]  # same starting point for the next step
        assert not np.array_equal(net.params, p), "the step changed nothing"
        if kind == "rprop":
            flips += int(np.sum((ref.prev == 0) & (np.abs(g) > 0)))
    assert opt.step[0] == steps
    if kind == "rprop":
        # the comparison exercised the sign-flip branch, not only growth
        assert flips > 0
    if case == "rprop-bounds":
        # ... and both clamps
        assert np.any(ref.delta == 0.08) and np.any(ref.delta == 0.01)


@pytest.mark.parametrize("problem", ["tanh", "bn"])
@pytest.mark.parametrize("case", list(CASES))
def test_update_rule_on_every_engine(case, problem, engine):
    """Full-batch epochs of fit on each training engine land where the reference rule lands
    when fed the library's gradients along its own trajectory (rtol 1e-12).  The engines
    compute their own gradients (their own summation order), so this holds them to the
    same-gradient tolerance; batch-normalised layers' biases are left out (see above)."""
    cls, kind, kw = CASES[case]
    net, X, y = _problem(problem)
    steps = 8 if kind == "rprop" else 5
    ref = naive.RefOptimizer(kind, naive.weight_mask(net), **kw)
    noise = naive.bn_bias_mask(net)
    probe = net.copy()
    p = net.params.copy()
    for _ in range(steps):
        probe.params = p
        _, g = probe.gradient(X, y, training=True)
        p = ref.step(p, g)
    engines.fit(engine, net, X, y, epochs=steps, optimizer=kind, **kw)
    # Unlike the test above, the noisy biases cannot be reset between the steps of one fit:
    # their drift reaches the other entries at the rounding level, so with batch norm the
    # absolute floor is 10 ATOL (~10 eps of the parameters' scale, 1).
    atol = 10 * ATOL if noise.any() else ATOL
    np.testing.assert_allclose(net.params[~noise], p[~noise], rtol=RTOL, atol=atol,
                               err_msg=f"{case}/{problem} on {engine}")


def test_adam_first_step_is_lr_times_sign():
    """Bias correction: at t = 1, m_hat = g and v_hat = g^2 exactly, so every parameter with
    |g| >> eps moves by lr * g / (|g| + eps) ~ lr.  Without the correction the first step
    would be lr (1 - beta1) / sqrt(1 - beta2) ~ 3.16 lr."""
    net, X, y = _problem("tanh")
    p = net.params.copy()
    _, g = net.gradient(X, y)
    lr, eps = 0.01, 1e-8
    net.train_step(X, y, optimizer=Adam(lr=lr, eps=eps))
    np.testing.assert_allclose(net.params - p, -lr * g / (np.abs(g) + eps), rtol=1e-12,
                               atol=1e-17)
    big = np.abs(g) > 1e-4
    assert big.sum() > 0.9 * g.size
    np.testing.assert_allclose(np.abs(net.params - p)[big], lr, rtol=1e-4)


def test_adam_eps_placement_is_algorithm_1():
    """Algorithm 1 adds eps to sqrt(v_hat); the 'efficient' form of Sect. 2 adds it to sqrt(v)
    (lr_t = lr sqrt(1-b2^t)/(1-b1^t)).  With eps comparable to |g| the two differ by far more
    than the tolerance, and the library follows Algorithm 1."""
    net, X, y = _problem("tanh")
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-2
    opt = Adam(lr=lr, betas=(b1, b2), eps=eps)
    m = np.zeros(net.n_params)
    v = np.zeros(net.n_params)
    for t in range(1, 4):
        p = net.params.copy()
        _, g = net.gradient(X, y)
        net.train_step(X, y, optimizer=opt)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alg1 = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        efficient = p - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(net.params, alg1, rtol=RTOL, atol=ATOL)
        assert np.max(np.abs(efficient - alg1)) > 1e-5


@pytest.mark.parametrize("problem", ["tanh", "bn"])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw", "rprop"])
def test_weight_decay_acts_on_weights_only(opt, problem):
    """One step with and one without weight_decay from the same state: biases and batch-norm
    gamma/beta end up bitwise identical; for SGD and decoupled AdamW the weights differ by
    exactly -lr * wd * w; Adam's L2 term goes through the moments instead."""
    net, X, y = _problem(problem)
    mask = naive.weight_mask(net)
    wd, lr = 0.3, 0.01
    cls = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rprop": RPROP}[opt]
    a, b = net.copy(), net.copy()
    a.train_step(X, y, optimizer=cls(lr=lr, weight_decay=wd))
    b.train_step(X, y, optimizer=cls(lr=lr, weight_decay=0.0))
    np.testing.assert_array_equal(a.params[~mask], b.params[~mask])
    if any(net.batch_norm):
        assert all(np.array_equal(ga, gb) for ga, gb in zip(a.bn_gamma[:-1], b.bn_gamma[:-1]))
    diff = a.params[mask] - b.params[mask]
    if opt == "rprop":  # sign-based: the decay term only matters where it flips a sign
        flipped = np.abs(diff) > 0
        assert 0 < flipped.sum() < diff.size
        np.testing.assert_allclose(np.abs(diff[flipped]), 2 * 0.1, rtol=1e-12)  # 2 * delta0
        return
    assert np.all(diff != 0)
    if opt in ("sgd", "adamw"):
        np.testing.assert_allclose(diff, -lr * wd * net.params[mask], rtol=1e-9, atol=1e-16)
    elif opt == "adam":
        assert not np.allclose(diff, -lr * wd * net.params[mask], rtol=1e-3)


def test_clipping_scales_to_the_global_norm():
    """clip_norm = c below ||g||: one SGD step is w - lr g c / ||g|| (norm over every parameter,
    biases included), so the step has length exactly lr * c; above ||g|| nothing changes."""
    net, X, y = _problem("tanh")
    p = net.params.copy()
    _, g = net.gradient(X, y)
    norm = np.linalg.norm(g)
    lr, c = 0.1, 1e-3
    assert norm > 100 * c
    a = net.copy()
    a.train_step(X, y, lr=lr, clip_norm=c)
    np.testing.assert_allclose(a.params, p - lr * g * (c / norm), rtol=RTOL, atol=ATOL)
    assert np.linalg.norm(a.params - p) == pytest.approx(lr * c, rel=1e-9)
    b, unclipped = net.copy(), net.copy()
    b.train_step(X, y, lr=lr, clip_norm=2 * norm)
    unclipped.train_step(X, y, lr=lr)
    np.testing.assert_allclose(b.params, unclipped.params, rtol=1e-13, atol=ATOL)


# --------------------------------------------------------------------------- 2. own trajectory


@pytest.mark.parametrize("how", ("train_step",) + engines.ENGINES)
@pytest.mark.parametrize("case", ["sgd-wd", "momentum", "nesterov-wd-clip", "adam", "adam-l2",
                                  "adamw-l1", "rprop"])
def test_trajectory_matches_reference_with_naive_gradients(case, how):
    """The reference trains its own parameters with tests/naive.py gradients (no fastbp code);
    after 8 full-batch steps by ``train_step`` or by fit on each training engine, fastbp's
    parameters agree to rtol 1e-10 and each step's loss to rel 1e-10."""
    cls, kind, kw = CASES[case]
    net, X, y = _problem("tanh")
    ref_net = naive.Net.copy_of(net)
    ref = naive.RefOptimizer(kind, naive.weight_mask(net), **kw)
    p = ref_net.params
    losses = []
    for _ in range(8):
        E, g = naive.gradient(ref_net, X, y)
        losses.append(E)
        p = ref.step(p, g)
        ref_net.set_flat(p)
    if how == "train_step":
        opt = cls(**kw)
        got = [net.train_step(X, y, optimizer=opt) for _ in range(8)]
    else:
        got = engines.fit(how, net, X, y, epochs=8, optimizer=kind, **kw)
    np.testing.assert_allclose(got, losses, rtol=1e-10)
    np.testing.assert_allclose(net.params, p, rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- fit plumbing


FIT_CASES = [
    ("sgd", dict(lr=0.1, weight_decay=0.1)),
    ("sgd", dict(lr=0.1, l1=0.01, clip_norm=0.05)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adamw", dict(lr=0.01, weight_decay=0.2)),
]


@pytest.mark.parametrize("name,kw", FIT_CASES, ids=[f"{n}-{'-'.join(k)}" for n, k in FIT_CASES])
def test_fit_keywords_reach_the_optimizer(name, kw, engine):
    """fit(optimizer=name, **keywords) with shuffle=False and batch 10 takes exactly the steps
    the reference takes over the same batches in order (37 rows: batches 10, 10, 10, 7), on
    every training engine."""
    net, X, y = _problem("tanh")
    kind = name
    ref = naive.RefOptimizer(kind, naive.weight_mask(net), **kw)
    ref_net = net.copy()
    engines.fit(engine, net, X, y, epochs=3, batch_size=10, optimizer=name, **kw)
    p = ref_net.params.copy()
    for _ in range(3):
        for s in range(0, 37, 10):
            ref_net.params = p
            _, g = ref_net.gradient(X[s:s + 10], y[s:s + 10])
            p = ref.step(p, g)
    np.testing.assert_allclose(net.params, p, rtol=1e-11, atol=1e-14, err_msg=engine)
    if net.optimizer is not None:  # trained by MLP.fit (a single-network engine)
        assert net.history_.lr == [kw["lr"]] * 3
        assert net.optimizer.step[0] == 12


def test_optimizer_state_persists_across_fit_calls():
    """An Adam instance passed to fit keeps its moments and step count: 3 + 2 epochs with the
    same instance equal 5 epochs in one call; a fresh instance for the second call differs."""
    net, X, y = _problem("tanh")
    a, b, c = net.copy(), net.copy(), net.copy()
    kw = dict(epochs=1, batch_size=37, shuffle=False)
    a.fit(X, y, optimizer=Adam(lr=0.01), **{**kw, "epochs": 5})
    opt = Adam(lr=0.01)
    b.fit(X, y, optimizer=opt, **{**kw, "epochs": 3})
    assert b.optimizer is opt
    b.fit(X, y, optimizer=b.optimizer, **{**kw, "epochs": 2})
    np.testing.assert_array_equal(a.params, b.params)
    assert opt.step[0] == 5
    c.fit(X, y, optimizer=Adam(lr=0.01), **{**kw, "epochs": 3})
    c.fit(X, y, optimizer=Adam(lr=0.01), **{**kw, "epochs": 2})
    assert not np.allclose(c.params, a.params, rtol=1e-6)


def test_rprop_fit_is_full_batch():
    """fit with rprop ignores batch_size and shuffling: each epoch is one full-batch iRPROP-
    step, identical to train_step on all rows; the loss falls."""
    net, X, y = _problem("tanh")
    ref = net.copy()
    hist = net.fit(X, y, epochs=6, batch_size=5, shuffle=True, optimizer="rprop")
    opt = RPROP()
    losses = [ref.train_step(X, y, optimizer=opt) for _ in range(6)]
    np.testing.assert_array_equal(net.params, ref.params)
    np.testing.assert_allclose(hist.loss, losses, rtol=1e-13)
    assert net.optimizer.step[0] == 6 and hist.samples == 6 * 37
    assert hist.loss[-1] < 0.7 * hist.loss[0]


# --------------------------------------------------------------------------- L-BFGS


def _scipy_lbfgs(ref_net, X, y, maxiter, mask, wd=0.0):
    """scipy's L-BFGS-B on the naive objective loss + wd/2 ||W||^2 (weights only)."""
    from scipy.optimize import minimize

    def fun(p):
        ref_net.set_flat(p)
        E, g = naive.gradient(ref_net, X, y)
        w = p * mask
        return E + 0.5 * wd * float(w @ w), g + wd * w

    res = minimize(fun, ref_net.params, jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter, "gtol": 1e-12, "ftol": 1e-15})
    return res


def test_lbfgs_matches_scipy_on_the_same_objective():
    """5 L-BFGS iterations from the same start land where scipy's own L-BFGS-B lands on the
    objective computed by tests/naive.py (rtol 1e-7: the two runs differ only by the rounding
    of the gradient), one history entry per iteration, losses non-increasing."""
    pytest.importorskip("scipy")
    net, X, y = _problem("tanh")
    mask = naive.weight_mask(net)
    res = _scipy_lbfgs(naive.Net.copy_of(net), X, y, 5, mask)
    E0 = net.evaluate(X, y)
    hist = net.fit(X, y, epochs=5, optimizer="lbfgs")
    assert res.nit == 5 and hist.epochs == 5
    np.testing.assert_allclose(net.params, res.x, rtol=1e-7, atol=1e-9)
    assert hist.loss[-1] == pytest.approx(res.fun, rel=1e-9)
    assert hist.loss[-1] == net.evaluate(X, y)
    assert all(b <= a for a, b in zip([E0] + hist.loss, hist.loss))
    assert hist.loss[-1] < 0.5 * E0
    assert np.all(np.isnan(hist.lr))


def test_lbfgs_weight_decay_converges_to_a_stationary_point():
    """With weight_decay, L-BFGS minimises loss + wd/2 ||W||^2 over weights only: at the end
    the loss gradient on biases is ~0 and on weights it is ~ -wd * W.  The final objective is
    no worse than scipy's own run on the naive objective."""
    net, X, y = _problem("tanh")
    mask = naive.weight_mask(net)
    wd = 0.05
    hist = net.fit(X, y, epochs=400, optimizer="lbfgs", weight_decay=wd, tol=1e-12)
    assert hist.stop_reason == "converged", hist.message
    _, g = net.gradient(X, y)
    p = net.params
    assert np.max(np.abs(g[~mask])) < 1e-6
    np.testing.assert_allclose(g[mask], -wd * p[mask], atol=1e-6)
    assert np.max(np.abs(p[mask])) > 0.1  # a non-trivial optimum
    obj = net.evaluate(X, y) + 0.5 * wd * float(p[mask] @ p[mask])
    res = _scipy_lbfgs(naive.Net.copy_of(_problem("tanh")[0]), X, y, 400, mask, wd)
    assert obj <= res.fun + 1e-9


def test_lbfgs_rejects_stochastic_objectives_and_other_keywords():
    X = np.zeros((4, 3))
    y = np.zeros((4, 2))
    with pytest.raises(ValueError, match="deterministic"):
        fastbp.MLP([3, 4, 2], dropout=0.5, seed=0).fit(X, y, optimizer="lbfgs")
    with pytest.raises(ValueError, match="deterministic"):
        fastbp.MLP([3, 4, 2], batch_norm=True, seed=0).fit(X, y, optimizer="lbfgs")
    with pytest.raises(TypeError, match="weight_decay"):
        fastbp.MLP([3, 4, 2], seed=0).fit(X, y, optimizer="lbfgs", momentum=0.9)


def test_train_step_by_name_starts_fresh_every_call():
    """An optimizer named in ``train_step`` has no memory between calls (its
    reused object is reset), copies do not share it, and pickles leave it out."""
    import pickle

    import fastbp
    from fastbp.optim import Adam
    r = np.random.default_rng(0)
    X, y = r.standard_normal((5, 3)), r.standard_normal((5, 2))
    a = fastbp.MLP([3, 4, 2], seed=1)
    b = fastbp.MLP([3, 4, 2], seed=1)
    for _ in range(3):
        a.train_step(X, y, lr=0.01, optimizer="adam", betas=(0.8, 0.99))
        b.train_step(X, y, optimizer=Adam(lr=0.01, betas=(0.8, 0.99)))  # a new one each call
    np.testing.assert_array_equal(a.params, b.params)
    c = a.copy()
    assert c._step_opt is None
    a.train_step(X, y, lr=0.01, optimizer="adam", betas=(0.8, 0.99))
    c.train_step(X, y, lr=0.01, optimizer="adam", betas=(0.8, 0.99))
    np.testing.assert_array_equal(a.params, c.params)
    assert "_step_opt" not in pickle.loads(pickle.dumps(a)).__dict__
