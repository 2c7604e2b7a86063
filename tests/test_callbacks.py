"""fastbp.callbacks: Checkpoint, CSVLogger, TimeBudget, load_checkpoint.

Checkpoints hold exactly the network of that epoch, numbering is global across
fit calls and resumes, a run SIGKILLed mid-way and resumed from its last
checkpoint ends bit for bit where an uninterrupted run does, the CSV log
appends on resume, and the time budget stops with a reason.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastbp
import fastbp.callbacks as fcb
from fastbp.callbacks import CSVLogger, Checkpoint, TimeBudget, load_checkpoint

ROOT = str(pathlib.Path(fastbp.__file__).resolve().parent.parent)
SIZES = [5, 8, 3]


def _data(n=37, seed=7):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, SIZES[0]))
    y = np.tanh(X @ r.standard_normal((SIZES[0], SIZES[-1])))
    return X, y


def _net(seed=3):
    return fastbp.MLP(SIZES, activation="tanh", seed=seed)


FIT = dict(batch_size=8, shuffle=True)


def _reference(epochs, **kw):
    """A fresh net trained for ``epochs`` epochs with Adam, no callbacks."""
    net = _net()
    X, y = _data()
    net.fit(X, y, epochs=epochs, optimizer=fastbp.Adam(0.01), **FIT, **kw)
    return net


def _same_state(a, b):
    assert np.array_equal(a.params, b.params)
    assert a.params.tobytes() == b.params.tobytes()
    assert a.optimizer.state.tobytes() == b.optimizer.state.tobytes()
    assert a.optimizer.step.tobytes() == b.optimizer.step.tobytes()
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.steps == b.steps


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("make, exc, match", [
    (lambda p: Checkpoint(3), TypeError, "path must be a str"),
    (lambda p: Checkpoint(p / "no_such_dir" / "m.fbp"), FileNotFoundError, "does not exist"),
    (lambda p: Checkpoint(p / "m-{step}.fbp"), ValueError, r"only the field \{epoch\}"),
    (lambda p: Checkpoint(p / "m-{}.fbp"), ValueError, r"only the field \{epoch\}"),
    (lambda p: Checkpoint(p / "m-{epoch:q}.fbp"), ValueError, r"only the field"),
    (lambda p: Checkpoint(p / "m", every=0), ValueError, "every must be >= 1"),
    (lambda p: Checkpoint(p / "m", every=1.5), TypeError, "every must be an integer"),
    (lambda p: Checkpoint(p / "m", every=None), ValueError, "never save"),
    (lambda p: Checkpoint(p / "m", best=3), TypeError, "best must be a bool or a path"),
    (lambda p: Checkpoint(p / "m", best=p / "nodir" / "b"), FileNotFoundError, "does not exist"),
    (lambda p: Checkpoint(p / "m", monitor="accuracy"), ValueError, "monitor must be"),
    (lambda p: Checkpoint(p / "m", initial_epoch=-1), ValueError, "initial_epoch must be >= 0"),
    (lambda p: Checkpoint(p / "m", initial_epoch=True), TypeError, "initial_epoch must be an"),
    (lambda p: CSVLogger(None), TypeError, "path must be a str"),
    (lambda p: CSVLogger(p / "nodir" / "log.csv"), FileNotFoundError, "does not exist"),
    (lambda p: CSVLogger(p / "log.csv", initial_epoch=2.0), TypeError, "initial_epoch"),
    (lambda p: TimeBudget(-1), ValueError, "seconds must be >= 0"),
    (lambda p: TimeBudget(float("nan")), ValueError, "seconds must be finite"),
    (lambda p: TimeBudget("60"), TypeError, "seconds must be a real number"),
])
def test_constructor_arguments_are_validated(tmp_path, make, exc, match):
    with pytest.raises(exc, match=match):
        make(tmp_path)
    assert os.listdir(tmp_path) == []


def test_monitor_without_its_values_is_a_clear_error(tmp_path):
    X, y = _data()
    net = _net()
    before = net.params.copy()
    cb = Checkpoint(tmp_path / "m", best=True, every=None, monitor="val_loss")
    with pytest.raises(ValueError, match="validation_data="):
        net.fit(X, y, epochs=2, callbacks=[cb])
    cb = Checkpoint(tmp_path / "m", best=True, every=None, monitor="val_score")
    with pytest.raises(ValueError, match="val_score is None for mse"):
        net.fit(X, y, epochs=2, callbacks=[cb], validation_data=(X, y))
    assert not np.array_equal(net.params, before)  # (the epoch ran before the callback)
    assert os.listdir(tmp_path) == []


def test_load_checkpoint_rejects_plain_saves(tmp_path):
    fastbp.save(_net(), tmp_path / "plain")
    with pytest.raises(ValueError, match="not written by fastbp.callbacks.Checkpoint"):
        load_checkpoint(tmp_path / "plain")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing")


# ------------------------------------------------------------------ Checkpoint
def test_checkpoints_hold_exactly_that_epochs_network(tmp_path):
    X, y = _data()
    net = _net()
    cb = Checkpoint(tmp_path / "m-{epoch:03d}.fbp", every=2)
    hist = net.fit(X, y, epochs=5, optimizer=fastbp.Adam(0.01), callbacks=[cb], **FIT)
    assert sorted(os.listdir(tmp_path)) == ["m-002.fbp", "m-004.fbp"]
    assert cb.last_path == str(tmp_path / "m-004.fbp") and cb.epoch == 5
    for k in (2, 4):
        back, done = load_checkpoint(tmp_path / f"m-{k:03d}.fbp")
        assert done == k
        _same_state(back, _reference(k))
        assert back.history_.loss == hist.loss[:k]  # that fit call's history so far
        assert back.history_.stop_reason is None
    # the callback did not change training, and fit's own history is the net's
    _same_state(net, _reference(5))
    assert net.history_ is hist


def test_single_path_is_replaced_and_numbering_continues_across_fits(tmp_path):
    X, y = _data()
    net = _net()
    cb = Checkpoint(tmp_path / "m.fbp", every=1)
    opt = fastbp.Adam(0.01)
    net.fit(X, y, epochs=2, optimizer=opt, callbacks=[cb], **FIT)
    net.fit(X, y, epochs=3, optimizer=opt, callbacks=[cb], **FIT)
    assert os.listdir(tmp_path) == ["m.fbp"]
    back, done = load_checkpoint(tmp_path / "m.fbp")
    assert done == 5 and cb.epoch == 5
    _same_state(back, _reference(5))


@pytest.mark.parametrize("monitor, key, pick", [("loss", "loss", np.argmin),
                                                ("auto", "val_loss", np.argmin),
                                                ("val_score", "val_score", np.argmax)])
def test_best_checkpoint_holds_the_best_epoch(tmp_path, monitor, key, pick):
    r = np.random.default_rng(0)
    X = r.standard_normal((40, 5))
    labels = (X[:, 0] + 0.5 * r.standard_normal(40) > 0).astype(np.int64)
    Xv, yv = X[:12], labels[:12]
    net = fastbp.MLP([5, 6, 2], activation="tanh", output="softmax", loss="cross_entropy", seed=1)
    cb = Checkpoint(tmp_path / "m.fbp", every=None, best=True, monitor=monitor)
    # a large rate so the monitored values go up and down
    hist = net.fit(X, labels, epochs=12, batch_size=4, optimizer=fastbp.SGD(0.9, momentum=0.9),
                   validation_data=(Xv, yv), callbacks=[cb], early_stopping=False)
    values = getattr(hist, key)
    best = int(pick(values))  # the first of equal best values
    assert cb.monitor == key and cb.best_epoch == best + 1 and cb.best_value == values[best]
    back, done = load_checkpoint(tmp_path / "m.fbp")
    _, extra = fastbp.load(tmp_path / "m.fbp", return_extra=True)
    assert done == best + 1 and extra["best_epoch"].item() == best + 1
    assert extra["best_value"].item() == values[best]
    assert back.history_.loss == hist.loss[:best + 1]
    assert os.listdir(tmp_path) == ["m.fbp"]


def test_best_beside_periodic_and_restored_on_resume(tmp_path):
    X, y = _data()
    Xv, yv = _data(n=10, seed=1)
    cb = Checkpoint(tmp_path / "run.fbp", every=3, best=True)
    assert cb.best_path == str(tmp_path / "run.best.fbp")
    net = _net()
    hist = net.fit(X, y, epochs=4, optimizer=fastbp.Adam(0.01), validation_data=(Xv, yv),
                   early_stopping=False, callbacks=[cb], **FIT)
    assert sorted(os.listdir(tmp_path)) == ["run.best.fbp", "run.fbp"]
    assert load_checkpoint(tmp_path / "run.fbp")[1] == 3
    best = int(np.argmin(hist.val_loss)) + 1
    assert load_checkpoint(tmp_path / "run.best.fbp")[1] == best
    assert best == 1 and hist.val_loss[3] > hist.val_loss[0]  # (this data: epoch 4 is worse)
    before = (tmp_path / "run.best.fbp").read_bytes()
    resumed = Checkpoint(tmp_path / "run.fbp", every=3, best=True, initial_epoch=3)
    assert resumed.best_epoch == best and resumed.best_value == hist.val_loss[best - 1]
    net2, done = load_checkpoint(tmp_path / "run.fbp")
    net2.fit(X, y, epochs=1, optimizer=net2.optimizer, validation_data=(Xv, yv),
             early_stopping=False, callbacks=[resumed], **FIT)
    assert (tmp_path / "run.best.fbp").read_bytes() == before  # epoch 4 did not replace it
    assert Checkpoint(tmp_path / "run.fbp", best=True).best_epoch is None  # a new run


# ------------------------------------------------------------- exact resume
def _resume_and_finish(path, X, y, total, **fit_kw):
    net, done = load_checkpoint(path)
    assert net.optimizer is not None and 0 < done < total
    net.fit(X, y, epochs=total - done, optimizer=net.optimizer, **FIT, **fit_kw)
    return net, done


def test_resume_in_process_with_csv_log_and_budget(tmp_path, monkeypatch):
    """Stopped by the time budget after 3 epochs, resumed to 7: as one run of 7."""
    X, y = _data()
    Xv, yv = _data(n=10, seed=1)
    now = [0.0]
    monkeypatch.setattr(fcb, "_clock", lambda: now[0])

    def tick(net, epoch, history):
        now[0] += 10.0  # each epoch "takes" 10 s

    ref = _net()
    ref_hist = ref.fit(X, y, epochs=7, optimizer=fastbp.Adam(0.01), validation_data=(Xv, yv),
                       early_stopping=False, **FIT)

    net = _net()
    cbs = [Checkpoint(tmp_path / "run.fbp"), CSVLogger(tmp_path / "log.csv"), tick,
           TimeBudget(25)]
    hist = net.fit(X, y, epochs=7, optimizer=fastbp.Adam(0.01), validation_data=(Xv, yv),
                   early_stopping=False, callbacks=cbs, **FIT)
    assert hist.stop_reason == "time_budget" and hist.epochs == 3

    net2, done = load_checkpoint(tmp_path / "run.fbp")
    assert done == 3
    log = CSVLogger(tmp_path / "log.csv", initial_epoch=done)
    net2.fit(X, y, epochs=7 - done, optimizer=net2.optimizer, validation_data=(Xv, yv),
             early_stopping=False, callbacks=[Checkpoint(tmp_path / "run.fbp", initial_epoch=done),
                                              log], **FIT)
    _same_state(net2, ref)
    assert load_checkpoint(tmp_path / "run.fbp")[1] == 7
    rows = list(csv.DictReader(open(tmp_path / "log.csv", newline="")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 8))
    assert [float(r["loss"]) for r in rows] == ref_hist.loss  # exact: shortest repr
    assert [float(r["val_loss"]) for r in rows] == ref_hist.val_loss
    assert [float(r["lr"]) for r in rows] == ref_hist.lr
    assert all(r["val_score"] == "" for r in rows)  # mse: no score


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastbp
    from fastbp.callbacks import Checkpoint
    data, ckpt, epochs = sys.argv[1:]
    with np.load(data, allow_pickle=False) as d:
        X, y = d["X"], d["y"]

    def slow(net, epoch, history):
        time.sleep(0.2 if epoch >= 2 else 0.01)  # so that the parent kills it mid-way

    with fastbp.threads(1):
        net = fastbp.MLP(%r, activation="tanh", seed=3)
        net.fit(X, y, epochs=int(epochs), batch_size=8, shuffle=True,
                optimizer=fastbp.Adam(0.01), callbacks=[Checkpoint(ckpt, every=1), slow])
""" % (SIZES,))


