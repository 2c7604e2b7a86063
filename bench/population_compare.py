"""Population training against its peers: K small networks, one epoch each.

    python bench/population_compare.py                 # K=1000, 2-16-1, 256 samples, batch 32
    python bench/population_compare.py --batch 8 --repeats 9
    python bench/population_compare.py --quick         # K=100, 3 repeats (smoke test)
    python bench/population_compare.py --sizes 8,32,32,4   # another architecture
    python bench/population_compare.py --only torch    # a subset (Population.fit always runs)
    python bench/population_compare.py --only jax,torch --no-bounds   # fastbp vs the peers

Problem: K = 1000 independent networks 2-16-1 (tanh hidden layer, identity
output, MSE = 1/2 * sum over outputs, mean over the batch), float32, each with
its *own* 256 samples (per-network data), one epoch of plain mini-batch SGD
(batch 32 -- 8 steps per network -- unless ``--batch``; lr 0.05, no momentum, no
shuffling: every implementation walks each network's rows in order), from the
same initial weights everywhere (fastbp's Glorot-uniform draw, zero biases).

Implementations
---------------
* ``fastbp Population.fit``: :class:`fastbp.population.Population`, one call of
  the lane kernel (``fastbp/_kernels/lanes.py``: networks side by side in SIMD
  vectors, blocks of them spread over threads by ``threads.run_chunks``), with its
  Python-side validation of the K data sets included.
* ``fastbp lane kernel``: the same kernel called directly on prepared arrays,
  i.e. without the per-call validation -- where the time goes.
* peer ``Python loop over K MLPs``: ``for net in nets: net.fit(X[i], y[i],
  epochs=1, ...)``, K fastbp networks one after another.
* peer ``torch.func.vmap``: the K networks' parameters stacked with
  ``torch.func.stack_module_state``; one step is ``vmap(grad(loss))`` over the
  stack (``functional_call`` of a meta-device copy of the module) and an SGD
  update of the stacked tensors (``torch._foreach_add_``, what
  ``torch.optim.SGD`` uses); ``torch.set_num_threads(2)``; eager mode.
* peer ``jax.jit(jax.vmap(epoch))``: one network's epoch is a ``lax.scan`` over
  its batches (a last short batch, if ``n`` is not a multiple of the batch,
  takes one more step with its own mean, as the torch peer's slicing does);
  a step is ``jax.grad`` of the same loss and ``p - lr * g`` on every
  parameter; ``jax.vmap`` over the K networks' stacked parameters and data,
  ``jax.jit`` of the whole, data on the device before timing,
  ``block_until_ready`` after each epoch.  XLA sizes its CPU pool to the cores
  it may use: with ``--threads`` below the core count the worker's CPU
  affinity is cut to that many cores before jax is imported.

A peer that is not installed is skipped with a note.  The last lines give
fastbp ``Population.fit`` ÷ the best peer.

Timing: each implementation runs in its own process (so torch's and Numba's
OpenMP thread pools cannot compete for the cores), with
OMP/MKL/OPENBLAS_NUM_THREADS set to ``--threads``.  Its first epoch, from the common initial weights, is the
correctness check (all implementations must agree to 1e-4, float32) and the
warm-up (JIT compile, allocator); then ``--repeats`` timed epochs (training
continues), median; samples/s is K * n / epoch time.

Bounds checks: ``fastbp.jit.train_step`` checks shapes, capacity and labels on
entry; the cost is shown by timing it against the unchecked internal kernel
``fastbp._kernels.train.train_batch`` on the same state, both called in a
tight ``@njit`` loop (per-call ns, median of repeats, interleaved).

Run it on a quiet machine (the script prints the load average and warns when
it is above 1).  On a shared VM whose two vCPUs are not always scheduled at
once, 2-thread figures swing by 2x from run to run (torch's OpenMP barriers
suffer most); ``--threads 1`` gives steadier numbers.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

try:  # run as a script from anywhere
    import fastbp
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import fastbp

import numba
from numba import njit

import fastbp.jit as fj
from fastbp._kernels.lanes import lanes_epoch
from fastbp._kernels.runtime import no_values
from fastbp._kernels.train import train_batch
from fastbp.population import Population
from fastbp.threads import run_chunks

SIZES = [2, 16, 1]
LR = 0.05


# --------------------------------------------------------------------- problem
def make_data(k, n, seed=0):
    """Per-network data for ``SIZES``: network i fits its own smooth function of its own x.

    For 2 inputs and 1 output (the default) y = sin(a_i x0) cos(b_i x1) + noise;
    otherwise y_j = sin(x . c_ij) + noise with random directions c_ij.
    """
    r = np.random.default_rng(seed)
    n_in, n_out = SIZES[0], SIZES[-1]
    X = r.uniform(-2, 2, (k, n, n_in)).astype(np.float32)
    if (n_in, n_out) == (2, 1):
        a = r.uniform(0.5, 2.0, (k, 1))
        b = r.uniform(0.5, 2.0, (k, 1))
        y = (np.sin(a * X[..., 0]) * np.cos(b * X[..., 1]))[..., None]
    else:
        c = r.uniform(-1, 1, (k, n_in, n_out)) * 2 / np.sqrt(n_in)
        y = np.sin(np.einsum("kni,kio->kno", X, c))
    return X, (y + 0.05 * r.standard_normal(y.shape)).astype(np.float32)


def make_population(k, seed=0):
    return Population(SIZES, k, activation="tanh", dtype="float32", seed=seed)


# --------------------------------------------------------------- implementations
class FastbpPopulation:
    name = "fastbp Population.fit"

    def __init__(self, init, X, y, batch):
        self.pop = make_population(init.shape[0])
        self.pop.params[:] = init
        self.X, self.y, self.batch = X, y, batch

    def epoch(self):
        self.pop.fit(self.X, self.y, epochs=1, batch_size=self.batch, lr=LR, shuffle=False)

    def params(self):
        return self.pop.params


class FastbpKernel(FastbpPopulation):
    """The lane kernel on prepared arrays: what Population.fit does minus validation."""

    name = "fastbp lane kernel"

    def __init__(self, init, X, y, batch):
        super().__init__(init, X, y, batch)
        pop, k = self.pop, X.shape[0]
        from fastbp.optim import make_optimizer
        proto = make_optimizer("sgd", LR).bind(pop.template.n_params, pop.dtype)
        self.hyper = np.tile(proto.hyper, (k, 1))
        self.state = np.tile(proto.state, (k, 1, 1))
        self.step = np.zeros((k, 1), dtype=np.int64)
        self.code = proto.code
        self.out = np.zeros((k, 2))
        self.bufs = pop._lane_buffers(0, self.state.shape[1])
        self.X3 = np.ascontiguousarray(X)
        self.Y3 = np.ascontiguousarray(y)

    def epoch(self):
        pop, t = self.pop, self.pop.template
        run_chunks(lanes_epoch, self.bufs.PB.shape[0], pop.params, t._layout,
                   t._lparams, pop.counters, t._loss_code, self.X3, self.Y3, self.batch, False,
                   0, self.code, self.hyper, self.state, self.step, self.out, *self.bufs)


class MLPLoop:
    name = "Python loop over K MLPs"

    def __init__(self, init, X, y, batch):
        pop = make_population(init.shape[0])
        pop.params[:] = init
        self.nets = [pop.network(i).copy() for i in range(init.shape[0])]
        self.X, self.y, self.batch = X, y, batch

    def epoch(self):
        for i, net in enumerate(self.nets):
            net.fit(self.X[i], self.y[i], epochs=1, batch_size=self.batch, lr=LR, shuffle=False)

    def params(self):
        return np.stack([net.params for net in self.nets])


class TorchVmap:
    name = "torch.func.vmap (stacked params)"

    def __init__(self, init, X, y, batch, threads):
        import torch
        from torch import nn
        from torch.func import functional_call, grad, stack_module_state, vmap

        torch.set_num_threads(threads)
        self.torch = torch
        k = init.shape[0]
        def module():
            layers = []
            for l, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
                layers += [nn.Linear(n_in, n_out)] + ([nn.Tanh()] if l < len(SIZES) - 2 else [])
            return nn.Sequential(*layers)

        models = [module() for _ in range(k)]
        params, buffers = stack_module_state(models)
        # fastbp's flat layout per network: W_l (n_out, n_in) then b_l, layer by layer
        off = 0
        with torch.no_grad():
            for l, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
                W = init[:, off:off + n_in * n_out].reshape(k, n_out, n_in)
                b = init[:, off + n_in * n_out:off + (n_in + 1) * n_out]
                off += (n_in + 1) * n_out
                for key, v in ((f"{2 * l}.weight", W), (f"{2 * l}.bias", b)):
                    params[key].copy_(torch.from_numpy(np.ascontiguousarray(v)))
        self.params_, self.buffers = params, buffers
        base = copy.deepcopy(models[0]).to("meta")

        def loss(p, b, xb, yb):
            out = functional_call(base, (p, b), (xb,))
            return 0.5 * ((out - yb) ** 2).sum(1).mean()

        self.vgrad = vmap(grad(loss), in_dims=(0, 0, 0, 0))
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y)
        self.batch = batch
        self.keys = list(params)

    def epoch(self):
        torch = self.torch
        n, B = self.X.shape[1], self.batch
        plist = [self.params_[key] for key in self.keys]
        for s in range(0, n, B):
            g = self.vgrad(self.params_, self.buffers, self.X[:, s:s + B], self.y[:, s:s + B])
            with torch.no_grad():
                torch._foreach_add_(plist, [g[key] for key in self.keys], alpha=-LR)

    def params(self):
        p = {key: v.detach().numpy() for key, v in self.params_.items()}
        k = p["0.weight"].shape[0]
        return np.concatenate([p[f"{2 * l}.{part}"].reshape(k, -1)
                               for l in range(len(SIZES) - 1) for part in ("weight", "bias")],
                              axis=1)


class JaxVmap:
    name = "jax.jit(jax.vmap(epoch)), lax.scan over batches"

    def __init__(self, init, X, y, batch):
        import jax
        import jax.numpy as jnp
        from jax import lax

        self.jax = jax
        k, n = X.shape[0], X.shape[1]
        shapes = list(zip(SIZES[:-1], SIZES[1:]))
        L = len(shapes)
        # fastbp's flat layout per network: W_l (n_out, n_in) then b_l, layer by layer
        params, off = [], 0
        for n_in, n_out in shapes:
            W = init[:, off:off + n_in * n_out].reshape(k, n_out, n_in)
            b = init[:, off + n_in * n_out:off + (n_in + 1) * n_out]
            off += (n_in + 1) * n_out
            params.append((jnp.asarray(W), jnp.asarray(b)))
        nb, tail = divmod(n, batch)
        lr = jnp.float32(LR)

        def loss(p, xb, yb):
            a = xb
            for l, (W, b) in enumerate(p):
                a = a @ W.T + b
                if l < L - 1:
                    a = jnp.tanh(a)
            return 0.5 * jnp.mean(jnp.sum((a - yb) ** 2, axis=1))

        grad = jax.grad(loss)

        def step(p, xy):
            g = grad(p, *xy)
            return jax.tree_util.tree_map(lambda v, gv: v - lr * gv, p, g), None

        def epoch(p, Xn, Yn):  # one network: (n, n_in), (n, n_out)
            xs = (Xn[:nb * batch].reshape(nb, batch, -1), Yn[:nb * batch].reshape(nb, batch, -1))
            p, _ = lax.scan(step, p, xs)
            if tail:
                p, _ = step(p, (Xn[nb * batch:], Yn[nb * batch:]))
            return p

        self.fn = jax.jit(jax.vmap(epoch))
        self.params_ = params
        self.X = jax.device_put(X)
        self.y = jax.device_put(y)

    def epoch(self):
        self.params_ = self.fn(self.params_, self.X, self.y)
        self.jax.block_until_ready(self.params_)

    def params(self):
        k = self.X.shape[0]
        return np.concatenate([np.asarray(v).reshape(k, -1) for Wb in self.params_ for v in Wb],
                              axis=1)


def run_epochs(impl, repeats):
    impl.epoch()  # warm-up (compile, allocator); training continues from here
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        impl.epoch()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


# ------------------------------------------------------------- bounds-check cost
@njit(cache=True)
def _checked(state, X, y, n):
    s = 0.0
    for _ in range(n):
        s += fj.train_step(state, X, y)
    return s


@njit(cache=True)
def _unchecked(state, X, y, n):
    s = 0.0
    for _ in range(n):
        s += train_batch(state.model, state.work, state.loss, X, y, state.opt, state.hyper,
                         state.opt_state, state.step, no_values()) / X.shape[0]
    return s


@njit(cache=True)
def _checked_one(state, x, y, n):
    s = 0.0
    for _ in range(n):
        s += fj.train_step_one(state, x, y)
    return s


def bounds_check_cost(calls=20000, repeats=7):
    """Per-call ns of fastbp.jit vs the unchecked kernel on the same state."""
    rows = []
    r = np.random.default_rng(1)
    cases = [("train_step, 2-16-1, batch 32, float targets", [2, 16, 1], "mse", 32),
             ("train_step, 2-16-4, batch 32, int labels", [2, 16, 4], "cross_entropy", 32),
             ("train_step_one, 2-16-1 (vs train_batch on 1 row)", [2, 16, 1], "mse", 1)]
    for label, sizes, loss, batch in cases:
        net = fastbp.MLP(sizes, activation="tanh", loss=loss, dtype="float32", seed=0)
        st = net.state(batch_size=batch, optimizer="sgd", lr=1e-4)
        X = r.uniform(-1, 1, (batch, sizes[0])).astype(np.float32)
        if loss == "mse":
            y = r.uniform(-1, 1, (batch, sizes[-1])).astype(np.float32)
        else:
            y = r.integers(0, sizes[-1], batch).astype(np.int64)
        if batch == 1:
            checked = lambda n, x=X[0].copy(), t=y[0].copy(): _checked_one(st, x, t, n)  # noqa
        else:
            checked = lambda n: _checked(st, X, y, n)  # noqa: E731
        unchecked = lambda n: _unchecked(st, X, y, n)  # noqa: E731
        checked(10)
        unchecked(10)
        tc, tu = [], []
        for _ in range(repeats):
            for f, acc in ((checked, tc), (unchecked, tu)):
                t0 = time.perf_counter()
                f(calls)
                acc.append((time.perf_counter() - t0) / calls * 1e9)
        c, u = statistics.median(tc), statistics.median(tu)
        rows.append((label, c, u))
    return rows


# ------------------------------------------------------------------------ main
IMPLS = {"population": FastbpPopulation, "kernel": FastbpKernel, "loop": MLPLoop,
         "torch": TorchVmap, "jax": JaxVmap}
PEERS = ("loop", "torch", "jax")
OPTIONAL = {"torch": "torch", "jax": "jax"}  # implementation -> module it needs


def _thread_env(threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _limit_cpus(threads):
    """Cut this process's CPU affinity to ``threads`` cores (where the OS allows)."""
    if hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])


