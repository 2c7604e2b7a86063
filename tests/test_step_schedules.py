"""Learning-rate schedules evaluated at every optimizer step inside the compiled epoch.

* ``fit`` with a per-step schedule gives bit-identical parameters to a Python
  loop calling ``train_step`` with the scheduled rate at each step (same
  kernel, same arithmetic, same order: exact equality is the right check), for
  SGD, momentum and Adam, shuffled or not, on networks that would otherwise
  take the small-network engine too.
* The formulas against independent hand-written references (PyTorch's
  OneCycleLR two-phase cosine, HF-style warmup + cosine).
* Rates are validated for the whole run before anything changes; weighted
  batches that take no step do not advance the schedule; the schedule
  continues across ``fit`` calls that share an optimizer.
* ``fastbp.jit.set_lr`` from a user's @njit loop equals the Python loop.
* Zero NRT allocations inside compiled code for weighted and scheduled fits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

import fastbp
import fastbp.jit as fj
from fastbp import schedules as S
from test_allocations import assert_no_kernel_allocations, track_nrt


def _setup(sizes=(4, 6, 3), n=30, seed=0, loss="cross_entropy"):
    net = fastbp.MLP(list(sizes), activation="tanh", loss=loss, seed=seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n) if loss == "cross_entropy" else \
        rng.standard_normal((n, sizes[-1]))
    return net, X, y


def _loop(net, X, y, schedule, lr0, epochs, batch_size, opt, seed=None, w=None):
    """Python reference: train_step per batch with lr = schedule(t) at optimizer step t."""
    n = X.shape[0]
    rng = None if seed is None else np.random.default_rng(seed)
    for _ in range(epochs):
        order = np.arange(n)
        if rng is not None:
            rng.shuffle(order)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            if w is not None and w[idx].sum() == 0:
                continue
            t = int(opt.step[0])
            net.train_step(X[idx], y[idx], lr=schedule(t, lr0, None), optimizer=opt,
                           sample_weight=None if w is None else w[idx])


SCHEDS = [S.WarmupCosine(total_steps=24, warmup_steps=5, eta_min=1e-3),
          S.OneCycle(total_steps=24),
          S.LinearWarmup(4),
          S.Step(step_size=5, gamma=0.5, per="step"),
          S.Exponential(0.9, per="step"),
          S.PerStep(lambda t, lr0: lr0 / (1 + t))]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("optimizer,kw", [("sgd", {}), ("sgd", {"momentum": 0.9}),
                                          ("adam", {})])
@pytest.mark.parametrize("sched", range(len(SCHEDS)))
def test_fit_equals_train_step_loop_bit_for_bit(sched, optimizer, kw, shuffle):
    schedule = SCHEDS[sched]
    net, X, y = _setup()
    a, b = net.copy(), net.copy()
    hist = a.fit(X, y, epochs=3, batch_size=4, lr=0.1, optimizer=optimizer, shuffle=shuffle,
                 seed=7, lr_schedule=schedule, **kw)
    opt = fastbp.optim.make_optimizer(optimizer, 0.1, **kw)
    _loop(b, X, y, schedule, 0.1, 3, 4, opt, seed=7 if shuffle else None)
    np.testing.assert_array_equal(a.params, b.params)
    assert hist.lr == [schedule(t, 0.1) for t in (0, 8, 16)]  # first step of each epoch
    assert a.optimizer.lr == schedule(23, 0.1)  # the last step's rate


def test_rate_changes_within_an_epoch():
    """One epoch, one compiled call: the parameters differ from a constant-rate epoch."""
    net, X, y = _setup()
    a, b = net.copy(), net.copy()
    a.fit(X, y, epochs=1, batch_size=3, lr=0.1, shuffle=False,
          lr_schedule=S.Step(1, 0.5, per="step"))
    b.fit(X, y, epochs=1, batch_size=3, lr=0.1, shuffle=False)
    assert not np.array_equal(a.params, b.params)
    assert a.optimizer.lr == 0.1 * 0.5 ** 9


def test_named_schedules_span_the_run():
    net, X, y = _setup()
    hist = net.fit(X, y, epochs=2, batch_size=5, lr=0.2, lr_schedule="onecycle")
    total = 2 * 6
    assert net.optimizer.lr == pytest.approx(0.2 / 25 / 1e4)
    assert hist.lr[0] == pytest.approx(0.2 / 25)
    hist = net.fit(X, y, epochs=2, batch_size=5, lr=0.2, lr_schedule="warmup_cosine")
    ref = S.WarmupCosine(total, warmup_steps=total // 20)
    assert net.optimizer.lr == ref(total - 1, 0.2) > 0


def _onecycle_ref(t, max_lr, total, pct=0.3, div=25.0, final_div=1e4):
    """PyTorch OneCycleLR (three_phase=False, anneal_strategy='cos'), written out."""
    initial = max_lr / div
    minimum = initial / final_div
    phases = [(float(pct * total) - 1, initial, max_lr), (total - 1, max_lr, minimum)]
    start = 0.0
    for end, lo, hi in phases:
        if t <= end or end == phases[-1][0]:
            frac = (t - start) / (end - start)
            return hi + (lo - hi) / 2.0 * (math.cos(math.pi * frac) + 1)
        start = end


def test_onecycle_matches_pytorch_formula():
    s = S.OneCycle(total_steps=100)
    for t in range(100):
        assert s(t, 0.5) == pytest.approx(_onecycle_ref(t, 0.5, 100), rel=1e-12)
    assert s(0, 0.5) == pytest.approx(0.02)
    assert s(29, 0.5) == pytest.approx(0.5)
    assert s(99, 0.5) == pytest.approx(0.02 / 1e4)


def test_warmup_cosine_values():
    s = S.WarmupCosine(total_steps=110, warmup_steps=10, eta_min=0.01)
    assert [s(t, 1.0) for t in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert s(9, 1.0) == 1.0 and s(10, 1.0) == pytest.approx(1.0)
    assert s(60, 1.0) == pytest.approx(0.01 + 0.99 * 0.5)
    assert s(110, 1.0) == pytest.approx(0.01) and s(500, 1.0) == pytest.approx(0.01)
    assert S.WarmupCosine(10)(0, 1.0) == 1.0  # no warmup


def test_per_epoch_schedules_unchanged():
    net, X, y = _setup()
    hist = net.fit(X, y, epochs=4, batch_size=5, lr=0.1, lr_schedule=S.Step(2, 0.5))
    assert hist.lr == [0.1, 0.1, 0.05, 0.05]
    hist = net.fit(X, y, epochs=3, batch_size=5, lr=0.1, lr_schedule="cosine")
    assert hist.lr[0] == 0.1 and hist.lr[1] < 0.1


@pytest.mark.parametrize("bad", [lambda t, lr0: -1.0 if t == 7 else lr0,
                                 lambda t, lr0: float("nan") if t == 11 else lr0])
def test_bad_rate_anywhere_in_the_run_raises_before_training(bad):
    net, X, y = _setup()
    p, st = net.params.copy(), net.rng.bit_generator.state
    with pytest.raises(ValueError, match="step"):
        net.fit(X, y, epochs=2, batch_size=5, lr=0.1, seed=3, lr_schedule=S.PerStep(bad))
    np.testing.assert_array_equal(net.params, p)
    assert net.rng.bit_generator.state == st


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="per"):
        S.Cosine(10, per="batch")
    with pytest.raises(ValueError, match="warmup_steps"):
        S.WarmupCosine(10, warmup_steps=10)
    with pytest.raises(ValueError, match="per-step"):
        S.LinearWarmup(3, after=S.Cosine(10))
    with pytest.raises(TypeError):
        S.PerStep(3)


def test_schedule_follows_optimizer_steps_across_fits_and_skipped_batches():
    net, X, y = _setup()
    w = np.ones(30)
    w[4:8] = 0.0  # the second batch of 4 weighs nothing: no step, no schedule tick
    sched = S.Exponential(0.8, per="step")
    a, b = net.copy(), net.copy()
    opt_a = fastbp.SGD(0.1, momentum=0.5)
    for _ in range(2):  # lr=0.1: the base rate (the optimizer holds the last scheduled one)
        a.fit(X, y, epochs=1, batch_size=4, shuffle=False, optimizer=opt_a, lr=0.1,
              lr_schedule=sched, sample_weight=w)
    assert opt_a.step[0] == 14
    opt_b = fastbp.SGD(0.1, momentum=0.5)
    _loop(b, X, y, sched, 0.1, 2, 4, opt_b, w=w)
    np.testing.assert_array_equal(a.params, b.params)


# ------------------------------------------------------------------ fastbp.jit.set_lr
@njit(cache=False)
def _user_loop(state, X, y, epochs, batch, lr0, t_max):
    t = 0
    for _ in range(epochs):
        for s in range(0, X.shape[0], batch):
            lr = 0.0 + (lr0 - 0.0) * (1 + math.cos(math.pi * (min(t, t_max) / t_max))) / 2
            fj.set_lr(state, lr)
            fj.train_step(state, X[s:s + batch], y[s:s + batch])
            t += 1
    return fj.get_lr(state)


def test_set_lr_from_user_njit_loop():
    net, X, y = _setup()
    twin = net.copy()
    st = net.state(batch_size=4, optimizer="sgd", lr=0.1, momentum=0.9)
    last = _user_loop(st, X, y, 2, 4, 0.1, 16)
    assert net.optimizer.lr == last  # the Python optimizer shares the rate
    opt = fastbp.SGD(0.1, momentum=0.9)
    _loop(twin, X, y, S.Cosine(16, per="step"), 0.1, 2, 4, opt)
    np.testing.assert_array_equal(net.params, twin.params)
    assert last == S.Cosine(16, per="step")(15, 0.1)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_set_lr_rejects_bad_rates(bad):
    net, _, _ = _setup()
    st = net.state(batch_size=4)
    with pytest.raises(ValueError, match="learning rate"):
        fj.set_lr(st, bad)
    assert net.optimizer.lr == 0.01


# ------------------------------------------------------------------ allocations
@pytest.mark.parametrize("shuffle", [True, False])
def test_weighted_scheduled_fit_allocates_nothing_in_numba(shuffle):
    net, X, y = _setup(sizes=(12, 16, 4), n=64)
    w = np.random.default_rng(0).random(64)
    kw = dict(batch_size=10, lr=0.05, shuffle=shuffle, optimizer="adam", sample_weight=w,
              lr_schedule=S.WarmupCosine(100, 5))
    net.fit(X, y, epochs=1, seed=0, **kw)  # warm-up
    with track_nrt() as t:
        net.fit(X, y, epochs=3, seed=1, **kw)
    assert_no_kernel_allocations(t)
    counts = []
    for bs in (32, 8):  # whatever Python passes per epoch, nothing grows with the batches
        kw["batch_size"] = bs
        net.fit(X, y, epochs=1, seed=0, **kw)
        with track_nrt() as t:
            net.fit(X, y, epochs=2, seed=0, **kw)
        assert_no_kernel_allocations(t)
        counts.append(t.alloc)
    assert counts[0] == counts[1]
