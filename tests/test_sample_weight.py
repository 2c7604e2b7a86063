"""Per-sample weights: the weighted mean loss sum_i w_i E_i / sum_i w_i.

* Loss and gradient against a NumPy reference built from tests/naive.py (the
  weighted mean of naive's one-row gradients) and against finite differences.
* Zero weights == removing the samples (gradient, full-batch fit, every
  optimizer, L-BFGS); integer weights == repeating samples (gradient).
* Weights travel with their samples through the shuffled compiled epoch: a
  shuffled weighted fit equals, bit for bit, a Python loop of weighted
  train_step calls over the same permutations.  All-ones weights reproduce the
  unweighted general engine bit for bit; small networks (whose unweighted fits
  take the flat small-network engine) are routed to the general engine.
* A batch whose weights sum to 0 takes no step.  Bad weights raise ValueError
  and change nothing.  fastbp.jit takes the same weights; Population refuses.
"""

from __future__ import annotations

import numpy as np
import pytest

import naive
import fastbp
from fastbp import _engine
import fastbp.jit as fj
from fastbp._kernels.small import eligible
from numba import njit

LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")


def _net(loss, sizes=(5, 7, 6, 3), dtype="float64", seed=0, activation="tanh"):
    return fastbp.MLP(list(sizes), activation=activation, loss=loss, dtype=dtype, seed=seed)


