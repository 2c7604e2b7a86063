"""The lane kernel: K networks trained side by side in SIMD vectors.

``Population.fit`` trains dense networks (no dropout / batch norm) on the lane
kernel.  Every network must train exactly as a lone ``MLP.fit`` would (up to
summation order): every activation, loss, optimizer and regulariser, both
dtypes, populations that do not fill the last block of ``LANES`` networks,
per-network divergence, and the keyed shuffle.  The row intrinsics it is
built from are checked against NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from fastbp._config import GROUP, LANES
from fastbp._kernels.rng import permutation
from fastbp._kernels.simd import sigmoid_rows, tanh_rows, vdot, vger
from fastbp.population import Population

N = 21          # not a multiple of the batch size
BATCH = 4


def _tol(dtype):
    return dict(rtol=3e-5, atol=3e-6) if np.dtype(dtype) == np.float32 else \
        dict(rtol=1e-10, atol=1e-12)


def problem(sizes, loss, k, dtype, seed, labels=True, per_network=True):
    r = np.random.default_rng(seed)
    n_in, n_out = sizes[0], sizes[-1]
    X = r.standard_normal((k, N, n_in) if per_network else (N, n_in)).astype(dtype)
    lead = X.shape[:-1]
    if loss == "cross_entropy" and labels:
        y = r.integers(0, n_out, lead)
    elif loss == "cross_entropy":
        y = np.eye(n_out, dtype=dtype)[r.integers(0, n_out, lead)]
    elif loss == "binary_cross_entropy":
        y = (r.random(lead + (n_out,)) < 0.5).astype(dtype)
    else:
        y = np.tanh(r.standard_normal(lead + (n_out,))).astype(dtype)
    return X, y


def check_equals_separate(pop, X, y, epochs, lrs, per_network=True, **opt):
    nets = [pop.network(i).copy() for i in range(pop.k)]
    losses = pop.fit(X, y, epochs=epochs, batch_size=BATCH, lr=lrs, shuffle=False, **opt)
    lr_each = np.broadcast_to(np.asarray(lrs, dtype=float), (pop.k,))
    tol = _tol(pop.dtype)
    for i, net in enumerate(nets):
        Xi, yi = (X[i], y[i]) if per_network else (X, y)
        h = net.fit(Xi, yi, epochs=epochs, batch_size=BATCH, lr=float(lr_each[i]),
                    shuffle=False, **opt)
        np.testing.assert_allclose(losses[:, i], h.loss, **tol)
        np.testing.assert_allclose(pop.params[i], net.params, **tol)
        assert pop.network(i).steps == net.steps
    return losses


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "leaky_relu", "elu",
                                        "softplus", "gelu", "identity"])
def test_every_hidden_activation(activation, dtype):
    """Two hidden layers: fused tanh/sigmoid/relu deltas and the generic path."""
    sizes = [3, 7, 5, 2]
    pop = Population(sizes, 5, activation=activation, dtype=dtype, seed=1)
    X, y = problem(sizes, "mse", 5, dtype, seed=2)
    check_equals_separate(pop, X, y, 2, 0.05)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["mse-tanh", "mse-sigmoid", "mse-softmax", "ce-labels",
                                  "ce-onehot", "bce"])
def test_every_loss_and_output(case, dtype):
    loss, output, labels = {
        "mse-tanh": ("mse", "tanh", False), "mse-sigmoid": ("mse", "sigmoid", False),
        "mse-softmax": ("mse", "softmax", False), "ce-labels": ("cross_entropy", None, True),
        "ce-onehot": ("cross_entropy", None, False),
        "bce": ("binary_cross_entropy", None, False)}[case]
    sizes = [4, 6, 3]
    pop = Population(sizes, 4, activation="relu", output=output, loss=loss, dtype=dtype, seed=3)
    X, y = problem(sizes, loss, 4, dtype, seed=4, labels=labels)
    check_equals_separate(pop, X, y, 2, 0.1)


OPTIMIZERS = {
    "sgd-decay": dict(optimizer="sgd", weight_decay=0.01),
    "sgd-l1-clip": dict(optimizer="sgd", l1=1e-3, clip_norm=0.5),
    "momentum": dict(optimizer="sgd", momentum=0.9),
    "nesterov-decay": dict(optimizer="sgd", momentum=0.8, nesterov=True, weight_decay=1e-3),
    "adam": dict(optimizer="adam"),
    "adam-l2-clip": dict(optimizer="adam", weight_decay=1e-2, clip_norm=1.0),
    "adamw": dict(optimizer="adamw", weight_decay=0.05),
    "rprop": dict(optimizer="rprop"),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_every_optimizer(opt, dtype):
    sizes = [3, 8, 2]
    pop = Population(sizes, 6, activation="tanh", dtype=dtype, seed=5)
    X, y = problem(sizes, "mse", 6, dtype, seed=6)
    lrs = np.linspace(0.005, 0.02, 6) if opt.startswith(("adam", "rprop")) else \
        np.linspace(0.02, 0.1, 6)
    check_equals_separate(pop, X, y, 3, lrs, **OPTIMIZERS[opt])


@pytest.mark.parametrize("k", [1, LANES - 1, LANES + 3])
def test_partial_blocks_and_shared_data(k):
    """Populations that leave padding lanes in the last block; data shared by all."""
    sizes = [2, 5, 1]
    pop = Population(sizes, k, activation="tanh", dtype="float32", seed=7)
    X, y = problem(sizes, "mse", k, "float32", seed=8, per_network=False)
    check_equals_separate(pop, X, y, 1, 0.1, per_network=False)
    if k > 1:
        assert not np.allclose(pop.params[0], pop.params[-1])


def test_a_diverging_network_stops_alone():
    sizes = [3, 6, 1]
    k = LANES + 2
    pop = Population(sizes, k, activation="relu", seed=9)
    X, y = problem(sizes, "mse", k, "float64", seed=10)
    X[3] *= 1e3  # network 3's data makes its loss overflow with a large rate
    lrs = np.full(k, 0.05)
    lrs[3] = 1e4
    nets = [pop.network(i).copy() for i in range(k)]
    with np.errstate(all="ignore"):
        losses = pop.fit(X, y, epochs=3, batch_size=BATCH, lr=lrs, shuffle=False)
    assert np.isnan(losses[:, 3]).any() and np.isfinite(pop.params[3]).all()
    for i in (0, 2, 4, k - 1):  # the others train as if alone
        h = nets[i].fit(X[i], y[i], epochs=3, batch_size=BATCH, lr=0.05, shuffle=False)
        np.testing.assert_allclose(losses[:, i], h.loss, **_tol("float64"))
        np.testing.assert_allclose(pop.params[i], nets[i].params, **_tol("float64"))


def test_shuffle_walks_each_network_through_its_keyed_permutation():
    """Epoch ``e`` of network ``i`` visits rows ``permutation(seed_e, i)``."""
    sizes = [3, 5, 2]
    k = 3
    pop = Population(sizes, k, activation="tanh", seed=11)
    X, y = problem(sizes, "mse", k, "float64", seed=12)
    nets = [pop.network(i).copy() for i in range(k)]
    rng = np.random.default_rng()
    rng.bit_generator.state = pop.rng.bit_generator.state  # the epoch seeds fit will draw
    seeds = [int(rng.integers(2**63)) for _ in range(2)]
    pop.fit(X, y, epochs=2, batch_size=BATCH, lr=0.05, shuffle=True)
    for i, net in enumerate(nets):
        for s in seeds:
            order = np.empty(N, dtype=np.int64)
            _permute(order, s, i)
            assert sorted(order) == list(range(N))
            net.fit(X[i][order], y[i][order], epochs=1, batch_size=BATCH, lr=0.05,
                    shuffle=False)
        np.testing.assert_allclose(pop.params[i], net.params, **_tol("float64"))


@njit
def _permute(order, seed, k):
    permutation(order, seed, k)


def test_permutations_differ_between_networks_and_epochs():
    a, b, c = (np.empty(50, dtype=np.int64) for _ in range(3))
    _permute(a, 1, 0)
    _permute(b, 1, 1)
    _permute(c, 2, 0)
    assert sorted(a) == list(range(50))
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    again = np.empty(50, dtype=np.int64)
    _permute(again, 1, 0)
    np.testing.assert_array_equal(a, again)


# ------------------------------------------------------------- row intrinsics
@njit
def _rows_ops(dst, X, Y, B, G, Dl, ng):
    # sample g's rows are 10 apart in Y, dst and Dl
    vdot(dst, 0, 10, X, 1, 2, Y, 0, 1, 10, 3, B, 2, ng)      # B[2] + sum_t X[1+2t] * Y_g[t]
    vdot(dst, 1, 10, X, 0, 1, Y, 1, 1, 10, 2, B, -1, ng)     # from zero
    vger(G, 1, 2, Dl, 0, 10, Y, 0, 1, 10, 2, 0, ng)         # G[1+2t] += sum_g Dl_g[0] Y_g[t]


@pytest.mark.parametrize("ng", sorted({1, GROUP - 1, GROUP} - {0}))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_intrinsics_match_numpy(dtype, ng):
    """A full group (shared row loads) and a short one (sample by sample)."""
    r = np.random.default_rng(13)
    rows = 10 * GROUP
    X, B, G = (r.standard_normal((8, LANES)).astype(dtype) for _ in range(3))
    Y, Dl = (r.standard_normal((rows, LANES)).astype(dtype) for _ in range(2))
    dst = np.zeros((rows, LANES), dtype)
    G0 = G.copy()
    _rows_ops(dst, X, Y, B, G, Dl, ng)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    want_g = G0.copy()
    assert not dst[10 * ng:].any()  # samples beyond the group are not touched
    for g in range(ng):
        Yg, dg = Y[10 * g:], dst[10 * g:]
        np.testing.assert_allclose(dg[0], B[2] + X[1] * Yg[0] + X[3] * Yg[1] + X[5] * Yg[2],
                                   **tol)
        np.testing.assert_allclose(dg[1], X[0] * Yg[1] + X[1] * Yg[2], **tol)
        want_g[1] += Dl[10 * g] * Yg[0]
        want_g[3] += Dl[10 * g] * Yg[1]
        want_g[0] += Dl[10 * g]
    np.testing.assert_allclose(G, want_g, **tol)


@njit
def _act_rows(A, Z, which):
    if which == 0:
        tanh_rows(A, 0, Z, 0, Z.shape[0])
    else:
        sigmoid_rows(A, 0, Z, 0, Z.shape[0])


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_activation_rows_accuracy(name):
    """Whole-row float32 tanh/sigmoid (AVX-512 reciprocal where available)
    stay within the scalar versions' documented bounds (2.5 ulp); float64
    (same algorithm, double constants) within 1e-15 relative (a few ulp)."""
    x = np.concatenate([np.linspace(-100, 100, 200_001), np.linspace(-2, 2, 200_001),
                        np.geomspace(1e-30, 1e-2, 999), -np.geomspace(1e-30, 1e-2, 999),
                        [np.nan, np.inf, -np.inf, 0.0]])
    n = -(-x.size // LANES) * LANES
    ref_fn = np.tanh if name == "tanh" else (lambda v: 1 / (1 + np.exp(-v)))
    for dtype in (np.float32, np.float64):
        Z = np.zeros(n, dtype)
        Z[:x.size] = x
        Z = Z.reshape(-1, LANES)
        A = np.empty_like(Z)
        _act_rows(A, Z, 0 if name == "tanh" else 1)
        got = A.reshape(-1)[:x.size].astype(np.float64)
        xs = x.astype(dtype).astype(np.float64)
        with np.errstate(over="ignore"):
            ref = ref_fn(xs)
        assert np.isnan(got[-4]) and got[-3] == ref[-3] and got[-2] == ref[-2]
        ok = np.isfinite(ref) & (np.abs(ref) > 1e-37)
        if dtype == np.float32:
            spacing = np.spacing(np.abs(ref[ok]).astype(np.float32)).astype(np.float64)
            assert (np.abs(got[ok] - ref[ok]) / spacing).max() <= 2.5
        else:
            np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-15)


@pytest.mark.parametrize("batch", [1, 3, GROUP + 1, 2 * GROUP])
def test_batches_that_split_into_short_groups(batch):
    """Full groups of GROUP samples and the short tail of every batch (batch 1:
    online learning) give what the lone networks give."""
    sizes = [3, 6, 2]
    pop = Population(sizes, 3, activation="sigmoid", dtype="float64", seed=14)
    X, y = problem(sizes, "mse", 3, "float64", seed=15)
    nets = [pop.network(i).copy() for i in range(3)]
    losses = pop.fit(X, y, epochs=2, batch_size=batch, lr=0.1, shuffle=False)
    for i, net in enumerate(nets):
        h = net.fit(X[i], y[i], epochs=2, batch_size=batch, lr=0.1, shuffle=False)
        np.testing.assert_allclose(losses[:, i], h.loss, **_tol("float64"))
        np.testing.assert_allclose(pop.params[i], net.params, **_tol("float64"))
