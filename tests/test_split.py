"""The two-thread engines (``fastbp/_kernels/split.py``: rows; ``split_units.py``:
units): agreement with the one-thread general engine, repeatability, their automatic
rule, divergence, allocations and the barrier's release.  (The reference tests run
them too, through ``tests/engines.py``.)"""

import threading

import numpy as np
import pytest
from numba import njit

import fastbp
from fastbp import _engine
from fastbp._kernels.split import _cols, _rows, split_epoch
from fastbp._kernels.split_units import units_epoch
from fastbp._kernels.sync import atomic_add, atomic_load, barrier
from fastbp._kernels.update import N_HYPER, SGD
from fastbp.errors import DivergenceError

from test_allocations import assert_no_kernel_allocations, track_nrt

CASES = [
    # sizes, batch, hidden, output, loss
    ((9, 3, 9, 40), 12, "sigmoid", "identity", "mse"),
    ((30, 50, 40, 7), 17, "tanh", "softmax", "cross_entropy"),
    ((20, 33, 4), 3, "relu", "sigmoid", "binary_cross_entropy"),
    ((16, 70, 3), 1, "relu", "identity", "mse"),
]


def _data(sizes, loss, n, dtype, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, sizes[-1])) < 0.5).astype(dtype)
    else:
        y = rng.uniform(-1, 1, (n, sizes[-1])).astype(dtype)
    return X, y


OPTIMIZERS = [
    ("sgd", dict(momentum=0.9, nesterov=True, lr=0.002)),
    ("sgd", dict(l1=1e-3, weight_decay=1e-3)),
    ("adam", dict(weight_decay=1e-3, lr=1e-3)),
    ("adamw", dict(weight_decay=1e-2, lr=1e-3)),
    ("rprop", dict()),
]


def _fit(engine, case, dtype, shuffle=True, wd=0.0, n=203, epochs=2, optimizer="sgd",
         **kw):
    sizes, batch, hidden, out, loss = case
    X, y = _data(sizes, loss, n, dtype)
    net = fastbp.MLP(list(sizes), activation=hidden, output=out, loss=loss, dtype=dtype, seed=0)
    kw = dict(dict(lr=0.02, weight_decay=wd), **kw)
    with _engine.force(engine):
        hist = net.fit(X, y, epochs=epochs, batch_size=batch, shuffle=shuffle, seed=5,
                       optimizer=optimizer, **kw)
    return net, hist


TWO = ["split", "units"]


@pytest.mark.parametrize("engine", TWO)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[0])))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_agrees_with_general_and_repeats_bitwise(case, dtype, engine):
    for shuffle, wd in ((True, 0.0), (False, 1e-3)):
        a, ha = _fit("general", case, dtype, shuffle, wd)
        b, hb = _fit(engine, case, dtype, shuffle, wd)
        c, hc = _fit(engine, case, dtype, shuffle, wd)
        tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.params, a.params, **tol)
        np.testing.assert_allclose(hb.loss, ha.loss, **tol)
        np.testing.assert_array_equal(c.params, b.params)  # same threads: same bits
        assert hc.loss == hb.loss
        assert not np.array_equal(b.params, fastbp.MLP(list(case[0]), activation=case[2],
                                                       output=case[3], loss=case[4],
                                                       dtype=dtype, seed=0).params)


@pytest.mark.parametrize("engine", TWO)
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o[0] + "-" + "-".join(o[1]))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_optimizers_agree_with_general(opt, dtype, engine):
    case = CASES[1] if engine == "split" else CASES[3]
    name, kw = opt
    a, ha = _fit("general", case, dtype, optimizer=name, **kw)
    b, hb = _fit(engine, case, dtype, optimizer=name, **kw)
    c, _ = _fit(engine, case, dtype, optimizer=name, **kw)
    # Adam's and RPROP's steps turn rounding differences into larger ones
    loose = name in ("adam", "adamw", "rprop") and dtype == "float32"
    tol = dict(rtol=2e-3 if loose else 2e-4, atol=2e-4 if loose else 2e-5) \
        if dtype == "float32" else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(b.params, a.params, **tol)
    np.testing.assert_allclose(hb.loss, ha.loss, **tol)
    np.testing.assert_array_equal(c.params, b.params)
    np.testing.assert_allclose(b.optimizer.state, a.optimizer.state, **tol)
    np.testing.assert_array_equal(b.optimizer.step, a.optimizer.step)


def test_rows_and_columns_cover_each_index_once():
    for n in range(0, 70):
        for nthr in (2, 3):
            for split in (_rows, _cols):
                got = []
                for r in range(nthr):
                    lo, hi = split(r, nthr, n)
                    assert 0 <= lo <= hi <= n
                    got += range(lo, hi)
                assert got == list(range(n))
    assert _cols(0, 2, 100) == (0, 64) and _cols(1, 2, 100) == (64, 100)  # whole vectors


def _mid_net():
    net = fastbp.MLP([64, 128, 64, 10], activation="relu", output="softmax",
                     loss="cross_entropy", dtype="float32", seed=0)
    X, y = _data((64, 128, 64, 10), "cross_entropy", 256, "float32")
    return net, X, y


