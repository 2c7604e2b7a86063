"""One training step and one whole epoch, each a single compiled call.

Workspace arrays (see ``fastbp.workspace``): ``acts``, ``pre``, ``deltas``
(1-D, ``cap`` rows of every layer), ``grad`` (layout of params), ``xbuf`` and
``ybuf`` (``cap`` rows of inputs and targets, for shuffled batches).
"""

import math

from numba import njit

from .._config import JIT
from .backward import backward
from .forward import block, forward
from .losses import loss_delta
from .update import H_LR, H_WD, SGD, apply_update


@njit(**JIT)
def loss_grad(params, layout, alpha, loss, X, y, acts, pre, deltas, grad, cap):
    """Batch-mean loss of ``(X, y)``; ``grad <- d(mean loss)/d(params)``."""
    n = X.shape[0]
    L = layout.shape[0]
    m = layout[L - 1, 1]
    off = forward(params, layout, alpha, X, acts, pre, cap)
    total = loss_delta(block(acts, off, n, m), block(pre, off, n, m), y, loss,
                       layout[L - 1, 3], 1.0 / n, block(deltas, off, n, m), True)
    backward(params, layout, alpha, X, acts, pre, deltas, cap, grad, 0.0, 1.0, False)
    return total / n


@njit(**JIT)
def loss_sum(params, layout, alpha, loss, X, y, acts, pre, deltas, cap):
    """Sum of per-sample losses of ``(X, y)`` (forward only)."""
    n = X.shape[0]
    L = layout.shape[0]
    m = layout[L - 1, 1]
    off = forward(params, layout, alpha, X, acts, pre, cap)
    return loss_delta(block(acts, off, n, m), block(pre, off, n, m), y, loss,
                      layout[L - 1, 3], 1.0, block(deltas, off, n, m), False)


@njit(**JIT)
def train_batch(params, layout, alpha, loss, X, y, acts, pre, deltas, grad, cap,
                opt, hyper, state, step):
    """Forward, backward and one optimizer update on ``(X, y)``.

    Returns the batch's summed loss, evaluated before the update.  A non-finite
    loss leaves ``params`` untouched.
    """
    n = X.shape[0]
    L = layout.shape[0]
    m = layout[L - 1, 1]
    off = forward(params, layout, alpha, X, acts, pre, cap)
    total = loss_delta(block(acts, off, n, m), block(pre, off, n, m), y, loss,
                       layout[L - 1, 3], 1.0 / n, block(deltas, off, n, m), True)
    if not math.isfinite(total):
        return total
    if opt == SGD:
        lr = hyper[H_LR]
        step[0] += 1
        backward(params, layout, alpha, X, acts, pre, deltas, cap, grad,
                 lr, 1.0 - lr * hyper[H_WD], True)
    else:
        backward(params, layout, alpha, X, acts, pre, deltas, cap, grad, 0.0, 1.0, False)
        apply_update(params, grad, layout, opt, hyper, state, step)
    return total


@njit(**JIT)
def train_epoch(params, layout, alpha, loss, X, y, order, batch_size, shuffle,
                xbuf, ybuf, acts, pre, deltas, grad, opt, hyper, state, step, out):
    """One epoch of mini-batch training in one call.

    Batches follow ``order`` (a permutation) when ``shuffle`` is true, else
    the row order.  ``out[0]`` receives the mean training loss and ``out[1]``
    the number of samples trained; training stops at the first batch whose
    loss is not finite (``out[1]`` then falls short of ``X.shape[0]``).
    """
    N = X.shape[0]
    cap = xbuf.shape[0]
    total = 0.0
    done = 0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        if shuffle:
            for r in range(n):
                j = order[start + r]
                xbuf[r] = X[j]
                ybuf[r] = y[j]
            s = train_batch(params, layout, alpha, loss, xbuf[:n], ybuf[:n], acts, pre,
                            deltas, grad, cap, opt, hyper, state, step)
        else:
            s = train_batch(params, layout, alpha, loss, X[start:start + n], y[start:start + n],
                            acts, pre, deltas, grad, cap, opt, hyper, state, step)
        if not math.isfinite(s):
            out[0] = s
            out[1] = done
            return
        total += s
        done += n
    out[0] = total / max(done, 1)
    out[1] = done
