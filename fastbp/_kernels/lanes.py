"""Population training vectorised across networks.

K networks of one architecture do the same arithmetic on different numbers,
so the natural SIMD axis is the network axis.  Networks are taken in blocks
of ``LANES``; a block's parameters, gradients and optimizer state are held
transposed, ``(n_params, LANES)``, so row ``p`` is parameter ``p`` of every
network in the block, and every operation -- each multiply-add of the
forward pass, each activation, each delta, each update -- is a vector
operation on whole rows (``simd.py``: explicit LLVM vector code).  Samples go
through in groups of up to ``GROUP`` (their activations and deltas are a few
rows of ``LANES`` values each, in L1), so a weight row is read once per group;
gradients are summed over the batch and the optimizer step is applied at
the batch's end.

Every network keeps its own data rows (shared or per-network data), data
order (a Fisher-Yates shuffle keyed by the epoch seed and the network's
index), learning rate and optimizer hyper-parameters, step counter, loss and
divergence state.  A network whose batch loss is not finite is frozen
before that batch's update, as in ``train.train_epoch``.  Per-lane arithmetic
does not depend on which lane or block a network lands in, so results do
not depend on the thread count.

The path covers dense layers (any hidden activation; mse and the
cross-entropies) with SGD, momentum, Adam, AdamW and RPROP, L2/L1 and
clipping; networks with dropout, batch norm or another loss (huber, mae,
quantile, poisson: ``lanes_loss``) use the per-network kernel
(``population.py``), which calls the one copy of those formulas in
``losses.py``.
"""

import math

import numpy as np
from numba import njit

from .._config import GROUP, JIT, JIT_INLINE, JIT_NO_NRT, LANES
from ..spec import (BINARY_CROSS_ENTROPY, CROSS_ENTROPY, L_ACT, L_IN, L_OUT, MSE, P_ALPHA,
                    SIGMOID, SOFTMAX, TANH)
from .activations import act_range, mul_dact, mul_dact_range, softmax_jvp
from .approx import vexp
from .layout import weight_range
from .losses import bce_loss, ce_loss, elem_grad, elem_loss, fused_delta, log_sum_exp
from .rng import permutation
from .runtime import runtime
from .simd import sigmoid_rows, tanh_rows, vdot, vger, vsgd
from .update import (ADAMW, H_BETA1, H_BETA2, H_CLIP, H_DELTA_MAX, H_DELTA_MIN, H_EPS,
                     H_ETA_MINUS, H_ETA_PLUS, H_L1, H_LR, H_MOMENTUM, H_NESTEROV, H_WD,
                     MOMENTUM, RPROP, SGD, adam_factors, adam_step, clip_scale, decay_factor,
                     decayed, fused_sgd, momentum_step, reg_grad, rprop_step, sgd_step)

# rows of the per-lane float64 scalars ``lv``
_EPOCH_LOSS, _BATCH_LOSS, _A, _B, _C, _NORM = range(6)
N_LANE_SCALARS = 6
# rows of the per-lane flags ``lf``: 1 while training, 1 if this batch updates
_ALIVE, _LIVE = range(2)


@njit(**JIT)
def _check_workspace(PB, A, layout):
    """The workspace must match the ``LANES`` and ``GROUP`` compiled into the
    kernels (a stale on-disk cache after editing ``_config`` would not)."""
    rows = layout[0, L_IN]
    for l in range(layout.shape[0]):
        rows += layout[l, L_OUT]
    if PB.shape[PB.ndim - 1] != LANES or A.shape[A.ndim - 2] != GROUP * rows:
        raise ValueError("lane workspace shape differs from the compiled LANES/GROUP; "
                         "clear fastbp's Numba cache (__pycache__/*.nbi, *.nbc)")


@njit(**JIT)
def lanes_loss(loss):
    """Whether the lane kernel computes ``loss`` (mse and the cross-entropies)."""
    return loss == MSE or loss == CROSS_ENTROPY or loss == BINARY_CROSS_ENTROPY


