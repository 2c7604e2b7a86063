"""One epoch on two threads that share every batch (the "split" engine).

Each of the ``nthr`` threads runs :func:`split_epoch` with its own ``rank``;
no thread owns a batch.  Per batch:

1. rows: thread ``t`` takes its share of the batch's rows (``_rows``) through
   the forward pass, the loss and its output delta, and the delta products
   ``D_{l-1} = D_l @ W_l`` with the activation derivatives, all of which are
   row by row, so no thread waits for another;
2. a barrier; the threads add the row shares' losses in rank order, and a
   non-finite sum stops the epoch before any parameter changes (as
   ``train.train_batch`` does);
3. columns: thread ``t`` updates its share of every layer's output units
   (``_cols``) from all the rows: plain SGD fused into the weight-gradient
   product as ``backward`` does (``W <- decay * W - lr * D.T @ A``,
   ``b <- b - lr * sum_rows(D)``), any other optimizer as the gradient of those
   units' weights and biases, then ``update.step_span`` on them (the formulas
   of ``update.apply_update``);
4. a barrier (the next forward pass reads every weight).

Each row and each unit is always computed by the same thread with the same
code, so a given ``nthr`` gives bit-identical results from run to run; the
matrix products run on fewer rows or units than the one-thread engine's, so
the two can differ in the last bits (BLAS's blocking).  BLAS must be at one
thread while this runs (the caller sets it).  Dense input, no dropout, no
batch norm, no sample weights, one rate per epoch, no gradient clipping (it
needs the whole gradient's norm).
"""

import math

from numba import njit

from .._config import JIT, JIT_NO_NRT
from ..spec import L_ACT, L_IN, L_OUT, P_ALPHA, P_LOSS
from .activations import bias_act, mul_act_grad
from .forward import block, keeps_pre, layer_params
from .losses import loss_delta
from .matmul import mm_nn, mm_nt, mm_tn
from .runtime import runtime
from .sync import barrier, generation
from .layout import weight_range
from .update import H_LR, H_WD, decay_factor, sgd_step, step_span
from .views import gather_rows, prefetch_rows


@njit(**JIT_NO_NRT)
def _rows(rank, nthr, n):
    """``(r0, r1)``: thread ``rank``'s rows of a batch of ``n`` (contiguous, in rank order)."""
    per = (n + nthr - 1) // nthr
    return min(n, rank * per), min(n, (rank + 1) * per)


@njit(**JIT_NO_NRT)
def _cols(rank, nthr, m):
    """``(c0, c1)``: thread ``rank``'s output units of a layer of ``m`` (in rank order,
    multiples of 16 from 32 units on, so vector loops keep whole vectors)."""
    per = (m + nthr - 1) // nthr
    if m >= 32:
        per = (per + 15) // 16 * 16
    return min(m, rank * per), min(m, (rank + 1) * per)


@njit(**JIT)
def _rows_pass(model, work, loss, X, y, r0, scale):
    """Rows ``r0 .. r0 + len(X)`` of the batch: forward, loss (returned, summed), output
    delta (times ``scale``) and every delta product with its activation derivative."""
    layout = model.layout
    lp = model.lparams
    cap = work.cap
    nt = X.shape[0]
    L = layout.shape[0]
    off = runtime(0)
    Ain = X
    for l in range(L):
        m = layout[l, L_OUT]
        A = block(work.acts, off + r0 * m, nt, m)
        W, b = layer_params(model.params, layout, l)
        mm_nt(1.0, Ain, W, 0.0, A)
        bias_act(A, b, layout[l, L_ACT], lp[l, P_ALPHA], block(work.pre, off + r0 * m, nt, m),
                 keeps_pre(layout, l), runtime(True))
        Ain = A
        if l < L - 1:
            off += cap * m
    m = layout[L - 1, L_OUT]
    s = loss_delta(block(work.acts, off + r0 * m, nt, m), block(work.pre, off + r0 * m, nt, m),
                   y, loss, layout[L - 1, L_ACT], scale,
                   block(work.deltas, off + r0 * m, nt, m), runtime(True), lp[L - 1, P_LOSS])
    for l in range(L - 1, 0, -1):
        k = layout[l, L_IN]
        prev = off - cap * k
        W, _ = layer_params(model.params, layout, l)
        Dp = block(work.deltas, prev + r0 * k, nt, k)
        mm_nn(1.0, block(work.deltas, off + r0 * layout[l, L_OUT], nt, layout[l, L_OUT]), W,
              0.0, Dp)
        mul_act_grad(Dp, block(work.acts, prev + r0 * k, nt, k),
                     block(work.pre, prev + r0 * k, nt, k), layout[l - 1, L_ACT],
                     lp[l - 1, P_ALPHA])
        off = prev
    return s


