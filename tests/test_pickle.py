"""MLP objects pickle, deep-copy and survive read-only (memory-mapped) state."""

import copy
import pickle

import numpy as np
import pytest

import fastbp


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = rng.normal(size=(40, 2))
    net = fastbp.MLP([3, 5, 2], activation="tanh", batch_norm=True, seed=0)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=fastbp.Adam(lr=1e-2))
    return net, X, y


@pytest.mark.parametrize("clone", [lambda n: pickle.loads(pickle.dumps(n)), copy.deepcopy])
def test_clone_predicts_identically_and_continues_identically(trained, clone):
    net, X, y = trained
    other = clone(net)
    assert np.array_equal(other.predict(X), net.predict(X))
    assert other.params is not net.params
    keep = other.weights[0][0, 0]
    other.weights[0][0, 0] = 123.0  # views follow the clone's own buffer
    assert other.params[0] == 123.0 and net.params[0] == keep
    other.weights[0][0, 0] = keep
    net.fit(X, y, epochs=1, batch_size=8, optimizer=net.optimizer, shuffle=False)
    other.fit(X, y, epochs=1, batch_size=8, optimizer=other.optimizer, shuffle=False)
    assert np.array_equal(other.params, net.params)


def test_read_only_state_after_unpickling_is_made_writable(trained):
    net, X, y = trained
    state = net.__getstate__()
    for key in ("_params", "_stats", "_counter"):
        state[key] = state[key].copy()
        state[key].flags.writeable = False
    clone = object.__new__(fastbp.MLP)
    clone.__setstate__(state)
    assert clone.params.flags.writeable
    clone.fit(X, y, epochs=1, batch_size=8)
    assert np.all(np.isfinite(clone.params))


def test_read_only_inputs_are_accepted_and_untouched(trained):
    net, X, y = trained
    Xr, yr = X.copy(), y.copy()
    Xr.flags.writeable = False
    yr.flags.writeable = False
    expected = net.predict(X)
    assert np.array_equal(net.predict(Xr), expected)
    net.fit(Xr, yr, epochs=1, batch_size=8)
    assert np.array_equal(Xr, X) and np.array_equal(yr, y)
