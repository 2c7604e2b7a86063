"""The boundary of :meth:`fastbp.MLP.fit`: validate the call, then prepare the epoch loop.

Everything the user passed is checked here before anything changes: the data
(in memory, sparse or streamed), sample weights, validation data or split,
the options (:class:`fastbp.options.FitOptions`), the optimizer and the
learning-rate schedule.  Then the network's workspace is taken and
:func:`fastbp.training.run_epochs` runs the epochs, each one compiled call of
:func:`fastbp.training.train_rows` (or L-BFGS, :func:`fastbp.lbfgs.fit_lbfgs`).
"""

import dataclasses

import numpy as np

from . import metrics, stream
from ._sparse import take_rows
from ._validate import check_sample_weight, check_weight_sum
from .lbfgs import fit_lbfgs
from .schedules import make_schedule, step_rates
from .training import run_epochs, train_rows


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


def fit(net, X, y, options, opt_kwargs):
    """Implementation of :meth:`fastbp.MLP.fit` (see there); ``options`` a FitOptions."""
    o = options
    source = None
    if stream.wants_stream(X, y, o.chunk_size):
        source = stream.open_source(net, X, y, o.chunk_size, o.batch_size, o.epochs)
    else:
        X, y = net._xy(X, y, sparse=True)
    sw = None
    if source is not None and o.sample_weight is not None:
        raise ValueError("sample_weight is not supported with streamed data (chunk_size or "
                         "an iterable of chunks); pass in-memory arrays")
    if source is None:
        sw = check_sample_weight(o.sample_weight, X.shape[0])
        check_weight_sum(sw)
    o = o.checked()
    Xv = yv = swv = None
    val = o.validation_parts()
    if val is not None:
        Xv, yv = net._xy(val[0], val[1], sparse=True)
        if val[2] is not None:
            swv = check_sample_weight(val[2], Xv.shape[0], "validation sample_weight")
            check_weight_sum(swv, "validation sample_weight")
    lbfgs = o.lbfgs
    split = o.validation_data is None and o.validation_fraction > 0
    if source is not None:
        stream.check_settings(o.validation_data, o.validation_fraction, o.optimizer, lbfgs)
    elif split:
        _n_val(X.shape[0], o.validation_fraction)
    opt = None if lbfgs else net._optimizer(o.optimizer, o.lr, opt_kwargs)
    rates = None
    t_start = n_batches = 0
    if source is None:
        n_train = X.shape[0]
        if split:
            n_train -= _n_val(n_train, o.validation_fraction)
        n_batches = 1 if opt is not None and opt.full_batch else -(-n_train // o.batch_size)
        schedule = (None if o.lr_schedule is None else
                    make_schedule(o.lr_schedule, total_steps=o.epochs * n_batches))
        if getattr(schedule, "per", "epoch") == "step" and not lbfgs:
            t_start = int(opt.step[0])
            rates = step_rates(schedule, t_start, o.epochs * n_batches, opt.lr)
    else:
        schedule = None if o.lr_schedule is None else make_schedule(o.lr_schedule)
        if getattr(schedule, "per", "epoch") == "step":
            raise ValueError("per-step learning-rate schedules are not supported with streamed "
                             "data (the number of steps is not known in advance); use a "
                             "per-epoch schedule or in-memory arrays")
    # everything is valid: from here on the call may change the network
    if o.seed is not None:
        net.rng = np.random.default_rng(o.seed)
    if split:
        X, y, Xv, yv, sw, swv = _split(net, X, y, o.validation_fraction, sw)
        if sw is not None and sw.sum() == 0.0:
            raise ValueError("the training part of the validation split has sample weights "
                             "summing to zero; change the seed or the weights")
        if swv is not None and swv.sum() == 0.0:
            swv = None  # every validation weight is 0: score it unweighted
    if o.early_stopping is None:
        o = dataclasses.replace(o, early_stopping=Xv is not None)
    if lbfgs:
        return fit_lbfgs(net, X, y, o.epochs, o.lr, o.tol, opt_kwargs, Xv, yv, sw, swv)
    net.optimizer = opt
    out = np.zeros(2, dtype=np.float64)
    batch_size = o.batch_size
    if source is None:
        n = X.shape[0]
        if opt.full_batch:
            batch_size = n
        identity = np.arange(n, dtype=np.int64)
        order = identity.copy()
        wbuf = None if sw is None else np.zeros(min(batch_size, n), dtype=np.float64)

        def run_epoch(lrs):
            loss, done = train_rows(net, ws, X, y, order, identity, batch_size, o.shuffle, opt,
                                    out, sw, wbuf, lrs)
            return loss, done, done == n, None

        def probe():
            return take_rows(X, slice(0, 512)), y[:512]
    else:
        n = source.max_rows or batch_size  # workspace capacity

        def run_epoch(lrs):
            return (*source.run_epoch(net, ws, batch_size, o.shuffle, opt, out), None)

        probe = source.probe

    def validate():
        return net.evaluate(Xv, yv, sample_weight=swv), metrics.score(net, Xv, yv)

    def grad_norms():
        return metrics.grad_norms(net, *probe())

    with net._lock:
        ws = net._workspace(min(batch_size, n))
        try:
            hist = run_epochs(net, opt, run_epoch, o, validate=None if Xv is None else validate,
                              grad_norms=grad_norms, schedule=schedule, rates=rates,
                              t_start=t_start, n_batches=n_batches)
        finally:
            if source is not None:
                source.close()
    net.history_ = hist
    return hist
