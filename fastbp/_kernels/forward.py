"""Forward pass over all layers into a preallocated activation buffer.

Buffers in ``Work`` (``acts``, ``pre``, ``mask``, ``bnx``, ``deltas``) are 1-D
with room for ``cap`` rows of every layer's output: layer ``l`` owns
``cap * n_out_l`` entries starting at ``cap * sum(n_out_j for j < l)``; a
batch of ``n <= cap`` rows uses the first ``n * n_out_l`` of them as a
C-contiguous ``(n, n_out_l)`` view.  ``bninv`` holds one entry per unit.
"""

from numba import njit

from .._config import JIT, JIT_INLINE
from ..spec import GELU, L_ACT, L_BN, L_IN, L_OUT, L_STAT, P_ALPHA, P_BN_EPS, \
    P_BN_MOMENTUM, P_DROP
from .activations import bias_act
from .layout import weight_range
from .sparse import input_nt
from .regularize import bn_forward, bn_running, dropout_forward
from .rng import mask_key
from .runtime import runtime
from .views import view2d


@njit(**JIT)
def block(buf, off, n, m):
    """``(n, m)`` C-contiguous view of ``buf`` starting at ``off``."""
    return view2d(buf, off, n, m)


@njit(**JIT)
def layer_params(params, layout, l):
    """Views ``(W, b)`` of layer ``l``: ``W`` is ``(n_out, n_in)``."""
    n_in = layout[l, L_IN]
    n_out = layout[l, L_OUT]
    w, bo = weight_range(layout, l)
    W = view2d(params, w, n_out, n_in)
    b = params[bo:bo + n_out]
    return W, b


@njit(**JIT)
def bn_params(params, layout, l):
    """Views ``(gamma, beta)`` of layer ``l``'s batch norm (layer must have one)."""
    o = layout[l, L_BN]
    m = layout[l, L_OUT]
    return params[o:o + m], params[o + m:o + 2 * m]


@njit(**JIT)
def keeps_pre(layout, l):
    """Whether layer ``l`` stores its pre-activation (GELU layers and the output)."""
    return layout[l, L_ACT] == GELU or l == layout.shape[0] - 1


@njit(**JIT)
def unit_offset(layout, l):
    """Index of layer ``l``'s first unit among all layers' units."""
    u = 0
    for j in range(l):
        u += layout[j, L_OUT]
    return u


@njit(**JIT_INLINE)
def _layer_forward(model, work, l, Ain, off, training, update_stats):
    """Forward one layer: product, bias, batch norm, activation, dropout."""
    layout = model.layout
    n = Ain.shape[0]
    m = layout[l, L_OUT]
    W, b = layer_params(model.params, layout, l)
    A = block(work.acts, off, n, m)
    P = block(work.pre, off, n, m)
    input_nt(Ain, W, A)  # Ain: dense, or sparse input rows (layer 0)
    lp = model.lparams
    act = layout[l, L_ACT]
    if layout[l, L_BN] >= 0:
        u = unit_offset(layout, l)
        g, be = bn_params(model.params, layout, l)
        s = layout[l, L_STAT]
        for i in range(n):
            for j in range(m):
                A[i, j] += b[j]
        W2 = work.bninv.shape[0]
        bn_forward(A, block(work.bnx, off, n, m), work.bninv[u:u + m],
                   work.bnstat[u:u + m], work.bnstat[W2 + u:W2 + u + m], g, be,
                   model.stats[s:s + m], model.stats[s + m:s + 2 * m],
                   lp[l, P_BN_MOMENTUM], lp[l, P_BN_EPS], training, update_stats)
        bias_act(A, b, act, lp[l, P_ALPHA], P, keeps_pre(layout, l), runtime(False))
    else:
        bias_act(A, b, act, lp[l, P_ALPHA], P, keeps_pre(layout, l), runtime(True))
    if training and lp[l, P_DROP] > 0.0:
        dropout_forward(A, block(work.mask, off, n, m), lp[l, P_DROP],
                        mask_key(model.seed, model.counter[0], l))


@njit(**JIT)
def forward(model, work, X, training, update_stats):
    """Run ``X`` (``n <= cap`` rows) through every layer; return the output block offset.

    ``training`` applies dropout and batch statistics; ``update_stats``
    updates batch-norm running averages (only in training).
    """
    layout = model.layout
    cap = work.cap
    n = X.shape[0]
    _layer_forward(model, work, runtime(0), X, runtime(0), training, update_stats)
    off = runtime(0)  # a literal 0 here would compile block() once more
    for l in range(1, layout.shape[0]):
        prev = off
        off += cap * layout[l - 1, L_OUT]
        _layer_forward(model, work, l, block(work.acts, prev, n, layout[l, L_IN]), off,
                       training, update_stats)
    return off


@njit(**JIT)
def commit_batch_stats(model, work, n):
    """Fold the last training forward pass's batch statistics (``n`` rows) into
    every batch-norm layer's running averages."""
    layout = model.layout
    W2 = work.bninv.shape[0]
    for l in range(layout.shape[0]):
        if layout[l, L_BN] >= 0:
            u = unit_offset(layout, l)
            m = layout[l, L_OUT]
            s = layout[l, L_STAT]
            bn_running(model.stats[s:s + m], model.stats[s + m:s + 2 * m],
                       work.bnstat[u:u + m], work.bnstat[W2 + u:W2 + u + m], n,
                       model.lparams[l, P_BN_MOMENTUM])
