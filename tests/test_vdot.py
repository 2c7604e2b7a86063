"""The vector dot products (``_kernels/vdot.py``) give the eight-partial sums bit for bit."""

import numpy as np
import pytest
from numba import njit

from fastbp._config import BLAS_MIN_MACS, JIT
from fastbp._kernels.activations import row_sum
from fastbp._kernels.losses import _half_sq_sum
from fastbp._kernels.matmul import mm_nt
from fastbp._kernels.vdot import dot8, dot8x4, row_dot8, row_dot8x4, sqdiff8


def _reference(a, b):
    """The eight-partial order in the arrays' own precision, one rounding per operation."""
    T = a.dtype.type
    k8 = len(a) - len(a) % 8
    s = [T(0.0)] * 8
    for p in range(0, k8, 8):
        for c in range(8):
            s[c] = T(s[c] + T(a[p + c] * b[p + c]))
    return T(T(T(s[0] + s[1]) + T(s[2] + s[3])) + T(T(s[4] + s[5]) + T(s[6] + s[7])))


@njit(**JIT)
def _flat(A, a, B, b, bs, k8):
    """dot8 and dot8x4 at the given offsets."""
    return dot8(A, a, B, b, k8), dot8x4(A, a, B, b, bs, k8)


@njit(**JIT)
def _rows(X, r, B, b, bs, k8):
    """row_dot8 and row_dot8x4 of row r."""
    return row_dot8(X, r, B, b, k8), row_dot8x4(X, r, B, b, bs, k8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [0, 8, 13, 64, 203])
def test_dot_products_follow_the_eight_partial_order(dtype, k):
    rng = np.random.default_rng(k)
    A = rng.standard_normal(3 + k).astype(dtype)
    B = rng.standard_normal(5 + 4 * k + 16).astype(dtype)
    k8 = k - k % 8
    a, b, bs = 3, 5, k + 4
    one, four = _flat(A, a, B, b, bs, k8)
    assert one == _reference(A[a:a + k8], B[b:b + k8])
    for r in range(4):
        assert four[r] == _reference(A[a:a + k8], B[b + r * bs:b + r * bs + k8])
    # strided 1-D arrays take the scalar form: the same numbers
    As, Bs = np.repeat(A, 2)[::2], np.repeat(B, 2)[::2]
    assert not As.flags.c_contiguous
    assert _flat(As, a, Bs, b, bs, k8) == (one, four)


@pytest.mark.parametrize("order", ["C", "F"])
def test_row_forms_match_the_flat_form(order):
    rng = np.random.default_rng(1)
    X = np.asarray(rng.standard_normal((4, 37)), dtype=np.float32, order=order)
    B = rng.standard_normal(200).astype(np.float32)
    for r in range(4):
        one, four = _rows(X, r, B, 7, 41, 32)
        flat = np.ascontiguousarray(X[r])
        assert (one, four) == _flat(flat, 0, B, 7, 41, 32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mm_nt_own_loops_same_for_every_layout(dtype):
    """mm_nt's vector loops (C arrays) and its scalar loops (other layouts) agree exactly,
    and match numpy to rounding (products below ``BLAS_MIN_MACS``: own loops on every
    BLAS core)."""
    rng = np.random.default_rng(2)
    for n, k, m in [(1, 300, 3), (3, 19, 7), (2, 7, 9), (4, 64, 3), (1, 8, 4), (1, 203, 5)]:
        assert n * k * m < BLAS_MIN_MACS
        A = rng.standard_normal((n, k)).astype(dtype)
        B = rng.standard_normal((m, k)).astype(dtype)
        C0 = rng.standard_normal((n, m)).astype(dtype)
        C1, C2 = C0.copy(), C0.copy()
        mm_nt(0.5, A, B, 2.0, C1)
        mm_nt(0.5, np.asfortranarray(A), np.asfortranarray(B), 2.0, C2)
        np.testing.assert_array_equal(C1, C2)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(C1, 0.5 * A.astype(np.float64) @ B.T.astype(np.float64)
                                   + 2.0 * C0, rtol=tol * 10, atol=tol * k)


@njit(**JIT)
def _sum(A, a, m):
    """row_sum of A[a:a+m]."""
    return row_sum(A, a, m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 7, 8, 29, 875])
def test_row_sum_is_the_eight_partial_sum_then_the_tail(dtype, m):
    rng = np.random.default_rng(m)
    A = rng.standard_normal(m + 5).astype(dtype)
    T = A.dtype.type
    m8 = m - m % 8
    s = _reference(A[2:2 + m8], np.ones(m8, dtype))
    for j in range(2 + m8, 2 + m):
        s = T(s + A[j])
    assert _sum(A, 2, m) == s
    assert _sum(np.repeat(A, 2)[::2], 2, m) == s


@njit(**JIT)
def _sq(A, a, B, b, k8):
    """sqdiff8 at the given offsets."""
    return sqdiff8(A, a, B, b, k8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [0, 8, 24, 232])
def test_sqdiff8_is_the_eight_partial_sum_of_float64_squares(dtype, k):
    """Vector form (C arrays) and scalar form (strided) give the reference order exactly;
    each difference of two float32 is exact in float64."""
    rng = np.random.default_rng(k)
    A = rng.standard_normal(k + 5).astype(dtype)
    B = rng.standard_normal(k + 9).astype(dtype)
    r = A[3:3 + k].astype(np.float64) - B[7:7 + k].astype(np.float64)
    s = [0.0] * 8
    for p in range(0, k, 8):
        for c in range(8):
            s[c] = s[c] + r[p + c] * r[p + c]
    want = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    assert _sq(A, 3, B, 7, k) == want
    As, Bs = np.repeat(A, 2)[::2], np.repeat(B, 2)[::2]
    assert _sq(As, 3, Bs, 7, k) == want


@njit(**JIT)
def _mse_rows(A, y):
    """losses._half_sq_sum of every row of A against y."""
    s = 0.0
    for i in range(A.shape[0]):
        s += _half_sq_sum(A[i], 0, y, i, A.shape[1])
    return s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mse_loss_sum_is_the_same_for_every_target_layout(dtype):
    """The vector form (C-contiguous targets) and the scalar form (any other layout) of the
    MSE loss sum agree exactly, and match float64 to rounding."""
    rng = np.random.default_rng(5)
    for m in (1, 7, 8, 9, 233):
        A = rng.standard_normal((6, m)).astype(dtype)
        y = rng.standard_normal((6, m)).astype(dtype)
        got = _mse_rows(A, y)
        assert got == _mse_rows(A, np.asfortranarray(y))
        r = A.astype(np.float64) - y.astype(np.float64)
        assert got == pytest.approx(0.5 * (r * r).sum(), rel=1e-13)
