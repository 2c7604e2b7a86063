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
"""

from numba import types
from numba.extending import intrinsic


@intrinsic
def runtime(typingctx, x):
    """``x`` unchanged, typed as a run-time value (a literal loses its literal type)."""
    ty = types.unliteral(x)
    sig = ty(x)

    def codegen(context, builder, sig, args):
        return context.cast(builder, args[0], sig.args[0], sig.return_type)

    return sig, codegen
