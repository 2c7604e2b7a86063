"""The random-architecture mode of bench/compare.py: draws, sizes, data and
the summary arithmetic (no timing, no peers)."""

import math
import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

from peers.common import Case, make_data  # noqa: E402
from peers.random_cases import (MAX_DATA_BYTES, MAX_SAMPLES, MIN_BATCHES,  # noqa: E402
                                case_by_name, case_samples, random_cases)
from random_report import ratios, summary  # noqa: E402


def test_same_seed_same_cases_and_ranges():
    a, b = random_cases(200, 5), random_cases(200, 5)
    assert a == b
    assert a != random_cases(200, 6)
    for c in a:
        assert 1 <= len(c.sizes) - 2 <= 5
        assert all(2 <= w <= 1024 for w in c.sizes)
        assert 1 <= c.batch <= 256
        assert c.hidden in ("relu", "tanh", "sigmoid")
        assert (c.loss, c.output) in (("cross_entropy", "softmax"), ("mse", "identity"))
        assert c.n % c.batch == 0 and c.n >= MIN_BATCHES * c.batch
    # every choice is drawn
    assert {c.hidden for c in a} == {"relu", "tanh", "sigmoid"}
    assert {c.loss for c in a} == {"cross_entropy", "mse"}
    assert {len(c.sizes) - 2 for c in a} == {1, 2, 3, 4, 5}


def test_names_resolve_to_the_same_case():
    cs = random_cases(7, 3)
    for c in cs:
        assert case_by_name(c.name) == c
    with pytest.raises(KeyError):
        case_by_name("no-such-case")


def test_case_samples_bounds():
    assert case_samples((2, 2, 2), 256, "mse") == MAX_SAMPLES
    assert 0 < case_samples((2, 2, 2), 1, "mse") < MAX_SAMPLES  # per-batch cost bound
    n = case_samples((1024, 1024, 1024), 7, "cross_entropy")
    assert n % 7 == 0 and n >= MIN_BATCHES * 7
    n = case_samples((1024, 2), 256, "mse")
    assert n * (4 * 1024 + 4 * 2) <= MAX_DATA_BYTES


def test_data_deterministic_and_typed():
    c = random_cases(4, 11)
    ce = next(x for x in c if x.loss == "cross_entropy")
    ce = Case(ce.name, ce.sizes, ce.hidden, ce.output, ce.loss, ce.batch, ce.lr, 4 * ce.batch,
              key=ce.key)
    X, y = make_data(ce)
    X2, y2 = make_data(ce)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert X.dtype == np.float32 and X.shape == (ce.n, ce.sizes[0])
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() < ce.sizes[-1]
    mse = Case("m", (5, 3, 4), "tanh", "identity", "mse", 2, 0.01, 8, key=(1, 2))
    X, y = make_data(mse)
    assert y.dtype == np.float32 and y.shape == (8, 4) and np.abs(y).max() <= 1


def test_ratio_summary():
    cs = random_cases(3, 0)
    res = {"fastbp": {"status": "ok", "cases": {
               cs[0].name: {"samples_per_s": 200.0}, cs[1].name: {"samples_per_s": 50.0},
               cs[2].name: {"samples_per_s": 10.0, "finite": False}}},
           "jax": {"status": "ok", "cases": {
               cs[0].name: {"samples_per_s": 100.0}, cs[1].name: {"samples_per_s": 100.0},
               cs[2].name: {"samples_per_s": 1.0}}},
           "torch": {"status": "ok", "cases": {
               cs[0].name: {"samples_per_s": 50.0}, cs[1].name: {"error": "x"},
               cs[2].name: {"samples_per_s": 1.0}}}}
    rows = ratios(res, cs, ["fastbp", "jax", "torch"])
    assert [r for _, r, _ in rows] == [2.0, 0.5, None]
    s = summary(rows)
    assert s["n"] == 2 and s["missing"] == 1 and s["below_1"] == 1
    assert math.isclose(s["geomean"], 1.0) and s["min"] == 0.5 and s["min_case"] == cs[1].name
