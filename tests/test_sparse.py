"""Sparse (scipy.sparse) input: same results as the same data dense, never densified.

What is checked
---------------
* ``predict`` / ``evaluate`` / ``gradient`` / ``train_step`` / ``fit`` on a CSR
  matrix equal the same calls on its dense form (float32 and float64; relu,
  tanh, sigmoid; MSE, cross-entropy on labels, binary cross-entropy, Poisson,
  Huber; SGD with and without weight decay -- ``fit`` trains a transposed copy
  of W1 there --, momentum + weight decay, Adam, AdamW, L-BFGS; dropout and
  batch norm on the first layer; shuffling; a validation split), to float
  tolerance.
* A diverging sparse epoch restores the network (W1 back in its layout).
* The sparse gradient against central finite differences (float64).
* CSC / COO / ``csr_array`` / integer / boolean data, and unsorted or
  duplicate indices, give the canonical CSR results; the caller's matrix is
  left as it was.
* Bad input (NaN / inf values, wrong feature count, no rows, corrupt index
  arrays, complex values; sparse X where only dense is taken) raises a clear
  error before anything changes.
* Never densified: fitting and predicting on 1e6 features (dense form 1.2 GB)
  keeps tracemalloc's peak far below one dense copy.
* scikit-learn estimators (fit / predict / partial_fit; sparse tag) and the
  ``fastbp.jit`` sparse functions agree with the dense path.
"""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

import fastbp
from fastbp import jit as fj
from fastbp.sklearn import MLPClassifier, MLPRegressor

N, K = 37, 60


def _csr(dtype=np.float64, n=N, k=K, density=0.08, seed=0):
    """A random CSR matrix with some empty rows."""
    X = sp.random(n, k, density=density, format="csr", random_state=seed, dtype=np.float64)
    X = X.multiply(4.0).tocsr()
    X.data -= 2.0
    X = X.tolil()
    for r in (3, 10):  # empty rows
        if r < n:
            X[r, :] = 0
    return X.tocsr().astype(dtype)


