"""Names <-> integer codes, and the flat parameter layout.

Kernels never see strings: activations, losses and initialisers are passed as
the integer codes defined here, and the network architecture as a small
``int64`` *layout* table.

Layout table (int64, shape ``(n_layers, 6)``), one row per weight layer ``l``:

====  =============================================================
col   meaning
====  =============================================================
0     ``n_in``  -- width of the layer's input
1     ``n_out`` -- width of the layer's output
2     ``w_off`` -- offset of ``W_l`` (``n_out x n_in``, C order) in params;
      ``b_l`` follows at ``w_off + n_out * n_in``
3     activation code of the layer's output
4     ``bn_off`` -- offset of batch-norm ``gamma`` (``beta`` follows), or -1
5     ``stat_off`` -- offset of the running mean (variance follows) in the
      batch-norm statistics buffer, or -1
====  =============================================================

Per-layer float settings (float64, shape ``(n_layers, N_LPARAMS)``): activation
parameter (leaky slope / elu alpha), dropout rate of the layer's output,
batch-norm momentum, batch-norm epsilon, and the loss parameter (Huber
``delta`` or the quantile; read from the output layer's row only).

Parameters of layer ``l`` occupy ``W_l, b_l[, gamma_l, beta_l]`` in order.
"""

from collections import namedtuple

import numpy as np

# Activation codes.  SOFTMAX is for the output layer only.
# EXP (the Poisson log link's inverse) is for the output layer of loss="poisson" only.
IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SOFTMAX, EXP = range(10)
ACTIVATIONS = {
    "identity": IDENTITY, "linear": IDENTITY, "sigmoid": SIGMOID, "logistic": SIGMOID,
    "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU,
    "softplus": SOFTPLUS, "gelu": GELU, "softmax": SOFTMAX, "exp": EXP,
}
HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "tanh", "softmax", "exp")
ACTIVATION_NAMES = {IDENTITY: "identity", SIGMOID: "sigmoid", TANH: "tanh", RELU: "relu",
                    LEAKY_RELU: "leaky_relu", ELU: "elu", SOFTPLUS: "softplus", GELU: "gelu",
                    SOFTMAX: "softmax", EXP: "exp"}

# Loss codes.  MSE, HUBER, MAE and QUANTILE are "elementwise": a function of
# the residual a - d of each output (``_kernels/losses.py``).
MSE, CROSS_ENTROPY, BINARY_CROSS_ENTROPY, HUBER, MAE, QUANTILE, POISSON = range(7)
LOSSES = {"mse": MSE, "squared_error": MSE, "cross_entropy": CROSS_ENTROPY,
          "binary_cross_entropy": BINARY_CROSS_ENTROPY, "huber": HUBER, "mae": MAE,
          "l1": MAE, "absolute_error": MAE, "quantile": QUANTILE, "pinball": QUANTILE,
          "poisson": POISSON}
LOSS_NAMES = {MSE: "mse", CROSS_ENTROPY: "cross_entropy",
              BINARY_CROSS_ENTROPY: "binary_cross_entropy", HUBER: "huber", MAE: "mae",
              QUANTILE: "quantile", POISSON: "poisson"}
DEFAULT_OUTPUT = {MSE: "identity", CROSS_ENTROPY: "softmax", BINARY_CROSS_ENTROPY: "sigmoid",
                  HUBER: "identity", MAE: "identity", QUANTILE: "identity", POISSON: "exp"}
REQUIRED_OUTPUT = {CROSS_ENTROPY: "softmax", BINARY_CROSS_ENTROPY: "sigmoid", POISSON: "exp"}
#: Output activations that only one loss may use.
OUTPUT_ONLY_FOR = {"exp": POISSON}

INITS = {
    "xavier_uniform": "xavier_uniform", "xavier_normal": "xavier_normal",
    "he_uniform": "he_uniform", "he_normal": "he_normal",
    "xavier": "xavier_uniform", "glorot": "xavier_uniform",
    "glorot_uniform": "xavier_uniform", "glorot_normal": "xavier_normal",
    "he": "he_normal", "kaiming": "he_normal",
    "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal",
}
RELU_FAMILY = {"relu", "leaky_relu", "elu", "gelu", "softplus"}

DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}


def _choice(kind, name, allowed):
    if not isinstance(name, str) or name.lower() not in allowed:
        raise ValueError(
            f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(allowed))}")
    return name.lower()


