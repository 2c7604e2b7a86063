"""asv benchmarks: Population training and the per-call cost of fastbp.jit.

* ``PopulationEpoch``: K networks 2-16-1 (tanh, MSE, float32), 256 samples each
  (per-network data), one epoch of mini-batch SGD through ``Population.fit``
  (the lane kernel) -- without shuffling, the configuration of
  ``bench/population_compare.py`` (which also times the peers: a Python loop
  over K MLPs, torch.func.vmap), and with each network's keyed shuffle.
* ``JitStep``: ``fastbp.jit.train_step_one`` / ``train_step`` called from a
  user's ``@njit`` loop, per call; and the same loop over the unchecked
  internal kernel, so the bounds checks' cost is tracked.

JIT compilation happens in ``setup`` (and is cached on disk), never in a
timed figure.
"""

import numba
import numpy as np
from numba import njit

import fastbp
import fastbp.jit as fj
from fastbp._kernels.runtime import no_values
from fastbp._kernels.train import train_batch
from fastbp.population import Population

from .timing import best_seconds

N_SAMPLES = 256
LR = 0.05


def _data(k, n=N_SAMPLES, seed=0):
    r = np.random.default_rng(seed)
    X = r.uniform(-2, 2, (k, n, 2)).astype(np.float32)
    a = r.uniform(0.5, 2.0, (k, 1))
    y = np.sin(a * X[..., 0]) * np.cos(X[..., 1])
    return X, y[..., None].astype(np.float32)


class PopulationEpoch:
    """One epoch of K independent 2-16-1 networks in one parallel kernel."""

    params = ([100, 1000], [32, 8], [False, True])
    param_names = ["k", "batch", "shuffle"]
    timeout = 600  # the first setup of a fresh commit compiles the kernels

    def setup(self, k, batch, shuffle):
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        self.X, self.y = _data(k)
        self.batch = batch
        self.shuffle = shuffle
        self.pop = Population([2, 16, 1], k, activation="tanh", dtype="float32", seed=0)
        self.epoch()  # compile / load from cache

    def epoch(self):
        self.pop.fit(self.X, self.y, epochs=1, batch_size=self.batch, lr=LR,
                     shuffle=self.shuffle)

    def time_epoch(self, k, batch, shuffle):
        self.epoch()

    def track_samples_per_s(self, k, batch, shuffle):
        return k * N_SAMPLES / best_seconds(self.epoch, 3)

    track_samples_per_s.unit = "samples/s"

    def peakmem_epoch(self, k, batch, shuffle):
        self.epoch()


@njit(cache=True)
def _steps_one(state, x, y, n):
    s = 0.0
    for _ in range(n):
        s += fj.train_step_one(state, x, y)
    return s


@njit(cache=True)
def _steps(state, X, y, n):
    s = 0.0
    for _ in range(n):
        s += fj.train_step(state, X, y)
    return s


@njit(cache=True)
def _steps_unchecked(state, X, y, n):
    s = 0.0
    for _ in range(n):
        s += train_batch(state.model, state.work, state.loss, X, y, state.opt, state.hyper,
                         state.opt_state, state.step, no_values())
    return s


CALLS = 1000


class JitStep:
    """fastbp.jit steps on a 2-16-1 tanh network from a user's @njit loop (1000 calls)."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        r = np.random.default_rng(1)
        net = fastbp.MLP([2, 16, 1], activation="tanh", dtype=dtype, seed=0)
        self.state = net.state(batch_size=32, optimizer="sgd", lr=1e-4)
        self.x = r.uniform(-1, 1, 2).astype(dtype)
        self.t = r.uniform(-1, 1, 1).astype(dtype)
        self.X = r.uniform(-1, 1, (32, 2)).astype(dtype)
        self.Y = r.uniform(-1, 1, (32, 1)).astype(dtype)
        self.X1, self.Y1 = self.X[:1], self.Y[:1]
        _steps_one(self.state, self.x, self.t, 2)
        _steps(self.state, self.X, self.Y, 2)
        _steps_unchecked(self.state, self.X, self.Y, 2)
        _steps_unchecked(self.state, self.X1, self.Y1, 2)

    def time_train_step_one_x1000(self, dtype):
        _steps_one(self.state, self.x, self.t, CALLS)

    def time_train_step_b32_x1000(self, dtype):
        _steps(self.state, self.X, self.Y, CALLS)

    def time_unchecked_train_batch_b32_x1000(self, dtype):
        _steps_unchecked(self.state, self.X, self.Y, CALLS)

    def _per_call_ns(self, f, *args):
        return best_seconds(lambda: f(self.state, *args, 20 * CALLS), 5) / (20 * CALLS) * 1e9

    def track_train_step_one_ns(self, dtype):
        return self._per_call_ns(_steps_one, self.x, self.t)

    track_train_step_one_ns.unit = "ns"

    def track_bounds_check_ns_b32(self, dtype):
        """fastbp.jit.train_step minus the unchecked kernel, per call (batch 32)."""
        return (self._per_call_ns(_steps, self.X, self.Y)
                - self._per_call_ns(_steps_unchecked, self.X, self.Y))

    track_bounds_check_ns_b32.unit = "ns"

    def track_bounds_check_ns_one(self, dtype):
        """fastbp.jit.train_step_one minus the unchecked kernel on a 1-row batch, per call."""
        return (self._per_call_ns(_steps_one, self.x, self.t)
                - self._per_call_ns(_steps_unchecked, self.X1, self.Y1))

    track_bounds_check_ns_one.unit = "ns"
