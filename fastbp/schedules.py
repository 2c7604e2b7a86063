"""Learning-rate schedules, per epoch or per optimizer step, for :meth:`fastbp.MLP.fit`.

A schedule is called as ``schedule(t, lr0, metric)`` and returns a learning
rate.  Its ``per`` attribute says what ``t`` counts:

* ``per == "epoch"`` (the default, and any plain callable): called before each
  epoch with ``t`` the epoch (from 0) and ``metric`` the last epoch's
  validation loss (training loss without validation, ``None`` before the
  first); the rate holds for the whole epoch.
* ``per == "step"``: ``t`` is the optimizer's step count (updates taken
  since the optimizer was created; a fresh optimizer starts each ``fit`` at 0)
  and ``metric`` is ``None``.  ``fit`` evaluates the rate of every step of
  the run into one array before training starts (so a bad rate is reported
  before anything changes) and the compiled epoch sets the rate before each
  update: the schedule changes *within* epochs, with no Python per batch.
  Rates must be finite and ``>= 0``.

``Step``, ``Exponential``, ``Cosine`` and ``InverseScaling`` take
``per="epoch"`` or ``per="step"`` (same formula, ``t`` in epochs or steps);
``LinearWarmup``, ``WarmupCosine``, ``OneCycle`` and ``PerStep`` (any
``f(t, lr0)``) are per step.  Names: ``"constant"``, ``"step"``,
``"exponential"``, ``"cosine"``, ``"invscaling"``, ``"plateau"`` (per epoch),
``"warmup_cosine"`` (linear warmup over the first 5 % of the fit's steps,
then cosine decay reaching 0 one step after the last) and ``"onecycle"``
(over the fit's steps), per step.

Why rates are precomputed in Python rather than in an ``@njit`` function of
``(kind, params, step)``: any Python callable works (user schedules
included), every formula lives once, here, for both units, the compiled
epoch only reads ``lrs[k]`` from an array allocated once per ``fit`` (no
allocation per step), and one float per step is cheap next to a step.
"""

import math

import numpy as np

from ._validate import check_float, check_int

_PER = ("epoch", "step")


def _check_per(per):
    if per not in _PER:
        raise ValueError(f"per must be 'epoch' or 'step', got {per!r}")
    return per


def cosine_anneal(start, end, frac):
    """``end + (start - end) (1 + cos(pi * frac)) / 2``: ``start`` at ``frac = 0``, ``end`` at 1."""
    return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2


class Constant:
    """``lr = lr0``."""

    per = "epoch"

    def __call__(self, epoch, lr0, metric=None):
        return lr0


