"""fastbp.io: the versioned, pickle-free .npz format.

Round trips (bit-identical predictions, RNG, optimizer, history), exact resume
in a fresh process, atomic writes under injected failures, rejection of
crafted/damaged files with FormatError, and a hypothesis fuzz of the loader.
"""

from __future__ import annotations

import io as _pyio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
import zipfile

import numpy as np
import pytest

import fastbp
from fastbp.io import FORMAT_NAME, FORMAT_VERSION, FormatError, load, save
from fastbp.optim import HYPER_SLOTS, RPROP


def _data(n=37, d=5, k=3, seed=7):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    y = np.tanh(X @ r.standard_normal((d, k))) + 0.1 * r.standard_normal((n, k))
    return X, y


def _labels(n=29, d=5, k=3, seed=11):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    return X, np.argmax(X[:, :k], axis=1).astype(np.int64)


def _assert_same_net(a, b, X):
    assert a.sizes == b.sizes
    assert a.activations == b.activations
    assert a.loss == b.loss and a.dtype == b.dtype and a.init == b.init
    assert a.leaky_slope == b.leaky_slope and a.elu_alpha == b.elu_alpha
    assert a.dropout == b.dropout and a.batch_norm == b.batch_norm
    assert a.bn_momentum == b.bn_momentum and a.bn_eps == b.bn_eps
    assert a.params.dtype == b.params.dtype
    assert a.params.tobytes() == b.params.tobytes()
    assert a._stats.tobytes() == b._stats.tobytes()  # batch-norm running statistics
    assert a.steps == b.steps and a._dropout_seed == b._dropout_seed
    assert a.predict(X).tobytes() == b.predict(X).tobytes()
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def _assert_same_history(a, b):
    for key in ("loss", "lr", "epoch_time", "val_loss", "val_score", "grad_norms", "samples",
                "stop_reason", "best_epoch"):
        assert getattr(a, key) == getattr(b, key), key


def _assert_same_optimizer(a, b):
    assert type(a) is type(b)
    assert a.hyper.tobytes() == b.hyper.tobytes()
    assert a.step.tobytes() == b.step.tobytes()
    assert a.code == b.code and a.n_state == b.n_state
    assert a.weight_decay == b.weight_decay
    for key in ("momentum", "nesterov", "l1", "clip_norm", "delta0", "full_batch"):
        assert getattr(a, key, None) == getattr(b, key, None), key
    assert a.state.dtype == b.state.dtype and a.state.shape == b.state.shape
    assert a.state.tobytes() == b.state.tobytes()


# ------------------------------------------------------------------ round trip
CONFIGS = [
    dict(sizes=[5, 8, 3], activation="tanh", dtype="float64", opt=lambda: fastbp.SGD(0.05)),
    dict(sizes=[5, 8, 3], activation="relu", dtype="float32",
         opt=lambda: fastbp.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, l1=1e-4,
                                clip_norm=5.0)),
    dict(sizes=[5, 6, 4, 3], activation=["leaky_relu", "elu"], dtype="float64", leaky_slope=0.2,
         elu_alpha=0.7, init="he_uniform", opt=lambda: fastbp.Adam(0.01, betas=(0.8, 0.99))),
    dict(sizes=[5, 3], activation="relu", dtype="float64", output="tanh",
         opt=lambda: fastbp.AdamW(0.003, weight_decay=0.05)),
    dict(sizes=[5, 6, 6, 3], activation="relu", dtype="float64", dropout=[0.2, 0.0],
         batch_norm=[True, True], bn_momentum=0.3, opt=lambda: fastbp.Adam(0.01)),
    dict(sizes=[5, 6, 3], activation="tanh", dtype="float32", batch_norm=True,
         opt=lambda: RPROP(delta0=0.05, eta_plus=1.1)),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["sgd64", "nesterov32", "adam-deep", "adamw-slp",
                                              "dropout-bn-adam", "bn-rprop32"])
