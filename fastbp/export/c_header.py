"""Export to one self-contained C99 header.

The header holds the weights as ``static const`` arrays and ``static
inline`` functions only, so it can be included in any number of
translation units; it allocates nothing and keeps no state (thread-safe).
For ``name="model"`` it defines::

    typedef float model_scalar;                  (double for float64)
    #define MODEL_N_INPUTS  ...                   input width
    #define MODEL_N_OUTPUTS ...                   output width
    static inline void model_predict(const model_scalar *x, model_scalar *y, size_t n);

``model_predict`` reads ``n`` rows of ``MODEL_N_INPUTS`` values from ``x``
(row-major) and writes ``n`` rows of ``MODEL_N_OUTPUTS`` to ``y``; ``x`` and
``y`` must not overlap.  It uses two stack buffers of the widest hidden
layer.  Only ``exp``, ``tanh`` and (for softplus) ``log`` come from libm
(``expf``/``tanhf``/``logf`` in float32): link with ``-lm``.  ``expm1`` and
``log1p`` are written with them at full relative precision (the identities
are in :mod:`fastbp.export.onnx_graph`).

``to_c(..., quantize="int8")`` stores the weights as ``signed char`` with
one scale per output unit (:func:`quantize_rows`); the rest is unchanged.

Constants are written with the shortest decimal that reads back as the same
float32/float64 value, so the header reproduces the exported weights
exactly.  Batch norm is folded into the weights (see
:mod:`fastbp.export.layers`).
"""

import re

import numpy as np

from .files import check_path, write_file
from .layers import GELU_C, GELU_K3, plan as make_plan

_C99_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary""".split())
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# a decimal floating constant (Python's repr / numpy's str of finite values)
_LITERAL = re.compile(r"-?(\d+\.\d*(e[+-]?\d+)?|\d+e[+-]?\d+)\Z")

#: Values per line in the weight arrays.
_PER_LINE = 6


def check_name(name):
    """Validate the C identifier that prefixes every name in the header."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (a C identifier), got {type(name).__name__}")
    if not _IDENTIFIER.match(name):
        raise ValueError(f"name must be a C identifier starting with a letter (letters, digits "
                         f"and underscores, e.g. 'model'), got {name!r}")
    if name in _C99_KEYWORDS:
        raise ValueError(f"name {name!r} is a C keyword; choose another, e.g. 'model'")
    return name


class _C:
    """Spelling of types, literals and libm calls for one precision."""

    def __init__(self, dtype):
        self.f32 = dtype == np.float32
        self.type = "float" if self.f32 else "double"

    def lit(self, v):
        """A literal that reads back as exactly ``v`` rounded to the precision."""
        text = str(np.float32(v)) if self.f32 else repr(float(v))
        if not _LITERAL.match(text):  # pragma: no cover - values are checked finite
            raise ValueError(f"cannot write {v!r} as a C literal")
        return text + "f" if self.f32 else text

    def fn(self, name):
        """libm function ``name`` for the precision (``expf`` for float)."""
        return name + "f" if self.f32 else name


def _scalar_functions(c, p, name):
    """``static inline`` definitions of the element-wise activations ``p`` uses."""
    T, lit, exp, tanh, log = c.type, c.lit, c.fn("exp"), c.fn("tanh"), c.fn("log")
    zero, one, half = lit(0.0), lit(1.0), lit(0.5)
    bodies = {
        "sigmoid": f"return {one} / ({one} + {exp}(-z));",
        "tanh": f"return {tanh}(z);",
        "exp": f"return {exp}(z);",
        "relu": f"return z > {zero} ? z : {zero};",
        "leaky_relu": f"return z > {zero} ? z : alpha * z;",
        "elu": f"/* expm1(z) = tanh(z / 2) * (exp(z) + 1), exact for z <= 0 */\n"
               f"    return z > {zero} ? z : alpha * ({tanh}({half} * z) * ({exp}(z) + {one}));",
        "softplus": f"/* max(z, 0) + log1p(exp(-|z|)); log1p(u) = log(w) u / (w - 1), w = 1 + u */\n"
                    f"    const {T} u = {exp}(z > {zero} ? -z : z);\n"
                    f"    const {T} w = {one} + u;\n"
                    f"    const {T} l = w == {one} ? u : {log}(w) * u / (w - {one});\n"
                    f"    return (z > {zero} ? z : {zero}) + l;",
        "gelu": f"/* tanh form, as fastbp's */\n"
                f"    return {half} * z * ({one} + {tanh}({lit(GELU_C)} * "
                f"(z + {lit(GELU_K3)} * z * z * z)));",
    }
    used = []
    for layer in p.layers:
        if layer.activation in bodies and layer.activation not in used:
            used.append(layer.activation)
    out = []
    for act in used:
        params = f"{T} z, {T} alpha" if act in ("leaky_relu", "elu") else f"{T} z"
        out.append(f"static inline {T} {name}_{act}({params})\n{{\n    {bodies[act]}\n}}\n")
    if p.layers[-1].activation == "softmax":
        out.append(f"""static inline void {name}_softmax({T} *z, size_t n)
{{
    {T} mx = z[0], s = {zero}, inv;
    size_t j;
    for (j = 1; j < n; ++j)
        if (z[j] > mx)
            mx = z[j];
    for (j = 0; j < n; ++j) {{
        z[j] = {exp}(z[j] - mx);
        s += z[j];
    }}
    inv = {one} / s;
    for (j = 0; j < n; ++j)
        z[j] *= inv;
}}
""")
    return out


