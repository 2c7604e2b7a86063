"""One epoch of small batches on two threads that share every layer (the "units" engine).

With one or two samples a step, a step is bound by reading (and updating) the
weights: ``split.py``'s row shares would leave a thread idle.  Here thread ``t``
owns the same share of every layer's output units all epoch (``split._cols``),
so it only ever reads and writes its own rows of each ``W`` -- they stay in its
core's cache.  Per batch:

1. forward, layer by layer: the thread's units' pre-activations and (elementwise)
   activations from the whole previous layer; a barrier after each layer.  The
   output layer's activation (softmax needs whole rows), loss and output delta
   are thread 0's; a barrier;
2. backward, from the top: the thread's units' share ``D[:, own] @ W[own]`` of
   the delta product into its partial buffer (old ``W``), then its units' update
   (plain SGD fused, with one sample in the same pass over ``W``:
   ``matmul.mm_nn_sgd1``; other optimizers: gradient, then
   ``update.step_span``); a barrier; then the thread adds the two partials (thread
   0's first) for its units of the layer below and applies their activation
   derivative;
3. a barrier (the next batch's forward pass overwrites the activations).

The same ``nthr`` gives bit-identical results from run to run.  Dense input,
no dropout, no batch norm, no sample weights, one rate per epoch, no gradient
clipping.
"""

import math

from numba import njit

from .._config import JIT
from ..spec import L_ACT, L_IN, L_OUT, P_ALPHA, P_LOSS
from .activations import bias_act, mul_act_grad
from .forward import block, keeps_pre, layer_params
from .losses import loss_delta
from .matmul import mm_nn, mm_nn_sgd1, mm_nt
from .runtime import runtime
from .split import _cols, update_units
from .sync import barrier, generation
from .update import H_LR, H_WD, decay_factor
from .views import gather_rows


@njit(**JIT)
def _forward_units(rank, nthr, model, work, X, sync, gen):
    """Step 1 but the loss: every layer's pre-activations and activations of the thread's
    units, a barrier after each; the output layer's activation left to the caller.
    Returns the barrier generation (-1: aborted)."""
    layout = model.layout
    lp = model.lparams
    cap = work.cap
    n = X.shape[0]
    L = layout.shape[0]
    off = runtime(0)
    Ain = X
    for l in range(L):
        m = layout[l, L_OUT]
        c0, c1 = _cols(rank, nthr, m)
        W, b = layer_params(model.params, layout, l)
        A = block(work.acts, off, n, m)
        if c1 > c0:
            Ac = A[:, c0:c1]
            mm_nt(1.0, Ain, W[c0:c1], 0.0, Ac)
            if l < L - 1:
                bias_act(Ac, b[c0:c1], layout[l, L_ACT], lp[l, P_ALPHA],
                         block(work.pre, off, n, m)[:, c0:c1], keeps_pre(layout, l),
                         runtime(True))
            else:
                for i in range(n):
                    for j in range(c0, c1):
                        A[i, j] += b[j]
        gen = barrier(sync, gen, nthr)
        if gen < 0:
            return gen
        Ain = A
        if l < L - 1:
            off += cap * m
    return gen


