"""Row operations on ``(rows, LANES)`` arrays as explicit LLVM vector code.

The population kernel (``lanes.py``) holds ``LANES`` networks side by side:
row ``r`` of a workspace array is one quantity (a weight, an activation, a
delta) for every network.  Its inner products run over rows, with the lanes
as the vector.  Written as Numba loops these need runtime alias checks per
row (the arrays could overlap), which cost more than the arithmetic; these
intrinsics load whole rows as ``<LANES x T>`` vectors, keep the running sum
in registers and store once.  ``tanh_rows``/``sigmoid_rows`` apply the
activations of ``approx.py`` to whole rows the same way (LLVM's own loop
vectoriser would stop at 256-bit vectors on many AVX-512 machines; for
float64 this replaces a libm call per element).

The products run over a group of up to ``GROUP`` samples (each sample's rows
``yg`` apart): in a full group every weight row is loaded once for all its
samples and every gradient row loaded and stored once, instead of once per
sample; a short group (the tail of a batch) goes one sample at a time.

Each lane is computed with the same IEEE operations (multiply-adds fused
where the CPU has FMA) in the same order, so a network's result does not
depend on its lane.

All arrays are C-contiguous 2-D with exactly ``LANES`` columns and the same
float dtype; row indices are not bounds-checked (callers derive them from
the layout table and allocate the workspace to fit).

``vsgd`` is not written out here: its arithmetic is ``update.sgd_decay_step``
itself, evaluated at compile time on LLVM vector values (``_Vec``), so the
row form and the scalar form are one definition with one operation order.
"""

import types as pytypes

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic

from .._config import GROUP, LANES
from .approx import ExpMath
from .update import sgd_decay_step


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


def _fma(builder, a, b, c):
    """``a * b + c`` as ``llvm.fmuladd``: one rounding where the CPU has FMA.

    Explicit in the IR, so code compiled fresh and code loaded from Numba's
    cache make the same choice (unlike a fast-math ``contract`` flag).
    """
    ty = a.type
    name = f"llvm.fmuladd.v{ty.count}{'f32' if ty.element == ir.FloatType() else 'f64'}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]), name)
    return builder.call(fn, [a, b, c])


def _intp(context, builder, val, ty):
    return context.cast(builder, val, ty, types.intp)


def _per_group(builder, ng, body):
    """``body(gs)`` for the samples ``gs`` of a group of ``ng``: all ``GROUP`` at
    once (unrolled, sharing row loads) when the group is full, else one
    sample at a time."""
    full = builder.icmp_signed("==", ng, ng.type(GROUP))
    with builder.if_else(full) as (then, otherwise):
        with then:
            body([ng.type(g) for g in range(GROUP)])
        with otherwise:
            with cgutils.for_range(builder, ng) as loop:
                body([loop.index])


def _dot_codegen(context, builder, sig, args):
    """Codegen of ``vdot``."""
    tys = sig.args
    D, Xr, Yr, Br = (_Rows(context, builder, tys[i], args[i]) for i in (0, 3, 6, 11))
    r_, rg_, x0_, xs_, y0_, ys_, yg_, n_, b_, ng_ = (
        _intp(context, builder, args[i], tys[i]) for i in (1, 2, 4, 5, 7, 8, 9, 10, 12, 13))
    zero = ir.Constant(D.vty, [ir.Constant(D.elem, 0.0)] * LANES)
    neg = builder.icmp_signed("<", b_, b_.type(0))
    init = builder.select(neg, zero, Br.load(builder.select(neg, b_.type(0), b_)))

    def body(gs):
        accs = []
        for _ in gs:
            acc = cgutils.alloca_once(builder, D.vty)
            builder.store(init, acc)
            accs.append(acc)
        with cgutils.for_range(builder, n_) as loop:
            t = loop.index
            xv = Xr.load(builder.add(x0_, builder.mul(t, xs_)))
            yrow = builder.add(y0_, builder.mul(t, ys_))
            for g, acc in zip(gs, accs):
                yv = Yr.load(builder.add(yrow, builder.mul(yg_, g)))
                builder.store(_fma(builder, xv, yv, builder.load(acc)), acc)
        for g, acc in zip(gs, accs):
            D.store(builder.load(acc), builder.add(r_, builder.mul(rg_, g)))

    _per_group(builder, ng_, body)
    return context.get_dummy_value()