def _targets(loss, n=N, m=3, seed=1):
    rng = np.random.default_rng(seed)
    if loss == "cross_entropy":
        return rng.integers(0, m, n)
    if loss == "binary_cross_entropy":
        return (rng.random((n, m)) > 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(2.0, (n, m)).astype(float)
    return rng.normal(size=(n, m))


def _pair(sizes=(K, 8, 3), **kw):
    a = fastbp.MLP(list(sizes), seed=0, **kw)
    return a, a.copy()


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


CASES = [  # activation, loss, extra network settings
    ("relu", "cross_entropy", {}),
    ("tanh", "mse", {}),
    ("sigmoid", "binary_cross_entropy", {}),
    ("relu", "poisson", {}),
    ("tanh", "huber", {}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("act,loss,extra", CASES)
def test_inference_and_gradient_match_dense(dtype, act, loss, extra):
    X = _csr(dtype)
    y = _targets(loss)
    a, b = _pair(activation=act, loss=loss, dtype=dtype, **extra)
    tol = _tol(dtype)
    np.testing.assert_allclose(a.predict(X), b.predict(X.toarray()), **tol)
    assert a.predict(X).dtype == dtype
    np.testing.assert_allclose(a.evaluate(X, y), b.evaluate(X.toarray(), y), **tol)
    la, ga = a.gradient(X, y)
    lb, gb = b.gradient(X.toarray(), y)
    assert ga.dtype == dtype
    np.testing.assert_allclose(la, lb, **tol)
    np.testing.assert_allclose(ga, gb, rtol=tol["rtol"], atol=tol["atol"] * 10)


def test_gradient_in_chunks_matches_dense(monkeypatch):
    """More rows than one inference chunk: the chunked sum agrees too."""
    from fastbp import network
    monkeypatch.setattr(network, "CHUNK", 8)
    X, y = _csr(), _targets("mse")
    a, b = _pair(activation="tanh")
    np.testing.assert_allclose(a.predict(X), b.predict(X.toarray()), rtol=1e-10, atol=1e-12)
    la, ga = a.gradient(X, y)
    lb, gb = b.gradient(X.toarray(), y)
    np.testing.assert_allclose(la, lb, rtol=1e-10)
    np.testing.assert_allclose(ga, gb, rtol=1e-9, atol=1e-12)


def test_gradient_finite_differences():
    X, y = _csr(n=9, k=12, density=0.3), _targets("cross_entropy", n=9)
    net = fastbp.MLP([12, 5, 4, 3], activation="tanh", loss="cross_entropy", seed=3)
    _, g = net.gradient(X, y)
    p0 = net.params.copy()
    eps = 1e-6
    num = np.empty_like(g)
    for i in range(p0.size):
        p = p0.copy()
        p[i] += eps
        net.params = p
        up = net.evaluate(X, y)
        p[i] -= 2 * eps
        net.params = p
        num[i] = (up - net.evaluate(X, y)) / (2 * eps)
    net.params = p0
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)
    # first-layer columns of features that never occur get exactly zero gradient
    W = g[:12 * 5].reshape(5, 12)
    unused = np.asarray(X.getnnz(axis=0) == 0)
    assert np.all(W[:, unused] == 0.0)


OPTS = [  # plain SGD (with or without decay) runs on the transposed copy of W1 in fit
    ("sgd", dict(lr=0.05)),
    ("sgd", dict(lr=0.05, weight_decay=1e-2)),
    ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    ("adam", dict(lr=0.01, weight_decay=1e-3)),
    ("adamw", dict(lr=0.01, weight_decay=1e-2)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opt,kw", OPTS)
def test_train_step_matches_dense(dtype, opt, kw):
    X, y = _csr(dtype), _targets("cross_entropy")
    a, b = _pair(loss="cross_entropy", dtype=dtype)
    for _ in range(3):
        la = a.train_step(X, y, optimizer=opt, **kw)
        lb = b.train_step(X.toarray(), y, optimizer=opt, **kw)
        np.testing.assert_allclose(la, lb, **_tol(dtype))
    np.testing.assert_allclose(a.params, b.params, **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opt,kw", OPTS)
def test_fit_matches_dense(dtype, opt, kw):
    X, y = _csr(dtype), _targets("mse")
    a, b = _pair(activation="tanh", dtype=dtype)
    ha = a.fit(X, y, epochs=4, batch_size=5, shuffle=True, optimizer=opt, **kw)
    hb = b.fit(X.toarray(), y, epochs=4, batch_size=5, shuffle=True, optimizer=opt, **kw)
    np.testing.assert_allclose(ha.loss, hb.loss, **_tol(dtype))
    np.testing.assert_allclose(a.params, b.params, **_tol(dtype))
    assert a.steps == b.steps == 4 * 8


@pytest.mark.parametrize("opt,kw", [("sgd", dict(lr=0.05, weight_decay=1e-3)),
                                    ("adam", dict(lr=1e-2))])
def test_weighted_and_per_step_scheduled_fit_matches_dense(opt, kw):
    """Sample weights travel with their sparse rows; per-step rates apply per batch."""
    from fastbp.schedules import WarmupCosine

    X, y = _csr(), _targets("mse")
    w = np.random.default_rng(5).uniform(0.0, 3.0, N)
    w[[0, 7, 20]] = 0.0
    a, b = _pair(activation="tanh")
    sched = WarmupCosine(total_steps=4 * 8, warmup_steps=5)
    ha = a.fit(X, y, epochs=4, batch_size=5, shuffle=True, optimizer=opt, sample_weight=w,
               lr_schedule=sched, **kw)
    hb = b.fit(X.toarray(), y, epochs=4, batch_size=5, shuffle=True, optimizer=opt,
               sample_weight=w, lr_schedule=sched, **kw)
    np.testing.assert_allclose(ha.loss, hb.loss, **_tol(np.float64))
    np.testing.assert_allclose(a.params, b.params, **_tol(np.float64))
    assert a.optimizer.lr == b.optimizer.lr
    la, ga = a.gradient(X, y, sample_weight=w)
    lb, gb = b.gradient(X.toarray(), y, sample_weight=w)
    np.testing.assert_allclose(la, lb, **_tol(np.float64))
    np.testing.assert_allclose(ga, gb, **_tol(np.float64))


@pytest.mark.parametrize("extra", [dict(dropout=0.3), dict(batch_norm=True),
                                   dict(dropout=[0.2, 0.1], batch_norm=[True, False])])
def test_fit_dropout_batch_norm_match_dense(extra):
    sizes = (K, 8, 6, 3) if isinstance(extra.get("dropout"), list) else (K, 8, 3)
    X, y = _csr(), _targets("cross_entropy")
    a, b = _pair(sizes, loss="cross_entropy", **extra)
    a.fit(X, y, epochs=3, batch_size=6, optimizer="adam", lr=0.01)
    b.fit(X.toarray(), y, epochs=3, batch_size=6, optimizer="adam", lr=0.01)
    # (biases feeding batch norm get only rounding noise as gradient: hence atol)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(a._stats, b._stats, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(a.evaluate(X, y, training=True),
                               b.evaluate(X.toarray(), y, training=True), rtol=1e-9)


def test_fit_validation_split_no_shuffle_and_grad_norms():
    X, y = _csr(), _targets("cross_entropy")
    a, b = _pair(loss="cross_entropy")
    kw = dict(epochs=3, batch_size=4, lr=0.05, shuffle=False, validation_fraction=0.25,
              record_grad_norms=True, early_stopping=False)
    ha, hb = a.fit(X, y, **kw), b.fit(X.toarray(), y, **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ha.val_loss, hb.val_loss, rtol=1e-9)
    assert ha.val_score == hb.val_score
    np.testing.assert_allclose(ha.grad_norms, hb.grad_norms, rtol=1e-9)
    Xv, yv = _csr(seed=5, n=11), _targets("cross_entropy", n=11, seed=5)
    ha = a.fit(X, y, epochs=2, validation_data=(Xv, yv), lr=0.05, seed=1)
    hb = b.fit(X.toarray(), y, epochs=2, validation_data=(Xv.toarray(), yv), lr=0.05, seed=1)
    np.testing.assert_allclose(ha.val_loss, hb.val_loss, rtol=1e-9)


def test_divergence_restores_the_epoch_start():
    """A fused SGD epoch that diverges mid-way leaves W1 as it was (untransposed)."""
    X, y = _csr(), _targets("mse")
    net = fastbp.MLP([K, 8, 3], activation="tanh", seed=0)
    net.fit(X, y, epochs=1, lr=0.01, batch_size=5)
    before = net.params.copy()
    with pytest.raises(fastbp.DivergenceError):
        net.fit(X, y * 1e3, epochs=1, lr=1e50, batch_size=5)
    np.testing.assert_array_equal(net.params, before)
    with pytest.warns(RuntimeWarning, match="diverged"):
        hist = net.fit(X, y * 1e3, epochs=1, lr=1e50, batch_size=5, on_divergence="warn")
    assert hist.stop_reason == "diverged"
    np.testing.assert_array_equal(net.params, before)
    net.fit(X, y, epochs=1, lr=0.01, batch_size=5)  # and it trains on from there
    assert np.all(np.isfinite(net.params))


def test_lbfgs_matches_dense():
    X, y = _csr(), _targets("mse")
    a, b = _pair(activation="tanh")
    a.fit(X, y, epochs=5, optimizer="lbfgs")
    b.fit(X.toarray(), y, epochs=5, optimizer="lbfgs")
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("convert", [
    lambda X: X.tocsc(), lambda X: X.tocoo(), lambda X: sp.csr_array(X),
    lambda X: X.astype(np.float32),
])
def test_other_formats_and_dtypes(convert):
    X = _csr()
    a, b = _pair(activation="tanh")
    np.testing.assert_allclose(a.predict(convert(X)), b.predict(convert(X).toarray()),
                               rtol=1e-12, atol=1e-14)


def test_integer_and_bool_data_are_converted():
    Xi = (_csr() * 3).astype(np.int64)
    Xi.eliminate_zeros()
    a, b = _pair(activation="tanh")
    np.testing.assert_allclose(a.predict(Xi), b.predict(Xi.toarray().astype(float)),
                               rtol=1e-12)
    Xb = Xi.astype(bool)
    np.testing.assert_allclose(a.predict(Xb), b.predict(Xb.toarray().astype(float)),
                               rtol=1e-12)


def test_unsorted_and_duplicate_indices():
    # row 0: columns 5, 2, 5 (duplicate, unsorted); row 1: column 7
    data = np.array([1.0, 2.0, 3.0, 4.0])
    indices = np.array([5, 2, 5, 7])
    indptr = np.array([0, 3, 4])
    X = sp.csr_matrix((data, indices, indptr), shape=(2, K))
    assert not X.has_canonical_format
    canon = X.copy()
    canon.sum_duplicates()
    y = _targets("mse", n=2)
    a, b = _pair(activation="tanh")
    np.testing.assert_allclose(a.predict(X), b.predict(canon.toarray()), rtol=1e-12)
    a.fit(X, y, epochs=2, batch_size=1, lr=0.1)
    b.fit(canon.toarray(), y, epochs=2, batch_size=1, lr=0.1)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)
    # the caller's matrix is untouched
    np.testing.assert_array_equal(X.indices, indices)
    np.testing.assert_array_equal(X.data, data)


@pytest.mark.parametrize("bad,match", [
    (lambda X: _with_value(X, np.nan), "NaN or infinite"),
    (lambda X: _with_value(X, np.inf), "NaN or infinite"),
    (lambda X: sp.csr_matrix((N, K + 1)), "has 61 features but the network expects 60"),
    (lambda X: sp.csr_matrix((0, K)), "empty"),
    (lambda X: _corrupt(X), "not a valid CSR matrix"),
])
def test_bad_input_raises_and_changes_nothing(bad, match):
    X, y = _csr(), _targets("mse")
    Xb = bad(X)
    net = fastbp.MLP([K, 8, 3], seed=0)
    p0 = net.params.copy()
    for call in (lambda: net.fit(Xb, y[:Xb.shape[0]], epochs=1),
                 lambda: net.train_step(Xb, y[:Xb.shape[0]]),
                 lambda: net.gradient(Xb, y[:Xb.shape[0]]),
                 lambda: net.evaluate(Xb, y[:Xb.shape[0]]),
                 lambda: net.predict(Xb)):
        with pytest.raises(ValueError, match=match):
            call()
    np.testing.assert_array_equal(net.params, p0)
    assert net.steps == 0


def _with_value(X, v):
    X = X.copy()
    X.data[4] = v
    return X


def _corrupt(X):
    X = X.copy()
    X.indices[2] = K + 5  # scipy does not re-check after construction
    return X


def test_complex_sparse_and_dense_only_entries_raise_type_error():
    Xc = _csr().astype(np.complex128)
    net = fastbp.MLP([K, 8, 3], seed=0)
    with pytest.raises(TypeError, match="complex"):
        net.predict(Xc)
    from fastbp._validate import check_X
    with pytest.raises(TypeError, match="scipy.sparse matrix, which is not supported here"):
        check_X(_csr(), K, np.float64)


def test_never_densified():
    """1e6 features, 300 rows: the dense form (1.2 GB in float32) is never made."""
    k, n, hidden = 1_000_000, 300, 4
    rng = np.random.default_rng(0)
    nnz_row = 30
    indices = rng.integers(0, k, n * nnz_row)
    indptr = np.arange(0, n * nnz_row + 1, nnz_row)
    X = sp.csr_matrix((rng.random(n * nnz_row).astype(np.float32), indices, indptr),
                      shape=(n, k))
    y = rng.integers(0, 2, n)
    dense_bytes = n * k * 4
    net = fastbp.MLP([k, hidden, 2], loss="cross_entropy", dtype="float32", seed=0)
    # compile first (tracemalloc would also count the compiler's own objects)
    warm = net.copy()
    warm.fit(X[:5], y[:5], epochs=1, batch_size=4, lr=0.1)
    warm.predict(X[:5])
    warm.gradient(X[:5], y[:5])
    model_bytes = net.params.nbytes  # weights, plus gradient / snapshot copies of them
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=2, batch_size=32, lr=0.1)
        proba = net.predict(X)
        net.gradient(X[:64], y[:64])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert proba.shape == (n, 2) and np.all(np.isfinite(proba))
    assert peak < 5 * model_bytes + 20 * 2**20 < dense_bytes / 4, (peak, model_bytes)


# ----------------------------------------------------------------- scikit-learn
def test_sklearn_classifier_sparse_matches_dense():
    X = _csr()
    y = np.array(["a", "b", "c"])[_targets("cross_entropy")]
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, batch_size=8)
    with pytest.warns(Warning):
        a = MLPClassifier(**kw).fit(X, y)
    with pytest.warns(Warning):
        b = MLPClassifier(**kw).fit(X.toarray(), y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X.toarray()), rtol=1e-9)
    assert list(a.predict(X.tocsc())) == list(b.predict(X.toarray()))
    a.partial_fit(X, y)
    b.partial_fit(X.toarray(), y)
    np.testing.assert_allclose(a.net_.params, b.net_.params, rtol=1e-9, atol=1e-12)
    assert a.__sklearn_tags__().input_tags.sparse


