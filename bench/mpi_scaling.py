"""Strong scaling of data-parallel training (fastbp.distributed) over MPI.

One epoch of an MNIST-shaped network (784-256-128-10, float32, cross-entropy,
SGD, global batch 256) on a fixed synthetic data set, with 1, 2, ... ranks of
1 thread each: epoch time, speed-up, and the share of step time spent in the
gradient Allreduce.

Driver (launches the ranks itself, prints a Markdown table)::

    python bench/mpi_scaling.py                      # 1 and 2 ranks
    python bench/mpi_scaling.py --ranks 1 2 4 --samples 32768

One measurement under your own launcher (cluster, batch system)::

    mpiexec -n 64 python -m mpi4py bench/mpi_scaling.py --worker
    srun -n 64 python -m mpi4py bench/mpi_scaling.py --worker

Columns: ``epoch s`` median wall time of an epoch; ``speed-up`` against the
1-rank run; ``allreduce`` the share of the epoch spent inside
``MPI_Allreduce`` (including waiting for the slowest rank); ``wait`` and
``reduce`` the same split by a Barrier in a separate profiled run (wait =
load imbalance, reduce = the transfer itself); ``Allreduce us`` one isolated
Allreduce of the gradient buffer.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def worker(args):
    import numpy as np
    from mpi4py import MPI

    import fastbp
    from fastbp.distributed import DataParallel, configure_threads

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    configure_threads(comm, threads=args.threads)
    r = np.random.default_rng(0)
    X = r.random((args.samples, 784), dtype=np.float32)
    y = r.integers(0, 10, args.samples)
    net = fastbp.MLP([784, 256, 128, 10], loss="cross_entropy", dtype="float32", seed=0)
    dp = DataParallel(net, comm)
    kw = dict(batch_size=args.batch, lr=0.01, seed=1)
    dp.fit(X[:4 * args.batch], y[:4 * args.batch], epochs=1, **kw)  # compile / warm up
    h = dp.fit(X, y, epochs=args.epochs, **kw)
    hp = dp.fit(X, y, epochs=1, profile=True, **kw)
    # an isolated Allreduce of the same buffer
    buf = np.zeros(net.n_params + 1, dtype=np.float32)
    reps = 50
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    t_ar = (time.perf_counter() - t0) / reps
    # the single-process compiled epoch (MLP.fit) for reference
    t_fit = None
    if size == 1:
        ref = fastbp.MLP([784, 256, 128, 10], loss="cross_entropy", dtype="float32", seed=0)
        ref.fit(X[:4 * args.batch], y[:4 * args.batch], epochs=1, **kw)
        t_fit = float(np.median(ref.fit(X, y, epochs=args.epochs, **kw).epoch_time))
    times = comm.gather((h.epoch_time, h.comm_time, hp.epoch_time[0], hp.wait_time[0],
                         hp.comm_time[0], t_ar), root=0)
    if rank == 0:
        ep = [float(np.median(t[0])) for t in times]
        i = int(np.argmax(ep))  # report the slowest rank
        et = np.array(times[i][0])
        ct = np.array(times[i][1])
        res = {
            "ranks": size, "threads": args.threads, "samples": args.samples,
            "batch": args.batch, "steps": -(-args.samples // args.batch),
            "n_params": net.n_params, "epoch_s": float(np.median(et)),
            "allreduce_share": float(np.median(ct / et)),
            "wait_share": times[i][3] / times[i][2], "reduce_share": times[i][4] / times[i][2],
            "allreduce_us": float(max(t[5] for t in times)) * 1e6, "fit_epoch_s": t_fit,
            "loss": h.loss,
        }
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(res, fh)
        else:
            print(json.dumps(res, indent=1))


def driver(args):
    sys.path.insert(0, ROOT)
    from fastbp.distributed import find_mpiexec
    mpiexec = find_mpiexec()
    if mpiexec is None:
        sys.exit("no mpiexec found: pip install mpi4py mpich")
    load = os.getloadavg()[0]
    env = dict(os.environ, HYDRA_LAUNCHER="fork")
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[v] = str(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batch:
            for k in args.ranks:
                out = os.path.join(tmp, f"r{k}_{batch}.json")
                cmd = [mpiexec, "-n", str(k), sys.executable, "-m", "mpi4py", __file__,
                       "--worker", "--json", out, "--samples", str(args.samples),
                       "--batch", str(batch), "--epochs", str(args.epochs),
                       "--threads", str(args.threads)]
                subprocess.run(cmd, check=True, env=env, cwd=ROOT, timeout=900)
                with open(out) as fh:
                    rows.append(json.load(fh))
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    r0 = rows[0]
    print(f"784-256-128-10 float32, {r0['n_params']:,} parameters; {r0['samples']} samples; "
          f"{cpu}, {cores} cores; load average before: {load:.2f}\n")
    print("| global batch | ranks x threads | steps | epoch s | speed-up | efficiency "
          "| allreduce | wait | reduce | Allreduce us |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(b for b in rows if b["batch"] == r["batch"])
        sp = base["epoch_s"] * base["ranks"] / r["epoch_s"]
        print(f"| {r['batch']} | {r['ranks']} x {r['threads']} | {r['steps']} | "
              f"{r['epoch_s']:.3f} | {sp:.2f} | {sp / r['ranks']:.0%} | "
              f"{r['allreduce_share']:.1%} | {r['wait_share']:.1%} | {r['reduce_share']:.1%} | "
              f"{r['allreduce_us']:.0f} |")
    fits = [(r["batch"], r["fit_epoch_s"]) for r in rows if r.get("fit_epoch_s")]
    for batch, t in fits:
        print(f"\nsingle-process MLP.fit (one compiled call per epoch), 1 thread, batch "
              f"{batch}: {t:.3f} s per epoch")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", action="store_true", help="run as one rank of an MPI job")
    p.add_argument("--json", help="(worker) write the result here")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="threads per rank")
    p.add_argument("--samples", type=int, default=16384)
    p.add_argument("--batch", type=int, nargs="+", default=[256],
                   help="global batch size(s); the worker takes the first")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (median reported)")
    args = p.parse_args()
    if args.worker:
        args.batch = args.batch[0]
        worker(args)
    else:
        driver(args)


if __name__ == "__main__":
    main()
