"""fastbp alone on one architecture: best-of-5 epoch throughput, optionally on a forced engine.

    python bench/one_case.py 298-6-3 115 sigmoid cross_entropy            # sizes batch hidden loss
    python bench/one_case.py 784-256-128-10 1 relu cross_entropy 20000     # N samples (default 40000)
    python bench/one_case.py 9-3-9-233 48 sigmoid mse 200000 general       # force an engine

Float32, plain SGD (lr 0.01), shuffled, N(0, 1) inputs; random labels for
cross-entropy (softmax output), uniform [-1, 1] targets for MSE (identity
output).  One short fit compiles first; then five epochs, the fastest
reported.  For A/B of two checkouts run it with ``PYTHONPATH`` set to each, in
one sitting (``compare.py`` is the peer comparison).  Named ``run_*`` so asv
does not collect it.
"""

import contextlib
import sys
import time

import numpy as np

import fastbp
from fastbp import _engine


def case_data(sizes, hidden, loss, n):
    """``(net, X, y)``: the case's float32 network (seed 0) and ``n`` samples of its data."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        y, out = rng.integers(0, sizes[-1], n), "softmax"
    else:
        y, out = rng.uniform(-1, 1, (n, sizes[-1])).astype(np.float32), "identity"
    net = fastbp.MLP(list(sizes), activation=hidden, output=out, loss=loss, dtype="float32",
                     seed=0)
    return net, X, y


def run_one_case(sizes, batch, hidden, loss, n=40000, engine=None, repeats=5):
    """Samples/s of the fastest of ``repeats`` epochs."""
    n -= n % batch
    net, X, y = case_data(sizes, hidden, loss, n)
    with (_engine.force(engine) if engine else contextlib.nullcontext()):
        net.fit(X[:batch * 4], y[:batch * 4], epochs=1, batch_size=batch, lr=0.01)
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=batch, lr=0.01, shuffle=True)
            best = min(best, time.perf_counter() - t)
    return n / best


if __name__ == "__main__":
    a = sys.argv[1:]
    sizes = tuple(int(s) for s in a[0].split("-"))
    sps = run_one_case(sizes, int(a[1]), a[2], a[3], int(a[4]) if len(a) > 4 else 40000,
                       a[5] if len(a) > 5 else None)
    print(f"{a[0]} batch {a[1]} {a[2]} {a[3]} engine {a[5] if len(a) > 5 else 'auto'}: "
          f"{sps:,.0f} samples/s")