def test_sklearn_regressor_sparse_float32_early_stopping():
    X = _csr(np.float32, n=60)
    y = _targets("mse", n=60)[:, 0]
    kw = dict(hidden_layer_sizes=(8,), max_iter=4, random_state=0, early_stopping=True,
              solver="sgd", learning_rate_init=0.01)
    with pytest.warns(Warning):
        a = MLPRegressor(**kw).fit(X, y)
    with pytest.warns(Warning):
        b = MLPRegressor(**kw).fit(X.toarray(), y)
    assert a.predict(X).dtype == np.float32
    np.testing.assert_allclose(a.predict(X), b.predict(X.toarray()), rtol=2e-4, atol=2e-5)


# ------------------------------------------------------------------- fastbp.jit
@njit(cache=True)
def _user_loop(state, data, indices, indptr, y, steps):
    """A user's own loop: sparse training steps with no Python in between."""
    total = 0.0
    for _ in range(steps):
        total = fj.sparse_train_step(state, data, indices, indptr, y)
    return total


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jit_sparse_functions_match_python_api(dtype):
    X, y = _csr(dtype), _targets("cross_entropy")
    a, b = _pair(loss="cross_entropy", dtype=dtype)
    tol = _tol(dtype)
    st = a.state(batch_size=16, optimizer=fastbp.Adam(0.01))
    args = (X.data, X.indices, X.indptr)
    out = np.zeros((N, 3), dtype)
    fj.sparse_predict(st, *args, out)  # N > batch_size: runs in chunks
    np.testing.assert_allclose(out, b.predict(X.toarray()), **tol)
    np.testing.assert_allclose(fj.sparse_loss(st, *args, y), b.evaluate(X.toarray(), y), **tol)
    Xs, ys = X[:12], y[:12]
    sargs = (Xs.data, Xs.indices.astype(np.int64), Xs.indptr.astype(np.int64))
    loss = fj.sparse_gradient(st, *sargs, ys)
    lb, gb = b.gradient(Xs.toarray(), ys)
    np.testing.assert_allclose(loss, lb, **tol)
    np.testing.assert_allclose(st.work.grad, gb, rtol=tol["rtol"], atol=tol["atol"] * 10)
    opt = fastbp.Adam(0.01)
    for _ in range(3):
        lb = b.train_step(Xs.toarray(), ys, optimizer=opt)
    la = _user_loop(st, *sargs, ys, 3)
    np.testing.assert_allclose(la, lb, **tol)
    np.testing.assert_allclose(a.params, b.params, **tol)


def test_jit_sparse_misuse_raises():
    X, y = _csr(), _targets("mse")
    net = fastbp.MLP([K, 8, 3], seed=0)
    st = net.state(batch_size=8)
    p0 = net.params.copy()
    Xs = X[:4]
    bad_indices = Xs.indices.copy()
    bad_indices[0] = K
    with pytest.raises(ValueError, match="not a CSR matrix"):
        fj.sparse_train_step(st, Xs.data, bad_indices, Xs.indptr, y[:4])
    with pytest.raises(ValueError, match="capacity"):
        fj.sparse_train_step(st, X.data, X.indices, X.indptr, y)
    with pytest.raises(ValueError, match="different numbers of rows"):
        fj.sparse_train_step(st, Xs.data, Xs.indices, Xs.indptr, y[:5])
    with pytest.raises(ValueError, match="no rows"):
        fj.sparse_loss(st, Xs.data[:0], Xs.indices[:0], Xs.indptr[:1], y[:0])
    np.testing.assert_array_equal(net.params, p0)
