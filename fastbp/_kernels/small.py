"""A flat, view-free SGD path for small networks.

For tiny layers (XOR-sized, online learning with batch 1) the cost of a step
is dominated by bookkeeping -- array views, reference counts, calls -- not by
arithmetic.  These kernels index the flat parameter and workspace buffers
directly, read batch rows straight from ``X`` (through the shuffle order, no
gather), and fuse forward, loss, delta propagation and the SGD update in one
function.  They cover plain SGD (weight decay included) without dropout or
batch norm; ``train.train_epoch`` routes eligible networks here.  Results
equal the general path up to floating-point summation order.
"""

import math

from numba import njit

from .._config import JIT, SMALL_NET_MACS
from ..spec import (CROSS_ENTROPY, L_ACT, L_BN, L_IN, L_OUT, L_W, P_ALPHA, P_DROP, P_LOSS,
                    POISSON, SOFTMAX)
from .activations import act as _act, dact as _dact
from .approx import vexp
from .losses import elem_grad, elem_loss, elementwise, poisson_loss

@njit(**JIT)
def supported(layout, lparams):
    """Whether the flat path can train this architecture at all (no batch norm, no dropout)."""
    for l in range(layout.shape[0]):
        if layout[l, L_BN] >= 0 or lparams[l, P_DROP] > 0.0:
            return False
    return True


@njit(**JIT)
def eligible(layout, lparams, batch_size):
    """Whether a network and batch size suit the flat path (supported and small enough)."""
    if not supported(layout, lparams):
        return False
    macs = 0
    for l in range(layout.shape[0]):
        macs += layout[l, L_IN] * layout[l, L_OUT]
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
            w = layout[l, L_W]
            bo = w + n_in * m
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
                    if code != SOFTMAX:
                        acts[o + j] = _act(s, code, al)
                if code == SOFTMAX:
                    mx = pre[o]
                    for j in range(1, m):
                        mx = max(mx, pre[o + j])
                    tot = T(0.0)
                    for j in range(m):
                        e = vexp(pre[o + j] - mx)
                        acts[o + j] = e
                        tot += e
                    for j in range(m):
                        acts[o + j] /= tot
            if l < L - 1:
                off += cap * m
        # loss and output delta (scaled by 1/n)
        m = layout[L - 1, L_OUT]
        code = layout[L - 1, L_ACT]
        inv = T(1.0 / n)
        lp = lparams[L - 1, P_LOSS]
        total = 0.0
        for i in range(n):
            r = order[start + i] if shuffle else start + i
            o = off + i * m
            if elementwise(loss):
                gp = 0.0
                for k in range(m):
                    if y.ndim == 1:
                        tk = 1.0 if y[r] == k else 0.0
                    else:
                        tk = float(y[r, k])
                    g = acts[o + k] - tk
                    total += elem_loss(loss, g, lp)
                    gp += elem_grad(loss, g, lp) * acts[o + k]
                for k in range(m):
                    if y.ndim == 1:
                        tk = 1.0 if y[r] == k else 0.0
                    else:
                        tk = float(y[r, k])
                    a = acts[o + k]
                    g = T(elem_grad(loss, a - tk, lp))
                    if code == SOFTMAX:
                        g = a * (g - T(gp))
                    else:
                        g *= _dact(a, pre[o + k], code, 0.0)
                    deltas[o + k] = inv * g
            elif loss == CROSS_ENTROPY:
                mx = pre[o]
                for k in range(1, m):
                    mx = max(mx, pre[o + k])
                se = 0.0
                for k in range(m):
                    se += math.exp(float(pre[o + k] - mx))
                lse = float(mx) + math.log(se)
                dsum = 0.0
                for k in range(m):
                    if y.ndim == 1:
                        tk = 1.0 if y[r] == k else 0.0
                    else:
                        tk = float(y[r, k])
                    if tk != 0.0:
                        total += tk * (lse - float(pre[o + k]))
                    dsum += tk
                for k in range(m):
                    if y.ndim == 1:
                        tk = 1.0 if y[r] == k else 0.0
                    else:
                        tk = float(y[r, k])
                    deltas[o + k] = inv * T(acts[o + k] * dsum - tk)
            elif loss == POISSON:
                for k in range(m):
                    if y.ndim == 1:
                        tk = 1.0 if y[r] == k else 0.0
                    else:
                        tk = float(y[r, k])
                    total += poisson_loss(float(pre[o + k]), tk)
                    deltas[o + k] = inv * T(acts[o + k] - tk)
            else:  # BINARY_CROSS_ENTROPY
                for k in range(m):
                    zk = float(pre[o + k])
                    if y.ndim == 1:
                        tk = 1.0 if y[r] == k else 0.0
                    else:
                        tk = float(y[r, k])
                    total += max(zk, 0.0) + math.log1p(math.exp(-abs(zk))) - tk * zk
                    deltas[o + k] = inv * T(acts[o + k] - tk)
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
            w = layout[l, L_W]
            bo = w + n_in * m
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
                        deltas[p + k] *= _dact(acts[p + k], pre[p + k], pcode, pal)
            if dec != T(1.0):
                for q in range(w, bo):
                    params[q] *= dec
            for i in range(n):
                r = order[start + i] if shuffle else start + i
                d = off + i * m
                for j in range(m):
                    g = step * deltas[d + j]
                    wj = w + j * n_in
                    params[bo + j] -= g
                    if l == 0:
                        for k in range(n_in):
                            params[wj + k] -= g * X[r, k]
                    else:
                        p = prev + i * n_in
                        for k in range(n_in):
                            params[wj + k] -= g * acts[p + k]
            off = prev

        epoch_total += total
        done += n
        steps += 1
    out[0] = epoch_total / max(done, 1)
    out[1] = done
    return steps
