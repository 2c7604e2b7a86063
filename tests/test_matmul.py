"""matmul.py's three products: the same numbers on either side of the BLAS routing rule,
for every operand layout (BLAS takes unit-stride rows; other layouts run own loops)."""

import numpy as np
import pytest

from fastbp._config import (BLAS_MIN_MACS, OWN_NN_ROWS, OWN_NT_ROWS, SMALL_GEMM_MACS,
                            SMALL_KERNEL_MAX_MACS)
from fastbp._kernels import matmul
from fastbp._kernels.openblas import SMALL_KERNELS, openblas_core

# (n, k, m): tiny, short inner dimension, few rows, narrow outputs, and both sides of
# every threshold of matmul._use_blas
SHAPES = [(4, 2, 8), (48, 9, 3), (48, 3, 9), (16, 4, 16), (3, 19, 7), (2, 300, 37),
          (8, 64, 64), (9, 64, 64), (30, 97, 4), (115, 3, 6), (64, 16, 64), (1, 784, 40),
          (200, 5, 9)]


def _operands(which, n, k, m, dtype, rng):
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    if which == matmul.NT:
        A, B = r(n, k), r(m, k)
        ref = A.astype(np.float64) @ B.T.astype(np.float64)
    elif which == matmul.NN:
        A, B = r(n, k), r(k, m)
        ref = A.astype(np.float64) @ B.astype(np.float64)
    else:
        A, B = r(k, n), r(k, m)
        ref = A.T.astype(np.float64) @ B.astype(np.float64)
    return A, B, ref


FUNCS = {matmul.NT: matmul.mm_nt, matmul.NN: matmul.mm_nn, matmul.TN: matmul.mm_tn}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", [matmul.NT, matmul.NN, matmul.TN], ids=["nt", "nn", "tn"])
def test_products_match_numpy_in_every_layout(which, dtype):
    rng = np.random.default_rng(which)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for n, k, m in SHAPES:
        A, B, ref = _operands(which, n, k, m, dtype, rng)
        C0 = rng.standard_normal((n, m)).astype(dtype)
        want = 0.5 * ref + 2.0 * C0
        for order in "CF":
            C = np.array(C0, order=order)
            FUNCS[which](0.5, np.array(A, order=order), np.array(B, order=order), 2.0, C)
            np.testing.assert_allclose(C, want, rtol=tol * 10, atol=tol * k,
                                       err_msg=f"{(n, k, m)} {order}")
        # row views of a wider buffer: unit-stride rows, a row stride of their own
        wide = np.zeros((n, m + 3), dtype)
        wide[:, :m] = C0
        FUNCS[which](0.5, A, B, 2.0, wide[:, :m])
        np.testing.assert_allclose(wide[:, :m], want, rtol=tol * 10, atol=tol * k)


def test_routing_rule():
    """The documented rule: tiny products own loops, few-sample large products own loops,
    short inner dimensions BLAS; which side the rest take depends on the BLAS's kernels."""
    use = matmul._use_blas.py_func
    for which in (matmul.NT, matmul.NN, matmul.TN):
        assert not use(which, 4, 2, 8)                      # 64 multiply-adds
        assert not use(which, 3, 19, 7)
    assert use(matmul.NT, 48, 3, 9) and use(matmul.NT, 16, 4, 16)  # short k, many rows
    assert use(matmul.NN, 48, 9, 3) and use(matmul.NN, 9, 64, 64)
    assert use(matmul.TN, 233, 48, 9)                        # narrow inputs, many outputs
    big = SMALL_KERNEL_MAX_MACS * 2
    assert not use(matmul.NT, OWN_NT_ROWS, 1024, big // (1024 * OWN_NT_ROWS))
    assert not use(matmul.NN, OWN_NN_ROWS, 1024, big // (1024 * OWN_NN_ROWS))
    assert use(matmul.NT, OWN_NT_ROWS + 1, 1024, 1024)
    assert use(matmul.TN, 64, 32, SMALL_GEMM_MACS)
    # few samples and a long inner dimension below the small-kernel bound: BLAS where it
    # has small-matrix kernels, own loops where it packs every call
    assert use(matmul.NT, 2, 300, 37) == SMALL_KERNELS
    assert use(matmul.NN, 2, 64, 64) == SMALL_KERNELS
    assert BLAS_MIN_MACS <= 2 * 64 * 64 <= SMALL_KERNEL_MAX_MACS


def test_small_kernels_follow_the_openblas_core():
    core = openblas_core()
    assert isinstance(core, str)
    assert SMALL_KERNELS == (core.lower() in ("skylakex", "cooperlake", "sapphirerapids"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k", [(1, 1), (3, 5), (4, 16), (9, 33), (101, 611), (44, 49)])
@pytest.mark.parametrize("decay", [1.0, 0.999, 0.0])
def test_one_sample_backprop_and_update_fused_is_bit_identical(m, k, decay, dtype):
    """``mm_nn_sgd1`` (one pass over W) gives exactly what ``mm_nn`` then the fused SGD
    ``mm_tn`` give: the delta from the old W, the new W, bit for bit."""
    rng = np.random.default_rng(m * 1000 + k)
    D = rng.standard_normal((1, m)).astype(dtype)
    W = rng.standard_normal((m, k)).astype(dtype)
    A = rng.standard_normal((1, k)).astype(dtype)
    lr = 0.037
    Dp_ref = np.full((1, k), np.nan, dtype)
    W_ref, W_old = W.copy(), W.copy()
    matmul.mm_nn(1.0, D, W_ref, 0.0, Dp_ref)
    matmul.mm_tn(-lr, D, A, decay, W_ref)
    Dp = np.full((1, k), np.nan, dtype)
    matmul.mm_nn_sgd1(D, W, Dp, A, -lr, decay)
    assert Dp.tobytes() == Dp_ref.tobytes()
    assert W.tobytes() == W_ref.tobytes()
    W0, D64, A64 = W_old.astype(np.float64), D.astype(np.float64), A.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Dp, D64 @ W0, rtol=tol, atol=tol * np.sqrt(m))
    np.testing.assert_allclose(W, decay * W0 - lr * D64.T @ A64, rtol=tol, atol=tol)
