"""The epoch loop behind :meth:`fastbp.MLP.fit`.

Python runs once per epoch (schedule, shuffle, validation, early stopping,
progress, callbacks); each epoch's batches run in one compiled call.
"""

import sys
import time
import warnings

import numpy as np

from ._engine import Case, choose
from ._kernels.sparse_train import sparse_epoch
from ._kernels.train import batch_epoch, flat_epoch
from ._kernels.update import fused_sgd
from ._sparse import is_sparse, take_rows
from ._validate import check_float, check_int, check_sample_weight, check_weight_sum
from .history import History
from .schedules import make_schedule, step_rates
from .spec import BINARY_CROSS_ENTROPY, CROSS_ENTROPY
from .workspace import Snapshot


def train_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf, opt, hyper,
                state, step, out, sw=None, wbuf=None, lrs=None):
    """One epoch's kernel call, as ``_kernels.train.train_epoch`` but with the path
    (flat or general) chosen here in Python, so a network compiles only the path it
    takes rather than both inside one kernel.  Weighted and per-step-scheduled
    epochs take the general path; ``_engine`` holds the rule (and its test switch)."""
    case = Case(loss, opt, hyper, model.layout, model.lparams, batch_size, sw is not None,
                lrs is not None)
    if choose("net", case) == "small":
        flat_epoch(model, work, loss, X, y, order, batch_size, shuffle, hyper, step, out)
    else:
        batch_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf, opt,
                    hyper, state, step, out, sw, wbuf, lrs)


def score(net, X, y):
    """Accuracy for classification losses, ``None`` for mse."""
    if net._loss_code == CROSS_ENTROPY:
        pred = net.predict(X).argmax(1)
        truth = y if y.ndim == 1 else y.argmax(1)
        return float((pred == truth).mean())
    if net._loss_code == BINARY_CROSS_ENTROPY:
        return float(((net.predict(X) > 0.5) == (y > 0.5)).all(axis=1).mean())
    return None


def grad_norms(net, X, y):
    """Euclidean norm of each layer's weight gradient on ``(X, y)``."""
    _, g = net.gradient(X, y)
    norms = []
    for n_in, n_out, off, *_ in net._layout:
        norms.append(float(np.linalg.norm(g[off:off + n_in * n_out].astype(np.float64))))
    return norms


def _n_val(n, fraction):
    n_val = int(round(n * fraction))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"validation_fraction={fraction} leaves {n - n_val} training and "
                         f"{n_val} validation samples out of {n}; both need at least one")
    return n_val


def _split(net, X, y, fraction, sw=None):
    n = X.shape[0]
    n_val = _n_val(n, fraction)
    perm = net.rng.permutation(n)
    tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    Xt, Xva = take_rows(X, tr), take_rows(X, va)
    if sw is None:
        return Xt, y[tr], Xva, y[va], None, None
    return Xt, y[tr], Xva, y[va], sw[tr], sw[va]


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
        bufs = ws.sparse_buffers(net.weights[0].size if fused_sgd(opt.code, opt.hyper) else 0)
        sparse_epoch(net._model, ws.work, net._loss_code, X, y, order, batch_size, shuffle,
                     bufs, ws.ybuf(y), opt.code, opt.hyper, opt.state, opt.step, out, sw, wbuf,
                     lrs)
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


