"""Training from a memory map larger than the data memory: throughput and peak RSS.

Not an asv benchmark (asv collects ``time_``/``track_``/``peakmem_`` names;
these are ``run_*``).  Run it directly::

    python bench/stream_bench.py                  # 0.25 GB and 1 GB files
    python bench/stream_bench.py --gb 1 4 8       # larger files (needs the disk)

For each size it writes ``X`` (float32) and ``y`` to ``.npy`` memory maps,
then, in a fresh process per measurement, trains one epoch from the memory
map and reports samples/s and the peak resident memory during the epoch
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``).  The same
per-sample shape trained from an in-memory array gives the reference rate.
Peak RSS should stay flat as the file grows: ``fit`` copies each chunk out
of the mapping and releases the mapped pages.  The files are freshly written,
so most reads come from the page cache, not the disk.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

#: Network trained in every measurement (input width = features).
HIDDEN = 64
BATCH = 64


def run_write(directory, gb, features=32, seed=0):
    """Write ``X.npy`` (float32, ``gb`` GB) and ``y.npy`` in blocks; return their paths."""
    n = int(gb * 1e9) // (features * 4)
    px = os.path.join(directory, f"X_{gb:g}.npy")
    py = os.path.join(directory, f"y_{gb:g}.npy")
    if os.path.exists(px) and os.path.exists(py):
        return px, py
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(features).astype(np.float32) / np.sqrt(features)
    X = np.lib.format.open_memmap(px, mode="w+", dtype=np.float32, shape=(n, features))
    y = np.lib.format.open_memmap(py, mode="w+", dtype=np.float32, shape=(n, 1))
    block = 1 << 18
    for s in range(0, n, block):
        e = min(s + block, n)
        xb = rng.standard_normal((e - s, features), dtype=np.float32)
        X[s:e] = xb
        y[s:e, 0] = np.tanh(xb @ w)
    X.flush()
    y.flush()
    del X, y
    return px, py


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _net(features, dtype="float32"):
    import fastbp
    return fastbp.MLP([features, HIDDEN, 1], activation="relu", dtype=dtype, seed=0)


def run_memmap_epoch(px, py, chunk_mb=64):
    """One epoch from the memory maps at ``px``/``py``: samples/s and peak RSS (kB)."""
    X = np.load(px, mmap_mode="r")
    y = np.load(py, mmap_mode="r")
    features = X.shape[1]
    rows = chunk_mb * (1 << 20) // (features * 4)
    net = _net(features)
    net.fit(X[:4 * BATCH], y[:4 * BATCH], batch_size=BATCH, chunk_size=BATCH)  # compile
    base = _rss_kb("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=BATCH, chunk_size=rows)
    dt = time.perf_counter() - t0
    return {"source": "memmap", "gb": os.path.getsize(px) / 1e9, "rows": X.shape[0],
            "samples_per_s": X.shape[0] / dt, "seconds": dt,
            "rss_before_kb": base, "peak_rss_kb": _rss_kb("VmHWM"), "peak_reset": reset,
            "loss": net.history_.loss[-1]}


def run_memory_epoch(features=32, rows=1 << 21, seed=0):
    """One epoch from an in-memory float32 array of ``rows`` rows: samples/s and peak RSS."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    y = np.tanh(X @ (rng.standard_normal((features, 1)).astype(np.float32) / 6))
    net = _net(features)
    net.fit(X[:4 * BATCH], y[:4 * BATCH], batch_size=BATCH)  # compile
    base = _rss_kb("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    net.fit(X, y, epochs=1, batch_size=BATCH)
    dt = time.perf_counter() - t0
    return {"source": "memory", "gb": X.nbytes / 1e9, "rows": rows,
            "samples_per_s": rows / dt, "seconds": dt, "rss_before_kb": base,
            "peak_rss_kb": _rss_kb("VmHWM"), "peak_reset": reset,
            "loss": net.history_.loss[-1]}


def _child(args):
    """Run one measurement in a fresh process and return its dict."""
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gb", type=float, nargs="+", default=[0.25, 1.0],
                   help="memory-map sizes in GB (default: 0.25 1)")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--memory-rows", type=int, default=1 << 21,
                   help="rows of the in-memory reference set")
    p.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        kind, *rest = json.loads(a.child)
        res = run_memmap_epoch(*rest) if kind == "memmap" else run_memory_epoch(*rest)
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        results = [_child(["memory", a.features, a.memory_rows])]
        for gb in a.gb:
            px, py = run_write(d, gb, a.features)
            results.append(_child(["memmap", px, py]))
            os.remove(px)
            os.remove(py)
    print(f"net [{a.features}, {HIDDEN}, 1] relu, float32, batch {BATCH}, one epoch, "
          f"64 MB chunks")
    print(f"{'source':8} {'data GB':>8} {'rows':>11} {'samples/s':>12} {'s':>7} "
          f"{'RSS before MB':>14} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['source']:8} {r['gb']:8.2f} {r['rows']:11d} {r['samples_per_s']:12.0f} "
              f"{r['seconds']:7.2f} {r['rss_before_kb'] / 1024:14.0f} "
              f"{r['peak_rss_kb'] / 1024:12.0f}")


if __name__ == "__main__":
    main()
