"""Sweeps and ensembles: fastbp.sweep on a 2-worker dask LocalCluster."""

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastbp.sweep import NetFactory, expand_grid, run_sweep, train_config

needs_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="needs dask.distributed (pip install 'dask[distributed]')")

GRID = {"lr": [0.1, 0.02], "seed": [0, 1]}
FIT = dict(epochs=3, batch_size=8, optimizer="sgd", momentum=0.5)


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(3)
    X = r.standard_normal((40, 5))
    y = np.argmax(X[:, :3] + 0.2 * r.standard_normal((40, 3)), axis=1)
    return X, y


def factory():
    return NetFactory([5, 8, 3], loss="cross_entropy")


def local_results(X, y, fit=FIT):
    return [train_config(factory(), c, X, y, fit, threads=1, index=i)
            for i, c in enumerate(expand_grid(GRID))]


def test_expand_grid():
    assert expand_grid({"a": [1, 2], "b": [3, 4]}) == [
        {"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]
    assert expand_grid({"a": 1}) == [{"a": 1}]
    assert expand_grid([{"seed": 0}, {"seed": 1}]) == [{"seed": 0}, {"seed": 1}]
    with pytest.raises(TypeError):
        expand_grid("lr")


def test_config_keys_reach_net_and_fit(data):
    X, y = data
    res = train_config(NetFactory([5, 4, 3], loss="cross_entropy"),
                       {"seed": 2, "activation": "tanh", "lr": 0.05, "epochs": 2}, X, y,
                       {"batch_size": 10})
    assert len(res["history"]["loss"]) == 2 and res["history"]["lr"] == [0.05, 0.05]
    assert res["params"].shape == (5 * 4 + 4 + 4 * 3 + 3,)


def test_net_factory_rejects_unknown_keys(data):
    X, y = data
    with pytest.raises(TypeError, match="lrate"):
        train_config(factory(), {"lrate": 0.1}, X, y, {"epochs": 1})


def test_executor_backend_matches_local(data):
    """Any concurrent.futures executor works (MPIPoolExecutor inside an MPI job)."""
    X, y = data
    with ThreadPoolExecutor(max_workers=1) as ex:
        got = run_sweep(factory(), GRID, X, y, client=ex, fit_kwargs=FIT)
    for g, ref in zip(got, local_results(X, y)):
        assert g["config"] == ref["config"]
        assert np.array_equal(g["params"], ref["params"])
        assert np.array_equal(g["net"].params, ref["params"])


@needs_dask
def test_dask_local_cluster_sweep(data, tmp_path):
    X, y = data
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = run_sweep(factory(), GRID, X, y, client=client, fit_kwargs=FIT,
                        validation_data=(X[:10], y[:10]), early_stopping=False,
                        save_dir=tmp_path)
        workers = {r["worker"] for r in got}
        assert len(client.scheduler_info()["workers"]) == 2
    ref = local_results(X, y, dict(FIT, validation_data=(X[:10], y[:10]),
                                   early_stopping=False))
    assert [g["config"] for g in got] == expand_grid(GRID)
    for g, r in zip(got, ref):
        assert np.array_equal(g["params"], r["params"])  # same seed: bit-identical
        assert g["history"]["loss"] == r["history"]["loss"]
        assert g["history"]["val_loss"] == r["history"]["val_loss"]
        assert np.array_equal(g["net"].predict(X), _net(r).predict(X))
        assert g["net"].history_.loss == r["history"]["loss"]  # the trained MLP came back
        assert g["net"].optimizer.step[0] == r["net"].optimizer.step[0]
        assert g["threads"] == 1
    assert len(workers) >= 1
    # different seeds and rates really give different networks
    assert not np.array_equal(got[0]["params"], got[1]["params"])
    io = pytest.importorskip("fastbp.io")
    for g in got:
        assert np.array_equal(io.load(g["path"]).params, g["params"])


def _net(result):
    net = factory()(result["config"])
    net.params = result["params"]
    return net


@needs_dask
def test_default_cluster_is_created_and_closed(data):
    X, y = data
    got = run_sweep(factory(), [{"seed": 0}, {"seed": 1}], X, y, n_workers=2,
                    epochs=2, batch_size=8, return_models=False)
    assert [len(g["history"]["loss"]) for g in got] == [2, 2]
    assert "net" not in got[0]
    alone = train_config(factory(), {"seed": 1}, X, y, dict(epochs=2, batch_size=8))
    assert np.array_equal(got[1]["params"], alone["params"])
