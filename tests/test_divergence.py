"""Divergence, interruption and threads: training fails safely and reproducibly."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastbp
from fastbp.io import load


def _unscaled(n=37, seed=0):
    """A regression problem with large unscaled inputs and targets."""
    r = np.random.default_rng(seed)
    X = 100.0 * r.standard_normal((n, 5))
    y = 1000.0 * r.standard_normal((n, 3))
    return X, y


def _scaled(n=37, seed=7):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, 5))
    return X, np.tanh(X @ r.standard_normal((5, 3)))


def _net(seed=0, **kw):
    kw.setdefault("activation", "relu")
    return fastbp.MLP([5, 8, 3], seed=seed, **kw)


# ------------------------------------------------------------------ divergence
def test_huge_lr_raises_and_restores_params_from_before_the_first_epoch():
    X, y = _unscaled()
    net = _net()
    before = net.params.copy()
    with pytest.raises(fastbp.DivergenceError, match="(?i)smaller learning rate") as ei:
        net.fit(X, y, epochs=5, batch_size=4, lr=1e6)
    assert isinstance(ei.value, FloatingPointError)
    assert "epoch 1" in str(ei.value)
    assert np.all(np.isfinite(net.params))
    assert net.params.tobytes() == before.tobytes()
    # the network is still usable
    assert np.all(np.isfinite(net.predict(X)))


def _jump_after(n_epochs, lr):
    """lr_schedule: the initial rate for ``n_epochs`` epochs, then ``lr``."""
    def schedule(epoch, lr0, metric=None):
        return lr0 if epoch < n_epochs else lr
    return schedule


@pytest.mark.parametrize("opt", ["sgd", "momentum"])
def test_divergence_in_a_later_epoch_restores_the_last_finite_epoch(opt):
    """Epochs 1-2 are fine; the schedule then sets lr = 1e6, so epoch 3 diverges."""
    X, y = _unscaled()
    make = (lambda: fastbp.SGD(1e-7)) if opt == "sgd" else (
        lambda: fastbp.SGD(1e-7, momentum=0.9))
    ref = _net()
    ref_opt = make()
    ref.fit(X, y, epochs=2, batch_size=4, optimizer=ref_opt)

    net = _net()
    o = make()
    with pytest.raises(fastbp.DivergenceError, match="(?i)smaller learning rate") as ei:
        net.fit(X, y, epochs=6, batch_size=4, optimizer=o, lr_schedule=_jump_after(2, 1e6))
    assert "epoch 3" in str(ei.value)
    assert np.all(np.isfinite(net.params))
    assert net.params.tobytes() == ref.params.tobytes()
    # the optimizer state is rolled back too
    assert o.state.tobytes() == ref_opt.state.tobytes()
    assert o.step.tobytes() == ref_opt.step.tobytes()


def test_on_divergence_warn():
    X, y = _unscaled()
    ref = _net()
    ref.fit(X, y, epochs=2, batch_size=4, lr=1e-7)
    net = _net()
    with pytest.warns(RuntimeWarning, match="(?i)smaller learning rate"):
        hist = net.fit(X, y, epochs=6, batch_size=4, optimizer=fastbp.SGD(1e-7),
                       lr_schedule=_jump_after(2, 1e6), on_divergence="warn")
    assert hist.stop_reason == "diverged"
    assert hist.epochs == 2 and len(hist.lr) == 2 and hist.samples == 2 * len(X)
    assert net.history_ is hist
    assert net.params.tobytes() == ref.params.tobytes()


def test_on_divergence_warn_in_first_epoch():
    X, y = _unscaled()
    net = _net()
    before = net.params.copy()
    with pytest.warns(RuntimeWarning):
        hist = net.fit(X, y, epochs=3, batch_size=4, lr=1e6, on_divergence="warn")
    assert hist.stop_reason == "diverged" and hist.epochs == 0
    assert net.params.tobytes() == before.tobytes()


def test_train_step_nan_loss_raises_and_leaves_params_unchanged():
    X, y = _unscaled()
    net = _net()
    net.params[:] = 1e200  # forward overflows: the loss is inf/NaN
    before = net.params.copy()
    with pytest.raises(fastbp.DivergenceError, match="(?i)smaller learning rate"):
        net.train_step(X, y, lr=0.1)
    assert net.params.tobytes() == before.tobytes()


def test_train_step_with_huge_lr_eventually_raises_with_params_unchanged():
    X, y = _unscaled()
    net = _net()
    for _ in range(50):
        before = net.params.copy()
        try:
            net.train_step(X, y, lr=1e300)
        except fastbp.DivergenceError:
            break
    else:
        pytest.fail("train_step never reported the divergence")
    assert net.params.tobytes() == before.tobytes()


def test_train_step_never_leaves_nonfinite_params():
    """A step either leaves finite parameters or raises DivergenceError and changes nothing."""
    X, y = _unscaled()
    net = _net()
    before = net.params.copy()
    try:
        loss = net.train_step(X, y, lr=1e308)  # the loss before the step is finite
    except fastbp.DivergenceError:
        assert net.params.tobytes() == before.tobytes()
        return
    assert np.isfinite(loss)
    assert np.all(np.isfinite(net.params)), "train_step returned normally with inf/NaN params"


# --------------------------------------------------------------- interruption
def _interrupt_at(epoch_index):
    def cb(net, epoch, history):
        if epoch == epoch_index:
            raise KeyboardInterrupt
        return False
    return cb


def test_keyboard_interrupt_returns_consistent_history(tmp_path):
    X, y = _scaled()
    net = _net(activation="tanh")
    opt = fastbp.SGD(0.05, momentum=0.9)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        hist = net.fit(X, y, epochs=10, batch_size=8, optimizer=opt, callbacks=[_interrupt_at(2)])
    assert hist.stop_reason == "interrupted"
    assert hist.epochs in (2, 3)
    assert len(hist.loss) == len(hist.lr) == len(hist.epoch_time) == hist.epochs
    assert hist.samples == hist.epochs * len(X)
    assert net.history_ is hist

    ref = _net(activation="tanh")
    ref_opt = fastbp.SGD(0.05, momentum=0.9)
    ref_hist = ref.fit(X, y, epochs=hist.epochs, batch_size=8, optimizer=ref_opt)
    assert net.params.tobytes() == ref.params.tobytes()
    assert opt.state.tobytes() == ref_opt.state.tobytes()
    assert hist.loss == ref_hist.loss

    net.save(tmp_path / "interrupted.fbp")
    back = load(tmp_path / "interrupted.fbp")
    assert back.params.tobytes() == net.params.tobytes()
    assert back.history_.stop_reason == "interrupted" and back.history_.loss == hist.loss
    assert back.optimizer.state.tobytes() == opt.state.tobytes()
    # and training continues from there like the uninterrupted run
    back.fit(X, y, epochs=1, batch_size=8, optimizer=back.optimizer)
    ref.fit(X, y, epochs=1, batch_size=8, optimizer=ref_opt)
    assert back.params.tobytes() == ref.params.tobytes()


def test_interrupt_right_after_an_epoch_kernel_undoes_that_epoch(monkeypatch):
    """Ctrl-C arriving after the 3rd epoch's kernel but before its bookkeeping: undone."""
    import fastbp.training as training

    real = training.train_epoch
    calls = []

    def interrupted_kernel(*args):
        real(*args)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    X, y = _scaled()
    net = _net(activation="tanh", dropout=0.2)
    opt = fastbp.Adam(0.01)
    monkeypatch.setattr(training, "train_epoch", interrupted_kernel)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        hist = net.fit(X, y, epochs=10, batch_size=8, optimizer=opt)
    monkeypatch.undo()
    assert hist.stop_reason == "interrupted" and hist.epochs == 2
    ref = _net(activation="tanh", dropout=0.2)
    ref_opt = fastbp.Adam(0.01)
    ref.fit(X, y, epochs=2, batch_size=8, optimizer=ref_opt)
    assert net.params.tobytes() == ref.params.tobytes()
    assert net.steps == ref.steps
    assert opt.state.tobytes() == ref_opt.state.tobytes() and opt.step[0] == ref_opt.step[0]


