"""Sparse (CSR) input for the first layer.

A batch of sparse input rows is a :data:`SparseRows` namedtuple: the CSR
arrays of the whole matrix (``data``, ``indices``, ``indptr``) plus ``rows``,
the matrix rows that make up the batch, and ``shape`` = ``(len(rows),
n_features)``.  Selecting a batch, a shuffled batch or a validation split is
then a choice of ``rows``; the data are never copied or densified.

Only the first layer ever sees the input, through two products:
``input_nt`` (forward, ``Z1 = X W1^T``) and ``input_tn`` (the weight gradient
``dW1 = D1^T X``, or the fused SGD update).  Both dispatch on the type of
``X`` at compile time: a dense array goes to the gemm of ``matmul.py``, a
``SparseRows`` to the loops below, which touch only the non-zeros.  Every
other layer, the losses, dropout, batch norm and the optimizers run the
existing kernels unchanged, so ``forward``, ``backward``, ``train_batch``,
``loss_grad`` and ``loss_sum`` accept either kind of input
(``sparse_train.py`` holds the epoch loop).
"""

from collections import namedtuple

from numba import njit, types
from numba.extending import overload

from .._config import JIT
from .matmul import _scale, mm_nt, mm_tn

SparseRows = namedtuple("SparseRows", ["data", "indices", "indptr", "rows", "shape", "wt"])


def _is_sparse_type(X):
    return isinstance(X, types.BaseNamedTuple) and X.instance_class is SparseRows


@njit(**JIT)
def sparse_nt(X, W, C):
    """``C <- X @ W.T`` for sparse rows ``X`` (n, k), ``W`` (m, k), ``C`` (n, m).

    When ``X.wt`` is not empty it is ``W.T`` (k, m), flat, and is read
    instead of ``W``: each non-zero then adds one contiguous weight row (see
    ``sparse_train.py``).
    """
    n, m = C.shape
    data, indices, indptr, rows = X.data, X.indices, X.indptr, X.rows
    zero = C.dtype.type(0.0)
    if X.wt.shape[0] > 0:
        WT = X.wt.reshape((W.shape[1], m))
        for i in range(n):
            r = rows[i]
            z = C[i]
            z[:] = zero
            for p in range(indptr[r], indptr[r + 1]):
                v = data[p]
                w = WT[indices[p]]
                for j in range(m):
                    z[j] += v * w[j]
        return
    for j in range(m):  # one weight row at a time: it stays in cache for the batch
        w = W[j]
        for i in range(n):
            r = rows[i]
            s = zero
            for p in range(indptr[r], indptr[r + 1]):
                s += data[p] * w[indices[p]]
            C[i, j] = s


@njit(**JIT)
def sparse_tn(alpha, D, X, beta, C):
    """``C <- beta * C + alpha * D.T @ X`` for ``D`` (n, m), sparse ``X`` (n, k), ``C`` (m, k).

    Only the non-zeros of ``X`` are read; ``beta`` scales all of ``C``
    (``beta = 0`` clears it, ``beta = 1`` leaves it).  When ``X.wt`` is not
    empty (a fused SGD epoch, ``C`` is the weights ``W``) the update goes to
    ``W.T`` there instead, as in :func:`sparse_nt`.
    """
    n, m = D.shape
    data, indices, indptr, rows = X.data, X.indices, X.indptr, X.rows
    T = C.dtype.type
    al = T(alpha)
    if X.wt.shape[0] > 0:
        CT = X.wt.reshape((C.shape[1], m))
        _scale(beta, CT)
        for i in range(n):
            r = rows[i]
            d = D[i]
            for p in range(indptr[r], indptr[r + 1]):
                a = al * data[p]
                c = CT[indices[p]]
                for j in range(m):
                    c[j] += a * d[j]
        return
    _scale(beta, C)
    for j in range(m):
        c = C[j]
        for i in range(n):
            a = al * D[i, j]
            if a == T(0.0):  # ReLU zeros: nothing to add
                continue
            r = rows[i]
            for p in range(indptr[r], indptr[r + 1]):
                c[indices[p]] += a * data[p]


def input_nt(X, W, C):
    """``C <- X @ W.T`` for the first layer's input ``X``, dense or :data:`SparseRows`."""


@overload(input_nt, jit_options=JIT)
def _input_nt_impl(X, W, C):
    if isinstance(X, types.Array):
        return lambda X, W, C: mm_nt(1.0, X, W, 0.0, C)
    if _is_sparse_type(X):
        return lambda X, W, C: sparse_nt(X, W, C)
    return None


def input_tn(alpha, D, X, beta, C):
    """``C <- beta * C + alpha * D.T @ X`` for the first layer's input ``X``, dense or sparse."""


@overload(input_tn, jit_options=JIT)
def _input_tn_impl(alpha, D, X, beta, C):
    if isinstance(X, types.Array):
        return lambda alpha, D, X, beta, C: mm_tn(alpha, D, X, beta, C)
    if _is_sparse_type(X):
        return lambda alpha, D, X, beta, C: sparse_tn(alpha, D, X, beta, C)
    return None


@njit(**JIT)
def with_rows(X, rows, wt):
    """The :data:`SparseRows` of ``X``'s matrix for ``rows`` (``wt``: see :func:`sparse_nt`)."""
    return SparseRows(X.data, X.indices, X.indptr, rows, (rows.shape[0], X.shape[1]), wt)


@njit(**JIT)
def csr_valid(indptr, indices, n_rows, n_cols):
    """Whether ``indptr`` / ``indices`` form a CSR structure of an (n_rows, n_cols) matrix."""
    if indptr.shape[0] != n_rows + 1 or indptr[0] != 0 or indptr[n_rows] != indices.shape[0]:
        return False
    for i in range(n_rows):
        if indptr[i + 1] < indptr[i]:
            return False
    for p in range(indices.shape[0]):
        if indices[p] < 0 or indices[p] >= n_cols:
            return False
    return True