def fit(net, X, y, *, epochs, batch_size, lr, shuffle, seed, optimizer, verbose, callbacks,
        on_divergence, validation_data, validation_fraction, early_stopping, n_iter_no_change,
        tol, lr_schedule, record_grad_norms, opt_kwargs, chunk_size=None, sample_weight=None):
    """Implementation of :meth:`fastbp.MLP.fit` (see there)."""
    from . import stream
    source = None
    if stream.wants_stream(X, y, chunk_size):
        source = stream.open_source(net, X, y, chunk_size, batch_size, epochs)
    else:
        X, y = net._xy(X, y, sparse=True)
    sw = None
    if source is not None and sample_weight is not None:
        raise ValueError("sample_weight is not supported with streamed data (chunk_size or "
                         "an iterable of chunks); pass in-memory arrays")
    if source is None:
        sw = check_sample_weight(sample_weight, X.shape[0])
        check_weight_sum(sw)
    epochs = check_int(epochs, "epochs", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    n_iter_no_change = check_int(n_iter_no_change, "n_iter_no_change", 1)
    tol = check_float(tol, "tol", low=0.0)
    validation_fraction = check_float(validation_fraction, "validation_fraction", 0.0, 1.0,
                                      high_open=True)
    if on_divergence not in ("raise", "warn"):
        raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
    callbacks = list(callbacks) if callbacks is not None else []
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables f(net, epoch, history), got {cb!r}")
    shuffle = bool(shuffle)
    Xv = yv = swv = None
    if validation_data is not None:
        try:
            Xv, yv, *rest = validation_data
            if len(rest) > 1:
                raise ValueError
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, y_val) or a triple "
                            "(X_val, y_val, sample_weight_val)") from None
        Xv, yv = net._xy(Xv, yv, sparse=True)
        if rest:
            swv = check_sample_weight(rest[0], Xv.shape[0], "validation sample_weight")
            check_weight_sum(swv, "validation sample_weight")
    lbfgs = isinstance(optimizer, str) and optimizer.lower() == "lbfgs"
    if source is not None:
        stream.check_settings(validation_data, validation_fraction, optimizer, lbfgs)
    elif validation_data is None and validation_fraction > 0:
        _n_val(X.shape[0], validation_fraction)
    opt = None if lbfgs else net._optimizer(optimizer, lr, opt_kwargs)
    rates = None
    if source is None:
        n_train = X.shape[0]
        if validation_data is None and validation_fraction > 0:
            n_train -= _n_val(n_train, validation_fraction)
        n_batches = 1 if opt is not None and opt.full_batch else -(-n_train // batch_size)
        schedule = (None if lr_schedule is None else
                    make_schedule(lr_schedule, total_steps=epochs * n_batches))
        if getattr(schedule, "per", "epoch") == "step" and not lbfgs:
            t_start = int(opt.step[0])
            rates = step_rates(schedule, t_start, epochs * n_batches, opt.lr)
    else:
        schedule = None if lr_schedule is None else make_schedule(lr_schedule)
        if getattr(schedule, "per", "epoch") == "step":
            raise ValueError("per-step learning-rate schedules are not supported with streamed "
                             "data (the number of steps is not known in advance); use a "
                             "per-epoch schedule or in-memory arrays")
    # everything is valid: from here on the call may change the network
    if seed is not None:
        net.rng = np.random.default_rng(seed)
    if validation_data is None and validation_fraction > 0:
        X, y, Xv, yv, sw, swv = _split(net, X, y, validation_fraction, sw)
        if sw is not None and sw.sum() == 0.0:
            raise ValueError("the training part of the validation split has sample weights "
                             "summing to zero; change the seed or the weights")
        if swv is not None and swv.sum() == 0.0:
            swv = None  # every validation weight is 0: score it unweighted
    if early_stopping is None:
        early_stopping = Xv is not None
    if lbfgs:
        from .lbfgs import fit_lbfgs
        return fit_lbfgs(net, X, y, epochs, lr, tol, opt_kwargs, Xv, yv, sw, swv)
    net.optimizer = opt
    lr0 = opt.lr
    out = np.zeros(2, dtype=np.float64)
    if source is None:
        n = X.shape[0]
        if opt.full_batch:
            batch_size = n
        identity = np.arange(n, dtype=np.int64)
        order = identity.copy()
        wbuf = None if sw is None else np.zeros(min(batch_size, n), dtype=np.float64)

        def run_epoch():
            loss, done = train_rows(net, ws, X, y, order, identity, batch_size, shuffle, opt,
                                    out, sw, wbuf, lrs)
            return loss, done, done == n

        def probe():
            return take_rows(X, slice(0, 512)), y[:512]
    else:
        n = source.max_rows or batch_size  # workspace capacity

        def run_epoch():
            return source.run_epoch(net, ws, batch_size, shuffle, opt, out)

        probe = source.probe
    hist = History()
    lrs = None
    snap = Snapshot(net, opt)
    best = np.inf
    best_snap = Snapshot(net, opt) if early_stopping else None
    no_improve = 0
    pending = False
    bar = _progress(verbose, epochs)
    with net._lock:
        ws = net._workspace(min(batch_size, n))
        try:
            for epoch in range(epochs):
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
                loss, done, complete = run_epoch()
                dt = time.perf_counter() - t0
                if not complete or not np.all(np.isfinite(net._params)):
                    snap.restore()
                    pending = False
                    hist.stop_reason = "diverged"
                    msg = (f"training diverged in epoch {epoch + 1} (loss became {loss}); "
                           f"the network was restored to the end of epoch {epoch}. "
                           f"Try a smaller learning rate than {opt.lr:g}")
                    if on_divergence == "raise":
                        from .network import DivergenceError
                        raise DivergenceError(msg)
                    warnings.warn(msg, RuntimeWarning, stacklevel=3)
                    break
                hist.loss.append(loss)
                hist.lr.append(opt.lr if lrs is None else float(lrs[0]))
                hist.epoch_time.append(dt)
                hist.samples += done
                pending = False
                if Xv is not None:
                    hist.val_loss.append(net.evaluate(Xv, yv, sample_weight=swv))
                    hist.val_score.append(score(net, Xv, yv))
                if record_grad_norms:
                    hist.grad_norms.append(grad_norms(net, *probe()))
                msg = f"loss {hist.loss[-1]:.5g}"
                if hist.val_loss:
                    msg += f"  val_loss {hist.val_loss[-1]:.5g}"
                    if hist.val_score[-1] is not None:
                        msg += f"  val_acc {hist.val_score[-1]:.4f}"
                if bar is not None:
                    bar.set_postfix_str(msg)
                    bar.update(1)
                elif verbose:
                    print(f"epoch {epoch + 1}/{epochs}  {msg}  {dt:.3f} s", flush=True)
                if early_stopping:
                    metric = hist.val_loss[-1] if hist.val_loss else hist.loss[-1]
                    if metric < best - tol:
                        best = metric
                        best_snap.take()
                        hist.best_epoch = epoch
                        no_improve = 0
                    else:
                        no_improve += 1
                        if no_improve >= n_iter_no_change:
                            hist.stop_reason = "early_stopping"
                            break
                stops = [cb(net, epoch, hist) for cb in callbacks]  # run them all
                if any(bool(s) for s in stops):  # a string returned names the reason
                    hist.stop_reason = next((s for s in stops if isinstance(s, str) and s),
                                            "callback")
                    break
        except KeyboardInterrupt:
            if pending:  # the epoch in flight may have run: undo it
                snap.restore()
            hist.stop_reason = "interrupted"
            warnings.warn(f"fit interrupted after {hist.epochs} complete epochs; the network "
                          "holds the parameters at that point", RuntimeWarning, stacklevel=3)
        except Exception:
            if pending:  # e.g. a bad chunk of a stream: undo the partial epoch
                snap.restore()
            raise
        finally:
            if bar is not None:
                bar.close()
            if source is not None:
                source.close()
        if early_stopping and hist.best_epoch is not None and hist.stop_reason != "interrupted":
            best_snap.restore()
    net.history_ = hist
    return hist

