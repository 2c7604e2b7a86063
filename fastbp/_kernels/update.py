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
from .layout import weight_range

SGD, MOMENTUM, ADAM, ADAMW, RPROP = range(5)
(H_LR, H_WD, H_MOMENTUM, H_NESTEROV, H_BETA1, H_BETA2, H_EPS, H_L1, H_CLIP,
 H_ETA_PLUS, H_ETA_MINUS, H_DELTA_MIN, H_DELTA_MAX) = range(13)
N_HYPER = 13

#: Added to the gradient norm before dividing by it (clipping a zero gradient).
_CLIP_EPS = 1e-12


# ------------------------------------------------------------ per-element steps
# Every engine (this file's whole-buffer updates, the fused SGD of
# ``backward``/``small``, the lane engine) is a loop around these.  Arguments
# are scalars of the parameter dtype (the caller converts hyper-parameters
# once); the operation order is part of the definition (bit-exact results).

@njit(**JIT)
def sign(x):
    """-1, 0 or 1 (of ``x``'s type) as ``x`` is negative, zero or positive."""
    T = type(x)
    return T(1.0) if x > 0 else (T(-1.0) if x < 0 else T(0.0))


@njit(**JIT)
def reg_grad(x, g, wd, l1):
    """Gradient ``g`` of weight ``x`` plus its L2 (``wd``) and L1 (``l1``) terms."""
    return g + (wd * x + l1 * sign(x))


@njit(**JIT)
def decay_factor(lr, wd):
    """Weight multiplier of one step of L2 decay ``wd`` at rate ``lr`` (float64)."""
    return 1.0 - lr * wd


@njit(**JIT)
def decayed(x, decay):
    """Weight ``x`` shrunk by the factor ``decay`` (``decay_factor``; AdamW's decoupled decay)."""
    return x * decay


@njit(**JIT)
def sgd_step(x, g, lr):
    """``x - lr * g``: one gradient-descent step."""
    return x - lr * g


@njit(**JIT)
def sgd_decay_step(x, g, lr, decay):
    """SGD with L2 folded into ``decay = decay_factor(lr, wd)``: ``decay * x - lr * g``."""
    return sgd_step(decayed(x, decay), g, lr)


@njit(**JIT)
def momentum_step(x, g, v, lr, mu, nesterov):
    """``(x', v')``: ``v' = mu v + g``; ``x' = x - lr (g + mu v')`` (Nesterov) or ``x - lr v'``."""
    v = mu * v + g
    if nesterov:
        return x - lr * (g + mu * v), v
    return x - lr * v, v


@njit(**JIT)
def adam_factors(lr, b1, b2, t):
    """``(a, b)`` of ``adam_step`` at step ``t`` (1-based): ``lr / (1 - b1^t)``, ``1 / sqrt(1 - b2^t)``."""
    return lr / (1.0 - b1 ** t), 1.0 / math.sqrt(1.0 - b2 ** t)


@njit(**JIT)
def adam_step(x, g, m, v, a, b, b1, b2, eps):
    """``(x', m', v')`` of bias-corrected Adam.

    ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2``,
    ``x' = x - a m' / (sqrt(v') b + eps)`` with the bias corrections folded
    into ``(a, b) = adam_factors(lr, b1, b2, t)``, i.e. ``a = lr / (1 - b1^t)``
    and ``b = 1 / sqrt(1 - b2^t)`` (computed in float64, then converted).
    """
    T = type(x)
    m = b1 * m + (T(1.0) - b1) * g
    v = b2 * v + (T(1.0) - b2) * g * g
    return x - a * m / (math.sqrt(v) * b + eps), m, v


@njit(**JIT)
def rprop_step(x, g, gprev, d, eta_plus, eta_minus, dmin, dmax):
    """``(x', g_stored, d')`` of iRPROP-.

    The step ``d`` grows (``eta_plus``, at most ``dmax``) while the gradient
    keeps its sign and shrinks (``eta_minus``, at least ``dmin``) when it
    flips, in which case the gradient is stored as 0 and no step is taken;
    ``x`` moves by ``d`` against the gradient's sign.
    """
    T = type(x)
    s = gprev * g
    if s > T(0.0):
        d = min(d * eta_plus, dmax)
    elif s < T(0.0):
        d = max(d * eta_minus, dmin)
        g = T(0.0)
    if g > T(0.0):
        x -= d
    elif g < T(0.0):
        x += d
    return x, g, d


@njit(**JIT)
def clip_scale(norm, max_norm):
    """Gradient multiplier that brings a norm ``norm`` down to ``max_norm`` (1 when it is
    within, or when ``max_norm <= 0``: no clipping)."""
    if max_norm > 0.0 and norm > max_norm:
        return max_norm / (norm + _CLIP_EPS)
    return 1.0


@njit(**JIT)
def clip_by_norm(grad, max_norm):
    """Scale ``grad`` so its Euclidean norm is at most ``max_norm``; return the norm."""
    s = 0.0
    for k in range(grad.shape[0]):
        s += float(grad[k]) * float(grad[k])
    norm = math.sqrt(s)
    f = clip_scale(norm, max_norm)
    if f != 1.0:
        c = grad.dtype.type(f)
        for k in range(grad.shape[0]):
            grad[k] *= c
    return norm


