"""fastbp.jit: the njit-callable API, exercised from the *user's own* ``@njit`` code.

Every call below goes through functions of a small "user" module that this file
writes to a temporary folder and imports with importlib, exactly as a
simulation written in Numba would call fastbp: ``@njit(cache=True)`` functions
(one ``@njit(parallel=True, cache=True)``) that take a :class:`fastbp.jit.NetState`
handed out by ``net.state(...)``.

What is checked
---------------
* Equality with the Python API -- predict == net.predict, predict_one ==
  net.predict(x[None])[0], loss == net.evaluate, gradient == net.gradient,
  train_step / train_step_one == net.train_step on a copy (with an Optimizer
  instance so momentum / Adam state carries over) -- for SGD, SGD with weight
  decay, momentum, Nesterov, Adam and AdamW; float32 and float64; 2-D float
  targets (MSE, binary cross-entropy), integer labels (cross-entropy) and 1-D
  float targets (single-output MSE).
* Shared memory: what the user's loop trains is what net.predict sees, and
  what ``net.save`` / ``fastbp.io.load`` round-trip (optimizer state included).
* ``parallel=True``: several independent states trained in a ``prange`` loop
  equal the same states trained one after the other.  Numba cannot pass a
  *tuple* of NetStates (a tuple of tuples of arrays) into a parfor body
  ("scalar type NetState given for non scalar argument"), a Numba limitation,
  not fastbp's; the supported pattern, tested here, is a ``numba.typed.List``
  of states (which shares memory with the nets just the same).
* Caching: the user's ``cache=True`` functions, in a module in a temporary
  folder and run twice in fresh subprocesses, compile in the first run (the
  cache is written to ``<tmp>/__pycache__``) and load from the cache in the
  second, with identical results.
* Allocation-free: in a subprocess with ``NUMBA_NRT_STATS=1``, a user loop of
  1000 iterations of every fastbp.jit function makes exactly as many NRT
  allocations as a loop of 10 (the constant part is the Python -> njit call
  boxing its array arguments), for SGD, momentum and Adam states.
* Misuse from njit code (wrong widths, row counts, label ranges, batch above the
  state's capacity, 1-D integer or float targets for a multi-output MSE
  network, wrong ``out`` shapes) raises ``ValueError("fastbp.jit:
  ...")`` and leaves params, optimizer state and step count untouched; the
  state keeps working afterwards.
* Wrong dtype (float32 X into a float64 state) is a Numba ``TypingError`` when
  the user's function compiles -- nothing runs, so nothing is computed wrongly.
  The one-sample functions copy ``x`` into the state's own buffer and so
  accept other float dtypes (converted); float32 targets into a float64 state
  are read exactly.

Also pinned: a dtype mismatch fails at compile time with a readable
"fastbp.jit: ..." message; integer targets of a non-cross-entropy network are
values, as in the Python API; a step rejected for a non-finite loss leaves
batch-norm running statistics untouched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

import fastbp
from fastbp.optim import make_optimizer

numba = pytest.importorskip("numba")
from numba.core.errors import TypingError  # noqa: E402

import fastbp.jit as _fj  # noqa: E402

PREDICT, PREDICT_ONE, LOSS, GRADIENT, TRAIN_STEP, TRAIN_STEP_ONE = range(6)

USER_SRC = '''
"""A user's module: their own @njit code calling fastbp.jit."""
import numpy as np
from numba import njit, prange

import fastbp.jit as fj


@njit(cache=True)
def call(state, which, X, y, out, x1, y1, out1, n):
    """Call the fastbp.jit function selected by ``which`` (train steps ``n`` times)."""
    r = 0.0
    if which == 0:
        fj.predict(state, X, out)
    elif which == 1:
        fj.predict_one(state, x1, out1)
    elif which == 2:
        r = fj.loss(state, X, y)
    elif which == 3:
        r = fj.gradient(state, X, y)
    elif which == 4:
        for _ in range(n):
            r = fj.train_step(state, X, y)
    elif which == 5:
        for _ in range(n):
            r = fj.train_step_one(state, x1, y1)
    return r


@njit(cache=True)
def loop(state, X, y, x1, y1, out, out1, n):
    """Every fastbp.jit function, ``n`` times each (the allocation check)."""
    r = 0.0
    for _ in range(n):
        r += fj.train_step(state, X, y)
        r += fj.train_step_one(state, x1, y1)
        fj.predict_one(state, x1, out1)
        fj.predict(state, X, out)
        r += fj.loss(state, X, y)
        r += fj.gradient(state, X, y)
    return r


