"""fastbp.metrics: the one accuracy and gradient-norm definition used by every training path."""

import numpy as np

import fastbp
from fastbp import metrics, spec


def test_correct_counts_classification_and_is_none_for_regression():
    pred = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert metrics.correct(spec.CROSS_ENTROPY, pred, np.array([1, 1, 1])) == 2.0
    assert metrics.correct(spec.CROSS_ENTROPY, pred, np.eye(2)[[1, 0, 0]]) == 2.0
    assert metrics.correct(spec.BINARY_CROSS_ENTROPY, pred, np.array([[0, 1], [1, 0], [1, 1]])) == 2.0
    for code in (spec.MSE, spec.HUBER):
        assert metrics.correct(code, pred, pred) is None and not metrics.classifies(code)


def test_score_and_grad_norms_of_a_network():
    r = np.random.default_rng(0)
    X = r.normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(int)
    net = fastbp.MLP([4, 5, 2], loss="cross_entropy", seed=0)
    acc = metrics.score(net, X, y)
    assert acc == np.mean(net.predict(X).argmax(1) == y)
    _, g = net.gradient(X, y)
    norms = metrics.grad_norms(net, X, y)
    assert norms == [float(np.linalg.norm(w)) for w in
                     (g[:20].astype(np.float64), g[25:35].astype(np.float64))]
    assert metrics.score(fastbp.MLP([4, 1], seed=0), X, X[:, :1]) is None
