"""Export to ONNX: one ``Gemm`` per layer followed by its activation.

The ``onnx`` package is optional and imported only when :func:`to_onnx` is
called (``pip install fastbp[onnx]``).  The graph uses opset 17 and IR
version 8, so onnxruntime 1.16 and later run it, in float32 or float64.

Activations map to standard operators where onnxruntime implements them
for both precisions, and to exact decompositions otherwise (``m = min(z, 0)``)::

    identity    (nothing)            relu      Relu
    sigmoid     Sigmoid              tanh      Tanh
    softmax     Softmax(axis=1)      leaky_relu  Where(z > 0, z, slope * z)
    elu         Where(z > 0, z, alpha * expm1(m)),
                expm1(m) = tanh(m / 2) * (exp(m) + 1)
    softplus    relu(z) + log1p(exp(-|z|)),
                log1p(u) = u if 1 + u == 1 else log(1 + u) * u / ((1 + u) - 1)
    gelu        0.5 z (1 + tanh(c (z + 0.044715 z^3))), c = sqrt(2 / pi)
                (fastbp's GELU is this tanh form)

The ``expm1`` and ``log1p`` identities keep full relative precision for
small arguments, as fastbp's ``expm1`` / ``log1p`` do.  Batch norm is folded
into the ``Gemm`` (see :mod:`fastbp.export.layers`).
"""

import numpy as np

from .files import check_path, write_file
from .layers import GELU_C, GELU_K3, plan as make_plan

#: Operator set and IR version of the exported graph (onnxruntime >= 1.16).
OPSET = 17
IR_VERSION = 8

INPUT_NAME = "X"
OUTPUT_NAME = "Y"


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("fastbp.export.to_onnx needs the onnx package, which is not "
                          "installed: pip install fastbp[onnx]") from exc
    return onnx


class _Graph:
    """Nodes and initializers under construction, with fresh value names."""

    def __init__(self, onnx, dtype):
        self.h = onnx.helper
        self.numpy_helper = onnx.numpy_helper
        self.dtype = dtype
        self.nodes = []
        self.inits = []
        self._consts = {}
        self._count = 0

    def tensor(self, name, arr):
        """Add ``arr`` (cast to the graph's dtype) as an initializer called ``name``."""
        self.inits.append(self.numpy_helper.from_array(np.asarray(arr, dtype=self.dtype), name))
        return name

    def const(self, value):
        """Name of a scalar initializer holding ``value`` (one per distinct value)."""
        key = float(value)
        if key not in self._consts:
            self._consts[key] = self.tensor(f"c{len(self._consts)}", np.array(key))
        return self._consts[key]

    def op(self, op_type, *inputs, **attrs):
        """Append a node; return the name of its output."""
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def _leaky_relu(g, z, alpha):
    return g.op("Where", g.op("Greater", z, g.const(0.0)), z, g.op("Mul", z, g.const(alpha)))


def _elu(g, z, alpha):
    m = g.op("Min", z, g.const(0.0))
    em1 = g.op("Mul", g.op("Tanh", g.op("Mul", m, g.const(0.5))),
               g.op("Add", g.op("Exp", m), g.const(1.0)))
    return g.op("Where", g.op("Greater", z, g.const(0.0)), z, g.op("Mul", em1, g.const(alpha)))


def _softplus(g, z, alpha):
    u = g.op("Exp", g.op("Neg", g.op("Abs", z)))
    w = g.op("Add", u, g.const(1.0))
    d = g.op("Sub", w, g.const(1.0))
    log1p = g.op("Where", g.op("Equal", d, g.const(0.0)), u,
                 g.op("Div", g.op("Mul", g.op("Log", w), u), d))
    return g.op("Add", g.op("Relu", z), log1p)


def _gelu(g, z, alpha):
    z3 = g.op("Mul", g.op("Mul", z, z), z)
    inner = g.op("Add", z, g.op("Mul", z3, g.const(GELU_K3)))
    t = g.op("Tanh", g.op("Mul", inner, g.const(GELU_C)))
    return g.op("Mul", g.op("Mul", z, g.const(0.5)), g.op("Add", t, g.const(1.0)))


#: Activation name -> ``emit(graph, z, alpha)`` returning the output's name.
ACTIVATIONS = {
    "identity": lambda g, z, alpha: z,
    "sigmoid": lambda g, z, alpha: g.op("Sigmoid", z),
    "tanh": lambda g, z, alpha: g.op("Tanh", z),
    "relu": lambda g, z, alpha: g.op("Relu", z),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "softplus": _softplus,
    "gelu": _gelu,
    "softmax": lambda g, z, alpha: g.op("Softmax", z, axis=1),
    "exp": lambda g, z, alpha: g.op("Exp", z),
}


def build(p):
    """The ``onnx.ModelProto`` of a :class:`fastbp.export.layers.Plan`."""
    from .._version import __version__

    onnx = _onnx()
    h = onnx.helper
    g = _Graph(onnx, p.dtype)
    x = INPUT_NAME
    for l, layer in enumerate(p.layers):
        x = g.op("Gemm", x, g.tensor(f"W{l}", layer.W), g.tensor(f"b{l}", layer.b), transB=1)
        x = ACTIVATIONS[layer.activation](g, x, layer.alpha)
    g.nodes[-1].output[0] = OUTPUT_NAME  # the last node (a Gemm at least) makes the output
    elem = h.np_dtype_to_tensor_dtype(np.dtype(p.dtype))
    graph = h.make_graph(
        g.nodes, "fastbp_mlp",
        [h.make_tensor_value_info(INPUT_NAME, elem, ["N", p.n_in])],
        [h.make_tensor_value_info(OUTPUT_NAME, elem, ["N", p.n_out])],
        initializer=g.inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)],
                         producer_name="fastbp", producer_version=__version__,
                         doc_string=p.source)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def to_onnx(model, path, *, dtype=None):
    """Write ``model`` as an ONNX file computing its predictions.

    Parameters
    ----------
    model : fastbp.MLP or fitted fastbp.sklearn.MLPClassifier / MLPRegressor
        The graph computes ``net.predict`` (inference mode: batch norm with
        its running statistics, no dropout); for the classifier that is
        ``predict_proba``, for the regressor ``predict`` as a 2-D
        ``(n, n_outputs)`` array.
    path : str or os.PathLike
        Destination, written atomically: on any error nothing is left
        behind and an existing file at ``path`` is untouched.
    dtype : {"float32", "float64"}, optional
        Precision of the graph (default: the network's).

    Returns
    -------
    onnx.ModelProto
        The model written.  Input ``"X"`` has shape ``(N, n_features)``
        with a dynamic batch size ``N``; output ``"Y"`` is ``(N, n_outputs)``.

    Raises
    ------
    TypeError
        ``model`` is not a fastbp network or estimator, or ``dtype`` is not
        float32/float64.
    ValueError
        The estimator is not fitted.
    FileNotFoundError, IsADirectoryError
        The folder of ``path`` does not exist / ``path`` is a folder.
    ImportError
        The ``onnx`` package is missing (``pip install fastbp[onnx]``).

    Examples
    --------
    >>> import fastbp, fastbp.export
    >>> net = fastbp.MLP([4, 8, 3], loss="cross_entropy", seed=0)
    >>> proto = fastbp.export.to_onnx(net, "model.onnx")  # doctest: +SKIP
    """
    p = make_plan(model, dtype)
    path = check_path(path)
    proto = build(p)
    data = proto.SerializeToString()
    write_file(path, data)
    return proto
