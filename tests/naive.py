"""Slow, obviously-right NumPy reference for fastbp.

Everything here is written from the formulas in ../shared/reference/backpropagation.md
and the public contract, in float64, one layer at a time, with nothing shared with the
library except the *public* description of a network:

    net.weights[l]   (sizes[l+1], sizes[l])   W_l
    net.biases[l]    (sizes[l+1],)            b_l
    net.activations  tuple of per-layer activation names (the last is the output's)
    net.loss         "mse" | "cross_entropy" | "binary_cross_entropy" | "huber" | "mae" |
                     "quantile" | "poisson"   (net.huber_delta, net.quantile if present)

Forward:   z_l = a_{l-1} W_l^T + b_l,   a_l = f_l(z_l),   a_0 = X
Loss:      batch mean of the per-sample loss
Backward:  delta_L = dE/dz_L,  dE/dW_l = delta_l^T a_{l-1},  dE/db_l = sum_n delta_l,
           delta_{l-1} = (delta_l W_l) * f'_{l-1}(z_{l-1})
Update:    w <- w - lr * dE/dw

Any object with ``weights``, ``biases``, ``activations`` and ``loss`` attributes works
(see :class:`Net`), so the reference can run its own SGD without touching a fastbp net.

Optimizers: :class:`RefOptimizer` (SGD, momentum, Nesterov, Adam, AdamW, iRPROP-, with L2,
L1 and clipping) on flat float64 vectors; :func:`weight_mask` / :func:`bn_bias_mask` read
the network's public ``layout`` table.
"""

from __future__ import annotations

import math

import numpy as np

HIDDEN = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")
OUTPUTS = ("identity", "sigmoid", "tanh", "softmax")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")

_GELU_C = math.sqrt(2.0 / math.pi)


# --------------------------------------------------------------------------- activations


def _sigmoid(z):
    # split by sign so exp never overflows
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def act(name, z, leaky_slope=0.01, elu_alpha=1.0):
    """f(z), elementwise except softmax (row-wise)."""
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return z.copy()
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, leaky_slope * z)
    if name == "elu":
        return np.where(z > 0, z, elu_alpha * np.expm1(np.minimum(z, 0.0)))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "gelu":
        u = _GELU_C * (z + 0.044715 * z**3)
        return 0.5 * z * (1.0 + np.tanh(u))
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "exp":
        return np.exp(z)
    raise ValueError(f"naive: unknown activation {name!r}")


def act_deriv(name, z, leaky_slope=0.01, elu_alpha=1.0):
    """f'(z) for the elementwise activations (softmax is handled by its Jacobian)."""
    z = np.asarray(z, dtype=np.float64)
    if name == "identity":
        return np.ones_like(z)
    if name == "sigmoid":
        s = _sigmoid(z)
        return s * (1.0 - s)
    if name == "tanh":
        t = np.tanh(z)
        return 1.0 - t * t
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, leaky_slope)
    if name == "elu":
        return np.where(z > 0, 1.0, elu_alpha * np.exp(np.minimum(z, 0.0)))
    if name == "softplus":
        return _sigmoid(z)
    if name == "gelu":
        u = _GELU_C * (z + 0.044715 * z**3)
        t = np.tanh(u)
        du = _GELU_C * (1.0 + 3.0 * 0.044715 * z**2)
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du
    if name == "exp":
        return np.exp(z)
    raise ValueError(f"naive: no elementwise derivative for {name!r}")


# --------------------------------------------------------------------------- helpers


class Net:
    """A plain holder of float64 copies of a network's public description."""

    def __init__(self, weights, biases, activations, loss, leaky_slope=0.01, elu_alpha=1.0,
                 huber_delta=1.0, quantile=0.5):
        self.weights = [np.array(w, dtype=np.float64) for w in weights]
        self.biases = [np.array(b, dtype=np.float64) for b in biases]
        self.activations = tuple(activations)
        self.loss = loss
        self.leaky_slope = leaky_slope
        self.elu_alpha = elu_alpha
        self.huber_delta = huber_delta
        self.quantile = quantile

    @classmethod
    def copy_of(cls, net):
        return cls(
            net.weights,
            net.biases,
            net.activations,
            net.loss,
            leaky_slope=float(getattr(net, "leaky_slope", 0.01)),
            elu_alpha=float(getattr(net, "elu_alpha", 1.0)),
            huber_delta=float(getattr(net, "huber_delta", 1.0)),
            quantile=float(getattr(net, "quantile", 0.5)),
        )

    @property
    def params(self):
        return flatten(self.weights, self.biases)

    def set_flat(self, flat):
        self.weights, self.biases = unflatten(flat, [w.shape for w in self.weights])


