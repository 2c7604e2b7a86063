"""Per-sample weights: the one place that turns a batch mean into a weighted mean.

Unweighted, every engine scales each sample's output delta by ``1/n`` and the
batch loss is ``sum_i E_i / n``.  With weights ``w`` the loss is the weighted
mean ``sum_i w_i E_i / sum_i w_i`` (as PyTorch's weighted losses and
scikit-learn's MLP define it), so sample ``i``'s delta is scaled by
``w_i / sum(w)`` instead -- everything downstream (backward, optimizers) is
unchanged.  ``sw`` is an empty array for unweighted calls (``NO_VALUES``
from Python, ``runtime.no_values()`` in compiled code), so weighted and
unweighted calls share one compiled signature; the unweighted branch does
exactly the arithmetic it did before.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import JIT, JIT_INLINE
from .losses import loss_delta
from .runtime import no_values

#: "None" for optional sample weights / per-step rates in calls from Python:
#: empty, so nothing reads or writes it (``given`` is false for it).  Writeable,
#: as given weights are: Numba types a read-only array differently.
NO_VALUES = np.empty(0)


def or_none(v):
    """``v`` for a kernel's optional float64 vector argument: ``NO_VALUES`` when ``v`` is None
    (in compiled code: ``runtime.no_values()``, no allocation)."""
    return NO_VALUES if v is None else v


@overload(or_none, jit_options=JIT)
def _or_none_impl(v):
    if v is None or isinstance(v, (types.NoneType, types.Omitted)):
        return lambda v: no_values()
    return lambda v: v


@njit(**JIT_INLINE)
def given(v):
    """Whether the optional vector ``v`` (sample weights, per-step rates) was given (non-empty)."""
    return v.shape[0] != 0


@njit(**JIT)
def weight_total(sw, n):
    """Denominator of the batch mean: ``n`` unweighted, else ``sum(sw)`` (``n`` rows)."""
    if not given(sw):
        return float(n)
    s = 0.0
    for i in range(n):
        s += float(sw[i])
    return s


@njit(**JIT_INLINE)
def weighted_loss_delta(A, Z, y, sw, loss, act, scale, D, want_delta, lp):
    """``loss_delta`` with sample weights: returns ``sum_i sw_i E_i`` and
    writes ``D_i <- scale * sw_i * dE_i/dz`` (plain ``loss_delta`` when ``sw`` is empty).

    Rows go through ``loss_delta`` one at a time (views, no allocation), so
    every loss formula stays in ``losses.py``.
    """
    if not given(sw):
        return loss_delta(A, Z, y, loss, act, scale, D, want_delta, lp)
    total = 0.0
    for i in range(A.shape[0]):
        wi = float(sw[i])
        total += wi * loss_delta(A[i:i + 1], Z[i:i + 1], y[i:i + 1], loss, act, scale * wi,
                                 D[i:i + 1], want_delta, lp)
    return total


@njit(**JIT)
def gather_weights(sw, wbuf, order, start, n, shuffle):
    """The batch's weights: ``sw[start:start+n]``, or gathered through ``order``
    into ``wbuf`` when ``shuffle`` (so weights travel with their samples); ``sw``
    itself (empty) when unweighted."""
    if not given(sw):
        return sw
    if not shuffle:
        return sw[start:start + n]
    for r in range(n):
        wbuf[r] = sw[order[start + r]]
    return wbuf[:n]
