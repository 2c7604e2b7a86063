"""The private engine switch (fastbp/_engine.py) and the test harness that forces it
(tests/engines.py): the automatic rule, forcing, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

import engines
from fastbp import MLP, _engine, threads
from fastbp.population import Population


def _data(n=12, n_in=3, n_out=2):
    r = np.random.default_rng(0)
    return r.standard_normal((n, n_in)), r.standard_normal((n, n_out))


def test_every_engine_has_a_kind_and_a_fallback():
    kinds = {e.kind for e in _engine.ENGINES.values()}
    assert kinds == {"net", "population"}
    for kind in kinds:  # the last engine of each kind takes every case
        last = [e for e in _engine.ENGINES.values() if e.kind == kind][-1]
        assert last.why_not(None) is None and last.auto(None)


def test_force_restores_and_rejects_unknown_names():
    assert _engine.forced() is None
    with _engine.force("general"):
        assert _engine.forced() == "general"
        with _engine.force("lanes"):
            assert _engine.forced() == "lanes"
        assert _engine.forced() == "general"
    assert _engine.forced() is None
    with pytest.raises(ValueError, match="unknown engine 'gpu'; choose one of generated, split, units, small, general"):
        with _engine.force("gpu"):
            pass
    with pytest.raises(RuntimeError):
        with _engine.force("small"):
            raise RuntimeError
    assert _engine.forced() is None


@pytest.mark.parametrize("optimizer,kw", [("adam", {}), ("sgd", {"momentum": 0.9}),
                                          ("sgd", {"clip_norm": 1.0})])
def test_small_engine_refuses_other_optimizers(optimizer, kw):
    X, y = _data()
    net = MLP([3, 4, 2], seed=0)
    before = net.params.copy()
    with _engine.force("small"), pytest.raises(_engine.Unsupported,
                                              match="engine 'small' cannot run.*plain SGD"):
        net.fit(X, y, optimizer=optimizer, **kw)
    np.testing.assert_array_equal(net.params, before)


def test_refusals_name_the_reason():
    X, y = _data()
    net = MLP([3, 4, 2], dropout=0.2, seed=0)
    with _engine.force("small"), pytest.raises(_engine.Unsupported, match="dropout"):
        net.fit(X, y)
    with _engine.force("small"), pytest.raises(_engine.Unsupported, match="sample weights"):
        MLP([3, 4, 2], seed=0).fit(X, y, sample_weight=np.ones(12))
    pop = Population([3, 4, 2], 2, loss="huber", seed=0)
    with _engine.force("lanes"), pytest.raises(_engine.Unsupported, match="not huber"):
        pop.fit(X, y)
    pop = Population([3, 4, 2], 2, batch_norm=True, seed=0)
    with _engine.force("lanes"), pytest.raises(_engine.Unsupported, match="batch norm"):
        pop.fit(X, y)


def test_automatic_rule(monkeypatch):
    """Small covered nets take a generated kernel (larger ones one sample at a time), the
    rest the general step (the flat step only when forced); populations the lanes when
    they can, else the per-network kernel (flat step when the small rule says).  One
    thread, so the two-thread engines stay out (their rule: ``test_split.py``)."""
    from fastbp._gen import engine as gen

    with threads(1):
        _rule_checks(monkeypatch, gen)


def _rule_checks(monkeypatch, gen):
    X, y = _data()
    net = MLP([3, 4, 2], seed=0)
    lay, lp = net._layout, net._lparams
    sgd = net._optimizer("sgd", 0.1, {})
    adam = net._optimizer("adam", 0.1, {})
    case = _engine.Case(net._loss_code, sgd.code, sgd.hyper, lay, lp, 4, False, False)
    with_adam = case._replace(opt=adam.code, hyper=adam.hyper)
    assert _engine.choose("net", case) == "generated"
    assert _engine.choose("net", with_adam) == "generated"  # 80 multiply-adds per batch
    assert _engine.choose("net", with_adam._replace(batch_size=64)) == "general"
    big = MLP([100, 200, 100, 10], seed=0)  # 40k multiply-adds a sample
    big_case = case._replace(layout=big._layout, lparams=big._lparams)
    assert _engine.choose("net", big_case._replace(batch_size=1)) == "generated"
    assert _engine.choose("net", big_case._replace(batch_size=2)) == "general"
    monkeypatch.setattr(gen, "ENABLED", False)
    assert _engine.choose("net", case) == "general"
    assert _engine.choose("net", case._replace(weighted=True)) == "general"
    assert _engine.choose("net", case._replace(per_step=True)) == "general"
    assert _engine.choose("net", case._replace(batch_size=10**6)) == "general"
    assert _engine.choose("net", with_adam) == "general"
    assert _engine.choose("population", case) == "lanes"
    huber = MLP([3, 4, 2], loss="huber", seed=0)
    assert _engine.choose("population", case._replace(loss=huber._loss_code)) == \
        "population-small"
    assert _engine.choose("population", case._replace(loss=huber._loss_code, opt=adam.code,
                                                      hyper=adam.hyper)) == "population"
    with _engine.force("population"):  # a net dispatch point keeps its own rule
        assert _engine.choose("net", case) == "general"


def test_forced_engines_agree_on_one_case():
    """Every engine trains the same case to the same parameters (up to summation order)."""
    X, y = _data()
    results = {}
    for name in engines.ENGINES:
        net = MLP([3, 5, 2], activation="tanh", seed=1)
        engines.fit(name, net, X, y, epochs=2, batch_size=5, lr=0.1)
        results[name] = net.params.copy()
    for name, p in results.items():
        np.testing.assert_allclose(p, results["general"], rtol=1e-12, atol=1e-14, err_msg=name)
