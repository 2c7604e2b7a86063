"""The keywords of ``fit``, declared once: name, default, documentation and checks.

:class:`FitOptions` lists every training option with its default and its
numpydoc text.  :meth:`fastbp.MLP.fit` and
:meth:`fastbp.distributed.DataParallel.fit` are built from it by
:func:`fit_method`, which gives each a real signature (``help`` and
``inspect.signature`` show the keywords), binds a call exactly as Python
would, and hands the implementation one :class:`FitOptions` plus the
remaining keywords (the optimizer's settings).  Adding a ``fit`` option is one
field here.
"""

import dataclasses
import inspect
import textwrap

from ._validate import check_float, check_int
from .optim import OPTIMIZERS

__all__ = ["FitOptions", "fit_method", "parameters_doc"]


def _opt(default, kind, doc):
    return dataclasses.field(default=default, metadata={"kind": kind, "doc": doc})


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """The options of one ``fit`` call (defaults as in :meth:`fastbp.MLP.fit`)."""

    epochs: int = _opt(1, "int", "Passes over the data.")
    batch_size: int = _opt(32, "int", "Rows per update; the last batch may be shorter.")
    lr: float = _opt(None, "float, optional", """\
        Learning rate (default: the instance's, else 0.01 for SGD, 0.001 for Adam).""")
    shuffle: bool = _opt(True, "bool", "Visit rows in a fresh seeded permutation each epoch.")
    seed: int = _opt(None, "int, optional", "Reseed the network's generator before training.")
    optimizer: object = _opt("sgd", 'str or fastbp.optim.Optimizer, default "sgd"', """\
        ``sgd`` (``momentum``, ``nesterov``, ``weight_decay``, ``l1``,
        ``clip_norm`` keywords), ``adam``, ``adamw``, ``rprop``
        (full batch), ``lbfgs`` (full batch, scipy), or an instance whose
        state persists across calls (``net.optimizer`` holds the last one).""")
    verbose: bool = _opt(False, "bool", """\
        A progress bar (tqdm if installed, else one line per epoch).""")
    callbacks: tuple = _opt((), "sequence of callables", """\
        ``callback(net, epoch, history)`` after each epoch; returning True
        stops (a non-empty string also becomes ``history.stop_reason``).
        Ready-made ones: :mod:`fastbp.callbacks`.""")
    on_divergence: str = _opt("raise", '{"raise", "warn"}', """\
        On a non-finite loss the network is restored to the end of the
        last finite epoch, then :class:`DivergenceError` is raised or a
        warning issued.""")
    validation_data: tuple = _opt(None, "(X_val, y_val), optional", """\
        Scored after every epoch (loss, and accuracy for classification).""")
    validation_fraction: float = _opt(0.0, "float", """\
        Hold out this fraction of ``(X, y)`` (a seeded split) for validation.""")
    early_stopping: bool = _opt(None, "bool, optional", """\
        Stop when the validation loss (training loss without validation)
        has not improved by ``tol`` for ``n_iter_no_change`` epochs and
        restore the best parameters.  Default: on when validation is given.""")
    n_iter_no_change: int = _opt(10, "int", "Patience of ``early_stopping``, in epochs.")
    tol: float = _opt(1e-4, "float", "Smallest improvement ``early_stopping`` counts.")
    lr_schedule: object = _opt(None, "str, callable or schedule object, optional", """\
        Learning rate per epoch, or per optimizer step for schedules with
        ``per == "step"`` (``"warmup_cosine"``, ``"onecycle"``,
        ``Cosine(..., per="step")``, ``fastbp.schedules.PerStep(f)``, ...),
        evaluated inside the compiled epoch; see :mod:`fastbp.schedules`.
        Schedules scale ``lr0``, the optimizer's rate when ``fit`` starts;
        a per-step schedule's step count is the optimizer's (it continues
        when an optimizer instance is reused -- pass ``lr`` again then, as
        the optimizer holds the last scheduled rate).""")
    record_grad_norms: bool = _opt(False, "bool", """\
        Record each layer's weight-gradient norm after every epoch
        (``history.grad_norms``), to make vanishing gradients visible.""")
    chunk_size: int = _opt(None, "int, optional", """\
        Rows per chunk when streaming an array (rounded down to a
        multiple of ``batch_size``); default about 64 MB of ``X``.""")
    sample_weight: object = _opt(None, "array-like, shape (n_samples,), optional", """\
        Per-sample weights (finite, ``>= 0``, not all zero).  Each batch
        minimises its weighted mean loss ``sum_i w_i E_i / sum_i w_i``
        (PyTorch's and scikit-learn's convention); weights travel with
        their samples through shuffling and the validation split; a batch
        whose weights sum to 0 takes no step.  A weight of 0 equals
        leaving the sample out, except for batch-norm batch statistics
        (unweighted) and the batch composition.  ``history.loss`` is the
        weighted epoch mean.  ``validation_data`` may be a triple
        ``(X_val, y_val, w_val)``.  Not with streamed data.""")

    def checked(self):
        """A copy with the scalar options validated and normalised (ValueError/TypeError)."""
        if self.on_divergence not in ("raise", "warn"):
            raise ValueError(f"on_divergence must be 'raise' or 'warn', got "
                             f"{self.on_divergence!r}")
        callbacks = list(self.callbacks) if self.callbacks is not None else []
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables f(net, epoch, history), got {cb!r}")
        return dataclasses.replace(
            self, epochs=check_int(self.epochs, "epochs", 0),
            batch_size=check_int(self.batch_size, "batch_size", 1),
            n_iter_no_change=check_int(self.n_iter_no_change, "n_iter_no_change", 1),
            tol=check_float(self.tol, "tol", low=0.0),
            validation_fraction=check_float(self.validation_fraction, "validation_fraction",
                                            0.0, 1.0, high_open=True),
            callbacks=tuple(callbacks), shuffle=bool(self.shuffle))

    @property
    def lbfgs(self):
        """Whether the optimizer is full-batch L-BFGS (scipy), not a step rule."""
        return isinstance(self.optimizer, str) and self.optimizer.lower() == "lbfgs"

    def validation_parts(self, weights=True):
        """``validation_data`` unpacked as ``(X_val, y_val, w_val or None)`` (``None``: none given)."""
        if self.validation_data is None:
            return None
        what = ("a pair (X_val, y_val) or a triple (X_val, y_val, sample_weight_val)"
                if weights else "a pair (X_val, y_val)")
        try:
            Xv, yv, *rest = self.validation_data
            if len(rest) > (1 if weights else 0):
                raise ValueError
        except (TypeError, ValueError):
            raise TypeError(f"validation_data must be {what}") from None
        return Xv, yv, (rest[0] if rest else None)


