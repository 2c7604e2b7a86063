"""Dot products as explicit LLVM vector code, in the fixed eight-partial order.

Every reduction over a row in fastbp (``matmul.mm_nt``'s own loops, the
generated kernels' long dot products) uses one order: eight partial sums,
partial ``c`` adding the products at positions ``p = c (mod 8)`` in turn, then
added pairwise ``((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))``.  Written
as eight scalar accumulators, LLVM keeps them scalar (its SLP vectoriser does
not pack the chains), which costs one load pair per multiply-add.  Here the
eight partials are the eight lanes of one ``<8 x T>`` vector: the same IEEE
operations (a multiply, then an add: no fused multiply-add, as in the scalar
form) in the same order, so the result is bit-identical to the scalar form on
any CPU, at a vector load pair per eight multiply-adds.

``sum8(A, a, k8)`` is a plain sum, ``dot8(A, a, B, b, k8)`` one product;
``tile2x4`` a 2 x 4 tile of products (two rows of ``A``, loaded once each); ``dot8x4`` forms four products that
share the same ``A`` vector (rows of ``B`` ``bs`` apart), which hides the add
latency behind four independent chains and loads ``A`` once for four rows.
Offsets are flat element offsets (C-contiguous arrays, 1-D or 2-D; strided
1-D arrays take scalar code with the same sums); ``row_dot8`` and
``row_dot8x4`` take a row of a 2-D array of any layout.  ``k8`` is the length
covered, a multiple of 8 (callers add the tail themselves, in their own
order).  Offsets are not bounds-checked.
"""

from llvmlite import ir
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._config import JIT

_PARTS = 8


def flat_ok(*arys):
    """Whether every array is C-contiguous with one float dtype."""
    dt = arys[0].dtype if isinstance(arys[0], types.Array) else None
    return all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == dt
               and isinstance(dt, types.Float) for a in arys)


def _data(context, builder, aryty, value):
    from numba.np.arrayobj import make_array  # compile time only
    return make_array(aryty)(context, builder, value).data


def _vload(builder, data, off, vty, align):
    """The ``<8 x T>`` vector at element offset ``off`` of ``data`` (unaligned)."""
    p = builder.bitcast(builder.gep(data, [off], inbounds=True), vty.as_pointer())
    return builder.load(p, align=align)


def _pairwise(builder, vec):
    """``((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7))`` of an 8-lane vector."""
    parts = [builder.extract_element(vec, ir.Constant(ir.IntType(32), c)) for c in range(_PARTS)]
    while len(parts) > 1:
        parts = [builder.fadd(x, y) for x, y in zip(parts[::2], parts[1::2])]
    return parts[0]


def _codegen(ra, rb):
    """Codegen of the ``ra x rb`` dot products of ``ra`` rows of ``A`` (``as`` apart) with
    ``rb`` rows of ``B`` (``bs`` apart) over ``k8`` elements, each ``A`` vector loaded once
    for its ``rb`` products (``rb == 0``: the sum of one row of ``A``).  Arguments
    ``(A, a[, as], B, b[, bs], k8)``, or ``(A, a, k8)`` for a sum; the products come back
    row of ``A`` by row of ``A``."""

    def codegen(context, builder, sig, args):
        tA = sig.args[0]
        ints = iter(context.cast(builder, v, t, types.intp)
                    for v, t in zip(args, sig.args) if isinstance(t, types.Integer))
        arrays = [(v, t) for v, t in zip(args, sig.args) if isinstance(t, types.Array)]
        A = _data(context, builder, tA, arrays[0][0])
        a0 = next(ints)
        as_ = next(ints) if ra > 1 else None
        B = _data(context, builder, arrays[1][1], arrays[1][0]) if rb else None
        b0 = next(ints) if rb else None
        bs = next(ints) if rb > 1 else None
        k8 = next(ints)
        elem = context.get_data_type(tA.dtype)
        vty = ir.VectorType(elem, _PARTS)
        align = context.get_abi_sizeof(elem)
        zero = ir.Constant(vty, [ir.Constant(elem, 0.0)] * _PARTS)
        arow = [a0 if r == 0 else builder.add(a0, builder.mul(as_, as_.type(r)))
                for r in range(ra)]
        brow = [b0 if r == 0 else builder.add(b0, builder.mul(bs, bs.type(r)))
                for r in range(rb)]
        accs = []
        for _ in range(ra * max(rb, 1)):
            acc = cgutils.alloca_once(builder, vty)
            builder.store(zero, acc)
            accs.append(acc)

        def add(acc, v):
            builder.store(builder.fadd(builder.load(acc), v), acc)

        n8 = builder.sdiv(k8, k8.type(_PARTS))
        with cgutils.for_range(builder, n8) as loop:
            t = builder.mul(loop.index, loop.index.type(_PARTS))
            avs = [_vload(builder, A, builder.add(ar, t), vty, align) for ar in arow]
            if not rb:
                add(accs[0], avs[0])
            bvs = [_vload(builder, B, builder.add(br, t), vty, align) for br in brow]
            for i, av in enumerate(avs):
                for j, bv in enumerate(bvs):
                    add(accs[i * rb + j], builder.fmul(av, bv))
        sums = [_pairwise(builder, builder.load(acc)) for acc in accs]
        if len(sums) == 1:
            return sums[0]
        return context.make_tuple(builder, sig.return_type, sums)

    return codegen


