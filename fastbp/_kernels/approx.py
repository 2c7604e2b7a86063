"""Vectorisable exp, tanh and sigmoid for float32 kernels.

LLVM cannot vectorise loops that call libm's ``expf``/``tanhf`` (no vector
math library is linked), and ``tanhf`` alone costs ~30 ns an element.  For
float32 these branch-free versions (range reduction + Taylor polynomials,
a few ulp of error) let activation loops run as SIMD code.  float64 keeps
libm's correctly rounded functions: it is the precision users pick for
accuracy.  NaN propagates; overflow gives inf, underflow 0.

``vexp``, ``vtanh`` and ``vsigmoid`` are dispatched on the argument type at
compile time, so kernels call them for both dtypes.
"""

import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from .._config import JIT

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_EXP_MAX = 88.72283
_EXP_MIN = -87.33654


@intrinsic
def _float32_bits(typingctx, x):
    """The bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return types.int32(types.float32), codegen


@intrinsic
def _int_bits_to_float32(typingctx, i):
    """Reinterpret the low 32 bits of an integer as a float32."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        if sig.args[0].bitwidth > 32:
            v = builder.trunc(v, context.get_value_type(types.int32))
        return builder.bitcast(v, context.get_value_type(types.float32))

    return types.float32(i), codegen


def vexp(x):
    """``exp(x)``; a polynomial approximation for float32 (<= 1.5 ulp)."""
    return math.exp(x)


def vtanh(x):
    """``tanh(x)``; a polynomial/exp approximation for float32 (<= 2 ulp)."""
    return math.tanh(x)


def vsigmoid(x):
    """``1 / (1 + exp(-x))``, stable at both ends."""
    return 1.0 / (1.0 + math.exp(-x))


def _exp32(x):
    f = np.float32
    xc = min(max(x, f(_EXP_MIN)), f(_EXP_MAX))
    # k = round(xc / ln2): the argument of the truncating conversion is
    # positive, so truncation is floor (and, unlike math.floor, vectorises)
    ki = np.int32(xc * f(_LOG2E) + f(128.5)) - np.int32(128)
    # r = xc - k ln2 in float64: exact enough whatever fast-math reassociates
    r = f(float(xc) - float(ki) * _LN2)
    # Taylor series of e^r to r^7 / 7! on |r| <= ln2 / 2
    p = f(1.0 / 5040.0)
    p = p * r + f(1.0 / 720.0)
    p = p * r + f(1.0 / 120.0)
    p = p * r + f(1.0 / 24.0)
    p = p * r + f(1.0 / 6.0)
    p = p * r + f(0.5)
    p = p * r + f(1.0)
    p = p * r + f(1.0)
    # p * 2^k by adding k to p's exponent field (p is in [0.7, 1.42], and
    # xc's range keeps the result a normal float32 or exactly overflowing)
    y = _int_bits_to_float32(_float32_bits(p) + (ki << 23))
    y = f(np.inf) if x > f(_EXP_MAX) else y
    y = f(0.0) if x < f(_EXP_MIN) else y
    return x if x != x else y


def _tanh32(x):
    f = np.float32
    a = abs(x)
    # |x| < 0.5: odd Taylor series to x^15 (next term below 2e-8 relative)
    z = x * x
    p = f(-929569.0 / 638512875.0)
    p = p * z + f(21844.0 / 6081075.0)
    p = p * z + f(-1382.0 / 155925.0)
    p = p * z + f(62.0 / 2835.0)
    p = p * z + f(-17.0 / 315.0)
    p = p * z + f(2.0 / 15.0)
    p = p * z + f(-1.0 / 3.0)
    small = x + x * z * p
    e = vexp(f(2.0) * min(a, f(10.0)))
    big = f(1.0) - f(2.0) / (e + f(1.0))
    big = big if x >= f(0.0) else -big
    y = small if a < f(0.5) else big
    return x if x != x else y


def _sigmoid32(x):
    f = np.float32
    return f(1.0) / (f(1.0) + vexp(-x))


def _sigmoid64(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _register(generic, f32, f64):
    @overload(generic, jit_options=JIT)
    def _impl(x):
        if x == types.float32:
            return f32
        if isinstance(x, types.Float):
            return f64
        return None


_register(vexp, _exp32, lambda x: math.exp(x))
_register(vtanh, _tanh32, lambda x: math.tanh(x))
_register(vsigmoid, _sigmoid32, _sigmoid64)
