"""Timing helper shared by the asv benchmarks (asv collects no benchmarks here)."""

import time


def best_seconds(fn, repeats):
    """The shortest of ``repeats`` wall-clock timings of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
