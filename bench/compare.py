"""Peer comparison: training throughput of fastbp against PyTorch, JAX,
scikit-learn and a hand-written NumPy backprop.

    python bench/compare.py                       # everything, 7 repeats
    python bench/compare.py --quick               # N / 8, 3 repeats (smoke test)
    python bench/compare.py --cases mnist-b64,wide-b256 --peers fastbp,torch
    python bench/compare.py --check               # correctness sanity only
    python bench/compare.py --random 24 --seed 1 --cases none   # 24 random architectures
    python bench/compare.py --random 24 --seed 1 --json run.json # fixed cases + random set

``--random N --seed S`` adds N architectures drawn from the seed
(``peers/random_cases.py``: depth 1-5 hidden layers, widths 2-1024, batch
1-256, relu/tanh/sigmoid hidden, softmax-CE or MSE, fp32), run by the peers in
``--random-peers`` (default fastbp, jax, torch), 5 timed epochs each, and
reports each ratio fastbp ÷ best peer, fastbp's engine for the case, the
geometric mean and the minimum of the ratios.  ``--cases none`` runs only them.

For fair numbers run it on an idle machine and without the OpenBLAS
overrides that some environments set (they slow numpy's sgemm, hence the
numpy and sklearn peers and the sgemm reference)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py

The script warns when either variable is set, when other programs keep the
CPUs busy at the start, or while any peer runs (CPU time of the whole
machine minus the benchmark's own, sampled from /proc/stat), and when the
sgemm reference moves by more than 10% between the start and the end.

Protocol
--------
* Every peer trains the same architecture on the same data (generated from a
  fixed seed in ``peers/common.py``; each peer process checks the digest)
  with the same algorithm: plain mini-batch SGD, no momentum, constant lr, no
  weight decay, no shuffling (the data is shuffled once when it is made and
  every peer walks it in order), N a multiple of the batch, float32, the
  same initial weights (Glorot-uniform, zero biases) wherever a peer lets
  us set them.
* MSE is 1/2 * sum over outputs, mean over the batch; cross-entropy is
  softmax + negative log likelihood, mean over the batch.
* xor-online uses an *identity* output with MSE.  A sigmoid output would be
  as valid, but identity + MSE is the one combination every peer supports
  natively (sklearn's MLPRegressor has an identity output only), so all
  peers run the identical model.
* Each peer runs in its own subprocess (so OpenMP / MKL / OpenBLAS / Numba /
  XLA thread pools cannot interfere), with BLAS and OpenMP pools limited to
  2 threads by threadpoolctl, ``numba.set_num_threads(2)`` for fastbp,
  ``torch.set_num_threads(2)`` for torch, OMP/MKL/OPENBLAS_NUM_THREADS=2 in
  the environment; JAX gets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true``
  (XLA has no intra-op thread-count flag; its CPU pool is sized to the
  cores, 2 here).  Everything is restored on exit.
* For every case a peer first runs one untimed warm-up epoch (JIT compile,
  allocator, caches), then ``--repeats`` timed epochs (training continues
  from epoch to epoch); the median epoch time gives samples/s of training
  (forward + backward + update; for JAX the data are on the device before
  timing, which on CPU is a no-op copy).
* N per case (``peers/common.py``) is set so that the fastest peer needs
  >= ~0.2 s per epoch.  A peer that could not get through N samples within
  ``--max-epoch-s`` (default 2 s; e.g. the eager peers on batch-1 cases) is
  timed on a prefix of the same data: a short probe (16 batches or 1024
  samples, after its own warm-up) measures its rate, and the timed epoch is
  the largest power-of-two number of batches that fits the budget.  Such
  cells are marked in the table and the prefix sizes listed under it;
  samples/s is what is compared.  Each measured epoch starts from the
  common initial weights in a fresh trainer (the probe's is discarded).
* The run also measures the machine's float32 FMA peak (``fma_peak.py``: a C
  program compiled with ``gcc -O3 -march=native``, independent vector FMA
  accumulators on every thread), reported next to sgemm.
* Model FLOPs per sample = 2*(forward MACs + weight-gradient MACs) +
  2*(input-gradient MACs of every layer except the first); model GFLOP/s
  is shown as a fraction of a numpy float32 2048^3 sgemm measured in the
  same run (before and after the peers, the larger is the reference).
* ``--check`` trains each peer for one epoch on the digits case from the
  common initial weights and prints the loss of the first batch before
  training and of the last batch after it (both computed by one float64
  numpy forward pass from the weights the peer hands back), plus the
  largest weight difference from the NumPy peer.  Every peer must decrease
  the loss.

Output: a Markdown table printed and written to ``OUT/results.md``, the raw
numbers and machine information in ``OUT/results.json``, and a log-scale bar
chart ``OUT/results.png`` (OUT defaults to ``bench/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if not __package__ and ROOT not in sys.path:  # run as a script: fastbp from the checkout
    sys.path.insert(0, ROOT)  # (not when asv imports bench.compare: the installed fastbp wins)

import numpy as np  # noqa: E402

import random_report  # noqa: E402
from fma_peak import fma_peak  # noqa: E402
from peers import PEERS, load  # noqa: E402
from peers.common import (CASES, SLOW_ENV_VARS, THREADS, data_digest,  # noqa: E402
                          init_params, make_data, model_flops_per_sample,
                          quick_case, reference_loss, probe_samples,
                          epoch_samples, si_format as _si,
                          sgemm_gflops, thread_limits, timed_epochs,
                          worker_env)
from peers.random_cases import REPEATS as RANDOM_REPEATS  # noqa: E402
from peers.random_cases import case_by_name, case_list as _case_list, random_cases  # noqa: E402
from peer_check import CHECK_CASE, run_check, worker_check  # noqa: E402

RESULT_TAG = "@@FASTBP-BENCH-RESULT@@"
DEFAULT_REPEATS, DEFAULT_MAX_EPOCH_S = 7, 2.0
RANDOM_PEERS = ("fastbp", "jax", "torch")


# ====================================================================== worker
def case_repeats(case, repeats):
    """Timed epochs: --repeats if given, else the case's own, else the default."""
    return repeats or case.repeats or DEFAULT_REPEATS


