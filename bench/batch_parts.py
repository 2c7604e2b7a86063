"""Microseconds per batch of the general engine's stages, from an ``@njit`` loop.

    python bench/batch_parts.py 9-3-9-233 48 sigmoid mse
    python bench/batch_parts.py 6-23-8-380-22-875 32 sigmoid cross_entropy

Times ``forward``, ``loss_sum`` (forward + loss), ``loss_grad`` (+ output delta and
backward into the gradient) and ``train_batch`` (one plain-SGD step, fused update) on one
batch of N(0, 1) inputs, float32, best of 7 runs of 3000 calls, no Python in between: the
differences between the rows are the stages' costs.  Named so asv does not collect it.
"""

import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from one_case import case_data  # noqa: E402
from fastbp._kernels.forward import forward  # noqa: E402
from fastbp._kernels.train import loss_grad, loss_sum, train_batch  # noqa: E402
from fastbp._kernels.weights import or_none  # noqa: E402

FORWARD, LOSS, GRADIENT, STEP = 0, 1, 2, 3
STAGES = [("forward", FORWARD), ("+ loss", LOSS), ("+ backward", GRADIENT),
          ("train_batch", STEP)]


@njit(cache=False)
def _stage(which, st, X, y, reps):
    """reps calls of one stage: the forward pass, + the loss, + the output delta and the
    backward pass into the gradient, or a plain-SGD training step (the fused update)."""
    s = 0.0
    for _ in range(reps):
        if which == FORWARD:
            s += forward(st.model, st.work, X, True, False)
        elif which == LOSS:
            s += loss_sum(st.model, st.work, st.loss, X, y, True, or_none(None))
        elif which == GRADIENT:
            s += loss_grad(st.model, st.work, st.loss, X, y, True, or_none(None))
        else:
            s += train_batch(st.model, st.work, st.loss, X, y, st.opt, st.hyper, None,
                             st.step, or_none(None))
    return s


def run_batch_parts(sizes, batch, hidden, loss, reps=3000):
    """Print microseconds per batch of each stage."""
    net, X, y = case_data(sizes, hidden, loss, batch)
    st = net.state(batch_size=batch, optimizer="sgd", lr=1e-6)
    for name, which in STAGES:
        _stage(which, st, X, y, 3)
        best = np.inf
        for _ in range(7):
            t = time.perf_counter()
            _stage(which, st, X, y, reps)
            best = min(best, (time.perf_counter() - t) / reps)
        print(f"{name:12s} {best * 1e6:8.2f} us/batch  {batch / best:12,.0f} samples/s")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    run_batch_parts([int(v) for v in sys.argv[1].split("-")], int(sys.argv[2]), sys.argv[3],
                    sys.argv[4])
