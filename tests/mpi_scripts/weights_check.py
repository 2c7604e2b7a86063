"""Launched by tests/test_sample_weight.py as ``mpiexec -n 2 python -m mpi4py weights_check.py OUTDIR``.

Every rank trains the same weighted problem with fastbp.distributed on the
world communicator (with a per-step schedule), and alone with the plain
MLP.fit, then writes the parameters to OUTDIR/rank<r>.npz.
"""

import os
import sys

import numpy as np
from mpi4py import MPI

import fastbp
from fastbp.distributed import DataParallel, configure_threads
from fastbp.schedules import WarmupCosine

out = sys.argv[1]
comm = MPI.COMM_WORLD
configure_threads(comm, threads=1)
r = np.random.default_rng(3)
X = r.standard_normal((37, 5))
labels = np.argmax(X[:, :3] + 0.3 * r.standard_normal((37, 3)), axis=1)
w = r.random(37) * 2
w[:6] = 0.0  # with shuffle=False and batch 6, the first batch takes no step
res = {}
for shuffle in (False, True):
    kw = dict(epochs=3, batch_size=6, lr=0.1, optimizer="adam", shuffle=shuffle, seed=5,
              sample_weight=w, lr_schedule=WarmupCosine(30, 4))
    a = fastbp.MLP([5, 7, 3], loss="cross_entropy", seed=0)
    b = a.copy()
    ha = DataParallel(a, comm).fit(X, labels, **kw)
    hb = b.fit(X, labels, **kw)
    res[f"p2_{shuffle}"], res[f"p0_{shuffle}"] = a.params, b.params
    res[f"loss2_{shuffle}"], res[f"loss0_{shuffle}"] = ha.loss, hb.loss
    res[f"lr2_{shuffle}"], res[f"lr0_{shuffle}"] = ha.lr, hb.lr
    res[f"steps_{shuffle}"] = [a.optimizer.step[0], b.optimizer.step[0]]
np.savez(os.path.join(out, f"rank{comm.Get_rank()}.npz"), **res)
