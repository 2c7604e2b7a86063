"""Row operations on ``(rows, LANES)`` arrays as explicit LLVM vector code.

The population kernel (``lanes.py``) holds ``LANES`` networks side by side:
row ``r`` of a workspace array is one quantity (a weight, an activation, a
delta) for every network.  Its inner products run over rows, with the lanes
as the vector.  Written as Numba loops these need runtime alias checks per
row (the arrays could overlap), which cost more than the arithmetic; these
intrinsics load whole rows as ``<LANES x T>`` vectors, keep the running sum
in registers and store once.

Each lane is computed with ordinary IEEE multiplies and adds, in the same
order for every lane, so a network's result does not depend on its lane.

All arrays are C-contiguous 2-D with exactly ``LANES`` columns and the same
float dtype; row indices are not bounds-checked (callers derive them from
the layout table and allocate the workspace to fit).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import LANES


def _rows_ok(*arys):
    dt = arys[0].dtype if isinstance(arys[0], types.Array) else None
    return all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
               and a.dtype == dt and isinstance(dt, types.Float) for a in arys)


def _ints_ok(*vals):
    return all(isinstance(v, types.Integer) for v in vals)


class _Rows:
    """Vector access to rows of one array inside a codegen function."""

    def __init__(self, context, builder, aryty, value):
        from numba.np.arrayobj import make_array  # compile time only
        self.builder = builder
        self.data = make_array(aryty)(context, builder, value).data
        self.elem = context.get_data_type(aryty.dtype)
        self.vty = ir.VectorType(self.elem, LANES)
        self.align = context.get_abi_sizeof(self.elem)

    def ptr(self, row):
        b = self.builder
        p = b.gep(self.data, [b.mul(row, row.type(LANES))], inbounds=True)
        return b.bitcast(p, self.vty.as_pointer())

    def load(self, row):
        return self.builder.load(self.ptr(row), align=self.align)

    def store(self, vec, row):
        self.builder.store(vec, self.ptr(row), align=self.align)


def _intp(context, builder, val, ty):
    return context.cast(builder, val, ty, types.intp)


@intrinsic
def vdot(typingctx, dst, r, X, x0, xs, Y, y0, ys, n, B, b):
    """``dst[r] = B[b] + sum_t X[x0 + t*xs] * Y[y0 + t*ys]`` for ``t < n``, row-wise.

    ``b < 0`` starts the sum from zero instead of a row of ``B``.
    """
    if not (_rows_ok(dst, X, Y, B) and _ints_ok(r, x0, xs, y0, ys, n, b)):
        return None
    sig = types.void(dst, r, X, x0, xs, Y, y0, ys, n, B, b)

    def codegen(context, builder, sig, args):
        tys = sig.args
        D, Xr, Yr, Br = (_Rows(context, builder, tys[i], args[i]) for i in (0, 2, 5, 9))
        r_, x0_, xs_, y0_, ys_, n_, b_ = (_intp(context, builder, args[i], tys[i])
                                          for i in (1, 3, 4, 6, 7, 8, 10))
        zero = ir.Constant(D.vty, [ir.Constant(D.elem, 0.0)] * LANES)
        neg = builder.icmp_signed("<", b_, b_.type(0))
        init = Br.load(builder.select(neg, b_.type(0), b_))
        acc = cgutils.alloca_once(builder, D.vty)
        builder.store(builder.select(neg, zero, init), acc)
        with cgutils.for_range(builder, n_) as loop:
            t = loop.index
            xv = Xr.load(builder.add(x0_, builder.mul(t, xs_)))
            yv = Yr.load(builder.add(y0_, builder.mul(t, ys_)))
            builder.store(builder.fadd(builder.load(acc), builder.fmul(xv, yv)), acc)
        D.store(builder.load(acc), r_)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def vger(typingctx, G, g0, gs, Dl, d, Y, y0, ys, n):
    """``G[g0 + t*gs] += Dl[d] * Y[y0 + t*ys]`` for ``t < n``, row-wise (a rank-1 update)."""
    if not (_rows_ok(G, Dl, Y) and _ints_ok(g0, gs, d, y0, ys, n)):
        return None
    sig = types.void(G, g0, gs, Dl, d, Y, y0, ys, n)

    def codegen(context, builder, sig, args):
        tys = sig.args
        Gr, Dr, Yr = (_Rows(context, builder, tys[i], args[i]) for i in (0, 3, 5))
        g0_, gs_, d_, y0_, ys_, n_ = (_intp(context, builder, args[i], tys[i])
                                      for i in (1, 2, 4, 6, 7, 8))
        dv = Dr.load(d_)
        with cgutils.for_range(builder, n_) as loop:
            t = loop.index
            gi = builder.add(g0_, builder.mul(t, gs_))
            yv = Yr.load(builder.add(y0_, builder.mul(t, ys_)))
            Gr.store(builder.fadd(Gr.load(gi), builder.fmul(dv, yv)), gi)
        return context.get_dummy_value()

    return sig, codegen
