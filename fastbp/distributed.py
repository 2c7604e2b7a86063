"""Synchronous data-parallel training over MPI (mpi4py).

Every rank holds a full replica of the network and the same training arrays.
Each step, the global batch of ``batch_size`` rows is cut into contiguous,
deterministic rank shards; every rank computes the gradient of its shard,
weighted by ``n_shard / batch_size``, and one ``Allreduce(MPI.IN_PLACE, buf)``
over the flat gradient buffer (plus the batch-norm running statistics and one
slot for the loss) sums the shards into the global-batch mean gradient.  Every rank then applies the same in-place
optimizer update, so the replicas stay identical (checked with a checksum
every epoch).  Launch with::

    mpiexec -n 4 python -m mpi4py train.py

``-m mpi4py`` turns an uncaught exception on any rank into ``MPI_Abort``, so the
job ends with a non-zero exit instead of hanging in a collective.

mpi4py is imported lazily: importing this module does not need it.
"""

import dataclasses
import inspect
import os
import shutil
import sys
import time
import warnings
import zlib
from types import SimpleNamespace

import numpy as np

from ._kernels.backward import backward
from ._kernels.train import _forward_loss
from ._kernels.update import H_LR, apply_update
from ._kernels.weights import or_none
from ._validate import check_int, check_sample_weight, check_weight_sum
from ._kernels.rng import GOLDEN
from .history import History
from .metrics import classifies, correct
from .options import fit_method
from .schedules import make_schedule, step_rates
from .training import Hooks, run_epochs
from .workspace import Snapshot

__all__ = ["DataParallel", "fit_distributed", "shard_range", "threads_per_rank",
           "configure_threads", "check_oversubscription", "find_mpiexec"]

_LIMITERS = []  # threadpoolctl limiters set by configure_threads, kept alive


# ------------------------------------------------------------------ MPI access
def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - exercised without mpi4py only
        raise ImportError(
            "fastbp.distributed needs mpi4py: pip install 'fastbp[mpi]' (uses your "
            "cluster's MPI) or 'fastbp[mpi-bundled]' (adds the MPICH wheel)") from exc
    return MPI


def _comm(comm):
    return _mpi().COMM_WORLD if comm is None else comm


def find_mpiexec():
    """Path of an ``mpiexec`` to launch jobs with, or None.

    Looks at ``$FASTBP_MPIEXEC``, then next to ``sys.executable`` (where the
    ``mpich`` wheel installs it inside a virtual environment), then on
    ``PATH`` (``mpiexec``, then ``mpirun``).
    """
    env = os.environ.get("FASTBP_MPIEXEC")
    if env:
        return env
    dirs = [os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))]
    for d in dirs:
        for name in ("mpiexec", "mpirun"):
            p = shutil.which(name, path=d)
            if p:
                return p
    return shutil.which("mpiexec") or shutil.which("mpirun")


def shard_range(n, size, rank):
    """Rows ``[lo, hi)`` of an ``n``-row batch that ``rank`` of ``size`` handles.

    Contiguous shards whose lengths differ by at most one (the first
    ``n % size`` ranks get the extra row); a rank may get 0 rows.
    """
    q, r = divmod(int(n), int(size))
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


# --------------------------------------------------------------------- threads
def _cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return list(range(os.cpu_count() or 1))


def _node_cpus(comm):
    """(ranks on this node, this rank's index there, every local rank's CPU list)."""
    MPI = _mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        return node.Get_size(), node.Get_rank(), node.allgather(_cpus())
    finally:
        node.Free()