def test_sigkilled_run_resumes_bit_identically(tmp_path):
    total = 40
    X, y = _data()
    np.savez(tmp_path / "data.npz", X=X, y=y)
    with fastbp.threads(1):
        ref = _reference(total)  # also warms the Numba cache the child shares
    ckpts = tmp_path / "ck"
    ckpts.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "data.npz"),
                              str(ckpts / "m-{epoch}.fbp"), str(total)], env=env, cwd=tmp_path)
    try:
        t0 = time.monotonic()
        while not (ckpts / "m-3.fbp").exists():
            assert child.poll() is None, "the child ended before its third checkpoint"
            assert time.monotonic() - t0 < 120, "no checkpoint from the child"
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    done = [int(m.group(1)) for m in map(re.compile(r"m-(\d+)\.fbp\Z").match, os.listdir(ckpts))
            if m]
    last = max(done)
    assert sorted(done) == list(range(1, last + 1)) and 3 <= last < total
    with fastbp.threads(1):
        net, k = _resume_and_finish(ckpts / f"m-{last}.fbp", X, y, total)
    assert k == last
    _same_state(net, ref)
    start = _net()
    assert not np.array_equal(start.params, ref.params)
    assert start.rng.bit_generator.state != ref.rng.bit_generator.state  # shuffling drew


