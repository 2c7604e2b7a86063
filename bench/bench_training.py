"""asv benchmarks: training speed, allocations per step, compile time, memory.

Run with ``asv run --python=same`` (see README, "Performance").  JIT warm-up
happens in ``setup`` so compile time never enters a ``time_`` figure; compile
time has its own ``track_`` benchmarks, measured in fresh subprocesses.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

import fastbp
from fastbp import jit as fj

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
    timeout = 300

    def setup(self, dtype, case):
        self.net, self.X, self.y, self.batch = make_case(case, dtype)
        self.fit()  # compile / load from cache

    def fit(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, lr=1e-3, shuffle=False)

    def time_epoch(self, dtype, case):
        self.fit()

    def track_samples_per_s(self, dtype, case):
        best = np.inf
        for _ in range(3):
            t0 = time.perf_counter()
            self.fit()
            best = min(best, time.perf_counter() - t0)
        return len(self.X) / best

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


def _jit_steps_py(state, X, y, k):
    s = 0.0
    for _ in range(k):
        s += fj.train_step(state, X, y)
    return s


_jit_steps = __import__("numba").njit(_jit_steps_py)


class Allocations:
    """Numba-runtime allocations per training step (must be 0)."""

    params = (["float32", "float64"], ["xor-online", "digits-b32", "mnist-b64"])
    param_names = ["dtype", "case"]

    def setup(self, dtype, case):
        from numba.core.runtime import _nrt_python
        _nrt_python.memsys_enable_stats()
        net, X, y, batch = make_case(case, dtype)
        self.args = (net.state(batch_size=batch, lr=1e-3), X[:batch], y[:batch])
        _jit_steps(*self.args, 1)

    def track_nrt_allocations_per_step(self, dtype, case):
        from numba.core.runtime import rtsys
        counts = []
        for k in (10, 1010):
            before = rtsys.get_allocation_stats().alloc
            _jit_steps(*self.args, k)
            counts.append(rtsys.get_allocation_stats().alloc - before)
        return (counts[1] - counts[0]) / 1000.0

    track_nrt_allocations_per_step.unit = "allocations"


_FIRST_STEP = textwrap.dedent("""
    import time
    t0 = time.perf_counter()
    import numpy as np, fastbp
    t1 = time.perf_counter()
    net = fastbp.MLP([64, 128, 10], activation="relu", loss="cross_entropy",
                     dtype="float32", seed=0)
    X = np.zeros((32, 64), np.float32); y = np.zeros(32, np.int64)
    net.train_step(X, y, lr=0.1)
    t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
""")


def _first_step(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _FIRST_STEP], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


class Compile:
    """Import time and the first ``train_step`` in a fresh process: cold and warm cache."""

    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.cache = tempfile.mkdtemp(prefix="fastbp-asv-cache-")

    def track_first_step_cold_cache(self):
        return _first_step(tempfile.mkdtemp(prefix="fastbp-asv-cold-"))[1]

    track_first_step_cold_cache.unit = "s"

    def track_first_step_warm_cache(self):
        _first_step(self.cache)
        return _first_step(self.cache)[1]

    track_first_step_warm_cache.unit = "s"

    def track_import_fastbp(self):
        _first_step(self.cache)
        return _first_step(self.cache)[0]

    track_import_fastbp.unit = "s"
