"""The exporters' view of a network: a list of dense layers, read once.

Both :mod:`fastbp.export.onnx_graph` and :mod:`fastbp.export.c_header` work
from the :class:`Plan` built here, so the network is interpreted in one
place.  Each layer computes ``f(W @ x + b)``: batch norm (inference mode,
running statistics, as :meth:`fastbp.MLP.predict` applies it) is folded into
``W`` and ``b``::

    s  = gamma / sqrt(running_var + eps)
    W' = s[:, None] * W
    b' = s * (b - running_mean) + beta

The folding is done in float64 and rounded once to the export dtype, so a
float64 export differs from ``predict`` only by rounding, and layers without
batch norm keep their weights bit for bit in the network's own dtype.
"""

import sys
from collections import namedtuple

import numpy as np

from .. import spec
from .._kernels.activations import _GELU_C, _GELU_K3
from ..network import MLP

#: GELU (tanh form): ``0.5 z (1 + tanh(GELU_C (z + GELU_K3 z**3)))``, fastbp's constants.
GELU_C = _GELU_C
GELU_K3 = _GELU_K3

#: One dense layer: ``W`` ``(n_out, n_in)`` and ``b`` ``(n_out,)`` in the
#: export dtype (batch norm folded in), the activation name and its parameter
#: (leaky_relu slope, elu alpha, else 0.0).
Layer = namedtuple("Layer", "W b activation alpha")

#: ``layers``: tuple of Layer; ``dtype``: the export dtype; ``n_in``/``n_out``:
#: input and output widths; ``source``: a one-line description for comments.
Plan = namedtuple("Plan", "layers dtype n_in n_out source")


def _estimator_net(model):
    """The ``net_`` of a fitted fastbp estimator, or None if ``model`` is no fastbp estimator."""
    skl = sys.modules.get("fastbp.sklearn")  # an instance implies the module is loaded
    if skl is None or not isinstance(model, skl._BaseMLP):
        return None
    net = getattr(model, "net_", None)
    if not isinstance(net, MLP):
        raise ValueError(f"this {type(model).__name__} is not fitted yet; call fit before "
                         "exporting it")
    return net


def network_of(model):
    """The :class:`fastbp.MLP` behind ``model`` (a network or a fitted fastbp estimator)."""
    if isinstance(model, MLP):
        return model
    net = _estimator_net(model)
    if net is not None:
        return net
    hint = ""
    if type(model).__module__.startswith("sklearn."):
        hint = " (scikit-learn's own estimators are exported by the skl2onnx package)"
    raise TypeError(f"cannot export a {type(model).__module__}.{type(model).__name__}: pass a "
                    "fastbp.MLP or a fitted fastbp.sklearn.MLPClassifier / MLPRegressor" + hint)


def _fold(W, b, gamma, beta, mean, var, eps):
    s = gamma / np.sqrt(var + eps)
    return W * s[:, None], s * (b - mean) + beta


def _alpha(net, activation):
    if activation == "leaky_relu":
        return float(net.leaky_slope)
    if activation == "elu":
        return float(net.elu_alpha)
    return 0.0


def _rounded(arr, dtype, l, what, folded):
    """``arr`` rounded to the export dtype, checked finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"layer {l}'s {what}{' (batch norm folded in)' if folded else ''} are "
                         f"not finite in {dtype.name}; the network cannot be exported"
                         + (" in float32: try dtype='float64'" if dtype == np.float32 else ""))
    return out


def plan(model, dtype=None):
    """Read ``model`` once into a :class:`Plan` for an exporter.

    Parameters
    ----------
    model : fastbp.MLP or fitted fastbp.sklearn.MLPClassifier / MLPRegressor
        For the classifier the plan computes ``predict_proba``; for the
        regressor ``predict`` (always 2-D, ``(n, n_outputs)``).
    dtype : {"float32", "float64"}, optional
        Precision of the export (default: the network's).

    Returns
    -------
    Plan
    """
    net = network_of(model)
    dt = net.dtype if dtype is None else spec.as_dtype(dtype)
    layers = []
    with net._lock:  # a consistent snapshot if another thread is training
        for l in range(net.n_layers):
            W = np.array(net.weights[l], dtype=np.float64)
            b = np.array(net.biases[l], dtype=np.float64)
            folded = l < net.n_layers - 1 and net.batch_norm[l]
            if folded:
                W, b = _fold(W, b, np.array(net.bn_gamma[l], dtype=np.float64),
                             np.array(net.bn_beta[l], dtype=np.float64),
                             np.array(net.running_mean[l], dtype=np.float64),
                             np.array(net.running_var[l], dtype=np.float64), float(net.bn_eps))
            act = net.activations[l]
            layers.append(Layer(_rounded(W, dt, l, "weights", folded),
                                _rounded(b, dt, l, "biases", folded), act, _alpha(net, act)))
    source = repr(net) if model is net else f"{type(model).__name__}.net_ = {net!r}"
    return Plan(tuple(layers), dt, net.sizes[0], net.sizes[-1], source)