# ------------------------------------------------------------------ one sample
@njit(**JIT_INLINE)
def _max_sumexp(Z, ao, m, S, A, store):
    """Per lane over rows ``ao .. ao+m-1``: ``S[0] <- max Z``, ``S[1] <- sum exp(Z - max)``;
    with ``store`` the exponentials go to the same rows of ``A``.

    The lane-row form of ``activations.softmax_row`` (the same operations per
    lane, in the same order), with the lanes as the vector.
    """
    T = Z.dtype.type
    nl = Z.shape[1]
    for q in range(nl):
        S[0, q] = Z[ao, q]
    for j in range(1, m):
        for q in range(nl):
            S[0, q] = max(S[0, q], Z[ao + j, q])
    for q in range(nl):
        S[1, q] = T(0.0)
    for j in range(m):
        for q in range(nl):
            e = vexp(Z[ao + j, q] - S[0, q])
            if store:
                A[ao + j, q] = e
            S[1, q] += e


@njit(**JIT_INLINE)
def _forward(PB, A, Z, S, Af, Zf, layout, lparams, R, ng):
    """Forward pass of ``ng <= GROUP`` samples through all lanes; returns the output row.

    Sample ``g``'s rows start at ``g * R`` in ``A``/``Z``: its input (``n_in``
    rows), then each layer's outputs.  ``S`` holds scratch rows (two used
    here, for softmax); ``Af``/``Zf`` are flat views of ``A``/``Z`` (made once
    per block: a reshape per sample costs more than a small layer).
    """
    T = A.dtype.type
    nl = A.shape[1]
    ain = 0
    for l in range(layout.shape[0]):
        n_in = layout[l, L_IN]
        m = layout[l, L_OUT]
        w, bo = weight_range(layout, l)
        code = layout[l, L_ACT]
        ao = ain + n_in
        for j in range(m):
            vdot(Z, ao + j, R, PB, w + j * n_in, 1, A, ain, 1, R, n_in, PB, bo + j, ng)
        for g in range(ng):
            o = g * R + ao
            if code == TANH:
                tanh_rows(A, o, Z, o, m)
            elif code == SIGMOID:
                sigmoid_rows(A, o, Z, o, m)
            elif code == SOFTMAX:
                _max_sumexp(Z, o, m, S, A, True)
                for q in range(nl):
                    S[1, q] = T(1.0) / S[1, q]
                for j in range(m):
                    for q in range(nl):
                        A[o + j, q] *= S[1, q]
            else:
                act_range(Af, Zf, o * nl, (o + m) * nl, code, lparams[l, P_ALPHA])
        ain = ao
    return ain


@njit(**JIT_INLINE)
def _loss_delta(A, Z, D, TG, S, lv, ao, m, loss, act, inv, t0):
    """Output deltas ``D <- inv * dE/dz`` and ``lv[_BATCH_LOSS] += E`` per lane,
    for the sample whose output rows start at ``ao`` and targets at ``TG[t0]``."""
    T = A.dtype.type
    nl = A.shape[1]
    if loss == MSE:
        if act == SOFTMAX:
            for q in range(nl):
                S[0, q] = T(0.0)
            for k in range(m):
                for q in range(nl):
                    S[0, q] += (A[ao + k, q] - TG[t0 + k, q]) * A[ao + k, q]
        for k in range(m):
            for q in range(nl):
                a = A[ao + k, q]
                g = T(elem_grad(runtime(MSE), a - TG[t0 + k, q], 0.0))
                lv[_BATCH_LOSS, q] += elem_loss(runtime(MSE), float(a) - float(TG[t0 + k, q]), 0.0)
                if act == SOFTMAX:
                    g = softmax_jvp(a, g, S[0, q])
                else:
                    g = mul_dact(g, a, Z[ao + k, q], act, 0.0)
                D[ao + k, q] = inv * g
        return
    if loss == CROSS_ENTROPY:
        _max_sumexp(Z, ao, m, S, A, False)
        for q in range(nl):
            lse = log_sum_exp(S[0, q], S[1, q])
            tot = 0.0
            dsum = 0.0
            for k in range(m):
                t = float(TG[t0 + k, q])
                tot += ce_loss(t, lse, Z[ao + k, q])
                dsum += t
            lv[_BATCH_LOSS, q] += tot
            S[1, q] = T(dsum)
    else:  # BINARY_CROSS_ENTROPY
        for k in range(m):
            for q in range(nl):
                lv[_BATCH_LOSS, q] += bce_loss(float(Z[ao + k, q]), float(TG[t0 + k, q]))
        for q in range(nl):
            S[1, q] = T(1.0)
    for k in range(m):
        for q in range(nl):
            D[ao + k, q] = inv * fused_delta(A[ao + k, q], S[1, q], TG[t0 + k, q])


