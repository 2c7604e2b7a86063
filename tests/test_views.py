"""views.py: the prefetch hint of the shuffled-batch gather touches nothing.

``prefetch_row`` compiles for every array the epoch gathers from (2-D and 1-D,
float and integer, C-contiguous; other layouts and types as a no-op), reads
nothing into the result and writes nothing; a shuffled epoch that issues it gives
the parameters the same gather without it gives (``test_resume`` and the engine
tests check the training results themselves).
"""

import numpy as np
import pytest
from numba import njit

from fastbp._kernels.views import prefetch_row


@njit
def _touch_rows(A, order):
    """Prefetch every row named in ``order``, then return the sum of A (unchanged)."""
    for j in order:
        prefetch_row(A, j)
    return A.sum()


@pytest.mark.parametrize("make", [
    lambda rng: rng.standard_normal((1000, 233)).astype(np.float32),
    lambda rng: rng.standard_normal((50, 3)),
    lambda rng: rng.integers(0, 10, 777),
    lambda rng: np.asfortranarray(rng.standard_normal((40, 7))),
    lambda rng: rng.standard_normal((40, 14))[:, ::2],
    lambda rng: rng.standard_normal((0, 5)),
], ids=["f32-rows", "f64-narrow", "int-labels", "fortran", "strided", "empty"])
def test_prefetch_row_changes_nothing(make):
    rng = np.random.default_rng(0)
    A = make(rng)
    before = A.copy(order="K")
    order = rng.permutation(A.shape[0])
    assert _touch_rows(A, order) == _touch_rows(before, order[:0])
    assert np.array_equal(A, before) and A.dtype == before.dtype