def _data(loss, n, sizes=(5, 7, 6, 3), seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = naive.make_targets(loss, n, sizes[-1], rng)
    w = rng.random(n) * 3
    w[rng.random(n) < 0.3] = 0.0
    return X, y, w


# ------------------------------------------------------------------ reference
def ref_loss(net, X, y, w):
    """Weighted mean of naive's per-sample losses."""
    out = naive.forward(net, X)[-1]
    E = naive.per_sample_loss(net, out, naive.targets(net, y))
    return float(np.sum(w * E) / np.sum(w))


def ref_gradient(net, X, y, w):
    """sum_i w_i grad E_i / sum_i w_i, from naive's gradient of each single row."""
    g = sum(w[i] * naive.gradient(net, X[i:i + 1], y[i:i + 1])[1] for i in range(len(w)))
    return ref_loss(net, X, y, w), g / np.sum(w)


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_and_gradient_match_weighted_reference(loss):
    net = _net(loss)
    X, y, w = _data(loss, 23)
    E, g = net.gradient(X, y, sample_weight=w)
    E_ref, g_ref = ref_gradient(naive.Net.copy_of(net), X, y, w)
    assert E == pytest.approx(E_ref, rel=1e-12)
    assert naive.rel_error(g, g_ref) < 1e-12
    assert net.evaluate(X, y, sample_weight=w) == pytest.approx(E_ref, rel=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_gradient_matches_finite_differences(loss):
    net = _net(loss)
    X, y, w = _data(loss, 17, seed=3)
    _, g = net.gradient(X, y, sample_weight=w)
    g_fd = naive.finite_difference(lambda: net.evaluate(X, y, sample_weight=w), net.params)
    assert naive.rel_error(g, g_fd) < 1e-9


@pytest.mark.parametrize("loss", LOSSES)
def test_zero_weight_equals_removing_the_sample_in_gradient(loss):
    net = _net(loss)
    X, y, w = _data(loss, 40)
    keep = w > 0
    E, g = net.gradient(X, y, sample_weight=w)
    E2, g2 = net.gradient(X[keep], y[keep], sample_weight=w[keep])
    assert E == pytest.approx(E2, rel=1e-13)
    np.testing.assert_allclose(g, g2, rtol=1e-12, atol=1e-15)


def test_gradient_over_several_chunks():
    """More rows than one inference chunk: chunks are combined by their weight sums."""
    from fastbp.network import CHUNK
    net = _net("mse", sizes=(3, 4, 2))
    X, y, w = _data("mse", CHUNK + 300, sizes=(3, 4, 2))
    w[:CHUNK] = 0.0  # the whole first chunk weighs nothing
    E, g = net.gradient(X, y, sample_weight=w)
    E2, g2 = net.gradient(X[CHUNK:], y[CHUNK:], sample_weight=w[CHUNK:])
    assert E == pytest.approx(E2, rel=1e-12)
    np.testing.assert_allclose(g, g2, rtol=1e-10, atol=1e-14)
    assert net.evaluate(X, y, sample_weight=w) == pytest.approx(E2, rel=1e-12)


def test_integer_weights_equal_repeated_samples():
    net = _net("cross_entropy")
    X, y, _ = _data("cross_entropy", 15)
    w = np.random.default_rng(5).integers(0, 4, 15)
    w[0] = 2
    E, g = net.gradient(X, y, sample_weight=w)
    E2, g2 = net.gradient(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    assert E == pytest.approx(E2, rel=1e-13)
    np.testing.assert_allclose(g, g2, rtol=1e-12, atol=1e-15)


def test_scaling_all_weights_changes_nothing():
    net = _net("mse")
    X, y, w = _data("mse", 20)
    E, g = net.gradient(X, y, sample_weight=w)
    E2, g2 = net.gradient(X, y, sample_weight=w * 8.0)  # a power of two: exact
    assert E == E2
    np.testing.assert_array_equal(g, g2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unit_weights_reproduce_unweighted_general_engine(dtype):
    sizes = (20, 64, 32, 4)
    net = _net("cross_entropy", sizes=sizes, dtype=dtype)
    X, y, _ = _data("cross_entropy", 50, sizes=sizes, dtype=dtype)
    assert not eligible(net._layout, net._lparams, 10)  # general engine either way
    a, b = net.copy(), net.copy()
    with _engine.force("general"):  # the split engine would take the unweighted fit
        ha = a.fit(X, y, epochs=2, batch_size=10, lr=0.05, seed=3)
    hb = b.fit(X, y, epochs=2, batch_size=10, lr=0.05, seed=3, sample_weight=np.ones(50))
    np.testing.assert_array_equal(a.params, b.params)
    assert ha.loss == hb.loss
    assert net.gradient(X, y)[0] == net.gradient(X, y, sample_weight=np.ones(50))[0]



def test_weighted_and_unweighted_share_one_compiled_kernel():
    """Absent weights and per-step rates are empty float64 vectors, not None: weighted
    calls (and a per-step schedule) after unweighted ones compile no new training kernel."""
    from fastbp._kernels import train
    kernels = (train.batch_epoch, train.train_batch, train._forward_loss, train.loss_grad,
               train.loss_sum)
    sizes = (6, 40, 2)
    net = _net("mse", sizes=sizes)
    X, y, w = _data("mse", 24, sizes=sizes)
    st = net.state(batch_size=8, optimizer="adam", lr=0.01)
    net.fit(X, y, epochs=1, batch_size=8, optimizer="adam", lr=0.01)
    net.gradient(X, y)
    net.evaluate(X, y)
    net.train_step(X[:8], y[:8], lr=0.01)
    fj.train_step(st, X[:8], y[:8])
    fj.gradient(st, X[:8], y[:8])
    fj.loss(st, X, y)
    before = [set(k.signatures) for k in kernels]
    net.fit(X, y, epochs=1, batch_size=8, optimizer="adam", lr=0.01, sample_weight=w)
    net.fit(X, y, epochs=1, batch_size=8, optimizer="adam", lr=0.01, lr_schedule="onecycle")
    net.gradient(X, y, sample_weight=w)
    net.evaluate(X, y, sample_weight=w)
    net.train_step(X[:8], y[:8], lr=0.01, sample_weight=w[:8])
    fj.train_step(st, X[:8], y[:8], w[:8])
    fj.gradient(st, X[:8], y[:8], w[:8])
    fj.loss(st, X, y, w)
    assert [set(k.signatures) for k in kernels] == before

def test_small_network_weighted_fit_is_routed_to_general_engine():
    """Unweighted, this net trains on the flat small-network engine; weighted
    fits take the general engine, which agrees to rounding with unit weights."""
    net = _net("mse", sizes=(2, 4, 1))
    X, y, _ = _data("mse", 12, sizes=(2, 4, 1))
    assert eligible(net._layout, net._lparams, 4)
    a, b = net.copy(), net.copy()
    a.fit(X, y, epochs=3, batch_size=4, lr=0.1, seed=0)
    b.fit(X, y, epochs=3, batch_size=4, lr=0.1, seed=0, sample_weight=np.ones(12))
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-14)
    # and the weighted small-network fit equals a loop of weighted train_steps
    X, y, w = _data("mse", 12, sizes=(2, 4, 1))
    c, d = net.copy(), net.copy()
    c.fit(X, y, epochs=2, batch_size=4, lr=0.1, shuffle=False, sample_weight=w)
    opt = fastbp.SGD(0.1)
    for _ in range(2):
        for s in range(0, 12, 4):
            if w[s:s + 4].sum() > 0:
                d.train_step(X[s:s + 4], y[s:s + 4], optimizer=opt, sample_weight=w[s:s + 4])
    np.testing.assert_array_equal(c.params, d.params)


@pytest.mark.parametrize("optimizer,kw", [("sgd", {}), ("sgd", {"momentum": 0.9}),
                                          ("adam", {}), ("rprop", {}),
                                          ("sgd", {"clip_norm": 0.5, "weight_decay": 1e-3})])
def test_zero_weights_equal_removal_in_full_batch_fit(optimizer, kw):
    net = _net("cross_entropy")
    X, y, w = _data("cross_entropy", 30)
    keep = w > 0
    a, b = net.copy(), net.copy()
    a.fit(X, y, epochs=4, batch_size=30, lr=0.05, shuffle=False, optimizer=optimizer,
          sample_weight=w, **kw)
    b.fit(X[keep], y[keep], epochs=4, batch_size=30, lr=0.05, shuffle=False,
          optimizer=optimizer, sample_weight=w[keep], **kw)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10, atol=1e-13)


def test_zero_weights_equal_removal_with_lbfgs():
    net = _net("mse")
    X, y, w = _data("mse", 30)
    keep = w > 0
    a, b = net.copy(), net.copy()
    a.fit(X, y, epochs=15, optimizer="lbfgs", sample_weight=w)
    b.fit(X[keep], y[keep], epochs=15, optimizer="lbfgs", sample_weight=w[keep])
    np.testing.assert_allclose(a.params, b.params, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_shuffled_weighted_fit_equals_train_step_loop(optimizer):
    """Weights travel with their samples through the epoch's permutation."""
    net = _net("cross_entropy")
    X, y, w = _data("cross_entropy", 37)
    fitted, looped = net.copy(), net.copy()
    hist = fitted.fit(X, y, epochs=3, batch_size=8, lr=0.05, seed=11, optimizer=optimizer,
                      sample_weight=w)
    rng = np.random.default_rng(11)
    opt = fastbp.optim.make_optimizer(optimizer, 0.05)
    order = np.arange(37)
    losses = []
    for _ in range(3):
        np.copyto(order, np.arange(37))
        rng.shuffle(order)
        tot = wsum = 0.0
        for s in range(0, 37, 8):
            idx = order[s:s + 8]
            if w[idx].sum() == 0:
                continue
            loss = looped.train_step(X[idx], y[idx], optimizer=opt, sample_weight=w[idx])
            tot += loss * w[idx].sum()
            wsum += w[idx].sum()
        losses.append(tot / wsum)
    np.testing.assert_array_equal(fitted.params, looped.params)
    np.testing.assert_allclose(hist.loss, losses, rtol=1e-12)


def test_batch_with_zero_weight_sum_takes_no_step():
    net = _net("mse")
    X, y, w = _data("mse", 12)
    w[:] = 1.0
    w[4:8] = 0.0
    keep = w > 0
    a, b = net.copy(), net.copy()
    a.fit(X, y, epochs=2, batch_size=4, lr=0.1, shuffle=False, sample_weight=w,
          optimizer="adam")
    b.fit(X[keep], y[keep], epochs=2, batch_size=4, lr=0.1, shuffle=False, optimizer="adam")
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=1e-15)
    assert a.steps == b.steps == 4
    assert a.optimizer.step[0] == 4


def test_train_step_with_zero_weight_sum_changes_nothing():
    net = _net("mse")
    X, y, _ = _data("mse", 6)
    opt = fastbp.Adam(0.01)
    p = net.params.copy()
    assert net.train_step(X, y, optimizer=opt, sample_weight=np.zeros(6)) == 0.0
    np.testing.assert_array_equal(net.params, p)
    assert opt.step[0] == 0 and net.steps == 0


def test_weighted_train_step_follows_weighted_gradient():
    net = _net("binary_cross_entropy")
    X, y, w = _data("binary_cross_entropy", 9)
    E, g = net.gradient(X, y, sample_weight=w)
    p = net.params.copy()
    assert net.train_step(X, y, lr=0.1, sample_weight=w) == pytest.approx(E, rel=1e-13)
    np.testing.assert_allclose(net.params, p - 0.1 * g, rtol=1e-13, atol=1e-15)


def test_validation_weights():
    net = _net("mse")
    X, y, w = _data("mse", 30)
    Xv, yv, wv = _data("mse", 10, seed=8)
    hist = net.fit(X, y, epochs=2, batch_size=8, sample_weight=w,
                   validation_data=(Xv, yv, wv))
    assert hist.val_loss[-1] == net.evaluate(Xv, yv, sample_weight=wv)
    hist = net.fit(X, y, epochs=2, batch_size=8, sample_weight=w, validation_fraction=0.3,
                   seed=0)
    assert len(hist.val_loss) == 2


# ------------------------------------------------------------------ bad input
BAD = [(np.array([1.0, -1.0] * 5), "negative"), (np.array([np.nan] + [1.0] * 9), "NaN"),
       (np.array([np.inf] + [1.0] * 9), "NaN or infinite"), (np.ones(9), "9 weights"),
       (np.ones((10, 1)), "1-D"), (np.zeros(10), "sums to zero"), ("abc", "string")]


@pytest.mark.parametrize("bad,match", BAD)
def test_bad_weights_raise_and_change_nothing(bad, match):
    net = _net("mse")
    X, y, _ = _data("mse", 10)
    p = net.params.copy()
    rng_state = net.rng.bit_generator.state
    calls = [lambda: net.fit(X, y, epochs=1, sample_weight=bad),
             lambda: net.gradient(X, y, sample_weight=bad),
             lambda: net.evaluate(X, y, sample_weight=bad)]
    if match != "sums to zero":  # a zero-sum batch is a valid no-op step
        calls.append(lambda: net.train_step(X, y, lr=0.1, sample_weight=bad))
    for call in calls:
        with pytest.raises((ValueError, TypeError), match=match):
            call()
    np.testing.assert_array_equal(net.params, p)
    assert net.rng.bit_generator.state == rng_state and net.steps == 0


def test_population_refuses_weights():
    pop = fastbp.Population([2, 3, 1], 2, seed=0)
    with pytest.raises(TypeError, match="sample_weight"):
        pop.fit(np.zeros((4, 2)), np.zeros((4, 1)), sample_weight=np.ones(4))


# ------------------------------------------------------------------ fastbp.jit
@njit(cache=False)
def _jit_loop(state, X, y, w, steps):
    loss = 0.0
    for _ in range(steps):
        loss = fj.train_step(state, X, y, w)
    return loss


def test_jit_weighted_functions_match_python_api():
    net = _net("cross_entropy")
    X, y, w = _data("cross_entropy", 12)
    twin = net.copy()
    st = net.state(batch_size=12, optimizer="adam", lr=0.01)
    assert fj.loss(st, X, y, w) == pytest.approx(twin.evaluate(X, y, sample_weight=w), rel=1e-13)
    E, g = twin.gradient(X, y, sample_weight=w)
    assert fj.gradient(st, X, y, w) == pytest.approx(E, rel=1e-13)
    np.testing.assert_allclose(st.work.grad, g, rtol=1e-12, atol=1e-15)
    _jit_loop(st, X, y, w, 3)
    opt = fastbp.Adam(0.01)
    for _ in range(3):
        twin.train_step(X, y, optimizer=opt, sample_weight=w)
    np.testing.assert_array_equal(net.params, twin.params)
    # zero-sum weights: nothing happens
    p = net.params.copy()
    assert fj.train_step(st, X, y, np.zeros(12)) == 0.0
    assert fj.loss(st, X, y, np.zeros(12)) == 0.0
    np.testing.assert_array_equal(net.params, p)


@pytest.mark.parametrize("bad", [np.ones(11), -np.ones(12), np.full(12, np.nan)])
def test_jit_bad_weights_raise(bad):
    net = _net("mse")
    X, y, _ = _data("mse", 12)
    st = net.state(batch_size=12)
    p = net.params.copy()
    for f in (fj.train_step, fj.gradient, fj.loss):
        with pytest.raises(ValueError, match="weights"):
            f(st, X, y, bad)
    np.testing.assert_array_equal(net.params, p)


# ------------------------------------------------------------------ scikit-learn estimators
def _clf_data():
    from sklearn.datasets import make_classification
    X, y = make_classification(60, 5, n_informative=3, n_classes=3, weights=[0.6, 0.3, 0.1],
                               random_state=0)
    return X, np.array(["a", "b", "c"])[y]


no_convergence_warning = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")


@no_convergence_warning
def test_class_weight_equals_sample_weight():
    from sklearn.utils.class_weight import compute_sample_weight
    from fastbp.sklearn import MLPClassifier
    X, y = _clf_data()
    kw = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0, solver="sgd")
    for cw in ({"a": 1.0, "b": 2.0, "c": 5.0}, "balanced"):
        a = MLPClassifier(class_weight=cw, **kw).fit(X, y)
        b = MLPClassifier(**kw).fit(X, y, sample_weight=compute_sample_weight(cw, y))
        np.testing.assert_array_equal(a.net_.params, b.net_.params)
    # class and sample weights multiply
    sw = np.random.default_rng(0).random(60)
    cw = {"a": 1.0, "b": 2.0, "c": 5.0}
    a = MLPClassifier(class_weight=cw, **kw).fit(X, y, sample_weight=sw)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=sw * compute_sample_weight(cw, y))
    np.testing.assert_array_equal(a.net_.params, b.net_.params)


