"""The epoch loop behind :meth:`fastbp.MLP.fit` and data-parallel training.

Python runs once per epoch (schedule, snapshot, divergence check, history,
validation, early stopping, progress, callbacks: :func:`run_epochs`); each
epoch's batches run in one compiled call (:func:`train_rows`), or, for
:class:`fastbp.distributed.DataParallel`, in the caller's own per-batch loop
with its gradient reduction, passed in as ``run_epoch``.  Callers validate
and prepare everything first (``fastbp.prepare``, ``fastbp.distributed``);
nothing here reads user input or calls back into the network's methods.
"""

import dataclasses
import sys
import time
import warnings

import numba
import numpy as np

from ._engine import Case, choose
from ._gen.engine import run_generated
from ._pool import executor
from ._kernels.blas import blas_one_thread
from ._kernels.sparse_train import sparse_epoch
from ._kernels.split import split_epoch
from ._kernels.split_units import units_epoch
from ._kernels.train import batch_epoch, flat_epoch, sgd_state
from ._kernels.weights import or_none
from ._sparse import is_sparse
from .errors import DivergenceError
from .history import History
from .spec import L_IN
from .workspace import Snapshot


def train_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf, opt, hyper,
                state, step, out, sw=None, wbuf=None, lrs=None):
    """One epoch's kernel call, as ``_kernels.train.train_epoch`` but with the path
    (flat or general) chosen here in Python, so a network compiles only the path it
    takes rather than both inside one kernel.  Weighted and per-step-scheduled
    epochs take the general path; ``_engine`` holds the rule (and its test switch).
    Epochs the generated engine covers run there."""
    case = Case(loss, opt, hyper, model.layout, model.lparams, batch_size, sw is not None,
                lrs is not None)
    engine = choose("net", case)
    if engine == "generated":
        if run_generated(model, work, loss, X, y, order, batch_size, shuffle, ybuf, opt, hyper,
                         state, step, out):
            return
        engine = choose("net", case, skip="generated")  # no writable folder for its file
    if engine in ("split", "units"):
        args = (model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf, opt, hyper,
                sgd_state(opt, hyper, state), step, out)
        if engine == "split":
            _two_threads(split_epoch, args)
        else:  # the threads' partial delta products
            scratch = np.empty(4 * batch_size * int(model.layout[:, L_IN].max()),
                               model.params.dtype)
            _two_threads(units_epoch, args, scratch)
    elif engine == "small":
        flat_epoch(model, work, loss, X, y, order, batch_size, shuffle, hyper, step, out)
    else:
        batch_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf, opt,
                    hyper, sgd_state(opt, hyper, state), step, out, or_none(sw),
                    or_none(wbuf), or_none(lrs))


def _two_threads(kernel, args, *extra):
    """``kernel(rank, 2, *args, sync, part, *extra)`` for ranks 0 (here) and 1 (on the
    shared pool) at once, OpenBLAS at one thread meanwhile (``_kernels/split.py``).
    Allowed one thread (``fastbp.threads(1)``; the engine forced, as ``fastbp.warmup``
    does to compile it anywhere) it runs as one rank of one: the same kernel, serially."""
    sync = np.zeros(3, np.int64)
    args = args + (sync, np.zeros(2)) + extra
    if numba.get_num_threads() < 2:
        kernel(0, 1, *args)
        return
    with blas_one_thread():
        other = executor(1).submit(kernel, 1, 2, *args)
        try:
            kernel(0, 2, *args)
        except BaseException:
            sync[2] = 1  # thread 0 never got going: release thread 1 from its barrier
            raise
        finally:
            other.result()


