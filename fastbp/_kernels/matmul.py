"""The three matrix products of backpropagation, each BLAS or register loops.

* ``mm_nt``: ``C <- alpha * A @ B.T + beta * C``  (forward:  X @ W.T)
* ``mm_nn``: ``C <- alpha * A @ B   + beta * C``  (deltas:   D @ W)
* ``mm_tn``: ``C <- alpha * A.T @ B + beta * C``  (weights:  D.T @ X, fused update)

Products below ``SMALL_GEMM_MACS`` multiply-adds run as plain loops: for tiny
layers the BLAS call overhead dominates the arithmetic.
"""

from numba import njit

from .._config import JIT, SMALL_GEMM_MACS
from .blas import gemm


@njit(**JIT)
def _scale(beta, C):
    T = C.dtype.type
    bt = T(beta)
    if bt == T(1.0):
        return
    n, m = C.shape
    for i in range(n):
        for j in range(m):
            C[i, j] = C[i, j] * bt if bt != T(0.0) else T(0.0)


@njit(**JIT)
def mm_nt(alpha, A, B, beta, C):
    """``C <- alpha * A @ B.T + beta * C``."""
    n, k = A.shape
    m = B.shape[0]
    if n * m * k >= SMALL_GEMM_MACS:
        gemm(False, True, alpha, A, B, beta, C)
        return
    T = C.dtype.type
    al = T(alpha)
    _scale(beta, C)
    for i in range(n):
        a = A[i]
        for j in range(m):
            b = B[j]
            s = T(0.0)
            for p in range(k):
                s += a[p] * b[p]
            C[i, j] += al * s


@njit(**JIT)
def mm_nn(alpha, A, B, beta, C):
    """``C <- alpha * A @ B + beta * C``."""
    n, k = A.shape
    m = B.shape[1]
    if n * m * k >= SMALL_GEMM_MACS:
        gemm(False, False, alpha, A, B, beta, C)
        return
    T = C.dtype.type
    al = T(alpha)
    _scale(beta, C)
    for i in range(n):
        c = C[i]
        for p in range(k):
            s = al * A[i, p]
            b = B[p]
            for j in range(m):
                c[j] += s * b[j]


@njit(**JIT)
def mm_tn(alpha, A, B, beta, C):
    """``C <- alpha * A.T @ B + beta * C``."""
    k, n = A.shape
    m = B.shape[1]
    if n * m * k >= SMALL_GEMM_MACS:
        gemm(True, False, alpha, A, B, beta, C)
        return
    T = C.dtype.type
    al = T(alpha)
    _scale(beta, C)
    for p in range(k):
        b = B[p]
        for i in range(n):
            s = al * A[p, i]
            c = C[i]
            for j in range(m):
                c[j] += s * b[j]