def _hyper(net):
    return dict(
        leaky_slope=float(getattr(net, "leaky_slope", 0.01)),
        elu_alpha=float(getattr(net, "elu_alpha", 1.0)),
    )


def flatten(weights, biases):
    """The params layout of the contract: W_0 (C order), b_0, W_1, b_1, ..."""
    parts = []
    for w, b in zip(weights, biases):
        parts.append(np.asarray(w, dtype=np.float64).ravel(order="C"))
        parts.append(np.asarray(b, dtype=np.float64).ravel())
    return np.concatenate(parts)


def unflatten(flat, shapes):
    weights, biases = [], []
    off = 0
    for out_dim, in_dim in shapes:
        weights.append(np.array(flat[off : off + out_dim * in_dim], dtype=np.float64).reshape(out_dim, in_dim))
        off += out_dim * in_dim
        biases.append(np.array(flat[off : off + out_dim], dtype=np.float64))
        off += out_dim
    assert off == len(flat)
    return weights, biases


def n_out(net):
    return np.asarray(net.weights[-1]).shape[0]


def targets(net, y):
    """Targets as a float64 (n, n_out) matrix (int labels -> one-hot for cross-entropy)."""
    y = np.asarray(y)
    k = n_out(net)
    if net.loss == "cross_entropy" and y.ndim == 1:
        lab = y.astype(np.int64)
        d = np.zeros((len(lab), k))
        d[np.arange(len(lab)), lab] = 1.0
        return d
    y = y.astype(np.float64)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    return y


# --------------------------------------------------------------------------- forward / loss


def _forward_full(net, X):
    hyp = _hyper(net)
    a = np.asarray(X, dtype=np.float64)
    zs, outs = [], [a]
    for w, b, name in zip(net.weights, net.biases, net.activations):
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        z = a @ w.T + b
        a = act(name, z, **hyp)
        zs.append(z)
        outs.append(a)
    return zs, outs


def forward(net, X):
    """List of layer outputs [X, a_1, ..., a_L] (float64); a_L is the prediction."""
    return _forward_full(net, X)[1]


def per_sample_loss(net, out, d):
    if net.loss == "mse":
        return 0.5 * np.sum((d - out) ** 2, axis=1)
    if net.loss == "cross_entropy":
        return -np.sum(d * np.log(out), axis=1)
    if net.loss == "binary_cross_entropy":
        return -np.sum(d * np.log(out) + (1.0 - d) * np.log(1.0 - out), axis=1)
    r = out - d
    if net.loss == "huber":
        delta = float(getattr(net, "huber_delta", 1.0))
        return np.sum(np.where(np.abs(r) <= delta, 0.5 * r * r,
                               delta * (np.abs(r) - 0.5 * delta)), axis=1)
    if net.loss == "mae":
        return np.sum(np.abs(r), axis=1)
    if net.loss == "quantile":
        tau = float(getattr(net, "quantile", 0.5))
        return np.sum(np.maximum(tau * -r, (tau - 1.0) * -r), axis=1)
    if net.loss == "poisson":  # half Poisson deviance, out = exp(z) is the rate
        dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
        return np.sum(out - d * np.log(out) + dlogd - d, axis=1)
    raise ValueError(f"naive: unknown loss {net.loss!r}")


def loss(net, X, y):
    """Batch-mean loss (float)."""
    out = forward(net, X)[-1]
    return float(np.mean(per_sample_loss(net, out, targets(net, y))))


def _dloss_dout(net, out, d):
    """dE/dy for E = batch mean of the per-sample loss."""
    n = out.shape[0]
    if net.loss == "mse":
        g = out - d
    elif net.loss == "cross_entropy":
        g = -d / out
    elif net.loss == "binary_cross_entropy":
        g = -(d / out - (1.0 - d) / (1.0 - out))
    elif net.loss == "huber":
        delta = float(getattr(net, "huber_delta", 1.0))
        g = np.clip(out - d, -delta, delta)
    elif net.loss == "mae":
        g = np.sign(out - d)  # sign(0) = 0: fastbp's subgradient
    elif net.loss == "quantile":
        tau = float(getattr(net, "quantile", 0.5))
        r = out - d
        g = np.where(r > 0, 1.0 - tau, np.where(r < 0, -tau, 0.0))
    elif net.loss == "poisson":
        g = 1.0 - d / out
    else:
        raise ValueError(f"naive: unknown loss {net.loss!r}")
    return g / n


# --------------------------------------------------------------------------- backward