def test_round_trip_is_exact(tmp_path, cfg):
    cfg = dict(cfg)
    make_opt = cfg.pop("opt")
    dtype = cfg["dtype"]
    net = fastbp.MLP(cfg.pop("sizes"), seed=3, **cfg)
    X, y = _data()
    X, y = X.astype(dtype), y.astype(dtype)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=make_opt())
    path = tmp_path / "net.fbp"
    save(net, path)
    back = load(path)
    _assert_same_net(net, back, X)
    _assert_same_optimizer(net.optimizer, back.optimizer)
    _assert_same_history(net.history_, back.history_)
    # the restored generator continues the same stream
    assert back.rng.random() == net.rng.random()
    # and training continues identically
    net.fit(X, y, epochs=1, batch_size=8, optimizer=net.optimizer)
    back.fit(X, y, epochs=1, batch_size=8, optimizer=back.optimizer)
    assert back.params.tobytes() == net.params.tobytes()


def test_fresh_network_without_optimizer_or_history(tmp_path):
    net = fastbp.MLP([4, 3, 2], activation="sigmoid", loss="binary_cross_entropy", seed=0)
    path = str(tmp_path / "fresh.npz")
    save(net, path)
    back = load(path)
    _assert_same_net(net, back, np.ones((3, 4)))
    assert back.optimizer is None
    assert not hasattr(back, "history_")


def test_method_save_and_exact_path(tmp_path):
    """net.save(path) works, and names without .npz are used exactly as given."""
    net = fastbp.MLP([3, 4, 2], seed=1)
    for name in ["model", "model.bin", "model.npz", "dir.with.dots"]:
        target = tmp_path / name
        net.save(target)  # PathLike
        assert target.is_file()
        assert load(str(target)).params.tobytes() == net.params.tobytes()
    assert sorted(os.listdir(tmp_path)) == sorted(["model", "model.bin", "model.npz",
                                                   "dir.with.dots"])


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "m"
    a = fastbp.MLP([3, 4, 2], seed=1)
    b = fastbp.MLP([3, 5, 5, 2], activation="gelu", seed=2)
    save(a, path)
    save(b, path)
    back = load(path)
    assert back.sizes == (3, 5, 5, 2) and back.params.tobytes() == b.params.tobytes()
    assert os.listdir(tmp_path) == ["m"]


def test_other_bit_generator_state_is_restored(tmp_path):
    net = fastbp.MLP([3, 2], seed=0)
    net.rng = np.random.Generator(np.random.MT19937(5))
    net.rng.random(7)
    save(net, tmp_path / "m")
    back = load(tmp_path / "m")
    assert type(back.rng.bit_generator) is np.random.MT19937
    assert back.rng.random() == net.rng.random()


def test_extra_arrays_extension_point(tmp_path):
    net = fastbp.MLP([3, 4, 2], seed=1)
    extra = {"bn_mean": np.arange(4.0), "counts": np.array([[1, 2]], dtype=np.int32),
             "flags": np.array([True, False])}
    save(net, tmp_path / "m", extra=extra)
    back, got = load(tmp_path / "m", return_extra=True)
    assert set(got) == set(extra)
    for k, v in extra.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    assert load(tmp_path / "m").params.tobytes() == net.params.tobytes()
    with pytest.raises(ValueError, match="name"):
        save(net, tmp_path / "x", extra={"bad/name": np.zeros(2)})
    with pytest.raises(TypeError, match="dtype"):
        save(net, tmp_path / "x", extra={"obj": np.array([{}], dtype=object)})
    assert not (tmp_path / "x").exists()


def test_save_rejects_nonfinite_params_and_writes_nothing(tmp_path):
    net = fastbp.MLP([3, 4, 2], seed=1)
    net.params[2] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        save(net, tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_bytes_path_and_non_network(tmp_path):
    net = fastbp.MLP([3, 2], seed=0)
    target = os.fsencode(str(tmp_path / "b.bin"))
    save(net, target)
    assert load(target).params.tobytes() == net.params.tobytes()
    with pytest.raises(TypeError, match="MLP"):
        save({"params": net.params}, tmp_path / "x")
    assert os.listdir(tmp_path) == ["b.bin"]


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


def test_meta_is_documented_json(tmp_path):
    net = fastbp.MLP([3, 4, 2], seed=1)
    net.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, optimizer="adam")
    save(net, tmp_path / "m")
    with np.load(tmp_path / "m", allow_pickle=False) as z:
        assert z["meta"].dtype == np.uint8
        meta = json.loads(z["meta"].tobytes().decode())
        assert set(z.files) == {"meta", "params", "stats", "optimizer.hyper", "optimizer.state",
                                "optimizer.step", "history.loss", "history.lr",
                                "history.epoch_time", "history.val_loss", "history.val_score",
                                "history.grad_norms"}
    assert meta["format"] == FORMAT_NAME and meta["version"] == FORMAT_VERSION == 1
    assert meta["architecture"] == {"sizes": [3, 4, 2], "activations": ["relu", "identity"],
                                    "loss": "mse", "dtype": "float64", "leaky_slope": 0.01,
                                    "elu_alpha": 1.0, "init": "auto", "dropout": [0.0],
                                    "batch_norm": [False], "bn_momentum": 0.1, "bn_eps": 1e-5}
    assert meta["optimizer"] == {"class": "Adam", "bound": True, "attributes": {
        "weight_decay": 0.0, "l1": 0.0, "clip_norm": None}}
    assert meta["history"] == {"samples": 4, "stop_reason": None, "best_epoch": None}
    assert meta["counter"] == 1 and isinstance(meta["dropout_seed"], int)


