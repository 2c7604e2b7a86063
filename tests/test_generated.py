"""The generated, shape-specialised epoch kernels (``fastbp/_gen``).

* They agree with the generic engine (``engine.ENABLED = False``) to float
  tolerance on small architectures covering every hidden activation, the
  mse / huber / cross-entropy / binary cross-entropy losses, float32 and
  float64, batch 1 and larger, shuffle on and off, and a ragged last batch.
* The register kernel, the loop kernel and the generic flat path give
  bit-identical parameters (the same operations in the same order).
* Same seed -> bit-identical parameters in two fresh processes (the first
  compiles the generated kernel, the second loads it from the caches).
* A training epoch on a generated kernel allocates nothing in compiled code.
* The generated-file cache: version and build hash in the folder name, a
  file written once and reused, no temporary file left, a corrupt or
  truncated file replaced and never imported.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import __version__, _engine
from fastbp._gen import cache, engine
from fastbp._gen.source import TEMPLATE, source
from fastbp.optim import RPROP, SGD, Adam, AdamW

N = 37  # not a multiple of any batch below: a ragged last batch


def _data(sizes, loss, dtype, seed=0, onehot=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], N)
        if onehot:
            y = np.eye(sizes[-1], dtype=dtype)[y]
    elif loss == "binary_cross_entropy":
        y = (rng.random((N, sizes[-1])) > 0.5).astype(dtype)
    else:
        y = rng.standard_normal((N, sizes[-1])).astype(dtype)
    return X, y


def _fit(case, generated, reg_params=None, epochs=2):
    sizes, hidden, out, loss, dtype, batch, shuffle, wd = case[:8]
    X, y = _data(sizes, loss, dtype, onehot=len(case) > 8)
    old = engine.ENABLED, engine.GEN_REG_PARAMS
    engine.ENABLED = generated
    if reg_params is not None:
        engine.GEN_REG_PARAMS = reg_params
    engine._KEYS.clear()
    calls = []
    real = engine.load

    def load(key):
        calls.append(key)
        return real(key)

    engine.load = load
    try:
        net = fastbp.MLP(list(sizes), activation=hidden, output=out, loss=loss, dtype=dtype,
                         seed=0)
        hist = net.fit(X, y, epochs=epochs, batch_size=batch, shuffle=shuffle, seed=3,
                       optimizer=wd() if callable(wd) else SGD(lr=0.05, weight_decay=wd))
    finally:
        engine.load = real
        engine.ENABLED, engine.GEN_REG_PARAMS = old
        engine._KEYS.clear()
    return net, hist, calls


CASES = [
    # sizes, hidden activations, output, loss, dtype, batch, shuffle, weight decay or an
    # optimizer factory[, one-hot]
    ((3, 5, 4, 2), ["sigmoid", "tanh"], "identity", "mse", "float64", 1, True, 0.0),
    ((3, 6, 5, 3), ["relu", "leaky_relu"], "softmax", "cross_entropy", "float32", 7, True, 0.0),
    ((4, 5, 4, 2), ["elu", "softplus"], "sigmoid", "binary_cross_entropy", "float64", 5, False,
     0.01),
    ((3, 7, 2), ["gelu"], "tanh", "huber", "float32", 1, False, 0.0),
    ((2, 9, 6, 1), ["identity", "sigmoid"], "identity", "mse", "float64", 4, True, 0.01),
    ((3, 4, 3), ["tanh"], "softmax", "cross_entropy", "float64", 1, True, 0.0, "onehot"),
    ((5, 8, 8, 8, 4), ["relu", "tanh", "gelu"], "sigmoid", "mse", "float32", 37, True, 0.0),
    ((3, 6, 2), ["tanh"], "identity", "mse", "float64", 4, True,
     lambda: SGD(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ((3, 6, 3), ["relu"], "softmax", "cross_entropy", "float32", 1, False,
     lambda: SGD(lr=0.05, momentum=0.8, nesterov=True, l1=0.001)),
    ((3, 6, 2), ["sigmoid"], "identity", "mse", "float64", 6, True,
     lambda: SGD(lr=0.05, l1=0.01)),
    ((3, 5, 4, 2), ["elu", "tanh"], "identity", "mse", "float64", 5, True,
     lambda: Adam(lr=0.01, weight_decay=0.01)),
    ((3, 5, 2), ["relu"], "sigmoid", "binary_cross_entropy", "float32", 1, True,
     lambda: AdamW(lr=0.01, weight_decay=0.1)),
    # dot products over >= source.DOT_SPLIT inputs, split into partial sums plus a tail
    ((21, 3, 19, 2), ["sigmoid", "relu"], "identity", "mse", "float32", 3, True, 0.0),
    ((17, 4, 3), ["tanh"], "softmax", "cross_entropy", "float64", 1, True,
     lambda: Adam(lr=0.01)),
]


def _id(case):
    opt = "" if not callable(case[7]) else "-" + type(case[7]()).__name__.lower()
    return "-".join(map(str, case[0])) + f"-{case[3]}-b{case[5]}{opt}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_matches_generic_engine(case):
    gen, hgen, calls = _fit(case, True)
    ref, href, none = _fit(case, False)
    assert calls and not none  # the generated kernel ran, and only when switched on
    tol = dict(rtol=2e-4, atol=2e-5) if case[4] == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gen.params, ref.params, **tol)
    np.testing.assert_allclose(hgen.loss, href.loss, **tol)
    assert gen.params.dtype == np.dtype(case[4])
    assert gen.optimizer.step[0] == ref.optimizer.step[0] == 2 * -(-N // case[5])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes,hidden,out", [
    ((3, 5, 4, 2), ["tanh", "relu"], "sigmoid"),
    ((2, 8, 1), ["sigmoid"], "identity"),       # one vector of 8 (the tuple activations)
    ((2, 3, 13, 1), ["tanh", "sigmoid"], "tanh")])  # 3 and 13 lanes, padded to 4 and 16
def test_register_loop_and_flat_are_bit_identical(dtype, sizes, hidden, out):
    case = (sizes, hidden, out, "mse", dtype, 1, True, 0.01)
    reg, _, kr = _fit(case, True)
    loop, _, kl = _fit(case, True, reg_params=0)
    with _engine.force("small"):
        flat, _, _ = _fit(case, False)
    assert kr[0][-1] and not kl[0][-1]  # register kernel, then loop kernel
    assert np.array_equal(reg.params, loop.params)
    assert np.array_equal(reg.params, flat.params)


@pytest.mark.parametrize("loss,out,dtype,batch", [
    ("cross_entropy", "softmax", "float32", 1), ("binary_cross_entropy", "sigmoid", "float64", 4),
    ("poisson", "exp", "float32", 2), ("mse", "softmax", "float64", 3)])
def test_plain_sgd_reproduces_the_flat_path(loss, out, dtype, batch):
    """Plain SGD on a generated kernel gives exactly the flat step's results
    (``_kernels/small.py``, forced: the automatic rule takes the general step instead)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, 3)).astype(dtype)
    y = (rng.integers(0, 3, N) if loss == "cross_entropy" else
         (rng.random((N, 3)) > 0.5).astype(dtype))
    res = []
    for on in (True, False):
        engine.ENABLED = on
        try:
            net = fastbp.MLP([3, 6, 3], activation="tanh", output=out, loss=loss, dtype=dtype,
                             seed=0)
            with _engine.force("generated" if on else "small"):
                net.fit(X, y, epochs=3, batch_size=batch, lr=0.05, seed=1)
        finally:
            engine.ENABLED = True
        res.append(net.params)
    assert np.array_equal(res[0], res[1])


