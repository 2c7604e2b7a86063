"""The multilayer perceptron: one flat parameter buffer, views, and training."""

import inspect
import threading

import numpy as np

from . import prepare, spec
from ._kernels.forward import forward
from ._kernels.state import Model
from ._kernels.train import loss_grad, loss_sum, sgd_state, train_batch
from ._kernels.weights import NO_VALUES, or_none
from ._kernels.checks import all_finite
from ._sparse import take_rows
from .errors import DivergenceError  # re-exported: fastbp.network.DivergenceError
from .io import network_format, save as save_network
from ._validate import (check_float, check_int, check_sample_weight, check_weight_sum, check_X,
                        check_y)
from .optim import DEFAULT_LR, Optimizer, make_optimizer
from .options import fit_method, parameters_doc
from .workspace import CHUNK, Workspace



def _per_hidden(value, n_hidden, name):
    vals = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * n_hidden
    if len(vals) != n_hidden:
        raise ValueError(f"{name} lists {len(vals)} values but the network has {n_hidden} "
                         "hidden layers; give one value or one per hidden layer")
    return vals


@network_format
class MLP:
    """Multilayer perceptron trained by backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``[64, 128, 10]`` has one hidden layer.
        Two entries give a single-layer perceptron.
    activation : str or sequence of str, default "relu"
        Hidden activation, one name or one per hidden layer: identity,
        sigmoid, tanh, relu, leaky_relu, elu, softplus, gelu (tanh form).
    output : str, optional
        Output activation: identity, sigmoid, tanh, softmax, or exp (for
        poisson only).  Default follows the loss (mse, huber, mae, quantile:
        identity, cross_entropy: softmax, binary_cross_entropy: sigmoid,
        poisson: exp).
    loss : str, default "mse"
        Per sample, summed over the outputs ``k`` (``y`` the network's output,
        ``d`` the target, ``r = y - d``), and averaged over the batch:

        * ``mse`` (alias ``squared_error``): ``r^2 / 2``.
        * ``huber``: ``r^2 / 2`` for ``|r| <= huber_delta``, else
          ``huber_delta * (|r| - huber_delta / 2)`` (differentiable).
        * ``mae`` (aliases ``l1``, ``absolute_error``): ``|r|``; at ``r = 0``
          the gradient used is the subgradient 0 (``sign(0) = 0``).
        * ``quantile`` (alias ``pinball``): ``quantile * (d - y)`` when
          ``y <= d``, else ``(1 - quantile) * (y - d)``; subgradient 0 at
          ``r = 0``.  The fit estimates the ``quantile``-quantile of ``d``.
        * ``poisson``: log link, the exp output gives the rate
          ``y = exp(z)`` (``predict`` returns the rate); the loss is half the
          Poisson deviance ``exp(z) - d z + d log d - d`` (0 at ``y = d``,
          ``d log d = 0`` at ``d = 0``); targets must be ``>= 0``.
        * ``cross_entropy`` (softmax output), ``binary_cross_entropy``
          (sigmoid output), evaluated from the logits.
    init : str, default "auto"
        xavier_uniform, xavier_normal, he_uniform, he_normal (aliases xavier,
        glorot, he, kaiming); ``auto`` picks he_normal for ReLU-family hidden
        layers and xavier_uniform otherwise.  Biases start at zero.
    dtype : {"float32", "float64"}, default "float64"
        Precision of parameters and all computation.
    seed : int or None
        Seed of the numpy Generator used for initialisation, shuffling and
        dropout masks.
    leaky_slope : float, default 0.01
        Negative slope of leaky_relu.
    elu_alpha : float, default 1.0
        Scale of elu's negative branch.
    huber_delta : float, default 1.0
        Where huber turns from quadratic to linear (> 0).
    quantile : float, default 0.5
        Target quantile of the quantile loss, in (0, 1) (0.5: half the MAE).
    dropout : float or sequence of float, default 0.0
        Inverted-dropout rate of each hidden layer's output (training only).
    batch_norm : bool or sequence of bool, default False
        Batch-normalise each hidden layer's linear output before its
        activation (trainable gamma/beta in ``params``).
    bn_momentum, bn_eps : float
        Running-statistics momentum (0.1) and variance epsilon (1e-5).

    Attributes
    ----------
    params : ndarray, 1-D
        Every trainable value in one contiguous buffer: per layer ``W_l``
        (``(n_out, n_in)``, C order), ``b_l``, then batch-norm ``gamma_l``,
        ``beta_l`` if the layer has it.
    weights, biases : tuple of ndarray
        Writable views of ``params``.
    bn_gamma, bn_beta, running_mean, running_var : tuple
        Per-layer views (``None`` for layers without batch norm).
    """

    def __init__(self, sizes, activation="relu", output=None, loss="mse", init="auto",
                 dtype="float64", seed=None, leaky_slope=0.01, elu_alpha=1.0, dropout=0.0,
                 batch_norm=False, bn_momentum=0.1, bn_eps=1e-5, huber_delta=1.0, quantile=0.5):
        self.sizes = spec.check_sizes(sizes)
        n_hidden = len(self.sizes) - 2
        hidden = _per_hidden(activation, n_hidden, "activation") if not isinstance(
            activation, str) else [activation] * n_hidden
        self.loss = spec.LOSS_NAMES[spec.loss_code(loss)]
        lcode = spec.LOSSES[self.loss]
        out_name = spec.DEFAULT_OUTPUT[lcode] if output is None else output
        codes = [spec.activation_code(a) for a in hidden]
        codes.append(spec.activation_code(out_name, hidden=False))
        self.activations = tuple(spec.ACTIVATION_NAMES[c] for c in codes)
        need = spec.REQUIRED_OUTPUT.get(lcode)
        if need is not None and self.activations[-1] != need:
            raise ValueError(f"loss {self.loss!r} needs output={need!r}, got "
                             f"{self.activations[-1]!r}; use loss='mse' for other outputs")
        only = spec.OUTPUT_ONLY_FOR.get(self.activations[-1])
        if only is not None and lcode != only:
            raise ValueError(f"output={self.activations[-1]!r} is for loss="
                             f"{spec.LOSS_NAMES[only]!r} only, got loss={self.loss!r}")
        self.huber_delta = check_float(huber_delta, "huber_delta", low=0.0, low_open=True)
        self.quantile = check_float(quantile, "quantile", 0.0, 1.0, low_open=True,
                                    high_open=True)
        self.leaky_slope = check_float(leaky_slope, "leaky_slope", low=0.0)
        self.elu_alpha = check_float(elu_alpha, "elu_alpha", low=0.0, low_open=True)
        self.dropout = tuple(check_float(p, "dropout", 0.0, 1.0, high_open=True)
                             for p in _per_hidden(dropout, n_hidden, "dropout"))
        self.batch_norm = tuple(bool(b) for b in _per_hidden(batch_norm, n_hidden, "batch_norm"))
        self.bn_momentum = check_float(bn_momentum, "bn_momentum", 0.0, 1.0)
        self.bn_eps = check_float(bn_eps, "bn_eps", 0.0, low_open=True)
        self.init = spec.init_name(init)
        self.dtype = spec.as_dtype(dtype)
        self._loss_code = lcode
        self._layout, n_params, n_stats = spec.build_layout(
            self.sizes, codes, list(self.batch_norm) + [False])
        lp = np.zeros((len(codes), spec.N_LPARAMS))
        lp[:, spec.P_ALPHA] = [self.leaky_slope if c == spec.LEAKY_RELU else
                               self.elu_alpha if c == spec.ELU else 0.0 for c in codes]
        lp[:-1, spec.P_DROP] = self.dropout
        lp[:, spec.P_BN_MOMENTUM] = self.bn_momentum
        lp[:, spec.P_BN_EPS] = self.bn_eps
        lp[-1, spec.P_LOSS] = {spec.HUBER: self.huber_delta,
                               spec.QUANTILE: self.quantile}.get(lcode, 0.0)
        self._lparams = lp
        self._params = np.zeros(n_params, dtype=self.dtype)
        self._stats = np.zeros(n_stats, dtype=self.dtype)
        self._counter = np.zeros(1, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self._initialise()
        self._dropout_seed = int(self.rng.integers(0, 2**63 - 1))
        self._make_views()
        self._ws = None
        self._lock = threading.RLock()
        self.optimizer = None

    # ------------------------------------------------------------------ state
    def _make_views(self):
        ws, bs, gs, bes, rms, rvs = [], [], [], [], [], []
        p, st = self._params, self._stats
        for L in spec.layers(self._layout):
            ws.append(p[L.weights].reshape(L.n_out, L.n_in))
            bs.append(p[L.bias])
            gs.append(p[L.gamma] if L.gamma else None)
            bes.append(p[L.beta] if L.beta else None)
            rms.append(st[L.mean] if L.mean else None)
            rvs.append(st[L.var] if L.var else None)
        self.weights, self.biases = tuple(ws), tuple(bs)
        self.bn_gamma, self.bn_beta = tuple(gs), tuple(bes)
        self.running_mean, self.running_var = tuple(rms), tuple(rvs)
        self._model = Model(self._params, self._layout, self._lparams, self._stats,
                            self._counter, self._dropout_seed)

    def _initialise(self):
        init = self.init
        if init == "auto":
            relu_like = all(a in spec.RELU_FAMILY for a in self.activations[:-1])
            init = "he_normal" if relu_like and len(self.sizes) > 2 else "xavier_uniform"
        self.init_used = init
        p = self._params
        for L in spec.layers(self._layout):
            n_in, n_out = L.n_in, L.n_out
            shape = (n_out, n_in)
            if init == "xavier_uniform":
                lim = np.sqrt(6.0 / (n_in + n_out))
                w = self.rng.uniform(-lim, lim, shape)
            elif init == "xavier_normal":
                w = self.rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), shape)
            elif init == "he_uniform":
                lim = np.sqrt(6.0 / n_in)
                w = self.rng.uniform(-lim, lim, shape)
            else:
                w = self.rng.normal(0.0, np.sqrt(2.0 / n_in), shape)
            p[L.weights] = w.ravel()
            p[L.bias] = 0.0
            if L.gamma:
                p[L.gamma] = 1.0
                p[L.beta] = 0.0
                self._stats[L.mean] = 0.0
                self._stats[L.var] = 1.0

    @property
    def params(self):
        """The flat parameter buffer (assigning copies values into it)."""
        return self._params

    @params.setter
    def params(self, value):
        arr = np.asarray(value)
        if arr.shape != self._params.shape:
            raise ValueError(f"params must have shape {self._params.shape}, got {arr.shape}")
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"params must be real numbers, got dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("params contain NaN or infinite values")
        self._params[:] = arr

    @property
    def n_params(self):
        """Number of trainable values."""
        return self._params.size

    @property
    def n_layers(self):
        """Number of weight layers (hidden layers + 1)."""
        return len(self.sizes) - 1

    @property
    def layout(self):
        """Copy of the int64 layout table (see :mod:`fastbp.spec`)."""
        return self._layout.copy()

    @property
    def steps(self):
        """Training steps (batches) taken so far."""
        return int(self._counter[0])

    def _workspace(self, cap):
        if self._ws is None:
            self._ws = Workspace(self._layout, self.n_params, self.dtype, cap)
        else:
            self._ws.ensure(cap)
        return self._ws

    def _xy(self, X, y, sparse=False):
        X = check_X(X, self.sizes[0], self.dtype, sparse=sparse)
        y = check_y(y, X.shape[0], self.sizes[-1], self._loss_code, self.dtype)
        return X, y

    def __repr__(self):
        extra = ""
        if any(self.dropout):
            extra += f", dropout={list(self.dropout)}"
        if any(self.batch_norm):
            extra += f", batch_norm={list(self.batch_norm)}"
        if self._loss_code == spec.HUBER:
            extra += f", huber_delta={self.huber_delta!r}"
        if self._loss_code == spec.QUANTILE:
            extra += f", quantile={self.quantile!r}"
        return (f"MLP(sizes={list(self.sizes)}, activations={list(self.activations)}, "
                f"loss={self.loss!r}, dtype={self.dtype.name!r}{extra})")

    def summary(self):
        """A per-layer table (input and output widths, activation, batch norm,
        dropout, parameters) and the totals in values and bytes.

        Returns the text; ``print(net.summary())`` shows it.
        """
        from .summary import summary
        return summary(self)

    #: Attributes rebuilt rather than pickled: the lock cannot be pickled, the
    #: workspace is scratch, and the views must share the restored buffers.
    _TRANSIENT = frozenset({"_lock", "_ws", "_model", "_step_opt", "weights", "biases",
                            "bn_gamma", "bn_beta", "running_mean", "running_var"})

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state):
        self.__dict__.update(state)
        # pickles from before the loss parameter column: default settings, padded table
        self.__dict__.setdefault("huber_delta", 1.0)
        self.__dict__.setdefault("quantile", 0.5)
        if self._lparams.shape[1] < spec.N_LPARAMS:
            pad = spec.N_LPARAMS - self._lparams.shape[1]
            self._lparams = np.pad(self._lparams, ((0, 0), (0, pad)))
        # arrays restored read-only (e.g. joblib memory maps) are copied: the
        # kernels write into them
        for obj in (self, self.optimizer):
            if obj is not None:
                for k, v in vars(obj).items():
                    if isinstance(v, np.ndarray) and not v.flags.writeable:
                        setattr(obj, k, v.copy())
        self._ws = None
        self._lock = threading.RLock()
        self._make_views()

    def copy(self):
        """An independent copy (parameters, statistics, settings, RNG state)."""
        new = object.__new__(MLP)
        new.__dict__.update(self.__dict__)
        new._params = self._params.copy()
        new._stats = self._stats.copy()
        new._counter = self._counter.copy()
        new._make_views()
        new.rng = np.random.default_rng()
        new.rng.bit_generator.state = self.rng.bit_generator.state
        new._ws = None
        new._step_opt = None
        new._lock = threading.RLock()
        new.optimizer = None
        return new

    # -------------------------------------------------------------- inference
    def predict(self, X):
        """Output-layer activations for ``X`` (inference mode).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n_samples, sizes[0])

        Returns
        -------
        ndarray, shape (n_samples, sizes[-1]), of the network's dtype
        """
        X = check_X(X, self.sizes[0], self.dtype, sparse=True)
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        with self._lock:
            ws = self._workspace(min(n, CHUNK))
            for s in range(0, n, ws.cap):
                e = min(s + ws.cap, n)
                forward(self._model, ws.work, take_rows(X, slice(s, e)), False, False)
                out[s:e] = ws.output(e - s)
        return out

    def _chunks(self, n, training):
        """Workspace and row ranges: one batch in training mode (batch statistics)."""
        ws = self._workspace(n if training else min(n, CHUNK))
        return ws, [(s, min(s + ws.cap, n)) for s in range(0, n, ws.cap)]

    def evaluate(self, X, y, training=False, sample_weight=None):
        """Batch-mean loss on ``(X, y)``; nothing changes.

        ``training=True`` evaluates as a training step would: dropout with the
        mask of the current step, batch-norm batch statistics.  ``X`` may be
        a scipy.sparse matrix (as in :meth:`fit`).
        ``sample_weight`` (``(n,)``, finite, ``>= 0``, not all zero) gives the
        weighted mean ``sum_i w_i E_i / sum_i w_i``.
        """
        X, y = self._xy(X, y, sparse=True)
        n = X.shape[0]
        sw = check_sample_weight(sample_weight, n)
        wsum = check_weight_sum(sw)
        total = 0.0
        with self._lock:
            ws, chunks = self._chunks(n, training)
            for s, e in chunks:
                total += loss_sum(self._model, ws.work, self._loss_code,
                                  take_rows(X, slice(s, e)), y[s:e], bool(training),
                                  NO_VALUES if sw is None else sw[s:e])
        return total / (n if sw is None else wsum)

    def gradient(self, X, y, training=False, sample_weight=None):
        """Batch-mean loss and its gradient with respect to ``params``; no update.

        Parameters
        ----------
        X, y : array-like (``X`` may be a scipy.sparse matrix)
        training : bool
            Differentiate the training-mode loss (see :meth:`evaluate`).
        sample_weight : array-like, shape (n_samples,), optional
            Weights ``w_i >= 0`` (finite, not all zero): the loss is the
            weighted mean ``sum_i w_i E_i / sum_i w_i``, as PyTorch's weighted
            losses define it.  A weight of 0 is the same as leaving the
            sample out.

        Returns
        -------
        loss : float
        grad : ndarray, shape (n_params,)
            Same layout and dtype as :attr:`params`.
        """
        X, y = self._xy(X, y, sparse=True)
        n = X.shape[0]
        sw = check_sample_weight(sample_weight, n)
        wsum = check_weight_sum(sw)
        with self._lock:
            ws, chunks = self._chunks(n, training)
            if len(chunks) == 1:
                loss = loss_grad(self._model, ws.work, self._loss_code, X, y, bool(training),
                                 or_none(sw))
                return float(loss), ws.grad.copy()
            grad = np.zeros(self.n_params, dtype=np.float64)
            loss = 0.0
            for s, e in chunks:
                part = loss_grad(self._model, ws.work, self._loss_code,
                                 take_rows(X, slice(s, e)), y[s:e], False,
                                 NO_VALUES if sw is None else sw[s:e])
                w = (e - s) / n if sw is None else float(sw[s:e].sum()) / wsum
                loss += part * w
                grad += w * ws.grad
        return float(loss), grad.astype(self.dtype)

    def input_gradient(self, X, y):
        """Batch-mean loss and its gradient with respect to the inputs ``X``.

        Inference mode (dropout off, batch norm with running statistics); the
        loss is the batch mean, as in :meth:`gradient`, so row ``i`` of the
        result is ``(1/n) * d loss_i / d X[i]`` (multiply by ``n`` for the
        per-sample gradients).  Nothing changes in the network.

        Returns
        -------
        loss : float
        dX : ndarray, shape of ``X``, of the network's dtype
        """
        from .sensitivity import input_gradient
        return input_gradient(self, X, y)

    def jacobian(self, X):
        """Derivatives of the outputs with respect to the inputs, per sample.

        Inference mode; ``J[i, k, j] = d predict(X)[i, k] / d X[i, j]`` (the
        output activation included: softmax probabilities, sigmoid outputs).

        Returns
        -------
        J : ndarray, shape (n_samples, sizes[-1], sizes[0]), of the network's dtype
        """
        from .sensitivity import jacobian
        return jacobian(self, X)

    # --------------------------------------------------------------- training
    def _optimizer(self, optimizer, lr, kwargs):
        if isinstance(optimizer, Optimizer):
            if kwargs:
                raise TypeError(f"optimizer settings {sorted(kwargs)} go to the optimizer's "
                                "constructor when an Optimizer instance is passed")
            optimizer.bind(self.n_params, self.dtype)
            if lr is not None:
                optimizer.lr = lr
            return optimizer
        if lr is None:
            lr = DEFAULT_LR.get(optimizer.lower(), 0.01) if isinstance(optimizer, str) else 0.01
        return make_optimizer(optimizer, lr, **kwargs).bind(self.n_params, self.dtype)

    def _step_optimizer(self, optimizer, lr, kwargs):
        """``_optimizer`` for ``train_step``: an optimizer given by name starts from
        fresh state every call, so the one built for the same settings last
        time is reset and reused (building and validating one costs ~15 us)."""
        if isinstance(optimizer, Optimizer):
            return self._optimizer(optimizer, lr, kwargs)
        try:
            key = (optimizer, lr, tuple(sorted(kwargs.items())))
            hash(key)
        except TypeError:  # unhashable settings: build one each call
            return self._optimizer(optimizer, lr, kwargs)
        cached = getattr(self, "_step_opt", None)
        if cached is not None and cached[0] == key:
            cached[1].reset()
            return cached[1]
        opt = self._optimizer(optimizer, lr, kwargs)
        self._step_opt = (key, opt)
        return opt

    def train_step(self, X, y, lr=None, optimizer="sgd", sample_weight=None, **opt_kwargs):
        """One in-place update on one batch; returns the batch loss before it.

        Parameters
        ----------
        X, y : array-like
            One batch (every row is used); ``X`` may be a scipy.sparse matrix.
        lr : float, optional
            Learning rate (default: the optimizer's own, 0.01 for SGD).
        optimizer : str or fastbp.optim.Optimizer, default "sgd"
            Pass an Optimizer instance to keep momentum/Adam state across calls.
        sample_weight : array-like, shape (n_samples,), optional
            Per-sample weights (finite, ``>= 0``): the step follows the
            gradient of the weighted mean loss ``sum_i w_i E_i / sum_i w_i``.
            Weights that sum to 0 take no step (nothing changes, the
            optimizer's step count included) and 0.0 is returned.
        """
        X, y = self._xy(X, y, sparse=True)
        sw = check_sample_weight(sample_weight, X.shape[0])
        opt = self._step_optimizer(optimizer, lr, opt_kwargs)
        n = X.shape[0] if sw is None else float(sw.sum())
        if n == 0.0:
            return 0.0
        with self._lock:
            ws = self._workspace(X.shape[0])
            snap = ws.snapshot(self, opt)
            total = train_batch(self._model, ws.work, self._loss_code, X, y,
                                opt.code, opt.hyper, sgd_state(opt.code, opt.hyper, opt.state),
                                opt.step, or_none(sw))
            loss = total / n
            if not np.isfinite(loss):
                snap.restore()
                raise DivergenceError(f"the batch loss is {loss}; the network was left "
                                      "unchanged. Use a smaller learning rate or check the "
                                      "data scaling")
            if not all_finite(self._params):
                snap.restore()
                raise DivergenceError(f"this step (lr={opt.lr:g}) made parameters non-finite; "
                                      "the network was restored. Use a smaller learning rate")
        return float(loss)

    fit = fit_method(prepare.fit, name="MLP.fit", module=__name__, head=[
        inspect.Parameter("X", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("y", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)],
        doc="""Train by mini-batch backpropagation; each epoch is one compiled call.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n_samples, sizes[0]), or chunks
            A ``numpy.memmap`` (or any array with ``chunk_size`` given) is
            trained chunk by chunk without loading it whole.  With ``y``
            omitted, ``X`` is a stream of ``(X, y)`` chunks: a sequence, a
            re-iterable object, a zero-argument callable returning a fresh
            iterable each epoch, or a one-shot iterator (``epochs=1`` only).
            See :mod:`fastbp.stream` for shuffling and validation rules.
            A scipy.sparse matrix (any format; converted to CSR once, never
            densified) feeds the first layer through kernels that touch only
            its non-zeros.
        y : array-like, optional
            Targets: ``(n, n_out)``; for cross_entropy also integer labels
            ``(n,)``; for a single output also ``(n,)``.  Omitted for a stream.
%s
        **opt_kwargs
            Settings of the optimizer named by ``optimizer`` (``momentum=0.9``,
            ...); a keyword that is neither a ``fit`` option nor such a
            setting is a TypeError.

        Returns
        -------
        History
        """ % parameters_doc())

    def state(self, batch_size=32, optimizer="sgd", lr=None, **opt_kwargs):
        """A :class:`fastbp.jit.NetState` for training from your own ``@njit`` code.

        The state shares ``params`` (and the optimizer's buffers) with this
        network and owns workspace for batches of up to ``batch_size`` rows.
        The optimizer becomes ``self.optimizer``, so ``save`` records it.
        """
        from .jit import make_state
        batch_size = check_int(batch_size, "batch_size", 1)
        opt = self._optimizer(optimizer, lr, opt_kwargs)
        self.optimizer = opt
        return make_state(self, batch_size, opt)

    def save(self, path):
        """Save the network (and ``self.optimizer``) to ``path``; see :func:`fastbp.io.save`."""
        save_network(self, path)
