"""The three matrix products of backpropagation, each BLAS or register loops.

* ``mm_nt``: ``C <- alpha * A @ B.T + beta * C``  (forward:  X @ W.T)
* ``mm_nn``: ``C <- alpha * A @ B   + beta * C``  (deltas:   D @ W)
* ``mm_tn``: ``C <- alpha * A.T @ B + beta * C``  (weights:  D.T @ X, fused update)

Products below ``SMALL_GEMM_MACS`` multiply-adds run as plain loops: for tiny
layers the BLAS call overhead dominates the arithmetic.  So do products of a
single sample (batch 1: a matrix-vector product), where a BLAS gemm spends
its time packing the weight matrix (OpenBLAS 0.3.31's Haswell kernels: 8x
slower than these loops on 784-256-128-10).
"""

from numba import njit

from .._config import JIT, SMALL_GEMM_MACS
from .blas import gemm
from .runtime import runtime


@njit(**JIT)
def _scale(beta, C):
    """C *= beta (C = 0 when beta is 0, as BLAS does)."""
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
    if n * m * k >= SMALL_GEMM_MACS and n > 1:
        gemm(runtime(False), runtime(True), alpha, A, B, beta, C)
        return
    T = C.dtype.type
    al = T(alpha)
    _scale(beta, C)
    k8 = k - k % 8
    for i in range(n):
        for j in range(m):
            # eight partial sums in a fixed order: SIMD-friendly, and the
            # result does not depend on how the compiler vectorises
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = T(0.0)
            for p in range(0, k8, 8):
                s0 += A[i, p] * B[j, p]
                s1 += A[i, p + 1] * B[j, p + 1]
                s2 += A[i, p + 2] * B[j, p + 2]
                s3 += A[i, p + 3] * B[j, p + 3]
                s4 += A[i, p + 4] * B[j, p + 4]
                s5 += A[i, p + 5] * B[j, p + 5]
                s6 += A[i, p + 6] * B[j, p + 6]
                s7 += A[i, p + 7] * B[j, p + 7]
            s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
            for p in range(k8, k):
                s += A[i, p] * B[j, p]
            C[i, j] += al * s


@njit(**JIT)
def mm_nn(alpha, A, B, beta, C):
    """``C <- alpha * A @ B + beta * C``."""
    n, k = A.shape
    m = B.shape[1]
    if n * m * k >= SMALL_GEMM_MACS and n > 1:
        gemm(runtime(False), runtime(False), alpha, A, B, beta, C)
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
    if n * m * k >= SMALL_GEMM_MACS and k > 1:
        gemm(runtime(True), runtime(False), alpha, A, B, beta, C)
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
