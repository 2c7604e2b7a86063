"""Scores recorded while training: classification accuracy and per-layer gradient norms.

One definition each, used by :meth:`fastbp.MLP.fit` (``history.val_score``,
``history.grad_norms``), L-BFGS training and data-parallel training (which
sums :func:`correct` counts over rank shards).
"""

import numpy as np

from .spec import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, layers

__all__ = ["classifies", "correct", "score", "layer_norms", "grad_norms"]


def classifies(loss_code):
    """Whether rows of a network with this loss have a right or wrong class (an accuracy)."""
    return loss_code in (CROSS_ENTROPY, BINARY_CROSS_ENTROPY)


def correct(loss_code, pred, y):
    """Number of correctly classified rows (a float), or ``None`` for regression losses.

    ``pred`` holds the network's outputs; for cross-entropy a row is correct
    when its largest output is the target class (``y`` integer labels or
    one-hot rows), for binary cross-entropy when every output is on the
    target's side of 0.5.
    """
    if loss_code == CROSS_ENTROPY:
        truth = y if y.ndim == 1 else y.argmax(1)
        return float((pred.argmax(1) == truth).sum())
    if loss_code == BINARY_CROSS_ENTROPY:
        return float(((pred > 0.5) == (y > 0.5)).all(axis=1).sum())
    return None


def score(net, X, y):
    """Accuracy of ``net`` on validated ``(X, y)`` for classification losses, ``None`` for others."""
    if not classifies(net._loss_code):
        return None
    return correct(net._loss_code, net.predict(X), y) / X.shape[0]


def layer_norms(grad, layout):
    """Euclidean norm of each layer's weight block of the flat ``grad`` (float64 sums)."""
    norms = []
    for layer in layers(layout):
        norms.append(float(np.linalg.norm(grad[layer.weights].astype(np.float64))))
    return norms


def grad_norms(net, X, y):
    """Euclidean norm of each layer's weight gradient on ``(X, y)``."""
    _, g = net.gradient(X, y)
    return layer_norms(g, net._layout)