def _budget(local_rank, cpu_lists):
    """Threads for one rank: its own CPUs when ranks are pinned to disjoint
    sets, else the node's CPUs divided among its ranks (at least 1)."""
    sets = [set(c) for c in cpu_lists]
    union = set().union(*sets)
    if len(sets) > 1 and sum(len(s) for s in sets) == len(union):
        return max(1, len(sets[local_rank])), len(union)
    return max(1, len(union) // len(sets)), len(union)


def threads_per_rank(comm=None):
    """Threads each rank of ``comm`` may use so that ranks x threads <= cores.

    Counts the ranks on this node with ``comm.Split_type(COMM_TYPE_SHARED)``
    and the CPUs with ``os.sched_getaffinity``: ``cores // ranks_on_node``, or
    a rank's own CPU count when the launcher pinned ranks to disjoint sets.
    Collective: every rank of ``comm`` must call it.
    """
    _, local_rank, cpus = _node_cpus(_comm(comm))
    return _budget(local_rank, cpus)[0]


def _threads_in_use():
    import numba
    from threadpoolctl import threadpool_info
    blas = [int(i.get("num_threads") or 1) for i in threadpool_info()]
    return max([numba.get_num_threads()] + blas)


def check_oversubscription(comm=None, threads=None, stacklevel=2):
    """Warn (RuntimeWarning) when this node's ranks x threads exceed its cores.

    ``threads`` is this rank's thread count (default: the larger of Numba's
    and the BLAS libraries' current settings).  Collective.  Returns
    ``(threads on this node, cores on this node)``.
    """
    comm = _comm(comm)
    mine = _threads_in_use() if threads is None else int(threads)
    MPI = _mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        info = node.allgather((mine, _cpus()))
    finally:
        node.Free()
    total = sum(t for t, _ in info)
    cores = len(set().union(*(set(c) for _, c in info)))
    if total > cores:
        warnings.warn(
            f"oversubscribed: {len(info)} MPI ranks on this node use {total} threads in "
            f"all but only {cores} cores are available; call "
            "fastbp.distributed.configure_threads(comm) (or set OMP_NUM_THREADS / "
            "OPENBLAS_NUM_THREADS / NUMBA_NUM_THREADS) so that ranks x threads <= cores",
            RuntimeWarning, stacklevel=stacklevel)
    return total, cores


def configure_threads(comm=None, threads=None, warn=True):
    """Limit Numba and BLAS threads of this rank; returns the threadpoolctl limiter.

    ``threads`` defaults to :func:`threads_per_rank`.  Numba's count is capped
    by ``NUMBA_NUM_THREADS`` (set that environment variable before launching
    to go lower at start-up).  The BLAS limit stays in force until
    ``limiter.restore_original_limits()``; the limiter is also kept alive
    here.  With ``warn``, an oversubscribed node gives a RuntimeWarning.
    Collective.
    """
    import numba
    from threadpoolctl import threadpool_limits
    comm = _comm(comm)
    n = threads_per_rank(comm) if threads is None else check_int(threads, "threads", 1)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    limiter = threadpool_limits(limits=n)
    _LIMITERS.append(limiter)
    if warn:
        check_oversubscription(comm, threads=n, stacklevel=3)
    return limiter


# ------------------------------------------------------------ kernel adapter
_SEED_STEP = GOLDEN  # seeds of ranks spread apart by the RNG's stream increment


def _bind(net, opt, cap, rank, g):
    """The one place this module touches fastbp's private kernels and state.

    Mirrors ``_kernels.train.train_batch`` split in two around the Allreduce.
    Returns a namespace with ``ws`` (workspace for ``cap`` rows);
    ``grad(X, y)``: a training-mode forward (dropout, batch-norm batch
    statistics, running statistics updated) and backward that writes
    d(batch-mean loss)/d(params) into ``g`` and returns the batch-mean loss;
    ``grad(X, y, sw)`` with sample weights: the weighted mean over the shard
    (a shard whose weights sum to 0 gives a zero gradient and loss);
    ``update()``: one step of ``opt`` with the gradient in ``g``, and the step
    counter that drives dropout masks advanced; ``set_lr(lr)``: the rate of
    the next update (per-step schedules, any value ``>= 0``); ``stats`` and ``counter``: the
    network's batch-norm running statistics and step counter (arrays); and
    ``snapshot()``: a copy of everything an epoch changes, with ``.restore()``.  Rank
    ``rank`` draws dropout masks from its own seed (rank 0 keeps the
    network's), so shards do not share masks.
    """
    ws = net._workspace(cap)
    model = net._model
    if rank:
        model = model._replace(seed=(int(model.seed) + rank * _SEED_STEP) % (2**63 - 1))
    work = ws.work._replace(grad=g)
    loss, params, layout = net._loss_code, net._params, net._layout
    counter = net._counter

    def grad(X, y, sw=None):
        n = X.shape[0] if sw is None else float(sw.sum())
        total = _forward_loss(model, work, loss, X, y, True, True, 1.0 / n if n else 0.0, True,
                              or_none(sw))
        backward(model, work, X, 0.0, 1.0, False, True)
        return total / n if n else 0.0

    def set_lr(lr):
        opt.hyper[H_LR] = lr

    def update():
        apply_update(params, g, layout, opt.code, opt.hyper, opt.state, opt.step)
        counter[0] += 1

    def snapshot():
        snap = Snapshot(net, opt)
        snap.take()
        return snap

    return SimpleNamespace(ws=ws, grad=grad, update=update, stats=net._stats, counter=counter,
                           snapshot=snapshot, set_lr=set_lr)


def _replica_arrays(net):
    """Every array that must be identical on all ranks (besides the optimizer's)."""
    return [net._params, net._stats, net._counter]


def _fingerprint(*arrays):
    """Cheap content check of arrays that should be the same on every rank."""
    out = []
    for a in arrays:
        n = a.shape[0]
        rows = a[[0, n // 2, n - 1]] if n else a
        out.append((a.shape, a.dtype.str, zlib.crc32(np.ascontiguousarray(rows).tobytes())))
    return out



# ------------------------------------------------------------------ training
class DataParallel:
    """Synchronous data-parallel wrapper of an :class:`~fastbp.MLP` over MPI.

    Parameters
    ----------
    net : MLP
        The replica on this rank (build it the same way on every rank).
    comm : mpi4py.MPI.Comm, optional
        Communicator (default ``MPI.COMM_WORLD``); a sub-communicator trains
        an independent group.
    root : int, default 0
        Rank whose parameters and shuffling win; the only rank that prints
        and saves.
    check_threads : bool, default True
        Warn (RuntimeWarning) when the node is oversubscribed.

    Creating the wrapper is collective: ``root`` broadcasts its parameters
    (one ``Bcast`` of the flat buffer), batch-norm statistics, step counter
    and generator state.
    """

    def __init__(self, net, comm=None, root=0, check_threads=True, _stacklevel=3):
        self.net = net
        self.comm = _comm(comm)
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.root = check_int(root, "root", 0)
        if self.root >= self.size:
            raise ValueError(f"root {root} is not a rank of a {self.size}-rank communicator")
        self.broadcast_parameters()
        if check_threads:
            check_oversubscription(self.comm, stacklevel=_stacklevel)

    @property
    def is_root(self):
        """True on the rank that prints and saves."""
        return self.rank == self.root

    def print(self, *args, **kwargs):
        """``print`` on the root rank only (flushed)."""
        if self.is_root:
            print(*args, flush=True, **kwargs)

    def broadcast_parameters(self, optimizer=None):
        """Copy the root's network (and ``optimizer`` state) to every rank (collective)."""
        for arr in _replica_arrays(self.net):
            if arr.size:
                self.comm.Bcast(arr, root=self.root)
        self.net.rng.bit_generator.state = self.comm.bcast(
            self.net.rng.bit_generator.state, root=self.root)
        if optimizer is not None:
            if optimizer.state.size:
                self.comm.Bcast(optimizer.state, root=self.root)
            self.comm.Bcast(optimizer.step, root=self.root)
            optimizer.hyper[:] = self.comm.bcast(optimizer.hyper, root=self.root)

    def replicas_identical(self):
        """True when every rank holds bit-identical parameters and statistics (collective)."""
        crc = 0
        for arr in _replica_arrays(self.net):
            crc = zlib.crc32(arr.tobytes(), crc)
        return len(set(self.comm.allgather(crc))) == 1

    def _sum(self, values):
        """Sums of per-rank values, added in rank order so every rank gets the same bits."""
        rows = self.comm.allgather(tuple(values))
        return [sum(col) for col in zip(*rows)]

    def evaluate(self, X, y):
        """Mean loss of ``(X, y)``, each rank scoring its shard (collective)."""
        X, y = self.net._xy(X, y)
        return self._evaluate(X, y)[0]

    def _evaluate(self, X, y):
        lo, hi = shard_range(X.shape[0], self.size, self.rank)
        code = self.net._loss_code
        loss = hits = 0.0
        if hi > lo:
            loss = self.net.evaluate(X[lo:hi], y[lo:hi]) * (hi - lo)
            if classifies(code):
                hits = correct(code, self.net.predict(X[lo:hi]), y[lo:hi])
        s_loss, s_hits = self._sum([loss, hits])
        n = X.shape[0]
        return s_loss / n, (s_hits / n if classifies(code) else None)

    def save(self, path, **kwargs):
        """Save the network on the root rank only (``fastbp.io.save``); collective.

        Falls back to ``numpy.savez(path, params=...)`` with a warning when
        ``fastbp.io`` is not available.  An error on the root is raised on
        every rank, so no rank waits forever.
        """
        err = None
        if self.is_root:
            try:
                try:
                    from .io import save as io_save
                except ImportError:  # pragma: no cover - only without fastbp.io
                    io_save = None
                if io_save is not None:
                    io_save(self.net, path, **kwargs)
                else:  # pragma: no cover
                    warnings.warn("fastbp.io is not available; saving params only with "
                                  "numpy.savez", RuntimeWarning, stacklevel=2)
                    with open(path, "wb") as fh:
                        np.savez(fh, params=self.net.params)
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                err = f"{type(exc).__name__}: {exc}"
        err = self.comm.bcast(err, root=self.root)
        if err is not None:
            raise OSError(f"saving on rank {self.root} failed: {err}")

    def _fit(self, X, y, o, opt_kwargs, save_path, profile):
        """Implementation of :meth:`fit` (see there); ``o`` a FitOptions."""
        MPI = _mpi()
        net, comm = self.net, self.comm
        X, y = net._xy(X, y)
        o = o.checked()
        if o.lbfgs:
            raise ValueError("optimizer='lbfgs' is not supported by distributed training; "
                             "use sgd, adam, adamw or rprop")
        sw = check_sample_weight(o.sample_weight, X.shape[0])
        check_weight_sum(sw)
        prints = comm.allgather(_fingerprint(X, y, *(() if sw is None else (sw,))))
        if any(p != prints[0] for p in prints):
            raise ValueError("X, y or sample_weight differ between ranks; every rank must pass "
                             "the same training arrays (each rank reads its shard of every "
                             "batch)")
        val = o.validation_parts(weights=False)
        if val is not None:
            val = net._xy(val[0], val[1])
        if o.early_stopping is None:
            o = dataclasses.replace(o, early_stopping=val is not None)
        shuffle = o.shuffle
        opt = net._optimizer(o.optimizer, o.lr, opt_kwargs)
        n = X.shape[0]
        B = n if getattr(opt, "full_batch", False) else o.batch_size
        n_batches = -(-n // B)
        schedule = (None if o.lr_schedule is None else
                    make_schedule(o.lr_schedule, total_steps=o.epochs * n_batches))
        rates, t_start = None, 0
        if getattr(schedule, "per", "epoch") == "step":
            t_start = int(opt.step[0])
            rates = step_rates(schedule, t_start, o.epochs * n_batches, opt.lr)
        net.optimizer = opt
        if o.seed is not None:
            net.rng = np.random.default_rng(o.seed)
        self.broadcast_parameters(opt)

        P = net.n_params
        T = net.dtype.type
        hist = History()
        hist.comm_time, hist.wait_time, hist.compute_time = [], [], []
        hist.world_size = self.size
        identity = np.arange(n, dtype=np.int64)
        order = identity.copy()
        cap = max(1, -(-min(B, n) // self.size))
        root = self.root
        times = [0.0, 0.0, 0.0]  # the last epoch's batch loop, Allreduce, Barrier seconds

        def run_epoch(lrs):
            """One pass: per batch, the shard's gradient, one Allreduce, the update."""
            if shuffle:  # as MLP.fit: each epoch's order depends only on the generator
                if self.is_root:
                    np.copyto(order, identity)
                    net.rng.shuffle(order)
                comm.Bcast(order, root=root)
            t_comm = t_wait = 0.0
            local = 0.0
            diverged = False
            first_lr = None
            s0 = int(opt.step[0])
            t0 = time.perf_counter()
            for start in range(0, n, B):
                nb = min(B, n - start)
                lo, hi = shard_range(nb, self.size, self.rank)
                m = hi - lo
                if sw is not None:  # the batch's weight: the same on every rank
                    wb = float(sw[order[start:start + nb]].sum() if shuffle else
                               sw[start:start + nb].sum())
                    if wb == 0.0:
                        continue  # no step, on every rank alike
                if lrs is not None:
                    rate = lrs[int(opt.step[0]) - s0]
                    k.set_lr(rate)
                    first_lr = rate if first_lr is None else first_lr
                if m:
                    ws = None
                    if shuffle:
                        idx = order[start + lo:start + hi]
                        xs = np.take(X, idx, axis=0, out=xbuf[:m], mode="clip")
                        ys = np.take(y, idx, axis=0, out=ybuf[:m], mode="clip")
                        if sw is not None:
                            ws = sw[idx]
                    else:
                        xs, ys = X[start + lo:start + hi], y[start + lo:start + hi]
                        if sw is not None:
                            ws = sw[start + lo:start + hi]
                    lm = k.grad(xs, ys, ws)
                    frac = m / nb if ws is None else float(ws.sum()) / wb
                    local += lm * (m if ws is None else float(ws.sum()))
                    if S:
                        st[:] = k.stats
                    if frac != 1.0:
                        np.multiply(g, T(frac), out=g)
                    if S and m != nb:
                        np.multiply(st, T(m / nb), out=st)
                    buf[P + S] = lm * frac
                else:
                    buf[:] = 0
                if profile:
                    tw = time.perf_counter()
                    comm.Barrier()
                    t_wait += time.perf_counter() - tw
                tc = time.perf_counter()
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                t_comm += time.perf_counter() - tc
                if not np.isfinite(buf[P + S]):
                    diverged = True
                    break
                if S:
                    k.stats[:] = st
                k.update()
            times[:] = [time.perf_counter() - t0, t_comm, t_wait]
            local_ok = bool(np.all(np.isfinite(net.params)))
            total, n_bad = self._sum([local, 0 if local_ok else 1])
            if diverged or n_bad:
                return float(buf[P + S]), n, False, None
            loss = float(total / (n if sw is None else sw.sum()))
            return loss, n, True, (None if first_lr is None else float(first_lr))

        def after_epoch(hist):
            if not self.replicas_identical():  # pragma: no cover - MPI misbehaving
                warnings.warn("replicas drifted apart; re-broadcasting the root's "
                              "network", RuntimeWarning, stacklevel=5)
                self.broadcast_parameters(opt)
            dt, t_comm, t_wait = times
            hist.comm_time.append(t_comm)
            hist.wait_time.append(t_wait)
            hist.compute_time.append(dt - t_comm - t_wait)

        def report(epoch, msg, _):
            if o.verbose:
                dt, t_comm = times[0], times[1]
                self.print(f"epoch {epoch + 1}/{o.epochs}  {msg}  {dt:.3f} s  "
                           f"{n / max(dt, 1e-12):,.0f} samples/s  allreduce "
                           f"{t_comm / max(dt, 1e-12):.1%}  ({self.size} ranks)")

        def agree(reason):  # training stops when any rank's callback asks
            return "callback" if comm.allreduce(reason is not None, op=MPI.LOR) else None

        hooks = Hooks(what="distributed training", warn=self.is_root, after_epoch=after_epoch,
                      agree=agree, report=report, catch_interrupt=False)
        with net._lock:
            # flat gradient | batch-norm running statistics | loss: one Allreduce
            S = net._stats.size
            buf = np.zeros(P + S + 1, dtype=net.dtype)
            g, st = buf[:P], buf[P:P + S]
            k = _bind(net, opt, cap, self.rank, g)
            xbuf, ybuf = k.ws.xbuf, k.ws.ybuf(y)
            run_epochs(net, opt, run_epoch, o, validate=None if val is None else (
                lambda: self._evaluate(*val)), schedule=schedule, rates=rates,
                t_start=t_start, n_batches=n_batches, hooks=hooks, hist=hist)
        net.history_ = hist
        if save_path is not None:
            self.save(save_path)
        return hist

    fit = fit_method(_fit, name="DataParallel.fit", module=__name__, head=[
        inspect.Parameter("X", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("y", inspect.Parameter.POSITIONAL_OR_KEYWORD)],
        names=["epochs", "batch_size", "lr", "shuffle", "seed", "optimizer", "verbose",
               "callbacks", "on_divergence", "validation_data", "early_stopping",
               "n_iter_no_change", "tol", "lr_schedule", "save_path", "profile",
               "sample_weight"],
        extra={"save_path": None, "profile": False},
        doc="""Train synchronously on every rank of the communicator (collective).

        Parameters are those of :meth:`fastbp.MLP.fit` (declared once in
        :class:`fastbp.options.FitOptions`) except ``validation_fraction``,
        ``record_grad_norms`` and ``chunk_size`` (a TypeError), with these
        differences:

        X, y : array-like
            The full training set, the same on every rank (checked).
        batch_size : int
            Global batch: rows per update over all ranks together.  Each batch
            is cut into contiguous rank shards (:func:`shard_range`); a rank
            whose shard is empty contributes a zero gradient.
        shuffle : bool
            The root draws each epoch's permutation from ``net.rng`` exactly
            as :meth:`MLP.fit` does, and broadcasts it.
        optimizer : str or Optimizer
            Any but ``"lbfgs"``; the optimizer's state is broadcast from the
            root at the start.
        validation_data : (X_val, y_val), optional
            Scored after every epoch, each rank taking a shard, and summed
            (``history.val_loss``, ``history.val_score``).  Early stopping,
            on by default with validation data, restores the best epoch.
        callbacks : sequence of callables
            ``callback(net, epoch, history)`` on every rank; training stops
            when any rank's callback returns True.
        save_path : str, optional
            The root saves the trained network there (:meth:`save`).
        profile : bool
            Put a ``Barrier`` before each ``Allreduce`` so ``history.wait_time``
            (load imbalance) is told apart from ``history.comm_time`` (the
            reduction itself).  Costs one extra synchronisation per step.
        sample_weight : array-like, optional
            Per-sample weights, the same on every rank (checked): each global
            batch minimises its weighted mean loss exactly as in
            :meth:`MLP.fit` (each rank's shard gradient is weighted by its
            share of the batch's weight); a batch whose weights sum to 0 takes
            no step.  The validation loss is unweighted.
        lr_schedule
            Per-epoch schedules as in :meth:`MLP.fit`; per-step schedules
            (``per == "step"``) set the rate before every update.

        Dropout draws different masks on each rank, and batch norm normalises
        each shard by its own statistics (like PyTorch DDP without
        SyncBatchNorm); the running statistics are averaged over the shards
        (weighted by rows) in the same Allreduce, so replicas stay identical.

        Returns
        -------
        History
            Identical on every rank, plus ``comm_time``, ``wait_time``,
            ``compute_time`` (seconds per epoch) and ``world_size``.
        """)


def fit_distributed(net, X, y, comm=None, epochs=1, batch_size=32, **kwargs):
    """Data-parallel :meth:`MLP.fit` over ``comm`` (default ``MPI.COMM_WORLD``).

    Same as ``DataParallel(net, comm).fit(X, y, epochs, batch_size, **kwargs)``
    (``root`` and ``check_threads`` go to :class:`DataParallel`); returns the
    :class:`History`, identical on every rank.  Collective.
    """
    root = kwargs.pop("root", 0)
    check_threads = kwargs.pop("check_threads", True)
    dp = DataParallel(net, comm, root=root, check_threads=check_threads, _stacklevel=4)
    return dp.fit(X, y, epochs=epochs, batch_size=batch_size, **kwargs)
