"""In-place optimizer updates over the flat parameter buffer.

Every optimizer state array has the layout of ``params``.  Weight decay and
L1 apply to weights only, never to biases or batch-norm gamma/beta: the
layout table says which ranges are weights.  ``hyper`` is a float64 array
indexed by the ``H_*`` constants below.

Optimizer codes: ``SGD`` (plain; without L1 or clipping the fused path in
``backward`` handles it with no gradient buffer), ``MOMENTUM`` (heavy ball
or Nesterov, PyTorch's convention ``v <- mu v + g``), ``ADAM`` (L2 added to
the gradient), ``ADAMW`` (decoupled decay), both bias-corrected, and
``RPROP`` (iRPROP-, sign-based, for full-batch training).
"""

import math

from numba import njit

from .._config import JIT
from ..spec import L_IN, L_OUT, L_W

SGD, MOMENTUM, ADAM, ADAMW, RPROP = range(5)
(H_LR, H_WD, H_MOMENTUM, H_NESTEROV, H_BETA1, H_BETA2, H_EPS, H_L1, H_CLIP,
 H_ETA_PLUS, H_ETA_MINUS, H_DELTA_MIN, H_DELTA_MAX) = range(13)
N_HYPER = 13


@njit(**JIT)
def _span(layout, l, n_params):
    """``(start, end_of_weights, end)`` of layer ``l``'s parameters."""
    w = layout[l, L_W]
    end = layout[l + 1, L_W] if l + 1 < layout.shape[0] else n_params
    return w, w + layout[l, L_IN] * layout[l, L_OUT], end


@njit(**JIT)
def regularize(params, grad, layout, wd, l1):
    """``grad += wd * w + l1 * sign(w)`` on weights only."""
    T = grad.dtype.type
    d = T(wd)
    a = T(l1)
    for l in range(layout.shape[0]):
        w, we, _ = _span(layout, l, params.shape[0])
        for k in range(w, we):
            p = params[k]
            s = T(1.0) if p > 0 else (T(-1.0) if p < 0 else T(0.0))
            grad[k] += d * p + a * s


@njit(**JIT)
def clip_by_norm(grad, max_norm):
    """Scale ``grad`` so its Euclidean norm is at most ``max_norm``; return the norm."""
    s = 0.0
    for k in range(grad.shape[0]):
        s += float(grad[k]) * float(grad[k])
    norm = math.sqrt(s)
    if norm > max_norm:
        f = grad.dtype.type(max_norm / (norm + 1e-12))
        for k in range(grad.shape[0]):
            grad[k] *= f
    return norm


@njit(**JIT)
def sgd_update(params, grad, lr):
    """``w <- w - lr * g``."""
    a = params.dtype.type(lr)
    for k in range(params.shape[0]):
        params[k] -= a * grad[k]


@njit(**JIT)
def momentum_update(params, grad, vel, lr, mu, nesterov):
    """``v <- mu v + g``; ``w <- w - lr (g + mu v)`` (Nesterov) or ``w - lr v``."""
    T = params.dtype.type
    a = T(lr)
    m = T(mu)
    for k in range(params.shape[0]):
        g = grad[k]
        v = m * vel[k] + g
        vel[k] = v
        if nesterov:
            params[k] -= a * (g + m * v)
        else:
            params[k] -= a * v


@njit(**JIT)
def adam_update(params, grad, m1, m2, lr, b1, b2, eps, t):
    """Bias-corrected Adam step number ``t`` (1-based)."""
    T = params.dtype.type
    c1 = 1.0 - b1 ** t
    c2 = 1.0 - b2 ** t
    step = T(lr / c1)
    rc2 = T(1.0 / math.sqrt(c2))
    B1 = T(b1)
    B2 = T(b2)
    E = T(eps)
    for k in range(params.shape[0]):
        g = grad[k]
        mk = B1 * m1[k] + (T(1.0) - B1) * g
        vk = B2 * m2[k] + (T(1.0) - B2) * g * g
        m1[k] = mk
        m2[k] = vk
        params[k] -= step * mk / (math.sqrt(vk) * rc2 + E)


@njit(**JIT)
def decay_weights(params, layout, factor):
    """``w <- factor * w`` on weights only (decoupled weight decay)."""
    f = params.dtype.type(factor)
    for l in range(layout.shape[0]):
        w, we, _ = _span(layout, l, params.shape[0])
        for k in range(w, we):
            params[k] *= f


@njit(**JIT)
def rprop_update(params, grad, prev, delta, eta_plus, eta_minus, dmin, dmax):
    """iRPROP-: per-weight steps grow while the gradient keeps its sign, shrink when it flips."""
    T = params.dtype.type
    ep = T(eta_plus)
    em = T(eta_minus)
    lo = T(dmin)
    hi = T(dmax)
    zero = T(0.0)
    for k in range(params.shape[0]):
        g = grad[k]
        s = prev[k] * g
        if s > zero:
            delta[k] = min(delta[k] * ep, hi)
        elif s < zero:
            delta[k] = max(delta[k] * em, lo)
            g = zero
        if g > zero:
            params[k] -= delta[k]
        elif g < zero:
            params[k] += delta[k]
        prev[k] = g


@njit(**JIT)
def apply_update(params, grad, layout, opt, hyper, state, step):
    """One optimizer step from the batch gradient in ``grad`` (which it may modify).

    Order as in PyTorch: clip the loss gradient by global norm, add L2/L1
    terms, then step.
    """
    step[0] += 1
    lr = hyper[H_LR]
    decoupled = opt == ADAMW
    if hyper[H_CLIP] > 0.0:
        clip_by_norm(grad, hyper[H_CLIP])
    if hyper[H_L1] > 0.0 or (hyper[H_WD] > 0.0 and not decoupled):
        regularize(params, grad, layout, 0.0 if decoupled else hyper[H_WD], hyper[H_L1])
    if opt == SGD:
        sgd_update(params, grad, lr)
    elif opt == MOMENTUM:
        momentum_update(params, grad, state[0], lr, hyper[H_MOMENTUM], hyper[H_NESTEROV] != 0.0)
    elif opt == RPROP:
        rprop_update(params, grad, state[0], state[1], hyper[H_ETA_PLUS], hyper[H_ETA_MINUS],
                     hyper[H_DELTA_MIN], hyper[H_DELTA_MAX])
    else:
        if decoupled and hyper[H_WD] > 0.0:
            decay_weights(params, layout, 1.0 - lr * hyper[H_WD])
        adam_update(params, grad, state[0], state[1], lr, hyper[H_BETA1], hyper[H_BETA2],
                    hyper[H_EPS], step[0])


@njit(**JIT)
def fused_sgd(opt, hyper):
    """Whether the step is plain SGD (no L1, no clipping): applied fused into the weight-gradient product."""
    return opt == SGD and hyper[H_L1] == 0.0 and hyper[H_CLIP] == 0.0