@njit(cache=True)
def wrong_dtype(state, X, y, out):
    fj.predict(state, X, out)
    return fj.train_step(state, X, y)


@njit(cache=True)
def one_sample(state, x, y, out):
    fj.predict_one(state, x, out)
    return fj.train_step_one(state, x, y)


@njit(cache=True)
def loss_only(state, X, y):
    return fj.loss(state, X, y)


@njit(parallel=True, cache=True)
def train_parallel(states, Xs, ys, epochs, bs):
    """Network i trains on (Xs[i], ys[i]); states is a numba.typed.List of NetStates."""
    k = Xs.shape[0]
    n = Xs.shape[1]
    for i in prange(k):
        st = states[np.int64(i)]
        for _ in range(epochs):
            for s in range(0, n, bs):
                fj.train_step(st, Xs[i, s:s + bs], ys[i, s:s + bs])
'''


def _import_file(path, name):
    """Import ``path`` as module ``name``, registered in sys.modules (Numba's cache records
    the module's name; an unregistered module is cached as '<dynamic>')."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """The user's module, written to a temporary folder and imported from there."""
    d = tmp_path_factory.mktemp("user_code")
    path = d / "fastbp_user_code.py"
    path.write_text(USER_SRC)
    return _import_file(path, f"fastbp_user_code_{uuid.uuid4().hex}")


# ---------------------------------------------------------------- problems
N_ROWS = 10  # rows per batch
CAP = 16     # the state's batch capacity

KINDS = {
    # name: (sizes, loss, target kind, other MLP settings)
    "mse2d": ([3, 8, 5, 2], "mse", "float2d", {}),
    "bce2d": ([3, 8, 5, 3], "binary_cross_entropy", "float2d", {}),
    "ce_labels": ([3, 8, 5, 4], "cross_entropy", "labels", {}),
    "mse1d": ([3, 8, 5, 1], "mse", "float1d", {}),
    # training mode as in fit: dropout masks from the shared step counter, batch statistics
    "dropout_bn": ([3, 8, 5, 2], "mse", "float2d", dict(dropout=0.25, batch_norm=[True, False])),
}

OPTIMIZERS = {
    "sgd": ("sgd", dict(lr=0.05)),
    "sgd_wd": ("sgd", dict(lr=0.05, weight_decay=0.01)),
    "momentum": ("sgd", dict(lr=0.05, momentum=0.9)),
    "nesterov": ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "adam": ("adam", dict(lr=0.01)),
    "adamw": ("adamw", dict(lr=0.01, weight_decay=0.05)),
}


def make_net(kind, dtype, seed=0):
    sizes, loss, _, kw = KINDS[kind]
    return fastbp.MLP(sizes, activation=("tanh", "relu"), loss=loss, dtype=dtype, seed=seed, **kw)


def make_data(kind, dtype, n=N_ROWS, seed=1):
    """X (n, n_in), y in the kind's target form, y1: one sample's float targets (n_out,)."""
    sizes = KINDS[kind][0]
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, sizes[0])).astype(dtype)
    m = sizes[-1]
    if kind in ("mse2d", "dropout_bn"):
        y = r.standard_normal((n, m)).astype(dtype)
        y1 = y[0].copy()
    elif kind == "bce2d":
        y = r.random((n, m)).astype(dtype)
        y1 = y[0].copy()
    elif kind == "ce_labels":
        y = r.integers(0, m, n).astype(np.int64)
        y1 = np.eye(m, dtype=dtype)[y[0]]
    else:
        y = r.standard_normal(n).astype(dtype)
        y1 = y[:1].copy()
    return X, y, y1


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if np.dtype(dtype) == np.float32 else \
        dict(rtol=1e-11, atol=1e-13)


def call(user, state, which, X, y, out=None, x1=None, y1=None, out1=None, n=1):
    """user.call with placeholder arrays of the state's types (one signature per y type)."""
    dt = state.model.params.dtype
    n_in = state.model.layout[0, 0]
    m = state.model.layout[-1, 1]
    out = np.zeros((X.shape[0], m), dt) if out is None else out
    x1 = np.zeros(n_in, dt) if x1 is None else x1
    y1 = np.zeros(m, dt) if y1 is None else y1
    out1 = np.zeros(m, dt) if out1 is None else out1
    r = user.call(state, which, X, y, out, x1, y1, out1, n)
    return r, out, out1


def snapshot(state):
    return (state.model.params.copy(), state.model.stats.copy(), int(state.model.counter[0]),
            state.opt_state.copy(), int(state.step[0]))


def assert_unchanged(state, snap):
    np.testing.assert_array_equal(state.model.params, snap[0])
    np.testing.assert_array_equal(state.model.stats, snap[1])
    assert int(state.model.counter[0]) == snap[2]
    np.testing.assert_array_equal(state.opt_state, snap[3])
    assert int(state.step[0]) == snap[4]


# ---------------------------------------------------------- API equality
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_python_api(user, dtype, kind, opt):
    name, kw = OPTIMIZERS[opt]
    net = make_net(kind, dtype)
    ref = net.copy()
    X, y, y1 = make_data(kind, dtype)
    st = net.state(batch_size=CAP, optimizer=name, **kw)
    assert st.model.params is net.params
    t = tol(dtype)

    _, out, _ = call(user, st, PREDICT, X, y)
    assert out.dtype == net.dtype
    np.testing.assert_allclose(out, ref.predict(X), **t)

    _, _, out1 = call(user, st, PREDICT_ONE, X, y, x1=X[3].copy())
    np.testing.assert_allclose(out1, ref.predict(X[3:4])[0], **t)

    r, _, _ = call(user, st, LOSS, X, y)
    np.testing.assert_allclose(r, ref.evaluate(X, y), **t)

    r, _, _ = call(user, st, GRADIENT, X, y)
    l_ref, g_ref = ref.gradient(X, y)
    np.testing.assert_allclose(r, l_ref, **t)
    np.testing.assert_allclose(st.work.grad, g_ref, **t)
    assert int(st.step[0]) == 0  # gradient does not step

    ref_opt = make_optimizer(name, **kw)
    r, _, _ = call(user, st, TRAIN_STEP, X, y, n=3)
    losses = [ref.train_step(X, y, optimizer=ref_opt) for _ in range(3)]
    np.testing.assert_allclose(r, losses[-1], **t)
    np.testing.assert_allclose(net.params, ref.params, **t)
    np.testing.assert_allclose(st.opt_state, ref_opt.state, **t)
    assert int(st.step[0]) == int(ref_opt.step[0]) == 3

    r, _, _ = call(user, st, TRAIN_STEP_ONE, X, y, x1=X[5].copy(), y1=y1, n=2)
    losses = [ref.train_step(X[5:6], y1[None], optimizer=ref_opt) for _ in range(2)]
    np.testing.assert_allclose(r, losses[-1], **t)
    np.testing.assert_allclose(net.params, ref.params, **t)
    np.testing.assert_allclose(st.opt_state, ref_opt.state, **t)
    assert int(st.step[0]) == 5
    assert not np.array_equal(net.params, make_net(kind, dtype).params)  # it did train


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batches_larger_than_capacity_for_predict_and_loss(user, dtype):
    """predict and loss walk batches above the state's capacity in chunks of ``cap`` rows."""
    net = make_net("ce_labels", dtype)
    X, y, _ = make_data("ce_labels", dtype, n=3 * CAP + 5)
    st = net.state(batch_size=CAP)
    _, out, _ = call(user, st, PREDICT, X, y)
    np.testing.assert_allclose(out, net.predict(X), **tol(dtype))
    r, _, _ = call(user, st, LOSS, X, y)
    np.testing.assert_allclose(r, net.evaluate(X, y), **tol(dtype))


# ---------------------------------------------------------- shared memory
def test_training_in_njit_is_seen_by_the_python_network(user, tmp_path):
    net = fastbp.MLP([3, 8, 2], activation="tanh", seed=4)
    X, y, _ = make_data("mse2d", "float64")
    st = net.state(batch_size=CAP, optimizer="adam", lr=0.01)
    before = net.predict(X)
    loss0 = net.evaluate(X, y)
    call(user, st, TRAIN_STEP, X, y, n=50)
    after = net.predict(X)
    assert not np.allclose(before, after)
    assert net.evaluate(X, y) < 0.8 * loss0
    _, out, _ = call(user, st, PREDICT, X, y)
    np.testing.assert_array_equal(out, after)
    assert net.optimizer.step[0] == 50 and st.opt_state is net.optimizer.state

    # and the other way: Python-side changes are seen by the njit code
    net.params = net.params * 0.5
    _, out, _ = call(user, st, PREDICT, X, y)
    np.testing.assert_array_equal(out, net.predict(X))

    if not os.path.exists(os.path.join(os.path.dirname(fastbp.__file__), "io.py")):
        pytest.skip("fastbp.io is not there yet")
    from fastbp import io
    path = tmp_path / "trained.npz"
    net.save(path)
    back = io.load(path)
    np.testing.assert_array_equal(back.params, net.params)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert back.optimizer is not None
    np.testing.assert_array_equal(back.optimizer.state, net.optimizer.state)
    assert int(back.optimizer.step[0]) == 50


# ------------------------------------------------------------ parallel=True
def test_parallel_user_function_matches_serial_training(user):
    from numba.typed import List
    k, n, bs = 5, 40, 8
    nets = [fastbp.MLP([2, 8, 1], activation="tanh", seed=10 + i) for i in range(k)]
    refs = [net.copy() for net in nets]
    r = np.random.default_rng(2)
    Xs = r.standard_normal((k, n, 2))
    ys = np.sin(Xs.sum(axis=2, keepdims=True))
    kw = [dict(optimizer="sgd", lr=0.05, momentum=0.9), dict(optimizer="adam", lr=0.01)]
    states = List([net.state(batch_size=bs, **kw[i % 2]) for i, net in enumerate(nets)])
    user.train_parallel(states, Xs, ys, 3, bs)
    for i, ref in enumerate(refs):  # the same, one network after the other
        st = ref.state(batch_size=bs, **kw[i % 2])
        for _ in range(3):
            for s in range(0, n, bs):
                call(user, st, TRAIN_STEP, Xs[i, s:s + bs], ys[i, s:s + bs])
    for net, ref in zip(nets, refs):
        assert int(net.optimizer.step[0]) == 3 * n // bs
        np.testing.assert_array_equal(net.params, ref.params)
    assert not np.array_equal(nets[0].params, fastbp.MLP([2, 8, 1], activation="tanh",
                                                          seed=10).params)


# ------------------------------------------- caching and allocations (subprocess)
SUB_SRC = r'''
import importlib.util, json, sys
import numpy as np
from numba.core.runtime import rtsys
import fastbp

