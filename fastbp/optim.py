"""Optimizers: hyper-parameters plus state buffers shaped like the flat params.

An optimizer object is handed to :meth:`fastbp.MLP.fit` or
:meth:`fastbp.MLP.train_step`; its state (momentum, Adam moments, step
count) lives in the object, so training can continue across calls.
"""

import numpy as np

from ._kernels import update as _u
from ._validate import check_float, check_lr


class Optimizer:
    """Base class: ``code`` (kernel id), ``hyper`` (float64 array) and ``state``."""

    code = _u.SGD
    n_state = 0
    full_batch = False

    def __init__(self, lr, weight_decay=0.0, l1=0.0, clip_norm=None):
        self.hyper = np.zeros(_u.N_HYPER, dtype=np.float64)
        self.lr = lr
        self.weight_decay = check_float(weight_decay, "weight_decay", low=0.0)
        self.l1 = check_float(l1, "l1", low=0.0)
        self.clip_norm = (None if clip_norm is None else
                          check_float(clip_norm, "clip_norm", low=0.0, low_open=True))
        self.hyper[_u.H_WD] = self.weight_decay
        self.hyper[_u.H_L1] = self.l1
        self.hyper[_u.H_CLIP] = self.clip_norm or 0.0
        self.step = np.zeros(1, dtype=np.int64)
        self.state = None

    @property
    def lr(self):
        """Learning rate (can be changed between steps, e.g. by a schedule)."""
        return float(self.hyper[_u.H_LR])

    @lr.setter
    def lr(self, value):
        self.hyper[_u.H_LR] = check_lr(value)

    def bind(self, n_params, dtype):
        """Allocate (or check) state buffers for ``n_params`` parameters of ``dtype``."""
        shape = (max(self.n_state, 1), n_params if self.n_state else 0)
        if self.state is None:
            self.state = np.zeros(shape, dtype=dtype)
            self._init_state()
        elif self.state.shape != shape or self.state.dtype != dtype:
            raise ValueError(
                f"this {type(self).__name__} holds state for {self.state.shape[-1]} "
                f"{self.state.dtype} parameters; the network has {n_params} {np.dtype(dtype)} "
                "parameters. Create a new optimizer for this network")
        return self

    def _init_state(self):
        """Fill freshly allocated state (zeros unless an optimizer needs otherwise)."""

    def reset(self):
        """Forget the state (momentum, moments, step count)."""
        if self.state is not None:
            self.state[:] = 0
            self._init_state()
        self.step[0] = 0

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr:g}, weight_decay={self.weight_decay:g})"


class SGD(Optimizer):
    """Stochastic gradient descent ``w <- w - lr * (g + weight_decay * w)``.

    With ``momentum > 0``: ``v <- momentum * v + g``, then ``w <- w - lr * v``
    or, with ``nesterov``, ``w <- w - lr * (g + momentum * v)`` (PyTorch's
    convention).  ``weight_decay`` (L2) and ``l1`` apply to weights, not to
    biases or batch-norm parameters (a deliberate choice: decaying offsets
    and scales only biases the fit).  ``clip_norm`` rescales the loss
    gradient to at most that global Euclidean norm before the step.
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        super().__init__(lr, weight_decay, l1, clip_norm)
        self.momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.hyper[_u.H_MOMENTUM] = self.momentum
        self.hyper[_u.H_NESTEROV] = float(self.nesterov)
        if self.momentum > 0:
            self.code = _u.MOMENTUM
            self.n_state = 1


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient."""

    code = _u.ADAM
    n_state = 2

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        super().__init__(lr, weight_decay, l1, clip_norm)
        b1, b2 = betas
        self.hyper[_u.H_BETA1] = check_float(b1, "betas[0]", 0.0, 1.0, high_open=True)
        self.hyper[_u.H_BETA2] = check_float(b2, "betas[1]", 0.0, 1.0, high_open=True)
        self.hyper[_u.H_EPS] = check_float(eps, "eps", 0.0, low_open=True)


class AdamW(Adam):
    """Adam with decoupled weight decay ``w <- w * (1 - lr * weight_decay)``."""

    code = _u.ADAMW

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, l1=0.0,
                 clip_norm=None):
        super().__init__(lr, betas, eps, weight_decay, l1, clip_norm)


class RPROP(Optimizer):
    """iRPROP- (Igel & Huesken), FANN's default: sign-based per-weight steps.

    Each weight has its own step ``delta`` (starting at ``delta0``): it grows
    by ``eta_plus`` while the gradient keeps its sign and shrinks by
    ``eta_minus`` when it flips (and that step is skipped).  Meant for
    full-batch training: ``fit`` uses the whole data set as one batch.
    ``lr`` is unused (kept for a uniform interface).
    """

    code = _u.RPROP
    n_state = 2
    full_batch = True

    def __init__(self, lr=1.0, eta_plus=1.2, eta_minus=0.5, delta0=0.1, delta_min=1e-6,
                 delta_max=50.0, weight_decay=0.0, l1=0.0, clip_norm=None):
        super().__init__(lr, weight_decay, l1, clip_norm)
        self.delta0 = check_float(delta0, "delta0", 0.0, low_open=True)
        self.hyper[_u.H_ETA_PLUS] = check_float(eta_plus, "eta_plus", 1.0)
        self.hyper[_u.H_ETA_MINUS] = check_float(eta_minus, "eta_minus", 0.0, 1.0,
                                                 low_open=True)
        self.hyper[_u.H_DELTA_MIN] = check_float(delta_min, "delta_min", 0.0)
        self.hyper[_u.H_DELTA_MAX] = check_float(delta_max, "delta_max", delta_min)

    def _init_state(self):
        self.state[1] = self.delta0


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rprop": RPROP}


def make_optimizer(optimizer, lr, **kwargs):
    """An :class:`Optimizer` from a name (``sgd``, ``adam``, ``adamw``, ``rprop``) or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                         f"{', '.join(OPTIMIZERS)} or pass a fastbp.optim.Optimizer")
    return OPTIMIZERS[optimizer.lower()](lr=lr, **kwargs)
