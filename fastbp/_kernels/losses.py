"""Loss value and output-layer delta in one pass.

``loss_delta`` returns the *sum* of per-sample losses and writes
``delta = scale * dE/dz`` for the output layer:

* ``mse``: E = 1/2 sum_k (y_k - d_k)^2, delta = (y - d) * f'(z) (softmax: Jacobian-vector product)
* ``cross_entropy`` (softmax): E = sum_k d_k (logsumexp(z) - z_k), delta = p * sum(d) - d
* ``binary_cross_entropy`` (sigmoid): E = sum_k softplus(z_k) - d_k z_k, delta = p - d
* ``huber``, ``mae``, ``quantile``: E = sum_k rho(y_k - d_k) for the residual
  r = y - d (``elem_loss`` / ``elem_grad``, with ``mse``'s rho(r) = r^2 / 2),
  delta = rho'(r) * f'(z) (softmax: Jacobian-vector product, as for mse)
* ``poisson`` (exp): E = sum_k exp(z_k) - d_k z_k + d_k log d_k - d_k (half the
  Poisson deviance, 0 at a perfect fit), delta = exp(z) - d

The cross-entropies and Poisson are evaluated from ``z`` (stable, never log(0)).
The loss parameter ``lp`` is Huber's delta or the quantile (unused otherwise).
At a kink (MAE and quantile at r = 0) ``elem_grad`` returns the subgradient 0.
Targets are a float ``(n, m)`` array, integer class labels ``(n,)`` for
cross-entropy (one-hot implied), or ``(n,)`` values for a single output.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import JIT, JIT_INLINE, JIT_NO_NRT
from ..spec import CROSS_ENTROPY, HUBER, MAE, MSE, POISSON, QUANTILE, SOFTMAX
from .activations import (exp_shifted, mul_dact, mul_dact_range, row_max, softmax_jvp,
                          softplus)
from .runtime import runtime
from .vdot import sqdiff8


@njit(**JIT)
def elementwise(loss):
    """Whether ``loss`` is a function of each output's residual (mse, huber, mae, quantile)."""
    return loss == MSE or loss == HUBER or loss == MAE or loss == QUANTILE


@njit(**JIT)
def elem_loss(loss, r, lp):
    """Per-output loss rho(r) of the residual ``r = output - target`` (float64)."""
    if loss == HUBER:
        ar = abs(r)
        return 0.5 * r * r if ar <= lp else lp * (ar - 0.5 * lp)
    if loss == MAE:
        return abs(r)
    if loss == QUANTILE:
        return (1.0 - lp) * r if r > 0.0 else -lp * r
    return 0.5 * r * r


@njit(**JIT)
def elem_grad(loss, r, lp):
    """rho'(r), d(per-output loss)/d(output); at a kink the subgradient 0."""
    if loss == HUBER:
        return r if abs(r) <= lp else (lp if r > 0.0 else -lp)
    if loss == MAE:
        return 1.0 if r > 0.0 else (-1.0 if r < 0.0 else 0.0)
    if loss == QUANTILE:
        return 1.0 - lp if r > 0.0 else (-lp if r < 0.0 else 0.0)
    return r


@njit(**JIT)
def poisson_loss(z, t):
    """Half Poisson deviance of log-rate ``z`` and count ``t >= 0``: exp(z) - t z + t log t - t."""
    v = math.exp(z) - t * z
    if t > 0.0:
        v += t * (math.log(t) - 1.0)
    return v


def target(y, i, k, labels):
    """Target ``d[i, k]`` as a float64: ``y[i, k]`` for 2-D targets; for 1-D integer ``y``
    one-hot ``y[i] == k`` when ``labels`` (cross-entropy) else the value
    ``y[i]``; ``y[i]`` for 1-D float targets of a single-output network."""
    if y.ndim == 1:
        if y.dtype.kind in "iu" and labels:
            return float(y[i] == k)
        return float(y[i])
    return float(y[i, k])


@overload(target, jit_options=JIT)
def _target_impl(y, i, k, labels):
    if isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, types.Integer):
        def impl(y, i, k, labels):
            if labels:
                return 1.0 if y[i] == k else 0.0
            return float(y[i])
        return impl
    if isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, types.Float):
        def impl(y, i, k, labels):
            return float(y[i])
        return impl
    if isinstance(y, types.Array) and y.ndim == 2:
        def impl(y, i, k, labels):
            return float(y[i, k])
        return impl
    return None


