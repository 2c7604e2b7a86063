"""One training epoch on sparse (CSR) input, in one compiled call.

Under plain SGD (the fused update, no L1 or clipping) the epoch trains a
*transposed* copy of the first layer's weights, ``W1.T`` of shape
``(n_features, n_hidden)`` in a scratch buffer: each non-zero of a sample
then reads (forward) and updates (backward) one contiguous row of
``n_hidden`` weights instead of ``n_hidden`` values ``n_features`` apart --
one cache line in sixteen (float32) of the untransposed layout.  The copy is
made at the start and written back into ``params`` before the kernel
returns, on every path.  Other optimizers need ``dW1`` in the standard
layout and update every parameter each step anyway; they use the
untransposed kernels.
"""

import math

from numba import njit

from .._config import JIT
from .forward import layer_params
from .layout import weight_range
from .runtime import runtime
from .sparse import with_rows
from .train import train_batch
from .update import H_LR, fused_sgd
from .weights import gather_weights, given, weight_total


@njit(**JIT)
def _transpose(src, dst):
    """``dst <- src.T`` for 2-D C-contiguous arrays, in cache-sized tiles."""
    n, m = src.shape
    B = 16  # fastest of 8..128 for a 256 x 100k float32 matrix
    for i0 in range(0, n, B):
        i1 = min(i0 + B, n)
        for j0 in range(0, m, B):
            for j in range(j0, min(j0 + B, m)):
                for i in range(i0, i1):
                    dst[j, i] = src[i, j]


@njit(**JIT)
def sparse_epoch(model, work, loss, X, y, order, batch_size, shuffle, bufs, ybuf,
                 opt, hyper, state, step, out, sw, wbuf, lrs):
    """One epoch of mini-batch training on :data:`SparseRows` ``X``; as ``train.train_epoch``.

    ``bufs`` is ``(rowbuf, scratch)``: int64 room for ``batch_size`` row
    numbers, and room for one copy of layer 0's weights (or empty: then the
    transposed copy is not used).  Each batch's matrix rows (through
    ``order`` when ``shuffle``) are gathered into ``rowbuf`` and its targets
    into ``ybuf``; then ``train_batch`` runs on them.  Sample weights ``sw``
    and per-step rates ``lrs`` work as in ``train.batch_epoch``.
    """
    rowbuf, scratch = bufs
    w, we = weight_range(model.layout, runtime(0))
    transposed = fused_sgd(opt, hyper) and scratch.shape[0] >= we - w
    W, _ = layer_params(model.params, model.layout, runtime(0))
    wt = scratch[:W.size if transposed else 0]
    if transposed:
        _transpose(W, wt.reshape((W.shape[1], W.shape[0])))
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
        for r in range(n):
            j = order[start + r] if shuffle else start + r
            rowbuf[r] = X.rows[j]
            ybuf[r] = y[j]
        s = train_batch(model, work, loss, with_rows(X, rowbuf[:n], wt), ybuf[:n],
                        opt, hyper, state, step, bw)
        if not math.isfinite(s):
            total = s
            break
        total += s
        wdone += weight_total(bw, n)
        done += n
    if transposed:
        _transpose(wt.reshape((W.shape[1], W.shape[0])), W)
    if not math.isfinite(total):
        out[0] = total
    else:
        out[0] = total / wdone if wdone > 0.0 else 0.0
    out[1] = done