@njit(**JIT_INLINE)
def _backward(PB, GB, A, Z, D, Af, Zf, Df, layout, lparams, ao, R, ng):
    """Deltas of ``ng <= GROUP`` samples down the layers; ``GB +=`` their gradient."""
    nl = A.shape[1]
    for l in range(layout.shape[0] - 1, -1, -1):
        n_in = layout[l, L_IN]
        m = layout[l, L_OUT]
        w, bo = weight_range(layout, l)
        ain = ao - n_in
        for j in range(m):
            vger(GB, w + j * n_in, 1, D, ao + j, R, A, ain, 1, R, n_in, bo + j, ng)
        if l > 0:
            for kk in range(n_in):
                vdot(D, ain + kk, R, PB, w + kk, n_in, D, ao, 1, R, m, D, -1, ng)
            for g in range(ng):
                mul_dact_range(Df, Af, Zf, (g * R + ain) * nl, (g * R + ao) * nl,
                               layout[l - 1, L_ACT], lparams[l - 1, P_ALPHA])
        ao = ain


# ------------------------------------------------------------------ the update
@njit(**JIT_NO_NRT)
def _update(PB, GB, SB, HB, lv, lf, layout, opt, stepv):
    """One optimizer step for the lanes flagged ``_LIVE`` (others untouched).

    ``HB`` (n_hyper, LANES) holds each lane's hyper-parameters; ``GB`` the
    batch-mean gradient (it is modified); ``stepv`` each lane's step count
    after this step.  Each element goes through the steps of ``update.py``.
    """
    T = PB.dtype.type
    P = PB.shape[0]
    nl = PB.shape[1]
    live = lf[_LIVE]
    clip = False
    for q in range(nl):
        clip = clip or HB[H_CLIP, q] > 0.0
    if clip:
        for q in range(nl):
            lv[_NORM, q] = 0.0
        for p in range(P):
            for q in range(nl):
                g = float(GB[p, q])
                lv[_NORM, q] += g * g
        for q in range(nl):
            lv[_NORM, q] = clip_scale(math.sqrt(lv[_NORM, q]), HB[H_CLIP, q])
        for p in range(P):
            for q in range(nl):
                GB[p, q] *= T(lv[_NORM, q])
    decoupled = opt == ADAMW
    for l in range(layout.shape[0]):
        w, we = weight_range(layout, l)
        for p in range(w, we):
            for q in range(nl):
                wd = T(0.0) if decoupled else T(HB[H_WD, q])
                GB[p, q] = reg_grad(PB[p, q], GB[p, q], wd, T(HB[H_L1, q]))
    if opt == SGD:
        for p in range(P):
            for q in range(nl):
                x = sgd_step(PB[p, q], GB[p, q], T(HB[H_LR, q]))
                PB[p, q] = x if live[q] else PB[p, q]
    elif opt == MOMENTUM:
        for p in range(P):
            for q in range(nl):
                x, v = momentum_step(PB[p, q], GB[p, q], SB[0, p, q], T(HB[H_LR, q]),
                                     T(HB[H_MOMENTUM, q]), HB[H_NESTEROV, q] != 0.0)
                SB[0, p, q] = v if live[q] else SB[0, p, q]
                PB[p, q] = x if live[q] else PB[p, q]
    elif opt == RPROP:
        for p in range(P):
            for q in range(nl):
                x, g, d = rprop_step(PB[p, q], GB[p, q], SB[0, p, q], SB[1, p, q],
                                     T(HB[H_ETA_PLUS, q]), T(HB[H_ETA_MINUS, q]),
                                     T(HB[H_DELTA_MIN, q]), T(HB[H_DELTA_MAX, q]))
                SB[0, p, q] = g if live[q] else SB[0, p, q]
                SB[1, p, q] = d if live[q] else SB[1, p, q]
                PB[p, q] = x if live[q] else PB[p, q]
    else:  # ADAM, ADAMW
        for q in range(nl):
            lr = HB[H_LR, q]
            lv[_A, q], lv[_B, q] = adam_factors(lr, HB[H_BETA1, q], HB[H_BETA2, q], stepv[q])
            lv[_C, q] = decay_factor(lr, HB[H_WD, q]) if decoupled else 1.0
        if decoupled:
            for l in range(layout.shape[0]):
                w, we = weight_range(layout, l)
                for p in range(w, we):
                    for q in range(nl):
                        x = decayed(PB[p, q], T(lv[_C, q]))
                        PB[p, q] = x if live[q] else PB[p, q]
        for p in range(P):
            for q in range(nl):
                x, mk, vk = adam_step(PB[p, q], GB[p, q], SB[0, p, q], SB[1, p, q],
                                      T(lv[_A, q]), T(lv[_B, q]), T(HB[H_BETA1, q]),
                                      T(HB[H_BETA2, q]), T(HB[H_EPS, q]))
                SB[0, p, q] = mk if live[q] else SB[0, p, q]
                SB[1, p, q] = vk if live[q] else SB[1, p, q]
                PB[p, q] = x if live[q] else PB[p, q]


