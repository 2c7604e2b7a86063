"""Compile fastbp's kernels ahead of time into Numba's on-disk cache.

::

    python -m fastbp.warmup                      # float32 and float64, every kernel family
    python -m fastbp.warmup --dtype float32      # only float32
    python -m fastbp.warmup --jobs 4             # at most 4 compiling processes at once

Run it once where the cache will be used -- a Docker image build step right
after ``pip install``, a CI cache step -- and every later process loads the
compiled kernels instead of compiling them (``NUMBA_CACHE_DIR`` must be the
same then, or unset in both).

The kernels are generic in the architecture (sizes, depth, activations,
losses, optimizers, dropout and batch norm are run-time data), so one
compiled family serves every network of its kind.  A *family* is fixed by
the float type, the kind of targets (integer class labels, or a float
array), and the path an epoch takes (``batch``: the general path;
``flat``: small networks under plain SGD, see ``fastbp/_kernels/small.py``).
Families are compiled in parallel worker processes, each filling the cache
with its own entries; the general path's family splits further: the parts
of its training step (forward pass and loss, backward pass, optimizer
update) compile in parallel processes, then the step and the epoch loop
load them from the cache.

Numba keys each cache entry on the source file's modification time and
size, so after an upgrade (a new install rewrites the files) stale entries
are never used; they are recompiled on first use.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np

#: Every family: (float type, targets, path).
FAMILIES = tuple((dt, targets, path) for dt in ("float32", "float64")
                 for targets in ("labels", "float") for path in ("batch", "flat"))


def warm(dtype="float32", targets="labels", path="batch", full=True):
    """Compile (or load from the cache) one family of kernels.

    Trains a tiny network of that family for one epoch and predicts; with
    ``full`` also trains an epoch with Adam (plain SGD and the other
    optimizers compile separate training steps: ``_kernels.train.train_batch``),
    evaluates and takes a gradient, so that every kernel behind ``fit``,
    ``predict``, ``evaluate`` and ``gradient`` is compiled.

    Parameters
    ----------
    dtype : {"float32", "float64"}
    targets : {"labels", "float"}
        Integer class labels (cross-entropy) or a 2-D float target array.
    path : {"batch", "flat"}
        The general epoch path, or the flat one of small networks.
    full : bool
        Also the kernels of ``evaluate`` and ``gradient``.
    """
    net, X, y, batch = _example(dtype, targets, path)
    net.fit(X, y, epochs=1, batch_size=batch, lr=0.01)
    net.predict(X)
    if path == "batch":
        _warm_two_thread(net, X, y, batch, full)
    if full:
        net.fit(X, y, epochs=1, batch_size=batch, lr=0.001, optimizer="adam")
        net.evaluate(X, y)
        net.gradient(X, y)


def _warm_two_thread(net, X, y, batch, full):
    """The two-thread engines' epochs (``split`` and ``units``, plain SGD and, with
    ``full``, Adam), forced, so they compile whatever this machine's cores."""
    from . import _engine
    for engine, size in (("split", batch), ("units", 1)):
        for optimizer in ("sgd", "adam") if full else ("sgd",):
            try:
                with _engine.force(engine):
                    net.copy().fit(X, y, epochs=1, batch_size=size, lr=0.001,
                                   optimizer=optimizer)
            except _engine.Unsupported:  # no pthreads OpenBLAS: never chosen either
                return


def _example(dtype, targets, path):
    """A throwaway network of one family, data for it, and its batch size."""
    from .network import MLP
    if targets not in ("labels", "float"):
        raise ValueError(f"targets must be 'labels' or 'float', got {targets!r}")
    if path not in ("batch", "flat"):
        raise ValueError(f"path must be 'batch' or 'flat', got {path!r}")
    sizes, batch = ([64, 128, 10], 32) if path == "batch" else ([4, 4, 3], 4)
    rng = np.random.default_rng(0)
    X = rng.random((2 * batch, sizes[0]))
    if targets == "labels":
        y = np.arange(2 * batch) % sizes[-1]
        net = MLP(sizes, loss="cross_entropy", dtype=dtype, seed=0)
    else:
        y = rng.random((2 * batch, sizes[-1]))
        net = MLP(sizes, loss="mse", dtype=dtype, seed=0)
    return net, X, y, batch


#: Parts of the general path's training step that compile independently:
#: each in its own process, into the cache; the step itself then loads them
#: as callees instead of compiling them (``warm_split``).
PARTS = ("forward_loss", "backward", "update")

#: :func:`start` splits the general path into :data:`PARTS` on machines with
#: at least this many CPUs; with fewer, the extra processes (each importing
#: numpy and numba) cost more than the parallel compilation saves.
SPLIT_CPUS = 4


