"""Where BLAS threads and BLAS itself pay off, for the products fastbp issues.

    python bench/blas_threads.py                 # both measurements
    python bench/blas_threads.py --threads-only  # 1 vs 2 OpenBLAS threads
    python bench/blas_threads.py --json out.json

The three products of backpropagation (``_kernels/matmul.py``), batch ``M``,
layer ``K`` inputs -> ``N`` outputs, ``M*N*K`` multiply-adds each:

* ``nt`` forward  ``Z = X @ W.T``        (M x K) (N x K)^T -> (M x N)
* ``nn`` delta    ``D' = D @ W``          (M x N) (N x K)   -> (M x K)
* ``tn`` weights  ``W += -lr * D.T @ X``  (M x N)^T (M x K) -> (N x K), beta 1

1. **Threads**: each product through sgemm with OpenBLAS at 1 and at 2
   threads, A/B interleaved in rounds (so machine load hits both alike), with
   fastbp's thread policy bypassed; prints t(2)/t(1) by MACs and the smallest
   MACs from which 2 threads win for every larger shape measured.
2. **Loops vs BLAS** (one thread): fastbp's register loops (``matmul.py``
   compiled with ``BLAS_MIN_MACS`` out of reach) against sgemm.

Timings are medians over the rounds of per-call times, each from a compiled
loop of calls (no Python per call).  On a busy machine the threaded figures
suffer most: say so when quoting them.
"""

import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np
from numba import njit
from numba.core.caching import NullCache

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from fastbp._config import BLAS_MIN_MACS, JIT, OPENBLAS_THREAD_MIN_MACS  # noqa: E402
from fastbp._kernels import blas  # noqa: E402
from fastbp._kernels.blas import _xgemm  # noqa: E402

_N, _T = 78, 84  # ord('N'), ord('T')


@njit(**JIT)
def _blas_loop(kind, X, W, D, Z, G, reps):
    """reps sgemm calls of one product (policy off: single_below = 0)."""
    M, K = X.shape
    N = W.shape[0]
    for _ in range(reps):
        if kind == 0:    # Z = X @ W.T: col-major Z^T (N x M) = W (T) . X^T
            _xgemm(_T, _N, N, M, K, 1.0, W, K, X, K, 0.0, Z, N, 0)
        elif kind == 1:  # X' = D @ W: col-major (K x M) = W^T (N) . D^T
            _xgemm(_N, _N, K, M, N, 1.0, W, K, D, N, 0.0, X, K, 0)
        else:            # W += -1e-9 * D.T @ X: col-major W^T (K x N) = X^T . D
            _xgemm(_N, _T, K, N, M, -1e-9, X, K, D, N, 1.0, W, K, 0)


