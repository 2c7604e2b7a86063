"""Launched by tests/test_mpi.py as ``mpiexec -n 2 python -m mpi4py train_check.py OUTDIR``.

Every rank trains the same problems with fastbp.distributed on the world
communicator, and (as the 1-rank reference) alone on COMM_SELF and with the
plain MLP.fit, then writes what it got to OUTDIR/rank<r>.npz.
"""

import os
import sys
import time
import warnings

import numpy as np
from mpi4py import MPI

import fastbp
from fastbp.distributed import (DataParallel, configure_threads, fit_distributed,
                                threads_per_rank)

out = sys.argv[1]
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
res = {"size": size, "rank": rank}

# ---- threads: the per-rank budget, and an oversubscribed setting is warned about
res["threads_per_rank"] = threads_per_rank(comm)
cores = len(os.sched_getaffinity(0))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    lim = configure_threads(comm, threads=cores)  # size * cores > cores
res["oversub_warned"] = any(issubclass(w.category, RuntimeWarning)
                            and "oversubscribed" in str(w.message) for w in caught)
lim.restore_original_limits()
configure_threads(comm, threads=1)

r = np.random.default_rng(11)
X = r.standard_normal((37, 6))
labels = np.argmax(X[:, :4] + 0.3 * r.standard_normal((37, 4)), axis=1)
Xv = r.standard_normal((15, 6))
lv = np.argmax(Xv[:, :4], axis=1)



def quiet_barrier():
    """A barrier that sleeps instead of busy-polling (MPICH spins in Barrier)."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.02)


def warm_up():
    """Compile every kernel this script uses, on tiny data."""
    n = fastbp.MLP([6, 4, 4], loss="cross_entropy", seed=0)
    fit_distributed(n, X[:8], labels[:8], comm=MPI.COMM_SELF, epochs=1, batch_size=4,
                    validation_data=(Xv[:4], lv[:4]), check_threads=False)
    fastbp.MLP([6, 4, 4], loss="cross_entropy", seed=0).fit(
        X[:8], labels[:8], epochs=1, batch_size=4, optimizer="adam",
        validation_data=(Xv[:4], lv[:4]))


# With a cold Numba cache, rank 0 compiles while rank 1 sleeps, then rank 1
# loads the cached kernels: half the CPU time of compiling on both at once.
if rank == 0:
    warm_up()
quiet_barrier()
if rank != 0:
    warm_up()
quiet_barrier()

# ---- A: cross-entropy, Adam, shuffled, global batch 12 (last batch: 1 row, so
#      rank 1 has an empty shard), validation + early stopping, float64
kw = dict(epochs=5, batch_size=12, lr=0.05, optimizer="adam", seed=3,
          validation_data=(Xv, lv), n_iter_no_change=2, tol=0.0)


def make_a():
    return fastbp.MLP([6, 16, 4], loss="cross_entropy", seed=1)


a2, a1, a0 = make_a(), make_a(), make_a()
h2 = fit_distributed(a2, X, labels, comm=comm, **kw)
h1 = fit_distributed(a1, X, labels, comm=MPI.COMM_SELF, **kw)
h0 = a0.fit(X, labels, **kw)
res.update(A_p2=a2.params, A_p1=a1.params, A_p0=a0.params,
           A_loss2=h2.loss, A_loss1=h1.loss, A_loss0=h0.loss,
           A_val2=h2.val_loss, A_val1=h1.val_loss, A_score2=h2.val_score,
           A_stop2=str(h2.stop_reason), A_stop1=str(h1.stop_reason),
           A_world2=h2.world_size, A_world1=h1.world_size)

# only the root writes the file
DataParallel(a2, comm, check_threads=False).save(os.path.join(out, "model.npz"))

# ---- B: SGD with Nesterov momentum and weight decay, no shuffling, batch 10
#      (float64 and integer labels throughout: one set of compiled kernels)
kw = dict(epochs=3, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.9, nesterov=True,
          weight_decay=1e-3, shuffle=False)
b2, b1, b0 = (fastbp.MLP([6, 8, 8, 4], activation="tanh", loss="cross_entropy", seed=2)
              for _ in range(3))
fit_distributed(b2, X, labels, comm=comm, **kw)
fit_distributed(b1, X, labels, comm=MPI.COMM_SELF, **kw)
b0.fit(X, labels, **kw)
res.update(B_p2=b2.params, B_p1=b1.params, B_p0=b0.params)

# ---- D: dropout + batch norm: replicas must stay identical (stats included)
d = fastbp.MLP([6, 16, 4], loss="cross_entropy", dropout=0.3, batch_norm=True,
               seed=6 + rank)  # different init per rank: the root's must win
dp = DataParallel(d, comm)
hd = dp.fit(X, labels, epochs=3, batch_size=8, lr=0.01, optimizer="adam", seed=7)
res.update(D_p=d.params, D_mean=np.concatenate([m for m in d.running_mean if m is not None]),
           D_var=np.concatenate([v for v in d.running_var if v is not None]),
           D_steps=d.steps, D_identical=dp.replicas_identical(), D_loss=hd.loss)
res["D_eval"] = dp.evaluate(Xv, lv)
res["D_eval_local"] = d.evaluate(Xv, lv)

np.savez(os.path.join(out, f"rank{rank}.npz"), **res)
comm.Barrier()
