"""Which single-network engine is fastest, shape by shape: the data behind ``_engine``'s rule.

    python bench/route_sweep.py --n 24 --seed 5            # 24 random shapes
    python bench/route_sweep.py --n 24 --seed 5 --max-macs 200000

Draws architectures like ``compare.py --random`` (``peers/random_cases``:
depth 1-5, log-uniform widths and batch), keeps those whose multiply-adds per
batch stay at or below ``--max-macs`` (the range where the engines differ), and
times one epoch of plain SGD (float32, shuffled, same initial weights) on each
engine forced in turn: ``generated``, ``small``, ``general``, best of
``--repeats`` epochs after an untimed one.  Prints samples/s of each, which is
fastest, and the engine the automatic rule picks, with its speed relative to
the fastest.  Named ``run_*`` inside so asv does not collect it.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastbp  # noqa: E402
from fastbp import _engine  # noqa: E402
from one_case import run_one_case  # noqa: E402
from peers.random_cases import HIDDEN, _log_uniform_int, case_samples  # noqa: E402

ENGINES = ("generated", "small", "general")


def draw(n, seed, max_macs, max_width, min_batch=1):
    """``n`` random shapes (sizes, batch, hidden, loss) under ``max_macs`` per batch."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        depth = int(rng.integers(1, 6))
        sizes = tuple(_log_uniform_int(rng, 2, max_width) for _ in range(depth + 2))
        batch = _log_uniform_int(rng, 1, 256)
        hidden = HIDDEN[int(rng.integers(len(HIDDEN)))]
        loss = "cross_entropy" if rng.integers(2) else "mse"
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        if macs * batch <= max_macs and batch >= min_batch:
            out.append((sizes, batch, hidden, loss))
    return out


def run_engine(sizes, batch, hidden, loss, engine, repeats):
    """Samples/s of the fastest epoch on ``engine`` (``one_case``), or None where it cannot run."""
    try:
        return run_one_case(sizes, batch, hidden, loss, case_samples(sizes, batch, loss), engine,
                            repeats)
    except _engine.Unsupported:
        return None


def auto_engine(sizes, batch, hidden, loss):
    """The engine the automatic rule picks for this shape."""
    from fastbp import training
    picked = []
    orig = training.choose

    def spy(kind, case, skip=None):
        name = orig(kind, case, skip)
        picked.append(name)
        return name

    training.choose = spy
    try:
        X = np.zeros((batch, sizes[0]), np.float32)
        y = np.zeros(batch, np.int64) if loss == "cross_entropy" else \
            np.zeros((batch, sizes[-1]), np.float32)
        out = "softmax" if loss == "cross_entropy" else "identity"
        fastbp.MLP(list(sizes), activation=hidden, output=out, loss=loss,
                   dtype="float32").fit(X, y, epochs=1, batch_size=batch, lr=0.01)
    finally:
        training.choose = orig
    return picked[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-macs", type=int, default=131072)
    ap.add_argument("--max-width", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-batch", type=int, default=1)
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help="engines to time (default %(default)s)")
    args = ap.parse_args()
    engines = args.engines.split(",")
    print(f"{'shape':34s} {'b':>4s} {'MAC/b':>8s} " + " ".join(f"{e:>10s}" for e in engines)
          + "  best       auto  auto/best")
    worst = []
    for sizes, batch, hidden, loss in draw(args.n, args.seed, args.max_macs, args.max_width, args.min_batch):
        macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        r = {e: run_engine(sizes, batch, hidden, loss, e, args.repeats) for e in engines}
        best = max((v, e) for e, v in r.items() if v)[1]
        a = auto_engine(sizes, batch, hidden, loss)
        ratio = r[a] / r[best] if r.get(a) else float("nan")
        worst.append(ratio)
        name = "-".join(map(str, sizes)) + f" {hidden[:4]} {'ce' if loss[0] == 'c' else 'mse'}"
        print(f"{name:34s} {batch:4d} {macs * batch:8d} "
              + " ".join(f"{(v or 0) / 1e3:9.0f}k" for v in r.values())
              + f"  {best:10s} {a:10s} {ratio:5.2f}", flush=True)
    w = np.array(worst)
    print(f"auto/best: geometric mean {np.exp(np.log(w).mean()):.3f}, min {w.min():.3f}")


if __name__ == "__main__":
    main()