_FIELDS = {f.name: f for f in dataclasses.fields(FitOptions)}


def parameters_doc(names=None, overrides=None, indent=8):
    """The numpydoc entries of the options ``names`` (default: all; ``overrides``: name -> (kind, doc))."""
    overrides = overrides or {}
    names = list(_FIELDS) if names is None else names
    out = []
    for name in names:
        f = _FIELDS.get(name)
        kind, doc = overrides.get(name) or (f.metadata["kind"], f.metadata["doc"])
        out.append(f"{name} : {kind}\n" + textwrap.indent(textwrap.dedent(doc).strip(), "    "))
    return textwrap.indent("\n".join(out), " " * indent)


def _check_settings(name, optimizer, settings):
    """Refuse a keyword that is neither a fit option nor a setting of the named optimizer."""
    cls = OPTIMIZERS.get(optimizer.lower()) if isinstance(optimizer, str) else None
    if cls is None or not settings:
        return  # an instance, lbfgs or an unknown name: checked where it is built
    known = [p for p in inspect.signature(cls).parameters if p != "lr"]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise TypeError(f"{name}() got unexpected keyword argument(s) "
                        f"{', '.join(map(repr, unknown))}: neither a fit option "
                        f"({', '.join(_FIELDS)}) nor a setting of optimizer {optimizer!r} "
                        f"({', '.join(known)})")


def fit_method(impl, *, name, head, names=None, extra=None, doc="", module=None):
    """A ``fit`` method built from :class:`FitOptions`.

    Parameters
    ----------
    impl : callable
        ``impl(self, *head_values, options, opt_kwargs, **extra_values)``.
    name : str
        Qualified name of the method (``"MLP.fit"``), used in error messages.
    head : sequence of inspect.Parameter
        The data parameters after ``self`` (``X``, ``y``).
    names : sequence of str, optional
        The keywords after ``head``, in signature order: :class:`FitOptions`
        fields and keys of ``extra`` (default: every field, in order).
    extra : dict, optional
        Keywords of this method only, with their defaults.
    doc : str
        The method's docstring.
    module : str, optional
        The defining class's module (default: ``impl``'s).

    The method binds its arguments as Python binds a call (a TypeError for
    missing, duplicate or surplus positional arguments), collects the other
    keywords in ``**opt_kwargs`` (the optimizer's settings) and refuses, with
    a TypeError, a ``FitOptions`` field this method does not take.
    """
    extra = dict(extra or {})
    names = list(_FIELDS) if names is None else list(names)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *head]
    for n in names:
        default = extra[n] if n in extra else _FIELDS[n].default
        params.append(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=default))
    params.append(inspect.Parameter("opt_kwargs", inspect.Parameter.VAR_KEYWORD))
    sig = inspect.Signature(params)
    n_head = len(head)
    unsupported = sorted(set(_FIELDS) - set(names))

    def method(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        bound.apply_defaults()
        values = bound.arguments
        opt_kwargs = dict(values.pop("opt_kwargs"))
        refused = sorted(set(opt_kwargs) & set(unsupported))
        if refused:
            raise TypeError(f"{name}() does not take {', '.join(map(repr, refused))} (options "
                            f"of MLP.fit it does not support); remove "
                            f"{'it' if len(refused) == 1 else 'them'}")
        data = list(values.values())[:1 + n_head]
        options = FitOptions(**{n: values[n] for n in names if n in _FIELDS})
        _check_settings(name, options.optimizer, opt_kwargs)
        return impl(*data, options, opt_kwargs, **{n: values[n] for n in names if n in extra})

    method.__signature__ = sig
    method.__name__ = name.rpartition(".")[2]
    method.__qualname__ = name
    method.__doc__ = doc
    method.__module__ = module or impl.__module__
    return method
