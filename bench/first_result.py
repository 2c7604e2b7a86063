"""Time to first result: a newcomer's whole script, each run a fresh process.

    python bench/first_result.py                  # the table, 3 repeats
    python bench/first_result.py --repeats 1 --peers fastbp
    python bench/first_result.py --profile        # per-function compile time, cold run
    python bench/first_result.py --second         # a second architecture in the same process

The script every peer runs: load scikit-learn's digits (scaled to [0, 1],
float32), train a 64-128-10 ReLU network with a softmax / cross-entropy
output for 20 epochs of batch-32 SGD (lr 0.1, shuffled), predict the
training set.  The time is the *whole process* (interpreter start, imports,
JIT compilation, training, prediction), measured from outside.

* fastbp first run, kernels from the wheel: a fresh, empty ``NUMBA_CACHE_DIR``
  after ``pip install .``, whose wheel build compiled the kernels
  (``tools/build_backend.py``).  The script runs that same build step into a
  temporary folder first (timed: it is what ``pip install`` adds) and points
  ``FASTBP_PRECOMPILED_DIR`` there; ``--shipped DIR`` reuses a folder instead.
* fastbp first run, nothing precompiled: the same with no shipped kernels
  (an editable install, ``FASTBP_PRECOMPILE=0``, another CPU or Numba): the
  kernels compile in the run.
* fastbp warm: a fresh process using the cache the compiling run left.
* PyTorch eager, JAX (one epoch = one ``jax.jit`` of a ``lax.scan`` over
  batches), scikit-learn ``MLPClassifier(solver="sgd")``: skipped with a
  note when not installed.

Functions are named ``run_*`` / ``measure_*`` so that asv does not collect
them: compile time is exactly what asv's ``setup`` hides.
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_DATA = """
import numpy as np
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
"""

_FASTBP = """
import time, json
_t0 = time.perf_counter()
import fastbp
_t1 = time.perf_counter()
""" + _DATA + """
net = fastbp.MLP([64, 128, 10], activation="relu", loss="cross_entropy", dtype="float32", seed=0)
_t2 = time.perf_counter()
net.fit(X, y, epochs=20, batch_size=32, lr=0.1)
_t3 = time.perf_counter()
acc = float((net.predict(X).argmax(1) == y).mean())
_t4 = time.perf_counter()
print("RESULT", json.dumps({"import": _t1 - _t0, "fit": _t3 - _t2, "predict": _t4 - _t3,
                            "acc": acc}))
"""

_TORCH = _DATA + """
import json
import torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
g = torch.Generator().manual_seed(0)
for epoch in range(20):
    perm = torch.randperm(len(Xt), generator=g)
    for s in range(0, len(Xt), 32):
        idx = perm[s:s + 32]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(Xt[idx]), yt[idx])
        loss.backward()
        opt.step()
with torch.no_grad():
    acc = float((net(Xt).argmax(1) == yt).float().mean())
print("RESULT", json.dumps({"acc": acc}))
"""

_JAX = _DATA + """
import json
import jax, jax.numpy as jnp
def init(key):
    k1, k2 = jax.random.split(key)
    return [(jax.random.normal(k1, (64, 128)) * (2 / 64) ** 0.5, jnp.zeros(128)),
            (jax.random.normal(k2, (128, 10)) * (2 / 128) ** 0.5, jnp.zeros(10))]
def logits(p, x):
    (W1, b1), (W2, b2) = p
    return jax.nn.relu(x @ W1 + b1) @ W2 + b2
def loss(p, x, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits(p, x)), y[:, None], 1))
nb = len(X) // 32
@jax.jit
def epoch(p, key):
    perm = jax.random.permutation(key, len(X))[:nb * 32].reshape(nb, 32)
    def step(p, idx):
        g = jax.grad(loss)(p, Xj[idx], yj[idx])
        return jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g), None
    return jax.lax.scan(step, p, perm)[0]
Xj, yj = jnp.asarray(X), jnp.asarray(y, dtype=jnp.int32)
key = jax.random.PRNGKey(0)
p = init(key)
for e in range(20):
    p = epoch(p, jax.random.fold_in(key, e))
