"""Forward pass over all layers into a preallocated activation buffer.

Buffers ``acts`` and ``pre`` are 1-D with room for ``cap`` rows of every
layer's output: layer ``l`` owns ``cap * n_out_l`` entries starting at
``cap * sum(n_out_j for j < l)``; a batch of ``n <= cap`` rows uses the first
``n * n_out_l`` of them as a C-contiguous ``(n, n_out_l)`` view.
"""

from numba import njit

from .._config import JIT
from ..spec import GELU
from .activations import bias_act
from .matmul import mm_nt
from .views import view2d


@njit(**JIT)
def block(buf, off, n, m):
    """``(n, m)`` C-contiguous view of ``buf`` starting at ``off``."""
    return view2d(buf, off, n, m)


@njit(**JIT)
def layer_params(params, layout, l):
    """Views ``(W, b)`` of layer ``l``: ``W`` is ``(n_out, n_in)``."""
    n_in = layout[l, 0]
    n_out = layout[l, 1]
    w = layout[l, 2]
    W = view2d(params, w, n_out, n_in)
    b = params[w + n_out * n_in:w + n_out * n_in + n_out]
    return W, b


@njit(**JIT)
def keeps_pre(layout, l):
    """Whether layer ``l`` stores its pre-activation (GELU layers and the output)."""
    return layout[l, 3] == GELU or l == layout.shape[0] - 1


@njit(**JIT)
def layer_offset(layout, cap, l):
    """Offset of layer ``l``'s block in the activation/delta buffers."""
    off = 0
    for j in range(l):
        off += cap * layout[j, 1]
    return off


@njit(**JIT)
def _layer_forward(params, layout, alpha, l, Ain, acts, pre, off):
    n = Ain.shape[0]
    m = layout[l, 1]
    W, b = layer_params(params, layout, l)
    A = block(acts, off, n, m)
    P = block(pre, off, n, m)
    mm_nt(1.0, Ain, W, 0.0, A)
    bias_act(A, b, layout[l, 3], alpha[l], P, keeps_pre(layout, l))


@njit(**JIT)
def forward(params, layout, alpha, X, acts, pre, cap):
    """Run ``X`` (``n <= cap`` rows) through every layer; return the output block offset."""
    n = X.shape[0]
    _layer_forward(params, layout, alpha, 0, X, acts, pre, 0)
    off = 0
    for l in range(1, layout.shape[0]):
        prev = off
        off += cap * layout[l - 1, 1]
        _layer_forward(params, layout, alpha, l, block(acts, prev, n, layout[l, 0]), acts, pre, off)
    return off
