"""The per-element formulas the generated kernels call, as ordinary compiled functions.

``activations.act``/``mul_dact`` and ``losses.elem_loss``/``elem_grad`` (and ``update``'s steps) are
inlined into their callers' Numba IR (``inline="always"``), which re-types
them at every call site: a generated kernel with a dozen call sites spent
seconds in type inference.  These wrappers are compiled once per dtype (and
cached on disk with the rest of fastbp); a kernel calls them with run-time
codes (``runtime(A0)``), and LLVM inlines them at each call site with the
code folded to a constant, so the loop bodies end up the same.
"""

from numba import njit

from .._config import JIT
from .._kernels.activations import act, mul_dact
from .._kernels.losses import elem_grad, elem_loss
from .._kernels.update import (adam_factors, adam_step, decay_factor, decayed, momentum_step,
                              reg_grad, sgd_step)


@njit(**JIT)
def act_of(z, code, alpha):
    """``activations.act(z, code, alpha)``."""
    return act(z, code, alpha)


@njit(**JIT)
def mul_dact_of(d, a, z, code, alpha):
    """``activations.mul_dact(d, a, z, code, alpha)``: ``d f'(z)`` of output ``a = f(z)``."""
    return mul_dact(d, a, z, code, alpha)


@njit(**JIT)
def elem_delta(a, z, t, loss, code, lp, inv):
    """``(rho(r), inv * rho'(r) f'(z))`` of output ``a = f(z)`` with target ``t``, as in
    ``losses.loss_delta`` for an elementwise loss and a non-softmax output."""
    T = type(a)
    r = a - t
    g = T(elem_grad(loss, r, lp))
    g = mul_dact(g, a, z, code, 0.0)
    return elem_loss(loss, r, lp), inv * g


@njit(**JIT)
def sgd_of(x, g, lr):
    """``update.sgd_step(x, g, lr)``: ``x - lr * g``."""
    return sgd_step(x, g, lr)


@njit(**JIT)
def decayed_of(x, decay):
    """``update.decayed(x, decay)``: ``x * decay``."""
    return decayed(x, decay)


@njit(**JIT)
def reg_of(x, g, wd, l1):
    """``update.reg_grad(x, g, wd, l1)``: ``g`` plus the L2 and L1 terms of weight ``x``."""
    return reg_grad(x, g, wd, l1)


@njit(**JIT)
def momentum_of(x, g, v, lr, mu, nesterov):
    """``update.momentum_step(x, g, v, lr, mu, nesterov)``."""
    return momentum_step(x, g, v, lr, mu, nesterov)


@njit(**JIT)
def adam_of(x, g, m, v, a, b, b1, b2, eps):
    """``update.adam_step(x, g, m, v, a, b, b1, b2, eps)``."""
    return adam_step(x, g, m, v, a, b, b1, b2, eps)


@njit(**JIT)
def factors_of(lr, b1, b2, t):
    """``update.adam_factors(lr, b1, b2, t)``."""
    return adam_factors(lr, b1, b2, t)


@njit(**JIT)
def decay_of(lr, wd):
    """``update.decay_factor(lr, wd)``."""
    return decay_factor(lr, wd)