@no_convergence_warning
def test_estimator_zero_weights_equal_removal_and_partial_fit():
    from fastbp.sklearn import MLPClassifier, MLPRegressor
    X, y = _clf_data()
    sw = np.ones(60)
    sw[::4] = 0
    keep = sw > 0
    kw = dict(hidden_layer_sizes=(6,), max_iter=4, random_state=0, shuffle=False)  # full batch
    for cls, yy in ((MLPClassifier, y), (MLPRegressor, X[:, 0] * 2.0)):
        a = cls(**kw).fit(X, yy, sample_weight=sw)
        b = cls(**kw).fit(X[keep], yy[keep])
        np.testing.assert_allclose(a.net_.params, b.net_.params, rtol=1e-10, atol=1e-12)
        assert a.loss_curve_ == pytest.approx(b.loss_curve_, rel=1e-10)
    a = MLPClassifier(**kw).partial_fit(X, y, classes=["a", "b", "c"], sample_weight=sw)
    b = MLPClassifier(**kw).partial_fit(X[keep], y[keep], classes=["a", "b", "c"])
    np.testing.assert_allclose(a.net_.params, b.net_.params, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="balanced"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="zero"):
        MLPClassifier(**kw).fit(X, y, sample_weight=np.zeros(60))


@no_convergence_warning
def test_estimator_early_stopping_keeps_weights_with_their_samples():
    from fastbp.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = X @ [1.0, -2.0, 0.5]
    sw = rng.random(80) + 0.5
    est = MLPRegressor((5,), early_stopping=True, max_iter=5, random_state=0)
    est.fit(X, y, sample_weight=sw)
    assert len(est.validation_scores_) == 5


