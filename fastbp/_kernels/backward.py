"""Delta backpropagation with the weight gradient or a fused SGD update.

For each layer from the output down: ``D_{l-1} = D_l @ W_l`` (computed before
``W_l`` changes), then layer ``l``'s gradient ``dW_l = D_l.T @ A_{l-1}``,
``db_l = sum_rows(D_l)`` is written into ``grad`` -- or, fused, SGD is applied
in place with no gradient buffer: ``W_l <- decay * W_l - lr * D_l.T @ A_{l-1}``
inside one gemm (``beta = decay``).  Then ``D_{l-1}`` passes back through
layer ``l-1``'s dropout, activation derivative and batch norm.  Deltas
already carry the ``1/n`` of the batch mean.
"""

from numba import njit

from .._config import JIT, JIT_INLINE, JIT_NO_NRT
from ..spec import L_ACT, L_BN, L_IN, L_OUT, P_ALPHA, P_DROP
from .activations import mul_act_grad
from .forward import block, bn_params, layer_params, unit_offset
from .matmul import mm_nn, mm_nn_sgd1
from .regularize import bn_backward, dropout_backward
from .runtime import runtime
from .sparse import input_tn
from .update import sgd_step


@njit(**JIT_NO_NRT)
def _colsum(D, out):
    """Column sums of D into out (the bias gradient)."""
    out[:] = 0.0
    for i in range(D.shape[0]):
        d = D[i]
        for j in range(out.shape[0]):
            out[j] += d[j]


@njit(**JIT)
def _weights(model, work, l, D, Ain, lr, decay, fused, w_done):
    """Gradient of layer ``l``'s W and b into ``grad``, or the fused SGD update
    (``w_done``: W's part was done already, by ``mm_nn_sgd1``)."""
    W, b = layer_params(model.params, model.layout, l)
    G, g = layer_params(work.grad, model.layout, l)
    _colsum(D, g)
    if fused:
        # update.sgd_decay_step inside the gemm (beta = decay); Ain: dense, or sparse input
        # rows (layer 0)
        if not w_done:
            input_tn(-lr, D, Ain, decay, W)
        step = b.dtype.type(lr)
        for j in range(b.shape[0]):
            b[j] = sgd_step(b[j], g[j], step)
    else:
        input_tn(1.0, D, Ain, 0.0, G)


@njit(**JIT_INLINE)
def _through_layer(model, work, l, Dp, Ain, off, lr, fused, training):
    """Turn ``Dp`` = dE/d(output of layer ``l``) into dE/d(linear output of layer ``l``)."""
    layout = model.layout
    lp = model.lparams
    n, m = Dp.shape
    if training and lp[l, P_DROP] > 0.0:
        dropout_backward(Dp, Ain, block(work.mask, off, n, m), lp[l, P_DROP])
    mul_act_grad(Dp, Ain, block(work.pre, off, n, m), layout[l, L_ACT], lp[l, P_ALPHA])
    if layout[l, L_BN] >= 0:
        u = unit_offset(layout, l)
        gam, bet = bn_params(model.params, layout, l)
        dg, db = bn_params(work.grad, layout, l)
        bn_backward(Dp, block(work.bnx, off, n, m), work.bninv[u:u + m], gam, dg, db, training)
        if fused:
            step = gam.dtype.type(lr)
            for j in range(m):
                gam[j] = sgd_step(gam[j], dg[j], step)
                bet[j] = sgd_step(bet[j], db[j], step)


@njit(**JIT_INLINE)
def backward(model, work, X, lr, decay, fused, training):
    """Propagate the output delta (already in ``work.deltas``) down to layer 0.

    ``fused``: apply SGD in place (``lr``, weight ``decay`` factor); otherwise
    write the batch-mean gradient into ``work.grad`` and leave ``params`` alone.
    """
    layout = model.layout
    cap = work.cap
    n = X.shape[0]
    L = layout.shape[0]
    off = runtime(0)  # a literal 0 here would compile block() once more
    for l in range(L - 1):
        off += cap * layout[l, L_OUT]
    for l in range(L - 1, 0, -1):
        prev = off - cap * layout[l - 1, L_OUT]
        n_in = layout[l, L_IN]
        D = block(work.deltas, off, n, layout[l, L_OUT])
        Ain = block(work.acts, prev, n, n_in)
        Dp = block(work.deltas, prev, n, n_in)
        W, _ = layer_params(model.params, layout, l)
        one = fused and n == 1  # one sample: D @ W and the update in one pass over W
        if one:
            mm_nn_sgd1(D, W, Dp, Ain, -lr, decay)
        else:
            mm_nn(1.0, D, W, 0.0, Dp)
        _weights(model, work, l, D, Ain, lr, decay, fused, one)
        _through_layer(model, work, l - 1, Dp, Ain, prev, lr, fused, training)
        off = prev
    _weights(model, work, runtime(0), block(work.deltas, runtime(0), n, layout[0, L_OUT]), X,
             lr, decay, fused, runtime(False))