@njit(**JIT)
def _backward_units(rank, nthr, model, work, X, scratch, opt, hyper, state, t, sync, gen):
    """Step 2: every layer's update of the thread's units and the deltas of its units
    of the layer below (``scratch``: the two threads' partial products).  Returns the
    barrier generation (-1: aborted)."""
    layout = model.layout
    lp = model.lparams
    cap = work.cap
    n = X.shape[0]
    L = layout.shape[0]
    lr = hyper[H_LR]
    quarter = scratch.shape[0] // 4
    off = runtime(0)
    for l in range(L - 1):
        off += cap * layout[l, L_OUT]
    for l in range(L - 1, -1, -1):
        m = layout[l, L_OUT]
        k = layout[l, L_IN]
        c0, c1 = _cols(rank, nthr, m)
        prev = off - cap * k if l > 0 else off
        Ain = block(work.acts, prev, n, k) if l > 0 else X
        W, _ = layer_params(model.params, layout, l)
        # four buffers: this thread's of this layer's parity, so a thread that moves on to
        # the next layer down never overwrites a partial the other is still adding
        mine = block(scratch, (2 * rank + l % 2) * quarter, n, k)
        if c1 > c0:
            Dc = block(work.deltas, off, n, m)[:, c0:c1]
            # plain SGD, one sample: the partial product and the update in one pass over W
            one = state is None and n == 1 and l > 0
            if one:
                mm_nn_sgd1(Dc, W[c0:c1], mine, Ain, -lr, decay_factor(lr, hyper[H_WD]))
            elif l > 0:
                mm_nn(1.0, Dc, W[c0:c1], 0.0, mine)
            update_units(model, work, l, Dc, Ain, c0, c1, opt, hyper, state, t, one)
        elif l > 0:
            mine[:, :] = 0.0
        if l == 0:
            break
        gen = barrier(sync, gen, nthr)
        if gen < 0:
            return gen
        k0, k1 = _cols(rank, nthr, k)
        Dp = block(work.deltas, prev, n, k)
        first = block(scratch, (l % 2) * quarter, n, k)
        second = block(scratch, (2 + l % 2) * quarter, n, k)
        for i in range(n):
            for j in range(k0, k1):
                Dp[i, j] = first[i, j] + second[i, j]
        if k1 > k0:
            mul_act_grad(Dp[:, k0:k1], Ain[:, k0:k1], block(work.pre, prev, n, k)[:, k0:k1],
                         layout[l - 1, L_ACT], lp[l - 1, P_ALPHA])
        off = prev
    return gen


@njit(**JIT)
def _output_loss(model, work, loss, y, n):
    """Thread 0's part of step 1: the output layer's activation on whole rows (its
    pre-activations kept), the batch's summed loss (returned) and output delta."""
    layout = model.layout
    L = layout.shape[0]
    m = layout[L - 1, L_OUT]
    off = runtime(0)
    for l in range(L - 1):
        off += work.cap * layout[l, L_OUT]
    A = block(work.acts, off, n, m)
    P = block(work.pre, off, n, m)
    _, b = layer_params(model.params, layout, L - 1)
    bias_act(A, b, layout[L - 1, L_ACT], model.lparams[L - 1, P_ALPHA], P, runtime(True),
             runtime(False))
    return loss_delta(A, P, y, loss, layout[L - 1, L_ACT], 1.0 / n,
                      block(work.deltas, off, n, m), runtime(True), model.lparams[L - 1, P_LOSS])


@njit(**JIT)
def units_epoch(rank, nthr, model, work, loss, X, y, order, batch_size, shuffle, xbuf, ybuf,
                opt, hyper, state, step, out, sync, part, scratch):
    """Thread ``rank``'s part (of ``nthr`` = 2) of one epoch (module docstring).

    Arguments as ``split.split_epoch``'s, plus ``scratch``: room for the two threads'
    partial delta products of two layers (``4 * batch_size * widest layer input``
    entries of the parameters' dtype).  Thread 0 gathers shuffled rows, writes ``out`` and advances
    ``step`` and the model's counter.
    """
    N = X.shape[0]
    t0 = step[0]
    gen = generation(sync)
    total = 0.0
    done = 0
    steps = 0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        if shuffle:
            if rank == 0:
                gather_rows(xbuf, ybuf, X, y, order, start, 0, n)
            gen = barrier(sync, gen, nthr)
            if gen < 0:
                return
            Xb = xbuf[:n]
            yb = ybuf[:n]
        else:
            Xb = X[start:start + n]
            yb = y[start:start + n]
        gen = _forward_units(rank, nthr, model, work, Xb, sync, gen)
        if gen < 0:
            return
        if rank == 0:
            part[0] = _output_loss(model, work, loss, yb, n)
        gen = barrier(sync, gen, nthr)
        if gen < 0:
            return
        s = part[0]
        if not math.isfinite(s):
            if rank == 0:
                out[0] = s
                out[1] = done
            return
        gen = _backward_units(rank, nthr, model, work, Xb, scratch, opt, hyper, state,
                              t0 + steps + 1, sync, gen)
        if gen < 0:
            return
        if rank == 0:
            step[0] += 1
            model.counter[0] += 1
        steps += 1
        total += s
        done += n
        gen = barrier(sync, gen, nthr)
        if gen < 0:
            return
    if rank == 0:
        out[0] = total / done if done > 0 else 0.0
        out[1] = done
