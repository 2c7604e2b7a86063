"""Optimizers: hyper-parameters plus state buffers shaped like the flat params.

An optimizer object is handed to :meth:`fastbp.MLP.fit` or
:meth:`fastbp.MLP.train_step`; its state (momentum, Adam moments, step
count) lives in the object, so training can continue across calls.

Every numeric setting lives in one slot of the float64 array ``hyper`` that
the kernels read; :data:`HYPER_SLOTS` names the slots, and the attributes
(``lr``, ``weight_decay``, ``betas`` ...) read and write them by name.  An
optimizer serialises itself: :meth:`Optimizer.get_config` gives a plain dict
that :func:`from_config` turns back into an equal optimizer, and
:meth:`Optimizer.get_state` / :meth:`Optimizer.set_state` carry its state
arrays (step count, momentum, moments).
"""

import inspect

import numpy as np

from ._kernels import update as _u
from ._validate import check_float, check_lr

#: Name of each slot of :attr:`Optimizer.hyper` (the ``H_*`` constants the
#: kernels in ``_kernels/update.py`` index it with).  The Python side reads and
#: writes ``hyper`` only through these names.
HYPER_SLOTS = {
    "lr": _u.H_LR, "weight_decay": _u.H_WD, "momentum": _u.H_MOMENTUM,
    "nesterov": _u.H_NESTEROV, "beta1": _u.H_BETA1, "beta2": _u.H_BETA2, "eps": _u.H_EPS,
    "l1": _u.H_L1, "clip_norm": _u.H_CLIP, "eta_plus": _u.H_ETA_PLUS,
    "eta_minus": _u.H_ETA_MINUS, "delta_min": _u.H_DELTA_MIN, "delta_max": _u.H_DELTA_MAX,
}
#: Length of :attr:`Optimizer.hyper`.
N_HYPER = _u.N_HYPER


def _nonneg(name):
    return lambda v: check_float(v, name, low=0.0)


def _clip(v):
    return None if v is None else check_float(v, "clip_norm", low=0.0, low_open=True)


class _Slot:
    """An optimizer setting stored in its :data:`HYPER_SLOTS` slot of ``hyper``.

    ``check`` validates a new value (``None``: fixed once the optimizer is
    built); ``to_py`` turns the stored float back into the attribute's type.
    """

    def __init__(self, check=None, to_py=float, doc=None):
        self.check, self.to_py, self.__doc__ = check, to_py, doc

    def __set_name__(self, owner, name):
        self.name, self.slot = name, HYPER_SLOTS[name]

    def __get__(self, opt, owner=None):
        if opt is None:
            return self
        return self.to_py(opt.hyper[self.slot])

    def __set__(self, opt, value):
        if self.check is None:
            raise AttributeError(f"{self.name} is fixed when the optimizer is created; make a "
                                 f"new {type(opt).__name__} to change it")
        v = self.check(value)
        opt.hyper[self.slot] = 0.0 if v is None else v