def test_callback_returning_true_stops():
    X, y = _scaled()
    net = _net(activation="tanh")
    hist = net.fit(X, y, epochs=10, batch_size=8, lr=0.05, callbacks=[lambda n, e, h: e == 1])
    assert hist.stop_reason == "callback" and hist.epochs == 2


# ------------------------------------------------------------------- threads
def _train(net, X, y, out, key):
    net.fit(X, y, epochs=4, batch_size=8, lr=0.01, optimizer="sgd", momentum=0.5)
    out[key] = net.params.copy()


def test_two_threads_match_sequential_training():
    """Two networks (one with dropout + batch norm) trained at once from two threads."""
    Xa, ya = _scaled(n=3000, seed=1)
    Xb, yb = _scaled(n=2501, seed=2)
    nets = {"a": lambda: _net(seed=1, activation="tanh"),
            "b": lambda: _net(seed=2, activation="relu", dropout=0.1, batch_norm=True)}
    seq = {}
    _train(nets["a"](), Xa, ya, seq, "a")
    _train(nets["b"](), Xb, yb, seq, "b")

    par, errors = {}, []

    def run(*args):
        try:
            _train(*args)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(nets["a"](), Xa, ya, par, "a")),
               threading.Thread(target=run, args=(nets["b"](), Xb, yb, par, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert par["a"].tobytes() == seq["a"].tobytes()
    assert par["b"].tobytes() == seq["b"].tobytes()


def test_one_network_shared_by_two_threads_is_serialised():
    """Concurrent fits on one network run one after the other (the network's lock)."""
    X, y = _scaled()
    net = _net(activation="tanh")
    ref = _net(activation="tanh")
    for _ in range(2):
        ref.fit(X, y, epochs=2, batch_size=4, lr=0.05)
    threads = [threading.Thread(target=net.fit, args=(X, y),
                                kwargs=dict(epochs=2, batch_size=4, lr=0.05)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert net.params.tobytes() == ref.params.tobytes()
