"""Many independent networks of one architecture, trained chunk by chunk.

``params`` is ``(K, n_params)``: row ``k`` is network ``k``'s flat buffer, with
its own batch-norm statistics row, step counter and dropout seed.  Threads
(``threads.run_chunks``) take contiguous chunks of networks, one call per chunk,
and reuse one workspace per chunk, so nothing is allocated per network or per
batch and the result does not depend on the thread count.  The kernels are
serial: a ``prange`` wrapper compiled (and LLVM re-optimised) the whole training
step twice more, for the outlined loop body and for the wrapper.
"""

from numba import njit

from .._config import JIT
from ..spec import L_OUT
from .forward import block, forward
from .runtime import no_values, runtime
from .state import Model, Work
from .train import batch_epoch, flat_epoch


@njit(**JIT)
def _row(a, k):
    """Row ``k`` of ``a``, or row 0 when ``a`` is shared (one row)."""
    return a[k] if a.shape[0] > 1 else a[0]


@njit(**JIT)
def _model(params, layout, lparams, stats, counters, seeds, k):
    """The Model view of network k of the population."""
    return Model(params[k], layout, lparams, stats[k], counters[k], seeds[k])


@njit(**JIT)
def _work(acts, pre, deltas, grad, mask, bnx, bninv, bnstat, c, cap):
    """The Work view of thread c's workspace."""
    return Work(acts[c], pre[c], deltas[c], grad[c], mask[c], bnx[c], bninv[c], bnstat[c], cap)


@njit(**JIT)
def _chunk(K, n_chunks, c):
    """Networks ``lo, hi`` of chunk ``c`` of ``n_chunks``."""
    return c * K // n_chunks, (c + 1) * K // n_chunks


@njit(**JIT)
def population_batch_epoch(params, layout, lparams, stats, counters, seeds, loss, X, y, orders,
                           batch_size, shuffle, xbuf, ybuf, acts, pre, deltas, grad, mask, bnx,
                           bninv, bnstat, opt, hyper, state, step, out, c):
    """One epoch (``train.batch_epoch``) for every network of chunk ``c``.

    ``X``/``y``: ``(1 or K, N, ...)`` (shared or per network); ``orders`` (K, N);
    ``hyper`` (K, n_hyper); ``state`` (K, n_state, n_params); ``step`` (K, 1);
    ``out`` (K, 2) receives each network's mean loss and trained sample count.
    Workspace arrays have a leading axis of length ``n_chunks``; chunk ``c``
    uses row ``c``.
    """
    lo, hi = _chunk(params.shape[0], acts.shape[0], c)
    work = _work(acts, pre, deltas, grad, mask, bnx, bninv, bnstat, c, xbuf.shape[1])
    for k in range(lo, hi):
        batch_epoch(_model(params, layout, lparams, stats, counters, seeds, k), work, loss,
                    _row(X, k), _row(y, k), orders[k], batch_size, shuffle, xbuf[c], ybuf[c],
                    opt, hyper[k], state[k], step[k], out[k], no_values(), no_values(),
                    no_values())


@njit(**JIT)
def population_flat_epoch(params, layout, lparams, stats, counters, seeds, loss, X, y, orders,
                          batch_size, shuffle, xbuf, acts, pre, deltas, grad, mask, bnx, bninv,
                          bnstat, hyper, step, out, c):
    """``population_batch_epoch`` on the flat path (``train.flat_epoch``; the caller
    checked ``flat_ok`` for every network)."""
    lo, hi = _chunk(params.shape[0], acts.shape[0], c)
    work = _work(acts, pre, deltas, grad, mask, bnx, bninv, bnstat, c, xbuf.shape[1])
    for k in range(lo, hi):
        flat_epoch(_model(params, layout, lparams, stats, counters, seeds, k), work, loss,
                   _row(X, k), _row(y, k), orders[k], batch_size, shuffle, hyper[k], step[k],
                   out[k])


@njit(**JIT)
def population_predict(params, layout, lparams, stats, counters, seeds, X, acts, pre, deltas,
                       grad, mask, bnx, bninv, bnstat, cap, out, c):
    """``out[k] <- network_k(X_k)`` for chunk ``c``'s networks; ``X`` is ``(1 or K, n, n_in)``."""
    m = layout[layout.shape[0] - 1, L_OUT]
    lo, hi = _chunk(params.shape[0], acts.shape[0], c)
    work = _work(acts, pre, deltas, grad, mask, bnx, bninv, bnstat, c, cap)
    for k in range(lo, hi):
        Xk = _row(X, k)
        model = _model(params, layout, lparams, stats, counters, seeds, k)
        for s in range(0, Xk.shape[0], cap):
            e = min(s + cap, Xk.shape[0])
            off = forward(model, work, Xk[s:e], runtime(False), runtime(False))
            A = block(work.acts, off, e - s, m)
            for i in range(e - s):
                for j in range(m):
                    out[k, s + i, j] = A[i, j]