_SCRIPT = """
import hashlib, sys
import numpy as np
import fastbp
rng = np.random.default_rng(1)
X = rng.standard_normal((50, 3)).astype("float32")
y = rng.integers(0, 3, 50)
net = fastbp.MLP([3, 6, 3], activation="tanh", loss="cross_entropy", dtype="float32", seed=2)
net.fit(X, y, epochs=3, batch_size=4, lr=0.1, seed=5)
Xr = rng.standard_normal((40, 2)).astype("float32")
yr = rng.standard_normal((40, 1)).astype("float32")
reg = fastbp.MLP([2, 8, 1], activation="sigmoid", loss="mse", dtype="float32", seed=2)
reg.fit(Xr, yr, epochs=3, batch_size=1, lr=0.1, seed=5)
print(hashlib.sha256(net.params.tobytes() + reg.params.tobytes()).hexdigest())
"""


def test_bit_identical_across_processes(tmp_path):
    env = dict(os.environ, FASTBP_GEN_DIR=str(tmp_path / "gen"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    run = lambda: subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root,  # noqa
                                 capture_output=True, text=True, check=True).stdout.strip()
    first = run()  # compiles the generated kernels into fresh files
    assert len(os.listdir(cache.build_dir().replace(cache.base_dir(),
                                                    str(tmp_path / "gen")))) >= 2
    assert run() == first  # loads them from the caches


def test_epochs_allocate_nothing():
    from test_allocations import assert_no_kernel_allocations, track_nrt
    for case in (CASES[0], CASES[1]):
        sizes, hidden, out, loss, dtype, batch, shuffle, _ = case
        X, y = _data(sizes, loss, dtype)
        net = fastbp.MLP(list(sizes), activation=hidden, output=out, loss=loss, dtype=dtype)
        net.fit(X, y, epochs=1, batch_size=batch, lr=0.01, seed=0)  # warm-up
        with track_nrt() as t:
            net.fit(X, y, epochs=3, batch_size=batch, lr=0.01, shuffle=shuffle, seed=1)
        assert_no_kernel_allocations(t)


def test_divergence_is_caught():
    X, y = _data((2, 8, 1), "mse", "float64")
    for on in (True, False):
        engine.ENABLED = on
        try:
            net = fastbp.MLP([2, 8, 1], activation="relu", loss="mse", seed=0)
            with pytest.raises(fastbp.DivergenceError):
                net.fit(X * 1e200, y, epochs=2, batch_size=1, lr=1e10)
        finally:
            engine.ENABLED = True


@pytest.mark.parametrize("what", ["rprop", "clip", "dropout", "batch_norm", "sample_weight",
                                  "step_schedule", "disabled", "big"])
def test_uncovered_epochs_take_the_generic_engine(what, monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "load", lambda key: calls.append(key))
    kw = {}
    net_kw = {}
    sizes = [3, 4, 2]
    opt = SGD(lr=0.01)
    if what == "rprop":
        opt = RPROP()
    elif what == "clip":
        opt = SGD(lr=0.01, clip_norm=1.0)
    elif what == "dropout":
        net_kw["dropout"] = 0.1
    elif what == "batch_norm":
        net_kw["batch_norm"] = True
    elif what == "sample_weight":
        kw["sample_weight"] = np.ones(N)
    elif what == "step_schedule":
        from fastbp.schedules import Step
        kw["lr_schedule"] = Step(step_size=1, per="step")
    elif what == "disabled":
        monkeypatch.setattr(engine, "ENABLED", False)
    elif what == "big":
        sizes = [3, 200, 200, 2]
        monkeypatch.setattr(engine, "GEN_NET_MACS", 1000)
    engine._KEYS.clear()
    X, y = _data(sizes, "mse", "float64")
    net = fastbp.MLP(sizes, activation="tanh", **net_kw)
    net.fit(X, y, epochs=1, batch_size=4, optimizer=opt, **kw)
    assert calls == []


# --------------------------------------------------------------------- the file cache

KEY = ((2, 3, 1), (1, 0), 0, "sgd", True, True)


@pytest.fixture
def gen_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBP_GEN_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "_MODULES", {})
    return tmp_path