def worker(a):
    """One implementation in this process: check epoch (saved), warm-up, timed epochs."""
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))
    SIZES[:] = a.sizes
    if a.worker == "bounds":
        print("RESULT" + json.dumps({"bounds": bounds_check_cost()}))
        return
    cls = IMPLS[a.worker]
    if a.worker in OPTIONAL:
        if a.worker == "jax":
            _limit_cpus(a.threads)  # before jax sizes its thread pool
        try:
            __import__(OPTIONAL[a.worker])
        except Exception as e:
            print("RESULT" + json.dumps(dict(name=cls.name, skipped="%s not importable (%s: %s)"
                                             % (OPTIONAL[a.worker], type(e).__name__, e))))
            return
    X, y = make_data(a.k, a.n)
    init = make_population(a.k).params.copy()
    impl = cls(init, X, y, a.batch, a.threads) if cls is TorchVmap else cls(init, X, y, a.batch)
    extra = {}
    if cls is TorchVmap:
        import torch
        extra["version"] = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if cls is JaxVmap:
        import jax
        extra["version"] = (f"jax {jax.__version__} ({jax.default_backend()}, "
                            f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores)")
    impl.epoch()  # the check epoch from the common initial weights (also a warm-up)
    np.save(os.path.join(a.out, a.worker + ".npy"), impl.params())
    med, times = run_epochs(impl, a.repeats)
    print("RESULT" + json.dumps(dict(name=impl.name, median=med, times=times, **extra)))


