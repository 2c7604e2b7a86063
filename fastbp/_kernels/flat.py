"""Element access at a flat offset of a C-contiguous array, without wraparound.

``A[e]`` with a signed index ``e`` makes Numba add ``len(A)`` when ``e`` is
negative.  Where ``e`` is a run-time offset plus a loop counter (a sample's
block of a flat buffer: ``acts[o + i * n + k]``), LLVM cannot prove the index
non-negative, keeps that select in the loop and does not vectorise it (the
generated kernels' backward and update loops ran scalar, with gathers).
``at(A, e)`` reads and ``put(A, e, v)`` writes element ``e`` of the flat
data directly: the caller guarantees ``0 <= e < A.size`` (no bounds check,
as everywhere with ``boundscheck`` off).
"""

from numba import types
from numba.extending import intrinsic


def _ok(A, e):
    return isinstance(A, types.Array) and A.layout == "C" and isinstance(e, types.Integer)


def _pointer(context, builder, aryty, ary, e, ety):
    """Pointer to flat element ``e`` of ``ary``."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.gep(data, [context.cast(builder, e, ety, types.intp)], inbounds=True)


@intrinsic
def at(typingctx, A, e):
    """``A.flat[e]`` of a C-contiguous array, ``0 <= e < A.size`` (not checked)."""
    if not _ok(A, e):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        return context.unpack_value(builder, sig.return_type, ptr)

    return A.dtype(A, e), codegen


@intrinsic
def put(typingctx, A, e, v):
    """``A.flat[e] = v`` (converted to ``A.dtype``) of a C-contiguous array, ``0 <= e <
    A.size`` (not checked)."""
    if not (_ok(A, e) and A.mutable and isinstance(v, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        ptr = _pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        context.pack_value(builder, sig.args[0].dtype, val, ptr)
        return context.get_dummy_value()

    return types.none(A, e, v), codegen
