"""Constants passed between kernels as run-time values: one compiled callee each.

Numba types a constant argument (``0``, ``True``) as a *literal* and compiles
a separate specialisation of the callee for every distinct constant -- and
one more when the same callee is also reached with a run-time value (from
Python, or from a loop variable).  ``forward(model, work, X, True, False)``
inside the training kernel and ``forward(model, work, X, False, False)``
from ``predict`` were two compilations of the whole forward pass, each
pulling in its own copies of every layer kernel; ``_layer_forward(..., 0, ...)``
for the first layer and ``_layer_forward(..., l, ...)`` in the loop were two
more.  Wrapping the constant, ``forward(model, work, X, runtime(True),
runtime(False))``, types it as a plain ``bool`` / ``int64``, so every path
shares one compiled entry (the branches it selects are cheap run-time tests
on scalars, and the arithmetic is the same code, so results are unchanged).

``no_values()`` does the same for optional vectors (sample weights, per-step
rates): an empty array instead of ``None``, so the weighted and the
unweighted call share one compiled entry.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


@intrinsic
def runtime(typingctx, x):
    """``x`` unchanged, typed as a run-time value (a literal loses its literal type)."""
    ty = types.unliteral(x)
    sig = ty(x)

    def codegen(context, builder, sig, args):
        return context.cast(builder, args[0], sig.args[0], sig.return_type)

    return sig, codegen


#: The type of ``no_values()``: a float64 vector, as sample weights and per-step
#: learning rates are.
F64_VECTOR = types.Array(types.float64, 1, "C")


@intrinsic
def no_values(typingctx):
    """An empty float64 vector with no storage (no allocation): the "none" of optional
    sample weights or per-step rates, of the same type as given ones, so a kernel
    compiles once for both (``weights.given`` tells them apart at run time)."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(F64_VECTOR)(context, builder)
        intp = context.get_value_type(types.intp)
        populate_array(ary, data=cgutils.get_null_value(ary.data.type), shape=[intp(0)],
                       strides=[intp(8)], itemsize=intp(8), meminfo=None)
        return ary._getvalue()

    return F64_VECTOR(), codegen
