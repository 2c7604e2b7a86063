"""Ready-made callbacks for :meth:`fastbp.MLP.fit`: checkpoints, a CSV log, a time budget.

Each is a plain callable ``f(net, epoch, history)`` as ``fit(callbacks=...)``
expects; they are used like any other callback::

    from fastbp.callbacks import Checkpoint, CSVLogger, TimeBudget
    net.fit(X, y, epochs=100, optimizer="adam",
            callbacks=[Checkpoint("run.fbp", every=5), CSVLogger("run.csv"),
                       TimeBudget(3600)])

Epoch numbers
-------------
``fit`` passes each callback the epoch's index *within that call*.  These
callbacks number epochs globally instead: epoch ``n`` is the ``n``-th epoch
completed (1-based), counted from ``initial_epoch`` and continued across
several ``fit`` calls made with the same callback objects.

Resuming
--------
A checkpoint holds everything :func:`fastbp.save` stores (parameters,
optimizer state and step, generator state, dropout counter, batch-norm
statistics, the current ``fit`` call's history) plus the global epoch count.
A run killed at any point resumes from its last checkpoint exactly -- the
final parameters are bit for bit those of an uninterrupted run::

    net, done = fastbp.callbacks.load_checkpoint("run.fbp")
    net.fit(X, y, epochs=100 - done, optimizer=net.optimizer,
            callbacks=[Checkpoint("run.fbp", every=5, initial_epoch=done),
                       CSVLogger("run.csv", initial_epoch=done)])

Pass the same data, ``batch_size`` and ``shuffle`` as the first run, no
``seed`` (it would reseed the restored generator) and ``optimizer=net.optimizer``.
Exactness also needs the same thread count (``with fastbp.threads(1)`` makes
results independent of it) and holds for a constant learning rate with
explicit ``validation_data``; an ``lr_schedule``, ``validation_fraction``
(its split draws from the generator) or ``early_stopping`` (its patience
counter) restart with the new ``fit`` call.
"""

import math
import os
import time

import numpy as np

from ._npz import write_atomic
from ._validate import check_float, check_int
from .io import load, save

__all__ = ["Checkpoint", "CSVLogger", "TimeBudget", "load_checkpoint"]

_MONITORS = {"loss": min, "val_loss": min, "val_score": max}
_CSV_COLUMNS = ("epoch", "loss", "val_loss", "val_score", "lr", "epoch_time")
_clock = time.monotonic  # the time source of TimeBudget (tests replace it)


def _check_path(path, name="path", field=False):
    """``path`` as a str (``{epoch}`` allowed when ``field``); its folder must exist."""
    try:
        path = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{name} must be a str or os.PathLike, got {path!r}") from None
    probe = path
    if field:
        try:
            probe = path.format(epoch=1)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(f"{name} {path!r} may use only the field {{epoch}} (write other "
                             f"braces doubled, {{{{ }}}}): {type(exc).__name__}: {exc}") from None
    if not probe or probe.endswith(os.sep):
        raise ValueError(f"{name} must name a file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(probe))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"the folder of {name} {path!r} does not exist: {folder!r}; "
                                "create it first")
    return path


class _EpochCounter:
    """Global epoch numbers: from ``initial_epoch``, continued across ``fit`` calls."""

    def __init__(self, initial_epoch):
        self.initial_epoch = check_int(initial_epoch, "initial_epoch", 0)
        #: Global number of the last epoch seen (``initial_epoch`` before any).
        self.epoch = self.initial_epoch
        self._history = None
        self._base = self.initial_epoch

    def _count(self, epoch, history):
        """The global 1-based number of the epoch that just ended."""
        if history is not self._history:  # a new fit call
            self._history, self._base = history, self.epoch
        self.epoch = self._base + int(epoch) + 1
        return self.epoch