def _array(c, ident, arr):
    if arr.dtype == np.int8:
        ctype, vals, per_line = "signed char", [str(int(v)) for v in arr.ravel()], 16
    else:
        ctype, vals, per_line = c.type, [c.lit(v) for v in arr.ravel()], _PER_LINE
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {ident}[{len(vals)}] = {{\n    {body}\n}};\n"


def quantize_rows(W):
    """Symmetric per-row int8 weights: ``W ~ q * scale[:, None]``, ``|q| <= 127``.

    Returns ``(q, scale)``, ``q`` int8 and ``scale`` in ``W``'s dtype; a row
    of zeros gets scale 1.
    """
    amax = np.max(np.abs(W.astype(np.float64)), axis=1)
    scale = np.where(amax > 0.0, amax / 127.0, 1.0).astype(W.dtype)
    q = np.clip(np.rint(W / scale[:, None].astype(np.float64)), -127, 127).astype(np.int8)
    return q, scale


def _activation_call(c, name, layer, buf, width):
    act = layer.activation
    if act in ("identity", "softmax"):
        return [] if act == "identity" else [f"        {name}_softmax({buf}, {width});"]
    args = f"{buf}[j], {c.lit(layer.alpha)}" if act in ("leaky_relu", "elu") else f"{buf}[j]"
    return [f"        for (j = 0; j < {width}; ++j)",
            f"            {buf}[j] = {name}_{act}({args});"]


def _predict(c, p, name, quantized):
    T = c.type
    n_layers = len(p.layers)
    hidden = [layer.W.shape[0] for layer in p.layers[:-1]]
    bufs = [f"h{k}" for k in range(min(2, len(hidden)))]
    lines = [f"static inline void {name}_predict(const {T} *x, {T} *y, size_t n)", "{"]
    if bufs:
        lines.append(f"    {T} {', '.join(f'{b}[{max(hidden)}]' for b in bufs)};")
    lines.append("    size_t i;")
    elementwise = any(layer.activation not in ("identity", "softmax") for layer in p.layers)
    if elementwise:
        lines.append("    size_t j;")
    lines += ["    for (i = 0; i < n; ++i) {",
              f"        const {T} *xi = x + i * {p.n_in};",
              f"        {T} *yi = y + i * {p.n_out};"]
    src = "xi"
    for l, layer in enumerate(p.layers):
        n_out, n_in = layer.W.shape
        dst = "yi" if l == n_layers - 1 else bufs[l % 2]
        weights = f"{name}_W{l}, {name}_s{l}" if quantized else f"{name}_W{l}"
        lines.append(f"        {name}_dense({weights}, {name}_b{l}, {src}, {dst}, {n_in}, {n_out});")
        lines += _activation_call(c, name, layer, dst, n_out)
        src = dst
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"