@njit(**JIT_NO_NRT)
def _colsum_once(D, out):
    """Column sums of ``D`` into ``out`` (``backward._colsum``'s sums, in its order), each
    entry written once: the other thread's units may share ``out``'s cache lines, and a
    line written on every row by both threads goes back and forth between the cores."""
    T = out.dtype.type
    for j in range(out.shape[0]):
        s = T(0.0)
        for i in range(D.shape[0]):
            s += D[i, j]
        out[j] = s


@njit(**JIT)
def update_units(model, work, l, D, Ain, c0, c1, opt, hyper, state, t, w_done):
    """Units ``c0 .. c1`` of layer ``l`` updated from their deltas ``D`` (the batch's rows
    by those units) and the layer's input ``Ain``: plain SGD fused into the product
    (``state`` None, pruned by type as in ``train.train_batch``; ``w_done``: the weights
    were updated already, by ``matmul.mm_nn_sgd1``), else their gradient and
    ``update.step_span`` at optimizer step ``t``."""
    layout = model.layout
    lr = hyper[H_LR]
    W, b = layer_params(model.params, layout, l)
    G, g = layer_params(work.grad, layout, l)
    _colsum_once(D, g[c0:c1])
    if state is None:
        if not w_done:
            mm_tn(-lr, D, Ain, decay_factor(lr, hyper[H_WD]), W[c0:c1])
        st = b.dtype.type(lr)
        for j in range(c0, c1):
            b[j] = sgd_step(b[j], g[j], st)
    else:
        mm_tn(1.0, D, Ain, 0.0, G[c0:c1])
        w, we = weight_range(layout, l)
        k = layout[l, L_IN]
        step_span(model.params, work.grad, w + c0 * k, w + c1 * k, True, opt, hyper, state, t)
        step_span(model.params, work.grad, we + c0, we + c1, False, opt, hyper, state, t)


@njit(**JIT)
def _cols_update(rank, nthr, model, work, X, opt, hyper, state, t):
    """Thread ``rank``'s units of every layer updated (``update_units``) from the batch's
    ``len(X)`` rows (deltas and activations of all threads' rows)."""
    layout = model.layout
    cap = work.cap
    n = X.shape[0]
    off = runtime(0)
    Ain = X
    for l in range(layout.shape[0]):
        m = layout[l, L_OUT]
        c0, c1 = _cols(rank, nthr, m)
        if c1 > c0:
            update_units(model, work, l, block(work.deltas, off, n, m)[:, c0:c1], Ain, c0, c1,
                         opt, hyper, state, t, runtime(False))
        Ain = block(work.acts, off, n, m)
        off += cap * m


@njit(**JIT)
def split_epoch(rank, nthr, model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf,
                opt, hyper, state, step, out, sync, part):
    """Thread ``rank``'s part (of ``nthr``) of one epoch (module docstring).

    ``opt``, ``hyper``, ``state`` and ``step`` as for ``train.batch_epoch`` (``state``
    None: plain SGD, fused).  ``sync``: the barrier's three int64 (``sync.py``); ``part``: float64 ``(nthr,)``,
    each thread's share of the batch loss.  Thread 0 writes ``out`` (as
    ``train.batch_epoch``) and advances ``step`` and the model's counter.
    """
    N = X.shape[0]
    t0 = step[0]  # read before the first barrier, so before thread 0 moves it
    gen = generation(sync)
    total = 0.0
    done = 0
    done_steps = 0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        r0, r1 = _rows(rank, nthr, n)
        if shuffle:
            gather_rows(xbuf, ybuf, X, y, order, start, r0, r1)
            nxt = start + n  # this thread's rows of the next batch start on their way
            q0, q1 = _rows(rank, nthr, min(batch_size, N - nxt))
            prefetch_rows(X, y, order, nxt + q0, nxt + q1)
            Xb = xbuf[:n]
            yb = ybuf[:n]
        else:
            Xb = X[start:start + n]
            yb = y[start:start + n]
        s = 0.0
        if r1 > r0:
            s = _rows_pass(model, work, loss, Xb[r0:r1], yb[r0:r1], r0, 1.0 / n)
        part[rank] = s
        gen = barrier(sync, gen, nthr)
        if gen < 0:
            return
        s = 0.0
        for t in range(nthr):
            s += part[t]
        if not math.isfinite(s):
            if rank == 0:
                out[0] = s
                out[1] = done
            return
        _cols_update(rank, nthr, model, work, Xb, opt, hyper, state, t0 + done_steps + 1)
        done_steps += 1
        if rank == 0:
            step[0] += 1
            model.counter[0] += 1
        total += s
        done += n
        gen = barrier(sync, gen, nthr)
        if gen < 0:
            return
    if rank == 0:
        out[0] = total / done if done > 0 else 0.0
        out[1] = done