def gradient_layers(net, X, y):
    """(loss, [dE/dW_l], [dE/db_l]) by the explicit chain rule, float64."""
    hyp = _hyper(net)
    zs, outs = _forward_full(net, X)
    d = targets(net, y)
    out = outs[-1]
    E = float(np.mean(per_sample_loss(net, out, d)))

    g = _dloss_dout(net, out, d)  # dE/da_L
    name = net.activations[-1]
    if name == "softmax":
        # dE/dz_j = sum_k dE/dp_k * p_k (delta_kj - p_j) = p_j (g_j - sum_k g_k p_k)
        delta = out * (g - np.sum(g * out, axis=1, keepdims=True))
    else:
        delta = g * act_deriv(name, zs[-1], **hyp)

    L = len(net.weights)
    gW = [None] * L
    gb = [None] * L
    for l in range(L - 1, -1, -1):
        gW[l] = delta.T @ outs[l]
        gb[l] = delta.sum(axis=0)
        if l > 0:
            w = np.asarray(net.weights[l], dtype=np.float64)
            delta = (delta @ w) * act_deriv(net.activations[l - 1], zs[l - 1], **hyp)
    return E, gW, gb


def gradient(net, X, y):
    """(loss, flat gradient in the params layout), float64."""
    E, gW, gb = gradient_layers(net, X, y)
    return E, flatten(gW, gb)


def sgd_step(net, X, y, lr):
    """One SGD step on a copy: returns (loss before the step, new flat params)."""
    E, g = gradient(net, X, y)
    return E, flatten(net.weights, net.biases) - lr * g


def fit_sequential(net, X, y, epochs, batch_size, lr):
    """Plain SGD over batches in order (no shuffle); the last short batch is used.

    Returns (final flat params, list of per-epoch lists of batch losses before each update).
    ``net`` is not modified.
    """
    ref = Net.copy_of(net)
    X = np.asarray(X)
    y = np.asarray(y)
    n = X.shape[0]
    history = []
    for _ in range(epochs):
        batch_losses = []
        for start in range(0, n, batch_size):
            sl = slice(start, min(start + batch_size, n))
            E, new = sgd_step(ref, X[sl], y[sl], lr)
            ref.set_flat(new)
            batch_losses.append(E)
        history.append(batch_losses)
    return ref.params, history


# --------------------------------------------------------------------------- test data


