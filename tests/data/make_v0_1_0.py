"""Write the files in ``tests/data/v0.1.0/`` with fastbp as it was on main at
commit 29ca169 (before optimizers serialised themselves), so ``tests/test_old_files.py`` can check that
files and pickles written by that version still load and continue training identically.

Run once from the repository root with that version checked out::

    python tests/data/make_v0_1_0.py

Each case writes ``<name>.fbp`` (``fastbp.save``) and records in ``expected.npz`` the
parameters after one more epoch of training with the restored optimizer (float64 nets only).
``pickles.pkl`` holds pickled optimizers, an MLP and a fitted scikit-learn estimator.
"""

import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import fastbp  # noqa: E402
from fastbp.sklearn import MLPClassifier

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "v0.1.0")


def data(n=24, d=3, k=2, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    return X, np.tanh(X @ r.standard_normal((d, k)))


def optimizers():
    return {
        "sgd": lambda: fastbp.SGD(0.05),
        "sgd_decay": lambda: fastbp.SGD(0.05, weight_decay=1e-3, l1=1e-4, clip_norm=2.0),
        "momentum": lambda: fastbp.SGD(0.05, momentum=0.9),
        "nesterov": lambda: fastbp.SGD(0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
        "adam": lambda: fastbp.Adam(0.01, betas=(0.8, 0.99), eps=1e-7, l1=1e-5),
        "adamw": lambda: fastbp.AdamW(0.01, weight_decay=0.02, clip_norm=1.5),
        "rprop": lambda: fastbp.RPROP(eta_plus=1.3, eta_minus=0.4, delta0=0.05, delta_min=1e-5,
                                      delta_max=10.0, weight_decay=1e-4),
    }


def main():
    X, y = data()
    expected = {"X": X, "y": y}
    for name, make in optimizers().items():
        for dtype in ("float64", "float32"):
            net = fastbp.MLP([3, 4, 2], activation="tanh", dtype=dtype, seed=1)
            opt = make()
            net.fit(X, y, epochs=2, batch_size=8, optimizer=opt)
            tag = f"{name}_{dtype}"
            fastbp.save(net, os.path.join(OUT, tag + ".fbp"))
            if dtype == "float64":
                net.fit(X, y, epochs=1, batch_size=8, optimizer=net.optimizer, shuffle=False)
                expected[tag] = net.params.copy()
    # an optimizer that was never bound (no state arrays), no history, batch norm + dropout
    net = fastbp.MLP([3, 5, 2], activation="relu", batch_norm=True, dropout=0.1, seed=2)
    net.optimizer = fastbp.Adam(0.02, clip_norm=3.0)
    fastbp.save(net, os.path.join(OUT, "unbound_adam_bn.fbp"))
    # no optimizer at all, a classification loss, extras
    net = fastbp.MLP([3, 4, 3], loss="cross_entropy", seed=3)
    fastbp.save(net, os.path.join(OUT, "no_optimizer.fbp"), extra={"note": np.arange(3)})
    np.savez(os.path.join(OUT, "expected.npz"), **expected)

    net = fastbp.MLP([3, 4, 2], activation="tanh", seed=1)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=fastbp.Adam(0.01))
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0, solver="sgd",
                        momentum=0.9)
    est.fit(X, (y[:, 0] > 0).astype(int))
    pickled = {"optimizers": {k: make() for k, make in optimizers().items()},
               "net": net, "net_predict": net.predict(X),
               "estimator": est, "estimator_proba": est.predict_proba(X)}
    with open(os.path.join(OUT, "pickles.pkl"), "wb") as fh:
        pickle.dump(pickled, fh, protocol=4)


if __name__ == "__main__":
    main()