# ------------------------------------------------------------------- CSVLogger
def test_csv_log_rows_header_and_flush(tmp_path):
    X, y = _data()
    path = tmp_path / "log.csv"
    path.write_text("old contents\n")
    seen = []

    def peek(net, epoch, history):  # runs after the logger: its row is on disk already
        seen.append(path.read_text().count("\n"))

    log = CSVLogger(path)
    net = _net()
    hist = net.fit(X, y, epochs=3, callbacks=[log, peek], **FIT)
    assert seen == [2, 3, 4]  # header + one row per epoch, flushed each epoch
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss,val_score,lr,epoch_time"
    rows = [line.split(",") for line in lines[1:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert [float(r[1]) for r in rows] == hist.loss
    assert [r[2] for r in rows] == ["", "", ""] and [r[3] for r in rows] == ["", "", ""]
    assert [float(r[5]) for r in rows] == hist.epoch_time
    net.fit(X, y, epochs=2, callbacks=[log], **FIT)  # the same logger continues
    assert [line.split(",")[0] for line in path.read_text().splitlines()[1:]] == \
        ["1", "2", "3", "4", "5"]


def test_csv_resume_drops_rows_after_the_checkpoint_and_appends(tmp_path):
    X, y = _data()
    path = tmp_path / "log.csv"
    net = _net()
    net.fit(X, y, epochs=5, callbacks=[CSVLogger(path)], **FIT)
    with open(path, "a") as fh:
        fh.write("6,0.1,")  # a row torn by a kill
    first = path.read_text().splitlines()
    net.fit(X, y, epochs=2, callbacks=[CSVLogger(path, initial_epoch=3)], **FIT)
    lines = path.read_text().splitlines()
    assert lines[:4] == first[:4]  # header once, epochs 1-3 kept as they were
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4", "5"]
    assert lines[4] != first[4]

    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a CSVLogger log"):
        net.fit(X, y, epochs=1, callbacks=[CSVLogger(tmp_path / "other.csv", initial_epoch=1)])
    assert (tmp_path / "other.csv").read_text() == "a,b\n1,2\n"
    net.fit(X, y, epochs=1, callbacks=[CSVLogger(tmp_path / "new.csv", initial_epoch=4)])
    assert (tmp_path / "new.csv").read_text().splitlines()[1].startswith("5,")


def test_csv_with_validation_and_score(tmp_path):
    X, _ = _data()
    labels = (X[:, 0] > 0).astype(np.int64)
    net = fastbp.MLP([5, 4, 2], output="softmax", loss="cross_entropy", seed=0)
    hist = net.fit(X, labels, epochs=2, validation_data=(X[:9], labels[:9]),
                   early_stopping=False, callbacks=[CSVLogger(tmp_path / "log.csv")])
    rows = list(csv.DictReader(open(tmp_path / "log.csv", newline="")))
    assert [float(r["val_loss"]) for r in rows] == hist.val_loss
    assert [float(r["val_score"]) for r in rows] == hist.val_score


# ------------------------------------------------------------------ TimeBudget
def test_time_budget_stops_with_its_reason(monkeypatch):
    X, y = _data()
    now = [100.0]
    monkeypatch.setattr(fcb, "_clock", lambda: now[0])
    budget = TimeBudget(30)

    def tick(net, epoch, history):
        now[0] += 7.0

    hist = _net().fit(X, y, epochs=50, callbacks=[tick, budget])
    assert hist.epochs == 5 and hist.stop_reason == "time_budget"  # 35 s >= 30 s
    assert budget.elapsed == 35.0
    budget.restart()
    assert budget.elapsed == 0.0
    hist = _net().fit(X, y, epochs=3, callbacks=[budget])  # the clock stands still
    assert hist.epochs == 3 and hist.stop_reason is None
    hist = _net().fit(X, y, epochs=3, callbacks=[TimeBudget(0)])
    assert hist.epochs == 1 and hist.stop_reason == "time_budget"


def test_callback_reasons(tmp_path):
    X, y = _data()
    hist = _net().fit(X, y, epochs=4, callbacks=[lambda n, e, h: e == 1])
    assert hist.stop_reason == "callback" and hist.epochs == 2
    hist = _net().fit(X, y, epochs=4, callbacks=[lambda n, e, h: "enough" if e == 2 else None])
    assert hist.stop_reason == "enough" and hist.epochs == 3
    # the budget's stop reason is saved with the history
    net = _net()
    net.fit(X, y, epochs=3, callbacks=[TimeBudget(0)])
    fastbp.save(net, tmp_path / "m")
    assert fastbp.load(tmp_path / "m").history_.stop_reason == "time_budget"


def test_reprs(tmp_path):
    assert "every=2" in repr(Checkpoint(tmp_path / "m", every=2))
    assert "log.csv" in repr(CSVLogger(tmp_path / "log.csv"))
    assert repr(TimeBudget(5)).startswith("TimeBudget(5 s")
    assert math.isinf(Checkpoint(tmp_path / "m").best_value)
