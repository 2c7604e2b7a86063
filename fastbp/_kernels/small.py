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

from .._config import JIT, JIT_INLINE, SMALL_NET_MACS
from ..spec import (CROSS_ENTROPY, ELU, GELU, L_ACT, L_BN, L_IN,
                    L_OUT, L_W, LEAKY_RELU, MSE, P_ALPHA, P_DROP, RELU, SIGMOID, SOFTMAX,
                    SOFTPLUS, TANH)
from .losses import target

_GELU_C = math.sqrt(2.0 / math.pi)


@njit(**JIT)
def eligible(layout, lparams, batch_size):
    """Whether a network and batch size suit the flat path."""
    macs = 0
    for l in range(layout.shape[0]):
        if layout[l, L_BN] >= 0 or lparams[l, P_DROP] > 0.0:
            return False
        macs += layout[l, L_IN] * layout[l, L_OUT]
    return macs * batch_size <= SMALL_NET_MACS


@njit(**JIT_INLINE)
def _act(z, code, alpha):
    T = type(z)
    if code == SIGMOID:
        if z >= T(0.0):
            return T(1.0) / (T(1.0) + math.exp(-z))
        e = math.exp(z)
        return e / (T(1.0) + e)
    if code == TANH:
        return math.tanh(z)
    if code == RELU:
        return max(z, T(0.0))
    if code == LEAKY_RELU:
        return z if z > T(0.0) else T(alpha) * z
    if code == ELU:
        return z if z > T(0.0) else T(alpha) * math.expm1(z)
    if code == SOFTPLUS:
        return max(z, T(0.0)) + math.log1p(math.exp(-abs(z)))
    if code == GELU:
        return T(0.5) * z * (T(1.0) + math.tanh(T(_GELU_C) * (z + T(0.044715) * z * z * z)))
    return z


@njit(**JIT_INLINE)
def _dact(a, z, code, alpha):
    """f'(z) from the output ``a`` (and ``z`` for GELU)."""
    T = type(a)
    if code == SIGMOID:
        return a * (T(1.0) - a)
    if code == TANH:
        return T(1.0) - a * a
    if code == RELU:
        return T(1.0) if a > T(0.0) else T(0.0)
    if code == LEAKY_RELU:
        return T(1.0) if a > T(0.0) else T(alpha)
    if code == ELU:
        return T(1.0) if a > T(0.0) else a + T(alpha)
    if code == SOFTPLUS:
        return -math.expm1(-a)
    if code == GELU:
        c = T(_GELU_C)
        k = T(0.044715)
        t = math.tanh(c * (z + k * z * z * z))
        return T(0.5) * (T(1.0) + t) + T(0.5) * z * (T(1.0) - t * t) * c * (T(1.0) + T(3.0) * k * z * z)
    return T(1.0)


@njit(**JIT_INLINE)
def _row(order, shuffle, start, i):
    return order[start + i] if shuffle else start + i


@njit(**JIT_INLINE)
def small_batch(params, layout, lparams, loss, X, y, order, shuffle, start, n, acts, pre,
                deltas, cap, lr, decay):
    """Fused forward, loss, backward and SGD update on rows ``start:start+n``
    (through ``order`` when ``shuffle``); returns the summed loss before the update."""
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
            r = _row(order, shuffle, start, i)
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
                    e = math.exp(pre[o + j] - mx)
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
    total = 0.0
    for i in range(n):
        r = _row(order, shuffle, start, i)
        o = off + i * m
        if loss == MSE:
            gp = 0.0
            for k in range(m):
                g = acts[o + k] - target(y, r, k)
                total += 0.5 * g * g
                gp += g * acts[o + k]
            for k in range(m):
                a = acts[o + k]
                g = T(a - target(y, r, k))
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
                t = target(y, r, k)
                if t != 0.0:
                    total += t * (lse - float(pre[o + k]))
                dsum += t
            for k in range(m):
                deltas[o + k] = inv * T(acts[o + k] * dsum - target(y, r, k))
        else:  # BINARY_CROSS_ENTROPY
            for k in range(m):
                zk = float(pre[o + k])
                t = target(y, r, k)
                total += max(zk, 0.0) + math.log1p(math.exp(-abs(zk))) - t * zk
                deltas[o + k] = inv * T(acts[o + k] - t)
    if not math.isfinite(total):
        return total
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
            r = _row(order, shuffle, start, i)
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
    return total


@njit(**JIT)
def small_epoch(params, layout, lparams, loss, X, y, order, batch_size, shuffle, acts, pre,
                deltas, cap, lr, decay, out):
    """One SGD epoch on the flat path; ``out`` as in ``train.train_epoch``.

    Returns the number of batches (steps) taken.
    """
    N = X.shape[0]
    total = 0.0
    done = 0
    steps = 0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        s = small_batch(params, layout, lparams, loss, X, y, order, shuffle, start, n, acts,
                        pre, deltas, cap, lr, decay)
        if not math.isfinite(s):
            out[0] = s
            out[1] = done
            return steps
        total += s
        done += n
        steps += 1
    out[0] = total / max(done, 1)
    out[1] = done
    return steps


