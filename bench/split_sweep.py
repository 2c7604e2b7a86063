"""Samples/s of the two-thread engines against the one-thread general engine.

    python bench/split_sweep.py 784-256-128-10:64:relu:cross_entropy:30000 \\
        9-3-9-233:48:sigmoid:mse:100000          # SIZES:BATCH:HIDDEN:LOSS:N ...

Each architecture: float32, plain SGD, unshuffled epochs of N samples (data as
``one_case.py``), the median of 5 after a short warm-up fit, the general engine
and the two-thread engine for the batch size (``split`` from ``SPLIT_MIN_BATCH``
samples, else ``units``) forced (``fastbp._engine.force``) in the same process,
two threads.  What set the bounds in ``fastbp/_config.py`` (``SPLIT_*``,
``UNITS_MIN_MACS``).  Named so asv
does not collect it.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastbp  # noqa: E402
from fastbp import _engine  # noqa: E402
from fastbp._config import SPLIT_MIN_BATCH  # noqa: E402
from one_case import case_data  # noqa: E402


def samples_per_s(sizes, batch, hidden, loss, n, engine, repeats=5):
    """Median samples/s of ``repeats`` one-epoch fits on ``engine``."""
    net, X, y = case_data(sizes, hidden, loss, n)
    with _engine.force(engine), fastbp.threads(2):
        net.fit(X[:4 * batch], y[:4 * batch], epochs=1, batch_size=batch, lr=0.001)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=batch, lr=0.001, shuffle=False)
            times.append(time.perf_counter() - t)
    return n / sorted(times)[repeats // 2]


def main(specs):
    for spec in specs:
        p = spec.split(":")
        sizes = tuple(int(s) for s in p[0].split("-"))
        batch = int(p[1])
        n = int(p[4]) if len(p) > 4 else 40000
        n -= n % batch
        g = samples_per_s(sizes, batch, p[2], p[3], n, "general")
        two = "split" if batch >= SPLIT_MIN_BATCH else "units"
        s = samples_per_s(sizes, batch, p[2], p[3], n, two)
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * batch
        print(f"{p[0]:30s} b{batch:<4d} MACs/batch {macs:>12,d}  general {g:>12,.0f}  "
              f"{two} {s:>12,.0f}  {two}/general {s / g:.2f}x", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["784-256-128-10:64:relu:cross_entropy:30000"])
