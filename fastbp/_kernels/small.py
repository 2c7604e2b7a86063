"""A flat, view-free SGD path for small networks.

For tiny layers (XOR-sized, online learning with batch 1) the cost of a step
is dominated by bookkeeping -- array views, reference counts, calls -- not by
arithmetic.  These kernels index the flat parameter and workspace buffers
directly, read batch rows straight from ``X`` (through the shuffle order, no
gather), and fuse forward, loss, delta propagation and the SGD update in one
function.  They cover plain SGD (weight decay included) without dropout or
batch norm; populations take it per network (``population-small``), single networks
only when forced (``_engine``: the general path was faster).  Results
equal the general path up to floating-point summation order.
"""

import math

from numba import njit

from .._config import JIT, SMALL_NET_MACS
from ..spec import L_ACT, L_IN, L_OUT, P_ALPHA, P_LOSS, SOFTMAX
from .activations import act, mul_dact, softmax_row
from .layout import dense_only, weight_range
from .losses import row_loss_delta
from .update import decayed, sgd_step


@njit(**JIT)
def eligible(layout, lparams, batch_size):
    """Whether a network and batch size suit the flat path (supported and small enough)."""
    if not dense_only(layout, lparams):
        return False
    macs = 0
    for l in range(layout.shape[0]):
        w, we = weight_range(layout, l)
        macs += we - w
    return macs * batch_size <= SMALL_NET_MACS


@njit(**JIT)
def small_epoch(params, layout, lparams, loss, X, y, order, batch_size, shuffle, acts, pre,
                deltas, cap, lr, decay, out):
    """One SGD epoch on the flat path; ``out`` as in ``train.train_epoch``.

    For each batch (rows ``start:start+n``, through ``order`` when
    ``shuffle``): fused forward, loss, backward and SGD update.  Everything
    is written out in this one function on purpose: a helper taking arrays,
    called per sample, costs more in reference counting than the arithmetic
    of a tiny network.  ``y`` is a 2-D float array or 1-D integer labels.
    Returns the number of batches (steps) taken.
    """
    N = X.shape[0]
    epoch_total = 0.0
    done = 0
    steps = 0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        T = params.dtype.type
        L = layout.shape[0]
        # forward
        off = 0
        for l in range(L):
            n_in = layout[l, L_IN]
            m = layout[l, L_OUT]
            w, bo = weight_range(layout, l)
            code = layout[l, L_ACT]
            al = lparams[l, P_ALPHA]
            prev = off - cap * n_in
            for i in range(n):
                r = order[start + i] if shuffle else start + i
                o = off + i * m
                for j in range(m):
                    wj = w + j * n_in
                    s = params[bo + j]
                    if l == 0:
                        for k in range(n_in):
                            s += X[r, k] * params[wj + k]
                    else:
                        p = prev + i * n_in
                        for k in range(n_in):
                            s += acts[p + k] * params[wj + k]
                    pre[o + j] = s
                if code == SOFTMAX:
                    softmax_row(pre, o, acts, o, m)
                else:
                    for j in range(m):
                        acts[o + j] = act(pre[o + j], code, al)
            if l < L - 1:
                off += cap * m
        # loss and output delta (scaled by 1/n)
        m = layout[L - 1, L_OUT]
        total = 0.0
        for i in range(n):
            total = row_loss_delta(total, acts, pre, off + i * m, y,
                                   order[start + i] if shuffle else start + i, m, loss,
                                   layout[L - 1, L_ACT], lparams[L - 1, P_ALPHA],
                                   lparams[L - 1, P_LOSS], T(1.0 / n), deltas, True)
        if not math.isfinite(total):
            out[0] = total
            out[1] = done
            return steps
        # backward with fused update, top layer first
        step = T(lr)
        dec = T(decay)
        for l in range(L - 1, -1, -1):
            n_in = layout[l, L_IN]
            m = layout[l, L_OUT]
            w, bo = weight_range(layout, l)
            prev = off - cap * n_in
            if l > 0:
                pcode = layout[l - 1, L_ACT]
                pal = lparams[l - 1, P_ALPHA]
                for i in range(n):
                    d = off + i * m
                    p = prev + i * n_in
                    for k in range(n_in):
                        deltas[p + k] = T(0.0)
                    for j in range(m):
                        dj = deltas[d + j]
                        wj = w + j * n_in
                        for k in range(n_in):
                            deltas[p + k] += dj * params[wj + k]
                    for k in range(n_in):
                        deltas[p + k] = mul_dact(deltas[p + k], acts[p + k], pre[p + k], pcode,
                                                 pal)
            # sgd_decay_step split over the batch: decay once, then each sample's
            # step (lr * delta_j) * a_k, with no gradient buffer
            if dec != T(1.0):
                for q in range(w, bo):
                    params[q] = decayed(params[q], dec)
            for i in range(n):
                r = order[start + i] if shuffle else start + i
                d = off + i * m
                for j in range(m):
                    g = step * deltas[d + j]
                    wj = w + j * n_in
                    params[bo + j] = sgd_step(params[bo + j], deltas[d + j], step)
                    if l == 0:
                        for k in range(n_in):
                            params[wj + k] = sgd_step(params[wj + k], X[r, k], g)
                    else:
                        p = prev + i * n_in
                        for k in range(n_in):
                            params[wj + k] = sgd_step(params[wj + k], acts[p + k], g)
            off = prev

        epoch_total += total
        done += n
        steps += 1
    out[0] = epoch_total / max(done, 1)
    out[1] = done
    return steps