def source(p, name, quantize=None):
    """The C header text of a :class:`fastbp.export.layers.Plan` (``quantize``: None or "int8")."""
    from .._version import __version__

    c = _C(p.dtype)
    T = c.type
    up = name.upper()
    functions = _scalar_functions(c, p, name)
    libm = [c.fn(f) for f in ("exp", "log", "tanh")
            if any(f"{c.fn(f)}(" in text for text in functions)]
    quantized = quantize == "int8"
    q_note = ("\n * Weights: int8 with one scale per output unit (W ~ q * s); biases,\n"
              f" * activations and arithmetic in {T}.") if quantized else ""
    parts = [f"""/* {name}.h -- generated by fastbp {__version__}; do not edit.
 *
 * {p.source}
 * Activations: {", ".join(layer.activation for layer in p.layers)}
 * Precision: {T} ({p.dtype.name}); batch norm (if any) folded into the weights.{q_note}
 *
 * void {name}_predict(const {name}_scalar *x, {name}_scalar *y, size_t n);
 *     x: n rows of {up}_N_INPUTS values (row-major); y: n rows of {up}_N_OUTPUTS.
 *     x and y must not overlap.  No allocation, no state.
 * libm functions used: {", ".join(libm) + " (link with -lm)" if libm else "none"}.
 */
#ifndef FASTBP_{up}_H
#define FASTBP_{up}_H

#include <math.h>
#include <stddef.h>

typedef {T} {name}_scalar;

#define {up}_N_INPUTS {p.n_in}
#define {up}_N_OUTPUTS {p.n_out}
"""]
    for l, layer in enumerate(p.layers):
        if quantized:
            q, scale = quantize_rows(layer.W)
            parts.append(_array(c, f"{name}_W{l}", q))
            parts.append(_array(c, f"{name}_s{l}", scale))
        else:
            parts.append(_array(c, f"{name}_W{l}", layer.W))
        parts.append(_array(c, f"{name}_b{l}", layer.b))
    pad = " " * len(f"static inline void {name}_dense(")
    if quantized:
        parts.append(f"""/* z = diag(s) (W x) + b, W int8 (n_out x n_in) row-major */
static inline void {name}_dense(const signed char *W, const {T} *s, const {T} *b,
{pad}const {T} *x, {T} *z, size_t n_in, size_t n_out)
{{
    size_t j, k;
    for (j = 0; j < n_out; ++j) {{
        const signed char *w = W + j * n_in;
        {T} acc = {c.lit(0.0)};
        for (k = 0; k < n_in; ++k)
            acc += ({T})w[k] * x[k];
        z[j] = b[j] + s[j] * acc;
    }}
}}
""")
    else:
        parts.append(f"""/* z = W x + b, W (n_out x n_in) row-major */
static inline void {name}_dense(const {T} *W, const {T} *b, const {T} *x, {T} *z,
{pad}size_t n_in, size_t n_out)
{{
    size_t j, k;
    for (j = 0; j < n_out; ++j) {{
        const {T} *w = W + j * n_in;
        {T} s = b[j];
        for (k = 0; k < n_in; ++k)
            s += w[k] * x[k];
        z[j] = s;
    }}
}}
""")
    parts += functions
    parts.append(_predict(c, p, name, quantized))
    parts.append(f"\n#endif /* FASTBP_{up}_H */\n")
    return "\n".join(parts)


def to_c(model, path, name="model", *, dtype=None, quantize=None):
    """Write ``model`` as a self-contained C99 header computing its predictions.

    Parameters
    ----------
    model : fastbp.MLP or fitted fastbp.sklearn.MLPClassifier / MLPRegressor
        The header computes ``net.predict`` in inference mode (classifier:
        ``predict_proba``; regressor: ``predict`` as ``(n, n_outputs)``).
    path : str or os.PathLike
        Destination, e.g. ``"model.h"``; written atomically (on any error
        an existing file at ``path`` is untouched and nothing is left behind).
    name : str, default "model"
        A C identifier prefixing every name in the header:
        ``<name>_predict``, ``<name>_scalar``, ``<NAME>_N_INPUTS``, ...
    dtype : {"float32", "float64"}, optional
        ``float`` or ``double`` arithmetic (default: the network's dtype).
    quantize : {None, "int8"}
        ``"int8"`` stores each weight matrix as ``signed char`` with one
        scale per output unit, ``W ~ q * max|W_row| / 127`` (a quarter of
        float32's size; each weight within ``max|W_row| / 254``); biases,
        activations and arithmetic stay in ``dtype``.

    Returns
    -------
    str
        The header text written.

    Raises
    ------
    TypeError
        ``model`` is not a fastbp network or estimator; ``name`` is not a
        str; ``dtype`` is not float32/float64.
    ValueError
        ``name`` is not a valid C identifier or is a keyword; ``quantize``
        is unknown; the estimator is not fitted.
    FileNotFoundError, IsADirectoryError
        The folder of ``path`` does not exist / ``path`` is a folder.

    Examples
    --------
    >>> import fastbp, fastbp.export
    >>> net = fastbp.MLP([4, 8, 3], loss="cross_entropy", seed=0)
    >>> text = fastbp.export.to_c(net, "model.h", name="iris")  # doctest: +SKIP

    Then in C: ``#include "model.h"`` and ``iris_predict(x, y, n);``.
    """
    name = check_name(name)
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    p = make_plan(model, dtype)
    path = check_path(path)
    text = source(p, name, quantize)
    write_file(path, text.encode("utf-8"))
    return text
