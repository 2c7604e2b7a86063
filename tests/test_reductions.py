"""The row reductions behind softmax and its cross-entropy (``_kernels/activations.py``,
``_kernels/losses.py``): eight interleaved partials plus a tail, at every length.

* ``row_max`` is the exact maximum (any order gives it), NaN included.
* ``row_sum`` is the sum in the row's own precision, in its fixed order: equal to
  NumPy's to rounding, and to the same pairwise order computed here in Python.
* ``softmax_row`` rows sum to 1 and match the NumPy softmax; in place works.
* ``row_log_sum_exp`` matches ``log(sum(exp(z)))``; ``ce_row`` with integer labels
  equals ``ce_row`` with the same labels one-hot (loss and target sum).
"""

import numpy as np
import pytest
from numba import njit

from fastbp._kernels.activations import row_max, row_sum, softmax_row
from fastbp._kernels.losses import ce_row, row_log_sum_exp

LENGTHS = [1, 2, 7, 8, 9, 15, 16, 17, 31, 64, 875]


@njit(cache=False)
def _max(z, o, m):
    return row_max(z, o, m)


@njit(cache=False)
def _sum(a, o, m):
    return row_sum(a, o, m)


@njit(cache=False)
def _softmax(z, a):
    softmax_row(z, 0, a, 0, z.shape[0])


@njit(cache=False)
def _lse(z, scratch):
    return row_log_sum_exp(z, 0, z.shape[0], scratch, 0)


@njit(cache=False)
def _ce(y, i, lse, z, m):
    return ce_row(y, i, lse, z, 0, m)


def _pairwise(a):
    """``row_sum``'s order in Python, in ``a``'s precision."""
    T = a.dtype.type
    m8 = len(a) - len(a) % 8
    p = [T(0.0)] * 8
    for j in range(0, m8, 8):
        p = [p[c] + a[j + c] for c in range(8)]
    s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
    for j in range(m8, len(a)):
        s = s + a[j]
    return s


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m", LENGTHS)
def test_row_max_and_row_sum(m, dtype):
    rng = np.random.default_rng(m)
    z = rng.standard_normal(m + 3).astype(dtype)
    assert _max(z, 3, m) == z[3:].max()
    s = _sum(z, 3, m)
    assert s == _pairwise(z[3:])
    assert np.dtype(dtype).type(s) == s  # formed in the row's own precision
    np.testing.assert_allclose(s, z[3:].astype(np.float64).sum(), rtol=1e-5, atol=1e-5)


def test_row_max_sees_nan_and_inf():
    z = np.zeros(20)
    z[13] = np.inf
    assert _max(z, 0, 20) == np.inf
    z[13] = np.nan
    assert not np.isfinite(_lse(z, np.empty(20)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m", LENGTHS)
def test_softmax_and_log_sum_exp(m, dtype):
    rng = np.random.default_rng(m)
    z = (3 * rng.standard_normal(m)).astype(dtype)
    a = np.empty_like(z)
    _softmax(z, a)
    z64 = z.astype(np.float64)
    ref = np.exp(z64 - z64.max())
    ref /= ref.sum()
    tol = 1e-5 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(a, ref, rtol=tol, atol=tol / 10)
    inplace = z.copy()
    _softmax(inplace, inplace)
    assert np.array_equal(inplace, a)
    lse = np.log(np.exp(z64 - z64.max()).sum()) + z64.max()
    np.testing.assert_allclose(_lse(z, np.empty_like(z)), lse, rtol=tol)


@pytest.mark.parametrize("m", [1, 3, 10, 875])
def test_ce_row_labels_equal_one_hot(m):
    rng = np.random.default_rng(m)
    z = rng.standard_normal(m).astype(np.float32)
    labels = rng.integers(0, m, 4)
    onehot = np.eye(m, dtype=np.float32)[labels]
    lse = _lse(z, np.empty_like(z))
    for i in range(4):
        e_lab, s_lab = _ce(labels, i, lse, z, m)
        e_hot, s_hot = _ce(onehot, i, lse, z, m)
        assert (e_lab, s_lab) == (e_hot, s_hot) == (lse - float(z[labels[i]]), 1.0)
