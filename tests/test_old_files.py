"""Files and pickles written by fastbp before optimizers serialised themselves
(tests/data/v0.1.0, made by tests/data/make_v0_1_0.py on main at 29ca169) still
load, continue training as they did then, and re-save to the same members."""

import importlib.util
import json
import pathlib
import pickle
import warnings

import numpy as np
import pytest

import fastbp
from fastbp import optim

DATA = pathlib.Path(__file__).resolve().parent / "data" / "v0.1.0"
_spec = importlib.util.spec_from_file_location("make_v0_1_0", DATA.parent / "make_v0_1_0.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)

CASES = [(name, dtype) for name in make.optimizers() for dtype in ("float64", "float32")]


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    meta.pop("fastbp_version")
    return meta, arrays


@pytest.mark.parametrize("name,dtype", CASES, ids=[f"{n}-{d}" for n, d in CASES])
def test_old_file_loads_and_continues_as_before(name, dtype):
    path = DATA / f"{name}_{dtype}.fbp"
    net = fastbp.load(path)
    assert net.dtype == np.dtype(dtype)
    opt = net.optimizer
    expected_opt = make.optimizers()[name]()
    assert opt.get_config() == expected_opt.get_config()
    assert opt.hyper.tobytes() == expected_opt.hyper.tobytes()
    assert opt.step[0] > 0 and opt.state.dtype == np.dtype(dtype)
    if dtype == "float64":  # one more epoch, as the old version ran it
        exp = np.load(DATA / "expected.npz")
        net.fit(exp["X"], exp["y"], epochs=1, batch_size=8, optimizer=opt, shuffle=False)
        np.testing.assert_allclose(net.params, exp[f"{name}_{dtype}"], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", [p.name for p in sorted(DATA.glob("*.fbp"))])
def test_old_file_resaves_to_the_same_members(tmp_path, name):
    net, extra = fastbp.load(DATA / name, return_extra=True)
    fastbp.save(net, tmp_path / name, extra=extra)
    old_meta, old_arrays = _members(DATA / name)
    new_meta, new_arrays = _members(tmp_path / name)
    assert new_meta == old_meta
    assert old_arrays.keys() == new_arrays.keys()
    for key in old_arrays:
        assert old_arrays[key].dtype == new_arrays[key].dtype, key
        assert old_arrays[key].tobytes() == new_arrays[key].tobytes(), key


def test_old_unbound_optimizer_and_no_optimizer():
    net = fastbp.load(DATA / "unbound_adam_bn.fbp")
    assert net.optimizer.state is None and net.optimizer.clip_norm == 3.0
    assert net.optimizer.get_config() == fastbp.Adam(0.02, clip_norm=3.0).get_config()
    assert net.batch_norm == (True,)
    net, extra = fastbp.load(DATA / "no_optimizer.fbp", return_extra=True)
    assert net.optimizer is None and extra["note"].tolist() == [0, 1, 2]


def test_old_pickles_load():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn may warn about its own version
        with open(DATA / "pickles.pkl", "rb") as fh:
            old = pickle.load(fh)
    for name, opt in old["optimizers"].items():
        fresh = make.optimizers()[name]()
        assert opt.get_config() == fresh.get_config(), name
        assert opt.hyper.tobytes() == fresh.hyper.tobytes()
        assert optim.from_config(opt.get_config()).code == opt.code
    exp = np.load(DATA / "expected.npz")
    X = exp["X"]
    np.testing.assert_allclose(old["net"].predict(X), old["net_predict"], rtol=1e-12)
    net = old["net"]
    net.fit(X, exp["y"], epochs=1, batch_size=8, optimizer=net.optimizer)  # state usable
    assert net.optimizer.step[0] > 0
    est = old["estimator"]
    np.testing.assert_allclose(est.predict_proba(X), old["estimator_proba"], rtol=1e-12)
    est.partial_fit(X, (exp["y"][:, 0] > 0).astype(int))  # writes weight_decay by name