@njit(**JIT_INLINE)
def _sgd_update(PB, GB, HB, S, lf, layout):
    """Plain SGD with L2 folded into a decay factor (the common case); zeroes ``GB``.

    ``S`` rows 2-4 receive each lane's rate (0 for lanes not updated), weight
    decay factor and 1 (biases: ``sgd_decay_step`` with factor 1 is ``sgd_step``).
    """
    T = PB.dtype.type
    for q in range(PB.shape[1]):
        lr = HB[H_LR, q] if lf[_LIVE, q] else 0.0
        S[2, q] = T(lr)
        S[3, q] = T(decay_factor(lr, HB[H_WD, q]))
        S[4, q] = T(1.0)
    for l in range(layout.shape[0]):
        w, we = weight_range(layout, l)
        vsgd(PB, w, we - w, GB, S, 2, 3)
        vsgd(PB, we, layout[l, L_OUT], GB, S, 2, 4)


# ------------------------------------------------------------------ one block
@njit(**JIT_INLINE)
def _gather(A, TG, Xf, yf, offs, ordT, r, shuffle, labels, n0, m, a0, t0):
    """Sample ``r`` (through each lane's order) into ``A[a0:a0+n_in]`` and ``TG[t0:t0+m]``.

    ``Xf``/``yf`` are the flat data; ``offs[0 or 1, q]`` where lane ``q``'s
    data set starts in them.  Unsigned indices let the lane loops vectorise
    (as gathers).
    """
    T = A.dtype.type
    nl = A.shape[1]
    un0 = np.uint64(n0)
    um = np.uint64(m)
    ur = np.uint64(r)
    for f in range(un0):
        for q in range(nl):
            row = np.uint64(ordT[r, q]) if shuffle else ur
            A[a0 + f, q] = Xf[offs[0, q] + row * un0 + f]
    if labels:
        for k in range(m):
            for q in range(nl):
                row = np.uint64(ordT[r, q]) if shuffle else ur
                TG[t0 + k, q] = T(1.0) if yf[offs[1, q] + row] == k else T(0.0)
    else:
        for k in range(um):
            for q in range(nl):
                row = np.uint64(ordT[r, q]) if shuffle else ur
                TG[t0 + k, q] = yf[offs[1, q] + row * um + k]