def warm_part(dtype, targets, part):
    """Compile one of :data:`PARTS` of the general path, with the argument types
    the training step passes (a throwaway network runs it once)."""
    from ._kernels.backward import backward
    from ._kernels.forward import commit_batch_stats
    from ._kernels.train import _forward_loss
    from ._kernels.update import apply_update
    from ._kernels.weights import NO_VALUES
    net, X, y, batch = _example(dtype, targets, "batch")
    X, y = net._xy(X, y)
    Xb, yb = X[:batch], y[:batch]
    ws = net._workspace(batch)
    if part == "forward_loss":  # also the forward pass of predict
        _forward_loss(net._model, ws.work, net._loss_code, Xb, yb, True, False, 1.0 / batch,
                      True, NO_VALUES)
    elif part == "backward":
        backward(net._model, ws.work, Xb, 0.0, 1.0, False, True)
    elif part == "update":
        opt = net._optimizer("sgd", 0.01, {})
        apply_update(net._params, ws.work.grad, net._layout, opt.code, opt.hyper, opt.state,
                     opt.step)
        commit_batch_stats(net._model, ws.work, batch)
    else:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")


def warm_split(dtype="float32", targets="labels", full=False):
    """:func:`warm` for the general path, its :data:`PARTS` compiled in parallel
    processes first (they fill the cache; the rest then loads them)."""
    procs = [_spawn(f"{dtype}:{targets}:{part}", "--part") for part in PARTS]
    for p in procs:
        p.wait()
    warm(dtype, targets, "batch", full=full)


def _spawn(spec, flag="--family"):
    cmd = [sys.executable, "-m", "fastbp.warmup", flag, spec]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


def start(dtype="float32", targets="labels", path="batch", full=True):
    """Start :func:`warm` in a background process; returns its ``subprocess.Popen``.

    The process shares this one's environment (hence its ``NUMBA_CACHE_DIR``)
    and fills the on-disk cache; wait for it before the first call that
    needs those kernels, which then loads them.  With at least
    :data:`SPLIT_CPUS` CPUs the general path compiles as :func:`warm_split`.
    """
    what = "full" if full else "fit"
    if path == "batch" and (os.cpu_count() or 1) >= SPLIT_CPUS:
        what = "splitfull" if full else "split"
    return _spawn(f"{dtype}:{targets}:{path}:{what}")


class announce:
    """Context manager: print ``message`` if the block is still running after
    ``delay`` seconds, then the elapsed time when it ends.

    A block that is fast (kernels already cached) stays silent; a block that
    compiles says so while it compiles instead of leaving the user waiting
    in silence.
    """

    def __init__(self, message, out=print, delay=0.5):
        self.message, self.out, self.delay = message, out, delay
        self.shown = False
        self._lock = threading.Lock()

    def _show(self):
        with self._lock:
            if self._timer is not None:
                self.shown = True
                self.out(self.message)

    def __enter__(self):
        self.t0 = time.perf_counter()
        self._timer = threading.Timer(self.delay, self._show)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._timer.cancel()
            self._timer = None
        self.elapsed = time.perf_counter() - self.t0
        if self.shown:
            self.out(f"  ... done in {self.elapsed:.1f} s")
        return False


def _run_all(families, jobs):
    pending = list(families)
    running = []
    t0 = time.perf_counter()
    failed = 0
    while pending or running:
        while pending and len(running) < jobs:
            fam = pending.pop(0)
            running.append((fam, start(*fam), time.perf_counter()))
        time.sleep(0.05)
        for item in list(running):
            fam, proc, t = item
            if proc.poll() is not None:
                running.remove(item)
                status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
                failed += proc.returncode != 0
                print(f"  {':'.join(fam):24s} {time.perf_counter() - t:6.1f} s  {status}",
                      flush=True)
    print(f"{len(families)} kernel families ready in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


def main(argv=None):
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m fastbp.warmup",
                                 description="Compile fastbp's kernels into Numba's cache.")
    ap.add_argument("--dtype", choices=("float32", "float64"), action="append",
                    help="float type (repeatable; default both)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="compiling processes at once (default: the CPU count)")
    # one family in this process: dtype:targets:path:full|fit (what start() runs)
    ap.add_argument("--family", help=argparse.SUPPRESS)
    ap.add_argument("--part", help=argparse.SUPPRESS)  # dtype:targets:part, one in-process
    args = ap.parse_args(argv)
    if args.family:
        dtype, targets, path, what = args.family.split(":")
        if what.startswith("split"):
            warm_split(dtype, targets, full=what == "splitfull")
        else:
            warm(dtype, targets, path, full=what == "full")
        return 0
    if args.part:
        warm_part(*args.part.split(":"))
        return 0
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    dtypes = args.dtype or ["float32", "float64"]
    families = [f for f in FAMILIES if f[0] in dtypes]
    print(f"compiling {len(families)} fastbp kernel families with up to {args.jobs} "
          f"processes (cached afterwards)...", flush=True)
    return _run_all(families, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
