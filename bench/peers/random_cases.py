"""Seeded random architectures for ``bench/compare.py --random N --seed S``.

``random_cases(n, seed)`` draws ``n`` cases, reproducibly from ``seed`` alone
(numpy ``default_rng(seed)``; every peer process draws the same list):

* 1 to 5 hidden layers (uniform);
* every width -- input, hidden, output -- log-uniform on 2..1024;
* batch log-uniform on 1..256;
* hidden activation relu, tanh or sigmoid (uniform);
* loss softmax cross-entropy (output width = classes) or MSE with an identity
  output (1/2 sum over outputs, mean over the batch), each with probability 1/2;
* float32, plain SGD at lr ``LR``.

Data (``common.make_data``): N(0, 1) inputs; random labels for CE, uniform
[-1, 1] targets for MSE; seeded by (seed, index).

Samples per epoch N (``case_samples``) are fixed by the architecture alone, so
every peer trains the same data: the number of samples a fast trainer gets
through in about ``TARGET_EPOCH_S``, estimated from the model FLOPs and a
per-layer, per-batch cost, clamped to [``MIN_BATCHES`` batches, ``MAX_SAMPLES``]
and to ``MAX_DATA_BYTES`` of data, a multiple of the batch.  A peer slower than
``MAX_EPOCH_S`` on it is timed on a prefix, as for the fixed cases.
"""

from __future__ import annotations

import math

import numpy as np

from .common import CASES, Case, model_flops_per_sample, quick_case

HIDDEN = ("relu", "tanh", "sigmoid")
MIN_WIDTH, MAX_WIDTH = 2, 1024
MAX_BATCH = 256
LR = 0.01

TARGET_EPOCH_S = 0.25      # aimed-for epoch time of the fastest peer
EST_FLOPS = 60e9           # model FLOP/s assumed for that estimate (2 cores)
EST_LAYER_BATCH_S = 0.15e-6  # assumed fixed cost per layer and batch
MIN_BATCHES = 64
MAX_SAMPLES = 1 << 21
MAX_DATA_BYTES = 256 << 20

REPEATS = 5                # timed epochs per peer and random case (--repeats overrides)
MAX_EPOCH_S = 0.6          # prefix timing above this (--max-epoch-s does not apply)


def _log_uniform_int(rng, lo, hi):
    """An integer in [lo, hi], log-uniform."""
    v = int(math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))))
    return min(max(v, lo), hi)


def case_samples(sizes, batch, loss):
    """N of a random case (see the module docstring); a multiple of ``batch``."""
    L = len(sizes) - 1
    t = model_flops_per_sample(sizes) / EST_FLOPS + EST_LAYER_BATCH_S * L / batch
    n = int(TARGET_EPOCH_S / t)
    row_bytes = 4 * sizes[0] + (8 if loss == "cross_entropy" else 4 * sizes[-1])
    n = min(n, MAX_SAMPLES, MAX_DATA_BYTES // row_bytes)
    n = max(n, MIN_BATCHES * batch)
    return n // batch * batch


def random_cases(n, seed):
    """``n`` random cases, the same for the same ``seed``; named ``r<seed>-<i>``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        depth = int(rng.integers(1, 6))
        sizes = tuple(_log_uniform_int(rng, MIN_WIDTH, MAX_WIDTH) for _ in range(depth + 2))
        batch = _log_uniform_int(rng, 1, MAX_BATCH)
        hidden = HIDDEN[int(rng.integers(len(HIDDEN)))]
        ce = bool(rng.integers(2))
        loss, output = ("cross_entropy", "softmax") if ce else ("mse", "identity")
        out.append(Case(
            "r%d-%02d" % (seed, i), sizes, hidden, output, loss, batch, LR,
            n=case_samples(sizes, batch, loss), data="random", key=(seed, i),
            repeats=REPEATS, max_epoch_s=MAX_EPOCH_S,
            description="random architecture %d of seed %d" % (i, seed)))
    return out


def parse_random_name(name):
    """(seed, index) of a name made by ``random_cases``, else None."""
    if not name.startswith("r") or "-" not in name:
        return None
    a, b = name[1:].split("-", 1)
    try:
        return int(a), int(b)
    except ValueError:
        return None


def case_by_name(name):
    """A fixed case (``common.CASES``) or a random one by its name ``r<seed>-<i>``."""
    if name in CASES:
        return CASES[name]
    sk = parse_random_name(name)
    if sk is None:
        raise KeyError("unknown case %r" % (name,))
    return random_cases(sk[1] + 1, sk[0])[sk[1]]


def case_list(names, quick):
    """The cases named, divided by ``common.QUICK_DIV`` when ``quick``."""
    cases = [case_by_name(n) for n in names]
    return [quick_case(c) for c in cases] if quick else cases


def arch_label(case):
    """Short text: sizes, hidden activation, loss."""
    return "%s %s %s" % ("-".join(map(str, case.sizes)), case.hidden,
                         "CE" if case.loss == "cross_entropy" else "MSE")


def macs_per_sample(sizes):
    """Forward multiply-adds per sample."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