@njit(**JIT)
def sgd_update(params, grad, lr):
    """``w <- w - lr * g``."""
    a = params.dtype.type(lr)
    for k in range(params.shape[0]):
        params[k] = sgd_step(params[k], grad[k], a)


@njit(**JIT)
def momentum_update(params, grad, vel, lr, mu, nesterov):
    """``v <- mu v + g``; ``w <- w - lr (g + mu v)`` (Nesterov) or ``w - lr v``."""
    T = params.dtype.type
    a = T(lr)
    m = T(mu)
    for k in range(params.shape[0]):
        params[k], vel[k] = momentum_step(params[k], grad[k], vel[k], a, m, nesterov)


@njit(**JIT)
def adam_update(params, grad, m1, m2, lr, b1, b2, eps, t):
    """Bias-corrected Adam step number ``t`` (1-based)."""
    T = params.dtype.type
    step, rc2 = adam_factors(lr, b1, b2, t)
    a = T(step)
    b = T(rc2)
    B1 = T(b1)
    B2 = T(b2)
    E = T(eps)
    for k in range(params.shape[0]):
        params[k], m1[k], m2[k] = adam_step(params[k], grad[k], m1[k], m2[k], a, b, B1, B2, E)


@njit(**JIT)
def rprop_update(params, grad, prev, delta, eta_plus, eta_minus, dmin, dmax):
    """iRPROP-: per-weight steps grow while the gradient keeps its sign, shrink when it flips."""
    T = params.dtype.type
    ep = T(eta_plus)
    em = T(eta_minus)
    lo = T(dmin)
    hi = T(dmax)
    for k in range(params.shape[0]):
        params[k], prev[k], delta[k] = rprop_step(params[k], grad[k], prev[k], delta[k], ep, em,
                                                  lo, hi)


@njit(**JIT)
def _regularize_span(params, grad, wd, l1):
    """``grad += wd * w + l1 * sign(w)`` over a span of weights."""
    T = grad.dtype.type
    d = T(wd)
    a = T(l1)
    for k in range(grad.shape[0]):
        grad[k] = reg_grad(params[k], grad[k], d, a)


@njit(**JIT)
def step_span(params, grad, lo, hi, weights, opt, hyper, state, t):
    """The optimizer's step of ``params[lo:hi]`` from ``grad[lo:hi]`` (no clipping),
    step number ``t`` (1-based); ``weights``: the span holds weights, so L2/L1 terms
    (and AdamW's decoupled decay) apply.  ``apply_update`` is this over every span."""
    lr = hyper[H_LR]
    decoupled = opt == ADAMW
    p = params[lo:hi]
    g = grad[lo:hi]
    if weights and (hyper[H_L1] > 0.0 or (hyper[H_WD] > 0.0 and not decoupled)):
        _regularize_span(p, g, 0.0 if decoupled else hyper[H_WD], hyper[H_L1])
    if opt == SGD:
        sgd_update(p, g, lr)
    elif opt == MOMENTUM:
        momentum_update(p, g, state[0][lo:hi], lr, hyper[H_MOMENTUM],
                        hyper[H_NESTEROV] != 0.0)
    elif opt == RPROP:
        rprop_update(p, g, state[0][lo:hi], state[1][lo:hi], hyper[H_ETA_PLUS],
                     hyper[H_ETA_MINUS], hyper[H_DELTA_MIN], hyper[H_DELTA_MAX])
    else:
        if decoupled and weights and hyper[H_WD] > 0.0:
            f = p.dtype.type(decay_factor(lr, hyper[H_WD]))
            for k in range(p.shape[0]):
                p[k] = decayed(p[k], f)
        adam_update(p, g, state[0][lo:hi], state[1][lo:hi], lr, hyper[H_BETA1],
                    hyper[H_BETA2], hyper[H_EPS], t)


@njit(**JIT)
def apply_update(params, grad, layout, opt, hyper, state, step):
    """One optimizer step from the batch gradient in ``grad`` (which it may modify).

    Order as in PyTorch: clip the loss gradient by global norm, add L2/L1
    terms, then step (``step_span`` over the weights of each layer and the
    spans between them).
    """
    step[0] += 1
    if hyper[H_CLIP] > 0.0:
        clip_by_norm(grad, hyper[H_CLIP])
    lo = 0
    for l in range(layout.shape[0]):
        w, we = weight_range(layout, l)
        if w > lo:
            step_span(params, grad, lo, w, False, opt, hyper, state, step[0])
        step_span(params, grad, w, we, True, opt, hyper, state, step[0])
        lo = we
    if params.shape[0] > lo:
        step_span(params, grad, lo, params.shape[0], False, opt, hyper, state, step[0])


@njit(**JIT)
def fused_sgd(opt, hyper):
    """Whether the step is plain SGD (no L1, no clipping): applied fused into the weight-gradient product."""
    return opt == SGD and hyper[H_L1] == 0.0 and hyper[H_CLIP] == 0.0
