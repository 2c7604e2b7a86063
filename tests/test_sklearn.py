"""fastbp.sklearn: scikit-learn estimators over fastbp.MLP.

* scikit-learn's full estimator check suite (parametrize_with_checks) on small
  instances of every solver, with dropout / batch norm and gradient clipping.
* One full-batch SGD step agrees with scikit-learn's MLPClassifier /
  MLPRegressor to rounding from the same weights (checks the alpha ->
  weight_decay mapping, the loss scaling and the weight layout of coefs_).
* Pipelines, GridSearchCV, multi-label classification, multi-output regression,
  float32 preservation, string labels, partial_fit, warm_start, pickling,
  scikit-learn's stopping / learning-rate rules, and digits with Adam + dropout
  at >= 98 % test accuracy.

The module runs under ``fastbp.threads(1)``: the kernels call BLAS on small
matrices, where OpenBLAS's threads only contend for a loaded 2-core machine
(measured 5-10x slower fits under load without the limit).
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.datasets import (load_digits, load_iris, make_multilabel_classification,  # noqa: E402
                              make_regression)
from sklearn.dummy import DummyClassifier, DummyRegressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastbp import MLP, threads  # noqa: E402
from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threads(1):
        yield


# ---------------------------------------------------------------- data sets
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# ------------------------------------------------- scikit-learn's check suite
CHECKED = [
    MLPClassifier((8,), max_iter=50, learning_rate_init=0.01, random_state=0),
    MLPRegressor((8,), max_iter=50, learning_rate_init=0.01, random_state=0),
    MLPClassifier((8,), solver="lbfgs", max_iter=50, random_state=0),
    MLPRegressor((8,), solver="lbfgs", max_iter=50, random_state=0),
    MLPClassifier((8,), solver="sgd", max_iter=50, learning_rate_init=0.05, random_state=0),
    MLPRegressor((8,), solver="sgd", max_iter=50, learning_rate_init=0.01, clip_norm=1.0,
                 random_state=0),
    MLPClassifier((8,), dropout=0.1, batch_norm=True, max_iter=50, learning_rate_init=0.01,
                  random_state=0),
    MLPRegressor((8, 4), activation="tanh", solver="adamw", dropout=0.1, max_iter=50,
                 learning_rate_init=0.01, random_state=0),
    MLPClassifier((8,), activation="logistic", solver="rprop", max_iter=50, random_state=0),
]


_EQUIVALENCE_CHECKS = ("check_sample_weight_equivalence_on_dense_data",
                       "check_sample_weight_equivalence_on_sparse_data")


def _expected_failed_checks(estimator):
    if np.any(estimator.dropout) or np.any(estimator.batch_norm):
        # a weight-2 sample is not two samples for dropout masks (drawn per row)
        # or batch-norm batch statistics (unweighted): weighted training is
        # still right, but not equivalent to repeating rows
        return {check: "dropout / batch norm act per row, not per unit of weight"
                for check in _EQUIVALENCE_CHECKS}
    if estimator.solver == "lbfgs" and isinstance(estimator, MLPClassifier):
        # weighted and repeated fits agree to 1e-14 for 20 L-BFGS iterations
        # (test_sample_weight.py); the check's 50 iterations overfit 15 samples
        # to a loss of 1e-4, where summation-order rounding grows to 1e-3
        return {check: "rounding amplified by L-BFGS on an overfit, flat objective"
                for check in _EQUIVALENCE_CHECKS}
    return {}


@no_convergence_warning
@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@no_convergence_warning
@pytest.mark.parametrize("estimator", [
    MLPClassifier(solver="lbfgs"),                               # scikit-learn runs its MLPs'
    MLPRegressor(solver="sgd", tol=1e-2, random_state=42),       # check with these settings
    MLPClassifier(random_state=0),
    MLPRegressor(random_state=0),
], ids=repr)
def test_sample_weight_equivalence_with_scikit_learns_settings(estimator):
    """No expected failure here: the settings scikit-learn's own test suite uses for
    its MLPs, and the defaults, give weighted == repeated/removed samples."""
    from sklearn.utils import estimator_checks
    for check in _EQUIVALENCE_CHECKS:  # dense and sparse (CSR) X
        getattr(estimator_checks, check)(type(estimator).__name__, estimator)


# ------------------------------------------ agreement with scikit-learn's MLP
def _one_step_both(ours_cls, sk_cls, X, y):
    """One full-batch plain-SGD epoch from identical weights in both libraries."""
    common = dict(hidden_layer_sizes=(5,), activation="tanh", solver="sgd", momentum=0.0,
                  learning_rate_init=0.05, alpha=0.3, batch_size=X.shape[0], shuffle=False,
                  max_iter=1, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = ours_cls(**common).fit(X, y)
        coefs = [c.copy() for c in ours.coefs_]
        intercepts = [b.copy() for b in ours.intercepts_]
        ours.fit(X, y)  # warm start: one more epoch from `coefs`
        theirs = sk_cls(**common).fit(X, y)
        theirs.coefs_ = [c.copy() for c in coefs]
        theirs.intercepts_ = [b.copy() for b in intercepts]
        theirs.fit(X, y)  # warm start: one epoch from the same weights
    return ours, theirs


def test_one_sgd_step_matches_sklearn_regressor():
    X, y = make_regression(60, 4, n_targets=3, random_state=0)
    ours, theirs = _one_step_both(MLPRegressor, sk_nn.MLPRegressor, X, y / y.std())
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # the L2 penalty and the loss scale (mean over outputs) match too
    np.testing.assert_allclose(ours.loss_curve_[-1], theirs.loss_curve_[-1], rtol=1e-9)


def test_one_sgd_step_matches_sklearn_classifier(iris):
    X, y = iris
    ours, theirs = _one_step_both(MLPClassifier, sk_nn.MLPClassifier, X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_[-1], theirs.loss_curve_[-1], rtol=1e-9)


@no_convergence_warning
def test_loss_curve_magnitude_like_sklearn(digits):
    Xtr, _, ytr, _ = digits
    Xs = StandardScaler().fit_transform(Xtr)
    kw = dict(hidden_layer_sizes=(32,), max_iter=20, random_state=0)
    ours = MLPClassifier(**kw).fit(Xs, ytr).loss_curve_
    theirs = sk_nn.MLPClassifier(**kw).fit(Xs, ytr).loss_curve_
    assert len(ours) == len(theirs) == 20
    for i in (0, 4, 19):  # same order of magnitude all along (inits differ)
        assert 1 / 3 < ours[i] / theirs[i] < 3, (i, ours[i], theirs[i])
    Xr, yr = make_regression(300, 8, n_targets=3, noise=1.0, random_state=0)
    yr = yr / yr.std()
    ours = MLPRegressor(**kw).fit(Xr, yr).loss_curve_
    theirs = sk_nn.MLPRegressor(**kw).fit(Xr, yr).loss_curve_
    for i in (0, 4, 19):
        assert 1 / 3 < ours[i] / theirs[i] < 3, (i, ours[i], theirs[i])


# ---------------------------------------------------------- composability
@no_convergence_warning
def test_pipeline_digits(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier((64,), max_iter=50, random_state=0))])
    pipe.fit(Xtr, ytr)
    assert pipe.score(Xte, yte) >= 0.95


@no_convergence_warning
def test_grid_search(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(max_iter=20, learning_rate_init=0.01, random_state=0))
    grid = {"mlpclassifier__alpha": [1e-4, 1e-1],
            "mlpclassifier__hidden_layer_sizes": [(16,), (32,)]}
    search = GridSearchCV(pipe, grid, cv=3).fit(Xtr, ytr)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ in search.cv_results_["params"]
    assert search.score(Xte, yte) > 0.9


# --------------------------------------------------- digits >= 98 % (issue)
def test_digits_adam_dropout_98_percent(digits):
    Xtr, Xte, ytr, yte = digits
    # 6 seeds checked while choosing these settings: 0.980 .. 0.984
    clf = MLPClassifier((256,), solver="adam", dropout=0.3, alpha=1e-3, batch_size=128,
                        max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr / 16.0, ytr)
    assert clf.net_.dropout == (0.3,)
    assert clf.score(Xte / 16.0, yte) >= 0.98


# ---------------------------------------------------- targets and outputs
@no_convergence_warning
def test_multilabel_classification():
    X, Y = make_multilabel_classification(n_samples=400, n_features=20, n_classes=5,
                                          random_state=0)
    Xtr, Xte, Ytr, Yte = train_test_split(X, Y, test_size=0.25, random_state=0)
    clf = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=200, random_state=0))
    clf.fit(Xtr, Ytr)
    mlp = clf[-1]
    assert mlp.out_activation_ == "logistic" and mlp.n_outputs_ == 5
    assert mlp.net_.loss == "binary_cross_entropy"
    np.testing.assert_array_equal(mlp.classes_, np.arange(5))
    pred = clf.predict(Xte)
    proba = clf.predict_proba(Xte)
    assert pred.shape == proba.shape == Yte.shape
    assert set(np.unique(pred)) <= {0, 1}
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    # partial_fit: an indicator matrix names its labels, no `classes` needed
    inc = MLPClassifier((32,), random_state=0).partial_fit(Xtr, Ytr)
    np.testing.assert_array_equal(inc.classes_, np.arange(5))
    assert inc.partial_fit(Xtr, Ytr).predict(Xte).shape == Yte.shape
    base = DummyClassifier(strategy="most_frequent").fit(Xtr, Ytr)
    assert clf.score(Xte, Yte) > base.score(Xte, Yte) + 0.1  # subset accuracy
    assert (pred == Yte).mean() > (base.predict(Xte) == Yte).mean() + 0.1  # per label


@no_convergence_warning
def test_multioutput_regression():
    X, Y = make_regression(n_samples=400, n_features=10, n_targets=3, noise=1.0,
                           random_state=0)
    Y = Y / Y.std(axis=0)
    Xtr, Xte, Ytr, Yte = train_test_split(X, Y, test_size=0.25, random_state=0)
    reg = MLPRegressor((32,), max_iter=200, learning_rate_init=0.01, random_state=0)
    reg.fit(Xtr, Ytr)
    assert reg.predict(Xte).shape == Yte.shape
    assert reg.n_outputs_ == 3 and reg.out_activation_ == "identity"
    assert reg.score(Xte, Yte) > 0.9
    assert DummyRegressor().fit(Xtr, Ytr).score(Xte, Yte) < 0.05
    # a single target: 1-D predictions; a column vector warns like scikit-learn
    reg1 = MLPRegressor((8,), max_iter=5, random_state=0).fit(Xtr, Ytr[:, 0])
    assert reg1.predict(Xte).shape == (Xte.shape[0],)
    with pytest.warns(DataConversionWarning):
        reg1.fit(Xtr, Ytr[:, :1])
    assert reg1.predict(Xte).shape == (Xte.shape[0],)


@no_convergence_warning
def test_float32_preserved(iris):
    X, y = iris
    X32 = X.astype(np.float32)
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X32, y)
    assert clf.net_.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32
    assert clf.predict_log_proba(X32).dtype == np.float32
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    reg = MLPRegressor((8,), max_iter=20, random_state=0).fit(X32, X32[:, :2] * 2)
    assert reg.net_.dtype == np.float32 and reg.predict(X32).dtype == np.float32
    # anything else trains in float64
    for Xo in (X, np.round(X * 10).astype(np.int64)):
        clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(Xo, y)
        assert clf.net_.dtype == np.float64
        assert clf.predict_proba(Xo).dtype == np.float64
        reg = MLPRegressor((8,), max_iter=5, random_state=0).fit(Xo, X[:, 0])
        assert reg.predict(Xo).dtype == np.float64


@no_convergence_warning
def test_string_labels(iris):
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])
    clf = MLPClassifier((16,), max_iter=100, learning_rate_init=0.01, random_state=0)
    clf.fit(X, names[y])
    np.testing.assert_array_equal(clf.classes_, names)
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert clf.score(X, names[y]) > 0.9
    assert clf.predict_proba(X).shape == (150, 3)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)
    # binary with string labels: softmax over both classes
    yb = np.where(y == 0, "yes", "no")
    clf.fit(X, yb)
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    assert clf.n_outputs_ == 2 and clf.out_activation_ == "softmax"
    assert clf.predict_proba(X).shape == (150, 2)
    assert clf.score(X, yb) > 0.95


# ------------------------------------------------- incremental training
def test_partial_fit_improves(digits):
    Xtr, Xte, ytr, yte = digits
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    clf = MLPClassifier((32,), learning_rate_init=0.01, random_state=0)
    classes = np.unique(ytr)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(Xtr[:100], ytr[:100])
    clf.partial_fit(Xtr[:100], ytr[:100], classes=classes)
    first = clf.score(Xte, yte)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1
    for _ in range(5):
        for s in range(0, len(Xtr), 100):
            clf.partial_fit(Xtr[s:s + 100], ytr[s:s + 100])
    assert len(clf.loss_curve_) == 1 + 5 * 14
    assert clf.score(Xte, yte) > first + 0.1
    assert clf.score(Xte, yte) > 0.9
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(Xtr[:10], ytr[:10] + 100)

    reg = MLPRegressor((16,), learning_rate_init=0.01, random_state=0)
    X, y = make_regression(400, 5, noise=1.0, random_state=0)
    y = y / y.std()
    reg.partial_fit(X, y)
    first = reg.score(X, y)
    for _ in range(20):
        reg.partial_fit(X, y)
    assert reg.score(X, y) > max(first, 0) + 0.2


def test_partial_fit_availability_and_errors(iris):
    X, y = iris
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@no_convergence_warning
def test_warm_start_continues(iris):
    X, y = iris
    clf = MLPClassifier((8,), max_iter=10, warm_start=True, random_state=0).fit(X, y)
    net = clf.net_
    curve = list(clf.loss_curve_)
    clf.fit(X, y)
    assert clf.net_ is net  # the same network, trained further
    assert clf.n_iter_ == 10  # epochs of the last fit, as in scikit-learn
    assert len(clf.loss_curve_) == 20 and clf.loss_curve_[:10] == curve
    assert clf.t_ == 20 * len(X)
    assert clf.loss_curve_[10] < curve[0]  # continues, does not restart
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.net_ is not net and len(clf.loss_curve_) == 10
    with pytest.raises(ValueError, match="same classes"):
        clf.set_params(warm_start=True).fit(X[y < 2], y[y < 2])


def test_pickle_and_deepcopy_continue_identically(iris):
    X, y = iris
    clf = MLPClassifier((8,), dropout=0.1, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    for restored in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        assert isinstance(restored.net_, MLP)
        np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
        assert not np.shares_memory(restored.net_.params, clf.net_.params)
        # optimizer state, step counter (dropout masks) and shuffling RNG come along
        a = copy.deepcopy(clf).partial_fit(X, y)
        restored.partial_fit(X, y)
        np.testing.assert_array_equal(restored.net_.params, a.net_.params)
        assert np.shares_memory(restored.coefs_[0], restored.net_.params)


# ------------------------------------------------- parameter mapping
def test_sklearn_parameter_names():
    ours = set(MLPClassifier().get_params())
    theirs = set(sk_nn.MLPClassifier().get_params()) - {"max_fun"}
    assert theirs <= ours
    assert ours - theirs == {"dropout", "batch_norm", "clip_norm", "class_weight"}
    assert set(sk_nn.MLPRegressor().get_params()) - {"max_fun", "loss"} <= set(
        MLPRegressor().get_params())
    for name, value in sk_nn.MLPClassifier().get_params().items():
        if name in ours:
            assert MLPClassifier().get_params()[name] == value, name


@no_convergence_warning
def test_architecture_and_attributes(iris):
    X, y = iris
    clf = MLPClassifier((7, 5), activation="logistic", max_iter=3, random_state=0).fit(X, y)
    assert clf.net_.sizes == (4, 7, 5, 3)
    assert clf.net_.activations == ("sigmoid", "sigmoid", "softmax")
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3 and clf.out_activation_ == "softmax"
    assert [c.shape for c in clf.coefs_] == [(4, 7), (7, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (3,)]
    for c, w in zip(clf.coefs_, clf.net_.weights):
        np.testing.assert_array_equal(c, w.T)
        assert np.shares_memory(c, clf.net_.params)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None


@no_convergence_warning
def test_alpha_maps_to_weight_decay(iris):
    X, y = iris  # 150 samples
    est = MLPClassifier((4,), alpha=0.5, batch_size=50, max_iter=1).fit(X, y)
    assert est.net_.optimizer.weight_decay == pytest.approx(0.5 / 50)
    est = MLPClassifier((4,), alpha=0.5, max_iter=1).fit(X, y)  # auto: min(200, n)
    assert est.net_.optimizer.weight_decay == pytest.approx(0.5 / 150)
    est = MLPClassifier((4,), solver="rprop", alpha=0.5, batch_size=10, max_iter=1).fit(X, y)
    assert est.net_.optimizer.weight_decay == pytest.approx(0.5 / 150)
    est = MLPClassifier((4,), solver="adamw", alpha=0.5, max_iter=1).fit(X, y)
    assert est.net_.optimizer.weight_decay == pytest.approx(0.5)  # decoupled, as is
    est = MLPClassifier((4,), solver="sgd", momentum=0.8, max_iter=1).fit(X, y)
    assert est.net_.optimizer.momentum == 0.8 and est.net_.optimizer.nesterov
    est = MLPClassifier((4,), solver="sgd", momentum=0.0, max_iter=1).fit(X, y)
    assert est.net_.optimizer.momentum == 0.0  # nesterov needs momentum: dropped
    with pytest.warns(UserWarning, match="clipped"):
        MLPClassifier((4,), batch_size=500, max_iter=1).fit(X, y)


@no_convergence_warning
def test_lbfgs(iris):
    X, y = iris
    clf = MLPClassifier((16,), solver="lbfgs", max_iter=300, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    assert 1 <= clf.n_iter_ <= 300 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.loss_ >= clf.loss_curve_[-1]  # objective = data loss + penalty
    with pytest.warns(ConvergenceWarning, match="lbfgs"):
        MLPClassifier((16,), solver="lbfgs", max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(solver="lbfgs", dropout=0.2, max_iter=2).fit(X, y)


# ----------------------------------- scikit-learn's stopping and lr rules
def test_stopping_rule_and_convergence_warning_match_sklearn(iris):
    X, y = iris
    kw = dict(hidden_layer_sizes=(4,), tol=1e9, n_iter_no_change=2, max_iter=50,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopping is convergence
        ours = MLPClassifier(**kw).fit(X, y)
        theirs = sk_nn.MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 4  # best, then > 2 epochs without gain
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier((4,), max_iter=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier((4,), max_iter=2).partial_fit(X, y, classes=[0, 1, 2])


def test_learning_rate_schedules_match_sklearn(iris):
    X, y = iris
    n = len(X)
    clf = MLPClassifier((4,), solver="sgd", learning_rate="invscaling", power_t=0.5,
                        learning_rate_init=0.1, max_iter=3, n_iter_no_change=100)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    np.testing.assert_allclose(clf.net_.history_.lr,
                               [0.1, 0.1 / (n + 1) ** 0.5, 0.1 / (2 * n + 1) ** 0.5])
    # adaptive: divide by 5 where scikit-learn would stop, stop once lr <= 1e-6
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive",
              learning_rate_init=0.1, tol=1e9, n_iter_no_change=1, max_iter=100,
              random_state=0)
    ours = MLPClassifier(**kw).fit(X, y)
    theirs = sk_nn.MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 100
    lrs = ours.net_.history_.lr
    assert lrs[:3] == [0.1] * 3 and lrs[3] == pytest.approx(0.02) and lrs[-1] <= 1e-5
    # learning_rate applies to sgd only, as in scikit-learn
    adam = MLPClassifier((4,), learning_rate="invscaling", max_iter=3)
    with pytest.warns(ConvergenceWarning):
        adam.fit(X, y)
    assert adam.net_.history_.lr == [0.001] * 3


def test_early_stopping(digits):
    Xtr, _, ytr, _ = digits
    clf = MLPClassifier((32,), early_stopping=True, n_iter_no_change=3, max_iter=200,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(Xtr / 16.0, ytr)
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    # scikit-learn's MLPClassifier, same settings and initialisation, stops at 0.81-0.87 here
    # (random_state 0, 1, 2): X / 16 and patience 3 stop early
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.8
    assert clf.best_loss_ is None
    # the last 4 epochs failed to beat the best: the best epoch's weights were restored
    assert np.argmax(clf.validation_scores_) < clf.n_iter_ - 3


@no_convergence_warning
def test_reproducible_and_verbose(iris, capsys):
    X, y = iris
    a = MLPClassifier((8,), dropout=0.2, max_iter=5, random_state=3, verbose=True).fit(X, y)
    assert "Iteration 5, loss = " in capsys.readouterr().out
    b = MLPClassifier((8,), dropout=0.2, max_iter=5, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.net_.params, b.net_.params)
    c = MLPClassifier((8,), dropout=0.2, max_iter=5, random_state=4).fit(X, y)
    assert not np.array_equal(a.net_.params, c.net_.params)
    assert accuracy_score(y, a.predict(X)) == a.score(X, y)
