"""Activation functions and their derivatives, each written once.

``act`` is ``f(z)`` and ``mul_dact`` is ``d * f'(z)`` for one scalar; every
engine (``bias_act`` / ``mul_act_grad`` here for the general path,
``small.py``, ``lanes.py``) is a loop around them (``act_range``,
``act_inplace`` and ``mul_dact_range`` give each activation its own
vectorised loop).  Every derivative is computed from the output ``a`` except
GELU's, which needs ``z``.  float32 uses the vectorisable exp/tanh of
``approx.py``.

Softmax acts on a whole row (``softmax_row``; its Jacobian-vector product is
``softmax_jvp``) and appears only on the output layer, where ``losses`` fuses
its Jacobian into the loss delta; ``mul_act_grad`` applies it for input
Jacobians.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import JIT, JIT_INLINE, JIT_NO_NRT
from ..spec import ELU, EXP, GELU, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, SOFTPLUS, TANH
from .approx import vexp, vsigmoid, vtanh
from .runtime import runtime
from .vdot import sum8
from .views import view1d

_GELU_C = math.sqrt(2.0 / math.pi)
#: The cubic coefficient of the tanh form of GELU.
_GELU_K3 = 0.044715


@njit(**JIT)
def softplus(z):
    """Numerically stable log(1 + e^z)."""
    return max(z, type(z)(0.0)) + math.log1p(math.exp(-abs(z)))


@njit(**JIT)
def _gelu_tanh(z):
    """The tanh of GELU's tanh form, ``tanh(c (z + k z^3))``."""
    T = type(z)
    return vtanh(T(_GELU_C) * (z + T(_GELU_K3) * z * z * z))


@njit(**JIT)
def act(z, code, alpha):
    """Activation code applied to the scalar z (softmax: see ``softmax_row``)."""
    T = type(z)
    if code == SIGMOID:
        return vsigmoid(z)
    if code == TANH:
        return vtanh(z)
    if code == RELU:
        return max(z, T(0.0))
    if code == LEAKY_RELU:
        return z if z > T(0.0) else T(alpha) * z
    if code == ELU:
        return z if z > T(0.0) else T(alpha) * math.expm1(z)
    if code == SOFTPLUS:
        return softplus(z)
    if code == GELU:
        return T(0.5) * z * (T(1.0) + _gelu_tanh(z))
    if code == EXP:
        return vexp(z)
    return z


@njit(**JIT)
def mul_dact(d, a, z, code, alpha):
    """``d * f'(z)`` from the output ``a = f(z)`` (and ``z`` for GELU).

    ReLU selects (``d`` where ``a > 0``, else 0), so a non-finite ``d`` at an
    inactive unit does not spread; identity and softmax return ``d``.
    """
    T = type(a)
    if code == RELU:
        return d if a > T(0.0) else T(0.0)
    if code == SIGMOID:
        return d * (a * (T(1.0) - a))
    if code == TANH:
        return d * (T(1.0) - a * a)
    if code == LEAKY_RELU:
        return d * (T(1.0) if a > T(0.0) else T(alpha))
    if code == ELU:
        return d * (T(1.0) if a > T(0.0) else a + T(alpha))
    if code == SOFTPLUS:
        return d * -math.expm1(-a)
    if code == GELU:
        c = T(_GELU_C)
        k = T(_GELU_K3)
        t = _gelu_tanh(z)
        return d * (T(0.5) * (T(1.0) + t)
                    + T(0.5) * z * (T(1.0) - t * t) * c * (T(1.0) + T(3.0) * k * z * z))
    if code == EXP:
        return d * a
    return d


# The range functions dispatch with the code as a constant in each branch, so
# LLVM, inlining act / mul_dact, folds their dispatch out of the loop and
# vectorises it.  The constant goes in as ``runtime(CODE)``: a literal would
# type-specialise act / mul_dact once per code (nine compilations of each).
# Unsigned indices: Numba then skips negative-index wraparound, which would
# otherwise stop the vectoriser.  They are compiled once per array type (not
# IR-inlined into every caller, which multiplied compile times).

