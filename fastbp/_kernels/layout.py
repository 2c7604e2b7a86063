"""Arithmetic on the layout table (``spec.build_layout``) shared by every kernel.

Layer ``l``'s parameters start at ``layout[l, L_W]``: its weights ``W_l``
(``n_out x n_in``, C order), then its ``n_out`` biases (then batch-norm
gamma/beta at ``layout[l, L_BN]`` when it has them).
"""

from numba import njit

from .._config import JIT_INLINE
from ..spec import L_IN, L_OUT, L_W


@njit(**JIT_INLINE)
def weight_range(layout, l):
    """``(start, end)`` of layer ``l``'s weights in the flat buffer; its biases start at ``end``."""
    w = layout[l, L_W]
    return w, w + layout[l, L_IN] * layout[l, L_OUT]
