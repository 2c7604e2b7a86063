"""Launched by tests/test_mpi.py: rank 1 raises in the middle of training.

Rank 0 then waits in the next collective; ``python -m mpi4py`` turns the
uncaught exception on rank 1 into MPI_Abort, so the whole job must end with a
non-zero exit code instead of hanging.  Rank 0 writes ``rank0_finished`` only
if it (wrongly) gets to the end.
"""

import os
import sys

import numpy as np
from mpi4py import MPI

import fastbp
from fastbp.distributed import fit_distributed

out = sys.argv[1]
comm = MPI.COMM_WORLD
rank = comm.Get_rank()


def boom(net, epoch, history):
    if rank == 1 and epoch == 1:
        raise RuntimeError("deliberate failure on rank 1")
    return False


r = np.random.default_rng(0)
X = r.standard_normal((40, 6))
y = r.integers(0, 4, 40)
net = fastbp.MLP([6, 8, 4], loss="cross_entropy", seed=0)
fit_distributed(net, X, y, comm=comm, epochs=50, batch_size=8, callbacks=[boom],
                check_threads=False)
if rank == 0:
    open(os.path.join(out, "rank0_finished"), "w").close()