spec = importlib.util.spec_from_file_location("fastbp_user_code", sys.argv[1])
user = importlib.util.module_from_spec(spec)
sys.modules["fastbp_user_code"] = user
spec.loader.exec_module(user)

r = np.random.default_rng(0)
X = r.standard_normal((12, 3))
y = r.standard_normal((12, 2))
x1, y1 = X[0].copy(), y[0].copy()
res = {"alloc": {}, "free_eq_alloc": True}
for name, kw in [("sgd", dict(optimizer="sgd", lr=0.01)),
                 ("momentum", dict(optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True)),
                 ("adam", dict(optimizer="adam", lr=0.001))]:
    net = fastbp.MLP([3, 16, 2], activation="tanh", seed=1)
    st = net.state(batch_size=16, **kw)
    out, out1 = np.zeros((12, 2)), np.zeros(2)
    user.loop(st, X, y, x1, y1, out, out1, 1)           # warm
    deltas = []
    for n in (10, 1000):
        s0 = rtsys.get_allocation_stats()
        user.loop(st, X, y, x1, y1, out, out1, n)
        s1 = rtsys.get_allocation_stats()
        deltas.append([s1.alloc - s0.alloc, s1.mi_alloc - s0.mi_alloc])
        res["free_eq_alloc"] &= (s1.alloc - s0.alloc) == (s1.free - s0.free)
    res["alloc"][name] = deltas
    res.setdefault("params", {})[name] = net.params.tolist()
    res.setdefault("out", {})[name] = out.tolist()
