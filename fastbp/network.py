"""The multilayer perceptron: one flat parameter buffer, views, and training."""

import threading
import time
import warnings

import numpy as np

from . import spec
from ._kernels.train import loss_grad, loss_sum, train_batch, train_epoch
from ._kernels.forward import forward
from ._validate import check_X, check_float, check_int, check_y
from .history import History
from .optim import Optimizer, make_optimizer
from .workspace import Workspace

#: Rows processed per kernel call by predict / evaluate / gradient.
CHUNK = 2048

#: Learning rate used when ``lr`` is not given.
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001}


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss; parameters were restored."""


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
        Output activation: identity, sigmoid, tanh or softmax.  Default
        follows the loss (mse: identity, cross_entropy: softmax,
        binary_cross_entropy: sigmoid).
    loss : {"mse", "cross_entropy", "binary_cross_entropy"}, default "mse"
        ``mse`` is ``1/2 sum_k (d_k - y_k)^2`` per sample; every loss is
        averaged over the batch.
    init : str, default "auto"
        xavier_uniform, xavier_normal, he_uniform, he_normal (aliases xavier,
        glorot, he, kaiming); ``auto`` picks he_normal for ReLU-family hidden
        layers and xavier_uniform otherwise.  Biases start at zero.
    dtype : {"float32", "float64"}, default "float64"
        Precision of parameters and all computation.
    seed : int or None
        Seed of the numpy Generator used for initialisation and shuffling.
    leaky_slope : float, default 0.01
        Negative slope of leaky_relu.
    elu_alpha : float, default 1.0
        Scale of elu's negative branch.

    Attributes
    ----------
    params : ndarray, 1-D
        Every weight and bias in one contiguous buffer: per layer, ``W_l``
        (``(n_out, n_in)``, C order) followed by ``b_l``.
    weights, biases : tuple of ndarray
        Writable views of ``params``.
    """

    def __init__(self, sizes, activation="relu", output=None, loss="mse", init="auto",
                 dtype="float64", seed=None, leaky_slope=0.01, elu_alpha=1.0):
        self.sizes = spec.check_sizes(sizes)
        n_layers = len(self.sizes) - 1
        hidden = [activation] * (n_layers - 1) if isinstance(activation, str) else list(activation)
        if len(hidden) != n_layers - 1:
            raise ValueError(f"activation lists {len(hidden)} names but the network has "
                             f"{n_layers - 1} hidden layers; give one name or one per hidden layer")
        self.loss = spec.LOSS_NAMES[spec.loss_code(loss)]
        lcode = spec.LOSSES[self.loss]
        out_name = spec.DEFAULT_OUTPUT[lcode] if output is None else output
        out_code = spec.activation_code(out_name, hidden=False)
        codes = [spec.activation_code(a) for a in hidden] + [out_code]
        self.activations = tuple(spec.ACTIVATION_NAMES[c] for c in codes)
        need = spec.REQUIRED_OUTPUT.get(lcode)
        if need is not None and self.activations[-1] != need:
            raise ValueError(f"loss {self.loss!r} needs output={need!r}, got "
                             f"{self.activations[-1]!r}; use loss='mse' for other outputs")
        self.leaky_slope = check_float(leaky_slope, "leaky_slope", low=0.0)
        self.elu_alpha = check_float(elu_alpha, "elu_alpha", low=0.0, low_open=True)
        self.init = spec.init_name(init)
        self.dtype = spec.as_dtype(dtype)
        self._loss_code = lcode
        self._layout, n_params = spec.build_layout(self.sizes, codes)
        self._alpha = np.array([self.leaky_slope if c == spec.LEAKY_RELU else
                                self.elu_alpha if c == spec.ELU else 0.0 for c in codes])
        self._params = np.zeros(n_params, dtype=self.dtype)
        self._make_views()
        self.rng = np.random.default_rng(seed)
        self._initialise()
        self._ws = None
        self._lock = threading.RLock()
        self.optimizer = None

    # ------------------------------------------------------------------ state
    def _make_views(self):
        ws, bs = [], []
        for n_in, n_out, off, _ in self._layout:
            ws.append(self._params[off:off + n_out * n_in].reshape(n_out, n_in))
            bs.append(self._params[off + n_out * n_in:off + n_out * n_in + n_out])
        self.weights, self.biases = tuple(ws), tuple(bs)

    def _initialise(self):
        init = self.init
        if init == "auto":
            relu_like = all(a in spec.RELU_FAMILY for a in self.activations[:-1])
            init = "he_normal" if relu_like and len(self.sizes) > 2 else "xavier_uniform"
        self.init_used = init
        for W in self.weights:
            fan_out, fan_in = W.shape
            if init == "xavier_uniform":
                lim = np.sqrt(6.0 / (fan_in + fan_out))
                W[:] = self.rng.uniform(-lim, lim, W.shape)
            elif init == "xavier_normal":
                W[:] = self.rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), W.shape)
            elif init == "he_uniform":
                lim = np.sqrt(6.0 / fan_in)
                W[:] = self.rng.uniform(-lim, lim, W.shape)
            else:
                W[:] = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), W.shape)
        for b in self.biases:
            b[:] = 0.0

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
        """Number of weights and biases."""
        return self._params.size

    @property
    def n_layers(self):
        """Number of weight layers (hidden layers + 1)."""
        return len(self.sizes) - 1

    @property
    def layout(self):
        """Read-only copy of the int64 layout table (see :mod:`fastbp.spec`)."""
        return self._layout.copy()

    def _workspace(self, cap):
        if self._ws is None:
            self._ws = Workspace(self._layout, self.n_params, self.dtype, cap)
        else:
            self._ws.ensure(cap)
        return self._ws

    def _xy(self, X, y):
        X = check_X(X, self.sizes[0], self.dtype)
        y = check_y(y, X.shape[0], self.sizes[-1], self._loss_code, self.dtype)
        return X, y

    def __repr__(self):
        return (f"MLP(sizes={list(self.sizes)}, activations={list(self.activations)}, "
                f"loss={self.loss!r}, dtype={self.dtype.name!r})")

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
        from .io import save
        save(self, path)

    def copy(self):
        """An independent copy of the network (parameters, settings, RNG)."""
        new = object.__new__(MLP)
        new.__dict__.update(self.__dict__)
        new._params = self._params.copy()
        new._make_views()
        new.rng = np.random.default_rng()
        new.rng.bit_generator.state = self.rng.bit_generator.state
        new._ws = None
        new._lock = threading.RLock()
        new.optimizer = None
        return new

    # -------------------------------------------------------------- inference
    def predict(self, X):
        """Output-layer activations for ``X``, shape ``(n, sizes[-1])``.

        Parameters
        ----------
        X : array-like, shape (n_samples, sizes[0])

        Returns
        -------
        ndarray of the network's dtype
        """
        X = check_X(X, self.sizes[0], self.dtype)
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        with self._lock:
            ws = self._workspace(min(n, CHUNK))
            for s in range(0, n, ws.cap):
                e = min(s + ws.cap, n)
                forward(self._params, self._layout, self._alpha, X[s:e], ws.acts, ws.pre, ws.cap)
                out[s:e] = ws.output(e - s)
        return out

    def evaluate(self, X, y):
        """Batch-mean loss on ``(X, y)`` without changing anything."""
        X, y = self._xy(X, y)
        n = X.shape[0]
        total = 0.0
        with self._lock:
            ws = self._workspace(min(n, CHUNK))
            for s in range(0, n, ws.cap):
                e = min(s + ws.cap, n)
                total += loss_sum(self._params, self._layout, self._alpha, self._loss_code,
                                  X[s:e], y[s:e], ws.acts, ws.pre, ws.deltas, ws.cap)
        return total / n

    def gradient(self, X, y):
        """Batch-mean loss and its gradient with respect to ``params``.

        Returns
        -------
        loss : float
        grad : ndarray, shape (n_params,)
            Same layout and dtype as :attr:`params`; no update is made.
        """
        X, y = self._xy(X, y)
        n = X.shape[0]
        with self._lock:
            ws = self._workspace(min(n, CHUNK))
            if n <= ws.cap:
                loss = loss_grad(self._params, self._layout, self._alpha, self._loss_code,
                                 X, y, ws.acts, ws.pre, ws.deltas, ws.grad, ws.cap)
                return float(loss), ws.grad.copy()
            grad = np.zeros(self.n_params, dtype=np.float64)
            loss = 0.0
            for s in range(0, n, ws.cap):
                e = min(s + ws.cap, n)
                part = loss_grad(self._params, self._layout, self._alpha, self._loss_code,
                                 X[s:e], y[s:e], ws.acts, ws.pre, ws.deltas, ws.grad, ws.cap)
                w = (e - s) / n
                loss += part * w
                grad += w * ws.grad
        return float(loss), grad.astype(self.dtype)

    # --------------------------------------------------------------- training
    def _optimizer(self, optimizer, lr, kwargs):
        if isinstance(optimizer, Optimizer):
            if kwargs:
                raise TypeError(f"optimizer settings {sorted(kwargs)} go to the optimizer's "
                                "constructor when an Optimizer instance is passed")
            if lr is not None:
                optimizer.lr = lr
            return optimizer.bind(self.n_params, self.dtype)
        if lr is None:
            lr = DEFAULT_LR.get(optimizer.lower(), 0.01) if isinstance(optimizer, str) else 0.01
        return make_optimizer(optimizer, lr, **kwargs).bind(self.n_params, self.dtype)

    def train_step(self, X, y, lr=None, optimizer="sgd", **opt_kwargs):
        """One in-place update on one batch; returns the batch loss before it.

        Parameters
        ----------
        X, y : array-like
            One batch (every row is used).
        lr : float, optional
            Learning rate (default: the optimizer's own, 0.01 for SGD).
        optimizer : str or fastbp.optim.Optimizer, default "sgd"
            Pass an Optimizer instance to keep momentum/Adam state across calls.
        """
        X, y = self._xy(X, y)
        opt = self._optimizer(optimizer, lr, opt_kwargs)
        n = X.shape[0]
        with self._lock:
            ws = self._workspace(n)
            total = train_batch(self._params, self._layout, self._alpha, self._loss_code, X, y,
                                ws.acts, ws.pre, ws.deltas, ws.grad, ws.cap,
                                opt.code, opt.hyper, opt.state, opt.step)
        loss = total / n
        if not np.isfinite(loss):
            raise DivergenceError(f"the batch loss is {loss}; parameters were left unchanged. "
                                  "Use a smaller learning rate or check the data scaling")
        return float(loss)

    def fit(self, X, y, epochs=1, batch_size=32, lr=None, shuffle=True, seed=None,
            optimizer="sgd", verbose=False, callbacks=(), on_divergence="raise", **opt_kwargs):
        """Train by mini-batch backpropagation; each epoch is one compiled call.

        Parameters
        ----------
        X : array-like, shape (n_samples, sizes[0])
        y : array-like
            Targets: ``(n, n_out)``; for cross_entropy also integer labels
            ``(n,)``; for a single output also ``(n,)``.
        epochs : int
            Passes over the data.
        batch_size : int
            Rows per update; the last batch may be shorter.
        lr : float, optional
            Learning rate (default: the instance's, else 0.01 for SGD, 0.001 for Adam).
        shuffle : bool
            Visit rows in a fresh seeded permutation each epoch.
        seed : int, optional
            Reseed the network's generator before training.
        optimizer : str or fastbp.optim.Optimizer, default "sgd"
            ``sgd`` (``momentum``, ``nesterov``, ``weight_decay`` keywords),
            ``adam``, ``adamw``, or an instance whose state persists across
            calls (``net.optimizer`` holds the one used last).
        verbose : bool
            Print one line per epoch.
        callbacks : sequence of callables
            ``callback(net, epoch, history)`` after each epoch; returning True stops.
        on_divergence : {"raise", "warn"}
            On a non-finite loss the parameters are restored to the end of the
            last finite epoch, then a :class:`DivergenceError` is raised or a
            warning issued.

        Returns
        -------
        History
        """
        X, y = self._xy(X, y)
        epochs = check_int(epochs, "epochs", 0)
        batch_size = check_int(batch_size, "batch_size", 1)
        if on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got {on_divergence!r}")
        opt = self._optimizer(optimizer, lr, opt_kwargs)
        self.optimizer = opt
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n = X.shape[0]
        hist = History()
        order = np.arange(n, dtype=np.int64)
        out = np.zeros(2, dtype=np.float64)
        backup = np.empty_like(self._params)
        state_backup = np.empty_like(opt.state)
        pending = False
        with self._lock:
            ws = self._workspace(min(batch_size, n))
            ybuf = ws.ybuf(y)
            try:
                for epoch in range(epochs):
                    np.copyto(backup, self._params)
                    np.copyto(state_backup, opt.state)
                    step_backup = int(opt.step[0])
                    pending = True
                    if shuffle:
                        self.rng.shuffle(order)
                    t0 = time.perf_counter()
                    train_epoch(self._params, self._layout, self._alpha, self._loss_code, X, y,
                                order, batch_size, shuffle, ws.xbuf, ybuf, ws.acts, ws.pre,
                                ws.deltas, ws.grad, opt.code, opt.hyper, opt.state, opt.step, out)
                    dt = time.perf_counter() - t0
                    if out[1] < n or not np.all(np.isfinite(self._params)):
                        np.copyto(self._params, backup)
                        np.copyto(opt.state, state_backup)
                        opt.step[0] = step_backup
                        hist.stop_reason = "diverged"
                        msg = (f"training diverged in epoch {epoch + 1} (loss became {out[0]}); "
                               f"parameters restored to the end of epoch {epoch}. "
                               f"Try a smaller learning rate than {opt.lr:g}")
                        if on_divergence == "raise":
                            raise DivergenceError(msg)
                        warnings.warn(msg, RuntimeWarning, stacklevel=2)
                        break
                    hist.loss.append(float(out[0]))
                    hist.lr.append(opt.lr)
                    hist.epoch_time.append(dt)
                    hist.samples += n
                    pending = False
                    if verbose:
                        print(f"epoch {epoch + 1}/{epochs}  loss {out[0]:.6g}  "
                              f"{dt:.3f} s  {n / max(dt, 1e-12):,.0f} samples/s", flush=True)
                    if any(cb(self, epoch, hist) for cb in callbacks):
                        hist.stop_reason = "callback"
                        break
            except KeyboardInterrupt:
                if pending:  # the epoch in flight may have run: undo it
                    np.copyto(self._params, backup)
                    np.copyto(opt.state, state_backup)
                    opt.step[0] = step_backup
                hist.stop_reason = "interrupted"
                warnings.warn(f"fit interrupted after {hist.epochs} complete epochs; the "
                              "network holds the parameters at that point", RuntimeWarning,
                              stacklevel=2)
        self.history_ = hist
        return hist
