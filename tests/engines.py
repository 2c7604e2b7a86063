"""Run a training case on one named engine (``fastbp._engine``), for the reference tests.

``fit(engine, net, X, y, ...)`` trains ``net`` in place as ``net.fit`` would, but
on the engine named: a single-network engine (``small``, ``general``) through
``MLP.fit``, a population engine (``lanes``, ``population-small``,
``population``) through :class:`fastbp.Population` holding ``k`` copies of
``net`` (same parameters, same data), whose networks must agree bitwise and
whose first network is copied back into ``net``.  A case the engine cannot run
is skipped with the reason the engine's own eligibility gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbp import _engine
from fastbp.network import DEFAULT_LR
from fastbp.population import Population

ENGINES = tuple(_engine.ENGINES)


def population_of(net, k):
    """A Population of ``k`` copies of ``net``: same architecture, parameters, statistics,
    step counters and dropout seeds."""
    hidden = list(net.activations[:-1])
    per_hidden = dict(activation=hidden, dropout=list(net.dropout),
                      batch_norm=list(net.batch_norm)) if hidden else {}
    pop = Population(net.sizes, k, output=net.activations[-1], loss=net.loss, dtype=net.dtype,
                     leaky_slope=net.leaky_slope, elu_alpha=net.elu_alpha,
                     bn_momentum=net.bn_momentum, bn_eps=net.bn_eps,
                     huber_delta=net.huber_delta, quantile=net.quantile, **per_hidden)
    pop.params[:] = net.params
    pop.stats[:] = net._stats
    pop.counters[:] = net._counter
    pop.seeds[:] = net._dropout_seed
    return pop


def fit(engine, net, X, y, *, epochs=1, batch_size=None, lr=None, shuffle=False, seed=None,
        optimizer="sgd", k=3, **opt_kwargs):
    """Train ``net`` in place on ``engine``; returns the per-epoch mean losses (ndarray).

    ``batch_size=None``: the whole data set.  Population engines train ``k`` copies.
    """
    n = len(X)
    batch_size = n if batch_size is None else batch_size
    if lr is None:
        lr = DEFAULT_LR[optimizer]
    kind = _engine.ENGINES[engine].kind
    try:
        with _engine.force(engine):
            if kind == "net":
                hist = net.fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr,
                               shuffle=shuffle, seed=seed, optimizer=optimizer, **opt_kwargs)
                return np.asarray(hist.loss)
            pop = population_of(net, k)
            if seed is not None:
                pop.rng = np.random.default_rng(seed)
            losses = pop.fit(X, y, epochs=epochs, batch_size=batch_size, lr=lr,
                             shuffle=shuffle, optimizer=optimizer, **opt_kwargs)
    except _engine.Unsupported as e:
        pytest.skip(str(e))
    if not shuffle:  # the same data in the same order: the copies train identically
        for i in range(1, k):
            np.testing.assert_array_equal(pop.params[i], pop.params[0],
                                          err_msg=f"{engine}: network {i} differs from 0")
            np.testing.assert_array_equal(losses[:, i], losses[:, 0])
    net.params[:] = pop.params[0]
    net._stats[:] = pop.stats[0]
    net._counter[:] = pop.counters[0]
    return losses[:, 0]


def gradient(engine, net, X, y):
    """The gradient of the batch-mean loss of ``(X, y)`` as ``engine`` computes it for a
    step: one full-batch SGD step with lr 1 from a copy of ``net``, ``g = p_before - p_after``.
    Returns (loss before the step, g as float64)."""
    work = net.copy()
    p0 = work.params.astype(np.float64)
    loss = fit(engine, work, X, y, epochs=1, lr=1.0)
    return float(loss[0]), p0 - work.params.astype(np.float64)
