"""In-place optimizer updates over the flat parameter buffer.

Every optimizer state array has the layout of ``params``.  L2 weight decay
(``wd``) applies to weights only, never to biases: the layout table says
which ranges are weights.  ``hyper`` is a float64 array::

    [lr, weight_decay, momentum, nesterov, beta1, beta2, eps]

Optimizer codes: ``SGD`` (plain; the fused path in ``backward`` handles it
without a gradient buffer), ``MOMENTUM`` (heavy ball or Nesterov, PyTorch's
convention ``v <- mu v + g``), ``ADAM`` (L2 added to the gradient) and
``ADAMW`` (decoupled decay), both bias-corrected.
"""

import math

from numba import njit

from .._config import JIT

SGD, MOMENTUM, ADAM, ADAMW = range(4)
H_LR, H_WD, H_MOMENTUM, H_NESTEROV, H_BETA1, H_BETA2, H_EPS = range(7)
N_HYPER = 7


@njit(**JIT)
def sgd_update(params, grad, layout, lr, wd):
    """``w <- w - lr * (g + wd * w)`` (decay on weights only)."""
    T = params.dtype.type
    a = T(lr)
    for l in range(layout.shape[0]):
        w = layout[l, 2]
        nw = layout[l, 0] * layout[l, 1]
        keep = T(1.0 - lr * wd)
        for k in range(w, w + nw):
            params[k] = keep * params[k] - a * grad[k]
        for k in range(w + nw, w + nw + layout[l, 1]):
            params[k] -= a * grad[k]


@njit(**JIT)
def momentum_update(params, grad, vel, layout, lr, mu, nesterov, wd):
    """SGD with momentum: ``v <- mu v + g'``; ``w <- w - lr (g' + mu v)`` (Nesterov) or ``w - lr v``."""
    T = params.dtype.type
    a = T(lr)
    m = T(mu)
    d = T(wd)
    for l in range(layout.shape[0]):
        w = layout[l, 2]
        nw = layout[l, 0] * layout[l, 1]
        for k in range(w, w + nw + layout[l, 1]):
            g = grad[k]
            if k < w + nw:
                g += d * params[k]
            v = m * vel[k] + g
            vel[k] = v
            if nesterov:
                params[k] -= a * (g + m * v)
            else:
                params[k] -= a * v


@njit(**JIT)
def adam_update(params, grad, m1, m2, layout, lr, b1, b2, eps, wd, decoupled, t):
    """Bias-corrected Adam step number ``t`` (1-based); AdamW when ``decoupled``."""
    T = params.dtype.type
    c1 = 1.0 - b1 ** t
    c2 = 1.0 - b2 ** t
    step = T(lr / c1)
    rc2 = T(1.0 / math.sqrt(c2))
    B1 = T(b1)
    B2 = T(b2)
    E = T(eps)
    d = T(wd)
    shrink = T(1.0 - lr * wd)
    for l in range(layout.shape[0]):
        w = layout[l, 2]
        nw = layout[l, 0] * layout[l, 1]
        for k in range(w, w + nw + layout[l, 1]):
            g = grad[k]
            is_w = k < w + nw
            if is_w and not decoupled:
                g += d * params[k]
            mk = B1 * m1[k] + (T(1.0) - B1) * g
            vk = B2 * m2[k] + (T(1.0) - B2) * g * g
            m1[k] = mk
            m2[k] = vk
            p = params[k]
            if is_w and decoupled:
                p *= shrink
            params[k] = p - step * mk / (math.sqrt(vk) * rc2 + E)


@njit(**JIT)
def apply_update(params, grad, layout, opt, hyper, state, step):
    """Dispatch one optimizer step; ``step[0]`` counts steps taken."""
    step[0] += 1
    lr = hyper[H_LR]
    wd = hyper[H_WD]
    if opt == SGD:
        sgd_update(params, grad, layout, lr, wd)
    elif opt == MOMENTUM:
        momentum_update(params, grad, state[0], layout, lr, hyper[H_MOMENTUM],
                        hyper[H_NESTEROV] != 0.0, wd)
    else:
        adam_update(params, grad, state[0], state[1], layout, lr, hyper[H_BETA1],
                    hyper[H_BETA2], hyper[H_EPS], wd, opt == ADAMW, step[0])
