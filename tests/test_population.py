"""Population: K independent networks trained in one parallel kernel.

* Training equals K separate ``MLP.fit`` runs from the same initial networks
  (``shuffle=False`` so both walk the data in row order), for shared and
  per-network data, float targets (2-D, and 1-D for one output) and integer
  labels, SGD / momentum / Adam, one learning rate or one per network; the
  per-epoch losses ``fit`` returns equal each MLP's ``history.loss``.
* ``predict`` equals each network's own ``predict``.
* Results do not depend on the thread count (``numba.set_num_threads(1)`` vs 2),
  with shuffling on, and the same seed gives the same result.
* ``network(i)`` is a view: writes through it reach ``pop.params`` and training
  the population is seen by it.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from fastbp.population import Population  # noqa: E402

K = 5          # odd: with 2 threads the chunks are uneven
N = 30         # not a multiple of the batch size
BATCH = 8


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if np.dtype(dtype) == np.float32 else \
        dict(rtol=1e-11, atol=1e-13)


def make_problem(targets, per_network, dtype="float64", seed=0):
    """(Population, X, y): X (N, 3) or (K, N, 3); y matching ``targets``."""
    r = np.random.default_rng(seed)
    shape = (K, N, 3) if per_network else (N, 3)
    X = r.standard_normal(shape).astype(dtype)
    if targets == "labels":
        pop = Population([3, 8, 4], K, activation="tanh", loss="cross_entropy", dtype=dtype,
                         seed=seed)
        y = np.argmax(X @ r.standard_normal((3, 4)), axis=-1).astype(np.int64)
    elif targets == "float1d":
        pop = Population([3, 8, 1], K, activation="tanh", dtype=dtype, seed=seed)
        y = np.sin(X.sum(axis=-1)).astype(dtype)
    else:
        pop = Population([3, 8, 2], K, activation="tanh", dtype=dtype, seed=seed)
        y = np.stack([np.sin(X[..., 0] * X[..., 1]), np.cos(X[..., 2])], axis=-1).astype(dtype)
    return pop, X, y


def separate_fits(nets, X, y, per_network, lrs, epochs, **kw):
    losses = []
    for i, net in enumerate(nets):
        Xi, yi = (X[i], y[i]) if per_network else (X, y)
        h = net.fit(Xi, yi, epochs=epochs, batch_size=BATCH, lr=float(lrs[i]), shuffle=False,
                    **kw)
        losses.append(h.loss)
    return np.array(losses).T  # (epochs, K)


OPTS = {
    "sgd": dict(optimizer="sgd"),
    "momentum": dict(optimizer="sgd", momentum=0.9, nesterov=True),
    "adam": dict(optimizer="adam"),
}


@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("per_network", [False, True], ids=["shared", "per_net"])
@pytest.mark.parametrize("targets", ["float2d", "labels", "float1d"])
def test_fit_equals_separate_fits(targets, per_network, opt):
    pop, X, y = make_problem(targets, per_network)
    nets = [pop.network(i).copy() for i in range(K)]
    lr = 0.01 if opt == "adam" else 0.05
    losses = pop.fit(X, y, epochs=2, batch_size=BATCH, lr=lr, shuffle=False, **OPTS[opt])
    ref_losses = separate_fits(nets, X, y, per_network, [lr] * K, 2, **OPTS[opt])
    assert losses.shape == (2, K)
    np.testing.assert_allclose(losses, ref_losses, **_tol("float64"))
    for i, net in enumerate(nets):
        np.testing.assert_allclose(pop.params[i], net.params, **_tol("float64"))
        assert pop.network(i).steps == net.steps == 2 * -(-N // BATCH)
    # the networks started different and stayed independent
    assert not np.allclose(pop.params[0], pop.params[1])


def test_fit_equals_separate_fits_with_dropout_and_batch_norm():
    """Each network keeps its own dropout seed, step counter and running statistics."""
    r = np.random.default_rng(4)
    X = r.standard_normal((K, N, 3))
    y = np.sin(X[..., :2] * 2)
    pop = Population([3, 8, 6, 2], K, activation="relu", seed=4, dropout=0.2,
                     batch_norm=[True, False])
    nets = [pop.network(i).copy() for i in range(K)]
    losses = pop.fit(X, y, epochs=2, batch_size=BATCH, lr=0.05, shuffle=False)
    ref_losses = separate_fits(nets, X, y, True, [0.05] * K, 2)
    np.testing.assert_allclose(losses, ref_losses, **_tol("float64"))
    for i, net in enumerate(nets):
        np.testing.assert_allclose(pop.params[i], net.params, **_tol("float64"))
        np.testing.assert_allclose(pop.stats[i], net._stats, **_tol("float64"))
        np.testing.assert_allclose(pop.predict(X)[i], net.predict(X[i]), **_tol("float64"))
    assert not np.allclose(pop.stats[0], pop.stats[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_per_network_learning_rates(dtype):
    pop, X, y = make_problem("float2d", True, dtype=dtype, seed=3)
    lrs = np.array([0.001, 0.01, 0.03, 0.1, 0.2])
    nets = [pop.network(i).copy() for i in range(K)]
    losses = pop.fit(X, y, epochs=3, batch_size=BATCH, lr=lrs, shuffle=False,
                     optimizer="sgd", momentum=0.5)
    ref_losses = separate_fits(nets, X, y, True, lrs, 3, optimizer="sgd", momentum=0.5)
    np.testing.assert_allclose(losses, ref_losses, **_tol(dtype))
    for i, net in enumerate(nets):
        assert pop.params.dtype == np.dtype(dtype)
        np.testing.assert_allclose(pop.params[i], net.params, **_tol(dtype))
    # the sweep did sweep: different rates end at different losses
    assert len(np.unique(np.round(losses[-1], 6))) == K


@pytest.mark.parametrize("per_network", [False, True], ids=["shared", "per_net"])
def test_predict_equals_each_network(per_network):
    pop, X, y = make_problem("labels", per_network, seed=5)
    pop.fit(X, y, epochs=1, batch_size=BATCH, lr=0.1)
    out = pop.predict(X)
    assert out.shape == (K, N, 4)
    for i in range(K):
        np.testing.assert_allclose(out[i], pop.network(i).predict(X[i] if per_network else X),
                                   **_tol("float64"))
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-12)  # softmax rows
    if not per_network:  # more rows than predict's chunk (1024)
        Xbig = np.random.default_rng(6).standard_normal((2500, 3))
        big = pop.predict(Xbig)
        for i in (0, K - 1):
            np.testing.assert_allclose(big[i], pop.network(i).predict(Xbig), **_tol("float64"))


def _train(threads, seed=11):
    pop, X, y = make_problem("float2d", True, seed=seed)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        losses = pop.fit(X, y, epochs=3, batch_size=BATCH, lr=0.05, shuffle=True,
                         optimizer="adam")
        pred = pop.predict(X)
    finally:
        numba.set_num_threads(old)
    return pop.params.copy(), losses, pred


def test_deterministic_regardless_of_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    before = numba.get_num_threads()
    p1, l1, y1 = _train(1)
    p2, l2, y2 = _train(2)
    assert numba.get_num_threads() == before  # restored
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(y1, y2)
    p3, l3, _ = _train(2)  # and reproducible from the seed
    np.testing.assert_array_equal(p2, p3)
    np.testing.assert_array_equal(l2, l3)


def test_network_is_a_view():
    pop, X, y = make_problem("float1d", False, seed=7)
    net = pop.network(2)
    assert np.shares_memory(net.params, pop.params)
    net.params[:] = 0.25                      # write through the view
    np.testing.assert_array_equal(pop.params[2], 0.25)
    new = np.linspace(-1, 1, net.n_params)
    net.params = new                          # the setter copies into the same buffer
    np.testing.assert_array_equal(pop.params[2], new)
    net.weights[0][0, 0] = 9.0                # layer views too
    assert pop.params[2, 0] == 9.0
    others = pop.params[[0, 1, 3, 4]].copy()
    net.fit(X, y, epochs=1, batch_size=BATCH, lr=0.05)  # training the view trains row 2 only
    assert not np.array_equal(pop.params[2], new)
    np.testing.assert_array_equal(pop.params[[0, 1, 3, 4]], others)
    last = pop.network(-1)                    # negative index = last network
    pop.fit(X, y, epochs=1, batch_size=BATCH, lr=0.05)  # population training is seen by views
    np.testing.assert_array_equal(last.params, pop.params[K - 1])
    np.testing.assert_allclose(last.predict(X), pop.predict(X)[K - 1], rtol=1e-12)
    with pytest.raises(IndexError):
        pop.network(K)


def test_network_state_trains_the_population_row_from_njit():
    """``pop.network(i).state()`` hands fastbp.jit a state on row i of pop.params."""
    import fastbp.jit as fj
    pop, X, y = make_problem("float2d", False, seed=8)
    others = pop.params[[0, 2, 3, 4]].copy()
    ref = pop.network(1).copy()
    st = pop.network(1).state(batch_size=BATCH, optimizer="sgd", lr=0.05)
    assert np.shares_memory(st.model.params, pop.params)
    for s in range(0, N, BATCH):
        fj.train_step(st, X[s:s + BATCH], y[s:s + BATCH])
    ref.fit(X, y, epochs=1, batch_size=BATCH, lr=0.05, shuffle=False)
    np.testing.assert_allclose(pop.params[1], ref.params, **_tol("float64"))
    np.testing.assert_array_equal(pop.params[[0, 2, 3, 4]], others)
    assert pop.counters[1, 0] == -(-N // BATCH)


BAD_INPUT = {
    "X features": (lambda p, X, y: p.fit(X[..., :2], y), ValueError, "features"),
    "X data sets": (lambda p, X, y: p.fit(X[:-1], y), ValueError, "data sets"),
    "X 4-D": (lambda p, X, y: p.fit(X[..., None], y), ValueError, "one data set per network"),
    "X 1-D": (lambda p, X, y: p.fit(X[0, 0], y), ValueError, "one data set per network"),
    "X NaN": (lambda p, X, y: p.fit(np.where(X > 1, np.nan, X), y), ValueError, "NaN"),
    "X strings": (lambda p, X, y: p.fit(X.astype(str), y), TypeError, "dtype"),
    "X empty": (lambda p, X, y: p.fit(X[:, :0], y[:, :0]), ValueError, "empty"),
    "y target sets": (lambda p, X, y: p.fit(X, y[:-1]), ValueError, "target sets"),
    "y samples": (lambda p, X, y: p.fit(X, y[:, :-1]), ValueError, "must match"),
    "y outputs": (lambda p, X, y: p.fit(X, y[..., :1]), ValueError, "columns"),
    "lr shape": (lambda p, X, y: p.fit(X, y, lr=[0.1, 0.2]), ValueError, "one per network"),
    "lr negative": (lambda p, X, y: p.fit(X, y, lr=-0.1), ValueError, "lr"),
    "lr NaN": (lambda p, X, y: p.fit(X, y, lr=[0.1] * (K - 1) + [np.nan]), ValueError, "finite"),
    "epochs": (lambda p, X, y: p.fit(X, y, epochs=1.5), TypeError, "epochs"),
    "batch": (lambda p, X, y: p.fit(X, y, batch_size=0), ValueError, "batch_size"),
    "optimizer": (lambda p, X, y: p.fit(X, y, optimizer="lbfgs"), ValueError, "optimizer"),
    "predict": (lambda p, X, y: p.predict(X[..., :2]), ValueError, "features"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_a_clear_error_and_changes_nothing(case):
    pop, X, y = make_problem("float2d", True, seed=12)
    before = pop.params.copy()
    call, exc, words = BAD_INPUT[case]
    with pytest.raises(exc, match=words):
        call(pop, X, y)
    np.testing.assert_array_equal(pop.params, before)


def test_bad_labels_and_population_size():
    pop, X, y = make_problem("labels", True, seed=13)
    with pytest.raises(ValueError, match="labels outside"):
        pop.fit(X, np.full(y.shape, 9))
    with pytest.raises(ValueError, match="k must be"):
        Population([3, 4, 2], 0)
