"""Learning-rate schedules, applied once per epoch by :meth:`fastbp.MLP.fit`.

A schedule is called as ``schedule(epoch, lr0, metric)`` before each epoch
(``epoch`` counts from 0, ``metric`` is the last epoch's validation loss, or
training loss without validation, ``None`` before the first) and returns the
learning rate for that epoch.  Pass a name, a schedule object or any callable.
"""

import math

from ._validate import check_float, check_int


class Constant:
    """``lr = lr0``."""

    def __call__(self, epoch, lr0, metric=None):
        return lr0


class Step:
    """``lr = lr0 * gamma ** (epoch // step_size)``."""

    def __init__(self, step_size=10, gamma=0.1):
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = check_float(gamma, "gamma", 0.0, low_open=True)

    def __call__(self, epoch, lr0, metric=None):
        return lr0 * self.gamma ** (epoch // self.step_size)


class Exponential:
    """``lr = lr0 * gamma ** epoch``."""

    def __init__(self, gamma=0.95):
        self.gamma = check_float(gamma, "gamma", 0.0, low_open=True)

    def __call__(self, epoch, lr0, metric=None):
        return lr0 * self.gamma ** epoch


class Cosine:
    """``lr = eta_min + (lr0 - eta_min) (1 + cos(pi * epoch / t_max)) / 2`` (then ``eta_min``)."""

    def __init__(self, t_max=50, eta_min=0.0):
        self.t_max = check_int(t_max, "t_max", 1)
        self.eta_min = check_float(eta_min, "eta_min", 0.0)

    def __call__(self, epoch, lr0, metric=None):
        e = min(epoch, self.t_max)
        return self.eta_min + (lr0 - self.eta_min) * (1 + math.cos(math.pi * e / self.t_max)) / 2


class InverseScaling:
    """``lr = lr0 / (epoch + 1) ** power`` (scikit-learn's ``invscaling`` per epoch)."""

    def __init__(self, power=0.5):
        self.power = check_float(power, "power", 0.0)

    def __call__(self, epoch, lr0, metric=None):
        return lr0 / (epoch + 1) ** self.power


class ReduceOnPlateau:
    """Multiply the rate by ``factor`` after ``patience`` epochs without improvement.

    Improvement means the metric fell by more than ``threshold`` (relative)
    below the best seen.  The rate never drops below ``min_lr``.
    """

    def __init__(self, factor=0.1, patience=5, threshold=1e-4, min_lr=0.0):
        self.factor = check_float(factor, "factor", 0.0, 1.0, low_open=True, high_open=True)
        self.patience = check_int(patience, "patience", 0)
        self.threshold = check_float(threshold, "threshold", 0.0)
        self.min_lr = check_float(min_lr, "min_lr", 0.0)
        self.reset()

    def reset(self):
        """Forget the best metric and the current reduction."""
        self.best = math.inf
        self.bad_epochs = 0
        self.scale = 1.0

    def __call__(self, epoch, lr0, metric=None):
        if epoch == 0:
            self.reset()
        if metric is not None:
            if metric < self.best * (1 - self.threshold):
                self.best = metric
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs > self.patience:
                    self.scale *= self.factor
                    self.bad_epochs = 0
        return max(lr0 * self.scale, self.min_lr)


SCHEDULES = {"constant": Constant, "step": Step, "exponential": Exponential,
             "cosine": Cosine, "invscaling": InverseScaling, "plateau": ReduceOnPlateau}


def make_schedule(schedule):
    """A schedule from a name (``constant``, ``step``, ``exponential``, ``cosine``,
    ``invscaling``, ``plateau``), a schedule object or a callable."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, str):
        if schedule.lower() not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)} or pass a callable")
        return SCHEDULES[schedule.lower()]()
    if callable(schedule):
        return schedule
    raise TypeError(f"lr_schedule must be a name or a callable, got {schedule!r}")