def _dot_types_ok(dst, r, rg, X, x0, xs, Y, y0, ys, yg, n, B, b, ng):
    return _rows_ok(dst, X, Y, B) and _ints_ok(r, rg, x0, xs, y0, ys, yg, n, b, ng)


@intrinsic
def vdot(typingctx, dst, r, rg, X, x0, xs, Y, y0, ys, yg, n, B, b, ng):
    """For each of ``ng <= GROUP`` samples ``g``, row-wise:
    ``dst[r + g*rg] = B[b] + sum_{t<n} X[x0 + t*xs] * Y[y0 + g*yg + t*ys]``.

    ``b < 0`` starts the sums from zero instead of a row of ``B``.  A full
    group loads each ``X`` row once for all its samples.
    """
    args = (dst, r, rg, X, x0, xs, Y, y0, ys, yg, n, B, b, ng)
    if not _dot_types_ok(*args):
        return None
    return types.void(*args), _dot_codegen


@intrinsic
def vger(typingctx, G, g0, gs, Dl, d, dg, Y, y0, ys, yg, n, gb, ng):
    """Rank-``ng`` update, row-wise: ``G[g0 + t*gs] += sum_g Dl[d + g*dg] * Y[y0 + g*yg + t*ys]``
    for ``t < n``; with ``gb >= 0`` also ``G[gb] += sum_g Dl[d + g*dg]`` (the bias).

    A full group (``ng == GROUP``) loads and stores each ``G`` row once.
    """
    if not (_rows_ok(G, Dl, Y) and _ints_ok(g0, gs, d, dg, y0, ys, yg, n, gb, ng)):
        return None
    sig = types.void(G, g0, gs, Dl, d, dg, Y, y0, ys, yg, n, gb, ng)

    def codegen(context, builder, sig, args):
        tys = sig.args
        Gr, Dr, Yr = (_Rows(context, builder, tys[i], args[i]) for i in (0, 3, 6))
        g0_, gs_, d_, dg_, y0_, ys_, yg_, n_, gb_, ng_ = (
            _intp(context, builder, args[i], tys[i])
            for i in (1, 2, 4, 5, 7, 8, 9, 10, 11, 12))

        def body(gsamples):
            dvs = [Dr.load(builder.add(d_, builder.mul(dg_, g))) for g in gsamples]
            with cgutils.for_range(builder, n_) as loop:
                t = loop.index
                gi = builder.add(g0_, builder.mul(t, gs_))
                yrow = builder.add(y0_, builder.mul(t, ys_))
                acc = Gr.load(gi)
                for g, dv in zip(gsamples, dvs):
                    acc = _fma(builder, dv, Yr.load(builder.add(yrow, builder.mul(yg_, g))), acc)
                Gr.store(acc, gi)
            with builder.if_then(builder.icmp_signed(">=", gb_, gb_.type(0))):
                acc = Gr.load(gb_)
                for dv in dvs:
                    acc = builder.fadd(acc, dv)
                Gr.store(acc, gb_)

        _per_group(builder, ng_, body)
        return context.get_dummy_value()

    return sig, codegen