def activation_code(name, hidden=True):
    """Integer code of an activation name (validated for hidden or output use)."""
    allowed = HIDDEN_ACTIVATIONS if hidden else OUTPUT_ACTIVATIONS
    aliases = {k for k, v in ACTIVATIONS.items() if ACTIVATION_NAMES[v] in allowed}
    kind = "hidden activation" if hidden else "output activation"
    return ACTIVATIONS[_choice(kind, name, aliases)]


def loss_code(name):
    """Integer code of a loss name."""
    return LOSSES[_choice("loss", name, LOSSES)]


def init_name(name):
    """Canonical initialiser name (``xavier_uniform`` ... ``he_normal``) or ``auto``."""
    if isinstance(name, str) and name.lower() == "auto":
        return "auto"
    return INITS[_choice("init", name, set(INITS) | {"auto"})]


def as_dtype(dtype):
    """Validate a floating dtype for a network (float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in DTYPES:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dt.name!r}")
    return dt


def check_sizes(sizes):
    """Validate layer sizes (input first) and return them as a tuple of ints."""
    try:
        seq = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}") from None
    if len(seq) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {seq!r}")
    out = []
    for s in seq:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"layer widths must be positive integers, got {s!r} in {seq!r}")
        if s <= 0:
            raise ValueError(f"layer widths must be positive integers, got {int(s)} in {seq!r}")
        out.append(int(s))
    return tuple(out)


L_IN, L_OUT, L_W, L_ACT, L_BN, L_STAT = range(6)
N_LAYOUT = 6
P_ALPHA, P_DROP, P_BN_MOMENTUM, P_BN_EPS, P_LOSS = range(5)
N_LPARAMS = 5


class Layer(namedtuple("Layer", ["n_in", "n_out", "w_off", "act", "bn_off", "stat_off"])):
    """One row of the layout table, by name, with the ranges it implies.

    ``weights``/``bias``/``gamma``/``beta`` are slices of the flat parameter
    buffer, ``mean``/``var`` of the statistics buffer (``None`` without batch
    norm).  The Python side's one copy of the kernels' layout arithmetic.
    """

    __slots__ = ()

    @property
    def weights(self):
        """Slice of ``W`` (``n_out x n_in``, C order) in the parameters."""
        return slice(self.w_off, self.w_off + self.n_out * self.n_in)

    @property
    def bias(self):
        """Slice of ``b`` in the parameters."""
        return slice(self.weights.stop, self.weights.stop + self.n_out)

    @property
    def gamma(self):
        """Slice of batch-norm ``gamma`` in the parameters, or None."""
        return slice(self.bn_off, self.bn_off + self.n_out) if self.bn_off >= 0 else None

    @property
    def beta(self):
        """Slice of batch-norm ``beta`` in the parameters, or None."""
        return (slice(self.bn_off + self.n_out, self.bn_off + 2 * self.n_out)
                if self.bn_off >= 0 else None)

    @property
    def mean(self):
        """Slice of the running mean in the statistics, or None."""
        return slice(self.stat_off, self.stat_off + self.n_out) if self.stat_off >= 0 else None

    @property
    def var(self):
        """Slice of the running variance in the statistics, or None."""
        return (slice(self.stat_off + self.n_out, self.stat_off + 2 * self.n_out)
                if self.stat_off >= 0 else None)


def layers(layout):
    """The rows of a layout table as :class:`Layer` tuples (read by column name)."""
    return [Layer(*(int(row[c]) for c in (L_IN, L_OUT, L_W, L_ACT, L_BN, L_STAT)))
            for row in layout]


def total_width(layout):
    """Sum of every layer's output width (activations per sample)."""
    return int(layout[:, L_OUT].sum())


def build_layout(sizes, act_codes, batch_norm=None):
    """Return the int64 layout table, the parameter count and the statistics count.

    ``batch_norm`` holds one flag per weight layer (default: none).
    """
    n_layers = len(sizes) - 1
    bn = [False] * n_layers if batch_norm is None else list(batch_norm)
    layout = np.empty((n_layers, N_LAYOUT), dtype=np.int64)
    off = 0
    stat = 0
    for l in range(n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        row = layout[l]
        row[L_IN], row[L_OUT], row[L_W], row[L_ACT] = n_in, n_out, off, act_codes[l]
        row[L_BN] = off + n_out * n_in + n_out if bn[l] else -1
        row[L_STAT] = stat if bn[l] else -1
        off += n_out * n_in + n_out + (2 * n_out if bn[l] else 0)
        stat += 2 * n_out if bn[l] else 0
    return layout, off, stat
