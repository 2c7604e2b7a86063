"""Many independent networks of one architecture, trained in one parallel call.

``params`` is ``(K, n_params)``: row ``k`` is network ``k``'s flat buffer.
Threads take contiguous chunks of networks (``prange`` over chunks) and reuse
one set of workspace buffers per chunk, so nothing is allocated per network
or per batch and the result does not depend on the thread count.
"""


from numba import njit, prange

from .._config import JIT, JIT_PARALLEL
from .forward import block, forward
from .train import train_epoch


@njit(**JIT)
def _row(a, k):
    """Row ``k`` of ``a``, or row 0 when ``a`` is shared (one row)."""
    return a[k] if a.shape[0] > 1 else a[0]


@njit(**JIT_PARALLEL)
def population_epoch(params, layout, alpha, loss, X, y, orders, batch_size, shuffle,
                     xbuf, ybuf, acts, pre, deltas, grad, opt, hyper, state, step, out):
    """One epoch for every network.

    ``X``/``y``: ``(1 or K, N, ...)`` (shared or per network); ``orders`` (K, N);
    ``hyper`` (K, n_hyper); ``state`` (K, n_state, n_params); ``step`` (K, 1);
    ``out`` (K, 2) receives each network's mean loss and trained sample count.
    Per-chunk buffers ``xbuf``, ``ybuf``, ``acts``, ``pre``, ``deltas``, ``grad``
    have a leading axis of length ``n_chunks``.
    """
    K = params.shape[0]
    n_chunks = acts.shape[0]
    for c in prange(n_chunks):
        for k in range(c * K // n_chunks, (c + 1) * K // n_chunks):
            train_epoch(params[k], layout, alpha, loss, _row(X, k), _row(y, k), orders[k],
                        batch_size, shuffle, xbuf[c], ybuf[c], acts[c], pre[c], deltas[c],
                        grad[c], opt, hyper[k], state[k], step[k], out[k])


@njit(**JIT_PARALLEL)
def population_predict(params, layout, alpha, X, acts, pre, out):
    """``out[k] <- network_k(X_k)`` for every network; ``X`` is ``(1 or K, n, n_in)``."""
    K = params.shape[0]
    n_chunks = acts.shape[0]
    L = layout.shape[0]
    m = layout[L - 1, 1]
    width = 0
    for l in range(L):
        width += layout[l, 1]
    cap = acts.shape[1] // width
    for c in prange(n_chunks):
        for k in range(c * K // n_chunks, (c + 1) * K // n_chunks):
            Xk = _row(X, k)
            n = Xk.shape[0]
            for s in range(0, n, cap):
                e = min(s + cap, n)
                off = forward(params[k], layout, alpha, Xk[s:e], acts[c], pre[c], cap)
                A = block(acts[c], off, e - s, m)
                for i in range(e - s):
                    for j in range(m):
                        out[k, s + i, j] = A[i, j]


