"""Shared pieces of the peer benchmark: cases, data, initial weights, FLOP
counting, thread control, timing and the reference loss used by ``--check``.

Every peer module (``bench/peers/<name>_peer.py``) defines

``NAME``               short column name,
``available()``        -> ``(ok: bool, reason: str)``, importing nothing heavy
                         at module import time,
``versions()``         -> ``{library: version}``,
``make_trainer(case, X, y, init)`` -> an object with

    ``epoch()``        one pass of plain mini-batch SGD over ``X, y`` in order
                       (``len(X)`` is a multiple of ``case.batch``),
    ``params()``       the current weights as ``[(W (in, out), b (out,)), ...]``
                       float32 numpy arrays (used by ``--check`` only),
    ``note``           (optional) a string describing anything peer specific.

``init`` is the common initial weights (same list format as ``params()``);
a peer that cannot take them says so in ``note`` and uses its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, replace

import numpy as np

SEED = 20240611

#: Environment variables that make this machine's numpy/OpenBLAS slower.
SLOW_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

THREADS = 2


@dataclass(frozen=True)
class Case:
    name: str
    sizes: tuple            # layer widths, input first, output last
    hidden: str             # "relu" | "sigmoid" | "tanh"
    output: str             # "identity" | "softmax"
    loss: str               # "mse" | "cross_entropy"
    batch: int
    lr: float
    n: int                  # samples in the data set (= one full epoch)
    data: str = "random"    # "random" | "xor" | "digits"
    description: str = ""
    key: tuple = ()         # data seed (random cases); () = seeded by the name
    repeats: int = 0        # timed epochs for this case; 0 = --repeats
    max_epoch_s: float = 0.0  # prefix-timing budget for this case; 0 = --max-epoch-s

    @property
    def n_classes(self):
        return self.sizes[-1]


# N is chosen so that one epoch of the fastest peer takes >= ~0.2 s.  A peer
# too slow to get through N in --max-epoch-s is timed on a prefix of the same
# data instead (see epoch_samples); the prefix is reported with the results.
CASES = {
    c.name: c
    for c in [
        Case(
            "xor-online", (2, 8, 1), "sigmoid", "identity", "mse", 1, 0.1,
            n=16_777_216, data="xor",
            description="XOR points tiled+shuffled, 2-8-1 sigmoid hidden, "
                        "identity output, MSE, online (batch 1)",
        ),
        Case(
            "digits-b32", (64, 128, 10), "relu", "softmax", "cross_entropy",
            32, 0.05, n=458_752, data="digits",
            description="sklearn load_digits (x/16) tiled+shuffled, 64-128-10",
        ),
        Case(
            "mnist-b64", (784, 256, 128, 10), "relu", "softmax",
            "cross_entropy", 64, 0.001, n=65_536,
            description="random N(0,1) 784-d inputs, random labels",
        ),
        Case(
            "mnist-b1", (784, 256, 128, 10), "relu", "softmax",
            "cross_entropy", 1, 0.0005, n=32_768,
            description="random N(0,1) 784-d inputs, random labels, online",
        ),
        Case(
            "wide-b256", (1024, 1024, 1024, 10), "relu", "softmax",
            "cross_entropy", 256, 0.001, n=8_192,
            description="random N(0,1) 1024-d inputs, random labels",
        ),
    ]
}

QUICK_DIV = 8   # --quick divides N by this (rounded to the batch)


def quick_case(case: Case) -> Case:
    n = max(case.batch, (case.n // QUICK_DIV) // case.batch * case.batch)
    return replace(case, n=n)


def probe_samples(case: Case) -> int:
    """Size of the short probe that measures a peer's rate: 16 batches or
    1024 samples, whichever is more (at most N)."""
    n = max(16 * case.batch, 1024) // case.batch * case.batch
    return min(n, case.n)


def epoch_samples(case: Case, rate: float, max_epoch_s: float) -> int:
    """Samples in the timed epoch of a peer that trains ``rate`` samples/s:
    all N if that takes at most ``max_epoch_s``, else the largest
    power-of-two number of batches that fits (so between half and all of
    the budget), never fewer than the probe."""
    if rate * max_epoch_s >= case.n:
        return case.n
    batches = max(1, int(rate * max_epoch_s) // case.batch)
    batches = 1 << (batches.bit_length() - 1)
    return min(case.n, max(batches * case.batch, probe_samples(case)))


# ---------------------------------------------------------------- FLOPs
def model_flops_per_sample(sizes) -> int:
    """2*(forward MACs + weight-gradient MACs) + 2*(input-gradient MACs of
    every layer except the first).  Biases and activations are not counted.

    >>> model_flops_per_sample((784, 256, 128, 10))
    1007104
    >>> model_flops_per_sample((1024, 1024, 1024, 10))
    10547200
    """
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * (2 * sum(macs)) + 2 * sum(macs[1:])


def si_format(x):
    """A rate for a table: 1.23M, 456k, 7.8k, 90; "—" for None."""
    if x is None:
        return "—"
    if x >= 1e6:
        return "%.2fM" % (x / 1e6)
    if x >= 1e4:
        return "%.0fk" % (x / 1e3)
    if x >= 1e3:
        return "%.1fk" % (x / 1e3)
    return "%.0f" % x


# ---------------------------------------------------------------- data
def make_data(case: Case):
    """(X float32 (n, d), y) — int64 labels for CE, float32 (n, n_out) for MSE
    (uniform [-1, 1] targets for random data).
    Deterministic in SEED and the case, so every process gets the same."""
    if case.key:
        rng = np.random.default_rng([SEED, 99, *case.key])
    else:
        rng = np.random.default_rng([SEED, sum(map(ord, case.name))])
    n, d = case.n, case.sizes[0]
    if case.data == "xor":
        base = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
        t = np.array([[0], [1], [1], [0]], np.float32)
        idx = rng.integers(0, 4, size=n)
        return np.ascontiguousarray(base[idx]), np.ascontiguousarray(t[idx])
    if case.data == "digits":
        from sklearn.datasets import load_digits

        Xd, yd = load_digits(return_X_y=True)
        reps = -(-n // len(Xd))
        idx = np.tile(np.arange(len(Xd)), reps)
        rng.shuffle(idx)
        idx = idx[:n]
        X = (Xd[idx] / 16.0).astype(np.float32)
        return np.ascontiguousarray(X), yd[idx].astype(np.int64)
    X = rng.standard_normal((n, d), dtype=np.float32)
    if case.loss == "mse":
        return X, rng.uniform(-1, 1, size=(n, case.sizes[-1])).astype(np.float32)
    y = rng.integers(0, case.n_classes, size=n).astype(np.int64)
    return X, y


def data_digest(X, y) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(np.ascontiguousarray(X).view(np.uint8))
    h.update(np.ascontiguousarray(y).view(np.uint8))
    return h.hexdigest()


def init_params(case: Case):
    """Common Glorot-uniform weights (zero biases), float32, W is (in, out)."""
    rng = np.random.default_rng([SEED, 7, sum(map(ord, case.name))])
    out = []
    for a, b in zip(case.sizes[:-1], case.sizes[1:]):
        lim = np.sqrt(6.0 / (a + b))
        W = rng.uniform(-lim, lim, size=(a, b)).astype(np.float32)
        out.append((W, np.zeros(b, np.float32)))
    return out


# ---------------------------------------------------------------- reference loss
def hidden_np(name, a):
    """The hidden activation ``name`` of ``a`` (numpy, any float dtype)."""
    if name == "relu":
        return np.maximum(a, 0)
    if name == "tanh":
        return np.tanh(a)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-a))
    raise ValueError("unknown hidden activation %r" % (name,))


def reference_loss(case: Case, params, X, y) -> float:
    """Mean loss in float64 numpy: MSE = 1/2 sum over outputs, mean over
    samples; CE = mean of -log softmax."""
    a = np.asarray(X, np.float64)
    L = len(params)
    for i, (W, b) in enumerate(params):
        a = a @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        if i < L - 1:
            a = hidden_np(case.hidden, a)
    if case.loss == "mse":
        return float(0.5 * ((a - y) ** 2).sum(1).mean())
    a = a - a.max(1, keepdims=True)
    lse = np.log(np.exp(a).sum(1))
    return float((lse - a[np.arange(len(a)), y]).mean())


# ---------------------------------------------------------------- threads
@contextlib.contextmanager
def thread_limits(use_numba: bool = False):
    """BLAS and OpenMP pools to THREADS via threadpoolctl, and Numba's pool
    when the peer uses Numba; everything restored on exit."""
    from threadpoolctl import threadpool_limits

    old_numba = None
    with threadpool_limits(limits=THREADS):
        try:
            if use_numba:
                import numba

                old_numba = numba.get_num_threads()
                numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
            yield
        finally:
            if old_numba is not None:
                import numba

                numba.set_num_threads(old_numba)


def worker_env() -> dict:
    """Environment for a peer subprocess: OpenMP/MKL/OpenBLAS/XLA at 2."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "NUMBA_NUM_THREADS"):
        env.setdefault(k, str(THREADS))
    # XLA has no intra-op thread-count flag (``intra_op_parallelism_threads``
    # is a TensorFlow option); its CPU pool is sized to the visible cores,
    # which on the benchmark machine is 2.
    env.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    env.setdefault("PYTHONHASHSEED", "0")
    return env


# ---------------------------------------------------------------- timing
def timed_epochs(epoch, repeats: int, warmup: int = 1):
    """Run ``warmup`` untimed epochs (JIT compile, caches, allocator), then
    ``repeats`` timed ones; returns the list of seconds."""
    for _ in range(warmup):
        epoch()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return times


def sgemm_gflops(n: int = 2048, repeats: int = 7) -> dict:
    """numpy float32 n x n @ n x n, median of ``repeats`` after one warm-up."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.matmul(a, b, out=c)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        ts.append(time.perf_counter() - t0)
    med = float(np.median(ts))
    return {"n": n, "seconds": ts, "median_s": med,
            "gflops": 2.0 * n ** 3 / med / 1e9}
