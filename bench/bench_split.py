"""asv benchmarks of the two-thread engines (``fastbp/_kernels/split.py``, ``split_units.py``).

``SplitEpoch.time_epoch``: one epoch of ``MLP.fit`` (plain SGD, float32, two
threads) on mid-sized networks, on the two-thread engine that batch size gets
(``split`` from 3 samples, ``units`` below) and on the one-thread general engine
(OpenBLAS's own threads for the products it threads), forced with
``fastbp._engine.force``.  ``bench/split_sweep.py`` runs the same A/B on any
architecture.
"""

import numpy as np

import fastbp
from fastbp import _engine

# name: (sizes, hidden activation, output, loss, batch, samples per epoch)
CASES = {
    "mnist-b64": ([784, 256, 128, 10], "relu", "softmax", "cross_entropy", 64, 8192),
    "narrow-wide-out-b48": ([9, 3, 9, 233], "sigmoid", "identity", "mse", 48, 24576),
    "deep-b16": ([859, 251, 278, 228, 82, 613, 147], "tanh", "softmax", "cross_entropy", 16,
                 2048),
    "mnist-b1": ([784, 256, 128, 10], "relu", "softmax", "cross_entropy", 1, 2048),
}


class SplitEpoch:
    params = (list(CASES), ["two-thread", "general"])
    param_names = ["case", "engine"]
    timeout = 600

    def setup(self, case, which):
        sizes, act, out, loss, batch, n = CASES[case]
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((n, sizes[0])).astype(np.float32)
        self.y = (rng.integers(0, sizes[-1], n) if loss == "cross_entropy" else
                  rng.uniform(-1, 1, (n, sizes[-1])).astype(np.float32))
        self.net = fastbp.MLP(sizes, activation=act, output=out, loss=loss, dtype="float32",
                              seed=0)
        self.batch = batch
        self.which = which if which == "general" else "split" if batch >= 3 else "units"
        self.threads = fastbp.threads(2)
        self.threads.__enter__()
        self.epoch()  # compile / load from the cache

    def teardown(self, case, which):
        self.threads.__exit__(None, None, None)

    def epoch(self):
        with _engine.force(self.which):
            self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, lr=0.001,
                         shuffle=False)

    def time_epoch(self, case, which):
        self.epoch()