@njit(**JIT_NO_NRT)
def _train_block(params, layout, lparams, counters, loss, X, y, batch_size, shuffle, seed,
                 opt, hyper, state, step, out, k0, PB, GB, SB, HB, A, Z, D, TG, S, lv, lf,
                 ordT, stepv, offs):
    """Train one block of LANES networks for one epoch."""
    T = PB.dtype.type
    K, P = params.shape
    nq = min(LANES, K - k0)
    L = layout.shape[0]
    n0 = layout[0, L_IN]
    m = layout[L - 1, L_OUT]
    act = layout[L - 1, L_ACT]
    N = X.shape[1]
    n_state = state.shape[1] if state.shape[2] == P else 0  # plain SGD: no state
    # load the block, transposed; padding lanes train zeros and are never stored
    for p0 in range(0, P, 16):  # in tiles, so both sides stay in cache
        for q in range(PB.shape[1]):
            for p in range(p0, min(p0 + 16, P)):
                PB[p, q] = params[k0 + q, p] if q < nq else T(0.0)
    for p in range(P):
        for q in range(PB.shape[1]):
            GB[p, q] = T(0.0)
    for q in range(PB.shape[1]):
        live = q < nq
        for s in range(n_state):
            for p in range(P):
                SB[s, p, q] = state[k0 + q, s, p] if live else T(0.0)
        for h in range(HB.shape[0]):
            HB[h, q] = hyper[k0 + q, h] if live else 0.0
        stepv[q] = step[k0 + q, 0] if live else 0
        lv[_EPOCH_LOSS, q] = 0.0
        lv[_BATCH_LOSS, q] = 0.0
        lf[_ALIVE, q] = live
        if live:
            out[k0 + q, 0] = 0.0
            out[k0 + q, 1] = 0.0
    labels = y.ndim == 2
    ysize = 1 if labels else m
    R = A.shape[0] // GROUP  # rows of one sample
    for q in range(LANES):
        k = min(k0 + q, K - 1)  # padding lanes read the last network's data
        offs[0, q] = np.uint64(0 if X.shape[0] == 1 else k * N * n0)
        offs[1, q] = np.uint64(0 if y.shape[0] == 1 else k * N * ysize)
    Xf = X.reshape(-1)
    yf = y.reshape(-1)
    Af = A.reshape(-1)
    Zf = Z.reshape(-1)
    Df = D.reshape(-1)
    if shuffle:
        for q in range(nq):
            permutation(ordT[:, q], seed, k0 + q)
    plain = True
    for q in range(PB.shape[1]):
        plain = plain and fused_sgd(opt, HB[:, q])
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        inv = T(1.0 / n)
        for g0 in range(0, n, GROUP):
            gn = min(GROUP, n - g0)
            for g in range(gn):
                _gather(A, TG, Xf, yf, offs, ordT, start + g0 + g, shuffle, labels, n0, m,
                        g * R, g * m)
            ao = _forward(PB, A, Z, S, Af, Zf, layout, lparams, R, gn)
            for g in range(gn):
                _loss_delta(A, Z, D, TG, S, lv, g * R + ao, m, loss, act, inv, g * m)
            _backward(PB, GB, A, Z, D, Af, Zf, Df, layout, lparams, ao, R, gn)
        for q in range(PB.shape[1]):
            ok = lf[_ALIVE, q] and math.isfinite(lv[_BATCH_LOSS, q])
            if lf[_ALIVE, q] and not ok:  # diverged: frozen from here on
                out[k0 + q, 0] = lv[_BATCH_LOSS, q]
                out[k0 + q, 1] = float(start)
                lf[_ALIVE, q] = False
            lf[_LIVE, q] = ok
            if ok:
                lv[_EPOCH_LOSS, q] += lv[_BATCH_LOSS, q]
                stepv[q] += 1
            lv[_BATCH_LOSS, q] = 0.0
        if plain:
            _sgd_update(PB, GB, HB, S, lf, layout)
        else:
            _update(PB, GB, SB, HB, lv, lf, layout, opt, stepv)
            for p in range(P):
                for q in range(PB.shape[1]):
                    GB[p, q] = T(0.0)
    # store the block
    for p0 in range(0, P, 16):
        for q in range(nq):
            for p in range(p0, min(p0 + 16, P)):
                params[k0 + q, p] = PB[p, q]
    for q in range(nq):
        k = k0 + q
        for s in range(n_state):
            for p in range(P):
                state[k, s, p] = SB[s, p, q]
        counters[k, 0] += stepv[q] - step[k, 0]
        step[k, 0] = stepv[q]
        if lf[_ALIVE, q]:
            out[k, 0] = lv[_EPOCH_LOSS, q] / max(N, 1)
            out[k, 1] = float(N)