res["hits"] = sum(user.loop.stats.cache_hits.values())
res["misses"] = sum(user.loop.stats.cache_misses.values())
res["cache_path"] = user.loop.stats.cache_path
print("RESULT" + json.dumps(res))
'''


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same script run twice in fresh interpreters, with NRT statistics on.

    The user's module lives in a temporary folder, so Numba writes its cache next
    to it (``<tmp>/__pycache__``), or under ``NUMBA_CACHE_DIR`` when the tests run
    with one (CI): that is kept, so fastbp's own kernels load from the cache this
    session filled instead of being compiled again (~60 s), which would test
    nothing more about the user's function.
    """
    d = tmp_path_factory.mktemp("cached_user")
    (d / "fastbp_user_code.py").write_text(USER_SRC)
    (d / "script.py").write_text(SUB_SRC)
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, str(d / "script.py"), str(d / "fastbp_user_code.py")],
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")][-1]
        runs.append(json.loads(line[len("RESULT"):]))
    runs.append(os.environ.get("NUMBA_CACHE_DIR") or str(d))
    return runs


def test_user_cache_true_function_is_cached(two_runs):
    first, second, folder = two_runs
    assert first["misses"] >= 1 and first["hits"] == 0
    assert second["hits"] >= 1 and second["misses"] == 0
    assert os.path.realpath(first["cache_path"]).startswith(os.path.realpath(folder))
    assert any(f.endswith(".nbi") for f in os.listdir(first["cache_path"]))
    assert first["params"] == second["params"] and first["out"] == second["out"]


def test_njit_calls_do_not_allocate(two_runs):
    """1000 iterations allocate exactly what 10 do: the per-call cost is zero."""
    for run in two_runs[:2]:
        for name, (small, large) in run["alloc"].items():
            assert small == large, (name, small, large)
        assert run["free_eq_alloc"]


# ---------------------------------------------------------------- misuse
def _misuse_cases(dtype):
    """(name, kind, which, call kwargs, message fragment)."""
    X, y, y1 = make_data("mse2d", dtype)
    Xl, yl, _ = make_data("ce_labels", dtype)
    X4 = np.zeros((N_ROWS, 4), dtype)
    big = np.zeros((CAP + 1, 3), dtype)
    cases = []
    for w in (PREDICT, LOSS, GRADIENT, TRAIN_STEP):
        cases.append(("wrong n_in", "mse2d", w, dict(X=X4, y=y), "n_in columns"))
        cases.append(("no rows", "mse2d", w, dict(X=X[:0], y=y[:0]), "no rows"))
    for w in (PREDICT_ONE, TRAIN_STEP_ONE):
        cases.append(("wrong x width", "mse2d", w, dict(X=X, y=y, x1=np.zeros(4, dtype),
                                                         y1=y1), "n_in entries"))
    cases.append(("wrong y width (one)", "mse2d", TRAIN_STEP_ONE,
                  dict(X=X, y=y, x1=X[0].copy(), y1=np.zeros(3, dtype)), "n_out entries"))
    cases.append(("predict out shape", "mse2d", PREDICT,
                  dict(X=X, y=y, out=np.zeros((N_ROWS, 3), dtype)), "out must have shape"))
    cases.append(("predict out rows", "mse2d", PREDICT,
                  dict(X=X, y=y, out=np.zeros((N_ROWS - 1, 2), dtype)), "out must have shape"))
    cases.append(("predict_one out", "mse2d", PREDICT_ONE,
                  dict(X=X, y=y, x1=X[0].copy(), out1=np.zeros(3, dtype)), "n_out entries"))
    for w in (LOSS, GRADIENT, TRAIN_STEP):
        cases += [
            ("wrong y columns", "mse2d", w, dict(X=X, y=np.zeros((N_ROWS, 3), dtype)), "y must be"),
            ("row mismatch", "mse2d", w, dict(X=X, y=y[:-1]), "different numbers of rows"),
            ("label too large", "ce_labels", w,
             dict(X=Xl, y=np.where(np.arange(N_ROWS) == 7, 4, yl)), "integer labels in [0, n_out)"),
            ("negative label", "ce_labels", w,
             dict(X=Xl, y=np.where(np.arange(N_ROWS) == 0, -1, yl)), "integer labels"),
            ("1-D int targets, 2-output MSE net", "mse2d", w, dict(X=X, y=yl % 2), "y must be"),
            ("1-D floats, 2 outputs", "mse2d", w, dict(X=X, y=y[:, 0].copy()),
             "(n,) floats for one output"),
        ]
    for w in (GRADIENT, TRAIN_STEP):
        cases.append(("batch above capacity", "mse2d", w,
                      dict(X=big, y=np.zeros((CAP + 1, 2), dtype)), "capacity"))
    return cases


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_misuse_raises_readable_error_and_changes_nothing(user, dtype):
    names = ["predict", "predict_one", "loss", "gradient", "train_step", "train_step_one"]
    for case, kind, which, kw, fragment in _misuse_cases(dtype):
        net = make_net(kind, dtype)
        st = net.state(batch_size=CAP, optimizer="adam", lr=0.01)
        X, y, y1 = make_data(kind, dtype)
        call(user, st, TRAIN_STEP, X, y)  # some optimizer state to protect
        snap = snapshot(st)
        with pytest.raises(ValueError, match="^fastbp.jit: ") as exc:
            call(user, st, which, **kw)
        assert fragment in str(exc.value), (case, names[which], str(exc.value))
        assert_unchanged(st, snap)
        # the state still works and still matches the Python API afterwards
        ref = net.copy()
        ref_opt = make_optimizer("adam", lr=0.01)
        ref_opt.bind(net.n_params, net.dtype)
        ref_opt.state[:] = st.opt_state
        ref_opt.step[:] = st.step
        r, _, _ = call(user, st, TRAIN_STEP, X, y)
        np.testing.assert_allclose(r, ref.train_step(X, y, optimizer=ref_opt), **tol(dtype))
        np.testing.assert_allclose(net.params, ref.params, **tol(dtype))


@pytest.fixture(scope="module")
def wrong_dtype_attempt(user):
    """Call the user's function with float32 X into a float64 state (one compile attempt)."""
    net = fastbp.MLP([3, 8, 2], activation="tanh", seed=0)
    st = net.state(batch_size=CAP)
    X, y, _ = make_data("mse2d", "float32")
    snap = snapshot(st)
    try:
        user.wrong_dtype(st, X, y, np.zeros((N_ROWS, 2)))
    except Exception as exc:  # noqa: BLE001 - inspected by the tests
        err = exc
    else:
        err = None
    return net, st, snap, err


def test_wrong_dtype_is_a_typing_error_at_compile_time(user, wrong_dtype_attempt):
    """float32 X into a float64 state: the user's function does not compile, nothing runs.

    (The state's arrays are typed, and fastbp's kernels need X and the params to
    share a dtype.)  Documented, expected behaviour.
    """
    net, st, snap, err = wrong_dtype_attempt
    assert isinstance(err, TypingError), repr(err)
    assert_unchanged(st, snap)
    # the float64 versions are fine
    X, y, _ = make_data("mse2d", "float64")
    ref = net.copy()
    r = user.wrong_dtype(st, X, y, np.zeros((N_ROWS, 2)))
    np.testing.assert_allclose(r, ref.train_step(X, y), rtol=1e-12)


def test_wrong_dtype_error_is_readable(wrong_dtype_attempt):
    err = wrong_dtype_attempt[3]
    assert isinstance(err, TypingError)
    msg = str(err)
    assert "fastbp.jit" in msg and "dtype" in msg and "_xgemm" not in msg


def test_other_float_dtypes_where_they_are_converted(user):
    """One-sample functions copy x / y into the state's buffers (a conversion), and
    float32 targets into a float64 state are read exactly: both give the Python
    API's results for the converted values, not garbage."""
    net = fastbp.MLP([3, 8, 2], activation="tanh", seed=0)
    ref = net.copy()
    st = net.state(batch_size=CAP)
    X, y, _ = make_data("mse2d", "float32")
    out = np.zeros(2)
    r = user.one_sample(st, X[0].copy(), y[0].copy(), out)
    np.testing.assert_allclose(out, ref.predict(X[:1].astype(np.float64))[0], rtol=1e-12)
    np.testing.assert_allclose(r, ref.train_step(X[:1].astype(np.float64),
                                                 y[:1].astype(np.float64)), rtol=1e-12)
    np.testing.assert_allclose(net.params, ref.params, rtol=1e-12)
    r = user.loss_only(st, X.astype(np.float64), y)
    np.testing.assert_allclose(r, net.evaluate(X.astype(np.float64), y.astype(np.float64)),
                               rtol=1e-12)


def test_bce_integer_targets_match_python_api(user):
    net = fastbp.MLP([3, 8, 1], activation="tanh", loss="binary_cross_entropy", seed=0)
    X, _, _ = make_data("mse1d", "float64")
    st = net.state(batch_size=CAP)
    for labels in (np.zeros(N_ROWS, np.int64), np.arange(N_ROWS, dtype=np.int64) % 2):
        r, _, _ = call(user, st, LOSS, X, labels)
        np.testing.assert_allclose(r, net.evaluate(X, labels), rtol=1e-12)


def test_rejected_step_changes_nothing_with_batch_norm(user):
    net = fastbp.MLP([3, 8, 2], activation="tanh", batch_norm=True, seed=0)
    X, y, _ = make_data("mse2d", "float64")
    st = net.state(batch_size=CAP)
    before = net.predict(X)
    snap = snapshot(st)
    bad = X.copy()
    bad[0, 0] = np.nan  # e.g. a simulation that blew up; fastbp.jit does not scan X
    r, _, _ = call(user, st, TRAIN_STEP, bad, y)
    assert not np.isfinite(r)
    np.testing.assert_array_equal(st.model.params, snap[0])  # holds today
    assert_unchanged(st, snap)  # fails: running statistics moved (to NaN)
    np.testing.assert_array_equal(net.predict(X), before)


def test_integer_targets_of_a_single_output_mse_net_are_values(user):
    """As in the Python API (check_y): (n,) integers for one output are target values."""
    net = make_net("mse1d", "float64")
    ref = net.copy()
    X, _, _ = make_data("mse1d", "float64")
    y = np.arange(N_ROWS, dtype=np.int64) % 3 - 1
    st = net.state(batch_size=CAP)
    r, _, _ = call(user, st, LOSS, X, y)
    np.testing.assert_allclose(r, ref.evaluate(X, y), rtol=1e-12)
    r, _, _ = call(user, st, TRAIN_STEP, X, y, n=2)
    losses = [ref.train_step(X, y) for _ in range(2)]
    np.testing.assert_allclose(r, losses[-1], rtol=1e-12)
    np.testing.assert_allclose(net.params, ref.params, rtol=1e-12, atol=1e-15)


def _y_is_float_vector(sig):
    """True when a kernel signature's targets (argument 4) are a 1-D float array."""
    from numba import types
    y = sig[4]
    return isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, types.Float)


def test_one_dimensional_float_targets_share_the_two_dimensional_kernels():
    """(n,) float targets of a one-output network go to the training kernels as an
    (n, 1) view: no kernel is compiled for 1-D float targets, the results are
    bit-identical to (n, 1) targets, and a non-contiguous (n,) slice still works."""
    import fastbp.jit as fj
    from fastbp._kernels import input_grad, train
    kernels = (train.train_batch, train.loss_grad, train.loss_sum, input_grad.input_grad)
    net = make_net("mse1d", "float64")
    X, y, _ = make_data("mse1d", "float64")
    fresh = net.copy()
    a, b = net.state(batch_size=CAP), net.copy().state(batch_size=CAP)
    y2 = y.reshape(-1, 1).copy()
    g = np.zeros_like(X)
    results2 = [fj.loss(a, X, y2), fj.gradient(a, X, y2), a.work.grad.copy(),
                fj.train_step(a, X, y2), fj.input_gradient(a, X, y2, g), g.copy()]
    results1 = [fj.loss(b, X, y), fj.gradient(b, X, y), b.work.grad.copy(),
                fj.train_step(b, X, y), fj.input_gradient(b, X, y, g), g.copy()]
    # (kernels loaded from the on-disk cache inside an entry point are not listed:
    # in a process that compiles them, every listed signature has 2-D targets)
    assert not any(_y_is_float_vector(s) for k in kernels for s in k.signatures)
    for r1, r2 in zip(results1, results2):
        np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(a.model.params, b.model.params)
    strided = np.repeat(y, 2)[::2]  # (n,) float, not contiguous
    assert not strided.flags.c_contiguous
    c = fresh.state(batch_size=CAP)
    np.testing.assert_array_equal(fj.train_step(c, X, strided), results1[3])
    np.testing.assert_array_equal(c.model.params, b.model.params)


@numba.njit(cache=False)
def _as_targets(y):
    return _fj._targets(y)


def test_targets_view_of_one_dimensional_float_targets():
    """``_targets``: contiguous (n,) float -> an (n, 1) view of the same memory;
    labels, 2-D targets and strided vectors pass through unchanged."""
    y = np.arange(5.0)
    v = _as_targets(y)
    assert v.shape == (5, 1) and np.shares_memory(v, y)
    np.testing.assert_array_equal(v[:, 0], y)
    for same in (np.arange(5), np.ones((5, 2)), np.arange(10.0)[::2]):
        out = _as_targets(same)
        assert out.shape == same.shape and np.shares_memory(out, same)
