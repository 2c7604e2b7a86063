"""The one per-element combination the generated kernels call that no kernel module has.

Every other per-element formula (``activations.act``/``mul_dact``,
``losses.elem_loss``/``elem_grad``, ``update``'s steps) is an ordinary
compiled function, compiled once per dtype and cached with the rest of
fastbp; a generated kernel calls them directly with run-time codes
(``runtime(A0)``), and LLVM inlines them at each call site with the code
folded to a constant.
"""

from numba import njit

from .._config import JIT
from .._kernels.activations import mul_dact
from .._kernels.losses import elem_grad, elem_loss


@njit(**JIT)
def elem_delta(a, z, t, loss, code, lp, inv):
    """``(rho(r), inv * rho'(r) f'(z))`` of output ``a = f(z)`` with target ``t``, as in
    ``losses.loss_delta`` for an elementwise loss and a non-softmax output."""
    T = type(a)
    r = a - t
    g = T(elem_grad(loss, r, lp))
    g = mul_dact(g, a, z, code, 0.0)
    return elem_loss(loss, r, lp), inv * g