# ------------------------------------------------------------------ DataParallel
def test_data_parallel_weights_over_two_ranks(tmp_path):
    """Two MPI ranks, each taking a shard of every weighted batch, train the
    same network as MLP.fit with the same weights (and per-step schedule)."""
    import test_mpi
    if not test_mpi.importlib.util.find_spec("mpi4py") or test_mpi.MPIEXEC is None:
        pytest.skip("needs mpi4py and mpiexec")
    rc, output, _ = test_mpi.launch("weights_check.py", tmp_path, timeout=300)
    assert rc == 0, output[-6000:]
    r0, r1 = (dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2))
    for key in r0:
        assert np.array_equal(r0[key], r1[key]), key  # replicas identical
    for shuffle in (False, True):
        np.testing.assert_allclose(r0[f"p2_{shuffle}"], r0[f"p0_{shuffle}"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(r0[f"loss2_{shuffle}"], r0[f"loss0_{shuffle}"], rtol=1e-12)
        np.testing.assert_array_equal(r0[f"lr2_{shuffle}"], r0[f"lr0_{shuffle}"])
        s2, s0 = r0[f"steps_{shuffle}"]
        assert s2 == s0
    assert r0["steps_False"][0] == 3 * 6  # 7 batches an epoch, the first weighs nothing


def test_streamed_data_refuses_weights_and_per_step_schedules():
    from fastbp.schedules import OneCycle
    net = _net("mse")
    X, y, w = _data("mse", 40)
    p = net.params.copy()
    with pytest.raises(ValueError, match="sample_weight is not supported with streamed"):
        net.fit(X, y, chunk_size=16, batch_size=8, sample_weight=w)
    with pytest.raises(ValueError, match="per-step"):
        net.fit(X, y, chunk_size=16, batch_size=8, lr_schedule=OneCycle(10))
    np.testing.assert_array_equal(net.params, p)


@no_convergence_warning
@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam", "rprop"])
def test_estimator_integer_weights_equal_repeated_samples(solver):
    """scikit-learn's check_sample_weight_equivalence, with 20 iterations (at
    the check's 50, lbfgs on this overfit problem amplifies rounding to 1e-3)."""
    from sklearn.utils import shuffle
    from fastbp.sklearn import MLPClassifier
    rng = np.random.RandomState(42)
    X = rng.rand(15, 30)
    y = rng.randint(0, 3, size=15)
    sw = rng.randint(0, 5, size=15)
    Xw, yw, sww = shuffle(X, y, sw, random_state=0)
    kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=20, random_state=0)
    a = MLPClassifier(**kw).fit(X.repeat(sw, axis=0), y.repeat(sw))
    b = MLPClassifier(**kw).fit(Xw, yw, sample_weight=sww)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)
    assert a.loss_curve_ == pytest.approx(b.loss_curve_, rel=1e-10)


@pytest.mark.parametrize("loss,kw", [("huber", {"huber_delta": 0.7}), ("mae", {}),
                                     ("quantile", {"quantile": 0.3}), ("poisson", {})])
def test_robust_and_poisson_losses_match_weighted_reference(loss, kw):
    """Every loss goes through the one weighting helper, parameters included."""
    sizes = (4, 6, 2)
    net = fastbp.MLP(list(sizes), activation="tanh", loss=loss, seed=0, **kw)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((19, 4))
    y = rng.poisson(1.5, (19, 2)).astype(float) if loss == "poisson" else \
        rng.standard_normal((19, 2))
    w = rng.random(19) * 2
    w[:4] = 0.0
    E, g = net.gradient(X, y, sample_weight=w)
    E_ref, g_ref = ref_gradient(naive.Net.copy_of(net), X, y, w)
    assert E == pytest.approx(E_ref, rel=1e-12)
    assert naive.rel_error(g, g_ref) < 1e-12
    E2, g2 = net.gradient(X[4:], y[4:], sample_weight=w[4:])
    np.testing.assert_allclose(g, g2, rtol=1e-12, atol=1e-15)