class Checkpoint(_EpochCounter):
    """Save the network every ``every`` epochs and/or whenever it is the best so far.

    Files are written atomically with :func:`fastbp.save` (a reader, or a run
    killed mid-save, sees the previous complete file) and carry the extras
    ``epoch`` (global epochs completed), ``best_value`` and ``best_epoch``
    (NaN / -1 when no best is tracked); see :func:`load_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        File to write.  May contain the field ``{epoch}`` (e.g.
        ``"run-{epoch:04d}.fbp"``) to keep one file per checkpoint; otherwise
        each checkpoint replaces the previous one.
    every : int or None, default 1
        Save after every ``every``-th epoch (global numbering); ``None``: only
        the best.
    best : bool or str or os.PathLike, default False
        Also save whenever the monitored value improves.  ``True`` writes the
        best to ``path`` when ``every`` is None, else beside it as
        ``<stem>.best<suffix>``; a path chooses the file.
    monitor : {"auto", "loss", "val_loss", "val_score"}, default "auto"
        What "best" means: the lowest loss / val_loss, the highest val_score.
        ``"auto"``: ``val_loss`` when validation data is given, else ``loss``.
    initial_epoch : int, default 0
        Epochs already done when resuming (from :func:`load_checkpoint`);
        the best value so far is then read back from the best file (when
        one exists at that name; a best path with ``{epoch}`` in it is
        looked up for epoch ``initial_epoch``).

    Attributes
    ----------
    epoch : int
        Global number of the last epoch seen.
    best_value : float
        Best monitored value so far (``inf``/``-inf`` before any).
    best_epoch : int or None
        Epoch of ``best_value``.
    last_path : str or None
        The file most recently written.
    """

    def __init__(self, path, every=1, best=False, monitor="auto", initial_epoch=0):
        super().__init__(initial_epoch)
        self.path = _check_path(path, field=True)
        self.every = None if every is None else check_int(every, "every", 1)
        if isinstance(best, (bool, np.bool_)):
            if best and self.every is None:
                self.best_path = self.path
            elif best:
                stem, suffix = os.path.splitext(self.path)
                self.best_path = f"{stem}.best{suffix}"
            else:
                self.best_path = None
        else:
            try:
                self.best_path = _check_path(best, "best", field=True)
            except TypeError:
                raise TypeError(f"best must be a bool or a path, got {best!r}") from None
        if self.every is None and self.best_path is None:
            raise ValueError("Checkpoint would never save: give every=N and/or best=True")
        if monitor != "auto" and monitor not in _MONITORS:
            raise ValueError(f"monitor must be 'auto' or one of {', '.join(_MONITORS)}, "
                             f"got {monitor!r}")
        self.monitor = monitor
        self.best_epoch = None
        self.best_value = math.inf if monitor in ("auto", "loss", "val_loss") else -math.inf
        self.last_path = None
        if self.best_path is not None and self.initial_epoch > 0:
            self._restore_best()

    def _restore_best(self):
        """On resume: the best value so far, from the existing best file (if any)."""
        target = self.best_path.format(epoch=self.initial_epoch)
        if not os.path.exists(target):
            return
        _, extra = load(target, return_extra=True)
        value, epoch = extra.get("best_value"), extra.get("best_epoch")
        if value is None or epoch is None or int(epoch.reshape(-1)[0]) < 0:
            return
        if int(epoch.reshape(-1)[0]) <= self.initial_epoch:
            self.best_value = float(value.reshape(-1)[0])
            self.best_epoch = int(epoch.reshape(-1)[0])

    def _monitored(self, history):
        name = self.monitor
        if name == "auto":
            name = self.monitor = "val_loss" if history.val_loss else "loss"
        values = getattr(history, name)
        if not values or values[-1] is None:
            raise ValueError(f"Checkpoint(monitor={name!r}) has nothing to monitor: "
                             + ("val_score is None for mse (use 'val_loss')" if values else
                                "pass validation_data= or validation_fraction= to fit, or "
                                "use monitor='loss'"))
        return float(values[-1])

    def _save(self, net, history, template, epoch):
        target = template.format(epoch=epoch)
        extra = {"epoch": np.int64(epoch),
                 "best_value": np.float64(self.best_value if self.best_epoch is not None
                                          else np.nan),
                 "best_epoch": np.int64(-1 if self.best_epoch is None else self.best_epoch)}
        missing = object()
        previous = getattr(net, "history_", missing)
        net.history_ = history  # fit assigns it only when it returns
        try:
            save(net, target, extra=extra)
        finally:
            if previous is missing:
                del net.history_
            else:
                net.history_ = previous
        self.last_path = target
        return target

    def __call__(self, net, epoch, history):
        epoch = self._count(epoch, history)
        written = None
        if self.best_path is not None:
            value = self._monitored(history)
            if (value < self.best_value if _MONITORS[self.monitor] is min
                    else value > self.best_value):  # NaN never improves
                self.best_value, self.best_epoch = value, epoch
                written = self._save(net, history, self.best_path, epoch)
        if self.every is not None and epoch % self.every == 0 and \
                written != self.path.format(epoch=epoch):
            self._save(net, history, self.path, epoch)
        return False

    def __repr__(self):
        return (f"Checkpoint({self.path!r}, every={self.every}, best={self.best_path!r}, "
                f"monitor={self.monitor!r}, epoch={self.epoch})")


