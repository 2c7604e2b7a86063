"""Delta backpropagation with the weight gradient or a fused SGD update.

For each layer from the output down: ``D_{l-1} = (D_l @ W_l) * f'(z_{l-1})``
(computed before ``W_l`` changes), then either the gradient
``dW_l = D_l.T @ A_{l-1}``, ``db_l = sum_rows(D_l)`` is written into ``grad``,
or SGD is applied in place with no gradient buffer:
``W_l <- decay * W_l - lr * D_l.T @ A_{l-1}`` inside one gemm (``beta = decay``).
Deltas already carry the ``1/n`` of the batch mean.
"""

from numba import njit

from .._config import JIT
from .activations import mul_act_grad
from .forward import block, layer_params
from .matmul import mm_nn, mm_tn


@njit(**JIT)
def _layer_backward(params, layout, l, D, Ain, grad, lr, decay, fused):
    W, b = layer_params(params, layout, l)
    if fused:
        mm_tn(-lr, D, Ain, decay, W)
        T = b.dtype.type
        step = T(lr)
        for i in range(D.shape[0]):
            d = D[i]
            for j in range(b.shape[0]):
                b[j] -= step * d[j]
    else:
        G, g = layer_params(grad, layout, l)
        mm_tn(1.0, D, Ain, 0.0, G)
        g[:] = 0.0
        for i in range(D.shape[0]):
            d = D[i]
            for j in range(g.shape[0]):
                g[j] += d[j]


@njit(**JIT)
def backward(params, layout, alpha, X, acts, pre, deltas, cap, grad, lr, decay, fused):
    """Propagate the output delta (already in ``deltas``) down to layer 0.

    ``fused``: apply SGD in place (``lr``, weight ``decay`` factor); otherwise
    write the batch-mean gradient into ``grad`` and leave ``params`` alone.
    """
    n = X.shape[0]
    L = layout.shape[0]
    off = 0
    for l in range(L - 1):
        off += cap * layout[l, 1]
    for l in range(L - 1, 0, -1):
        prev = off - cap * layout[l - 1, 1]
        n_in = layout[l, 0]
        D = block(deltas, off, n, layout[l, 1])
        Ain = block(acts, prev, n, n_in)
        Dp = block(deltas, prev, n, n_in)
        W, _ = layer_params(params, layout, l)
        mm_nn(1.0, D, W, 0.0, Dp)
        mul_act_grad(Dp, Ain, block(pre, prev, n, n_in), layout[l - 1, 3], alpha[l - 1])
        _layer_backward(params, layout, l, D, Ain, grad, lr, decay, fused)
        off = prev
    _layer_backward(params, layout, 0, block(deltas, 0, n, layout[0, 1]), X, grad, lr, decay, fused)
