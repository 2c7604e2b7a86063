"""Cost per output of the softmax forward pass and of its cross-entropy loss and delta.

    python bench/softmax_rows.py                  # 32 x 875, float32
    python bench/softmax_rows.py --rows 1 --classes 10 --dtype float64

Times ``activations.bias_act`` (bias, keep the pre-activation, softmax) and
``losses.loss_delta`` (cross-entropy with integer labels, loss and delta) on one
batch, best of ``--repeats`` runs of ``--calls`` calls each, and prints
nanoseconds per output element and cycles at ``--ghz``.  Compilation happens
before timing.  Named ``run_*`` so asv does not collect it.
"""

import argparse
import time

import numpy as np

from fastbp._kernels.activations import bias_act
from fastbp._kernels.losses import loss_delta
from fastbp.spec import CROSS_ENTROPY, SOFTMAX


def run_softmax_rows(rows, classes, dtype, calls, repeats):
    """Seconds per call of (bias_act softmax, loss_delta cross-entropy)."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((rows, classes)).astype(dtype)
    A = Z.copy()
    P = np.empty_like(Z)
    D = np.empty_like(Z)
    b = np.zeros(classes, dtype)
    y = rng.integers(0, classes, rows)

    def forward():
        A[:] = Z
        bias_act(A, b, SOFTMAX, 0.0, P, True, True)

    def loss():
        loss_delta(A, Z, y, CROSS_ENTROPY, SOFTMAX, 1.0 / rows, D, True, 0.0)

    out = []
    for f in (forward, loss):
        f()
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(calls):
                f()
            best = min(best, (time.perf_counter() - t) / calls)
        out.append(best)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--classes", type=int, default=875)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ghz", type=float, default=3.0, help="clock for the cycles column")
    a = ap.parse_args(argv)
    fwd, loss = run_softmax_rows(a.rows, a.classes, a.dtype, a.calls, a.repeats)
    n = a.rows * a.classes
    print(f"{a.rows} x {a.classes} {a.dtype}: ns / cycles per output")
    print("  (the forward copy of Z into A, a memcpy, is inside the softmax figure)")
    for name, t in (("bias_act softmax", fwd), ("loss_delta cross-entropy", loss)):
        print(f"  {name:26s} {t / n * 1e9:6.2f} ns  {t / n * 1e9 * a.ghz:6.1f} cycles")


if __name__ == "__main__":
    main()
