"""Sparse input at the boundary: scipy.sparse in, kernel-ready :data:`SparseRows` out.

Any scipy.sparse matrix or array (CSR, CSC, COO, ...) is converted to CSR
once, canonicalised (sorted indices, duplicates summed -- on a copy, the
caller's matrix is never changed), its values cast to the network's dtype and
its index arrays to int64.  The result is a ``SparseRows`` over all rows;
subsets (chunks, batches, validation splits) are views that only choose
``rows`` (:func:`take_rows`).  Nothing is ever densified.
"""

import numpy as np
import scipy.sparse as sp

from ._kernels.sparse import SparseRows, csr_valid


def is_sparse(X):
    """Whether ``X`` is a scipy.sparse matrix/array or already-checked sparse rows."""
    return isinstance(X, SparseRows) or sp.issparse(X)


def check_sparse_X(X, n_features, dtype, name="X"):
    """Return scipy.sparse ``X`` as ``SparseRows`` of ``dtype`` with ``n_features`` columns."""
    from ._validate import _finite, _writable
    if isinstance(X, SparseRows):  # checked before (e.g. fit's validation split)
        if X.data.dtype != dtype or X.shape[1] != n_features:
            raise ValueError(f"{name}: sparse rows of another network (dtype "
                             f"{X.data.dtype}, {X.shape[1]} features); pass the scipy matrix")
        return X
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got a sparse array of "
                         f"shape {X.shape}")
    n, n_cols = X.shape
    if n == 0:
        raise ValueError(f"{name} is empty (0 samples); pass at least one sample")
    if n_cols != n_features:
        raise ValueError(f"{name} has {n_cols} features but the network expects "
                         f"{n_features} (its input width, sizes[0])")
    kind = X.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {X.dtype}; pass real numbers")
    if kind not in "biuf":
        raise TypeError(f"{name} has unsupported dtype {X.dtype}; pass a numeric sparse matrix")
    X = X.tocsr()
    if not csr_valid(X.indptr, X.indices, n, n_cols):
        raise ValueError(f"{name} is not a valid CSR matrix (indptr not increasing from 0 "
                         "to nnz, or column indices outside [0, n_features)); rebuild it, "
                         "e.g. with scipy.sparse.csr_matrix((data, indices, indptr), shape)")
    if not X.has_canonical_format:  # unsorted or duplicate indices: fix on a copy
        X = X.copy()
        X.sum_duplicates()
    data = _writable(np.ascontiguousarray(X.data, dtype=dtype))
    _finite(data, name)
    return SparseRows(data, np.ascontiguousarray(X.indices, dtype=np.int64),
                      np.ascontiguousarray(X.indptr, dtype=np.int64),
                      np.arange(n, dtype=np.int64), (n, n_features),
                      np.empty(0, dtype=dtype))


def take_rows(X, idx):
    """Rows ``idx`` (a slice or an index array) of a dense array or of ``SparseRows``."""
    if isinstance(X, SparseRows):
        rows = np.ascontiguousarray(X.rows[idx])
        return X._replace(rows=rows, shape=(rows.shape[0], X.shape[1]))
    return X[idx]
