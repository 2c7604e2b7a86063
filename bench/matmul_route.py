"""Own loops against BLAS for matmul.py's three products: the measurements behind
``_config``'s routing constants (``BLAS_MIN_MACS``, ``SMALL_KERNEL_MAX_MACS``,
``OWN_*``).

    python bench/matmul_route.py nt 48,3,9 2,784,256     # C is n x m, inner dimension k
    python bench/matmul_route.py nn 48,233,9
    OPENBLAS_CORETYPE=Haswell python bench/matmul_route.py tn 233,48,9   # AVX2 kernels

Float32, C-contiguous operands reused call after call (in cache), best of 5 runs
of enough calls for ~20 ms; prints microseconds per product for each side and
own ÷ BLAS.  The own side is ``matmul.py`` compiled with every product on its
own loops (``blas_threads._loop_module``), so the rule itself does not pick the
side.  Named so asv does not collect it.
"""

import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from blas_threads import _loop_module  # noqa: E402
from fastbp._kernels.blas import gemm  # noqa: E402
from fastbp._kernels.openblas import openblas_core  # noqa: E402
from fastbp._kernels.runtime import runtime  # noqa: E402

_LOOPS = _loop_module()  # matmul.py compiled with every product on its own loops


@njit(cache=False)  # takes dispatchers as arguments: not cacheable
def _own(mm, which, A, B, C, reps):
    """reps of the product by the given (own-loops) matmul function."""
    for _ in range(reps):
        mm(1.0, A, B, 0.0, C)


@njit(cache=False)
def _blas(which, A, B, C, reps):
    """reps of the same product by BLAS gemm."""
    for _ in range(reps):
        if which == 0:
            gemm(runtime(False), runtime(True), 1.0, A, B, 0.0, C)
        elif which == 1:
            gemm(runtime(False), runtime(False), 1.0, A, B, 0.0, C)
        else:
            gemm(runtime(True), runtime(False), 1.0, A, B, 0.0, C)


def _best(f, args, macs):
    reps = max(20, int(2e7 // max(macs, 1)))
    f(*args, 2)
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        f(*args, reps)
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def run_route(kind, shapes):
    """Print own and BLAS microseconds per product for each (n, k, m)."""
    which = {"nt": 0, "nn": 1, "tn": 2}[kind]
    mm = {"nt": _LOOPS.mm_nt, "nn": _LOOPS.mm_nn, "tn": _LOOPS.mm_tn}[kind]
    rng = np.random.default_rng(0)
    print(f"{kind} (OpenBLAS core {openblas_core() or '?'}): n k m, macs, own us, blas us, "
          "own/blas")
    for n, k, m in shapes:
        def r(*s):
            return rng.standard_normal(s).astype(np.float32)
        A, B = (r(n, k), r(m, k)) if which == 0 else (r(n, k), r(k, m)) if which == 1 else \
            (r(k, n), r(k, m))
        C = np.zeros((n, m), np.float32)
        macs = n * k * m
        o = _best(lambda *a: _own(mm, which, *a), (A, B, C), macs)
        b = _best(lambda *a: _blas(which, *a), (A, B, C), macs)
        print(f"  {n:5d} {k:5d} {m:5d} {macs:10d} {o * 1e6:9.2f} {b * 1e6:9.2f} {o / b:6.2f}",
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("nt", "nn", "tn"):
        sys.exit(__doc__)
    run_route(sys.argv[1], [tuple(int(v) for v in s.split(",")) for s in sys.argv[2:]])
