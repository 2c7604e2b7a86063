"""The three matrix products of backpropagation, each BLAS or register loops.

* ``mm_nt``: ``C <- alpha * A @ B.T + beta * C``  (forward:  X @ W.T)
* ``mm_nn``: ``C <- alpha * A @ B   + beta * C``  (deltas:   D @ W)
* ``mm_tn``: ``C <- alpha * A.T @ B + beta * C``  (weights:  D.T @ X, fused update)

Which products call BLAS is ``_use_blas`` (the measurements are at its
constants in ``_config.py``): tiny products run as own loops (the call overhead
is the product), and so do products over a few samples (batch 1 is a
matrix-vector product) where the BLAS packs the weight matrix on every call,
which depends on its kernels (``openblas.SMALL_KERNELS``).  Operands whose rows
are not unit-stride always take own loops (BLAS needs unit-stride rows).
``mm_nn`` and
``mm_tn`` add four rank-1 terms per pass over a row of ``C`` (each element
still sums them in order).  ``mm_nt``'s loops are row dot products
in the eight-partial order as vector code (``vdot.py``; float32 in 2 x 4
tiles): 784 -> 256 at batch 1 took 14-39 us against 106-154 us as eight
scalar chains (same results, bit for bit).
"""

from numba import njit, types
from numba.extending import overload

from .._config import (BLAS_MIN_MACS, JIT, JIT_INLINE, JIT_NO_NRT, OWN_NN_ROWS, OWN_NT_MIN_K,
                       OWN_NT_ROWS, OWN_TN_ROWS, SMALL_GEMM_MACS, SMALL_KERNEL_MAX_MACS)
from .blas import gemm
from .openblas import SMALL_KERNELS
from .runtime import runtime
from .vdot import dot8, dot8x4, flat_ok, tile2x4


NT, NN, TN = 0, 1, 2  # which product (_use_blas)


@njit(**JIT_INLINE)
def _use_blas(which, n, k, m):
    """Whether the product ``which`` (C is n x m, inner dimension k) calls BLAS."""
    macs = n * k * m
    if which == NT and k < OWN_NT_MIN_K:  # own loops' dot products are mostly tail
        return macs >= BLAS_MIN_MACS // 4
    if macs < BLAS_MIN_MACS:
        return False
    rows = k if which == TN else n  # the samples the product runs over
    few = rows <= (OWN_NT_ROWS if which == NT else OWN_NN_ROWS if which == NN else OWN_TN_ROWS)
    if SMALL_KERNELS:
        return (macs <= SMALL_KERNEL_MAX_MACS and rows > 1) or not few
    if which == NT:
        return not (few and k >= OWN_NT_MIN_K)
    if which == NN:
        return not few
    return not few and (macs >= SMALL_GEMM_MACS or (m < OWN_NT_MIN_K and n >= 8))


def _unit_rows(A, B, C):
    """Whether every operand has unit-stride rows, as BLAS needs (typed below)."""


@overload(_unit_rows, jit_options=JIT)
def _unit_rows_impl(A, B, C):
    if all(a.layout == "C" for a in (A, B, C)):
        return lambda A, B, C: True

    def strided(A, B, C):
        return ((A.strides[1] == A.itemsize or A.shape[1] <= 1)
                and (B.strides[1] == B.itemsize or B.shape[1] <= 1)
                and (C.strides[1] == C.itemsize or C.shape[1] <= 1))
    return strided


@njit(**JIT_NO_NRT)
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


def _dots_nt(al, A, B, C):
    """``C += al * A @ B.T`` as row dot products in the eight-partial order (typed below)."""


@njit(**JIT_INLINE)
def _tail(s, A, i, B, j, k8, k):
    """``s`` plus the products ``A[i, p] * B[j, p]`` for ``p`` in ``k8 .. k-1``, in turn."""
    for p in range(k8, k):
        s += A[i, p] * B[j, p]
    return s


