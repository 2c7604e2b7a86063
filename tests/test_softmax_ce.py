"""The cross-entropy's log-sum-exp taken from the softmax output (``losses.softmax_lse``)
agrees with the direct one, and falls back to it where the labelled probability underflows."""

import numpy as np
import pytest

from fastbp._kernels.activations import bias_act
from fastbp._kernels.losses import loss_delta
from fastbp.spec import CROSS_ENTROPY, SOFTMAX


def _ce(Z, labels):
    """Loss sum and delta of softmax + cross-entropy through bias_act and loss_delta."""
    A = Z.copy()
    P = np.empty_like(Z)
    D = np.empty_like(Z)
    bias_act(A, np.zeros(Z.shape[1], Z.dtype), SOFTMAX, 0.0, P, True, False)
    total = loss_delta(A, P, labels, CROSS_ENTROPY, SOFTMAX, 1.0, D, True, 0.0)
    return total, A, D


def _exact(Z, labels):
    z = Z.astype(np.float64)
    mx = z.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(z - mx).sum(axis=1))
    return float((lse - z[np.arange(len(labels)), labels]).sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_matches_log_sum_exp(dtype):
    rng = np.random.default_rng(3)
    Z = (3 * rng.standard_normal((40, 875))).astype(dtype)
    labels = rng.integers(0, 875, 40)
    total, A, D = _ce(Z, labels)
    rel = 1e-6 if dtype == np.float32 else 1e-12
    assert total == pytest.approx(_exact(Z, labels), rel=rel)
    onehot = np.zeros_like(A)
    onehot[np.arange(40), labels] = 1
    np.testing.assert_array_equal(D, (A - onehot).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_underflowing_label_probability_falls_back(dtype):
    """A labelled class far below the others has a softmax output of 0: the loss is still the
    finite log-sum-exp value, not inf."""
    Z = np.array([[0.0, 800.0, 1.0], [2.0, 1.0, 0.5]], dtype)
    labels = np.array([0, 2])
    total, A, _ = _ce(Z, labels)
    assert A[0, 0] == 0.0
    assert np.isfinite(total)
    assert total == pytest.approx(_exact(Z, labels), rel=1e-6)
