"""The newcomer's demo behind ``python -m fastbp``.

1. XOR: a perceptron (no hidden layer) cannot separate it; a 2-4-1 MLP can.
2. scikit-learn's bundled digits: a 64-128-10 ReLU network, progress per
   epoch, final test accuracy, training samples/s, and the one-time JIT
   compile (or cache load) time shown apart from training time.

On a first run the kernels compile (cached afterwards): a line says what is
compiling while it does, and the digits network's kernels compile in a
background process (``fastbp.warmup``) while the XOR part runs.
"""

import argparse
import sys
import time

import numpy as np

from .network import MLP
from .warmup import announce, start

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.float64)


def xor_accuracy(hidden, seed, epochs=2000):
    """Train on XOR (full batch) and return (correct points, final loss)."""
    sizes = [2] + ([hidden] if hidden else []) + [1]
    net = MLP(sizes, activation="tanh", loss="binary_cross_entropy", seed=seed)
    hist = net.fit(XOR_X, XOR_Y, epochs=epochs, batch_size=4, lr=0.5, shuffle=False)
    pred = (net.predict(XOR_X)[:, 0] > 0.5).astype(float)
    return int((pred == XOR_Y).sum()), hist.loss[-1]


def run_xor(out):
    out("== XOR: the problem a perceptron cannot solve ==")
    with announce("  compiling the small-network kernels for float64 (first run only, "
                  "cached afterwards)...", out):
        xor_accuracy(0, 0, epochs=1)
    for label, hidden in (("perceptron 2-1  ", 0), ("MLP        2-4-1", 4)):
        res = [xor_accuracy(hidden, seed) for seed in range(3)]
        pts = ", ".join(f"{c}/4" for c, _ in res)
        out(f"  {label}: points classified correctly over 3 seeds: {pts}  "
            f"(final loss {np.mean([l for _, l in res]):.3f})")


def run_digits(out, epochs=20, batch_size=32, lr=0.1, progress=True, background=None):
    """Train the digits network; ``background`` is a warm-up process to wait for."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        out("== digits skipped: install scikit-learn (pip install 'fastbp[demo]') ==")
        return None
    out("\n== Digits (scikit-learn's bundled 8x8 images): 64-128-10 ReLU, softmax, float32 ==")
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    net = MLP([64, 128, 10], activation="relu", loss="cross_entropy", init="he",
              dtype="float32", seed=0)
    t0 = time.perf_counter()
    with announce("  compiling training kernels for 64-128-10 float32 (first run only, "
                  "cached afterwards)...", out):
        if background is not None:  # compiling them into the cache already
            background.wait()
        warm = net.copy()  # compile (or load from cache) on a throwaway copy
        warm.fit(Xtr[:64], ytr[:64], epochs=1, batch_size=batch_size, lr=lr)
        warm.predict(Xte[:2])
    compile_s = time.perf_counter() - t0
    out(f"  JIT compile / cache load (one-time): {compile_s:.2f} s")
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=epochs, desc="  training", unit="epoch", file=sys.stdout)
        except ImportError:
            bar = None
    train_s = 0.0
    for epoch in range(epochs):
        hist = net.fit(Xtr, ytr, epochs=1, batch_size=batch_size, lr=lr)
        train_s += hist.epoch_time[0]
        acc = float((net.predict(Xte).argmax(1) == yte).mean())
        msg = f"loss {hist.loss[0]:.4f}  test acc {acc:.3f}"
        if bar is not None:
            bar.set_postfix_str(msg)
            bar.update(1)
        else:
            out(f"  epoch {epoch + 1:2d}/{epochs}  {msg}")
    if bar is not None:
        bar.close()
    acc = float((net.predict(Xte).argmax(1) == yte).mean())
    rate = epochs * len(Xtr) / train_s
    out(f"  final test accuracy: {acc:.4f} on {len(Xte)} held-out images")
    out(f"  training speed: {rate:,.0f} samples/s ({train_s:.3f} s for {epochs} epochs "
        f"of {len(Xtr)} samples, compile excluded)")
    return acc


def main(argv=None):
    """Run the demo; ``--epochs`` and ``--no-progress`` adjust it."""
    parser = argparse.ArgumentParser(prog="python -m fastbp", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="digits epochs (default 20)")
    parser.add_argument("--no-progress", action="store_true", help="plain lines, no progress bar")
    args = parser.parse_args(argv)
    # the digits network's kernels compile in another process while XOR runs here
    background = start("float32", "labels", "batch", full=False)
    try:
        run_xor(print)
        run_digits(print, epochs=args.epochs, progress=not args.no_progress,
                   background=background)
    finally:
        if background.poll() is None:
            background.kill()
            background.wait()
    return 0
