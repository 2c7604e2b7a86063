"""asv benchmarks: training speed, allocations per step, time to first result, memory.

* ``Epoch``: one epoch of ``MLP.fit`` per case and dtype -- ``time_epoch``,
  ``track_samples_per_s`` (samples/s, best of 3) and ``peakmem_fit``.
* ``Step``: one ``MLP.train_step`` and 100 ``fastbp.jit.train_step`` calls.
* ``Allocations``: Numba-runtime allocations per training step and per
  batch of ``MLP.fit`` (both must be 0).
* ``FirstResult``: a fresh Python process that imports fastbp and trains a
  small network for one epoch: seconds with an empty Numba cache (cold,
  everything compiled) and with the cache that run left behind (warm), and the
  import alone.

asv reads every number as lower-is-better: for the ``samples/s`` tracks a
ratio above 1 in ``asv compare`` / ``asv continuous`` is a speed-up, not a
regression, so gate on the ``time_`` figures (``time_epoch``).

Run with ``asv run --python=same --quick`` for a look at the working tree, or
``asv continuous main HEAD`` / ``asv run main~5..main`` (README,
"Performance").  JIT warm-up happens in ``setup`` so compile time never
enters a ``time_`` figure; it has its own ``track_`` benchmarks.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from numba import njit

import fastbp
from fastbp import jit as fj

from .timing import best_seconds

# name: (sizes, hidden activation, loss, batch, samples per epoch)
CASES = {
    "xor-online": ([2, 8, 1], "sigmoid", "mse", 1, 65536),
    "digits-b32": ([64, 128, 10], "relu", "cross_entropy", 32, 16384),
    "mnist-b64": ([784, 256, 128, 10], "relu", "cross_entropy", 64, 4096),
    "mnist-b1": ([784, 256, 128, 10], "relu", "cross_entropy", 1, 1024),
    "wide-b256": ([1024, 1024, 1024, 10], "relu", "cross_entropy", 256, 1024),
}


def make_case(case, dtype, seed=0):
    """Network and data for one benchmark case."""
    sizes, act, loss, batch, n = CASES[case]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    net = fastbp.MLP(sizes, activation=act, loss=loss, dtype=dtype, seed=seed)
    return net, X, y, batch


class Epoch:
    """One epoch of plain mini-batch SGD through ``MLP.fit``."""

    params = (["float32", "float64"], list(CASES))
    param_names = ["dtype", "case"]
    timeout = 600  # the first setup of a fresh commit compiles the kernels
    # 4 to 20 samples (split over asv's rounds), up to 30 s: enough for asv's
    # significance test to call a real change on a noisy machine.
    repeat = (4, 20, 30.0)

    def setup(self, dtype, case):
        self.net, self.X, self.y, self.batch = make_case(case, dtype)
        self.fit()  # compile / load from cache

    def fit(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, lr=1e-3, shuffle=False)

    def time_epoch(self, dtype, case):
        self.fit()

    def track_samples_per_s(self, dtype, case):
        return len(self.X) / best_seconds(self.fit, 3)

    track_samples_per_s.unit = "samples/s"

    def peakmem_fit(self, dtype, case):
        self.fit()


class Step:
    """A single training step: the Python ``train_step`` and ``fastbp.jit.train_step``."""

    params = (["float32"], ["xor-online", "digits-b32", "mnist-b64"])
    param_names = ["dtype", "case"]

    def setup(self, dtype, case):
        self.net, X, y, self.batch = make_case(case, dtype)
        self.Xb, self.yb = X[:self.batch], y[:self.batch]
        self.state = self.net.state(batch_size=self.batch, lr=1e-3)
        self.net.train_step(self.Xb, self.yb, lr=1e-3)
        _jit_steps(self.state, self.Xb, self.yb, 2)

    def time_train_step(self, dtype, case):
        self.net.train_step(self.Xb, self.yb, lr=1e-3)

    def time_jit_train_step_x100(self, dtype, case):
        _jit_steps(self.state, self.Xb, self.yb, 100)


@njit(cache=True)
def _jit_steps(state, X, y, k):
    """``k`` calls of fastbp.jit.train_step from compiled code; the summed loss."""
    s = 0.0
    for _ in range(k):
        s += fj.train_step(state, X, y)
    return s


def _nrt_allocs():
    """Numba-runtime allocations so far (statistics switched on at first use)."""
    from numba.core.runtime import _nrt_python, rtsys
    _nrt_python.memsys_enable_stats()
    return rtsys.get_allocation_stats().alloc


class Allocations:
    """Numba-runtime allocations per training step and per batch of a fit (must be 0)."""

    params = (["float32", "float64"], ["xor-online", "digits-b32", "mnist-b64"])
    param_names = ["dtype", "case"]

    def setup(self, dtype, case):
        _nrt_allocs()
        self.net, self.X, self.y, self.batch = make_case(case, dtype)
        self.args = (self.net.state(batch_size=self.batch, lr=1e-3),
                     self.X[:self.batch], self.y[:self.batch])
        _jit_steps(*self.args, 1)
        self._fit(1)

    def _fit(self, n_batches):
        n = n_batches * self.batch
        self.net.fit(self.X[:n], self.y[:n], epochs=1, batch_size=self.batch, lr=1e-3)

    def track_nrt_allocations_per_step(self, dtype, case):
        counts = []
        for k in (10, 1010):
            before = _nrt_allocs()
            _jit_steps(*self.args, k)
            counts.append(_nrt_allocs() - before)
        return (counts[1] - counts[0]) / 1000.0

    track_nrt_allocations_per_step.unit = "allocations"

    def track_nrt_allocations_per_fit_batch(self, dtype, case):
        """MLP.fit over 32 batches minus over 16, per batch (per-call costs cancel)."""
        counts = []
        for k in (16, 32):
            before = _nrt_allocs()
            self._fit(k)
            counts.append(_nrt_allocs() - before)
        return (counts[1] - counts[0]) / 16.0

    track_nrt_allocations_per_fit_batch.unit = "allocations"


# A user's first result: import fastbp, train a small network for one epoch.
_FIRST_FIT = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import fastbp
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 64)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    net = fastbp.MLP([64, 32, 10], activation="relu", loss="cross_entropy",
                     dtype="float32", seed=0)
    net.fit(X, y, epochs=1, batch_size=32, lr=0.05)
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "total_s": t2 - t0, "fastbp": fastbp.__file__}))
""")