@njit(**JIT)
def lanes_epoch(params, layout, lparams, counters, loss, X, y, batch_size, shuffle, seed, opt,
                hyper, state, step, out, PB, GB, SB, HB, A, Z, D, TG, S, lv, lf, ordT, stepv,
                offs, c):
    """One epoch for chunk ``c``'s networks, ``LANES`` networks per vector.

    ``X`` is ``(1 or K, N, n_in)``; ``y`` ``(1 or K, N, n_out)`` floats or
    ``(1 or K, N)`` int labels; ``hyper`` ``(K, n_hyper)``; ``state``
    ``(K, n_state, n_params)``; ``step``/``counters`` ``(K, 1)``; ``out``
    ``(K, 2)`` <- mean loss and samples trained (as ``train.train_epoch``).
    Workspace arrays have a leading axis of chunks (threads: ``threads.run_chunks``
    calls this once per chunk); chunk ``c`` trains a contiguous run of blocks
    with workspace ``c``.
    """
    _check_workspace(PB, A, layout)
    if not lanes_loss(loss):
        raise ValueError("the lane kernel computes mse and the cross-entropies only; train "
                         "other losses with population.population_batch_epoch")
    K = params.shape[0]
    nb = (K + LANES - 1) // LANES
    nc = min(PB.shape[0], nb)
    if c >= nc:
        return
    for b in range(c * nb // nc, (c + 1) * nb // nc):
        _train_block(params, layout, lparams, counters, loss, X, y, batch_size, shuffle,
                     seed, opt, hyper, state, step, out, b * LANES, PB[c], GB[c], SB[c],
                     HB[c], A[c], Z[c], D[c], TG[c], S[c], lv[c], lf[c], ordT[c], stepv[c],
                     offs[c])


@njit(**JIT_NO_NRT)
def _predict_block(params, layout, lparams, X, k0, PB, A, Z, S, out):
    """Predict with one block of LANES networks."""
    K, P = params.shape
    T = PB.dtype.type
    nq = min(LANES, K - k0)
    n0 = layout[0, L_IN]
    m = layout[layout.shape[0] - 1, L_OUT]
    shared = X.shape[0] == 1
    for q in range(LANES):
        for p in range(P):
            PB[p, q] = params[k0 + q, p] if q < nq else T(0.0)
    Af = A.reshape(-1)
    Zf = Z.reshape(-1)
    R = A.shape[0] // GROUP
    for i0 in range(0, X.shape[1], GROUP):
        gn = min(GROUP, X.shape[1] - i0)
        for g in range(gn):
            for q in range(nq):
                xk = 0 if shared else k0 + q
                for f in range(n0):
                    A[g * R + f, q] = X[xk, i0 + g, f]
        ao = _forward(PB, A, Z, S, Af, Zf, layout, lparams, R, gn)
        for g in range(gn):
            for q in range(nq):
                for j in range(m):
                    out[k0 + q, i0 + g, j] = A[g * R + ao + j, q]


@njit(**JIT)
def lanes_predict(params, layout, lparams, X, PB, A, Z, S, out, c):
    """``out[k] <- network_k(X_k)`` for chunk ``c``'s networks, ``LANES`` at a time.

    Networks with batch norm use ``population.population_predict``.
    """
    _check_workspace(PB, A, layout)
    nb = (params.shape[0] + LANES - 1) // LANES
    nc = min(PB.shape[0], nb)
    if c >= nc:
        return
    for b in range(c * nb // nc, (c + 1) * nb // nc):
        _predict_block(params, layout, lparams, X, b * LANES, PB[c], A[c], Z[c], S[c], out)