@njit(**JIT_INLINE)
def _act_by_code(Y, X, lo, hi, code, alpha):
    """``Y[lo:hi] <- f(X[lo:hi])`` on flat arrays (not softmax)."""
    lo = np.uint64(lo)
    hi = np.uint64(hi)
    if code == RELU:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(RELU), alpha)
    elif code == SIGMOID:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(SIGMOID), alpha)
    elif code == TANH:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(TANH), alpha)
    elif code == LEAKY_RELU:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(LEAKY_RELU), alpha)
    elif code == ELU:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(ELU), alpha)
    elif code == SOFTPLUS:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(SOFTPLUS), alpha)
    elif code == GELU:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(GELU), alpha)
    elif code == EXP:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(EXP), alpha)
    else:
        for e in range(lo, hi):
            Y[e] = act(X[e], runtime(IDENTITY), alpha)


@njit(**JIT_NO_NRT)
def act_range(Y, X, lo, hi, code, alpha):
    """``Y[lo:hi] <- f(X[lo:hi])`` on flat arrays (not softmax; ``Y`` and ``X`` distinct)."""
    _act_by_code(Y, X, lo, hi, code, alpha)


@njit(**JIT_NO_NRT)
def act_inplace(Y, lo, hi, code, alpha):
    """``Y[lo:hi] <- f(Y[lo:hi])`` (not softmax).  One array, so LLVM vectorises
    without the overlap check that ``act_range(Y, Y, ...)`` would fail."""
    _act_by_code(Y, Y, lo, hi, code, alpha)


@njit(**JIT_NO_NRT)
def mul_dact_range(D, A, Z, lo, hi, code, alpha):
    """``D[lo:hi] <- D * f'(Z)`` on flat arrays, ``A = f(Z)`` (not softmax)."""
    lo = np.uint64(lo)
    hi = np.uint64(hi)
    if code == RELU:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(RELU), alpha)
    elif code == SIGMOID:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(SIGMOID), alpha)
    elif code == TANH:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(TANH), alpha)
    elif code == LEAKY_RELU:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(LEAKY_RELU), alpha)
    elif code == ELU:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(ELU), alpha)
    elif code == SOFTPLUS:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(SOFTPLUS), alpha)
    elif code == GELU:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(GELU), alpha)
    elif code == EXP:
        for e in range(lo, hi):
            D[e] = mul_dact(D[e], A[e], Z[e], runtime(EXP), alpha)


@njit(**JIT_INLINE)
def row_max(Z, zo, m):
    """``max(Z[zo:zo+m])`` (``m >= 1``), as eight interleaved partial maxima (the same value
    in any order): independent chains instead of one latency-bound chain."""
    m8 = m - m % 8
    if m8 == 0:
        mx = Z[zo]
        for j in range(zo + 1, zo + m):
            mx = max(mx, Z[j])
        return mx
    a0, a1, a2, a3 = Z[zo], Z[zo + 1], Z[zo + 2], Z[zo + 3]
    a4, a5, a6, a7 = Z[zo + 4], Z[zo + 5], Z[zo + 6], Z[zo + 7]
    for j in range(zo + 8, zo + m8, 8):
        a0, a1, a2, a3 = max(a0, Z[j]), max(a1, Z[j + 1]), max(a2, Z[j + 2]), max(a3, Z[j + 3])
        a4, a5, a6, a7 = (max(a4, Z[j + 4]), max(a5, Z[j + 5]), max(a6, Z[j + 6]),
                          max(a7, Z[j + 7]))
    mx = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
    for j in range(zo + m8, zo + m):
        mx = max(mx, Z[j])
    return mx


@njit(**JIT_INLINE)
def row_sum(A, ao, m):
    """``sum(A[ao:ao+m])`` in ``A``'s precision: ``vdot.sum8``'s eight partial sums, then the
    tail (``matmul.mm_nt``'s order; fixed, the same on every CPU)."""
    m8 = m - m % 8
    s = sum8(A, ao, m8)
    for j in range(ao + m8, ao + m):
        s += A[j]
    return s