def load_checkpoint(path):
    """Read a file written by :class:`Checkpoint`: the network and the epochs done.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    net : MLP
        With its optimizer (pass ``optimizer=net.optimizer`` to ``fit``),
        generator state and ``history_``, as :func:`fastbp.load` returns it.
    epoch : int
        Global epochs completed: pass ``epochs=total - epoch`` to ``fit`` and
        ``initial_epoch=epoch`` to the callbacks.

    Raises
    ------
    FileNotFoundError, fastbp.io.FormatError
        As :func:`fastbp.load`.
    ValueError
        The file is a network but was not written by :class:`Checkpoint`.
    """
    net, extra = load(path, return_extra=True)
    epoch = extra.get("epoch")
    if epoch is None or epoch.size != 1 or epoch.dtype.kind not in "iu" or \
            int(epoch.reshape(-1)[0]) < 0:
        raise ValueError(f"{os.fsdecode(os.fspath(path))!r} was not written by "
                         "fastbp.callbacks.Checkpoint (no 'epoch' extra); use fastbp.load")
    return net, int(epoch.reshape(-1)[0])


class CSVLogger(_EpochCounter):
    """Append one row per epoch to a CSV file, flushed as each epoch ends.

    Columns: ``epoch`` (global, 1-based), ``loss``, ``val_loss``,
    ``val_score``, ``lr``, ``epoch_time``; empty where the history has no
    value (no validation data; ``val_score`` for mse).  Floats are written
    in Python's shortest round-trip form.

    Parameters
    ----------
    path : str or os.PathLike
    initial_epoch : int, default 0
        ``0``: a new log -- an existing file is replaced (at the first
        epoch).  ``k > 0`` (resuming after epoch ``k``): the existing rows of
        epochs ``1..k`` are kept (later rows, from epochs done after the last
        checkpoint and about to be redone, are dropped), the header is not
        repeated, and new rows are appended.
    """

    def __init__(self, path, initial_epoch=0):
        super().__init__(initial_epoch)
        self.path = _check_path(path)
        self._opened = False

    def _header(self):
        return ",".join(_CSV_COLUMNS) + "\n"

    def _start(self):
        """Create the file (new log) or trim it to ``initial_epoch`` rows (resume)."""
        keep = [self._header()]
        if self.initial_epoch > 0 and os.path.exists(self.path):
            with open(self.path, encoding="utf-8", newline="") as fh:
                lines = fh.readlines()
            if not lines or lines[0] != keep[0]:
                raise ValueError(f"{self.path!r} is not a CSVLogger log (its header is "
                                 f"{lines[0].strip() if lines else 'missing'!r}); "
                                 "move it away or pass initial_epoch=0 to replace it")
            for line in lines[1:]:
                field = line.split(",", 1)[0]
                if line.endswith("\n") and field.isdigit() and int(field) <= self.initial_epoch:
                    keep.append(line)
            if len(keep) == len(lines):
                self._opened = True
                return
        text = "".join(keep).encode("utf-8")
        write_atomic(self.path, lambda fh: fh.write(text))
        self._opened = True

    @staticmethod
    def _cell(values, i):
        v = values[i] if 0 <= i < len(values) else None
        return "" if v is None else repr(float(v))

    def __call__(self, net, epoch, history):
        epoch = self._count(epoch, history)
        if not self._opened:
            self._start()
        i = history.epochs - 1
        cells = [str(epoch)] + [self._cell(getattr(history, c), i) for c in _CSV_COLUMNS[1:]]
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(",".join(cells) + "\n")  # one write: a kill leaves whole rows
            fh.flush()
        return False

    def __repr__(self):
        return f"CSVLogger({self.path!r}, epoch={self.epoch})"


class TimeBudget:
    """Stop training once ``seconds`` of wall time have passed.

    The clock starts when the object is created (:meth:`restart` starts it
    again) and is read after each epoch, so the epoch in flight finishes:
    the run stops at the first epoch end past the budget, and
    ``history.stop_reason`` is ``"time_budget"``.

    Parameters
    ----------
    seconds : float
        The budget, ``>= 0`` (``0`` stops after the first epoch).
    """

    def __init__(self, seconds):
        self.seconds = check_float(seconds, "seconds", low=0.0)
        self.restart()

    def restart(self):
        """Start the clock again."""
        self.start = _clock()

    @property
    def elapsed(self):
        """Seconds since the clock started."""
        return _clock() - self.start

    def __call__(self, net, epoch, history):
        return "time_budget" if self.elapsed >= self.seconds else False

    def __repr__(self):
        return f"TimeBudget({self.seconds:g} s, {self.elapsed:.1f} s elapsed)"