def train_rows(net, ws, X, y, order, identity, batch_size, shuffle, opt, out, sw=None,
               wbuf=None, lrs=None):
    """One compiled pass over validated ``(X, y)``; returns (mean loss, rows trained).

    ``order`` and ``identity`` are int64 scratch of length >= ``len(X)``
    (``identity`` holding ``0, 1, ...``); with ``shuffle`` the rows are
    visited in a fresh permutation drawn from ``net.rng``.  Fewer rows than
    ``len(X)`` trained means a batch loss was not finite (divergence).
    Optional sample weights ``sw`` (with a ``(batch_size,)`` float64 ``wbuf``)
    and per-step rates ``lrs`` as in ``_kernels.train.train_epoch``.
    """
    n = X.shape[0]
    order = order[:n]
    if shuffle:  # each pass's order depends only on the generator's state
        np.copyto(order, identity[:n])
        net.rng.shuffle(order)
    if is_sparse(X):  # the batches' matrix rows are gathered, never their values
        state = sgd_state(opt.code, opt.hyper, opt.state)  # None: plain SGD, fused
        bufs = ws.sparse_buffers(net.weights[0].size if state is None else 0)
        sparse_epoch(net._model, ws.work, net._loss_code, X, y, order, batch_size, shuffle,
                     bufs, ws.ybuf(y), opt.code, opt.hyper, state, opt.step, out,
                     or_none(sw), or_none(wbuf), or_none(lrs))
    else:
        train_epoch(net._model, ws.work, net._loss_code, X, y, order, batch_size, shuffle,
                    ws.xbuf, ws.ybuf(y), opt.code, opt.hyper, opt.state, opt.step, out, sw,
                    wbuf, lrs)
    return float(out[0]), int(out[1])


def _progress(verbose, epochs):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, unit="epoch", file=sys.stdout, leave=True)


@dataclasses.dataclass
class Hooks:
    """How one caller's epochs differ from :meth:`fastbp.MLP.fit`'s in one process.

    Attributes
    ----------
    what : str
        Names the run in the divergence message.
    warn : bool
        Whether this process issues the divergence / interrupt warnings
        (False on the non-root ranks of an MPI job).
    stacklevel : int
        ``warnings.warn`` stack level pointing at the user's ``fit`` call.
    after_epoch : callable, optional
        ``after_epoch(history)`` after a finite epoch, before it is recorded.
    agree : callable, optional
        ``agree(reason)`` -> the stop reason all processes use (``None``: go on),
        given this process's callbacks' reason (``None`` when none stops).
    report : callable, optional
        ``report(epoch, message, seconds)`` instead of the progress bar or line.
    catch_interrupt : bool
        Ctrl-C ends training with a warning (else the epoch is undone and the
        KeyboardInterrupt re-raised).
    """

    what: str = "training"
    warn: bool = True
    stacklevel: int = 4
    after_epoch: object = None
    agree: object = None
    report: object = None
    catch_interrupt: bool = True