def _chosen(net, X, batch):
    """The engine the automatic rule picks for plain SGD on ``net`` at ``batch``."""
    case = _engine.Case(net._loss_code, SGD, np.zeros(N_HYPER), net._layout, net._lparams,
                        batch, False, False)
    return _engine.choose("net", case)


def test_automatic_rule():
    net, X, y = _mid_net()
    with fastbp.threads(2):
        if _engine._cores() < 2:
            pytest.skip("one core: the split engine is never chosen")
        assert _chosen(net, X, 32) == "split"
        assert _chosen(net, X, 2) != "split"  # below SPLIT_MIN_BATCH
        wide = fastbp.MLP([784, 256, 10], dtype="float32", seed=0)
        assert _chosen(wide, X, 1) == "units" and _chosen(wide, X, 2) == "units"
        assert _chosen(net, X, 1) != "units"  # below UNITS_MIN_MACS
        big = fastbp.MLP([1024, 1024, 1024, 10], dtype="float32", seed=0)
        assert _chosen(big, X, 256) != "split"  # above SPLIT_MAX_MACS: BLAS's threads
        seen = []
        t = threading.Thread(target=lambda: seen.append(_chosen(net, X, 32)))
        t.start()
        t.join()
        assert seen == ["general"]  # a fit off the main thread keeps to one core
    with fastbp.threads(1):
        assert _chosen(net, X, 32) == "general"
        one = net.copy()  # forced at one thread: the same kernel, serially
        with _engine.force("split"):
            one.fit(X, y, epochs=1, batch_size=32, lr=0.01, shuffle=False)
        ref = net.copy()
        ref.fit(X, y, epochs=1, batch_size=32, lr=0.01, shuffle=False)
        np.testing.assert_allclose(one.params, ref.params, rtol=1e-4, atol=1e-6)
    with pytest.raises(_engine.Unsupported, match="clipping"):
        with _engine.force("split"):
            net.fit(X, y, epochs=1, batch_size=32, optimizer="adam", clip_norm=1.0)


@pytest.mark.parametrize("engine", TWO)
def test_divergence_restores_the_network(engine):
    net, X, y = _mid_net()
    X = X * 1e18
    before = net.params.copy()
    with _engine.force(engine), pytest.raises(DivergenceError):
        net.fit(X, y, epochs=2, batch_size=32, lr=10.0)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("engine", TWO)
@pytest.mark.parametrize("shuffle", [True, False])
def test_split_epochs_allocate_nothing_in_numba(shuffle, engine):
    net, X, y = _mid_net()
    with _engine.force(engine):
        net.fit(X, y, epochs=1, batch_size=30, lr=0.01, shuffle=shuffle, seed=0)  # warm-up
        p = net.params.copy()
        with track_nrt() as t:
            net.fit(X, y, epochs=3, batch_size=30, lr=0.01, shuffle=shuffle, seed=1)
    assert_no_kernel_allocations(t)
    assert not np.array_equal(net.params, p)


@njit(cache=False)
def _add_then_load(a, v):
    old = atomic_add(a, 0, v)
    return old, atomic_load(a, 0)


def test_barrier_counts_and_releases():
    sync = np.zeros(3, np.int64)
    assert _add_then_load(sync, 5) == (0, 5)
    assert _add_then_load(sync, -2) == (5, 3)
    sync[:] = 0
    done = []

    def other(gen=0):
        done.append(barrier(sync, gen, 2))

    t = threading.Thread(target=other)
    t.start()
    assert barrier(sync, 0, 2) == 1
    t.join(10)
    assert done == [1] and sync[0] == 0 and sync[1] == 1
    # a thread whose partner never comes is released by the abort flag
    t = threading.Thread(target=other, args=(1,))
    t.start()
    sync[2] = 1
    t.join(10)
    assert not t.is_alive() and done == [1, -1]


@pytest.mark.parametrize("engine", TWO)
def test_an_epoch_whose_partner_never_starts_returns_on_abort(engine):
    """``training._two_threads`` sets the abort flag when thread 0 fails: thread 1 must
    return, having changed nothing."""
    net, X, y = _mid_net()
    st = net.state(batch_size=32, optimizer="sgd", lr=0.01)
    p = net.params.copy()
    sync = np.array([0, 0, 1], np.int64)  # aborted before it starts
    out = np.full(2, -7.0)
    args = (1, 2, st.model, st.work, st.loss, X, y, np.arange(len(X)), 32, False,
            np.zeros((32, 64), np.float32), np.zeros(32, np.int64), SGD, st.hyper, None,
            st.step, out, sync, np.zeros(2))
    kernel = split_epoch
    if engine == "units":
        kernel = units_epoch
        args += (np.zeros(4 * 32 * 128, np.float32),)
    errors = []

    def run():
        try:
            kernel(*args)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert not t.is_alive() and errors == []
    assert out[0] == -7.0  # thread 1 never writes the epoch's result
    np.testing.assert_array_equal(net.params, p)  # it stopped at its first barrier