def test_history_with_validation_and_grad_norms(tmp_path):
    X, y = _labels()
    net = fastbp.MLP([5, 6, 3], activation="tanh", loss="cross_entropy", seed=2)
    hist = net.fit(X, y, epochs=4, batch_size=8, lr=0.1, validation_fraction=0.3,
                   early_stopping=True, n_iter_no_change=2, record_grad_norms=True)
    assert hist.val_loss and hist.grad_norms and all(v is not None for v in hist.val_score)
    save(net, tmp_path / "m")
    _assert_same_history(hist, load(tmp_path / "m").history_)
    # mse: val_score entries are None
    X2, y2 = _data()
    net2 = fastbp.MLP([5, 4, 3], seed=2)
    hist2 = net2.fit(X2, y2, epochs=2, validation_data=(X2[:5], y2[:5]))
    assert hist2.val_score == [None, None]
    save(net2, tmp_path / "m2")
    _assert_same_history(hist2, load(tmp_path / "m2").history_)


def test_unsupported_optimizer_is_refused(tmp_path):
    class MySGD(fastbp.SGD):
        pass

    net = fastbp.MLP([3, 2], seed=0)
    net.optimizer = MySGD(0.1)
    with pytest.raises(TypeError, match="MySGD"):
        save(net, tmp_path / "m")
    net.optimizer = fastbp.SGD(0.1)
    net.optimizer.hyper[HYPER_SLOTS["momentum"]] = 0.5  # tampered: disagrees with the code
    with pytest.raises(ValueError, match="disagrees"):
        save(net, tmp_path / "m")
    assert os.listdir(tmp_path) == []
    net.optimizer = fastbp.SGD(0.1)  # unbound (never used): saved without state
    save(net, tmp_path / "m")
    back = load(tmp_path / "m")
    assert back.optimizer.state is None and back.optimizer.lr == 0.1


# -------------------------------------------------------- exact resume (fresh process)
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from fastbp.io import load, save
    src, dst, data, epochs, bs = sys.argv[1:]
    with np.load(data, allow_pickle=False) as d:
        X, y = d["X"], d["y"]
    net = load(src)
    assert net.optimizer is not None
    net.fit(X, y, epochs=int(epochs), batch_size=int(bs), shuffle=True, optimizer=net.optimizer)
    save(net, dst)
