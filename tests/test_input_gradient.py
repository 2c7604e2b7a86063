"""Derivatives with respect to the inputs: ``MLP.input_gradient``, ``MLP.jacobian`` and
their ``fastbp.jit`` forms, against central finite differences (float64), against each
other, and against PyTorch autograd when torch is installed."""

import numpy as np
import pytest
from numba import njit

import fastbp
import fastbp.jit as fj

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu"]
# (output activation, loss)
HEADS = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"),
         ("identity", "mse"), ("sigmoid", "mse"), ("tanh", "mse"), ("softmax", "mse")]


def _net(act, out, loss, dtype="float64", bn=False, dropout=0.0, sizes=(4, 7, 6, 3), seed=0):
    net = fastbp.MLP(list(sizes), activation=act, output=out, loss=loss, dtype=dtype, seed=seed,
                     batch_norm=bn, dropout=dropout, leaky_slope=0.1, elu_alpha=0.7)
    rng = np.random.default_rng(seed + 1)
    for b in net.biases:  # non-zero biases, so relu kinks are not all at x = 0
        b[:] = rng.normal(0.0, 0.3, b.shape)
    for l, (g, be) in enumerate(zip(net.bn_gamma, net.bn_beta)):
        if g is not None:  # batch norm with non-trivial parameters and running statistics
            g[:] = rng.uniform(0.5, 1.5, g.shape)
            be[:] = rng.normal(0.0, 0.3, be.shape)
            net.running_mean[l][:] = rng.normal(0.0, 0.5, g.shape)
            net.running_var[l][:] = rng.uniform(0.5, 2.0, g.shape)
    return net


def _data(net, n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, net.sizes[0])).astype(net.dtype)
    m = net.sizes[-1]
    if net.loss == "cross_entropy":
        y = rng.integers(0, m, n)
    elif net.loss == "binary_cross_entropy":
        y = rng.random((n, m)).astype(net.dtype)
    else:
        y = rng.standard_normal((n, m)).astype(net.dtype)
    return X, y


def _fd_input_gradient(net, X, y, h=1e-6):
    G = np.zeros_like(X)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            Xp, Xm = X.copy(), X.copy()
            Xp[i, j] += h
            Xm[i, j] -= h
            G[i, j] = (net.evaluate(Xp, y) - net.evaluate(Xm, y)) / (2 * h)
    return G


def _fd_jacobian(net, X, h=1e-6):
    n, d = X.shape
    J = np.zeros((n, net.sizes[-1], d))
    for j in range(d):
        Xp, Xm = X.copy(), X.copy()
        Xp[:, j] += h
        Xm[:, j] -= h
        J[:, :, j] = (net.predict(Xp) - net.predict(Xm)) / (2 * h)  # rows are independent
    return J