acc = float((logits(p, Xj).argmax(1) == yj).mean())
print("RESULT", json.dumps({"acc": acc}))
"""

_SKLEARN = _DATA + """
import json, warnings
from sklearn.neural_network import MLPClassifier
clf = MLPClassifier((128,), solver="sgd", learning_rate_init=0.1, batch_size=32, max_iter=20,
                    momentum=0.0, alpha=0.0, random_state=0, n_iter_no_change=1000)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf.fit(X, y)
acc = float((clf.predict(X) == y).mean())
print("RESULT", json.dumps({"acc": acc}))
"""

#: The second-architecture check: after the digits network has trained, a
#: different network in the same process -- how long until its first step?
#: "same kind": 64-32-32-10 tanh, cross-entropy on the same labels, float32;
#: "new kind": 20-64-64-3 tanh, float64 mse on 2-D targets.
_SECOND = _FASTBP.replace('print("RESULT", ', '_r = (') + """
import numpy as np
rng = np.random.default_rng(0)
res = {}
t = time.perf_counter()
net2 = fastbp.MLP([64, 32, 32, 10], activation="tanh", loss="cross_entropy",
                  dtype="float32", seed=1)
net2.fit(X, y, epochs=1, batch_size=32, lr=0.1)
res["same_kind_fit_1_epoch"] = time.perf_counter() - t
t = time.perf_counter()
X2, y2 = rng.normal(size=(256, 20)), rng.normal(size=(256, 3))
net3 = fastbp.MLP([20, 64, 64, 3], activation="tanh", loss="mse", seed=0)
net3.fit(X2, y2, epochs=1, batch_size=32, lr=0.01)
res["new_kind_fit_1_epoch"] = time.perf_counter() - t
t = time.perf_counter()
net3.predict(X2)
res["new_kind_predict"] = time.perf_counter() - t
print("RESULT", json.dumps(res))
"""

SCRIPTS = {"fastbp": _FASTBP, "torch": _TORCH, "jax": _JAX, "sklearn": _SKLEARN}
MODULES = {"fastbp": "fastbp", "torch": "torch", "jax": "jax", "sklearn": "sklearn"}

#: Installed by the profiled child: records every ``numba:compile`` event,
#: timed in process CPU seconds (compilation is single-threaded, and CPU time
#: is far less inflated than wall time on a busy machine).
_PROFILER = """
import time, json, atexit
from numba.core import event as _ev
_stack, _rows = [], []
def _name(e):
    f = e.data["dispatcher"].py_func
    return f.__module__ + "." + f.__qualname__
class _L(_ev.Listener):
    def on_start(self, e):
        _stack.append([time.process_time(), 0.0, _name(e)])
    def on_end(self, e):
        t0, child, name = _stack.pop()
        dt = time.process_time() - t0
        if _stack:
            _stack[-1][1] += dt
        _rows.append((name, dt - child, dt, [str(a) for a in e.data["args"]],
                      _stack[-1][2] if _stack else ""))
_ev.register("numba:compile", _L())
@atexit.register
def _dump():
    print("PROFILE", json.dumps(_rows))
"""


#: ``FASTBP_PRECOMPILED_DIR`` of the children: an empty folder (nothing
#: shipped) unless :func:`measure_fastbp` points it at built kernels.
_NOTHING = tempfile.mkdtemp(prefix="fastbp-nothing-shipped-")


def _env(cache_dir, shipped=_NOTHING):
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: see byte_compile()
    env["NUMBA_CACHE_DIR"] = cache_dir
    env["FASTBP_PRECOMPILED_DIR"] = shipped
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def build_shipped():
    """Compile the kernels as a wheel build does (``tools/build_backend.precompile``) into
    a temporary folder; returns (folder, seconds)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build_backend
    out = tempfile.mkdtemp(prefix="fastbp-shipped-")
    t = time.perf_counter()
    if not build_backend.precompile(pathlib.Path(out)):
        raise RuntimeError("compiling the kernels as the wheel build does failed")
    return out, time.perf_counter() - t