@njit(**JIT_INLINE)
def _add4(C, i, j, al, s0, s1, s2, s3, A, B, k8, k):
    """``C[i, j + r] += al * (s_r + tail)`` for ``r = 0..3`` (``_tail`` of row ``j + r``)."""
    C[i, j] += al * _tail(s0, A, i, B, j, k8, k)
    C[i, j + 1] += al * _tail(s1, A, i, B, j + 1, k8, k)
    C[i, j + 2] += al * _tail(s2, A, i, B, j + 2, k8, k)
    C[i, j + 3] += al * _tail(s3, A, i, B, j + 3, k8, k)


@njit(**JIT_INLINE)
def _row_nt(al, A, i, B, C, k8):
    """Row ``i`` of ``C += al * A @ B.T``: four rows of ``B`` at a time (C-contiguous)."""
    k = A.shape[1]
    m = B.shape[0]
    m4 = m - m % 4
    a = i * k
    for j in range(0, m4, 4):
        s0, s1, s2, s3 = dot8x4(A, a, B, j * k, k, k8)
        _add4(C, i, j, al, s0, s1, s2, s3, A, B, k8, k)
    for j in range(m4, m):
        C[i, j] += al * _tail(dot8(A, a, B, j * k, k8), A, i, B, j, k8, k)


@overload(_dots_nt, jit_options=JIT)
def _dots_nt_impl(al, A, B, C):
    if flat_ok(A, B) and A.dtype == types.float32:
        # C-contiguous float32: the partials are the lanes of a vector (``vdot.py``),
        # tiles of two rows of A by four rows of B (eight vector accumulators)
        def pairs(al, A, B, C):
            n, k = A.shape
            m = B.shape[0]
            k8 = k - k % 8
            m4 = m - m % 4
            for i in range(0, n - n % 2, 2):
                a = i * k
                for j in range(0, m4, 4):
                    s = tile2x4(A, a, k, B, j * k, k, k8)
                    _add4(C, i, j, al, s[0], s[1], s[2], s[3], A, B, k8, k)
                    _add4(C, i + 1, j, al, s[4], s[5], s[6], s[7], A, B, k8, k)
                for j in range(m4, m):
                    C[i, j] += al * _tail(dot8(A, a, B, j * k, k8), A, i, B, j, k8, k)
                    C[i + 1, j] += al * _tail(dot8(A, a + k, B, j * k, k8), A, i + 1, B, j,
                                              k8, k)
            if n % 2:
                _row_nt(al, A, n - 1, B, C, k8)
        return pairs
    if flat_ok(A, B):
        # float64: one row of A by four rows of B (a 2 x 4 tile would spill)
        def rows(al, A, B, C):
            k = A.shape[1]
            for i in range(A.shape[0]):
                _row_nt(al, A, i, B, C, k - k % 8)
        return rows

    def impl_strided(al, A, B, C):
        # other layouts: the same sums from row views (``vdot``'s scalar form)
        n, k = A.shape
        m = B.shape[0]
        k8 = k - k % 8
        for i in range(n):
            for j in range(m):
                C[i, j] += al * _tail(dot8(A[i], 0, B[j], 0, k8), A, i, B, j, k8, k)
    return impl_strided


@njit(**JIT_NO_NRT)
def mm_nt(alpha, A, B, beta, C):
    """``C <- alpha * A @ B.T + beta * C``."""
    n, k = A.shape
    m = B.shape[0]
    if _use_blas(NT, n, k, m) and _unit_rows(A, B, C):
        gemm(runtime(False), runtime(True), alpha, A, B, beta, C)
        return
    _scale(beta, C)
    _dots_nt(C.dtype.type(alpha), A, B, C)


