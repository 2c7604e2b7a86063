"""Boundary checks: user arrays and scalars in, kernel-ready arrays out.

Every public entry point funnels its inputs through here, so bad input gets
one consistent, readable ``ValueError``/``TypeError`` before any kernel runs.
Inputs are never modified; a converted copy is made only when needed.
"""

import numbers
import threading

import numba
import numpy as np

from ._kernels.sparse import SparseRows, csr_valid
from ._pool import executor
from ._sparse import is_sparse
from .spec import BINARY_CROSS_ENTROPY, CROSS_ENTROPY, POISSON


def _as_real_array(a, name):
    if a is None:
        raise TypeError(f"{name} is None; pass a numeric array")
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got a string")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and other unconvertible input
        raise ValueError(f"{name} could not be converted to a numeric array: {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; pass real numbers "
                        "(e.g. take .real or np.abs first)")
    if kind not in "biuf":
        raise TypeError(f"{name} has unsupported dtype {arr.dtype}; pass a numeric "
                        "(float or integer) array")
    return arr


def _writable(arr):
    """``arr``, copied if read-only: kernels never write inputs, but Numba would
    compile a separate read-only specialisation of every kernel (~20 s each)."""
    return arr if arr.flags.writeable else arr.copy()


#: Elements per block of the finiteness scan: numpy's ``isfinite`` on row blocks keeps
#: the temporary at this many booleans however large the array (and needs no compiled
#: kernel, which a first run would otherwise compile: 0.9 s).
_FINITE_BLOCK = 1 << 20

#: From this many elements on, with two threads allowed, the main thread's scan gives
#: its second half to fastbp's pool: memory-bound, it goes ~2x as fast (258 MB: 14 -> 7 ms).
_FINITE_SPLIT = 1 << 22


def _finite_rows(arr, rows):
    """Whether every entry of the 2-D (or 1-D) ``arr`` is finite, scanned ``rows`` at a time."""
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, arr.shape[0], rows):
            block = arr[start:start + rows]
            # a finite sum proves every term finite (NaN and inf propagate), without the
            # boolean array isfinite writes; a sum of finite terms that overflows is
            # checked term by term
            if not np.isfinite(block.sum()) and not np.isfinite(block).all():
                return False
    return True


def _finite(arr, name):
    if arr.dtype.kind != "f" or arr.size == 0:  # integers are always finite
        return
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1)
    rows = max(1, _FINITE_BLOCK // max(1, arr.size // arr.shape[0]))
    half = (arr.shape[0] // 2 + rows - 1) // rows * rows
    if (arr.size >= _FINITE_SPLIT and 0 < half < arr.shape[0] and numba.get_num_threads() >= 2
            and threading.current_thread() is threading.main_thread()):
        other = executor(1).submit(_finite_rows, arr[half:], rows)
        ok = _finite_rows(arr[:half], rows)
        ok = other.result() and ok
    else:
        ok = _finite_rows(arr, rows)
    if not ok:
        raise ValueError(f"{name} contains NaN or infinite values; clean or impute them first")


def check_sparse_X(X, n_features, dtype, name="X"):
    """Return scipy.sparse ``X`` as ``SparseRows`` of ``dtype`` with ``n_features`` columns."""
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


def check_X(X, n_features, dtype, name="X", sparse=False):
    """Return ``X`` as a C-contiguous ``(n, n_features)`` array of ``dtype``.

    With ``sparse=True`` a scipy.sparse ``X`` becomes ``SparseRows`` (see
    ``fastbp._sparse``); otherwise it is refused with a clear TypeError.
    """
    if is_sparse(X):
        if not sparse:
            raise TypeError(f"{name} is a scipy.sparse matrix, which is not supported here "
                            "(MLP.fit / predict / evaluate / gradient / train_step take one, "
                            "streamed, population and distributed training do not); pass a "
                            f"dense array ({name}.toarray())")
        return check_sparse_X(X, n_features, dtype, name)
    arr = _as_real_array(X, name)
    if arr.ndim != 2:
        hint = " (for one sample use X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape "
                         f"{arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples); pass at least one sample")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features but the network expects "
                         f"{n_features} (its input width, sizes[0])")
    arr = _writable(np.ascontiguousarray(arr, dtype=dtype))
    _finite(arr, name)
    return arr