def byte_compile():
    """Write fastbp's ``.pyc`` files, as ``pip install`` does for an installed package, so
    that no run pays for compiling Python source (``PYTHONDONTWRITEBYTECODE`` would)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "fastbp")],
                   env=_env(_NOTHING), check=True)


def run_script(source, cache_dir, python=sys.executable, shipped=_NOTHING):
    """Run ``source`` in a fresh interpreter; return (wall seconds, parsed RESULT/PROFILE lines).

    The parsed dict also holds ``"cpu"``: the child's user + system CPU
    seconds, which a busy machine inflates far less than the wall time.
    """
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([python, "-c", source], env=_env(cache_dir, shipped), cwd=ROOT,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru2.ru_utime - ru.ru_utime) + (ru2.ru_stime - ru.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = {"cpu": cpu}
    for line in proc.stdout.splitlines():
        tag, _, payload = line.partition(" ")
        if tag in ("RESULT", "PROFILE"):
            out[tag] = json.loads(payload)
    return wall, out


def cache_entries(cache_dir):
    """(number of compiled entries, bytes) in a Numba cache folder."""
    n = size = 0
    for root, _, files in os.walk(cache_dir):
        for f in files:
            if f.endswith(".nbc"):
                n += 1
            size += os.path.getsize(os.path.join(root, f))
    return n, size


def installed(name):
    """Whether ``name`` imports in a child (without importing it here)."""
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


SHIPPED_ROW = "fastbp first run, kernels from the wheel"
COLD_ROW = "fastbp first run, nothing precompiled"


def measure_fastbp(repeats, shipped):
    """First runs (empty cache; with the kernels in ``shipped``, and with none) and
    warm runs (the cache the compiling run left): whole-process times, ``repeats`` each."""
    rows = {SHIPPED_ROW: [], COLD_ROW: [], "fastbp warm": []}
    extra = {}
    for _ in range(repeats):
        cache = tempfile.mkdtemp(prefix="fastbp-first-")
        try:
            wall, out = run_script(_FASTBP, cache, shipped=shipped)
            rows[SHIPPED_ROW].append((wall, out["cpu"]))
            extra["shipped"] = out["RESULT"]
            extra["shipped entries"] = cache_entries(cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        cache = tempfile.mkdtemp(prefix="fastbp-first-")
        try:
            wall, out = run_script(_FASTBP, cache)
            rows[COLD_ROW].append((wall, out["cpu"]))
            extra["cold"] = out["RESULT"]
            extra["entries"] = cache_entries(cache)
            wall, out = run_script(_FASTBP, cache)
            rows["fastbp warm"].append((wall, out["cpu"]))
            extra["warm"] = out["RESULT"]
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return rows, extra


def measure_peer(name, repeats):
    """Whole-process times of one peer's script, or None when it is not installed."""
    if not installed(MODULES[name]):
        return None
    cache = tempfile.mkdtemp(prefix="fastbp-first-")
    try:
        runs = [run_script(SCRIPTS[name], cache) for _ in range(repeats)]
        return [(wall, out["cpu"]) for wall, out in runs]
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_table(repeats, peers, shipped=None):
    """Print the side-by-side table."""
    built = "fastbp" in peers and shipped is None
    if built:
        shipped, secs = build_shipped()
        print(f"kernels compiled as the wheel build does (what `pip install .` adds): "
              f"{secs:.1f} s wall, {cache_entries(shipped)[1] / 1e6:.1f} MB")
    byte_compile()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = {}
    if "fastbp" in peers:
        fb, extra = measure_fastbp(repeats, shipped)
        rows.update(fb)
    for name in ("torch", "jax", "sklearn"):
        if name in peers:
            r = measure_peer(name, repeats)
            if r is None:
                print(f"  {name}: not installed, skipped")
            else:
                rows[{"torch": "PyTorch eager", "jax": "JAX (jit + lax.scan)",
                      "sklearn": "scikit-learn MLPClassifier"}[name]] = r
    print(f"\n{'script (fresh process, whole run)':42s} {'wall min':>9s} {'wall med':>9s} "
          f"{'CPU min':>8s}  runs")
    for k, v in rows.items():
        walls = sorted(w for w, _ in v)
        cpus = sorted(c for _, c in v)
        print(f"{k:42s} {walls[0]:9.2f} {walls[len(walls) // 2]:9.2f} {cpus[0]:8.2f}  {len(v)}")
    if "fastbp" in peers:
        n, size = extra["entries"]
        print(f"\nfastbp first run with the wheel's kernels, inside: "
              f"{json.dumps(extra['shipped'])}; entries it compiled into its cache: "
              f"{extra['shipped entries'][0]}")
        print(f"fastbp first run, nothing precompiled, inside: {json.dumps(extra['cold'])}")
        print(f"fastbp warm run inside: {json.dumps(extra['warm'])}")
        print(f"cache after the cold run: {n} compiled entries, {size / 1e6:.1f} MB")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if built:
        shutil.rmtree(shipped, ignore_errors=True)