def _map_rows(method):
    """An intrinsic ``(A, a0, Z, z0, n)``: ``A[a0 + t] = f(Z[z0 + t])`` for ``t < n``,
    with ``f`` the ``ExpMath`` method (whole rows as vectors, float32 or float64)."""

    @intrinsic
    def impl(typingctx, A, a0, Z, z0, n):
        if not (_rows_ok(A, Z) and _ints_ok(a0, z0, n)):
            return None
        sig = types.void(A, a0, Z, z0, n)

        def codegen(context, builder, sig, args):
            tys = sig.args
            Ar, Zr = _Rows(context, builder, tys[0], args[0]), _Rows(context, builder, tys[2],
                                                                      args[2])
            a0_, z0_, n_ = (_intp(context, builder, args[i], tys[i]) for i in (1, 3, 4))
            features = getattr(context.codegen(), "_tm_features", "")
            fm = ExpMath(builder, Zr.vty, fast_recip="+avx512f" in features.split(","))
            with cgutils.for_range(builder, n_) as loop:
                t = loop.index
                Ar.store(getattr(fm, method)(Zr.load(builder.add(z0_, t))), builder.add(a0_, t))
            return context.get_dummy_value()

        return sig, codegen

    impl.__doc__ = (f"``A[a0 + t] = {method}(Z[z0 + t])`` for ``t < n``, whole rows of "
                    "``LANES`` at a time (float32: the bounds of ``approx.py``; float64: "
                    "a few ulp, the same algorithm with double constants).")
    return impl


tanh_rows = _map_rows("tanh")
sigmoid_rows = _map_rows("sigmoid")


def as_python(fn):
    """The plain-Python form of an ``@njit`` formula, its ``@njit`` callees replaced
    the same way, so that it can run on ``_Vec`` values (at compile time)."""
    f = fn.py_func if isinstance(fn, CPUDispatcher) else fn
    env = dict(f.__globals__)
    for name in f.__code__.co_names:
        if isinstance(env.get(name), CPUDispatcher):
            env[name] = as_python(env[name])
    return pytypes.FunctionType(f.__code__, env, f.__name__, f.__defaults__, f.__closure__)


class _Vec:
    """An LLVM vector value with ``+ - *`` emitting IEEE vector instructions (no
    fast-math flags), in the order the Python expression evaluates them."""

    def __init__(self, builder, value):
        self.builder = builder
        self.value = value

    def _op(self, other, name):
        return _Vec(self.builder, getattr(self.builder, name)(self.value, other.value))

    def __add__(self, other):
        return self._op(other, "fadd")

    def __sub__(self, other):
        return self._op(other, "fsub")

    def __mul__(self, other):
        return self._op(other, "fmul")


_sgd_decay_rows = as_python(sgd_decay_step)


@intrinsic
def vsgd(typingctx, P, p0, n, G, C, cl, cd):
    """SGD on rows ``p0 .. p0+n-1``: ``P <- sgd_decay_step(P, G, C[cl], C[cd])``; ``G <- 0``.

    ``C[cl]`` holds each lane's learning rate and ``C[cd]`` its decay factor;
    a lane whose rate is 0 is left untouched (even if its gradient is NaN).
    """
    if not (_rows_ok(P, G, C) and _ints_ok(p0, n, cl, cd)):
        return None
    sig = types.void(P, p0, n, G, C, cl, cd)

    def codegen(context, builder, sig, args):
        tys = sig.args
        Pr, Gr, Cr = (_Rows(context, builder, tys[i], args[i]) for i in (0, 3, 4))
        p0_, n_, cl_, cd_ = (_intp(context, builder, args[i], tys[i]) for i in (1, 2, 5, 6))
        zero = ir.Constant(Pr.vty, [ir.Constant(Pr.elem, 0.0)] * LANES)
        lr = Cr.load(cl_)
        dec = Cr.load(cd_)
        live = builder.fcmp_unordered("!=", lr, zero)
        with cgutils.for_range(builder, n_) as loop:
            t = builder.add(p0_, loop.index)
            p = Pr.load(t)
            x = _sgd_decay_rows(*(_Vec(builder, v) for v in (p, Gr.load(t), lr, dec))).value
            Pr.store(builder.select(live, x, p), t)
            Gr.store(zero, t)
        return context.get_dummy_value()

    return sig, codegen
