"""Derivatives with respect to the *inputs*, in inference mode.

Both run the ordinary forward pass (dropout off, batch norm with running
statistics), seed the output layer's delta and push deltas down through every
layer as the backward pass does, then one product further: ``dX = D_0 @ W_0``.
No parameter gradient is formed and nothing in the model changes.

* ``input_grad``: the seed is the loss's output delta (``loss_delta``), so
  ``dX`` is d(loss)/dX; the caller chooses the loss scale (``1/n`` for the
  batch mean).
* ``jacobian``: one forward pass, then one delta sweep per output unit ``k``
  with the seed ``e_k`` passed through the output activation's derivative;
  the sweep writes ``J[:, k, :]`` for every row at once.  In inference mode the
  backward sweep only reads the stored activations, so the forward pass is
  shared by all ``n_out`` sweeps and every product keeps the batch's ``n`` rows.

Batch-norm layers are a fixed affine map at inference; ``bn_backward`` also
produces gamma/beta gradients, which go to ``work.bnstat`` (scratch that only
a training forward pass reads, and it rewrites it first), so ``work.grad`` is
left as the caller had it.
"""

from numba import njit

from .._config import JIT
from ..spec import L_ACT, L_BN, L_IN, L_OUT, P_ALPHA
from .activations import mul_act_grad
from .forward import block, bn_params, forward, layer_params, unit_offset
from .matmul import mm_nn
from .regularize import bn_backward
from .runtime import no_values, runtime
from .train import _forward_loss


@njit(**JIT)
def _output_offset(layout, cap):
    """Offset of the output layer's block in the activation / delta buffers."""
    off = 0
    for l in range(layout.shape[0] - 1):
        off += cap * layout[l, L_OUT]
    return off


@njit(**JIT)
def propagate_to_input(model, work, n, dX):
    """``dX <- dE/dX`` from the output delta already in ``work.deltas`` (inference mode)."""
    layout = model.layout
    cap = work.cap
    off = _output_offset(layout, cap)
    W2 = work.bninv.shape[0]
    for l in range(layout.shape[0] - 1, 0, -1):
        prev = off - cap * layout[l - 1, L_OUT]
        m = layout[l - 1, L_OUT]
        D = block(work.deltas, off, n, layout[l, L_OUT])
        Dp = block(work.deltas, prev, n, layout[l, L_IN])
        W, _ = layer_params(model.params, layout, l)
        mm_nn(1.0, D, W, 0.0, Dp)
        mul_act_grad(Dp, block(work.acts, prev, n, m), block(work.pre, prev, n, m),
                     layout[l - 1, L_ACT], model.lparams[l - 1, P_ALPHA])
        if layout[l - 1, L_BN] >= 0:
            u = unit_offset(layout, l - 1)
            gam, _ = bn_params(model.params, layout, l - 1)
            bn_backward(Dp, block(work.bnx, prev, n, m), work.bninv[u:u + m], gam,
                        work.bnstat[u:u + m], work.bnstat[W2 + u:W2 + u + m], False)
        off = prev
    W0, _ = layer_params(model.params, layout, runtime(0))
    mm_nn(1.0, block(work.deltas, runtime(0), n, layout[0, L_OUT]), W0, 0.0, dX)


@njit(**JIT)
def input_grad(model, work, loss, X, y, scale, dX):
    """Sum of per-sample losses of ``(X, y)``; ``dX <- scale * d(sum)/dX`` (inference mode)."""
    total = _forward_loss(model, work, loss, X, y, runtime(False), runtime(False), scale,
                          runtime(True), no_values())
    propagate_to_input(model, work, X.shape[0], dX)
    return total


@njit(**JIT)
def jacobian(model, work, X, J):
    """``J[i, k, :] <- d(output k)/d(X[i])`` for the rows of ``X`` (inference mode)."""
    layout = model.layout
    n = X.shape[0]
    L = layout.shape[0]
    m = layout[L - 1, L_OUT]
    off = forward(model, work, X, runtime(False), runtime(False))
    A = block(work.acts, off, n, m)
    P = block(work.pre, off, n, m)
    D = block(work.deltas, off, n, m)
    T = D.dtype.type
    for k in range(m):
        for i in range(n):
            for j in range(m):
                D[i, j] = T(0.0)
            D[i, k] = T(1.0)
        mul_act_grad(D, A, P, layout[L - 1, L_ACT], model.lparams[L - 1, P_ALPHA])
        propagate_to_input(model, work, n, J[:, k, :])
