"""Sparse input at the boundary: scipy.sparse in, kernel-ready :data:`SparseRows` out.

Any scipy.sparse matrix or array (CSR, CSC, COO, ...) is converted to CSR
once, canonicalised (sorted indices, duplicates summed -- on a copy, the
caller's matrix is never changed), its values cast to the network's dtype and
its index arrays to int64.  The result is a ``SparseRows`` over all rows;
subsets (chunks, batches, validation splits) are views that only choose
``rows`` (:func:`take_rows`).  Nothing is ever densified.  The conversion
itself is a boundary check, :func:`fastbp._validate.check_sparse_X`.
"""

import sys

import numpy as np

from ._kernels.sparse import SparseRows


def is_sparse(X):
    """Whether ``X`` is a scipy.sparse matrix/array or already-checked sparse rows.

    ``scipy.sparse`` is not imported for this (0.1 s): a sparse ``X`` means the
    caller imported it already."""
    if isinstance(X, SparseRows):
        return True
    sp = sys.modules.get("scipy.sparse")
    return sp is not None and sp.issparse(X)


def take_rows(X, idx):
    """Rows ``idx`` (a slice or an index array) of a dense array or of ``SparseRows``."""
    if isinstance(X, SparseRows):
        rows = np.ascontiguousarray(X.rows[idx])
        return X._replace(rows=rows, shape=(rows.shape[0], X.shape[1]))
    return X[idx]