@intrinsic
def _vdot(typingctx, A, a, B, b, k8):
    """``sum_{p < k8} A[a + p] * B[b + p]`` in the eight-partial order (``k8 % 8 == 0``)."""
    if not (flat_ok(A, B) and all(isinstance(v, types.Integer) for v in (a, b, k8))):
        return None
    return A.dtype(A, a, B, b, k8), _codegen(1, 1)


@intrinsic
def _vdot4(typingctx, A, a, B, b, bs, k8):
    """The four ``_vdot(A, a, B, b + r * bs, k8)``, ``r = 0..3``, as a tuple."""
    if not (flat_ok(A, B) and all(isinstance(v, types.Integer) for v in (a, b, bs, k8))):
        return None
    return types.UniTuple(A.dtype, 4)(A, a, B, b, bs, k8), _codegen(1, 4)


@intrinsic
def tile2x4(typingctx, A, a, as_, B, b, bs, k8):
    """The eight ``dot8(A, a + i * as_, B, b + r * bs, k8)``, ``i = 0..1``, ``r = 0..3``,
    as a tuple (``i`` major): a 2 x 4 tile of products (C-contiguous arrays only)."""
    if not (flat_ok(A, B) and all(isinstance(v, types.Integer) for v in (a, as_, b, bs, k8))):
        return None
    return types.UniTuple(A.dtype, 8)(A, a, as_, B, b, bs, k8), _codegen(2, 4)


@intrinsic
def _vsum(typingctx, A, a, k8):
    """``sum_{p < k8} A[a + p]`` in the eight-partial order (``k8 % 8 == 0``)."""
    if not (flat_ok(A) and all(isinstance(v, types.Integer) for v in (a, k8))):
        return None
    return A.dtype(A, a, k8), _codegen(1, 0)


def sum8(A, a, k8):
    """``sum_{p < k8} A[a + p]`` in the eight-partial order (typed below)."""


def dot8(A, a, B, b, k8):
    """``sum_{p < k8} A[a + p] * B[b + p]`` in the eight-partial order (typed below)."""


def dot8x4(A, a, B, b, bs, k8):
    """The four ``dot8(A, a, B, b + r * bs, k8)``, ``r = 0..3`` (typed below)."""


def row_dot8(X, r, B, b, k8):
    """``dot8`` of row ``r`` of the 2-D ``X`` with ``B[b:]`` (typed below)."""


def row_dot8x4(X, r, B, b, bs, k8):
    """``dot8x4`` of row ``r`` of the 2-D ``X`` with ``B`` (typed below)."""


@overload(dot8, jit_options=JIT)
def _dot8_impl(A, a, B, b, k8):
    if flat_ok(A, B):
        return lambda A, a, B, b, k8: _vdot(A, a, B, b, k8)
    if not (isinstance(A, types.Array) and isinstance(B, types.Array)
            and A.ndim == 1 and B.ndim == 1):
        return None

    def strided(A, a, B, b, k8):
        # the same sums as the vector form, one lane per scalar (strided 1-D arrays)
        T = A.dtype.type
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = T(0.0)
        for p in range(0, k8, 8):
            s0 += A[a + p] * B[b + p]
            s1 += A[a + p + 1] * B[b + p + 1]
            s2 += A[a + p + 2] * B[b + p + 2]
            s3 += A[a + p + 3] * B[b + p + 3]
            s4 += A[a + p + 4] * B[b + p + 4]
            s5 += A[a + p + 5] * B[b + p + 5]
            s6 += A[a + p + 6] * B[b + p + 6]
            s7 += A[a + p + 7] * B[b + p + 7]
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    return strided


@overload(sum8, jit_options=JIT)
def _sum8_impl(A, a, k8):
    if flat_ok(A):
        return lambda A, a, k8: _vsum(A, a, k8)

    def strided(A, a, k8):
        T = A.dtype.type
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = T(0.0)
        for p in range(a, a + k8, 8):
            s0, s1, s2, s3 = s0 + A[p], s1 + A[p + 1], s2 + A[p + 2], s3 + A[p + 3]
            s4, s5, s6, s7 = s4 + A[p + 4], s5 + A[p + 5], s6 + A[p + 6], s7 + A[p + 7]
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    return strided