def run_epochs(net, opt, run_epoch, options, *, validate=None, grad_norms=None, schedule=None,
               rates=None, t_start=0, n_batches=0, hooks=None, hist=None):
    """The one epoch loop: ``options.epochs`` calls of ``run_epoch``; returns the History.

    Parameters
    ----------
    net : MLP
        Its parameters are checked and snapshotted; it is passed to callbacks.
    opt : Optimizer
        Bound to ``net``; its rate follows ``schedule`` / ``rates``.
    run_epoch : callable
        ``run_epoch(lrs)`` trains one pass with per-step rates ``lrs`` (or
        None) and returns ``(mean loss, samples, complete, lr)``: ``complete``
        False when the epoch diverged, ``lr`` the rate to record (None: the
        optimizer's, or ``lrs[0]``).
    options : FitOptions
        Validated (``FitOptions.checked``), ``early_stopping`` decided.
    validate : callable, optional
        ``validate()`` -> ``(val_loss, val_score)`` after every epoch.
    grad_norms : callable, optional
        ``grad_norms()`` -> per-layer norms, with ``options.record_grad_norms``.
    schedule : callable, optional
        ``schedule(epoch, lr0, metric)``, the rate of each epoch.
    rates, t_start, n_batches
        Per-step rates: epoch ``k`` gets ``rates[step - t_start:][:n_batches]``.
    hooks : Hooks, optional
    hist : History, optional
        The history to fill (default: a new one).
    """
    o, h = options, hooks or Hooks()
    hist = History() if hist is None else hist
    lr0 = opt.lr
    lrs = None
    snap = Snapshot(net, opt)
    best = np.inf
    best_snap = Snapshot(net, opt) if o.early_stopping else None
    no_improve = 0
    pending = False
    bar = _progress(o.verbose, o.epochs) if h.report is None else None
    try:
        for epoch in range(o.epochs):
            metric = (hist.val_loss[-1] if hist.val_loss else
                      hist.loss[-1] if hist.loss else None)
            if rates is not None:
                k = int(opt.step[0]) - t_start
                lrs = rates[k:k + n_batches]
            elif schedule is not None:
                opt.lr = schedule(epoch, lr0, metric)
            snap.take()
            pending = True
            t0 = time.perf_counter()
            loss, done, complete, lr = run_epoch(lrs)
            dt = time.perf_counter() - t0
            if not complete or not np.all(np.isfinite(net._params)):
                snap.restore()
                pending = False
                hist.stop_reason = "diverged"
                msg = (f"{h.what} diverged in epoch {epoch + 1} (loss became {loss}); "
                       f"the network was restored to the end of epoch {epoch}. "
                       f"Try a smaller learning rate than {opt.lr:g}")
                if o.on_divergence == "raise":
                    raise DivergenceError(msg)
                if h.warn:
                    warnings.warn(msg, RuntimeWarning, stacklevel=h.stacklevel)
                break
            if h.after_epoch is not None:
                h.after_epoch(hist)
            hist.loss.append(loss)
            hist.lr.append(lr if lr is not None else opt.lr if lrs is None else float(lrs[0]))
            hist.epoch_time.append(dt)
            hist.samples += done
            pending = False
            if validate is not None:
                val_loss, val_score = validate()
                hist.val_loss.append(val_loss)
                hist.val_score.append(val_score)
            if o.record_grad_norms:
                hist.grad_norms.append(grad_norms())
            msg = f"loss {hist.loss[-1]:.5g}"
            if hist.val_loss:
                msg += f"  val_loss {hist.val_loss[-1]:.5g}"
                if hist.val_score[-1] is not None:
                    msg += f"  val_acc {hist.val_score[-1]:.4f}"
            if h.report is not None:
                h.report(epoch, msg, dt)
            elif bar is not None:
                bar.set_postfix_str(msg)
                bar.update(1)
            elif o.verbose:
                print(f"epoch {epoch + 1}/{o.epochs}  {msg}  {dt:.3f} s", flush=True)
            if o.early_stopping:
                metric = hist.val_loss[-1] if hist.val_loss else hist.loss[-1]
                if metric < best - o.tol:
                    best = metric
                    best_snap.take()
                    hist.best_epoch = epoch
                    no_improve = 0
                else:
                    no_improve += 1
                    if no_improve >= o.n_iter_no_change:
                        hist.stop_reason = "early_stopping"
                        break
            if o.callbacks:
                stops = [cb(net, epoch, hist) for cb in o.callbacks]  # run them all
                reason = None
                if any(bool(s) for s in stops):  # a string returned names the reason
                    reason = next((s for s in stops if isinstance(s, str) and s), "callback")
                if h.agree is not None:
                    reason = h.agree(reason)
                if reason:
                    hist.stop_reason = reason
                    break
    except KeyboardInterrupt:
        if pending:  # the epoch in flight may have run: undo it
            snap.restore()
        if not h.catch_interrupt:
            raise
        hist.stop_reason = "interrupted"
        if h.warn:
            warnings.warn(f"fit interrupted after {hist.epochs} complete epochs; the network "
                          "holds the parameters at that point", RuntimeWarning,
                          stacklevel=h.stacklevel)
    except Exception:
        if pending:  # e.g. a bad chunk of a stream: undo the partial epoch
            snap.restore()
        raise
    finally:
        if bar is not None:
            bar.close()
    if o.early_stopping and hist.best_epoch is not None and hist.stop_reason != "interrupted":
        best_snap.restore()
    return hist
