"""Finiteness scan of a compiled array (``MLP.train_step``'s parameter check; the Python
boundary scans inputs with numpy, ``_validate.py``)."""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import JIT


@njit(**JIT)
def _finite_float_bits(bits, exp_mask):
    """No entry with an all-ones exponent field (NaN or inf), scanned in blocks
    whose integer reduction vectorises; stops at the first bad block."""
    n = bits.shape[0]
    for start in range(0, n, 4096):
        bad = 0
        for i in range(np.uint64(start), np.uint64(min(start + 4096, n))):  # unsigned:
            bad += (bits[i] & exp_mask) == exp_mask  # no wraparound, so it vectorises
        if bad:
            return False
    return True


def _finite(a):
    """Typed by the overload below."""


@overload(_finite, jit_options=JIT)
def _finite_impl(a):
    if isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C":
        if a.dtype == types.float32:
            return lambda a: _finite_float_bits(a.view(np.uint32), np.uint32(0x7F800000))
        if a.dtype == types.float64:
            return lambda a: _finite_float_bits(a.view(np.uint64),
                                                np.uint64(0x7FF0000000000000))

    def scan(a):
        for v in a.flat:
            if not math.isfinite(v):
                return False
        return True
    return scan


@njit(**JIT)
def all_finite(a):
    """True when no entry of ``a`` is NaN or infinite (no temporaries)."""
    return _finite(a)
