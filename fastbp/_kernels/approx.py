"""Vectorisable exp, tanh and sigmoid for float32 kernels.

LLVM cannot vectorise loops that call libm's ``expf``/``tanhf`` (no vector
math library is linked), and ``tanhf`` alone costs ~30 ns an element.  For
float32 these branch-free versions (range reduction + polynomials, a few ulp
of error) let activation loops run as SIMD code.  The scalar float64
functions keep libm's correctly rounded results: it is the precision users
pick for accuracy.  NaN propagates; overflow gives inf, underflow 0.

``vexp``, ``vtanh`` and ``vsigmoid`` are dispatched on the argument type at
compile time, so kernels call them for both dtypes.

The float32 versions are emitted as LLVM IR by one generator (``ExpMath``)
that works on a scalar ``float`` or on a ``<n x float>`` vector: the scalar
intrinsics serve loops LLVM vectorises, and ``simd.py`` applies the same code
to whole rows of networks.  With double constants (``_F64``: Taylor to
``r**13``) the generator also serves float64 rows in ``simd.py`` (3-4 ulp,
where a libm call per element would cost ~20 ns).  The IR carries no
fast-math flags, so its result does not depend on how the surrounding
kernel is compiled.

* exp: ``x = k ln2 + r`` (``k`` rounded with the 1.5 * 2**23 trick, ``ln2``
  split in two so ``k * C1`` is exact), ``e**r - 1 = r + r**2 P(r)`` with a
  fitted degree-5 ``P`` on ``|r| <= ln2 / 2``, then ``k`` added to the
  exponent field.
* tanh: ``expm1(2x) / (expm1(2x) + 2)`` with ``|x|`` clamped to 10 (where
  tanh rounds to +-1): one path, accurate near 0 because expm1 is.
* sigmoid: ``1 / (1 + exp(-x))``.
"""

import math

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._config import JIT

_LOG2E = 1.4426950408889634


class _Consts:
    """Per-precision constants of the exp-based functions."""

    def __init__(self, bits, mant, c1, c2, exp_max, exp_min, tanh_clamp, coefs):
        self.bits, self.mant = bits, mant
        self.c1 = c1                          # ln 2 to few bits: k * c1 is exact
        self.c2 = c2                          # ln 2 - c1 (from ln 2 to 50 digits)
        self.magic = 1.5 * 2.0 ** mant        # adding it rounds to an integer
        self.exp_max, self.exp_min = exp_max, exp_min  # e**exp_min: smallest normal
        self.tanh_clamp = tanh_clamp          # tanh rounds to 1 beyond it
        self.coefs = coefs                    # (e**r - 1 - r) / r**2, highest power first


_F32 = _Consts(
    32, 23, 0.693359375, -2.1219444005469057e-04, 88.72283, -87.33654, 10.0,
    # degree 5, fitted for the least maximum relative error of e**r - 1 on
    # |r| <= 1.02 ln2 / 2 (a Lawson-weighted Chebyshev fit: 3e-10 relative;
    # Taylor needs degree 6 for that)
    (1.9845896164908078e-04, 1.3942660476870359e-03, 8.333394127212113e-03,
     4.166633645957785e-02, 1.666666633321842e-01, 5.000000049552143e-01))
_F64 = _Consts(
    64, 52, 0.693145751953125, 1.4286068203094173e-06, 709.782712893384,
    -708.3964185322641, 20.0,
    # Taylor to r**13: truncation 1e-17 relative on |r| <= ln2 / 2
    tuple(1.0 / math.factorial(n) for n in range(13, 1, -1)))


