"""Activation functions fused with the bias add, and their derivatives.

``bias_act`` turns ``A`` (holding ``X @ W.T``) into ``f(A + b)`` in one pass;
``mul_act_grad`` multiplies a delta by ``f'(z)`` while deltas propagate.  Every
derivative is computed from the output ``a`` except GELU's, which needs ``z``.
float32 uses the vectorisable exp/tanh of ``approx.py``.
Softmax appears only on the output layer (``losses`` fuses its Jacobian into
the loss delta; ``mul_act_grad`` applies it for input Jacobians).
"""

import math

from numba import njit

from .._config import JIT, JIT_INLINE
from ..spec import ELU, EXP, GELU, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, SOFTPLUS, TANH
from .approx import vexp, vsigmoid, vtanh

_GELU_C = math.sqrt(2.0 / math.pi)
#: The cubic coefficient of the tanh form of GELU.
_GELU_K3 = 0.044715


@njit(**JIT)
def _softplus(z):
    """Numerically stable log(1 + e^z)."""
    return max(z, type(z)(0.0)) + math.log1p(math.exp(-abs(z)))


@njit(**JIT_INLINE)
def act(z, code, alpha):
    """Activation code applied to the scalar z."""
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
        return _softplus(z)
    if code == GELU:
        return T(0.5) * z * (T(1.0) + vtanh(T(_GELU_C) * (z + T(_GELU_K3) * z * z * z)))
    if code == EXP:
        return vexp(z)
    return z


@njit(**JIT_INLINE)
def dact(a, z, code, alpha):
    """f'(z) from the output ``a`` (and ``z`` for GELU)."""
    T = type(a)
    if code == SIGMOID:
        return a * (T(1.0) - a)
    if code == TANH:
        return T(1.0) - a * a
    if code == RELU:
        return T(1.0) if a > T(0.0) else T(0.0)
    if code == LEAKY_RELU:
        return T(1.0) if a > T(0.0) else T(alpha)
    if code == ELU:
        return T(1.0) if a > T(0.0) else a + T(alpha)
    if code == SOFTPLUS:
        return -math.expm1(-a)
    if code == GELU:
        c = T(_GELU_C)
        k = T(_GELU_K3)
        t = vtanh(c * (z + k * z * z * z))
        return T(0.5) * (T(1.0) + t) + T(0.5) * z * (T(1.0) - t * t) * c * (T(1.0) + T(3.0) * k * z * z)
    return T(1.0)


@njit(**JIT)
def bias_act(A, b, act, alpha, pre, keep_pre, add_bias):
    """In place ``A <- f(A + b)`` row by row (``f(A)`` unless ``add_bias``);
    ``pre`` receives the activation's input when ``keep_pre``."""
    T = A.dtype.type
    n, m = A.shape
    al = T(alpha)
    zero = T(0.0)
    one = T(1.0)
    half = T(0.5)
    c = T(_GELU_C)
    k3 = T(_GELU_K3)
    for i in range(n):
        row = A[i]
        if add_bias:
            for j in range(m):
                row[j] += b[j]
        if keep_pre:
            p = pre[i]
            for j in range(m):
                p[j] = row[j]
        if act == IDENTITY:
            pass
        elif act == RELU:
            for j in range(m):
                row[j] = max(row[j], zero)
        elif act == SIGMOID:
            for j in range(m):
                row[j] = vsigmoid(row[j])
        elif act == TANH:
            for j in range(m):
                row[j] = vtanh(row[j])
        elif act == LEAKY_RELU:
            for j in range(m):
                z = row[j]
                row[j] = z if z > zero else al * z
        elif act == ELU:
            for j in range(m):
                z = row[j]
                row[j] = z if z > zero else al * math.expm1(z)
        elif act == SOFTPLUS:
            for j in range(m):
                row[j] = _softplus(row[j])
        elif act == GELU:
            for j in range(m):
                z = row[j]
                row[j] = half * z * (one + vtanh(c * (z + k3 * z * z * z)))
        elif act == EXP:
            for j in range(m):
                row[j] = vexp(row[j])
        elif act == SOFTMAX:
            mx = row[0]
            for j in range(1, m):
                mx = max(mx, row[j])
            s = zero
            for j in range(m):
                e = vexp(row[j] - mx)
                row[j] = e
                s += e
            inv = one / s
            for j in range(m):
                row[j] *= inv


@njit(**JIT)
def mul_act_grad(D, A, pre, act, alpha):
    """In place ``D <- D * f'(z)`` where ``A = f(z)`` (``pre = z`` for GELU; softmax: ``D @ J``)."""
    T = D.dtype.type
    n, m = D.shape
    al = T(alpha)
    zero = T(0.0)
    one = T(1.0)
    half = T(0.5)
    c = T(_GELU_C)
    k3 = T(_GELU_K3)
    if act == IDENTITY:
        return
    for i in range(n):
        d = D[i]
        a = A[i]
        if act == RELU:
            for j in range(m):
                d[j] = d[j] if a[j] > zero else zero
        elif act == SIGMOID:
            for j in range(m):
                d[j] *= a[j] * (one - a[j])
        elif act == TANH:
            for j in range(m):
                d[j] *= one - a[j] * a[j]
        elif act == LEAKY_RELU:
            for j in range(m):
                d[j] *= one if a[j] > zero else al
        elif act == ELU:
            for j in range(m):
                d[j] *= one if a[j] > zero else a[j] + al
        elif act == SOFTPLUS:
            for j in range(m):
                d[j] *= -math.expm1(-a[j])
        elif act == EXP:
            for j in range(m):
                d[j] *= a[j]
        elif act == GELU:
            p = pre[i]
            for j in range(m):
                z = p[j]
                t = vtanh(c * (z + k3 * z * z * z))
                d[j] *= half * (one + t) + half * z * (one - t * t) * c * (one + T(3.0) * k3 * z * z)
        elif act == SOFTMAX:  # Jacobian-vector product: d <- a * (d - <d, a>)
            s = zero
            for j in range(m):
                s += d[j] * a[j]
            for j in range(m):
                d[j] = a[j] * (d[j] - s)
