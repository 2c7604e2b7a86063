"""Time to first result: one compiled entry per kernel, warm-up and its messages.

Compile *time* is measured in ``bench/first_result.py``, never asserted here;
these tests check the structure that keeps it short: no kernel compiled once
per constant argument, ``predict`` reusing the forward pass ``fit`` compiled.
"""

import time

import numpy as np
import pytest
from numba import njit, types

from fastbp import MLP
from fastbp._kernels import backward, forward, matmul, train
from fastbp._kernels.runtime import runtime
from fastbp._kernels.weights import NO_VALUES
from fastbp.warmup import announce, warm, warm_part


# not cached on purpose: compiled in this process, so the signatures show
@njit
def _pick(a, flag):
    """``a + 1`` when ``flag`` else ``a``."""
    return a + 1 if flag else a


@njit
def _calls_with_constants():
    """Calls ``_pick`` with two different constants, through ``runtime``."""
    return _pick(runtime(0), runtime(True)) + _pick(runtime(5), runtime(False))


def test_runtime_gives_one_signature():
    assert _calls_with_constants() == 6
    assert _pick.signatures == [(types.int64, types.boolean)]


def _literal_free(disp):
    return all(not isinstance(a, types.Literal) for sig in disp.signatures for a in sig)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_reuses_the_forward_pass_of_fit(dtype):
    rng = np.random.default_rng(0)
    X = rng.random((96, 64)).astype(dtype)
    y = np.arange(96) % 10
    net = MLP([64, 128, 10], loss="cross_entropy", dtype=dtype, seed=0)
    net.fit(X, y, epochs=1, batch_size=32, lr=0.1)
    net.predict(X)
    net.evaluate(X, y)
    net.gradient(X, y)
    # one forward pass per float type (compiled, or loaded from the cache)
    # serves training, prediction, evaluation and gradients
    # (dense input only: sparse input, tests/test_sparse.py, has its own entries)
    mine = [s for s in forward.forward.signatures
            if isinstance(s[2], types.Array) and s[2].dtype == getattr(types, dtype)]
    assert len(mine) == 1, forward.forward.signatures
    for disp in (forward.forward, forward._layer_forward, forward.block,
                 forward.layer_params, backward.backward, backward._weights,
                 backward._through_layer, train._forward_loss, matmul.mm_nt):
        assert _literal_free(disp), (disp, disp.signatures)


def test_fit_paths_match_train_epoch():
    """``fit`` picks the epoch path in Python; with no generated kernel it runs the njit
    ``train_epoch``'s general path, for small networks (which the flat path once took)
    and large ones alike: the same parameters."""
    rng = np.random.default_rng(1)
    X = rng.random((40, 3))
    y = rng.random((40, 2))
    for sizes, batch in (([3, 4, 2], 4), ([3, 200, 2], 40)):
        a = MLP(sizes, seed=0)
        b = MLP(sizes, seed=0)
        a.fit(X, y, epochs=2, batch_size=batch, lr=0.1, shuffle=False)
        opt = b._optimizer("sgd", 0.1, {})
        ws = b._workspace(batch)
        order = np.arange(40, dtype=np.int64)
        out = np.zeros(2)
        for _ in range(2):
            train.train_epoch(b._model, ws.work, b._loss_code, X, y, order, batch, False,
                              ws.xbuf, ws.ybuf(y), opt.code, opt.hyper, opt.state, opt.step,
                              out, NO_VALUES, NO_VALUES, NO_VALUES)
        np.testing.assert_array_equal(a.params, b.params)
        assert a.steps == b.steps


def test_announce_is_silent_when_fast():
    lines = []
    with announce("compiling", lines.append, delay=60.0):
        pass
    assert lines == []


def test_announce_says_what_it_compiles():
    lines = []
    with announce("compiling things", lines.append, delay=0.0) as a:
        for _ in range(200):  # give the timer thread its turn
            if lines:
                break
            time.sleep(0.01)
    assert lines[0] == "compiling things"
    assert lines[1].startswith("  ... done in ") and a.elapsed >= 0.0


@pytest.mark.parametrize("kw", [{"targets": "onehot"}, {"path": "fast"}])
def test_warm_rejects_unknown_families(kw):
    with pytest.raises(ValueError, match="must be"):
        warm(**kw)


def test_warm_part_rejects_unknown_parts():
    with pytest.raises(ValueError, match="part must be one of"):
        warm_part("float32", "labels", "everything")


def test_plain_sgd_step_has_no_optimizer_update():
    """Plain SGD trains through the entry whose optimizer state is ``None``: Numba prunes
    every other optimizer's update out of it (nothing of them is compiled for a plain-SGD
    network); Adam takes the entry with its state array.  Both keep training."""
    from fastbp._engine import force
    rng = np.random.default_rng(0)
    X = rng.random((64, 5))
    y = np.arange(64) % 3
    net = MLP([5, 7, 3], loss="cross_entropy", seed=0)
    with force("general"):
        net.fit(X, y, epochs=2, batch_size=16, lr=0.1)
        before = net.params.copy()
        net.fit(X, y, epochs=1, batch_size=16, lr=0.01, optimizer="adam")
    assert not np.array_equal(before, net.params)
    states = [s[12] for s in train.batch_epoch.signatures if s[3].dtype == types.float64]
    assert types.none in states, states
    assert any(isinstance(t, types.Array) for t in states), states
    sgd, adam = net._optimizer("sgd", 0.1, {}), net._optimizer("adam", 0.1, {})
    assert train.sgd_state(sgd.code, sgd.hyper, sgd.state) is None
    assert train.sgd_state(adam.code, adam.hyper, adam.state) is adam.state