class ExpMath:
    """exp / expm1 / tanh / sigmoid as IR on a float or double, scalar or vector."""

    def __init__(self, builder, ty, fast_recip=False):
        self.b = builder
        self.ty = ty
        n = ty.count if isinstance(ty, ir.VectorType) else None
        elem = ty.element if n else ty
        self.k = _F64 if isinstance(elem, ir.DoubleType) else _F32
        # AVX-512's 14-bit reciprocal estimate and one correction step
        # instead of a division (whose throughput bounds tanh on wide vectors)
        self.fast_recip = bool(fast_recip and n and n % 16 == 0 and self.k is _F32)
        iw = ir.IntType(self.k.bits)
        self.ity = ir.VectorType(iw, n) if n else iw
        fsuf = f"f{self.k.bits}"
        suffix = f"v{n}{fsuf}" if n else fsuf
        self.fma_fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ty, [ty, ty, ty]), "llvm.fmuladd." + suffix)

    def c(self, v):
        """A float constant (splat for vectors)."""
        if isinstance(self.ty, ir.VectorType):
            return ir.Constant(self.ty, [ir.Constant(self.ty.element, v)] * self.ty.count)
        return ir.Constant(self.ty, v)

    def ci(self, v):
        if isinstance(self.ity, ir.VectorType):
            return ir.Constant(self.ity, [ir.Constant(self.ity.element, v)] * self.ity.count)
        return ir.Constant(self.ity, v)

    def fma(self, a, x, y):
        return self.b.call(self.fma_fn, [a, x, y])

    def clamp(self, x, lo, hi):
        b = self.b
        x = b.select(b.fcmp_ordered(">", x, self.c(hi)), self.c(hi), x)
        return b.select(b.fcmp_ordered("<", x, self.c(lo)), self.c(lo), x)

    def _reduce(self, x):
        """``(k as int32, r)`` with ``x = k ln2 + r``, ``|r| <~ ln2 / 2``."""
        b = self.b
        k = self.k
        t = self.fma(x, self.c(_LOG2E), self.c(k.magic))
        kf = b.fsub(t, self.c(k.magic))
        ki = b.sub(b.bitcast(t, self.ity), b.bitcast(self.c(k.magic), self.ity))
        r = self.fma(kf, self.c(-k.c1), x)
        r = self.fma(kf, self.c(-k.c2), r)
        return ki, r

    def _expm1_r(self, r):
        """``e**r - 1`` for ``|r| <~ ln2 / 2``."""
        p = self.c(self.k.coefs[0])
        for coef in self.k.coefs[1:]:
            p = self.fma(p, r, self.c(coef))
        return self.fma(self.b.fmul(r, r), p, r)

    def _scale(self, x, ki):
        """``x * 2**k`` by adding ``k`` to the exponent field (stays normal here)."""
        b = self.b
        bits = b.add(b.bitcast(x, self.ity), b.shl(ki, self.ci(self.k.mant)))
        return b.bitcast(bits, self.ty)

    def exp(self, x):
        b = self.b
        k = self.k
        ki, r = self._reduce(self.clamp(x, k.exp_min, k.exp_max))
        y = self._scale(b.fadd(self._expm1_r(r), self.c(1.0)), ki)
        y = b.select(b.fcmp_ordered(">", x, self.c(k.exp_max)), self.c(math.inf), y)
        y = b.select(b.fcmp_ordered("<", x, self.c(k.exp_min)), self.c(0.0), y)
        return b.select(b.fcmp_unordered("uno", x, x), x, y)

    def tanh(self, x):
        b = self.b
        sign = self.ci(-(1 << (self.k.bits - 1)))
        xb = b.bitcast(x, self.ity)
        a = b.bitcast(b.and_(xb, b.not_(sign)), self.ty)   # |x|: tanh is odd
        clamp = self.c(self.k.tanh_clamp)
        a = b.select(b.fcmp_ordered(">", a, clamp), clamp, a)
        ki, r = self._reduce(b.fmul(a, self.c(2.0)))
        s = self._scale(self.c(1.0), ki)                      # 2**k, 0 <= k <= 58
        em1 = self.fma(s, self._expm1_r(r), b.fsub(s, self.c(1.0)))
        t = self.div(em1, b.fadd(em1, self.c(2.0)), finite=True)
        # NaN stays NaN through every step; the sign goes back on
        return b.bitcast(b.or_(b.bitcast(t, self.ity), b.and_(xb, sign)), self.ty)

    def sigmoid(self, x):
        b = self.b
        return self.div(self.c(1.0), b.fadd(self.c(1.0), self.exp(b.fneg(x))))

    def div(self, x, d, finite=False):
        """``x / d`` for finite ``x`` and positive ``d`` (normal, or inf unless ``finite``)."""
        b = self.b
        if not self.fast_recip:
            return b.fdiv(x, d)
        v16 = ir.VectorType(self.ty.element, 16)
        fn = cgutils.get_or_insert_function(
            b.module, ir.FunctionType(v16, [v16, v16, ir.IntType(16)]),
            "llvm.x86.avx512.rcp14.ps.512")
        parts = []
        for h in range(self.ty.count // 16):
            idx = ir.Constant(ir.VectorType(ir.IntType(32), 16), list(range(16 * h, 16 * h + 16)))
            dh = b.shuffle_vector(d, d, idx)
            parts.append(b.call(fn, [dh, dh, ir.Constant(ir.IntType(16), -1)]))
        while len(parts) > 1:  # concatenate the halves back
            pairs = []
            for a, c in zip(parts[::2], parts[1::2]):
                n = a.type.count
                idx = ir.Constant(ir.VectorType(ir.IntType(32), 2 * n), list(range(2 * n)))
                pairs.append(b.shuffle_vector(a, c, idx))
            parts = pairs
        r = parts[0]
        q = b.fmul(x, r)                          # to 2**-14, then one correction:
        res = self.fma(b.fneg(d), q, x)           # q + r (x - d q), error ~2**-28
        q = self.fma(r, res, q)
        if finite:
            return q
        return b.select(b.fcmp_ordered("==", d, self.c(math.inf)), self.c(0.0), q)


def _f32_intrinsic(method):
    @intrinsic
    def scalar(typingctx, x):
        if x != types.float32:
            return None

        def codegen(context, builder, sig, args):
            return getattr(ExpMath(builder, args[0].type), method)(args[0])

        return types.float32(types.float32), codegen

    return scalar


_exp32 = _f32_intrinsic("exp")
_tanh32 = _f32_intrinsic("tanh")
_sigmoid32 = _f32_intrinsic("sigmoid")


def vexp(x):
    """``exp(x)``; a polynomial approximation for float32 (<= 1.5 ulp)."""
    return math.exp(x)


def vtanh(x):
    """``tanh(x)``; an expm1-based approximation for float32 (<= 2.5 ulp)."""
    return math.tanh(x)


def vsigmoid(x):
    """``1 / (1 + exp(-x))``, stable at both ends."""
    return 1.0 / (1.0 + math.exp(-x))


def _sigmoid64(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _tanh64(x):
    """float64 tanh: the scalar form and the tuple form of ``vtanh`` share it."""
    return math.tanh(x)


def _register(generic, f32, f64):
    @overload(generic, jit_options=JIT)
    def _impl(x):
        if x == types.float32:
            return lambda x: f32(x)
        if isinstance(x, types.Float):
            return f64
        return None


def _tuple_intrinsic(method, scalar64):
    """An intrinsic: ``method`` of every element of a tuple of floats, as a tuple.

    float32: the elements go into one vector (padded to a power of two, at
    least 4) and through ``ExpMath`` with IEEE division, so each is bit for
    bit the scalar float32 function; float64: ``scalar64`` on each element,
    the scalar float64 function itself.
    """
    @intrinsic
    def impl(typingctx, t):
        if not (isinstance(t, types.UniTuple) and t.dtype in (types.float32, types.float64)):
            return None

        def codegen(context, builder, sig, args):
            n = sig.args[0].count
            vals = cgutils.unpack_tuple(builder, args[0], n)
            if sig.args[0].dtype == types.float64:
                fsig = types.float64(types.float64)
                res = [context.compile_internal(builder, scalar64, fsig, [v]) for v in vals]
            else:
                vty = ir.VectorType(ir.FloatType(), max(4, 1 << (n - 1).bit_length()))
                vec = ir.Constant(vty, [ir.Constant(ir.FloatType(), 0.0)] * vty.count)
                for i, v in enumerate(vals):
                    vec = builder.insert_element(vec, v, ir.Constant(ir.IntType(32), i))
                out = getattr(ExpMath(builder, vty), method)(vec)
                res = [builder.extract_element(out, ir.Constant(ir.IntType(32), i))
                       for i in range(n)]
            return context.make_tuple(builder, sig.return_type, res)

        return t(t), codegen

    return impl


#: ``vsigmoid`` / ``vtanh`` of every element of a float tuple (the generated register
#: kernel's layers: one vector in float32, bit for bit the scalar results).
sigmoid_tuple = _tuple_intrinsic("sigmoid", _sigmoid64)
tanh_tuple = _tuple_intrinsic("tanh", _tanh64)


_register(vexp, _exp32, lambda x: math.exp(x))
_register(vtanh, _tanh32, _tanh64)
_register(vsigmoid, _sigmoid32, _sigmoid64)