def make_targets(loss, n, n_out, rng, label_kind="int"):
    """Valid targets for a loss: mse -> reals, cross_entropy -> int labels or one-hot,
    binary_cross_entropy -> values in [0, 1] (not only 0/1, so soft targets are exercised)."""
    if loss == "mse":
        return rng.standard_normal((n, n_out))
    if loss == "cross_entropy":
        lab = rng.integers(0, n_out, size=n)
        if label_kind == "int":
            return lab
        if label_kind == "onehot":
            d = np.zeros((n, n_out))
            d[np.arange(n), lab] = 1.0
            return d
        if label_kind == "proba":
            p = rng.random((n, n_out)) + 0.1
            return p / p.sum(axis=1, keepdims=True)
        raise ValueError(label_kind)
    if loss == "binary_cross_entropy":
        d = rng.random((n, n_out))
        d[: n // 2] = np.round(d[: n // 2])  # some hard 0/1 targets, some soft
        return d
    raise ValueError(loss)


# --------------------------------------------------------------------------- finite differences


def finite_difference(loss_fn, params, h=1e-4, order=4):
    """Central differences of loss_fn() w.r.t. each entry of ``params`` (perturbed in place,
    restored exactly afterwards).

    order=4 (default): the five-point stencil (-f(+2h) + 8 f(+h) - 8 f(-h) + f(-2h)) / 12h,
    truncation error O(h^4) -- with h = 1e-4 that is ~1e-16 and the round-off
    ~1.5 eps |E| / h ~ 1e-12 |E|, about 100x below what the plain three-point formula with
    h = 1e-6 achieves (eps |E| / h ~ 1e-10 |E|), which matters when the gradient is small
    compared with the loss.  order=2: (f(+h) - f(-h)) / 2h.
    The step is h * max(1, |p_i|).
    """
    g = np.empty(params.shape[0], dtype=np.float64)
    for i in range(params.shape[0]):
        old = params[i]
        step = h * max(1.0, abs(float(old)))
        if order == 2:
            params[i] = old + step
            fp = loss_fn()
            params[i] = old - step
            fm = loss_fn()
            g[i] = (fp - fm) / (2.0 * step)
        else:
            vals = []
            for k in (2.0, 1.0, -1.0, -2.0):
                params[i] = old + k * step
                vals.append(loss_fn())
            g[i] = (-vals[0] + 8.0 * vals[1] - 8.0 * vals[2] + vals[3]) / (12.0 * step)
        params[i] = old
    return g


KINKED = ("relu", "leaky_relu", "elu")


def _kink_signs(net, X):
    zs, _ = _forward_full(net, X)
    return [z > 0 for z, name in zip(zs[:-1], net.activations[:-1]) if name in KINKED]


def stencil_crosses_kink(net, X, params, h, reach=2.0):
    """True if moving any single entry of ``params`` (the net's own buffer, perturbed in
    place and restored) by +-reach*h*max(1, |p|) flips the sign of a hidden pre-activation
    of a relu / leaky_relu / elu layer -- i.e. a finite-difference stencil would straddle
    a kink (relu, leaky_relu) or a jump of the second derivative (elu)."""
    base = _kink_signs(net, X)
    if not base:
        return False
    for i in range(params.shape[0]):
        old = params[i]
        step = reach * h * max(1.0, abs(float(old)))
        for k in (1.0, -1.0):
            params[i] = old + k * step
            if any(np.any(a != b) for a, b in zip(_kink_signs(net, X), base)):
                params[i] = old
                return True
        params[i] = old
    return False


def rel_error(a, b):
    """Aggregate relative error ||a - b|| / max(||a|| + ||b||, tiny)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / max(den, 1e-300))


# --------------------------------------------------------------------------- optimizers


def weight_mask(net):
    """True on the entries of ``params`` that are weights (layout columns n_in, n_out, w_off)."""
    mask = np.zeros(net.n_params, dtype=bool)
    for n_in, n_out, off, *_ in net.layout:
        mask[off:off + n_in * n_out] = True
    assert mask.sum() == sum(w.size for w in net.weights)
    return mask


def bn_bias_mask(net):
    """True on the biases of batch-normalised layers: in training mode the batch mean removes
    them, so their exact gradient is 0 and the computed one is rounding noise (~1e-17)."""
    mask = np.zeros(net.n_params, dtype=bool)
    for n_in, n_out, off, _, bn, _ in net.layout:
        if bn >= 0:
            mask[off + n_in * n_out:off + n_in * n_out + n_out] = True
    return mask


class RefOptimizer:
    """NumPy reference of every update rule, from its published definition (the rules and
    their sources are listed in tests/test_optimizers.py's docstring).

    ``step(p, g)`` returns the parameters after one step from ``p`` with loss gradient
    ``g``; the state (momentum buffer, moments, RPROP steps, step count) is the
    reference's own.  ``mask`` marks the weight entries (:func:`weight_mask`): decay and
    L1 act on those only."""

    def __init__(self, kind, mask, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 l1=0.0, clip_norm=None, betas=(0.9, 0.999), eps=1e-8, eta_plus=1.2,
                 eta_minus=0.5, delta0=0.1, delta_min=1e-6, delta_max=50.0):
        self.kind, self.mask, self.lr = kind, mask, lr
        self.mu, self.nesterov = momentum, nesterov
        self.wd, self.l1, self.clip = weight_decay, l1, clip_norm
        self.b1, self.b2 = betas
        self.eps = eps
        self.eta_plus, self.eta_minus = eta_plus, eta_minus
        self.dmin, self.dmax = delta_min, delta_max
        n = mask.shape[0]
        self.v = np.zeros(n)  # momentum buffer / Adam second moment
        self.m = np.zeros(n)  # Adam first moment
        self.prev = np.zeros(n)  # RPROP previous (possibly zeroed) gradient
        self.delta = np.full(n, float(delta0))  # RPROP steps
        self.t = 0

    def step(self, p, g):
        """Parameters after one step from ``p`` with loss gradient ``g`` (inputs not modified)."""
        p = np.array(p, dtype=np.float64)
        g = np.array(g, dtype=np.float64)
        w = self.mask
        self.t += 1
        if self.clip is not None:
            norm = np.linalg.norm(g)
            if norm > self.clip:
                g *= self.clip / norm
        if self.kind != "adamw":
            g[w] += self.wd * p[w]
        g[w] += self.l1 * np.sign(p[w])
        if self.kind == "sgd":
            if self.mu == 0.0:
                return p - self.lr * g
            self.v = self.mu * self.v + g
            return p - self.lr * ((g + self.mu * self.v) if self.nesterov else self.v)
        if self.kind in ("adam", "adamw"):
            if self.kind == "adamw":
                p[w] *= 1.0 - self.lr * self.wd
            # Kingma & Ba (2015), Algorithm 1
            self.m = self.b1 * self.m + (1.0 - self.b1) * g
            self.v = self.b2 * self.v + (1.0 - self.b2) * g * g
            m_hat = self.m / (1.0 - self.b1 ** self.t)
            v_hat = self.v / (1.0 - self.b2 ** self.t)
            return p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        if self.kind == "rprop":
            s = self.prev * g
            grow, flip = s > 0, s < 0
            self.delta[grow] = np.minimum(self.delta[grow] * self.eta_plus, self.dmax)
            self.delta[flip] = np.maximum(self.delta[flip] * self.eta_minus, self.dmin)
            g[flip] = 0.0
            self.prev = g
            return p - np.sign(g) * self.delta
        raise ValueError(self.kind)
