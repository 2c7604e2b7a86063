"""Cheap 2-D views of 1-D buffers for nopython code.

``buf[off:off + n*m].reshape((n, m))`` goes through Numba's general reshape
helper (tens of nanoseconds); for tiny layers that overhead rivals the
arithmetic.  ``view2d`` builds the C-contiguous view directly, sharing the
buffer's memory and reference count.  Callers guarantee ``off + n*m <= len(buf)``
(every use in fastbp derives ``off``, ``n`` and ``m`` from the layout table and
the workspace capacity).
"""

from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from .._config import JIT


@intrinsic
def view2d(typingctx, buf, off, n, m):
    """``(n, m)`` C-contiguous view of ``buf`` (1-D, contiguous) starting at ``off``."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    if not all(isinstance(t, types.Integer) for t in (off, n, m)):
        return None
    retty = types.Array(buf.dtype, 2, "C")
    sig = retty(buf, off, n, m)

    def codegen(context, builder, sig, args):
        from numba.np.arrayobj import make_array, populate_array  # compile time only
        bufv, offv, nv, mv = args
        intp = context.get_value_type(types.intp)
        offv = context.cast(builder, offv, sig.args[1], types.intp)
        nv = context.cast(builder, nv, sig.args[2], types.intp)
        mv = context.cast(builder, mv, sig.args[3], types.intp)
        src = make_array(sig.args[0])(context, builder, bufv)
        dst = make_array(retty)(context, builder)
        itemsize = context.get_abi_sizeof(context.get_data_type(retty.dtype))
        isz = intp(itemsize)
        data = builder.gep(src.data, [offv], inbounds=True)
        shape = cgutils.pack_array(builder, [nv, mv])
        strides = cgutils.pack_array(builder, [builder.mul(mv, isz), isz])
        populate_array(dst, data=data, shape=shape, strides=strides, itemsize=isz,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, retty, dst._getvalue())

    return sig, codegen


@intrinsic
def view1d(typingctx, A):
    """The ``n * m`` elements of the C-contiguous 2-D ``A`` as a 1-D view (same memory)."""
    if not (isinstance(A, types.Array) and A.ndim == 2 and A.layout == "C"):
        return None
    retty = types.Array(A.dtype, 1, "C")
    sig = retty(A)

    def codegen(context, builder, sig, args):
        from numba.np.arrayobj import make_array, populate_array  # compile time only
        src = make_array(sig.args[0])(context, builder, args[0])
        dst = make_array(retty)(context, builder)
        n, m = cgutils.unpack_tuple(builder, src.shape, 2)
        itemsize = context.get_abi_sizeof(context.get_data_type(retty.dtype))
        isz = context.get_value_type(types.intp)(itemsize)
        populate_array(dst, data=src.data, shape=cgutils.pack_array(builder, [builder.mul(n, m)]),
                       strides=cgutils.pack_array(builder, [isz]), itemsize=isz,
                       meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, retty, dst._getvalue())

    return sig, codegen


def copy_row(dst, r, src, j):
    """``dst[r] = src[j]`` for 1-D or 2-D arrays (typed by the overload below)."""
    dst[r] = src[j]


@overload(copy_row, jit_options=JIT)
def _copy_row_impl(dst, r, src, j):
    # ``dst[r] = src[j]`` on 2-D arrays compiles Numba's broadcasting check,
    # whose error message formatting alone costs seconds of compile time
    if isinstance(src, types.Array) and src.ndim == 2:
        def impl(dst, r, src, j):
            for k in range(src.shape[1]):
                dst[r, k] = src[j, k]
        return impl
    if isinstance(src, types.Array) and src.ndim == 1:
        def impl(dst, r, src, j):
            dst[r] = src[j]
        return impl
    return None


_LINE = 64  # bytes of a cache line


@intrinsic
def _prefetch_span(typingctx, A, j):
    """``llvm.prefetch`` (read, keep in every cache level) of each cache line of row
    ``j`` of the C-contiguous ``A`` (2-D: the row; 1-D: the element)."""
    if not (isinstance(A, types.Array) and A.layout == "C" and A.ndim in (1, 2)
            and isinstance(j, types.Integer)):
        return None
    sig = types.void(A, j)

    def codegen(context, builder, sig, args):
        from llvmlite import ir  # compile time only
        from numba.np.arrayobj import make_array
        aryty = sig.args[0]
        ary = make_array(aryty)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        jv = context.cast(builder, args[1], sig.args[1], types.intp)
        strides = cgutils.unpack_tuple(builder, ary.strides, aryty.ndim)
        shape = cgutils.unpack_tuple(builder, ary.shape, aryty.ndim)
        itemsize = intp(context.get_abi_sizeof(context.get_data_type(aryty.dtype)))
        nbytes = builder.mul(shape[1], itemsize) if aryty.ndim == 2 else itemsize
        start = builder.add(builder.ptrtoint(ary.data, intp), builder.mul(jv, strides[0]))
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        nlines = builder.udiv(builder.add(nbytes, intp(_LINE - 1)), intp(_LINE))
        with cgutils.for_range(builder, nlines) as loop:
            addr = builder.add(start, builder.mul(loop.index, intp(_LINE)))
            builder.call(fn, [builder.inttoptr(addr, i8p), i32(0), i32(3), i32(1)])
        last = builder.sub(builder.add(start, nbytes), intp(1))  # a row ending past a line
        builder.call(fn, [builder.inttoptr(last, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


def prefetch_row(A, j):
    """Ask the CPU to start loading row ``j`` of ``A`` into its caches (a hint: no effect
    on results; C-contiguous 1-D and 2-D arrays, a no-op for anything else)."""


@overload(prefetch_row, jit_options=JIT)
def _prefetch_row_impl(A, j):
    if isinstance(A, types.Array) and A.layout == "C" and A.ndim in (1, 2):
        return lambda A, j: _prefetch_span(A, j)
    return lambda A, j: None


@njit(**JIT)
def gather_rows(xbuf, ybuf, X, y, order, start, r0, r1):
    """Rows ``r0 .. r1`` of a shuffled batch: ``X[order[start + r]]`` into ``xbuf[r]``,
    the same of ``y`` into ``ybuf``."""
    for r in range(r0, r1):
        j = order[start + r]
        copy_row(xbuf, r, X, j)
        copy_row(ybuf, r, y, j)


@njit(**JIT)
def prefetch_rows(X, y, order, lo, hi):
    """``prefetch_row`` of the rows ``order[lo:hi]`` of ``X`` and ``y``."""
    for r in range(lo, hi):
        prefetch_row(X, order[r])
        prefetch_row(y, order[r])