class Step:
    """``lr = lr0 * gamma ** (t // step_size)`` (``t`` in epochs, or steps with ``per="step"``)."""

    def __init__(self, step_size=10, gamma=0.1, per="epoch"):
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = check_float(gamma, "gamma", 0.0, low_open=True)
        self.per = _check_per(per)

    def __call__(self, epoch, lr0, metric=None):
        return lr0 * self.gamma ** (epoch // self.step_size)


class Exponential:
    """``lr = lr0 * gamma ** t`` (``t`` in epochs, or steps with ``per="step"``)."""

    def __init__(self, gamma=0.95, per="epoch"):
        self.gamma = check_float(gamma, "gamma", 0.0, low_open=True)
        self.per = _check_per(per)

    def __call__(self, epoch, lr0, metric=None):
        return lr0 * self.gamma ** epoch


class Cosine:
    """``lr = eta_min + (lr0 - eta_min) (1 + cos(pi * t / t_max)) / 2`` (then ``eta_min``);
    ``t`` in epochs, or steps with ``per="step"``."""

    def __init__(self, t_max=50, eta_min=0.0, per="epoch"):
        self.t_max = check_int(t_max, "t_max", 1)
        self.eta_min = check_float(eta_min, "eta_min", 0.0)
        self.per = _check_per(per)

    def __call__(self, epoch, lr0, metric=None):
        e = min(epoch, self.t_max)
        return cosine_anneal(lr0, self.eta_min, e / self.t_max)


class InverseScaling:
    """``lr = lr0 / (t + 1) ** power`` (scikit-learn's ``invscaling``; ``t`` in
    epochs, or steps with ``per="step"``)."""

    def __init__(self, power=0.5, per="epoch"):
        self.power = check_float(power, "power", 0.0)
        self.per = _check_per(per)

    def __call__(self, epoch, lr0, metric=None):
        return lr0 / (epoch + 1) ** self.power


class ReduceOnPlateau:
    """Multiply the rate by ``factor`` after ``patience`` epochs without improvement.

    Improvement means the metric fell by more than ``threshold`` (relative)
    below the best seen.  The rate never drops below ``min_lr``.  Per epoch only.
    """

    per = "epoch"

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


class LinearWarmup:
    """Per step: ``lr = lr0 * (t + 1) / warmup_steps`` for ``t < warmup_steps``,
    then ``after(t - warmup_steps, lr0)`` (``lr0`` without ``after``).

    ``after`` is a per-step schedule (e.g. ``Cosine(t_max, per="step")``);
    its step count starts at 0 when the warmup ends.
    """

    per = "step"

    def __init__(self, warmup_steps, after=None):
        self.warmup_steps = check_int(warmup_steps, "warmup_steps", 1)
        if after is not None and (not callable(after) or getattr(after, "per", "step") != "step"):
            raise ValueError("after must be a per-step schedule (per='step'), got "
                             f"{after!r}")
        self.after = after

    def __call__(self, step, lr0, metric=None):
        if step < self.warmup_steps:
            return lr0 * (step + 1) / self.warmup_steps
        if self.after is None:
            return lr0
        return self.after(step - self.warmup_steps, lr0, None)


class WarmupCosine(LinearWarmup):
    """Per step: linear warmup over ``warmup_steps``, then cosine decay from
    ``lr0`` to ``eta_min`` at step ``total_steps`` (``eta_min`` after)."""

    def __init__(self, total_steps, warmup_steps=0, eta_min=0.0):
        self.total_steps = check_int(total_steps, "total_steps", 1)
        warmup_steps = check_int(warmup_steps, "warmup_steps", 0)
        if warmup_steps >= self.total_steps:
            raise ValueError(f"warmup_steps ({warmup_steps}) must be < total_steps "
                             f"({self.total_steps})")
        cos = Cosine(self.total_steps - warmup_steps, eta_min, per="step")
        if warmup_steps == 0:
            self.warmup_steps, self.after = 0, cos
        else:
            super().__init__(warmup_steps, cos)


class OneCycle:
    """Per step: the 1cycle policy (PyTorch's ``OneCycleLR``, two phases, cosine).

    The rate rises from ``lr0 / div_factor`` to ``lr0`` (the peak, at step
    ``pct_start * total_steps - 1``), then falls to
    ``lr0 / (div_factor * final_div_factor)`` at step ``total_steps - 1``
    (and stays there), each phase a cosine anneal.
    """

    per = "step"

    def __init__(self, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
        self.total_steps = check_int(total_steps, "total_steps", 2)
        self.pct_start = check_float(pct_start, "pct_start", 0.0, 1.0, True, True)
        self.div_factor = check_float(div_factor, "div_factor", 1.0)
        self.final_div_factor = check_float(final_div_factor, "final_div_factor", 1.0)

    def __call__(self, step, lr0, metric=None):
        start = lr0 / self.div_factor
        end = start / self.final_div_factor
        peak = float(self.pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if step <= peak:
            return cosine_anneal(start, lr0, step / peak if peak > 0 else 1.0)
        return cosine_anneal(lr0, end, min(step - peak, last - peak) / (last - peak))


class PerStep:
    """Any ``f(step, lr0) -> lr`` as a per-step schedule."""

    per = "step"

    def __init__(self, f):
        if not callable(f):
            raise TypeError(f"PerStep needs a callable f(step, lr0), got {f!r}")
        self.f = f

    def __call__(self, step, lr0, metric=None):
        return self.f(step, lr0)


def step_rates(schedule, t0, count, lr0):
    """Rates of a per-step ``schedule`` for steps ``t0 .. t0+count-1`` (float64 array).

    Raises ``ValueError`` when a rate is not a finite number ``>= 0``.
    """
    rates = np.empty(count, dtype=np.float64)
    for k in range(count):
        v = schedule(t0 + k, lr0, None)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"lr_schedule returned {v!r} for step {t0 + k}; it must return "
                            "a number") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"lr_schedule gives the learning rate {v!r} at step {t0 + k}; "
                             "rates must be finite and >= 0")
        rates[k] = v
    return rates


SCHEDULES = {"constant": Constant, "step": Step, "exponential": Exponential,
             "cosine": Cosine, "invscaling": InverseScaling, "plateau": ReduceOnPlateau,
             "warmup_cosine": lambda total: WarmupCosine(total, warmup_steps=total // 20),
             "onecycle": OneCycle}

#: Named schedules built for the run's number of optimizer steps.
_NEED_TOTAL = ("warmup_cosine", "onecycle")


def make_schedule(schedule, total_steps=None):
    """A schedule from a name (``constant``, ``step``, ``exponential``, ``cosine``,
    ``invscaling``, ``plateau``, ``warmup_cosine``, ``onecycle``), a schedule
    object or a callable.  ``total_steps`` (the run's optimizer steps) sizes
    ``warmup_cosine`` and ``onecycle``."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, str):
        name = schedule.lower()
        if name not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)} or pass a callable")
        if name in _NEED_TOTAL:
            return SCHEDULES[name](max(int(total_steps or 2), 2))
        return SCHEDULES[name]()
    if callable(schedule):
        return schedule
    raise TypeError(f"lr_schedule must be a name or a callable, got {schedule!r}")
