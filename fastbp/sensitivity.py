"""Derivatives with respect to the inputs: ``MLP.input_gradient`` and ``MLP.jacobian``.

Both work in inference mode (dropout off, batch norm with its running
statistics), where every row of ``X`` goes through the network on its own, so
rows are processed in chunks of ``workspace.CHUNK`` with the same result as one
batch.  Kernels: :mod:`fastbp._kernels.input_grad`.
"""

import numpy as np

from ._kernels.input_grad import input_grad, jacobian as _jacobian_kernel
from ._validate import check_X
from .workspace import CHUNK


def input_gradient(net, X, y):
    """Batch-mean loss and its gradient with respect to ``X`` (see :meth:`MLP.input_gradient`)."""
    X, y = net._xy(X, y)
    n = X.shape[0]
    dX = np.empty_like(X)
    total = 0.0
    with net._lock:
        ws = net._workspace(min(n, CHUNK))
        for s in range(0, n, ws.cap):
            e = min(s + ws.cap, n)
            total += input_grad(net._model, ws.work, net._loss_code, X[s:e], y[s:e], 1.0 / n,
                                dX[s:e])
    return total / n, dX


def jacobian(net, X):
    """``J[i, k, j] = d output_k / d X[i, j]`` (see :meth:`MLP.jacobian`)."""
    X = check_X(X, net.sizes[0], net.dtype)
    n = X.shape[0]
    J = np.empty((n, net.sizes[-1], net.sizes[0]), dtype=net.dtype)
    with net._lock:
        ws = net._workspace(min(n, CHUNK))
        for s in range(0, n, ws.cap):
            e = min(s + ws.cap, n)
            _jacobian_kernel(net._model, ws.work, X[s:e], J[s:e])
    return J
