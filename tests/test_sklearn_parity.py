"""With default settings, fastbp's estimators learn as scikit-learn's do.

fastbp.sklearn draws scikit-learn's initial weights (Glorot uniform, factor 6 or 2
for logistic, weights *and* biases, from ``random_state`` in scikit-learn's order),
and every other default already matches (Adam with lr 1e-3, batch_size min(200, n),
alpha / batch_size L2, the loss scale).  So:

* regression on scikit-learn's estimator-check data (200 samples: one full batch)
  follows scikit-learn's trajectory: R^2 within 1e-4 (measured <= 3e-5; Adam's epsilon
  sits slightly differently in the two libraries) for max_iter 20, 50, 200, 3 seeds;
* multi-class classification without shuffling (the same batches) gives the same
  probabilities within 1e-3 (measured <= 2e-4); with shuffling (each library its own
  permutations) the same accuracy within 0.02 (measured <= 0.004);
* binary classification: fastbp has two softmax units where scikit-learn has one
  logistic unit.  It starts as the same function, but under Adam the logit
  difference moves about twice as fast, so accuracy is within 0.06 (measured <= 0.04)
  for max_iter >= 20.
"""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn import neural_network as sknn  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.preprocessing import StandardScaler, scale  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils.estimator_checks import (_regression_dataset,  # noqa: E402
                                            check_classifiers_train, check_estimator,
                                            check_regressors_train)

from fastbp import sklearn as fsk  # noqa: E402

SEEDS = (0, 1, 2)
MAX_ITERS = (20, 50, 200)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at small max_iter, both libraries
        yield


@pytest.fixture(scope="module")
def regression():
    X, y = _regression_dataset()  # what check_regressors_train fits
    return X, scale(y)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, random_state=0)  # what check_classifiers_train fits
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh"])
def test_initial_weights_are_scikit_learns(activation):
    sizes = [10, 100, 30, 3]
    ours = fsk._glorot_init(sizes, activation, check_random_state(7))
    sk = sknn.MLPRegressor(activation=activation)
    sk._random_state = check_random_state(7)
    for (coef, intercept), fan_in, fan_out in zip(ours, sizes[:-1], sizes[1:]):
        c, i = sk._init_coef(fan_in, fan_out, np.float64)
        np.testing.assert_array_equal(coef, c)
        np.testing.assert_array_equal(intercept, i)


def test_binary_output_starts_as_scikit_learns_function(blobs):
    X, y = blobs
    keep = y != 2
    X, y = X[keep], y[keep]
    ours = fsk.MLPClassifier(max_iter=1, learning_rate_init=1e-12, random_state=3).fit(X, y)
    sk = sknn.MLPClassifier(max_iter=1, learning_rate_init=1e-12, random_state=3).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)


@pytest.mark.parametrize("max_iter", MAX_ITERS)
def test_regressor_follows_scikit_learn(regression, max_iter):
    X, y = regression
    for seed in SEEDS:
        ours = fsk.MLPRegressor(max_iter=max_iter, random_state=seed).fit(X, y)
        sk = sknn.MLPRegressor(max_iter=max_iter, random_state=seed).fit(X, y)
        assert ours.score(X, y) == pytest.approx(sk.score(X, y), abs=1e-4)
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-3)  # measured 2e-4


@pytest.mark.parametrize("max_iter", MAX_ITERS)
def test_multiclass_classifier_follows_scikit_learn(blobs, max_iter):
    X, y = blobs
    for seed in SEEDS:
        ours = fsk.MLPClassifier(max_iter=max_iter, random_state=seed, shuffle=False).fit(X, y)
        sk = sknn.MLPClassifier(max_iter=max_iter, random_state=seed, shuffle=False).fit(X, y)
        np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-3)
        ours = fsk.MLPClassifier(max_iter=max_iter, random_state=seed).fit(X, y)
        sk = sknn.MLPClassifier(max_iter=max_iter, random_state=seed).fit(X, y)
        assert ours.score(X, y) == pytest.approx(sk.score(X, y), abs=0.02)


@pytest.mark.parametrize("max_iter", MAX_ITERS)
def test_binary_classifier_close_to_scikit_learn(blobs, max_iter):
    X, y = blobs
    keep = y != 2
    X, y = X[keep], y[keep]
    for seed in SEEDS:
        ours = fsk.MLPClassifier(max_iter=max_iter, random_state=seed).fit(X, y)
        sk = sknn.MLPClassifier(max_iter=max_iter, random_state=seed).fit(X, y)
        assert ours.score(X, y) == pytest.approx(sk.score(X, y), abs=0.06)


def test_default_estimators_pass_the_training_checks():
    check_regressors_train("MLPRegressor", fsk.MLPRegressor(max_iter=50))
    check_classifiers_train("MLPClassifier", fsk.MLPClassifier())


@pytest.mark.parametrize("est", [fsk.MLPRegressor(max_iter=50), fsk.MLPClassifier()],
                         ids=["MLPRegressor(max_iter=50)", "MLPClassifier()"])
def test_check_estimator_with_default_settings(est):
    results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert failed == []