@njit(**JIT_INLINE)
def exp_shifted(Z, zo, A, ao, m, mx):
    """``A[ao+j] <- exp(Z[zo+j] - mx)`` for ``j < m`` (may be in place); returns their
    ``row_sum``."""
    for j in range(m):
        A[ao + j] = vexp(Z[zo + j] - mx)
    return row_sum(A, ao, m)


@njit(**JIT_INLINE)
def softmax_row(Z, zo, A, ao, m):
    """``A[ao:ao+m] <- softmax(Z[zo:zo+m])``, shifted by the row maximum (may be in place)."""
    T = A.dtype.type
    inv = T(1.0) / exp_shifted(Z, zo, A, ao, m, row_max(Z, zo, m))
    for j in range(m):
        A[ao + j] *= inv


@njit(**JIT)
def softmax_jvp(a, d, s):
    """Softmax Jacobian-vector product, one component: ``a * (d - s)`` with ``s = <d, a>``."""
    return a * (d - s)


def _act_rows(A, code, alpha):
    """``A <- f(A)`` on every row of the 2-D ``A`` (not softmax): one flat range for a
    C-contiguous ``A`` (the vector loop spans rows: narrow layers have no vector rows of
    their own), else row by row (typed below; the same numbers either way)."""


@overload(_act_rows, jit_options=JIT_NO_NRT)
def _act_rows_impl(A, code, alpha):
    if isinstance(A, types.Array) and A.layout == "C":
        return lambda A, code, alpha: act_inplace(view1d(A), 0, A.shape[0] * A.shape[1],
                                                  code, alpha)

    def rows(A, code, alpha):
        for i in range(A.shape[0]):
            act_inplace(A[i], 0, A.shape[1], code, alpha)
    return rows


def _mul_dact_rows(D, A, Z, code, alpha):
    """``D <- D * f'(Z)`` on every row (``A = f(Z)``, not softmax), as ``_act_rows``."""


@overload(_mul_dact_rows, jit_options=JIT_NO_NRT)
def _mul_dact_rows_impl(D, A, Z, code, alpha):
    if all(isinstance(x, types.Array) and x.layout == "C" for x in (D, A, Z)):
        return lambda D, A, Z, code, alpha: mul_dact_range(
            view1d(D), view1d(A), view1d(Z), 0, D.shape[0] * D.shape[1], code, alpha)

    def rows(D, A, Z, code, alpha):
        for i in range(D.shape[0]):
            mul_dact_range(D[i], A[i], Z[i], 0, D.shape[1], code, alpha)
    return rows


@njit(**JIT_NO_NRT)
def bias_act(A, b, code, alpha, pre, keep_pre, add_bias):
    """In place ``A <- f(A + b)`` for every row (``f(A)`` unless ``add_bias``);
    ``pre`` receives the activation's input when ``keep_pre``."""
    n, m = A.shape
    if add_bias:
        for i in range(n):
            for j in range(m):
                A[i, j] += b[j]
    if keep_pre:
        for i in range(n):
            for j in range(m):
                pre[i, j] = A[i, j]
    if code == SOFTMAX:
        for i in range(n):
            row = A[i]
            softmax_row(row, 0, row, 0, m)
    elif code != IDENTITY:
        _act_rows(A, code, alpha)


@njit(**JIT_NO_NRT)
def mul_act_grad(D, A, pre, code, alpha):
    """In place ``D <- D * f'(z)`` where ``A = f(z)`` (``pre = z`` for GELU; softmax: ``D @ J``)."""
    if code == IDENTITY:
        return
    if code != SOFTMAX:
        _mul_dact_rows(D, A, pre, code, alpha)
        return
    for i in range(D.shape[0]):
        d = D[i]
        a = A[i]
        s = D.dtype.type(0.0)
        for j in range(D.shape[1]):
            s += d[j] * a[j]
        for j in range(D.shape[1]):
            d[j] = softmax_jvp(a[j], d[j], s)