def _loop_module():
    """A private copy of matmul.py whose products always take the register loops."""
    path = os.path.join(os.path.dirname(blas.__file__), "matmul.py")
    spec = importlib.util.spec_from_file_location("fastbp._kernels._bench_matmul", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.BLAS_MIN_MACS = 1 << 62  # read at compile time: loops for every size
    for name in ("mm_nt", "mm_nn", "mm_tn", "_scale", "_use_blas"):
        getattr(mod, name)._cache = NullCache()  # never mix with the real cache
    return mod


@njit(**dict(JIT, cache=False))  # takes dispatchers as arguments: not cacheable
def _loops_loop(mm_nt, mm_nn, mm_tn, kind, X, W, D, Z, G, reps):
    """reps calls of one product through the given matmul.py functions."""
    for _ in range(reps):
        if kind == 0:
            mm_nt(1.0, X, W, 0.0, Z)
        elif kind == 1:
            mm_nn(1.0, D, W, 0.0, X)
        else:
            mm_tn(-1e-9, D, X, 1.0, W)


def _loop_runner(mod):
    return lambda kind, *a: _loops_loop(mod.mm_nt, mod.mm_nn, mod.mm_tn, kind, *a)


def _arrays(M, K, N):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((N, K)).astype(np.float32)
    D = rng.standard_normal((M, N)).astype(np.float32)
    Z = np.zeros((M, N), np.float32)
    G = np.zeros((N, K), np.float32)
    return X, W, D, Z, G


def _reps(macs, target_s=1e-3):
    return max(1, int(target_s / max(macs * 2 / 30e9, 2e-7)))


def _time(fn, kind, arrs, reps):
    t = time.perf_counter()
    fn(kind, *arrs, reps)
    return (time.perf_counter() - t) / reps


def measure(shapes, configs, rounds):
    """configs: {label: (setup(), fn)}; A/B interleaved, median per-call seconds."""
    rows = []
    for kind, M, K, N in shapes:
        arrs = _arrays(M, K, N)
        macs = M * K * N
        reps = _reps(macs)
        for setup, fn in configs.values():  # warm up (compile, first touch)
            setup()
            fn(kind, *arrs, 1)
        times = {label: [] for label in configs}
        for _ in range(rounds):
            for label, (setup, fn) in configs.items():
                setup()
                times[label].append(_time(fn, kind, arrs, reps))
        rows.append(dict(kind="nt nn tn".split()[kind], M=M, K=K, N=N, macs=macs,
                         **{label: float(np.median(v)) for label, v in times.items()}))
    return rows


def crossover(rows, slow, fast):
    """Smallest MACs from which ``fast`` beats ``slow`` on every measured larger shape."""
    rows = sorted(rows, key=lambda r: r["macs"])
    best = None
    for i in range(len(rows) - 1, -1, -1):
        if rows[i][fast] < rows[i][slow]:
            best = rows[i]["macs"]
        else:
            break
    return best


def _print(rows, a, b, title):
    print(f"\n{title}: per-call us, ratio {b}/{a}")
    print(f"{'kind':>4} {'M':>4} {'K':>5} {'N':>5} {'MACs':>10} {a:>10} {b:>10} {'ratio':>6}")
    for r in sorted(rows, key=lambda r: (r["kind"], r["macs"])):
        print(f"{r['kind']:>4} {r['M']:>4} {r['K']:>5} {r['N']:>5} {r['macs']:>10} "
              f"{r[a] * 1e6:>10.2f} {r[b] * 1e6:>10.2f} {r[b] / r[a]:>6.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads-only", action="store_true")
    ap.add_argument("--loops-only", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--loops-macs", type=int, nargs=2, default=(2048, 524288),
                    metavar=("LO", "HI"), help="MACs range of the loops-vs-BLAS shapes")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    funcs = blas._THREAD_FUNCTIONS
    if funcs is None:
        sys.exit("needs SciPy's OpenBLAS with pthreads (blas_thread_control() is False)")
    get, set_ = funcs
    user = get()
    out = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(),
           "BLAS_MIN_MACS": BLAS_MIN_MACS}
    batches = (1, 8, 32, 64, 79, 128, 256)
    widths = (2, 16, 64, 128, 256, 512, 1024)
    try:
        if not args.loops_only:
            shapes = [(kind, M, K, N) for kind in range(3) for M in batches
                      for K in widths for N in widths
                      if M * K * N >= OPENBLAS_THREAD_MIN_MACS // 2]
            configs = {"t1": (lambda: set_(1), _blas_loop), "t2": (lambda: set_(2), _blas_loop)}
            rows = measure(shapes, configs, args.rounds)
            _print(rows, "t1", "t2", "OpenBLAS 1 vs 2 threads")
            out["threads"] = rows
            for kind in ("nt", "nn", "tn"):
                sel = [r for r in rows if r["kind"] == kind]
                print(f"{kind}: 2 threads win from {crossover(sel, 't1', 't2')} MACs on "
                      f"(every larger shape); wins {sum(r['t2'] < r['t1'] for r in sel)}"
                      f"/{len(sel)}")
            print(f"all: 2 threads win from {crossover(rows, 't1', 't2')} MACs on")
        if not args.threads_only:
            loops = _loop_runner(_loop_module())
            shapes = [(kind, M, K, N) for kind in range(3) for M in batches
                      for K in widths for N in widths
                      if args.loops_macs[0] <= M * K * N <= args.loops_macs[1]]
            configs = {"blas": (lambda: set_(1), _blas_loop), "loops": (lambda: None, loops)}
            rows = measure(shapes, configs, args.rounds)
            _print(rows, "loops", "blas", "register loops vs sgemm, 1 thread")
            out["loops"] = rows
            for kind in ("nt", "nn", "tn"):
                sel = [r for r in rows if r["kind"] == kind]
                print(f"{kind}: BLAS wins from {crossover(sel, 'loops', 'blas')} MACs on; "
                      f"wins {sum(r['blas'] < r['loops'] for r in sel)}/{len(sel)}")
    finally:
        set_(user)
    out["load_avg_end"] = os.getloadavg()
    print(f"\nload average start {out['load_avg_start']}, end {out['load_avg_end']} "
          f"on {out['cpu_count']} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