def run_profile(top):
    """Cold run with a ``numba:compile`` listener: compile time per function."""
    cache = tempfile.mkdtemp(prefix="fastbp-first-")
    try:
        wall, out = run_script(_PROFILER + _FASTBP, cache)
        n, size = cache_entries(cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    rows = out["PROFILE"]
    per = {}
    for name, excl, incl, args, parent in rows:
        p = per.setdefault(name, [0.0, 0.0, 0, []])
        p[0] += excl
        p[1] = max(p[1], incl)
        p[2] += 1
        p[3].append(args)
        p.append(parent)
    total = sum(r[1] for r in rows)
    print(f"cold run: {wall:.2f} s whole process ({out['cpu']:.2f} s CPU); "
          f"inside: {json.dumps(out['RESULT'])}")
    print(f"{len(rows)} signatures compiled ({len(per)} functions), "
          f"{total:.2f} CPU s of compile (own time, callees excluded); "
          f"cache: {n} entries, {size / 1e6:.1f} MB")
    print(f"\n{'function':48s} {'own CPU s':>9s} {'incl':>7s} {'sigs':>5s}  first called from")
    for name, (excl, incl, k, _, *parents) in sorted(per.items(),
                                                     key=lambda kv: -kv[1][0])[:top]:
        short = name.replace("fastbp._kernels.", "").replace(".<locals>", "")[:48]
        print(f"{short:48s} {excl:9.2f} {incl:7.2f} {k:5d}  "
              f"{parents[0].replace('fastbp._kernels.', '') or '(Python)'}")
    multi = {k: v[3] for k, v in per.items() if v[2] > 1}
    if multi:
        print("\nfunctions compiled for more than one signature:")
        for k, sigs in multi.items():
            print(f"  {k}:")
            for s in sigs:
                print(f"    ({', '.join(a[:60] for a in s)})")


def run_second(shipped=_NOTHING):
    """Second architectures in the same process, the digits network's kernels cached
    (``shipped``: a folder of kernels built as the wheel build does; default none)."""
    byte_compile()
    cache = tempfile.mkdtemp(prefix="fastbp-first-")
    try:
        run_script(_FASTBP, cache, shipped=shipped)  # the digits network's kernels, cached
        for label in ("first time", "again (their kernels cached too)"):
            wall, out = run_script(_SECOND, cache, shipped=shipped)
            print(f"{label}: whole process {wall:.2f} s ({out['cpu']:.2f} s CPU); "
                  f"{json.dumps(out['RESULT'])}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv=None):
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", default="fastbp,torch,jax,sklearn")
    ap.add_argument("--profile", action="store_true", help="compile profile of the cold run")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--second", action="store_true",
                    help="time to the first step of a second architecture")
    ap.add_argument("--shipped", help="a folder of kernels built as the wheel build does "
                    "(e.g. fastbp/_precompiled after `pip install .`); default: build one")
    args = ap.parse_args(argv)
    if args.profile:
        run_profile(args.top)
    elif args.second:
        run_second(args.shipped or _NOTHING)
    else:
        run_table(args.repeats, args.peers.split(","), args.shipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