class Optimizer:
    """Base class: ``code`` (kernel id), ``hyper`` (float64 array) and ``state``."""

    code = _u.SGD
    n_state = 0
    full_batch = False

    lr = _Slot(check_lr, doc="Learning rate (can be changed between steps, e.g. by a schedule).")
    weight_decay = _Slot(_nonneg("weight_decay"), doc="L2 penalty on the weights.")
    l1 = _Slot(_nonneg("l1"), doc="L1 penalty on the weights.")
    clip_norm = _Slot(_clip, lambda v: float(v) or None,
                      doc="Largest global gradient norm (``None``: no clipping).")

    def __init__(self, lr, weight_decay=0.0, l1=0.0, clip_norm=None):
        self.hyper = np.zeros(N_HYPER, dtype=np.float64)
        self.lr = lr
        self.weight_decay = weight_decay
        self.l1 = l1
        self.clip_norm = clip_norm
        self.step = np.zeros(1, dtype=np.int64)
        self.state = None

    def _put(self, name, value):
        """Write the (validated) setting ``name`` into its ``hyper`` slot."""
        self.hyper[HYPER_SLOTS[name]] = value

    def __setstate__(self, state):
        # pickles written before the settings lived in ``hyper`` also carry them as plain
        # attributes, equal to their slots; the slots are authoritative
        self.__dict__.update({k: v for k, v in state.items()
                              if not isinstance(getattr(type(self), k, None), (_Slot, property))})

    # ---------------------------------------------------------------- config
    @classmethod
    def _config_keys(cls):
        """The constructor's keywords: exactly what :meth:`get_config` stores."""
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_config(self):
        """The settings as a plain, JSON-serialisable dict.

        Returns
        -------
        dict
            ``{"class": "SGD" | "Adam" | "AdamW" | "RPROP", <keyword>: value, ...}``
            with one entry per constructor keyword (floats, bools, ``None``,
            ``betas`` as a list).  :func:`from_config` rebuilds an equal
            optimizer from it: same ``hyper`` array, bit for bit (checked:
            a ``hyper`` array edited into a state no settings describe raises
            ValueError).  The state
            (step count, moments) is not included: see :meth:`get_state`.
        """
        cfg = {"class": type(self).__name__}
        for key in self._config_keys():
            v = getattr(self, key)
            cfg[key] = list(v) if isinstance(v, tuple) else v
        twin = from_config(cfg)
        if twin.code != self.code or twin.hyper.tobytes() != self.hyper.tobytes():
            raise ValueError(f"this {cfg['class']}'s hyper-parameter array disagrees with its "
                             "settings (was it written by slot index?); set the settings by "
                             "name or make a new optimizer")
        return cfg

    @classmethod
    def from_config(cls, config):
        """An optimizer rebuilt from :meth:`get_config`'s dict (see :func:`from_config`).

        Called on a subclass (``Adam.from_config``), the dict must describe that class.
        """
        opt = from_config(config)
        if not isinstance(opt, cls):
            raise ValueError(f"the config describes a {type(opt).__name__}, not a {cls.__name__}")
        return opt

    # ----------------------------------------------------------------- state
    def state_shape(self, n_params):
        """Shape of the state buffers for ``n_params`` parameters."""
        return (max(self.n_state, 1), n_params if self.n_state else 0)

    def get_state(self):
        """Copies of the state arrays: ``{"step": int64 (1,), "state": ...}``.

        ``"state"`` (momentum, moments or RPROP steps, shaped
        :meth:`state_shape`) is present only once the optimizer is bound to a
        network.  :meth:`set_state` restores them.
        """
        out = {"step": self.step.copy()}
        if self.state is not None:
            out["state"] = self.state.copy()
        return out

    def set_state(self, step, state=None):
        """Restore :meth:`get_state`'s arrays (``state=None``: unbound, no buffers yet).

        Parameters
        ----------
        step : array-like of int64, shape (1,)
            Steps taken (drives Adam's bias correction); ``>= 0``.
        state : ndarray of float32 or float64, shape ``state_shape(n_params)``, optional
            Copied; the network it is used with must have ``n_params`` parameters
            of that dtype.
        """
        step = np.asarray(step)
        if step.shape != (1,) or step.dtype != np.int64 or step[0] < 0:
            raise ValueError(f"step must be an int64 array of shape (1,) holding a count "
                             f">= 0, got {step!r}")
        if state is not None:
            state = np.asarray(state)
            if state.dtype not in (np.float32, np.float64) or state.ndim != 2 \
                    or state.shape != self.state_shape(state.shape[-1]):
                raise ValueError(f"this {type(self).__name__} keeps state of shape "
                                 f"{self.state_shape(-1)[0]} x n_params (float32 or float64), "
                                 f"got {state.dtype} {state.shape}")
            state = np.array(state, order="C", copy=True)
        self.state = state
        self.step[:] = step

    def bind(self, n_params, dtype):
        """Allocate (or check) state buffers for ``n_params`` parameters of ``dtype``."""
        shape = self.state_shape(n_params)
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

    momentum = _Slot(doc="Momentum coefficient (0: plain SGD).")
    nesterov = _Slot(to_py=bool, doc="Whether the momentum is Nesterov's.")

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        super().__init__(lr, weight_decay, l1, clip_norm)
        momentum = check_float(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self._put("momentum", momentum)
        self._put("nesterov", float(bool(nesterov)))
        if momentum > 0:
            self.code = _u.MOMENTUM
            self.n_state = 1


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient."""

    code = _u.ADAM
    n_state = 2

    beta1 = _Slot(doc="Decay rate of the first moment (``betas[0]``).")
    beta2 = _Slot(doc="Decay rate of the second moment (``betas[1]``).")
    eps = _Slot(doc="Added to the second moment's square root.")

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, l1=0.0,
                 clip_norm=None):
        super().__init__(lr, weight_decay, l1, clip_norm)
        b1, b2 = betas
        self._put("beta1", check_float(b1, "betas[0]", 0.0, 1.0, high_open=True))
        self._put("beta2", check_float(b2, "betas[1]", 0.0, 1.0, high_open=True))
        self._put("eps", check_float(eps, "eps", 0.0, low_open=True))

    @property
    def betas(self):
        """``(beta1, beta2)``, the moments' decay rates."""
        return (self.beta1, self.beta2)


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

    eta_plus = _Slot(doc="Factor a step grows by while the gradient keeps its sign.")
    eta_minus = _Slot(doc="Factor a step shrinks by when the gradient flips.")
    delta_min = _Slot(doc="Smallest step.")
    delta_max = _Slot(doc="Largest step.")

    def __init__(self, lr=1.0, eta_plus=1.2, eta_minus=0.5, delta0=0.1, delta_min=1e-6,
                 delta_max=50.0, weight_decay=0.0, l1=0.0, clip_norm=None):
        super().__init__(lr, weight_decay, l1, clip_norm)
        self.delta0 = check_float(delta0, "delta0", 0.0, low_open=True)
        self._put("eta_plus", check_float(eta_plus, "eta_plus", 1.0))
        self._put("eta_minus", check_float(eta_minus, "eta_minus", 0.0, 1.0, low_open=True))
        self._put("delta_min", check_float(delta_min, "delta_min", 0.0))
        self._put("delta_max", check_float(delta_max, "delta_max", delta_min))

    def _init_state(self):
        self.state[1] = self.delta0


#: Optimizer names (as ``fit(optimizer=...)`` takes them) -> classes.
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rprop": RPROP}
_CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}
#: Each optimizer's default learning rate (its constructor's ``lr`` default).
DEFAULT_LR = {name: inspect.signature(cls).parameters["lr"].default
              for name, cls in OPTIMIZERS.items()}