def check_y(y, n, n_out, loss, dtype, name="y"):
    """Return targets ready for the kernels.

    Class labels (1-D, for the cross-entropies) become int64 ``(n,)``; every
    other target becomes a float ``(n, n_out)`` array of ``dtype``.
    """
    arr = _as_real_array(y, name)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"X has {n} samples but {name} has {arr.shape[0]}; they must match")
    if arr.ndim == 1 and loss == CROSS_ENTROPY:
        if arr.dtype.kind == "f":
            _finite(arr, name)
            if not np.all(arr == np.round(arr)):
                raise ValueError(f"{name} holds class labels and must be integers, "
                                 "got non-integer values")
        labels = _writable(np.ascontiguousarray(arr, dtype=np.int64))
        if labels.min() < 0 or labels.max() >= n_out:
            raise ValueError(f"{name} has labels outside [0, {n_out}); labels must be "
                             f"integers from 0 to {n_out - 1} (the output width)")
        return labels
    if arr.ndim == 1:
        if n_out != 1:
            what = ("class labels (1-D) or a 2-D one-hot array" if loss == CROSS_ENTROPY
                    else f"a 2-D array of shape ({n}, {n_out})")
            raise ValueError(f"{name} is 1-D but the network has {n_out} outputs; "
                             f"pass {what}")
        arr = arr.reshape(n, 1)
    if arr.shape[1] != n_out:
        raise ValueError(f"{name} has {arr.shape[1]} columns but the network has "
                         f"{n_out} outputs")
    out = _writable(np.ascontiguousarray(arr, dtype=dtype))
    _finite(out, name)
    if loss in (CROSS_ENTROPY, BINARY_CROSS_ENTROPY):
        if out.min() < 0 or out.max() > 1:
            raise ValueError(f"{name} must hold probabilities in [0, 1] for "
                             "cross-entropy losses")
    if loss == POISSON and out.min() < 0:
        raise ValueError(f"{name} has negative values (min {float(out.min())!r}); the "
                         "poisson loss needs counts or rates >= 0")
    return out


def check_int(value, name, minimum):
    """An integer ``>= minimum`` (bools rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(value, name, low=None, high=None, low_open=False, high_open=False):
    """A finite real number within the given bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def check_lr(lr):
    """A learning rate: finite and > 0."""
    return check_float(lr, "lr (learning rate)", low=0.0, low_open=True)


def check_sample_weight(sample_weight, n, name="sample_weight"):
    """``None``, or per-sample weights as a new float64 ``(n,)`` array.

    A scalar is repeated for every sample.  Weights must be finite and
    ``>= 0``; the result is always a copy (the caller's array is never
    written or kept).
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, (bool, np.bool_)):
        sample_weight = np.full(n, float(sample_weight))
    arr = _as_real_array(sample_weight, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one weight per sample), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"X has {n} samples but {name} has {arr.shape[0]} weights; "
                         "pass one weight per sample")
    arr = np.array(arr, dtype=np.float64, order="C")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; weights must be finite")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative values (min {arr.min():g}); weights must be >= 0")
    return arr


def check_weight_sum(sw, name="sample_weight"):
    """``sum(sw)`` (``None`` when unweighted); raises when every weight is zero."""
    if sw is None:
        return None
    total = float(sw.sum())
    if total == 0.0:
        raise ValueError(f"{name} sums to zero (every weight is 0): the weighted mean loss is "
                         "undefined; give at least one sample a positive weight")
    return total