def _run_worker(name, a, out):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--out", out,
           "--k", str(a.k), "--n", str(a.n), "--batch", str(a.batch),
           "--repeats", str(a.repeats), "--threads", str(a.threads),
           "--sizes", ",".join(map(str, a.sizes))]
    p = subprocess.run(cmd, env=_thread_env(a.threads), capture_output=True, text=True)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")]
    if p.returncode != 0 or not lines:
        print(f"# {name} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1][len("RESULT"):])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=1000, help="networks (default 1000)")
    ap.add_argument("--n", type=int, default=256, help="samples per network (default 256)")
    ap.add_argument("--batch", type=int, default=32, help="mini-batch size (default 32)")
    ap.add_argument("--sizes", type=lambda v: [int(t) for t in v.split(",")], default=SIZES,
                    help="layer widths, tanh hidden layers (default 2,16,1)")
    ap.add_argument("--repeats", type=int, default=7, help="timed epochs (default 7)")
    ap.add_argument("--threads", type=int, default=2, help="Numba and torch threads (default 2)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch peer")
    ap.add_argument("--no-jax", action="store_true", help="skip the jax peer")
    ap.add_argument("--no-bounds", action="store_true", help="skip the bounds-check timing")
    ap.add_argument("--quick", action="store_true", help="K=100, 3 repeats")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(IMPLS))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.k, a.repeats = 100, 3
    SIZES[:] = a.sizes
    if a.worker:
        return worker(a)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    threads = min(a.threads, numba.config.NUMBA_NUM_THREADS)
    print(f"# Population benchmark: K={a.k} networks {'-'.join(map(str, SIZES))} tanh, MSE, "
          f"float32, {a.n} samples each, 1 epoch SGD batch {a.batch} lr {LR}, no shuffle")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numba "
          f"{numba.__version__} ({threads} threads, layer: each implementation in its own "
          f"process), fastbp {fastbp.__version__}, load average {load:.2f}")
    if load > 1.0:
        print(f"# WARNING: load average {load:.2f} > 1: something else is running; "
              "timings are unreliable", file=sys.stderr)

    names = [nm for nm in IMPLS if not (nm == "torch" and a.no_torch)
             and not (nm == "jax" and a.no_jax)]
    if a.only:
        names = [nm for nm in names if nm in a.only.split(",")]
        names = names if "population" in names else ["population"] + names  # the reference
    results = {}
    with tempfile.TemporaryDirectory() as out:
        for nm in names:
            r = _run_worker(nm, a, out)
            if r is not None and "skipped" in r:
                print(f"# {r['name']}: skipped, {r['skipped']}")
            elif r is not None:
                results[nm] = r
                if "version" in r:
                    print(f"# {r['version']}")
        # correctness: one epoch from the common initial weights, everyone agrees
        ref = np.load(os.path.join(out, "population.npy")).astype(np.float64)
        worst = 0.0
        for nm in results:
            p = np.load(os.path.join(out, nm + ".npy")).astype(np.float64)
            err = float(np.max(np.abs(p - ref)))
            worst = max(worst, err)
            if err > 1e-4:
                raise SystemExit(f"{results[nm]['name']} disagrees with fastbp after one epoch "
                                 f"(max |diff| {err:.3g})")
    print(f"# check: after one epoch from the same initial weights all implementations agree "
          f"(max |diff| {worst:.1e})")

    samples = a.k * a.n
    peer_times = [results[nm]["median"] for nm in PEERS if nm in results]
    best_peer = min(peer_times) if peer_times else None
    print()
    print("| implementation | epoch time (ms), median | min | samples/s | speedup vs faster peer |")
    print("|---|---:|---:|---:|---:|")
    for nm, r in results.items():
        t = r["median"]
        tag = " (peer)" if nm in PEERS else ""
        sp = f"{best_peer / t:.1f}x" if best_peer else "-"
        print(f"| {r['name']}{tag} | {t * 1e3:.2f} | {min(r['times']) * 1e3:.2f} | "
              f"{samples / t:,.0f} | {sp} |")
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"\nmedian of {a.repeats} epochs after one warm-up epoch, each implementation in "
          f"its own process; samples/s = K*n / epoch time; load average at the end "
          f"{end_load:.2f}")
    if best_peer and "population" in results:
        who = min((nm for nm in PEERS if nm in results), key=lambda nm: results[nm]["median"])
        print(f"\n**fastbp Population.fit ÷ best peer ({results[who]['name']}): "
              f"{best_peer / results['population']['median']:.2f}x** "
              f"(K={a.k}, {'-'.join(map(str, SIZES))}, batch {a.batch})")

    if not a.no_bounds:
        r = _run_worker("bounds", a, "")
        if r is not None:
            print("\n## Bounds-check cost of fastbp.jit (per call, in a @njit loop)\n")
            print("| call | fastbp.jit (ns) | unchecked train_batch (ns) | check cost (ns) |")
            print("|---|---:|---:|---:|")
            for label, c, u in r["bounds"]:
                print(f"| {label} | {c:.0f} | {u:.0f} | {c - u:+.0f} ({(c - u) / u:+.1%}) |")
    return results


if __name__ == "__main__":
    main()