def make_optimizer(optimizer, lr, **kwargs):
    """An :class:`Optimizer` from a name (``sgd``, ``adam``, ``adamw``, ``rprop``) or an instance."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                         f"{', '.join(OPTIMIZERS)} or pass a fastbp.optim.Optimizer")
    return OPTIMIZERS[optimizer.lower()](lr=lr, **kwargs)


def from_config(config):
    """An optimizer rebuilt from :meth:`Optimizer.get_config`'s dict.

    Parameters
    ----------
    config : dict
        ``{"class": "SGD" | "Adam" | "AdamW" | "RPROP", <keyword>: value, ...}``;
        keywords left out take the constructor's defaults.

    Returns
    -------
    Optimizer
        A new, unbound optimizer whose ``hyper`` array equals the one the
        config was taken from, bit for bit.  Restore the state with
        :meth:`Optimizer.set_state`.

    Raises
    ------
    TypeError, ValueError
        ``config`` is not a dict, names an unknown class or keyword, or holds
        an invalid setting (the constructor's own message).
    """
    if not isinstance(config, dict):
        raise TypeError(f"an optimizer config must be a dict, got {type(config).__name__}")
    name = config.get("class")
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"unknown optimizer class {name!r}; expected one of {list(_CLASSES)}")
    cls = _CLASSES[name]
    kwargs = {k: v for k, v in config.items() if k != "class"}
    unknown = sorted(set(kwargs) - set(cls._config_keys()), key=str)
    if unknown:
        raise ValueError(f"unknown {name} settings {unknown}; it takes {cls._config_keys()}")
    return cls(**kwargs)


def from_hyper(name, hyper, **settings):
    """A ``name`` optimizer whose ``hyper`` array is ``hyper``, bit for bit.

    Rebuilds an optimizer from the kernels' array of settings (read slot by
    slot through :data:`HYPER_SLOTS`) plus the ``settings`` that array does
    not hold (RPROP's ``delta0``); ``settings`` also override the array and
    must agree with it.  Every value is validated by the constructor.

    Raises
    ------
    ValueError, TypeError
        Unknown class, an invalid setting, or ``hyper`` holds values the
        optimizer's settings cannot produce (it disagrees with them).
    """
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"unknown optimizer class {name!r}; expected one of {list(_CLASSES)}")
    hyper = np.asarray(hyper, dtype=np.float64)
    if hyper.shape != (N_HYPER,):
        raise ValueError(f"hyper must have shape ({N_HYPER},), got {hyper.shape}")
    cls = _CLASSES[name]
    probe = object.__new__(cls)  # reads the slots of ``hyper`` by name, unchecked
    probe.hyper = hyper
    config = {"class": name}
    for key in cls._config_keys():
        if key not in settings and isinstance(getattr(cls, key, None), (_Slot, property)):
            v = getattr(probe, key)
            config[key] = list(v) if isinstance(v, tuple) else v
    opt = from_config({**config, **settings})
    if opt.hyper.tobytes() != hyper.tobytes():
        raise ValueError("the optimizer's hyper-parameter array disagrees with its attributes")
    return opt
