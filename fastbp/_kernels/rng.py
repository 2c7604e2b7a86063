"""The counter-based random numbers every kernel draws.

No generator state is carried: a number is a SplitMix64 hash of a key and
an index, so a seed reproduces every draw (dropout masks, data orders) on
every path and thread count.  ``GOLDEN`` (2^64 / golden ratio) is the
stream increment and the key spacing; Python code that spreads seeds apart
uses the same constant.
"""

import numpy as np
from numba import njit, prange

from .._config import JIT_INLINE, JIT_PARALLEL

#: SplitMix64's increment, ``floor(2^64 / phi)``, as a Python int.
GOLDEN = 0x9E3779B97F4A7C15
_GOLDEN = np.uint64(GOLDEN)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_INV53 = 1.0 / 9007199254740992.0


@njit(**JIT_INLINE)
def mix64(x):
    """SplitMix64 finaliser: a bijective 64-bit hash."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit(**JIT_INLINE)
def mask_key(seed, counter, layer):
    """Key of the dropout mask for one layer at one training step."""
    k = mix64(np.uint64(seed) + _GOLDEN * np.uint64(layer + 1))
    return mix64(k ^ mix64(np.uint64(counter) * _GOLDEN + np.uint64(layer)))


@njit(**JIT_INLINE)
def uniform(key, index):
    """A uniform number in [0, 1) for ``index`` under ``key``."""
    return float(mix64(key + np.uint64(index) * _GOLDEN) >> _S11) * _INV53


@njit(**JIT_INLINE)
def permutation(order, seed, k):
    """``order[:] <-`` a permutation of ``range(len(order))`` keyed by ``(seed, k)``.

    Fisher-Yates with a SplitMix64 stream; the same key gives the same order
    on every path and thread count.
    """
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    s = mix64(np.uint64(seed) ^ mix64(np.uint64(k) + _GOLDEN))
    for i in range(n - 1, 0, -1):
        s += _GOLDEN
        j = np.int64(((mix64(s) >> _S32) * np.uint64(i + 1)) >> _S32)
        t = order[i]
        order[i] = order[j]
        order[j] = t


@njit(**JIT_PARALLEL)
def permutations(orders, seed):
    """Row ``k`` of ``orders`` <- ``permutation(..., seed, k)`` for every network."""
    for k in prange(orders.shape[0]):
        permutation(orders[k], seed, k)