@pytest.mark.parametrize("out,loss", HEADS)
@pytest.mark.parametrize("act", HIDDEN)
def test_input_gradient_matches_finite_differences(act, out, loss):
    net = _net(act, out, loss)
    X, y = _data(net, 5)
    before = net.params.copy()
    L, dX = net.input_gradient(X, y)
    assert dX.shape == X.shape and dX.dtype == np.float64
    assert L == pytest.approx(net.evaluate(X, y), rel=1e-12)
    np.testing.assert_allclose(dX, _fd_input_gradient(net, X, y), rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(net.params, before)


@pytest.mark.parametrize("out,loss", HEADS)
@pytest.mark.parametrize("act", HIDDEN)
def test_jacobian_matches_finite_differences(act, out, loss):
    net = _net(act, out, loss)
    X, _ = _data(net, 5)
    J = net.jacobian(X)
    assert J.shape == (5, 3, 4) and J.dtype == np.float64
    np.testing.assert_allclose(J, _fd_jacobian(net, X), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("out,loss", [("softmax", "cross_entropy"), ("identity", "mse"),
                                      ("sigmoid", "binary_cross_entropy")])
def test_batch_norm_and_dropout_in_inference_mode(out, loss):
    net = _net(["tanh", "gelu"], out, loss, bn=True, dropout=[0.3, 0.5])
    X, y = _data(net, 6)
    stats = net._stats.copy()
    counter = net.steps
    _, dX = net.input_gradient(X, y)
    np.testing.assert_allclose(dX, _fd_input_gradient(net, X, y), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(net.jacobian(X), _fd_jacobian(net, X), rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(net._stats, stats)
    assert net.steps == counter


def test_input_gradient_is_the_loss_weighted_jacobian():
    """For mse with an identity output, dL/dX[i] = (1/n) sum_k (y_ik - d_ik) J[i, k, :]."""
    net = _net(["relu", "elu"], "identity", "mse", sizes=(5, 8, 8, 4))
    X, d = _data(net, 9)
    _, dX = net.input_gradient(X, d)
    J = net.jacobian(X)
    expect = np.einsum("ik,ikj->ij", net.predict(X) - d, J) / X.shape[0]
    np.testing.assert_allclose(dX, expect, rtol=1e-12, atol=1e-15)


def test_chunked_rows_equal_one_batch(monkeypatch):
    import fastbp.network as network
    net = _net("tanh", "softmax", "cross_entropy", bn=True)
    X, y = _data(net, 11)
    L, dX = net.input_gradient(X, y)
    J = net.jacobian(X)
    monkeypatch.setattr(network, "CHUNK", 4)
    net2 = net.copy()
    L2, dX2 = net2.input_gradient(X, y)
    np.testing.assert_allclose(L2, L, rtol=1e-14)
    np.testing.assert_allclose(dX2, dX, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(net2.jacobian(X), J, rtol=1e-12, atol=1e-16)


def test_large_layers_use_blas_and_agree():
    """Wide layers take the BLAS route (strided output rows for the Jacobian)."""
    net = _net("relu", "softmax", "cross_entropy", sizes=(40, 300, 6))
    X, y = _data(net, 70)
    J = net.jacobian(X)
    np.testing.assert_allclose(J, _fd_jacobian(net, X), rtol=1e-5, atol=1e-8)
    _, dX = net.input_gradient(X, y)
    np.testing.assert_allclose(dX[:3], _fd_input_gradient(net, X[:3], y[:3]) * 3 / 70,
                               rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("out,loss", [("softmax", "cross_entropy"), ("identity", "mse")])
def test_float32_agrees_with_float64(out, loss):
    net64 = _net(["tanh", "relu"], out, loss, bn=[True, False])
    net32 = _net(["tanh", "relu"], out, loss, dtype="float32", bn=[True, False])
    net32.params[:] = net64.params
    net32._stats[:] = net64._stats
    X, y = _data(net64, 7)
    L32, g32 = net32.input_gradient(X, y)
    L64, g64 = net64.input_gradient(X, y)
    assert g32.dtype == np.float32 and net32.jacobian(X).dtype == np.float32
    np.testing.assert_allclose(L32, L64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(net32.jacobian(X), net64.jacobian(X), rtol=2e-4, atol=1e-6)


def test_bad_input_raises_before_any_kernel():
    net = _net("tanh", "softmax", "cross_entropy")
    X, y = _data(net, 4)
    with pytest.raises(ValueError, match="features"):
        net.input_gradient(X[:, :3], y)
    with pytest.raises(ValueError, match="features"):
        net.jacobian(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        net.jacobian(np.where(X > 1, np.nan, X))
    with pytest.raises(ValueError, match="2-D"):
        net.jacobian(X[0])
    with pytest.raises(ValueError):
        net.input_gradient(X, y[:3])
    with pytest.raises(ValueError):
        net.input_gradient(X, np.full(4, 7))  # label out of range


# ------------------------------------------------------------------------- fastbp.jit


@njit(cache=False)
def _user_loop(state, X, y, out, J, reps):
    """A user's loop: input gradients and Jacobians from compiled code."""
    s = 0.0
    for _ in range(reps):
        s += fj.input_gradient(state, X, y, out)
        fj.jacobian(state, X, J)
        fj.jacobian_one(state, X[1], J[1])
    return s


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jit_matches_python_api_with_chunking(dtype):
    net = _net(["gelu", "sigmoid"], "softmax", "cross_entropy", dtype=dtype, bn=[True, True])
    X, y = _data(net, 10)
    state = net.state(batch_size=4)  # 10 rows go through in chunks of 4
    grad_before = state.work.grad.copy()
    out = np.empty_like(X)
    J = np.empty((10, 3, 4), dtype=dtype)
    L = fj.input_gradient(state, X, y, out)
    fj.jacobian(state, X, J)
    L_py, dX_py = net.input_gradient(X, y)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(L, L_py, rtol=tol)
    np.testing.assert_allclose(out, dX_py, rtol=tol, atol=tol * 1e-3)
    np.testing.assert_allclose(J, net.jacobian(X), rtol=tol, atol=tol * 1e-3)
    np.testing.assert_array_equal(state.work.grad, grad_before)  # the parameter gradient stays
    out2 = np.empty_like(X)
    J2 = np.empty_like(J)
    assert _user_loop(state, X, y, out2, J2, 2) == pytest.approx(2 * L, rel=1e-12)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(J2, J)
    J1 = np.empty((3, 4), dtype=dtype)
    fj.jacobian_one(state, X[7], J1)
    np.testing.assert_array_equal(J1, J[7])


def test_jit_misuse_raises_value_error():
    net = _net("tanh", "identity", "mse")
    X, y = _data(net, 4)
    state = net.state(batch_size=4)
    with pytest.raises(ValueError, match="shape of X"):
        fj.input_gradient(state, X, y, np.empty((4, 3)))
    with pytest.raises(ValueError, match="n_out, n_in"):
        fj.jacobian(state, X, np.empty((4, 4, 3)))
    with pytest.raises(ValueError, match="n_in columns"):
        fj.jacobian(state, X[:, :2].copy(), np.empty((4, 3, 2)))
    with pytest.raises(ValueError, match="rows"):
        fj.input_gradient(state, X, y[:3], np.empty_like(X))
    with pytest.raises(ValueError, match="n_out, n_in"):
        fj.jacobian_one(state, X[0], np.empty((4, 3)))
    with pytest.raises(ValueError, match="1-D with n_in"):
        fj.jacobian_one(state, X[0, :2].copy(), np.empty((3, 4)))


def test_jit_calls_allocate_nothing():
    """After warm-up, input gradients and Jacobians allocate nothing in compiled code
    (counted as in tests/test_allocations.py: NRT allocations minus argument unboxings)."""
    from test_allocations import assert_no_kernel_allocations, track_nrt
    for dtype in ("float32", "float64"):
        net = _net(["relu", "tanh"], "softmax", "cross_entropy", dtype=dtype, bn=[True, False])
        X, y = _data(net, 12)
        state = net.state(batch_size=5)
        out = np.empty_like(X)
        J = np.empty((12, 3, 4), dtype=dtype)
        fj.input_gradient(state, X, y, out)
        fj.jacobian(state, X, J)
        fj.jacobian_one(state, X[3], J[3])
        _user_loop(state, X, y, out, J, 1)
        with track_nrt() as t:
            for _ in range(20):
                fj.input_gradient(state, X, y, out)
                fj.jacobian(state, X, J)
                fj.jacobian_one(state, X[3], J[3])
            _user_loop(state, X, y, out, J, 50)
        assert t.calls == 61
        assert_no_kernel_allocations(t)


# --------------------------------------------------------------------- PyTorch autograd


def _torch_forward(torch, net, X):
    F = torch.nn.functional
    acts = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "relu": torch.relu, "leaky_relu": lambda z: F.leaky_relu(z, net.leaky_slope),
            "elu": lambda z: F.elu(z, net.elu_alpha), "softplus": F.softplus,
            "gelu": lambda z: F.gelu(z, approximate="tanh")}
    a = X
    for l in range(net.n_layers):
        z = a @ torch.from_numpy(net.weights[l]).T + torch.from_numpy(net.biases[l])
        if l < net.n_layers - 1:
            if net.bn_gamma[l] is not None:
                z = ((z - torch.from_numpy(net.running_mean[l]))
                     / torch.sqrt(torch.from_numpy(net.running_var[l]) + net.bn_eps)
                     * torch.from_numpy(net.bn_gamma[l]) + torch.from_numpy(net.bn_beta[l]))
            a = acts[net.activations[l]](z)
    return z  # output logits / pre-activation


@pytest.mark.parametrize("act", HIDDEN)
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_matches_torch_autograd(act, loss):
    torch = pytest.importorskip("torch")
    out = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}[loss]
    net = _net([act, "tanh"], out, loss, bn=[True, False], dropout=[0.2, 0.0])
    X, y = _data(net, 6)
    Xt = torch.tensor(X, requires_grad=True)
    z = _torch_forward(torch, net, Xt)
    F = torch.nn.functional
    if loss == "cross_entropy":
        L = F.cross_entropy(z, torch.from_numpy(y))
        outputs = lambda v: torch.softmax(v, dim=1)  # noqa: E731
    elif loss == "binary_cross_entropy":
        L = F.binary_cross_entropy_with_logits(z, torch.from_numpy(y), reduction="sum") / 6
        outputs = torch.sigmoid
    else:
        L = 0.5 * ((z - torch.from_numpy(y)) ** 2).sum() / 6
        outputs = lambda v: v  # noqa: E731
    L.backward()
    L_ours, dX = net.input_gradient(X, y)
    assert L_ours == pytest.approx(L.item(), rel=1e-12)
    np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-10, atol=1e-14)
    J = torch.autograd.functional.jacobian(
        lambda v: outputs(_torch_forward(torch, net, v.reshape(1, -1)))[0],
        torch.tensor(X[0]))
    np.testing.assert_allclose(net.jacobian(X[:1])[0], J.numpy(), rtol=1e-10, atol=1e-14)
