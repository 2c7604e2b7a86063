"""Own loops against BLAS for matmul.py's three products: the measurements behind
``_config``'s routing constants (``BLAS_MIN_MACS``, ``SMALL_KERNEL_MAX_MACS``,
``OWN_*``).

    python bench/matmul_route.py nt 48,3,9 2,784,256     # C is n x m, inner dimension k
    python bench/matmul_route.py nn 48,233,9
    OPENBLAS_CORETYPE=Haswell python bench/matmul_route.py tn 233,48,9   # AVX2 kernels

Float32, C-contiguous operands reused call after call (in cache), best of 5 runs
of enough calls for ~20 ms; prints microseconds per product for each side and
own ÷ BLAS.  The own side is the loops ``mm_*`` run below the BLAS threshold,
called directly, so the rule itself does not pick the side.  Named so asv does
not collect it.
"""

import sys
import time

import numpy as np
from numba import njit

from fastbp._kernels import matmul as M
from fastbp._kernels.blas import gemm
from fastbp._kernels.openblas import openblas_core
from fastbp._kernels.runtime import runtime


@njit(cache=False)
def _own_nt(A, B, C, reps):
    """reps of C <- A @ B.T by mm_nt's own loops."""
    for _ in range(reps):
        M._scale(0.0, C)
        M._dots_nt(np.float32(1.0), A, B, C)


@njit(cache=False)
def _own_nn(A, B, C, reps):
    """reps of C <- A @ B by mm_nn's own loops (four rank-1 terms per pass)."""
    n, k = A.shape
    for _ in range(reps):
        M._scale(0.0, C)
        k4 = k - k % 4
        for i in range(n):
            c = C[i]
            for p in range(0, k4, 4):
                M._axpy4(c, A[i, p], B[p], A[i, p + 1], B[p + 1], A[i, p + 2], B[p + 2],
                         A[i, p + 3], B[p + 3])
            for p in range(k4, k):
                M._axpy(c, A[i, p], B[p])


@njit(cache=False)
def _own_tn(A, B, C, reps):
    """reps of C <- A.T @ B by mm_tn's own loops."""
    k, n = A.shape
    for _ in range(reps):
        M._scale(0.0, C)
        k4 = k - k % 4
        for p in range(0, k4, 4):
            for i in range(n):
                M._axpy4(C[i], A[p, i], B[p], A[p + 1, i], B[p + 1], A[p + 2, i], B[p + 2],
                         A[p + 3, i], B[p + 3])
        for p in range(k4, k):
            for i in range(n):
                M._axpy(C[i], A[p, i], B[p])


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
    own = {"nt": _own_nt, "nn": _own_nn, "tn": _own_tn}[kind]
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
        o = _best(own, (A, B, C), macs)
        b = _best(lambda *a: _blas(which, *a), (A, B, C), macs)
        print(f"  {n:5d} {k:5d} {m:5d} {macs:10d} {o * 1e6:9.2f} {b * 1e6:9.2f} {o / b:6.2f}",
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("nt", "nn", "tn"):
        sys.exit(__doc__)
    run_route(sys.argv[1], [tuple(int(v) for v in s.split(",")) for s in sys.argv[2:]])
