"""When and how an epoch runs on a generated kernel.

``why_not``/``auto`` are the engine's row in ``fastbp._engine.ENGINES`` (the
first engine ``training.train_epoch`` tries); ``run_generated`` runs an epoch
on the network's generated kernel.

Covered: dense input; SGD (with weight decay and L1, plain or with
momentum / Nesterov), Adam and AdamW, without gradient clipping; no dropout,
no batch norm, no sample weights, no per-step learning rates,
any activation and loss, float32 and float64, any batch size and shuffle
setting -- for networks whose multiply-adds per batch stay at or below
``_config.GEN_NET_MACS`` for plain SGD (``GEN_ONLINE_MACS`` one sample at a
time; the results are bit for bit those of the generic engine's flat path
where every dot product is shorter than ``source.DOT_SPLIT``) or
``_config.GEN_STATE_MACS`` for the other optimizers (above them the generic
engine's vectorised products win), and with at most ``GEN_MAX_LAYERS``
weight layers (the kernel's code, hence its compile time, grows with the
depth).

``FASTBP_GENERATED=0`` in the environment (read at import) or
``engine.ENABLED = False`` switches the engine off.
"""

import os

from .._config import (GEN_MAX_LAYERS, GEN_NET_MACS, GEN_ONLINE_MACS, GEN_REG_PARAMS,
                       GEN_STATE_MACS)
from .._kernels.layout import dense_only
from .._kernels.update import ADAM, ADAMW, H_CLIP, H_L1, MOMENTUM, SGD
from ..spec import L_ACT, L_IN, L_OUT, P_DROP
from .cache import load
from .source import register_ok

ENABLED = os.environ.get("FASTBP_GENERATED", "1") != "0"

_KEYS = {}


def opt_kind(opt, hyper):
    """The generated kernels' name of an optimizer setting, or None when not covered."""
    if hyper[H_CLIP] != 0.0:
        return None
    if opt == SGD:
        return "sgd" if hyper[H_L1] == 0.0 else "sgd-l1"
    return {MOMENTUM: "momentum", ADAM: "adam", ADAMW: "adamw"}.get(int(opt))


def kernel_key(layout, lparams, loss, opt, hyper, batch_size, bounded=True):
    """The generated kernel's key for this epoch, or None when it is not covered
    (with ``bounded``, also None above the size where the generic engine wins)."""
    kind = opt_kind(opt, hyper)
    if kind is None:
        return None
    ck = (layout.tobytes(), lparams[:, P_DROP].tobytes(), int(loss), kind, batch_size == 1)
    key = _KEYS.get(ck, 0)
    if key == 0:
        key = None
        L = layout.shape[0]
        macs = int((layout[:, L_IN] * layout[:, L_OUT]).sum())
        # the kernel's own test, interpreted: no compiled entry for a Python-side check
        if L <= GEN_MAX_LAYERS and dense_only.py_func(layout, lparams):
            sizes = (int(layout[0, L_IN]),) + tuple(int(m) for m in layout[:, L_OUT])
            acts = tuple(int(a) for a in layout[:, L_ACT])
            n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
            regs = (kind == "sgd" and batch_size == 1 and n_params <= GEN_REG_PARAMS
                    and register_ok(int(loss), acts[-1]))
            key = (sizes, acts, int(loss), kind, batch_size == 1, regs), macs
        if len(_KEYS) > 256:
            _KEYS.clear()
        _KEYS[ck] = key
    bound = GEN_STATE_MACS if kind != "sgd" else GEN_ONLINE_MACS if batch_size == 1 else \
        GEN_NET_MACS
    if key is None or (bounded and key[1] * batch_size > bound):
        return None
    return key[0]


def why_not(case):
    """Why the generated engine cannot run ``case`` (an ``_engine.Case``), or None."""
    if case.weighted:
        return "sample weights need the general step"
    if case.per_step:
        return "per-step learning-rate schedules need the general step"
    if kernel_key(case.layout, case.lparams, case.loss, case.opt, case.hyper, case.batch_size,
                  bounded=False) is None:
        return (f"generated kernels cover dense networks of at most {GEN_MAX_LAYERS} layers "
                "(no dropout or batch norm) trained with SGD, momentum, Adam or AdamW "
                "without clipping")
    return None


def auto(case):
    """The automatic rule: enabled, covered, and small enough that generated code wins."""
    return (ENABLED and not case.weighted and not case.per_step
            and kernel_key(case.layout, case.lparams, case.loss, case.opt, case.hyper,
                           case.batch_size) is not None)


def run_generated(model, work, loss, X, y, order, batch_size, shuffle, ybuf, opt, hyper, state,
                  step, out):
    """Run the epoch on its generated kernel and return True; False (nothing run) when the
    kernel's file cannot be written, and another engine must serve."""
    batch_size = int(batch_size)
    key = kernel_key(model.layout, model.lparams, loss, opt, hyper, batch_size, bounded=False)
    try:
        mod = load(key)
    except OSError:  # no writable folder for the generated file
        return False
    steps = mod.epoch(model.params, model.lparams, X, y, order, batch_size, bool(shuffle),
                      work.acts, work.pre, work.deltas, ybuf, work.cap, hyper, work.grad, state,
                      int(step[0]), out)
    step[0] += steps
    model.counter[0] += steps
    return True
