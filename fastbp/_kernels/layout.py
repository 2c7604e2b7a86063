"""Arithmetic on the layout table (``spec.build_layout``) shared by every kernel.

Layer ``l``'s parameters start at ``layout[l, L_W]``: its weights ``W_l``
(``n_out x n_in``, C order), then its ``n_out`` biases (then batch-norm
gamma/beta at ``layout[l, L_BN]`` when it has them).
"""

from numba import njit

from .._config import JIT, JIT_INLINE
from ..spec import L_BN, L_IN, L_OUT, L_W, P_DROP


@njit(**JIT_INLINE)
def weight_range(layout, l):
    """``(start, end)`` of layer ``l``'s weights in the flat buffer; its biases start at ``end``."""
    w = layout[l, L_W]
    return w, w + layout[l, L_IN] * layout[l, L_OUT]


@njit(**JIT)
def dense_only(layout, lparams):
    """Whether no layer has batch norm or dropout (what the flat, lane and generated
    engines require)."""
    for l in range(layout.shape[0]):
        if layout[l, L_BN] >= 0 or lparams[l, P_DROP] > 0.0:
            return False
    return True
