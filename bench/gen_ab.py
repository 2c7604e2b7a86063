"""A/B of the generated-kernel engine against the generic one, in one process.

    python bench/gen_ab.py                  # the built-in cases
    python bench/gen_ab.py --random 8 --seed 1

For every case the same network (same initial weights) trains with the
generated engine on and off (``fastbp._gen.engine.ENABLED``), alternating,
one untimed warm-up epoch each, then ``--repeats`` timed epochs; the table
gives samples/s (median epoch) of both and their ratio, and the first-call
time of the generated kernel (its compile, when not in the cache).  Because
the two run interleaved in one process, the ratio holds up on a busy
machine better than absolute figures do.  float32, no shuffle, plain SGD
as ``bench/compare.py`` (or ``--optimizer momentum|adam``).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastbp  # noqa: E402
from fastbp._gen import engine  # noqa: E402

CASES = [
    # name, sizes, hidden activation, output, loss, batch
    ("xor-online", (2, 8, 1), "sigmoid", "identity", "mse", 1),
    ("sig-20k-b1", (64, 128, 96, 10), "sigmoid", "identity", "mse", 1),
    ("tanh-small-b1", (8, 32, 16, 4), "tanh", "identity", "mse", 1),
    ("relu-ce-b16", (16, 32, 32, 5), "relu", "softmax", "cross_entropy", 16),
    ("narrow-b128", (10, 24, 16, 3), "relu", "softmax", "cross_entropy", 128),
    ("narrow-b200", (6, 16, 8, 1), "tanh", "identity", "mse", 200),
    ("mid-b1", (100, 200, 100, 10), "tanh", "identity", "mse", 1),
    ("mnist-b1", (784, 256, 128, 10), "relu", "softmax", "cross_entropy", 1),
    ("digits-b4", (64, 128, 10), "relu", "softmax", "cross_entropy", 4),
    ("digits-b32", (64, 128, 10), "relu", "softmax", "cross_entropy", 32),
    ("narrow-b64", (10, 24, 16, 3), "relu", "softmax", "cross_entropy", 64),
]


def random_cases(k, seed):
    rng = np.random.default_rng(seed)
    out = []
    for c in range(k):
        depth = int(rng.integers(1, 4))
        sizes = tuple(int(v) for v in np.exp(rng.uniform(np.log(2), np.log(96), depth + 2)))
        act = str(rng.choice(["relu", "tanh", "sigmoid"]))
        ce = bool(rng.integers(0, 2)) and sizes[-1] > 1
        batch = int(np.exp(rng.uniform(0, np.log(256))))
        out.append((f"rand{c}", sizes, act, "softmax" if ce else "identity",
                    "cross_entropy" if ce else "mse", batch))
    return out


def _data(sizes, loss, n, rng):
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = rng.standard_normal((n, sizes[-1])).astype(np.float32)
    return X, y


def _opt(name):
    return {"sgd": lambda: fastbp.SGD(lr=0.001), "momentum": lambda: fastbp.SGD(
        lr=0.001, momentum=0.9), "adam": lambda: fastbp.Adam(lr=0.001)}[name]()


def run(case, repeats, budget, optimizer="sgd"):
    name, sizes, act, out, loss, batch = case
    rng = np.random.default_rng(0)
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n = int(min(max(budget * 5e8 / (3 * macs), 4 * batch), 2_000_000)) // batch * batch
    X, y = _data(sizes, loss, n, rng)
    nets = {}
    first = None
    for on in (True, False):
        engine.ENABLED = on
        net = fastbp.MLP(list(sizes), activation=act, output=out, loss=loss, dtype="float32",
                         seed=0)
        t = time.perf_counter()
        net.fit(X[:batch], y[:batch], epochs=1, batch_size=batch, optimizer=_opt(optimizer),
                shuffle=False)
        if on:
            first = time.perf_counter() - t
        opt = _opt(optimizer)
        net.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False)
        nets[on] = net, opt
    times = {True: [], False: []}
    for _ in range(repeats):
        for on in (True, False):
            engine.ENABLED = on
            t = time.perf_counter()
            net, opt = nets[on]
            net.fit(X, y, epochs=1, batch_size=batch, optimizer=opt, shuffle=False)
            times[on].append(time.perf_counter() - t)
    engine.ENABLED = True
    gen = n / statistics.median(times[True])
    old = n / statistics.median(times[False])
    return name, sizes, act, loss, batch, macs * batch, gen, old, first


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--random", type=int, default=0, help="this many random architectures")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.2, help="about this many s per epoch")
    ap.add_argument("--cases", default="", help="comma-separated names of built-in cases")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "adam"])
    ap.add_argument("--gen-macs", type=int, default=None,
                    help="override _config.GEN_NET_MACS (plain SGD's size bound) to measure "
                         "beyond it")
    args = ap.parse_args()
    if args.gen_macs is not None:
        engine.GEN_NET_MACS = args.gen_macs
    cases = [c for c in CASES if not args.cases or c[0] in args.cases.split(",")]
    if args.random:
        cases = random_cases(args.random, args.seed)
    print("| case | sizes | act | loss | batch | MACs/batch | generated samples/s | generic "
          "samples/s | ratio | first call s |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        name, sizes, act, loss, batch, macs, gen, old, first = run(case, args.repeats,
                                                                    args.budget,
                                                                    args.optimizer)
        print(f"| {name} | {'-'.join(map(str, sizes))} | {act} | {loss} | {batch} | {macs} | "
              f"{gen:,.0f} | {old:,.0f} | {gen / old:.2f} | {first:.2f} |", flush=True)


if __name__ == "__main__":
    main()