@overload(dot8x4, jit_options=JIT)
def _dot8x4_impl(A, a, B, b, bs, k8):
    if flat_ok(A, B):
        return lambda A, a, B, b, bs, k8: _vdot4(A, a, B, b, bs, k8)

    def each(A, a, B, b, bs, k8):
        return (dot8(A, a, B, b, k8), dot8(A, a, B, b + bs, k8),
                dot8(A, a, B, b + 2 * bs, k8), dot8(A, a, B, b + 3 * bs, k8))
    return each


@overload(row_dot8, jit_options=JIT)
def _row_dot8_impl(X, r, B, b, k8):
    if flat_ok(X, B):
        return lambda X, r, B, b, k8: _vdot(X, r * X.shape[1], B, b, k8)
    return lambda X, r, B, b, k8: dot8(X[r], 0, B, b, k8)


@overload(row_dot8x4, jit_options=JIT)
def _row_dot8x4_impl(X, r, B, b, bs, k8):
    if flat_ok(X, B):
        return lambda X, r, B, b, bs, k8: _vdot4(X, r * X.shape[1], B, b, bs, k8)
    return lambda X, r, B, b, bs, k8: dot8x4(X[r], 0, B, b, bs, k8)


@intrinsic
def _vsqdiff(typingctx, A, a, B, b, k8):
    """``sum_{p < k8} (A[a + p] - B[b + p])**2`` in float64, in the eight-partial order."""
    if not (flat_ok(A, B) and all(isinstance(v, types.Integer) for v in (a, b, k8))):
        return None

    def codegen(context, builder, sig, args):
        av, a0, bv, b0, k8v = args
        a0, b0, k8v = (context.cast(builder, v, t, types.intp)
                       for v, t in zip((a0, b0, k8v), (sig.args[1], sig.args[3], sig.args[4])))
        elem = context.get_data_type(A.dtype)
        vty = ir.VectorType(elem, _PARTS)
        wide = ir.VectorType(ir.DoubleType(), _PARTS)
        align = context.get_abi_sizeof(elem)
        pa, pb = _data(context, builder, A, av), _data(context, builder, B, bv)
        acc = cgutils.alloca_once(builder, wide)
        builder.store(ir.Constant(wide, [ir.Constant(ir.DoubleType(), 0.0)] * _PARTS), acc)
        with cgutils.for_range(builder, builder.sdiv(k8v, k8v.type(_PARTS))) as loop:
            t = builder.mul(loop.index, loop.index.type(_PARTS))
            x = _vload(builder, pa, builder.add(a0, t), vty, align)
            y = _vload(builder, pb, builder.add(b0, t), vty, align)
            if elem != ir.DoubleType():
                x, y = builder.fpext(x, wide), builder.fpext(y, wide)
            r = builder.fsub(x, y)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(r, r)), acc)
        return _pairwise(builder, builder.load(acc))

    return types.float64(A, a, B, b, k8), codegen


def sqdiff8(A, a, B, b, k8):
    """``sum_{p < k8} (A[a + p] - B[b + p])**2``, each difference and square in float64
    (exact difference of two float32), summed in the eight-partial order (typed below;
    C-contiguous arrays of one dtype as vector code, others as the same sums in scalars)."""


@overload(sqdiff8, jit_options=JIT)
def _sqdiff8_impl(A, a, B, b, k8):
    if flat_ok(A, B):
        return lambda A, a, B, b, k8: _vsqdiff(A, a, B, b, k8)

    def strided(A, a, B, b, k8):
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for p in range(0, k8, 8):
            r0 = np.float64(A[a + p]) - np.float64(B[b + p])
            r1 = np.float64(A[a + p + 1]) - np.float64(B[b + p + 1])
            r2 = np.float64(A[a + p + 2]) - np.float64(B[b + p + 2])
            r3 = np.float64(A[a + p + 3]) - np.float64(B[b + p + 3])
            r4 = np.float64(A[a + p + 4]) - np.float64(B[b + p + 4])
            r5 = np.float64(A[a + p + 5]) - np.float64(B[b + p + 5])
            r6 = np.float64(A[a + p + 6]) - np.float64(B[b + p + 6])
            r7 = np.float64(A[a + p + 7]) - np.float64(B[b + p + 7])
            s0, s1, s2, s3 = s0 + r0 * r0, s1 + r1 * r1, s2 + r2 * r2, s3 + r3 * r3
            s4, s5, s6, s7 = s4 + r4 * r4, s5 + r5 * r5, s6 + r6 * r6, s7 + r7 * r7
        return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    return strided
