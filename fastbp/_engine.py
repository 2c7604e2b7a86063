"""Which training engine runs an epoch: the automatic rule, or one forced (tests).

Private.  Every engine is one row of :data:`ENGINES`: the dispatch point it
belongs to (``"net"``: one network's epoch in ``training.train_epoch``;
``"population"``: ``Population.fit``), a function giving the reason it cannot
run a case (``None`` when it can) and the automatic rule that picks it.  At
each dispatch point the first engine of that kind (in table order) whose rule
accepts the case runs, unless :func:`force` names one.

The reference tests force every engine in turn onto the same cases, so each is
checked on its own rather than by which one a size threshold picks::

    with force("small"):
        net.fit(X, y, ...)      # raises Unsupported if the small engine cannot

Adding an engine is one row here plus its branch at the dispatch point.
"""

import contextlib
import os
import threading
from collections import namedtuple

import numba

from ._gen.engine import auto as gen_auto, why_not as gen_why_not
from ._config import SPLIT_MAX_MACS, SPLIT_MIN_BATCH, SPLIT_MIN_MACS, UNITS_MIN_MACS
from ._kernels.blas import blas_thread_control
from ._kernels.lanes import lanes_loss
from ._kernels.layout import dense_only
from ._kernels.train import flat_ok
from ._kernels.update import H_CLIP, fused_sgd
from .spec import L_IN, L_OUT, LOSS_NAMES

#: What an engine's eligibility sees: loss and optimizer codes, the optimizer's
#: ``hyper`` row, the network's layout tables, the batch size, and whether the
#: epoch has sample weights or per-step learning rates.
Case = namedtuple("Case", ["loss", "opt", "hyper", "layout", "lparams", "batch_size",
                           "weighted", "per_step"])

#: One engine: its dispatch point, ``why_not(case)`` (None or the reason it cannot
#: run the case) and ``auto(case)`` (whether the automatic rule picks it).
Engine = namedtuple("Engine", ["kind", "why_not", "auto"])


class Unsupported(ValueError):
    """A forced engine cannot run this case (the message says why)."""


def _any(case):
    """Every case can run (the general engines)."""
    return None


def _always(case):
    """The fallback of its dispatch point."""
    return True


def _flat_why_not(case):
    """Why the flat small-network step cannot run ``case`` (None if it can)."""
    if case.weighted:
        return "sample weights need the general step"
    if case.per_step:
        return "per-step learning-rate schedules need the general step"
    if not fused_sgd.py_func(case.opt, case.hyper):
        return "the flat step is plain SGD only (weight decay allowed; no momentum, " \
               "Adam, RPROP, L1 or clipping)"
    if not dense_only.py_func(case.layout, case.lparams):
        return "the flat step has no batch norm or dropout"
    return None


def _cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _macs(case):
    """Multiply-adds of one sample's forward pass."""
    return int((case.layout[:, L_IN].astype("int64") * case.layout[:, L_OUT]).sum())


def _split_why_not(case, what="the split engine"):
    """Why a two-thread engine (``what``: ``_kernels/split.py``, or ``split_units.py``)
    cannot run ``case`` (None if it can)."""
    reason = None
    if case.weighted:
        reason = "sample weights need the general step"
    elif case.per_step:
        reason = "per-step learning-rate schedules need the general step"
    elif case.hyper[H_CLIP] != 0.0:
        reason = "gradient clipping needs the whole gradient's norm (the general step)"
    elif not dense_only.py_func(case.layout, case.lparams):
        reason = f"{what} has no batch norm or dropout"
    elif not blas_thread_control():
        reason = f"{what} needs a pthreads OpenBLAS behind SciPy"
    return reason


def _two_threads_free(case):
    """Whether a two-thread engine can run ``case`` with two threads: allowed two
    (``fastbp.threads``), two cores free, called from the main thread (a fit on another
    thread, e.g. one of a sweep's, keeps to one core)."""
    return (_split_why_not(case) is None and numba.get_num_threads() >= 2 and _cores() >= 2
            and threading.current_thread() is threading.main_thread())


