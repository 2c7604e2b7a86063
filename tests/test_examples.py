"""examples/vanishing_gradients.py: vanishing gradients made visible.

``run(depth=6, width=32, epochs=2)`` trains a 6-hidden-layer sigmoid network with Xavier
initialisation and a ReLU network with He initialisation on digits, recording per-layer
weight-gradient norms after each epoch.  Measured (seeds 0-3): the sigmoid network's
first-layer / last-layer norm ratio is 1.1e-3 .. 1.7e-3 and its norms grow monotonically
towards the output (about 0.5 decades per layer), while ReLU + He keeps every layer within a
factor ~3 (ratio 1.4 .. 3.9).  Thresholds: sigmoid ratio < 1e-2 (margin >= 5x), ReLU ratio
> 1e-1 (margin >= 14x), ReLU layers within a factor 10 of each other.  The sigmoid network
barely learns in two epochs (loss stays near ln 10 = 2.303), the ReLU network does.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("fastbp")
pytest.importorskip("sklearn")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
PNG = b"\x89PNG\r\n\x1a\n"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}",
                                                  os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return _load("vanishing_gradients")


@pytest.fixture(scope="module")
def results(example):
    return example.run(depth=6, width=32, epochs=2, seed=0)


def test_results_shape(results):
    assert set(results) == {"sigmoid + Xavier", "ReLU + He"}
    for hist, norms in results.values():
        assert norms.shape == (2, 7)  # epochs x weight layers
        assert np.all(np.isfinite(norms)) and np.all(norms > 0)
        assert hist.epochs == 2 and hist.grad_norms == norms.tolist()


def test_sigmoid_gradients_vanish(results):
    hist, norms = results["sigmoid + Xavier"]
    ratio = norms[:, 0] / norms[:, -1]
    assert np.all(ratio < 1e-2), ratio
    # shrinking layer by layer from the output down (from the second layer on; the first
    # layer's input is the raw pixels, so its step is small)
    assert np.all(np.diff(np.log10(norms[:, 1:]), axis=1) > 0.2), norms
    assert hist.loss[-1] > 2.2  # barely learning: ln 10 = 2.303 is chance


def test_relu_he_gradients_do_not_vanish(results):
    hist, norms = results["ReLU + He"]
    ratio = norms[:, 0] / norms[:, -1]
    assert np.all(ratio > 1e-1), ratio
    assert np.all(norms.max(axis=1) / norms.min(axis=1) < 10), norms
    assert hist.loss[-1] < 0.8 * results["sigmoid + Xavier"][0].loss[-1]


def test_plot_writes_a_png(example, results, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "vg.png"
    example.plot(results, path)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000


def test_main(example, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "main.png"
    example.main(["--epochs", "1", "--out", str(path)])
    out = capsys.readouterr().out
    assert "sigmoid + Xavier" in out and "ReLU + He" in out and f"saved {path}" in out
    assert path.read_bytes()[:8] == PNG