@njit(**JIT)
def log_sum_exp(mx, s):
    """``log sum_k exp(z_k)`` from the maximum ``mx`` and ``s = sum_k exp(z_k - mx)`` (float64)."""
    return float(mx) + math.log(float(s))


@njit(**JIT_INLINE)
def row_log_sum_exp(Z, zo, m, E, eo):
    """``log sum_k exp(Z[zo+k])`` over ``k < m``, shifted by the maximum (the sum as
    ``softmax_row`` forms it); ``E[eo:eo+m]`` is scratch."""
    mx = row_max(Z, zo, m)
    return log_sum_exp(mx, exp_shifted(Z, zo, E, eo, m, mx))


def softmax_lse(y, i, A, Z, o, m, act, E):
    """Sample ``i``'s ``log sum_k exp(Z[o+k])`` for its cross-entropy: with integer labels
    and a softmax output ``A`` (the forward pass's), ``z_l - log(a_l)`` of the labelled class
    ``l`` (``a_l = exp(z_l) / sum_k exp(z_k)``: no second pass of exponentials), where
    ``a_l`` is a normal number; else ``row_log_sum_exp`` (``E`` scratch) (typed below)."""


@overload(softmax_lse, jit_options=JIT)
def _softmax_lse_impl(y, i, A, Z, o, m, act, E):
    if isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, types.Integer):
        def labels(y, i, A, Z, o, m, act, E):
            a = A[o + y[i]]
            if act == SOFTMAX and a >= np.finfo(A.dtype).tiny:
                return np.float64(Z[o + y[i]]) - math.log(np.float64(a))
            return row_log_sum_exp(Z, o, m, E, o)
        return labels
    return lambda y, i, A, Z, o, m, act, E: row_log_sum_exp(Z, o, m, E, o)


@njit(**JIT)
def ce_loss(t, lse, z):
    """Cross-entropy of one class, ``t (logsumexp(z) - z_k)``; 0 where ``t = 0``."""
    return t * (lse - float(z)) if t != 0.0 else 0.0


@njit(**JIT)
def bce_loss(z, t):
    """Binary cross-entropy of the logit ``z``, stable: ``softplus(z) - t z``."""
    return softplus(z) - t * z


@njit(**JIT_INLINE)
def _ce_dense(y, i, lse, Z, o, m):
    """``ce_row`` for 2-D (one-hot or soft) targets."""
    e = s = 0.0
    for k in range(m):
        t = target(y, i, k, True)
        e += ce_loss(t, lse, Z[o + k])
        s += t
    return e, s


def ce_row(y, i, lse, Z, o, m):
    """``(sum_k ce_loss(d_k, lse, Z[o+k]), sum_k d_k)`` of sample ``i``'s targets ``d``
    (integer labels: only the labelled class adds)."""
    return _ce_dense(y, i, lse, Z, o, m)


@overload(ce_row, jit_options=JIT)
def _ce_row_impl(y, i, lse, Z, o, m):
    if isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, types.Integer):
        return lambda y, i, lse, Z, o, m: (ce_loss(1.0, lse, Z[o + y[i]]), 1.0)
    return lambda y, i, lse, Z, o, m: _ce_dense(y, i, lse, Z, o, m)


@njit(**JIT)
def fused_delta(a, s, t):
    """dE/dz of an output with its canonical link (softmax + CE, sigmoid + BCE,
    exp + Poisson): ``a s - t``, ``s`` the sum of the sample's targets (CE) or 1."""
    return a * s - t


@njit(**JIT)
def elem_delta(a, z, t, loss, code, lp, inv):
    """``(rho(r), inv * rho'(r) f'(z))`` of one output ``a = f(z)`` with target ``t``
    (elementwise loss, non-softmax output): ``row_loss_delta``'s terms for one output, as the
    generated kernels call them."""
    T = type(a)
    r = a - t
    g = T(elem_grad(loss, r, lp))
    g = mul_dact(g, a, z, code, 0.0)
    return elem_loss(loss, r, lp), inv * g


def _half_sq_sum(A, o, y, i, m):
    """MSE's loss of sample ``i``: ``elem_loss(MSE, r)`` = r^2 / 2 summed over its ``m``
    outputs at ``A[o:]``, as half the sum of squares in float64 in the eight-partial order
    (``vdot.sqdiff8``: vector code where the target row is C-contiguous in ``A``'s dtype;
    exact: halving is) (typed below)."""


