"""asv benchmarks of the generated, shape-specialised epoch kernels (``fastbp/_gen``).

* ``GeneratedEpoch``: one epoch of ``MLP.fit`` on small networks (the cases
  the generated engine covers), with the engine on and off
  (``fastbp._gen.engine.ENABLED``): ``time_epoch``.
* ``GeneratedCompile``: in a fresh process whose Numba cache already holds
  fastbp's shared kernels, seconds to the end of the first ``fit`` epoch of
  a network whose generated kernel is not cached yet (its compile), after a
  warm-up fit of another network (``track_new_architecture_s``).
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

import fastbp
from fastbp._gen import engine

from .timing import best_seconds

# name: (sizes, hidden activation, output, loss, batch, samples per epoch)
CASES = {
    "xor-online": ([2, 8, 1], "sigmoid", "identity", "mse", 1, 65536),
    "tanh-small-b1": ([8, 32, 16, 4], "tanh", "identity", "mse", 1, 16384),
    "relu-ce-b16": ([16, 32, 32, 5], "relu", "softmax", "cross_entropy", 16, 16384),
}


class GeneratedEpoch:
    params = (list(CASES), ["generated", "generic"])
    param_names = ["case", "engine"]
    timeout = 600

    def setup(self, case, which):
        sizes, act, out, loss, batch, n = CASES[case]
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((n, sizes[0])).astype(np.float32)
        self.y = (rng.integers(0, sizes[-1], n) if loss == "cross_entropy" else
                  rng.standard_normal((n, sizes[-1])).astype(np.float32))
        self.net = fastbp.MLP(sizes, activation=act, output=out, loss=loss, dtype="float32",
                              seed=0)
        self.batch = batch
        self.old = engine.ENABLED
        engine.ENABLED = which == "generated"
        self.epoch()  # compile / load from the cache

    def teardown(self, case, which):
        engine.ENABLED = self.old

    def epoch(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.batch, lr=0.001, shuffle=False)

    def time_epoch(self, case, which):
        self.epoch()


_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastbp
    def fit(sizes, loss):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((64, sizes[0])).astype("float32")
        y = (rng.integers(0, sizes[-1], 64) if loss == "cross_entropy" else
             rng.standard_normal((64, sizes[-1])).astype("float32"))
        net = fastbp.MLP(sizes, activation="tanh", loss=loss, dtype="float32", seed=0)
        t = time.perf_counter()
        net.fit(X, y, epochs=1, batch_size=4, lr=0.01)
        return time.perf_counter() - t
    fit([3, 5, 2], "mse"); fit([3, 5, 2], "cross_entropy")  # shared kernels, warm-up
    print(fit([4, int(sys.argv[1]), 7, 3], sys.argv[2]))
""")


class GeneratedCompile:
    params = ["mse", "cross_entropy"]
    param_names = ["loss"]
    timeout = 900
    number = 1
    repeat = 1

    def setup(self, loss):
        self.env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))
        self.env["PYTHONPATH"] = root + os.pathsep + self.env.get("PYTHONPATH", "")
        self._run(loss, 9)  # fills the shared Numba cache

    def _run(self, loss, width):
        with tempfile.TemporaryDirectory() as gen:
            env = dict(self.env, FASTBP_GEN_DIR=gen)
            out = subprocess.run([sys.executable, "-c", _SCRIPT, str(width), loss], env=env,
                                 capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    def track_new_architecture_s(self, loss):
        return self._run(loss, 11)

    track_new_architecture_s.unit = "s"


def _check():  # pragma: no cover - a quick manual run: python -m bench.bench_generated
    for case in CASES:
        for which in ("generated", "generic"):
            b = GeneratedEpoch()
            b.setup(case, which)
            print(case, which, f"{best_seconds(b.epoch, 3):.4f} s")
            b.teardown(case, which)


if __name__ == "__main__":  # pragma: no cover
    _check()