def _units_why_not(case):
    """Why the two-thread units engine (``_kernels/split_units.py``) cannot run ``case``."""
    return _split_why_not(case, "the units engine")


def _units_auto(case):
    """Batches of 1 or 2 (below ``SPLIT_MIN_BATCH``) of ``UNITS_MIN_MACS`` multiply-adds
    or more, when ``_two_threads_free``."""
    return (case.batch_size < SPLIT_MIN_BATCH
            and _macs(case) * case.batch_size >= UNITS_MIN_MACS and _two_threads_free(case))


def _split_auto(case):
    """``SPLIT_MIN_MACS`` to ``SPLIT_MAX_MACS`` multiply-adds a batch of
    ``SPLIT_MIN_BATCH`` samples or more (``_config.py``), when ``_two_threads_free``."""
    return (SPLIT_MIN_MACS <= _macs(case) * case.batch_size <= SPLIT_MAX_MACS
            and case.batch_size >= SPLIT_MIN_BATCH and _two_threads_free(case))


def _never(case):
    """Run only when forced: measured with ``bench/route_sweep.py`` (seed 5, 11 random
    shapes within its bound), the general engine beat the flat step on 10, by 1.2-7.7x;
    on the eleventh (2-2-4-5-5-2, batch 3) the generated kernel runs, 5x the general."""
    return False


def _flat_auto(case):
    """Plain SGD on a small dense network, unweighted, one rate per epoch."""
    return (not case.weighted and not case.per_step
            and flat_ok(case.opt, case.hyper, case.layout, case.lparams, case.batch_size))


def _lanes_why_not(case):
    """Why the lane kernel cannot run ``case`` (None if it can)."""
    if not lanes_loss(case.loss):
        return f"the lane kernel computes mse and the cross-entropies, not " \
               f"{LOSS_NAMES[case.loss]}"
    if not dense_only.py_func(case.layout, case.lparams):
        return "the lane kernel has no batch norm or dropout"
    return None


def _lanes_auto(case):
    """Every population the lane kernel can run."""
    return _lanes_why_not(case) is None


#: The engines, in the order the automatic rule tries them at each dispatch point.
ENGINES = {
    "generated": Engine("net", gen_why_not, gen_auto),                  # _gen/ (generated)
    "split": Engine("net", _split_why_not, _split_auto),                 # _kernels/split.py
    "units": Engine("net", _units_why_not, _units_auto),         # _kernels/split_units.py
    "small": Engine("net", _flat_why_not, _never),                       # _kernels/small.py
    "general": Engine("net", _any, _always),                             # train.batch_epoch
    "lanes": Engine("population", _lanes_why_not, _lanes_auto),          # _kernels/lanes.py
    "population-small": Engine("population", _flat_why_not, _flat_auto),  # population.py, flat
    "population": Engine("population", _any, _always),                   # population.py
}

_forced = None


@contextlib.contextmanager
def force(name):
    """Within the block, every dispatch point of ``name``'s kind runs engine ``name``.

    Process-wide (threads included); for tests.  A case the engine cannot run
    raises :class:`Unsupported` at the dispatch point, before its kernel runs.
    Dispatch points of the other kind keep their automatic rule.
    """
    global _forced
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    before = _forced
    _forced = name
    try:
        yield name
    finally:
        _forced = before


def forced():
    """The engine forced now, or None."""
    return _forced


def choose(kind, case, skip=None):
    """The engine that runs ``case`` at a dispatch point of ``kind`` (never ``skip``:
    an engine that found it cannot run after all)."""
    if _forced is not None and _forced == skip:
        raise Unsupported(f"engine {_forced!r} cannot run this case here (its kernel file "
                          "cannot be written)")
    if _forced is not None and ENGINES[_forced].kind == kind:
        reason = ENGINES[_forced].why_not(case)
        if reason is not None:
            raise Unsupported(f"engine {_forced!r} cannot run this case: {reason}")
        return _forced
    for name, engine in ENGINES.items():
        if engine.kind == kind and name != skip and engine.auto(case):
            return name
    raise AssertionError(f"no {kind} engine accepts the case")  # pragma: no cover