def case_max_epoch_s(case, max_epoch_s):
    """Prefix-timing budget: --max-epoch-s if given, else the case's own, else 2 s."""
    return max_epoch_s or case.max_epoch_s or DEFAULT_MAX_EPOCH_S


def worker_bench(peer, case_names, repeats, quick, max_epoch_s):
    mod = load(peer)
    ok, why = mod.available()
    if not ok:
        return {"status": "skipped", "reason": why}
    out = {"status": "ok", "versions": mod.versions(), "cases": {}}
    with thread_limits(use_numba=(peer == "fastbp")):
        out["threadpools"] = _threadpool_info()
        for case in _case_list(case_names, quick):
            X, y = make_data(case)
            digest = data_digest(X, y)
            res = {"digest": digest}
            reps = case_repeats(case, repeats)
            budget = case_max_epoch_s(case, max_epoch_s)
            try:
                # probe: a short prefix, one warm-up epoch (compiles), best of 2
                n_p = probe_samples(case)
                tr = mod.make_trainer(case, X[:n_p], y[:n_p], init_params(case))
                res["probe_s"] = min(timed_epochs(tr.epoch, 2, warmup=1))
                del tr
                rate = n_p / max(res["probe_s"], 1e-9)
                n = epoch_samples(case, rate, budget)
                X, y = X[:n], y[:n]
                res.update(samples=n, batches=n // case.batch, capped=n < case.n)
                tr = mod.make_trainer(case, X, y, init_params(case))
                t_first = time.perf_counter()
                times = timed_epochs(tr.epoch, reps, warmup=1)
                res["wall_s"] = time.perf_counter() - t_first
                res["times_s"] = times
                res["median_s"] = float(np.median(times))
                res["samples_per_s"] = n / res["median_s"]
                res["note"] = getattr(tr, "note", "")
                res["repeats"], res["max_epoch_s"] = reps, budget
                if getattr(tr, "engine", None):
                    res["engine"] = tr.engine
                P = tr.params()
                if P is not None:
                    B = case.batch
                    last = reference_loss(case, P, X[n - B:], y[n - B:])
                    res["finite"] = bool(np.isfinite(last)) and all(
                        np.isfinite(W).all() and np.isfinite(b).all() for W, b in P)
                del tr
            except Exception as e:  # report, go on with the next case
                res["error"] = "%s: %s" % (type(e).__name__, e)
                res["traceback"] = traceback.format_exc()
            print("  %-8s %-11s %s" % (peer, case.name, _fmt_res(res)),
                  file=sys.stderr, flush=True)
            out["cases"][case.name] = res
    return out


def _fmt_res(res):
    if "error" in res:
        return "ERROR " + res["error"]
    return "%12.0f samples/s  (n=%d, times %s)" % (
        res["samples_per_s"], res["samples"],
        " ".join("%.3f" % t for t in res["times_s"]))


def _threadpool_info():
    from threadpoolctl import threadpool_info

    return [{k: d.get(k) for k in ("user_api", "internal_api", "prefix",
                                   "version", "num_threads", "architecture",
                                   "threading_layer")}
            for d in threadpool_info()]


def worker_main(args):
    try:
        if args.check:
            res = worker_check(args.worker, args.cases, args.params_path)
        else:
            res = worker_bench(args.worker, args.cases, args.repeats, args.quick,
                               args.max_epoch_s)
    except Exception as e:
        res = {"status": "error", "reason": "%s: %s" % (type(e).__name__, e),
               "traceback": traceback.format_exc()}
    sys.stdout.write("\n" + RESULT_TAG + json.dumps(res) + "\n")
    sys.stdout.flush()


# ====================================================================== driver
def spawn(peer, args, case_names, extra=()):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", peer,
           "--cases", ",".join(case_names) or "none"]
    if args.repeats:
        cmd += ["--repeats", str(args.repeats)]
    if args.max_epoch_s:
        cmd += ["--max-epoch-s", str(args.max_epoch_s)]
    if args.quick:
        cmd.append("--quick")
    cmd += list(extra)
    try:
        p = subprocess.run(cmd, env=worker_env(), stdout=subprocess.PIPE,
                           stderr=None, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": "timed out after %ds" % args.timeout}
    for line in p.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
        if line.strip():
            print("  [%s] %s" % (peer, line))
    return {"status": "error", "reason": "worker exited %d without a result" % p.returncode}


def _busy_cpu_s():
    """(busy CPU seconds of the whole machine, CPU seconds of this process and
    its waited-for children) — their difference over a peer's run is what
    other programs used meanwhile."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None, None
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def environment_warnings():
    msgs = []
    for k in SLOW_ENV_VARS:
        if k in os.environ:
            msgs.append("%s=%s is set: it slows numpy's OpenBLAS here; for fair "
                        "numbers run `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                        "python bench/compare.py`" % (k, os.environ[k]))
    # the load average lags by a minute; sample what the CPUs do right now
    busy0, own0 = _busy_cpu_s()
    if busy0 is not None:
        time.sleep(1.0)
        busy1, own1 = _busy_cpu_s()
        other = max(0.0, (busy1 - busy0) - (own1 - own0))
        if other > 0.1:
            msgs.append("other programs keep %.2f cores busy (1-s sample at start): "
                        "timings may read low" % other)
    return msgs


def machine_info():
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "threads_used": THREADS}
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        for line in txt.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((l for l in txt.splitlines() if l.startswith("flags")), "")
        info["avx512f"] = " avx512f" in flags
    except OSError:
        info["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    import numba
    import scipy

    info["versions"] = {"numpy": np.__version__, "numba": numba.__version__,
                        "scipy": scipy.__version__}
    try:
        import threadpoolctl

        info["versions"]["threadpoolctl"] = threadpoolctl.__version__
    except ImportError:
        pass
    info["env"] = {k: os.environ.get(k) for k in
                   SLOW_ENV_VARS + ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                    "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                    "XLA_FLAGS")}
    info["loadavg_start"] = os.getloadavg()
    return info


def _sps(results, p, c):
    r = results.get(p, {})
    if r.get("status") != "ok":
        return None
    return r["cases"].get(c.name, {}).get("samples_per_s")


def _fixed_tables(results, cases, peers, others, ref, peak):
    """Markdown lines: samples/s per fixed case, then model GFLOP/s."""
    hdr = ["case", "sizes", "batch", "fastbp engine"] + peers + ["fastbp ÷ best peer"]
    L = ["| " + " | ".join(hdr) + " |",
         "|" + "|".join(["---"] * 4 + ["---:"] * (len(peers) + 1)) + "|"]
    for c in cases:
        eng = results.get("fastbp", {}).get("cases", {}).get(c.name, {}).get("engine")
        row = [c.name, "-".join(map(str, c.sizes)), str(c.batch), eng or "—"]
        for p in peers:
            v = _sps(results, p, c)
            cr = results.get(p, {}).get("cases", {}).get(c.name, {})
            cell = _si(v)
            if v is not None and cr.get("capped"):
                cell += "¹"
            if v is not None and cr.get("finite") is False:
                cell += " (nan!)"
            if "error" in cr:
                cell = "error"
            row.append(cell)
        best = max((v for v in (_sps(results, p, c) for p in others) if v), default=None)
        fb = _sps(results, "fastbp", c)
        row.append("%.2f×" % (fb / best) if fb and best else "—")
        L.append("| " + " | ".join(row) + " |")
    L += ["", "### Model GFLOP/s (% of sgemm, % of FMA peak)", ""]
    L.append("| case | MFLOP/sample | " + " | ".join(peers) + " |")
    L.append("|---|---:|" + "|".join(["---:"] * len(peers)) + "|")
    for c in cases:
        f = model_flops_per_sample(c.sizes)
        row = [c.name, "%.4g" % (f / 1e6)]
        for p in peers:
            v = _sps(results, p, c)
            g = None if v is None else v * f / 1e9
            row.append("—" if g is None else "%.3g (%s, %s)" % (g, _pct(g, ref), _pct(g, peak)))
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    return L


def _case_n(name, quick):
    c = case_by_name(name)
    return quick_case(c).n if quick else c.n


def _pct(gflops, ref):
    return "—" if not ref else "%.2g%%" % (100 * gflops / ref)


def report(results, cases, peers, sgemm, machine, args, fma=None, extra=()):
    """Markdown text of the results: the fixed cases' tables (if any), then
    ``extra`` lines (the random architectures), notes and the machine."""
    ref = max(sgemm["before"]["gflops"], sgemm["after"]["gflops"])
    peak = (fma or {}).get("gflops")
    others = [p for p in peers if p != "fastbp"]
    L = []
    L.append("## fastbp vs peers: training samples/s (forward + backward + SGD update)")
    L.append("")
    L.append("fp32, %d threads, plain mini-batch SGD, median of %s epochs after "
             "one warm-up epoch%s." % (
                 THREADS, args.repeats or "%d (random architectures %d)" % (
                     DEFAULT_REPEATS, RANDOM_REPEATS),
                 "; **--quick** (N/8)" if args.quick else ""))
    L.append("")
    if cases:
        L += _fixed_tables(results, cases, peers, others, ref, peak)
    L.append("sgemm reference: numpy float32 %d×%d @ %d×%d, %d threads: **%.1f GFLOP/s** "
             "(median of %d; %.1f before the peers, %.1f after)." % (
                 sgemm["before"]["n"], sgemm["before"]["n"], sgemm["before"]["n"],
                 sgemm["before"]["n"], THREADS, ref, len(sgemm["before"]["seconds"]),
                 sgemm["before"]["gflops"], sgemm["after"]["gflops"]))
    if peak:
        L.append("FMA peak: **%.1f GFLOP/s** (1 thread %.1f) — %s." % (
            peak, fma["gflops_1thread"], fma["method"]))
    else:
        L.append("FMA peak: not measured (%s)." % (fma or {}).get("reason", "not run"))
    L.append("")
    if "fastbp" in peers and results.get("fastbp", {}).get("status") == "ok" and cases:
        parts = []
        for c in cases:
            v = _sps(results, "fastbp", c)
            if v:
                g = v * model_flops_per_sample(c.sizes) / 1e9
                parts.append("%s %.3g GFLOP/s = %s of sgemm, %s of FMA peak" % (
                    c.name, g, _pct(g, ref), _pct(g, peak)))
                if c.name == "wide-b256":
                    L.append("**wide-b256: fastbp %.3g GFLOP/s = %s of sgemm, %s of the "
                             "FMA peak.**" % (g, _pct(g, ref), _pct(g, peak)))
                    L.append("")
        L.append("fastbp: " + "; ".join(parts) + ".")
        L.append("")
    L += list(extra)

    # notes
    L.append("Notes:")
    capped = []
    all_peers = list(peers) + [p for p in results if p not in peers]
    for p in all_peers:
        for cname, cr in results.get(p, {}).get("cases", {}).items():
            if cr.get("capped"):
                capped.append("%s/%s %d of %d in %g s" % (
                    p, cname, cr["samples"], _case_n(cname, args.quick), cr["max_epoch_s"]))
    if capped:
        L.append("- ¹ too slow for all N in the budget: timed epoch is a prefix of the same "
                 "data (power-of-two batches, sized from a short probe): "
                 + "; ".join(capped) + ".")
    if cases:
        L.append("- N per case (samples/epoch): " + ", ".join(
            "%s %d" % (c.name, c.n) for c in cases) + ".")
        L.append("- xor-online: 2-8-1 with sigmoid hidden and identity output, MSE "
                 "(the one output every peer, sklearn included, has natively).")
        L.append("- digits-b32: sklearn load_digits/16 tiled and shuffled; the mnist and "
                 "wide cases use N(0,1) inputs and random labels.")
    for p in all_peers:
        r = results.get(p, {})
        if r.get("status") != "ok":
            L.append("- %s: %s — %s" % (p, r.get("status", "not run"), r.get("reason", "")))
        else:
            notes = sorted({cr.get("note") for cr in r["cases"].values() if cr.get("note")})
            errs = ["%s: %s" % (k, cr["error"]) for k, cr in r["cases"].items() if "error" in cr]
            for n_ in notes + errs:
                L.append("- %s: %s" % (p, n_))
    fl = ["%s %.2f" % (p, results[p]["foreign_load"]) for p in all_peers
          if "foreign_load" in results.get(p, {})]
    if fl:
        L.append("- Cores kept busy by other programs while each peer ran (should be ~0): "
                 + ", ".join(fl) + ".")
    L.append("")
    L.append("Machine: %s, %s cores (%s usable), %s GB RAM, %s; Python %s." % (
        machine.get("cpu", "?"), machine.get("cpu_count"), machine.get("affinity", "?"),
        machine.get("mem_gb", "?"), machine.get("platform"), machine.get("python")))
    vers = dict(machine.get("versions", {}))
    for p in all_peers:
        vers.update(results.get(p, {}).get("versions", {}))
    vers.pop("XLA_FLAGS", None)
    L.append("Versions: " + ", ".join("%s %s" % kv for kv in sorted(vers.items())) + ".")
    blas = machine.get("blas", [])
    if blas:
        L.append("numpy BLAS: " + "; ".join(
            "%s %s (%s, %s)" % (b.get("internal_api"), b.get("version"),
                                b.get("architecture"), b.get("prefix")) for b in blas) + ".")
    env = {k: v for k, v in machine.get("env", {}).items() if v is not None}
    L.append("Environment: " + (", ".join("%s=%s" % kv for kv in env.items()) or "none set")
             + ("; 1-min load average %.2f at start, %.2f at end." % (
                 machine["loadavg_start"][0], machine.get("loadavg_end", [float("nan")])[0])))
    for w in machine.get("warnings", []):
        L.append("- **warning**: " + w)
    return "\n".join(L) + "\n"


def chart(results, cases, peers, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.9 * len(cases)), 4.2))
    w = 0.8 / max(1, len(peers))
    for j, p in enumerate(peers):
        r = results.get(p, {})
        xs, ys = [], []
        for i, c in enumerate(cases):
            v = r.get("cases", {}).get(c.name, {}).get("samples_per_s") if r.get("status") == "ok" else None
            if v:
                xs.append(i - 0.4 + w * (j + 0.5))
                ys.append(v)
        ax.bar(xs, ys, w, label=p)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(["%s\n%s b%d" % (c.name, "-".join(map(str, c.sizes)), c.batch)
                        for c in cases], fontsize=8)
    ax.set_ylabel("training samples/s (log)")
    ax.set_title("MLP training throughput, fp32, %d threads" % THREADS)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(peers))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _names(text):
    return [t.strip() for t in text.split(",") if t.strip() and t.strip() != "none"]


def _run_peer(p, args, case_names, machine):
    """Spawn one peer, note the foreign load meanwhile; its result dict."""
    print("peer %s (%d cases) ..." % (p, len(case_names)), flush=True)
    t0 = time.perf_counter()
    busy0, own0 = _busy_cpu_s()
    r = spawn(p, args, case_names)
    busy1, own1 = _busy_cpu_s()
    r["process_wall_s"] = wall = time.perf_counter() - t0
    if busy0 is not None:
        # average number of cores other programs kept busy meanwhile
        r["foreign_load"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
        if r["foreign_load"] > 0.1:
            w = ("other programs used %.2f cores on average while %s ran: "
                 "its numbers may read low" % (r["foreign_load"], p))
            print("WARNING: " + w, file=sys.stderr)
            machine["warnings"].append(w)
    return r


def _case_info(c):
    return {"sizes": c.sizes, "hidden": c.hidden, "output": c.output, "loss": c.loss,
            "batch": c.batch, "lr": c.lr, "n": c.n, "data": c.data,
            "description": c.description,
            "model_flops_per_sample": model_flops_per_sample(c.sizes)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated subset of: " + ", ".join(CASES)
                    + "; 'none' for none (with --random: only the random set)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="peers of the fixed cases, comma-separated subset of: "
                    + ", ".join(PEERS))
    ap.add_argument("--random", type=int, default=0, metavar="N",
                    help="also run N random architectures drawn from --seed")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    ap.add_argument("--random-peers", default=",".join(RANDOM_PEERS),
                    help="peers of the random architectures (default %s)"
                    % ",".join(RANDOM_PEERS))
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed epochs, median reported (default 7, random cases 5; "
                         "3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="N/8 and 3 repeats: a smoke test")
    ap.add_argument("--max-epoch-s", type=float, default=None,
                    help="a peer slower than N samples in this many seconds is timed on "
                         "a prefix of the data (default 2; random cases 0.6)")
    ap.add_argument("--check", action="store_true",
                    help="only the correctness check: one epoch per peer on digits "
                         "(and on each random architecture, against the NumPy peer)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder")
    ap.add_argument("--json", metavar="FILE", help="also write the raw results to FILE")
    ap.add_argument("--no-fma", action="store_true", help="skip the FMA-peak measurement")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per peer process")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params-path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.cases = _names(args.cases)
    if args.worker:  # the driver passes fixed and random case names alike
        for c in args.cases:
            try:
                case_by_name(c)
            except KeyError as e:
                ap.error(str(e))
        if args.quick and not args.repeats:
            args.repeats = 3
        worker_main(args)
        return 0
    peers, rpeers = _names(args.peers), _names(args.random_peers)
    for c in args.cases:
        if c not in CASES:
            ap.error("unknown case %r (choose from %s, or none)" % (c, ", ".join(CASES)))
    for p in peers + rpeers:
        if p not in PEERS:
            ap.error("unknown peer %r (choose from %s)" % (p, ", ".join(PEERS)))
    if args.random < 0:
        ap.error("--random must be >= 0")
    if args.seed < 0:
        ap.error("--seed must be >= 0")
    if args.random and "fastbp" not in rpeers:
        ap.error("--random-peers must include fastbp")
    if not args.cases and not args.random:
        ap.error("nothing to run: --cases none and no --random")
    if args.quick and not args.repeats:
        args.repeats = 3
    rcases = random_cases(args.random, args.seed) if args.random else []
    rnames = [c.name for c in rcases]
    all_peers = peers + [p for p in rpeers if p not in peers] if rcases else list(peers)
    fixed_names = args.cases
    if args.check:
        fixed_names = [CHECK_CASE] if args.cases else []

    def plan_for(p, check=False):
        names = list(fixed_names) if p in peers else []
        if p in rpeers or (check and p == "numpy"):
            names += rnames
        return names

    warnings_ = environment_warnings()
    for w in warnings_:
        print("WARNING: " + w, file=sys.stderr)
    if args.check:
        ps = all_peers + (["numpy"] if rcases and "numpy" not in all_peers else [])
        return run_check(args, {p: plan_for(p, True) for p in ps if plan_for(p, True)}, spawn)
    if args.repeats is not None and args.repeats < 5 and not args.quick:
        print("WARNING: fewer than 5 repeats", file=sys.stderr)

    cases = _case_list(args.cases, args.quick)
    rcases = [quick_case(c) for c in rcases] if args.quick else rcases
    machine = machine_info()
    machine["warnings"] = warnings_
    with thread_limits():
        machine["blas"] = [d for d in _threadpool_info() if d["user_api"] == "blas"]
        print("sgemm (numpy float32 2048^3, %d threads) ..." % THREADS, flush=True)
        sg_before = sgemm_gflops()
    print("  %.1f GFLOP/s" % sg_before["gflops"], flush=True)
    fma = {"gflops": None, "reason": "--no-fma"}
    if not args.no_fma:
        print("FMA peak (%d threads) ..." % THREADS, flush=True)
        fma = fma_peak(THREADS)
        print("  " + ("%.1f GFLOP/s (%s)" % (fma["gflops"], fma["method"]) if fma["gflops"]
                      else "not measured: " + fma["reason"]), flush=True)
        if not fma["gflops"]:
            machine["warnings"].append("FMA peak not measured: " + fma["reason"])

    results = {}
    digests = {}
    all_peers = [p for p in all_peers if plan_for(p)]
    for p in all_peers:
        r = results[p] = _run_peer(p, args, plan_for(p), machine)
        if r.get("status") != "ok":
            print("  %s %s: %s" % (p, r.get("status"), r.get("reason")), flush=True)
            if r.get("traceback"):
                print(r["traceback"], file=sys.stderr)
            continue
        for cname, cr in r["cases"].items():
            if cr.get("digest"):
                digests.setdefault(cname, set()).add(cr["digest"])
            if cr.get("traceback"):
                print(cr["traceback"], file=sys.stderr)
    for cname, ds in digests.items():
        if len(ds) > 1:
            print("WARNING: peers saw different data for %s: %s" % (cname, ds), file=sys.stderr)
            machine["warnings"].append("different data digests for " + cname)

    with thread_limits():
        sg_after = sgemm_gflops()
    sgemm = {"before": sg_before, "after": sg_after}
    if abs(sg_after["gflops"] - sg_before["gflops"]) > 0.1 * max(sg_before["gflops"], sg_after["gflops"]):
        machine["warnings"].append("sgemm moved by more than 10%% during the run "
                                   "(%.1f -> %.1f GFLOP/s): the machine was not steady"
                                   % (sg_before["gflops"], sg_after["gflops"]))
    machine["loadavg_end"] = os.getloadavg()

    extra, summary = [], None
    if rcases:
        extra, summary = random_report.section(results, rcases, rpeers, args.random, args.seed)
    text = report(results, cases, [p for p in peers if p in results], sgemm, machine, args,
                  fma, extra)
    print()
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    blob = {
        "args": {"cases": args.cases, "peers": peers, "repeats": args.repeats,
                 "quick": args.quick, "max_epoch_s": args.max_epoch_s,
                 "random": args.random, "seed": args.seed, "random_peers": rpeers},
        "machine": machine,
        "sgemm": sgemm,
        "fma_peak": fma,
        "cases": {c.name: _case_info(c) for c in cases + rcases},
        "random": {"n": args.random, "seed": args.seed, "peers": rpeers,
                   "cases": rnames, "summary": summary,
                   "ratios": {c.name: r for c, r, _ in random_report.ratios(
                       results, rcases, rpeers)}} if rcases else None,
        "results": results,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    paths = [os.path.join(args.out, "results.json")] + ([args.json] if args.json else [])
    for path in paths:
        with open(path, "w") as f:
            json.dump(blob, f, indent=1, default=str)
    if cases:
        try:
            chart(results, cases, peers, os.path.join(args.out, "results.png"))
        except Exception as e:  # the numbers matter more than the picture
            print("chart failed: %s" % e, file=sys.stderr)
    print("wrote %s/results.{md,json%s}%s" % (args.out, ",png" if cases else "",
                                             " and " + args.json if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
