"""Measured float32 FMA peak of this machine (GFLOP/s), for ``compare.py``.

    python bench/fma_peak.py [--threads 2]

A tiny C program, compiled at run time with ``$CC`` (default ``gcc``, else
``cc``) ``-O3 -march=native -pthread``: every thread runs ``NACC``
independent vector accumulators ``acc = acc * m + c`` (GCC vector
extensions at the widest native width -- 512 bits with AVX-512F, 256 with
AVX, else 128 -- contracted to FMA instructions), 16 accumulators for
AVX-512 (32 registers), 12 otherwise, enough to cover a 4-cycle FMA latency
on two FMA ports.  Each FMA counts 2 FLOPs per lane.  Best of ``repeats``
runs of ~0.2 s each, so turbo/AVX-512 clocks are what the machine really
sustains.  The assembly is checked for FMA instructions (x86 ``vfmadd``,
AArch64 ``fmla``); without them, or without a C compiler, no peak is
reported (``None`` and the reason) -- a scalar or unfused figure would not
be a peak.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

C_SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX512F__)
#define VB 64
#define NACC 16
#elif defined(__AVX__)
#define VB 32
#define NACC 12
#else
#define VB 16
#define NACC 12
#endif
#define LANES (VB / 4)
typedef float vf __attribute__((vector_size(VB)));
static long iters;
static float sink[256];

static void *work(void *arg) {
    long id = (long)arg;
    vf acc[NACC], m, c;
    for (int i = 0; i < LANES; i++) { m[i] = 0.9999999f; c[i] = 1e-7f; }
    for (int j = 0; j < NACC; j++)
        for (int i = 0; i < LANES; i++) acc[j][i] = 1e-3f * (float)(j + i + id);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int j = 0; j < NACC; j++) acc[j] = acc[j] * m + c;
    }
    float s = 0;
    for (int j = 0; j < NACC; j++)
        for (int i = 0; i < LANES; i++) s += acc[j][i];
    sink[id & 255] = s;
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iters = argc > 2 ? atol(argv[2]) : 50000000L;
    pthread_t th[256];
    double t0 = now();
    for (long k = 0; k < threads; k++) pthread_create(&th[k], NULL, work, (void *)k);
    for (int k = 0; k < threads; k++) pthread_join(th[k], NULL);
    double dt = now() - t0;
    double flops = 2.0 * LANES * NACC * (double)iters * threads;
    printf("%d %d %d %.6f %.6e %g\n", threads, VB * 8, NACC, dt, flops, sink[0]);
    return 0;
}
"""

FMA_MNEMONICS = ("vfmadd", "vfmsub", "vfnmadd", "fmla")


def _compiler():
    for cc in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def fma_peak(threads=2, repeats=5, target_s=0.2):
    """``{"gflops": best GFLOP/s over threads, "threads", "vector_bits", "accumulators",
    "method", "gflops_1thread"}``, or ``{"gflops": None, "reason": ...}``."""
    cc = _compiler()
    if cc is None:
        return {"gflops": None, "reason": "no C compiler (set CC)"}
    flags = ["-O3", "-march=native", "-pthread"]
    with tempfile.TemporaryDirectory(prefix="fastbp-fma-") as d:
        src, exe, asm = (os.path.join(d, n) for n in ("fma.c", "fma", "fma.s"))
        with open(src, "w") as f:
            f.write(C_SOURCE)
        try:
            subprocess.run([cc, *flags, "-S", "-o", asm, src], check=True,
                           capture_output=True, timeout=120)
            subprocess.run([cc, *flags, "-o", exe, src], check=True, capture_output=True,
                           timeout=120)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            msg = getattr(e, "stderr", b"") or b""
            return {"gflops": None, "reason": "%s failed: %s %s" % (
                cc, type(e).__name__, msg.decode(errors="replace")[-300:])}
        with open(asm) as f:
            text = f.read()
        if not any(m in text for m in FMA_MNEMONICS):
            return {"gflops": None, "reason": "%s -march=native emitted no FMA instructions "
                                              "(no FMA unit?)" % cc}

        def run(t, iters):
            out = subprocess.run([exe, str(t), str(iters)], check=True, capture_output=True,
                                 text=True, timeout=600).stdout.split()
            return int(out[1]), int(out[2]), float(out[3]), float(out[4])

        def best(t):
            bits, nacc, dt, fl = run(t, 2_000_000)  # calibrate: ~target_s per run
            iters = max(1_000_000, int(2_000_000 * target_s / max(dt, 1e-6)))
            g = 0.0
            for _ in range(repeats):
                bits, nacc, dt, fl = run(t, iters)
                g = max(g, fl / dt / 1e9)
            return g, bits, nacc

        g1, bits, nacc = best(1)
        gt = best(threads)[0] if threads > 1 else g1
    ver = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    return {"gflops": max(gt, g1), "gflops_1thread": g1, "threads": threads,
            "vector_bits": bits, "accumulators": nacc,
            "method": "C, %s -O3 -march=native, %d-bit vectors, %d independent FMA "
                      "accumulators per thread, %d threads, best of %d"
                      % ((ver.splitlines() or [cc])[0], bits, nacc, threads, repeats)}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    r = fma_peak(a.threads)
    if r["gflops"] is None:
        print("FMA peak not measured: " + r["reason"])
        sys.exit(1)
    print("FMA peak %.1f GFLOP/s (%d threads; 1 thread %.1f) -- %s"
          % (r["gflops"], r["threads"], r["gflops_1thread"], r["method"]))