def first_fit(cache_dir, shipped=True):
    """Run ``_FIRST_FIT`` in a fresh interpreter with ``NUMBA_CACHE_DIR=cache_dir``.

    It runs in an empty temporary directory so that the fastbp it imports is
    the one this process imported (asv's installed commit, not a checkout in
    the working directory); a mismatch raises.  With ``shipped=False`` the
    kernels the wheel build compiled into the package are hidden
    (``FASTBP_PRECOMPILED_DIR`` an empty folder): what is not cached compiles.
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("FASTBP_PRECOMPILED_DIR", None)
    with tempfile.TemporaryDirectory(prefix="fastbp-asv-cwd-") as cwd:
        if not shipped:
            env["FASTBP_PRECOMPILED_DIR"] = cwd
        out = subprocess.run([sys.executable, "-c", _FIRST_FIT], env=env, cwd=cwd, check=True,
                             capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if os.path.realpath(res["fastbp"]) != os.path.realpath(fastbp.__file__):
        raise RuntimeError("the subprocess imported %s, the benchmark %s"
                           % (res["fastbp"], fastbp.__file__))
    return res


class FirstResult:
    """Seconds from a fresh interpreter's start to a trained small network.

    ``setup_cache`` runs the cold cases once, with empty Numba caches in the
    benchmark's working directory: with the kernels the wheel build shipped in
    the package (what a user's first run after ``pip install`` gets), and with
    them hidden (everything compiles: the compile time itself); the warm figures
    reuse the cache the second filled.  Commits before the shipped kernels have
    none, so both cold figures are their compile.
    """

    timeout = 900

    def setup_cache(self):
        cache = os.path.abspath("numba-cache-first-fit")
        shipped = first_fit(os.path.abspath("numba-cache-first-fit-shipped"))
        return {"cache": cache, "cold": first_fit(cache, shipped=False), "shipped": shipped}

    setup_cache.timeout = 900

    def track_first_fit_cold_s(self, cached):
        return cached["cold"]["total_s"]

    track_first_fit_cold_s.unit = "s"

    def track_first_fit_shipped_s(self, cached):
        return cached["shipped"]["total_s"]

    track_first_fit_shipped_s.unit = "s"

    def track_first_fit_warm_s(self, cached):
        return first_fit(cached["cache"])["total_s"]

    track_first_fit_warm_s.unit = "s"

    def track_import_s(self, cached):
        return first_fit(cached["cache"])["import_s"]

    track_import_s.unit = "s"
