"""Shared fixtures for the fastbp test suite."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

# tests/ on sys.path so every test module can `import naive`
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from engines import ENGINES  # noqa: E402  (tests/engines.py: run a case on a named engine)

try:  # hypothesis is a test extra; keep the suite usable without it
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "fastbp",
        deadline=None,  # the first example pays for numba compilation
        max_examples=25,
        derandomize=True,  # reproducible in CI
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("fastbp-thorough", parent=settings.get_profile("fastbp"), max_examples=300, derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastbp"))
except ImportError:  # pragma: no cover
    pass


#: Test modules that exercise the generated engine's automatic choice.  Everywhere
#: else the automatic rule skips it: each new architecture would compile its own
#: generated kernel (2-5 s each; 245 of them were 38 % of the suite's compile time),
#: while the engines' agreement is tested by forcing each engine onto the same cases
#: (``tests/engines.py``: test_reference, test_gradients, test_generated).
_GENERATED_AUTO = {"test_generated", "test_engine"}


@pytest.fixture(autouse=True)
def _generated_engine_only_where_tested(request, monkeypatch):
    """The generated engine's automatic choice is off outside ``_GENERATED_AUTO``, in this
    process and in the processes a test starts (forcing it still works)."""
    if request.module.__name__.rsplit(".", 1)[-1] not in _GENERATED_AUTO:
        from fastbp._gen import engine

        monkeypatch.setattr(engine, "ENABLED", False)
        monkeypatch.setenv("FASTBP_GENERATED", "0")


@pytest.fixture
def rng():
    """A fresh, seeded generator for each test."""
    return np.random.default_rng(12345)


@pytest.fixture
def xor_data():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    return X, y


@pytest.fixture
def regression_data():
    """Small regression problem: 37 samples (not a multiple of common batch sizes), 5 -> 3."""
    r = np.random.default_rng(7)
    X = r.standard_normal((37, 5))
    y = np.tanh(X @ r.standard_normal((5, 3))) + 0.1 * r.standard_normal((37, 3))
    return X, y


@pytest.fixture
def classification_data():
    """Small 4-class problem: 29 samples, 6 features, int labels."""
    r = np.random.default_rng(11)
    X = r.standard_normal((29, 6))
    labels = np.argmax(X[:, :4] + 0.3 * r.standard_normal((29, 4)), axis=1).astype(np.int64)
    return X, labels


@pytest.fixture(params=ENGINES)
def engine(request):
    """Each training engine in turn (``fastbp._engine.ENGINES``; run one with tests/engines.py)."""
    return request.param
