"""One training step and one whole epoch, each a single compiled call.

Kernels take a ``Model`` and a ``Work`` (see ``state.py``), the loss code,
data, and the optimizer's code, ``hyper`` array, state buffers and step
counter (see ``update.py``).
"""

import math

from numba import njit

from .._config import JIT, JIT_INLINE
from ..spec import L_ACT, L_OUT, P_LOSS
from .backward import backward
from .forward import block, commit_batch_stats, forward
from .runtime import runtime
from .small import eligible, small_epoch
from .update import H_LR, H_WD, apply_update, decay_factor, fused_sgd
from .views import gather_rows, prefetch_rows
from .weights import gather_weights, given, weight_total, weighted_loss_delta


@njit(**JIT_INLINE)
def _forward_loss(model, work, loss, X, y, training, update_stats, scale, want_delta, sw):
    """Forward pass and (``sw``-weighted) loss sum (and output delta when want_delta)."""
    n = X.shape[0]
    L = model.layout.shape[0]
    m = model.layout[L - 1, L_OUT]
    off = forward(model, work, X, training, update_stats)
    return weighted_loss_delta(block(work.acts, off, n, m), block(work.pre, off, n, m), y, sw,
                               loss, model.layout[L - 1, L_ACT], scale,
                               block(work.deltas, off, n, m), want_delta,
                               model.lparams[L - 1, P_LOSS])


@njit(**JIT)
def loss_grad(model, work, loss, X, y, training, sw):
    """Batch-mean loss of ``(X, y)``; ``work.grad <- d(mean loss)/d(params)``.

    With sample weights ``sw`` (non-empty; see ``weights.py``) the weighted mean (``weights.py``); weights
    summing to 0 give loss 0 and a zero gradient.  Nothing else changes
    (running statistics and the step counter stay).
    """
    wsum = weight_total(sw, X.shape[0])
    if wsum == 0.0:
        work.grad[:] = 0.0
        return 0.0
    total = _forward_loss(model, work, loss, X, y, training, runtime(False), 1.0 / wsum,
                          runtime(True), sw)
    backward(model, work, X, 0.0, 1.0, runtime(False), training)
    return total / wsum


@njit(**JIT)
def loss_sum(model, work, loss, X, y, training, sw):
    """Sum of per-sample losses of ``(X, y)``, weighted by ``sw`` if given (forward only)."""
    return _forward_loss(model, work, loss, X, y, training, runtime(False), 1.0,
                         runtime(False), sw)


@njit(**JIT_INLINE)
def train_batch(model, work, loss, X, y, opt, hyper, state, step, sw):
    """Forward, backward and one optimizer update on ``(X, y)``.

    Returns the batch's summed loss (``sum_i sw_i E_i`` with sample weights
    ``sw``), evaluated before the update.  A non-finite loss leaves the
    network untouched (parameters and batch-norm statistics); so do weights
    summing to 0 (no step is taken, 0 is returned).

    ``state`` is ``None`` when the optimizer is plain SGD (``update.fused_sgd``;
    :func:`sgd_state` passes it so): that compiled entry has no optimizer-update
    code at all (Numba prunes the branch by the argument's type), which spares
    every plain-SGD network the compilation of every other optimizer.
    """
    n = X.shape[0]
    wsum = weight_total(sw, n)
    if wsum == 0.0:
        return 0.0
    total = _forward_loss(model, work, loss, X, y, runtime(True), runtime(False), 1.0 / wsum,
                          runtime(True), sw)
    if not math.isfinite(total):
        return total
    commit_batch_stats(model, work, n)
    # fused: SGD inside the backward pass; else the gradient, then the optimizer's step
    fused = runtime(True) if state is None else fused_sgd(opt, hyper)  # pruned by type
    lr = hyper[H_LR] if fused else 0.0
    backward(model, work, X, lr, decay_factor(lr, hyper[H_WD]) if fused else 1.0, fused,
             runtime(True))
    if fused:
        step[0] += 1
    elif state is not None:
        apply_update(model.params, work.grad, model.layout, opt, hyper, state, step)
    model.counter[0] += 1
    return total


def sgd_state(opt, hyper, state):
    """The ``state`` argument of :func:`train_batch` / :func:`batch_epoch` from Python:
    ``None`` for plain SGD (whose fused update needs no state), else ``state``.
    (``fused_sgd``'s Python function: no compiled entry for a check made in Python.)"""
    return None if fused_sgd.py_func(opt, hyper) else state


@njit(**JIT)
def flat_ok(opt, hyper, layout, lparams, batch_size):
    """Whether an epoch takes the flat small-network path (plain SGD, ``small.eligible``)."""
    return fused_sgd(opt, hyper) and eligible(layout, lparams, batch_size)


@njit(**JIT)
def flat_epoch(model, work, loss, X, y, order, batch_size, shuffle, hyper, step, out):
    """One epoch on the flat path (``small.py``); the caller checked ``flat_ok``."""
    lr = hyper[H_LR]
    steps = small_epoch(model.params, model.layout, model.lparams, loss, X, y, order,
                        batch_size, shuffle, work.acts, work.pre, work.deltas, work.cap, lr,
                        decay_factor(lr, hyper[H_WD]), out)
    step[0] += steps
    model.counter[0] += steps


@njit(**JIT)
def batch_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf,
                opt, hyper, state, step, out, sw, wbuf, lrs):
    """One epoch on the general path: every batch through ``train_batch``.

    Sample weights ``sw`` (float64 ``(N,)``; empty: unweighted) travel with their rows
    through ``order`` (gathered into ``wbuf``, ``(cap,)``).  ``lrs`` (float64; empty:
    none) holds per-step learning rates: before the ``k``-th update of this epoch
    ``hyper[H_LR] <- lrs[k]`` (batches whose weights sum to 0 take no step).
    """
    N = X.shape[0]
    total = 0.0
    wdone = 0.0
    done = 0
    t0 = step[0]
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        if given(lrs):
            hyper[H_LR] = lrs[step[0] - t0]
        bw = gather_weights(sw, wbuf, order, start, n, shuffle)
        if shuffle:
            gather_rows(xbuf, ybuf, X, y, order, start, 0, n)
            # the next batch's rows start on their way from memory while this one trains
            prefetch_rows(X, y, order, start + n, min(start + n + batch_size, N))
            Xb = xbuf[:n]
            yb = ybuf[:n]
        else:
            Xb = X[start:start + n]
            yb = y[start:start + n]
        s = train_batch(model, work, loss, Xb, yb, opt, hyper, state, step, bw)
        if not math.isfinite(s):
            out[0] = s
            out[1] = done
            return
        total += s
        wdone += weight_total(bw, n)
        done += n
    out[0] = total / wdone if wdone > 0.0 else 0.0
    out[1] = done


@njit(**JIT)
def train_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf,
                opt, hyper, state, step, out, sw, wbuf, lrs):
    """One epoch of mini-batch training in one call, on the general path (``batch_epoch``).

    The path ``fit`` takes whenever no generated kernel runs (``_engine``: the
    flat path of ``small.py`` only when forced).  Batches follow ``order`` (a
    permutation) when ``shuffle`` is true, else the row order.  ``out[0]``
    receives the (weighted) mean training loss and ``out[1]`` the number of
    samples trained; training stops at the first batch whose loss is not
    finite (``out[1]`` then falls short of ``X.shape[0]``).
    """
    batch_epoch(model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf,
                opt, hyper, state, step, out, sw, wbuf, lrs)