@njit(**JIT_INLINE)
def _axpy4(c, s0, b0, s1, b1, s2, b2, s3, b3):
    """``c <- (((c + s0 b0) + s1 b1) + s2 b2) + s3 b3`` elementwise: four rank-1 terms
    in one pass over ``c`` (the order of four passes, a quarter of the traffic)."""
    for j in range(c.shape[0]):
        c[j] = (((c[j] + s0 * b0[j]) + s1 * b1[j]) + s2 * b2[j]) + s3 * b3[j]


@njit(**JIT_INLINE)
def _axpy(c, s, b):
    """``c <- c + s b`` elementwise."""
    for j in range(c.shape[0]):
        c[j] += s * b[j]


@njit(**JIT_NO_NRT)
def mm_nn(alpha, A, B, beta, C):
    """``C <- alpha * A @ B + beta * C``."""
    n, k = A.shape
    m = B.shape[1]
    if _use_blas(NN, n, k, m) and _unit_rows(A, B, C):
        gemm(runtime(False), runtime(False), alpha, A, B, beta, C)
        return
    T = C.dtype.type
    al = T(alpha)
    _scale(beta, C)
    k4 = k - k % 4
    for i in range(n):
        c = C[i]
        for p in range(0, k4, 4):
            _axpy4(c, al * A[i, p], B[p], al * A[i, p + 1], B[p + 1],
                   al * A[i, p + 2], B[p + 2], al * A[i, p + 3], B[p + 3])
        for p in range(k4, k):
            _axpy(c, al * A[i, p], B[p])


@njit(**JIT_NO_NRT)
def mm_tn(alpha, A, B, beta, C):
    """``C <- alpha * A.T @ B + beta * C``."""
    k, n = A.shape
    m = B.shape[1]
    if _use_blas(TN, n, k, m) and _unit_rows(A, B, C):
        gemm(runtime(True), runtime(False), alpha, A, B, beta, C)
        return
    T = C.dtype.type
    al = T(alpha)
    _scale(beta, C)
    k4 = k - k % 4
    for p in range(0, k4, 4):
        for i in range(n):
            _axpy4(C[i], al * A[p, i], B[p], al * A[p + 1, i], B[p + 1],
                   al * A[p + 2, i], B[p + 2], al * A[p + 3, i], B[p + 3])
    for p in range(k4, k):
        for i in range(n):
            _axpy(C[i], al * A[p, i], B[p])


@njit(**JIT_INLINE)
def _sgd_row(w, g, a, dc, decaying):
    """``w <- decay * w + g * a`` elementwise, as ``mm_tn`` with one sample does it."""
    T = w.dtype.type
    if decaying:
        for j in range(w.shape[0]):
            w[j] = (w[j] * dc if dc != T(0.0) else T(0.0)) + g * a[j]
    else:
        for j in range(w.shape[0]):
            w[j] += g * a[j]


@njit(**JIT_NO_NRT)
def mm_nn_sgd1(D, W, Dp, A, alpha, decay):
    """One sample: ``Dp <- D @ W`` (the old W), then ``W <- decay * W + alpha * D.T @ A``.

    ``mm_nn`` followed by ``mm_tn`` (one-sample products run own loops in
    both), operation for operation and bit for bit, with one pass over W instead
    of two.  D is 1 x m, W is m x k, Dp and A are 1 x k.
    """
    T = W.dtype.type
    al = T(alpha)
    dc = T(decay)
    decaying = dc != T(1.0)
    m = W.shape[0]
    c = Dp[0]
    d = D[0]
    a = A[0]
    c[:] = T(0.0)
    m4 = m - m % 4
    for p in range(0, m4, 4):
        _axpy4(c, d[p], W[p], d[p + 1], W[p + 1], d[p + 2], W[p + 2], d[p + 3], W[p + 3])
        for r in range(p, p + 4):  # the rows just read, while they are in L1
            _sgd_row(W[r], al * d[r], a, dc, decaying)
    for p in range(m4, m):
        _axpy(c, d[p], W[p])
        _sgd_row(W[p], al * d[p], a, dc, decaying)
