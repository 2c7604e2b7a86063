"""Per-sample weights: the one place that turns a batch mean into a weighted mean.

Unweighted, every engine scales each sample's output delta by ``1/n`` and the
batch loss is ``sum_i E_i / n``.  With weights ``w`` the loss is the weighted
mean ``sum_i w_i E_i / sum_i w_i`` (as PyTorch's weighted losses and
scikit-learn's MLP define it), so sample ``i``'s delta is scaled by
``w_i / sum(w)`` instead -- everything downstream (backward, optimizers) is
unchanged.  ``sw`` is ``None`` for unweighted calls: Numba compiles that
case without any weight code (the ``sw is None`` branches are pruned at
compile time), so unweighted training is exactly what it was.
"""

from numba import njit

from .._config import JIT
from .losses import loss_delta


@njit(**JIT)
def weight_total(sw, n):
    """Denominator of the batch mean: ``n`` unweighted, else ``sum(sw)`` (``n`` rows)."""
    if sw is None:
        return float(n)
    s = 0.0
    for i in range(n):
        s += float(sw[i])
    return s


@njit(**JIT)
def weighted_loss_delta(A, Z, y, sw, loss, act, scale, D, want_delta, lp):
    """``loss_delta`` with sample weights: returns ``sum_i sw_i E_i`` and
    writes ``D_i <- scale * sw_i * dE_i/dz`` (plain ``loss_delta`` when ``sw`` is None).

    Rows go through ``loss_delta`` one at a time (views, no allocation), so
    every loss formula stays in ``losses.py``.
    """
    if sw is None:
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
    into ``wbuf`` when ``shuffle`` (so weights travel with their samples); ``None``
    when unweighted."""
    if sw is None:
        return None
    if not shuffle:
        return sw[start:start + n]
    for r in range(n):
        wbuf[r] = sw[order[start + r]]
    return wbuf[:n]
