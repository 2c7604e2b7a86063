"""Microseconds per batch of the general engine's stages, from an ``@njit`` loop.

    python bench/batch_parts.py 9-3-9-233 48 sigmoid mse
    python bench/batch_parts.py 6-23-8-380-22-875 32 sigmoid cross_entropy

Times ``forward``, ``loss_sum`` (forward + loss), ``loss_grad`` (+ output delta and
backward into the gradient) and ``train_batch`` (one plain-SGD step, fused update) on one
batch of N(0, 1) inputs, float32, best of 7 runs of 3000 calls, no Python in between: the
differences between the rows are the stages' costs.  Named so asv does not collect it.
"""

import sys
import time

import numpy as np
from numba import njit

import fastbp
from fastbp._kernels.forward import forward
from fastbp._kernels.train import loss_grad, loss_sum, train_batch
from fastbp._kernels.weights import or_none


@njit(cache=False)
def _forward(st, X, y, reps):
    """reps forward passes."""
    s = 0
    for _ in range(reps):
        s += forward(st.model, st.work, X, True, False)
    return s


@njit(cache=False)
def _loss(st, X, y, reps):
    """reps forward passes and losses."""
    s = 0.0
    for _ in range(reps):
        s += loss_sum(st.model, st.work, st.loss, X, y, True, or_none(None))
    return s


@njit(cache=False)
def _grad(st, X, y, reps):
    """reps forward, loss, delta and backward passes into the gradient."""
    s = 0.0
    for _ in range(reps):
        s += loss_grad(st.model, st.work, st.loss, X, y, True, or_none(None))
    return s


@njit(cache=False)
def _step(st, X, y, reps):
    """reps plain-SGD training steps (the fused update)."""
    s = 0.0
    for _ in range(reps):
        s += train_batch(st.model, st.work, st.loss, X, y, st.opt, st.hyper, None, st.step,
                         or_none(None))
    return s


def run_batch_parts(sizes, batch, hidden, loss, reps=3000):
    """Print microseconds per batch of each stage."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        y, out = rng.integers(0, sizes[-1], batch), "softmax"
    else:
        y, out = rng.uniform(-1, 1, (batch, sizes[-1])).astype(np.float32), "identity"
    net = fastbp.MLP(sizes, activation=hidden, output=out, loss=loss, dtype="float32", seed=0)
    st = net.state(batch_size=batch, optimizer="sgd", lr=1e-6)
    for name, f in [("forward", _forward), ("+ loss", _loss), ("+ backward", _grad),
                    ("train_batch", _step)]:
        f(st, X, y, 3)
        best = np.inf
        for _ in range(7):
            t = time.perf_counter()
            f(st, X, y, reps)
            best = min(best, (time.perf_counter() - t) / reps)
        print(f"{name:12s} {best * 1e6:8.2f} us/batch  {batch / best:12,.0f} samples/s")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    run_batch_parts([int(v) for v in sys.argv[1].split("-")], int(sys.argv[2]), sys.argv[3],
                    sys.argv[4])