def test_folder_names_version_template_and_build(gen_dir):
    folder = cache.build_dir()
    assert os.path.dirname(folder) == str(gen_dir)
    assert os.path.basename(folder) == f"v{__version__}-t{TEMPLATE}-{cache.build_hash()}"
    assert len(cache.build_hash()) == 16


def test_default_folders(monkeypatch):
    monkeypatch.delenv("FASTBP_GEN_DIR", raising=False)
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/some/where/numba")
    assert cache.base_dir() == "/some/where/numba-fastbp-gen"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert cache.base_dir().endswith(os.path.join("fastbp", "generated"))


def test_file_written_once_and_reused(gen_dir):
    path = cache.ensure_file(KEY)
    with open(path) as f:
        assert f.read() == source(KEY)
    stat = os.stat(path)
    assert cache.ensure_file(KEY) == path
    again = os.stat(path)
    assert (again.st_mtime_ns, again.st_ino) == (stat.st_mtime_ns, stat.st_ino)
    assert [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp")] == []
    mod = cache.load(KEY)
    assert cache.load(KEY) is mod and mod.__file__ == path


@pytest.mark.parametrize("bad", ["raise RuntimeError('a corrupt file was imported')\n",
                                 "truncated"])
def test_corrupt_or_partial_file_is_replaced_not_imported(gen_dir, bad):
    path = cache.ensure_file(KEY)
    text = source(KEY)
    with open(path, "w") as f:
        f.write(bad if bad != "truncated" else text[:len(text) // 2])
    mod = cache.load(KEY)  # would raise (or fail to parse) if the bad file were imported
    assert hasattr(mod, "epoch")
    with open(path) as f:
        assert f.read() == text


def test_unwritable_folder_falls_back_to_the_generic_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBP_GEN_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(cache, "_MODULES", {})
    engine._KEYS.clear()
    X, y = _data((3, 4, 2), "mse", "float64")
    net = fastbp.MLP([3, 4, 2], activation="tanh", seed=0)
    net.fit(X, y, epochs=1, batch_size=1, lr=0.01)  # runs (on the flat path)
    assert cache._MODULES == {}


def test_source_is_valid_python_for_every_mode():
    for key in (KEY, KEY[:5] + (False,), ((4, 3, 3), (3, 8), 1, "sgd", False, False),
                ((4, 3, 3), (3, 8), 1, "momentum", True, False),
                ((4, 3, 3), (3, 8), 1, "adamw", False, False)):
        compile(source(key), "<generated>", "exec")
    with pytest.raises(ValueError, match="optimizer"):
        source(((2, 3, 1), (1, 0), 0, "rprop", True, False))
