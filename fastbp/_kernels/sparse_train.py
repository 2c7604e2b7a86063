"""One training epoch on sparse (CSR) input, in one compiled call."""

import math

from numba import njit

from .._config import JIT
from .sparse import with_rows
from .train import train_batch


@njit(**JIT)
def sparse_epoch(model, work, loss, X, y, order, batch_size, shuffle, rowbuf, ybuf,
                 opt, hyper, state, step, out):
    """One epoch of mini-batch training on :data:`SparseRows` ``X``; as ``train.train_epoch``.

    Each batch's matrix rows (through ``order`` when ``shuffle``) are
    gathered into ``rowbuf`` (int64, ``batch_size`` entries) and its targets
    into ``ybuf``; then ``train_batch`` runs on them.
    """
    N = X.shape[0]
    total = 0.0
    done = 0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        for r in range(n):
            j = order[start + r] if shuffle else start + r
            rowbuf[r] = X.rows[j]
            ybuf[r] = y[j]
        s = train_batch(model, work, loss, with_rows(X, rowbuf[:n]), ybuf[:n], opt, hyper,
                        state, step)
        if not math.isfinite(s):
            out[0] = s
            out[1] = done
            return
        total += s
        done += n
    out[0] = total / max(done, 1)
    out[1] = done
