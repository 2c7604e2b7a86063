"""Cheap input scans used at the Python boundary and by ``fastbp.jit``."""

import math

from numba import njit

from .._config import JIT


@njit(**JIT)
def all_finite(a):
    """True when no entry of ``a`` is NaN or infinite (no temporaries)."""
    for v in a.flat:
        if not math.isfinite(v):
            return False
    return True


@njit(**JIT)
def labels_in_range(y, m):
    """True when every integer label lies in ``[0, m)``."""
    for i in range(y.shape[0]):
        if y[i] < 0 or y[i] >= m:
            return False
    return True