@overload(_half_sq_sum, jit_options=JIT)
def _half_sq_sum_impl(A, o, y, i, m):
    if isinstance(y, types.Array) and y.ndim == 2:
        def rows(A, o, y, i, m):
            m8 = m - m % 8
            s = sqdiff8(A, o, y[i], 0, m8)
            for k in range(m8, m):
                r = np.float64(A[o + k]) - np.float64(y[i, k])
                s += r * r
            return 0.5 * s
        return rows

    def values(A, o, y, i, m):
        # 1-D targets: one value a sample (m == 1)
        s = 0.0
        for k in range(m):
            r = np.float64(A[o + k]) - np.float64(target(y, i, k, False))
            s += r * r
        return 0.5 * s
    return values


@njit(**JIT_NO_NRT)
def _elem_row(total, A, Z, o, y, i, m, loss, act, alpha, lp, sc, D, want_delta):
    """``row_loss_delta`` for an elementwise ``loss`` and an output activation other than
    softmax (a call of its own: one copy however many kernels inline ``row_loss_delta``).
    MSE's loss is summed as vector code (``_half_sq_sum``): one scalar chain over a wide
    output layer cost more than the layer's products."""
    T = A.dtype.type
    if loss == MSE:
        total += _half_sq_sum(A, o, y, i, m)
    else:
        for k in range(m):
            total += elem_loss(loss, A[o + k] - target(y, i, k, False), lp)
    if want_delta:
        if loss == MSE:  # a loop of its own per loss (no branch per output): vector code
            for k in range(m):
                D[o + k] = T(elem_grad(runtime(MSE), A[o + k] - target(y, i, k, False), lp))
        else:
            for k in range(m):
                D[o + k] = T(elem_grad(loss, A[o + k] - target(y, i, k, False), lp))
        mul_dact_range(D, A, Z, o, o + m, act, alpha)
        for k in range(o, o + m):
            D[k] = sc * D[k]
    return total


@njit(**JIT_INLINE)
def row_loss_delta(total, A, Z, o, y, i, m, loss, act, alpha, lp, sc, D, want_delta):
    """Add sample ``i``'s loss to ``total`` and return it; with ``want_delta``
    ``D[o+k] <- sc * dE/dz_k``.

    ``A``/``Z``/``D`` are 1-D, the sample's outputs / pre-activations / deltas
    at ``o .. o+m-1``; ``y`` the targets (row ``i``), ``act`` and ``alpha`` the
    output activation, ``lp`` the loss parameter.
    """
    T = A.dtype.type
    lab = loss == CROSS_ENTROPY
    if elementwise(loss) and act != SOFTMAX and m >= 8:
        # the same values, f' in a vectorised loop of its own (``mul_dact_range``)
        return _elem_row(total, A, Z, o, y, i, m, loss, act, alpha, lp, sc, D, want_delta)
    if elementwise(loss):
        gp = 0.0
        for k in range(m):
            r = A[o + k] - target(y, i, k, lab)
            total += elem_loss(loss, r, lp)
            gp += elem_grad(loss, r, lp) * A[o + k]
        if want_delta:
            for k in range(m):
                a = A[o + k]
                g = T(elem_grad(loss, a - target(y, i, k, lab), lp))
                if act == SOFTMAX:
                    g = softmax_jvp(a, g, T(gp))
                else:
                    g = mul_dact(g, a, Z[o + k], act, alpha)
                D[o + k] = sc * g
        return total
    s = 1.0
    if loss == CROSS_ENTROPY:
        lse = softmax_lse(y, i, A, Z, o, m, act, D)
        e, s = ce_row(y, i, lse, Z, o, m)
        total += e
    elif loss == POISSON:
        for k in range(m):
            total += poisson_loss(float(Z[o + k]), target(y, i, k, lab))
    else:  # BINARY_CROSS_ENTROPY
        for k in range(m):
            total += bce_loss(float(Z[o + k]), target(y, i, k, lab))
    if want_delta:
        for k in range(m):
            D[o + k] = sc * T(fused_delta(A[o + k], s, target(y, i, k, lab)))
    return total


@njit(**JIT_NO_NRT)
def loss_delta(A, Z, y, loss, act, scale, D, want_delta, lp):
    """Sum of per-sample losses over the rows of ``A``; ``D <- scale * dE/dz``.

    ``A`` is the output activation, ``Z`` the output pre-activation, ``y`` the
    targets for the same rows, ``act`` the output activation code, ``lp`` the
    loss parameter (Huber delta / quantile).
    """
    sc = A.dtype.type(scale)
    total = 0.0
    for i in range(A.shape[0]):
        total = row_loss_delta(total, A[i], Z[i], 0, y, i, A.shape[1], loss, act, 0.0, lp, sc,
                               D[i], want_delta)
    return total
