"""Dropout and batch normalisation, forward and backward.

Dropout is inverted: kept units are scaled by ``1/(1-p)`` in training, nothing
happens at inference.  Its mask comes from a counter-based generator (a
SplitMix64 hash of seed, training-step counter, layer, row and column), so a
seed reproduces every mask exactly, with no generator state to carry.  The
multipliers are kept in the workspace for the backward pass.

Batch normalisation acts on the linear output ``z`` of a hidden layer before
its activation: ``y = gamma * (z - mean) / sqrt(var + eps) + beta``, with batch
statistics in training (running averages updated with ``momentum``, the
unbiased variance as PyTorch does) and the running statistics at inference.
"""

import math

from numba import njit

from .._config import JIT
from .rng import uniform

@njit(**JIT)
def dropout_forward(A, M, p, key):
    """``A *= M`` with ``M`` in {0, 1/(1-p)} drawn for each entry; ``M`` is stored."""
    T = A.dtype.type
    n, m = A.shape
    keep = T(1.0 / (1.0 - p))
    zero = T(0.0)
    for i in range(n):
        for j in range(m):
            mult = keep if uniform(key, i * m + j) >= p else zero
            M[i, j] = mult
            A[i, j] *= mult


@njit(**JIT)
def dropout_backward(D, A, M, p):
    """``D *= M``; ``A`` (dropped outputs) is restored to the undropped values where kept."""
    T = A.dtype.type
    n, m = D.shape
    q = T(1.0 - p)
    for i in range(n):
        for j in range(m):
            D[i, j] *= M[i, j]
            A[i, j] *= q


@njit(**JIT)
def bn_running(rmean, rvar, mean, var, n, momentum):
    """Fold one batch's statistics into the running averages (unbiased variance)."""
    T = rmean.dtype.type
    for j in range(rmean.shape[0]):
        unbiased = var[j] * n / (n - 1) if n > 1 else var[j]
        rmean[j] = T((1.0 - momentum) * rmean[j] + momentum * mean[j])
        rvar[j] = T((1.0 - momentum) * rvar[j] + momentum * unbiased)


@njit(**JIT)
def bn_forward(A, Xh, inv, bmean, bvar, gamma, beta, rmean, rvar, momentum, eps, training,
               update):
    """Normalise the columns of ``A`` in place; ``Xh`` gets the normalised values.

    ``inv`` receives ``1/sqrt(var + eps)`` per column; in training the batch
    mean and (biased) variance go to ``bmean``/``bvar``, and into the running
    averages as well when ``update`` (otherwise ``bn_running`` commits them
    later, once the step is known to be good).
    """
    T = A.dtype.type
    n, m = A.shape
    for j in range(m):
        if training:
            mu = 0.0
            for i in range(n):
                mu += A[i, j]
            mu /= n
            var = 0.0
            for i in range(n):
                d = A[i, j] - mu
                var += d * d
            var /= n
            bmean[j] = T(mu)
            bvar[j] = T(var)
        else:
            mu = float(rmean[j])
            var = float(rvar[j])
        s = 1.0 / math.sqrt(var + eps)
        inv[j] = T(s)
        g = gamma[j]
        b = beta[j]
        tmu = T(mu)
        ts = T(s)
        for i in range(n):
            xh = (A[i, j] - tmu) * ts
            Xh[i, j] = xh
            A[i, j] = g * xh + b
    if training and update:
        bn_running(rmean, rvar, bmean, bvar, n, momentum)


@njit(**JIT)
def bn_backward(D, Xh, inv, gamma, dgamma, dbeta, training):
    """``D`` (dE/dy) becomes dE/dz in place; ``dgamma``/``dbeta`` receive their gradients.

    In training mode the batch statistics depend on ``z`` too; at inference
    the normalisation is a fixed affine map.
    """
    T = D.dtype.type
    n, m = D.shape
    for j in range(m):
        sd = 0.0
        sdx = 0.0
        for i in range(n):
            sd += D[i, j]
            sdx += D[i, j] * Xh[i, j]
        dgamma[j] = T(sdx)
        dbeta[j] = T(sd)
        c = gamma[j] * inv[j]
        md = T(sd / n) if training else T(0.0)
        mdx = T(sdx / n) if training else T(0.0)
        for i in range(n):
            D[i, j] = c * (D[i, j] - md - Xh[i, j] * mdx)