""")

RESUME = {
    "sgd-shuffle": (lambda: fastbp.SGD(0.05), "float64", {}),
    "nesterov": (lambda: fastbp.SGD(0.02, momentum=0.9, nesterov=True), "float64", {}),
    "adam": (lambda: fastbp.Adam(0.01), "float32", {}),
    # dropout masks (step counter, seed) and batch-norm statistics must carry over too
    "adam-dropout-bn": (lambda: fastbp.Adam(0.01), "float64",
                        dict(dropout=0.3, batch_norm=True)),
}


@pytest.mark.parametrize("case", list(RESUME))
def test_resume_in_fresh_process_is_bit_identical(tmp_path, case):
    make_opt, dtype, extra_kw = RESUME[case]
    N, k, bs = 4, 2, 8
    X, y = _data()
    X, y = X.astype(dtype), y.astype(dtype)
    np.savez(tmp_path / "data.npz", X=X, y=y)

    ref = fastbp.MLP([5, 8, 3], activation="tanh", dtype=dtype, seed=42, **extra_kw)
    opt = make_opt()
    ref.fit(X, y, epochs=k, batch_size=bs, shuffle=True, optimizer=opt)
    part = ref.copy()  # parameters + generator state after k epochs
    part.optimizer = opt  # (the state is copied by save, not shared)
    save(part, tmp_path / "k.fbp")
    ref.fit(X, y, epochs=N - k, batch_size=bs, shuffle=True, optimizer=opt)

    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "k.fbp"), str(tmp_path / "n.fbp"),
                    str(tmp_path / "data.npz"), str(N - k), str(bs)],
                   check=True, cwd=tmp_path, timeout=300)
    resumed = load(tmp_path / "n.fbp")
    assert resumed.params.tobytes() == ref.params.tobytes()
    assert resumed._stats.tobytes() == ref._stats.tobytes()
    assert resumed.steps == ref.steps
    _assert_same_optimizer(resumed.optimizer, ref.optimizer)
    assert resumed.rng.bit_generator.state == ref.rng.bit_generator.state
    assert resumed.history_.loss == ref.history_.loss  # the second fit's epochs
    # sanity: training moved the parameters and shuffling consumed the generator
    start = fastbp.MLP([5, 8, 3], activation="tanh", dtype=dtype, seed=42, **extra_kw)
    assert not np.array_equal(start.params, ref.params)
    assert start.rng.bit_generator.state != ref.rng.bit_generator.state


# ------------------------------------------------------------- atomic writes
def _only(tmp_path, names):
    assert sorted(os.listdir(tmp_path)) == sorted(names), "temporary files left behind"


@pytest.fixture
def saved(tmp_path):
    old = fastbp.MLP([3, 4, 2], seed=1)
    path = tmp_path / "model.fbp"
    save(old, path)
    before = path.read_bytes()
    new = fastbp.MLP([3, 6, 2], activation="tanh", seed=2)
    new.fit(np.ones((5, 3)), np.zeros((5, 2)), epochs=1, optimizer="adam")
    return old, new, path, before


def _check_intact(tmp_path, old, path, before):
    assert path.read_bytes() == before
    back = load(path)
    _assert_same_net(old, back, np.ones((2, 3)))
    _only(tmp_path, [path.name])


def test_failing_fsync_leaves_old_file(tmp_path, saved, monkeypatch):
    old, new, path, before = saved

    def boom(fd):
        raise OSError(5, "injected fsync failure")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="injected"):
        save(new, path)
    monkeypatch.undo()
    _check_intact(tmp_path, old, path, before)


def test_failing_replace_leaves_old_file(tmp_path, saved, monkeypatch):
    old, new, path, before = saved

    def boom(src, dst):
        assert os.path.getsize(src) > 0  # the temp file was fully written
        raise OSError(28, "injected replace failure")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="injected"):
        new.save(path)
    monkeypatch.undo()
    _check_intact(tmp_path, old, path, before)


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device (injected)"),
                                 KeyboardInterrupt()])
def test_write_failing_part_way_leaves_old_file(tmp_path, saved, monkeypatch, exc):
    """The array writer dies after writing two arrays and half of the third."""
    old, new, path, before = saved
    real = np.lib.format.write_array
    calls = []

    def flaky(fp, array, *a, **kw):
        calls.append(1)
        if len(calls) < 3:
            return real(fp, array, *a, **kw)
        buf = _pyio.BytesIO()
        real(buf, array, *a, **kw)
        fp.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise exc

    monkeypatch.setattr(np.lib.format, "write_array", flaky)
    with pytest.raises(type(exc)):
        save(new, path)
    monkeypatch.undo()
    assert len(calls) == 3
    _check_intact(tmp_path, old, path, before)


def test_unwritable_destination(tmp_path):
    net = fastbp.MLP([3, 2], seed=0)
    with pytest.raises(FileNotFoundError):
        save(net, tmp_path / "no_such_dir" / "m")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        save(net, tmp_path / "adir")
    _only(tmp_path, ["adir"])
    assert os.listdir(tmp_path / "adir") == []


# ------------------------------------------------------- crafted / damaged files
def _valid_members(tmp_path, net=None):
    if net is None:
        net = fastbp.MLP([4, 5, 3], activation="tanh", loss="cross_entropy", seed=0)
        X, y = _labels(d=4)
        net.fit(X, y, epochs=1, optimizer=fastbp.SGD(0.1, momentum=0.5))
    save(net, tmp_path / "valid")
    with np.load(tmp_path / "valid", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    return meta, arrays


def _write(path, meta, arrays, meta_array=None):
    if meta_array is None:
        meta_array = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, meta=meta_array, **arrays)


def _mutations():
    """(id, function(meta, arrays) -> (meta, arrays) or (meta, arrays, meta_array))."""
    def arch(key, value):
        def f(m, a):
            m["architecture"][key] = value
            return m, a
        return f

    def top(key, value):
        def f(m, a):
            m[key] = value
            return m, a
        return f

    def arr(key, fn):
        def f(m, a):
            a[key] = fn(a[key])
            return m, a
        return f

    def drop_meta(key):
        def f(m, a):
            del m[key]
            return m, a
        return f

    def drop_arr(key):
        def f(m, a):
            del a[key]
            return m, a
        return f

    def add_arr(key, value):
        def f(m, a):
            a[key] = value
            return m, a
        return f

    def opt(key, value):
        def f(m, a):
            m["optimizer"]["attributes"][key] = value
            return m, a
        return f

    def drop_opt_attr(key):
        def f(m, a):
            del m["optimizer"]["attributes"][key]
            return m, a
        return f

    def raw_meta(b):
        return lambda m, a: (m, a, np.frombuffer(b, dtype=np.uint8))

    return [
        ("version-newer", top("version", FORMAT_VERSION + 1), r"newer|upgrade"),
        ("version-zero", top("version", 0), r"version"),
        ("version-string", top("version", "1"), r"version"),
        ("version-bool", top("version", True), r"version"),
        ("format-name", top("format", "keras"), r"format"),
        ("meta-extra-key", top("surprise", 1), r"unknown keys"),
        ("meta-missing-key", drop_meta("rng"), r"missing keys"),
        ("meta-list", lambda m, a: (m, a, np.frombuffer(b"[1, 2]", dtype=np.uint8)),
         r"JSON object|format"),
        ("meta-not-json", raw_meta(b"{not json"), r"JSON"),
        ("meta-not-utf8", raw_meta(b"\xff\xfe{}"), r"UTF-8|JSON"),
        ("meta-nan", raw_meta(b'{"format": NaN}'), r"non-finite|format"),
        ("meta-deep", raw_meta(b"[" * 100000 + b"]" * 100000), r"JSON|format|recursion"),
        ("meta-float-array", lambda m, a: (m, a, np.frombuffer(json.dumps(m).encode(),
                                                               np.uint8).astype(np.float64)),
         r"dtype"),
        ("meta-unicode-0d", lambda m, a: (m, a, np.array(json.dumps(m))), r"dtype"),
        ("sizes-zero", arch("sizes", [4, 0, 3]), r"sizes"),
        ("sizes-negative", arch("sizes", [4, -5, 3]), r"sizes"),
        ("sizes-float", arch("sizes", [4, 5.0, 3]), r"sizes"),
        ("sizes-bool", arch("sizes", [4, True, 3]), r"sizes"),
        ("sizes-string", arch("sizes", "453"), r"sizes"),
        ("sizes-short", arch("sizes", [4]), r"sizes"),
        ("sizes-mismatch", arch("sizes", [4, 6, 3]), r"params.*shape|activations"),
        ("sizes-huge", arch("sizes", [10 ** 6, 10 ** 6, 3]), r"params.*shape"),
        ("act-unknown", arch("activations", ["swish", "softmax"]), r"activation"),
        ("act-softmax-hidden", arch("activations", ["softmax", "softmax"]), r"activation"),
        ("act-relu-output", arch("activations", ["tanh", "relu"]), r"activation"),
        ("act-alias", arch("activations", ["linear", "softmax"]), r"activation"),
        ("act-count", arch("activations", ["tanh", "tanh", "softmax"]), r"activation"),
        ("act-not-str", arch("activations", [1, "softmax"]), r"activation"),
        ("loss-unknown", arch("loss", "hinge"), r"loss"),
        ("loss-output-combo", arch("loss", "binary_cross_entropy"), r"architecture|sigmoid"),
        ("dtype-bad", arch("dtype", "float16"), r"dtype"),
        ("dtype-object", arch("dtype", "object"), r"dtype"),
        ("init-bad", arch("init", "lecun"), r"init"),
        ("slope-string", arch("leaky_slope", "0.1"), r"leaky_slope"),
        ("alpha-negative", arch("elu_alpha", -1.0), r"architecture|elu_alpha"),
        ("arch-extra-key", arch("bias", True), r"unknown keys"),
        ("params-short", arr("params", lambda p: p[:-1]), r"params.*shape"),
        ("params-long", arr("params", lambda p: np.append(p, 1.0)), r"params.*shape"),
        ("params-2d", arr("params", lambda p: p.reshape(1, -1)), r"params.*shape"),
        ("params-float32", arr("params", lambda p: p.astype(np.float32)), r"params.*dtype"),
        ("params-int", arr("params", lambda p: p.astype(np.int64)), r"params.*dtype"),
        ("params-bigendian", arr("params", lambda p: p.astype(">f8")), r"params.*dtype"),
        ("params-complex", arr("params", lambda p: p.astype(np.complex128)), r"params.*dtype"),
        ("params-nan", arr("params", lambda p: np.where(np.arange(p.size) == 3, np.nan, p)),
         r"NaN|infinite"),
        ("params-inf", arr("params", lambda p: np.full_like(p, np.inf)), r"NaN|infinite"),
        ("params-missing", drop_arr("params"), r"missing arrays"),
        ("array-extra", add_arr("surprise", np.zeros(3)), r"unexpected arrays"),
        ("array-extra-object", add_arr("extra.x", np.array([1, "a"], dtype=object)),
         r"unexpected arrays|dtype|pickle"),
        ("opt-class", lambda m, a: (dict(m, optimizer=dict(m["optimizer"], **{"class": "eval"})), a),
         r"optimizer class"),
        ("opt-momentum-mismatch", opt("momentum", 0.25), r"disagrees"),
        ("opt-hyper-mismatch", arr("optimizer.hyper", lambda h: np.where(
            np.arange(h.size) == HYPER_SLOTS["beta1"], 0.5, h)), r"disagrees"),
        ("opt-bad-momentum", lambda m, a: (opt("momentum", 2.0)(m, a)[0],
                                           dict(a, **{"optimizer.hyper": np.where(
                                               np.arange(a["optimizer.hyper"].size)
                                               == HYPER_SLOTS["momentum"], 2.0,
                                               a["optimizer.hyper"])})),
         r"optimizer settings.*momentum"),
        ("opt-nesterov-int", opt("nesterov", 0), r"nesterov"),
        ("opt-clip-string", opt("clip_norm", "1"), r"clip_norm"),
        ("opt-unknown-attr", opt("betas", [0.9, 0.99]), r"unknown keys"),
        ("opt-missing-attr", drop_opt_attr("l1"), r"missing keys"),
        ("opt-hyper-nan", arr("optimizer.hyper", lambda h: h * np.nan), r"NaN|infinite"),
        ("opt-hyper-short", arr("optimizer.hyper", lambda h: h[:-1]), r"hyper.*shape"),
        ("opt-negative-lr", arr("optimizer.hyper", lambda h: np.where(
            np.arange(h.size) == HYPER_SLOTS["lr"], -1.0, h)),
         r"optimizer settings.*lr|learning"),
        ("opt-state-shape", arr("optimizer.state", lambda s: s[:, :-1]), r"optimizer.state.*shape"),
        ("opt-state-dtype", arr("optimizer.state", lambda s: s.astype(np.float32)),
         r"optimizer.state.*dtype"),
        ("opt-step-negative", arr("optimizer.step", lambda s: s * 0 - 1), r"step"),
        ("opt-step-float", arr("optimizer.step", lambda s: s.astype(np.float64)), r"step.*dtype"),
        ("opt-missing-array", drop_arr("optimizer.hyper"), r"missing arrays"),
        ("opt-not-dict", top("optimizer", "SGD"), r"optimizer|JSON object"),
        ("rng-evil", lambda m, a: (dict(m, rng=dict(m["rng"], bit_generator="os.system")), a),
         r"bit generator"),
        ("rng-bad-state", lambda m, a: (dict(m, rng=dict(m["rng"], state="x")), a),
         r"generator state"),
        ("rng-not-dict", top("rng", 5), r"bit generator"),
        ("history-lengths", arr("history.lr", lambda h: np.append(h, 0.1)), r"history"),
        ("history-grad-norms-1d", arr("history.grad_norms", lambda h: h.reshape(-1)),
         r"grad_norms.*2-D"),
        ("history-best-epoch", lambda m, a: (dict(m, history=dict(m["history"], best_epoch="0")), a),
         r"best_epoch"),
        ("stats-missing", drop_arr("stats"), r"missing arrays"),
        ("stats-long", arr("stats", lambda x: np.zeros(4)), r"stats.*shape"),
        ("counter-negative", top("counter", -1), r"counter"),
        ("counter-float", top("counter", 1.0), r"counter"),
        ("dropout-seed-huge", top("dropout_seed", 2 ** 64), r"dropout_seed"),
        ("dropout-rate", arch("dropout", [1.5]), r"architecture|dropout"),
        ("dropout-length", arch("dropout", [0.1, 0.1]), r"dropout"),
        ("batch-norm-int", arch("batch_norm", [1]), r"batch_norm"),
        ("batch-norm-changes-layout", arch("batch_norm", [True]), r"params.*shape|stats.*shape"),
        ("bn-eps-zero", arch("bn_eps", 0.0), r"architecture|bn_eps"),
        ("history-samples", lambda m, a: (dict(m, history=dict(m["history"], samples=-1)), a),
         r"samples"),
        ("history-missing", lambda m, a: (dict(m, history=None), a), r"unexpected arrays"),
        ("extra-listed-missing", top("extra", ["ghost"]), r"missing arrays"),
        ("extra-bad-name", top("extra", ["../x"]), r"extra"),
    ]


MUTATIONS = _mutations()


@pytest.mark.parametrize("name,mutate,pattern", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_crafted_file_is_rejected(tmp_path, name, mutate, pattern):
    meta, arrays = _valid_members(tmp_path)
    out = mutate(meta, arrays)
    path = tmp_path / "crafted"
    _write(path, *out)
    with pytest.raises(FormatError, match="(?i)" + pattern) as ei:
        load(path)
    assert isinstance(ei.value, ValueError)
    assert str(tmp_path / "crafted") in str(ei.value)  # names the file


def test_unmodified_rewrite_loads(tmp_path):
    """Control for the crafted cases: re-writing the members unchanged loads fine."""
    meta, arrays = _valid_members(tmp_path)
    _write(tmp_path / "same", meta, arrays)
    assert load(tmp_path / "same").params.tobytes() == load(tmp_path / "valid").params.tobytes()


class _Evil:
    marker = None

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_pickled_member_is_never_unpickled(tmp_path):
    meta, arrays = _valid_members(tmp_path)
    marker = tmp_path / "PWNED"
    _Evil.marker = str(marker)
    obj = np.empty(1, dtype=object)
    obj[0] = _Evil()
    for target in ["meta", "params", "extra.x"]:
        a = dict(arrays)
        m = dict(meta, extra=["x"]) if target == "extra.x" else dict(meta)
        if target == "meta":
            with open(tmp_path / "evil", "wb") as fh:
                np.savez(fh, meta=obj, **a)
        else:
            a[target] = obj
            _write(tmp_path / "evil", m, a)
        with pytest.raises(FormatError):
            load(tmp_path / "evil")
        assert not marker.exists()
    # a bare pickle file
    import pickle
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(FormatError):
        load(tmp_path / "evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04" + b"\0" * 30, b"\x93NUMPY"])
def test_garbage_files(tmp_path, content):
    (tmp_path / "g").write_bytes(content)
    with pytest.raises(FormatError):
        load(tmp_path / "g")


def test_plain_npy_and_foreign_npz(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    np.savez(tmp_path / "b.npz", x=np.zeros(3))
    with pytest.raises(FormatError, match="npz|archive"):
        load(tmp_path / "a.npy")
    with pytest.raises(FormatError, match="meta"):
        load(tmp_path / "b.npz")


def test_compressed_members_rejected(tmp_path):
    meta, arrays = _valid_members(tmp_path)
    with open(tmp_path / "c", "wb") as fh:
        np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    with pytest.raises(FormatError, match="compress"):
        load(tmp_path / "c")


def test_huge_declared_array_is_rejected_before_allocation(tmp_path):
    """A header promising 8 TB of params is rejected from the sizes, not by allocating."""
    meta, arrays = _valid_members(tmp_path, fastbp.MLP([4, 3], seed=0))
    n = 10 ** 12
    meta["architecture"].update(sizes=[n - 1, 1], activations=["identity"])  # n params
    header = _pyio.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (n,)})
    with zipfile.ZipFile(tmp_path / "huge", "w") as zf:
        zf.writestr("meta.npy", _npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
        zf.writestr("params.npy", header.getvalue() + b"\0" * 64)
        zf.writestr("stats.npy", _npy_bytes(np.zeros(0)))
    with pytest.raises(FormatError, match="params.*declares shape"):
        load(tmp_path / "huge")


def _npy_bytes(arr):
    buf = _pyio.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def test_every_truncation_is_rejected(tmp_path):
    meta, arrays = _valid_members(tmp_path, fastbp.MLP([2, 2], seed=0))
    data = (tmp_path / "valid").read_bytes()
    bad = tmp_path / "t"
    for cut in range(0, len(data), max(1, len(data) // 300)):
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError):
            load(bad)


# ---------------------------------------------------------------- loader fuzz
try:  # the fuzz needs hypothesis (a test extra); everything above runs without it
    from hypothesis import event, given, settings, strategies as st
except ImportError:  # pragma: no cover
    given = None

_FUZZ_NET = fastbp.MLP([3, 4, 2], activation="tanh", seed=5)
_FUZZ_NET.fit(np.ones((6, 3)), np.zeros((6, 2)), epochs=1, batch_size=4,
              optimizer=fastbp.Adam(0.01))
with tempfile.TemporaryDirectory() as _d:
    save(_FUZZ_NET, os.path.join(_d, "f"))
    _FUZZ_BYTES = pathlib.Path(_d, "f").read_bytes()

def _apply(data, mutations):
    b = bytearray(data)
    for kind, pos, arg in mutations:
        pos = min(pos, len(b))
        if kind == "flip" and pos < len(b):
            b[pos] ^= arg
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = arg
        elif kind == "delete":
            del b[pos:pos + arg]
    return bytes(b)


def _check_fuzzed(data):
    """Damaged files raise FormatError and nothing else.

    Every array and the metadata are zip members protected by CRC-32 (which
    catches every change of up to 32 consecutive bits) and by the size checks,
    so a damaged file either fails or the damage hit bytes that carry no
    content (timestamps, attribute bits, ...).  In the latter case the network
    loaded must be *identical* to the saved one.
    """
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f")
        with open(p, "wb") as fh:
            fh.write(data)
        try:
            net = load(p)
        except FormatError:
            return "FormatError"
    assert net.sizes == _FUZZ_NET.sizes and net.activations == _FUZZ_NET.activations
    assert net.loss == _FUZZ_NET.loss and net.dtype == _FUZZ_NET.dtype
    assert np.all(np.isfinite(net.params))
    assert net.params.tobytes() == _FUZZ_NET.params.tobytes()
    assert net.rng.bit_generator.state == _FUZZ_NET.rng.bit_generator.state
    _assert_same_optimizer(net.optimizer, _FUZZ_NET.optimizer)
    _assert_same_history(net.history_, _FUZZ_NET.history_)
    return "loaded unchanged content"


if given is None:  # pragma: no cover
    def test_fuzzed_files_raise_format_error_or_load_identically():
        pytest.skip("hypothesis is not installed")
else:
    _mutation = st.one_of(
        st.tuples(st.just("flip"), st.integers(0, len(_FUZZ_BYTES) - 1), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.integers(0, len(_FUZZ_BYTES) - 1), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, len(_FUZZ_BYTES)),
                  st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), st.integers(0, len(_FUZZ_BYTES) - 1), st.integers(1, 8)),
    )

    @settings(max_examples=200, deadline=None)
    @given(st.lists(_mutation, min_size=1, max_size=3))
    def test_fuzzed_files_raise_format_error_or_load_identically(mutations):
        event(_check_fuzzed(_apply(_FUZZ_BYTES, mutations)))


def test_systematic_byte_flips():
    """Systematic companion of the fuzz: flip every 5th byte of the file (rotating masks)."""
    outcomes = {_check_fuzzed(_apply(_FUZZ_BYTES, [("flip", i, 1 << (i % 8))]))
                for i in range(0, len(_FUZZ_BYTES), 5)}
    assert "FormatError" in outcomes
