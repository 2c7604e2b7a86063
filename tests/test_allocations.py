"""After warm-up, training allocates nothing in the Numba runtime (NRT).

How this is measured
--------------------
``numba.core.runtime.rtsys.get_allocation_stats().alloc`` counts every NRT allocation: arrays
created inside ``@njit`` code (``np.empty``, ``np.zeros``, ``.copy()``, ``np.random.permutation``,
array expressions, parfor schedules) -- the thing we want to be zero -- but ALSO one MemInfo
per ndarray (or ``np.random.Generator``) argument that Python passes into a compiled function:
unboxing an argument is an NRT allocation, freed on return.  That part is the unavoidable
price of crossing from Python into Numba, independent of the amount of work, and the
contract explicitly allows the Python wrapper its own (NumPy) allocations.

So, while the measured calls run, every Python -> Numba call is intercepted (``__call__`` of
Numba's ``CPUDispatcher`` is wrapped; calls between compiled functions never go through it)
and its array arguments are counted.  The test requires

    NRT allocations  -  argument unboxings  ==  0

i.e. no allocation inside compiled code, for 50 ``train_step`` calls and for ``fit`` over
several epochs, plus alloc == free (nothing leaks).  ``test_unboxing_calibration`` checks the
accounting rule itself on toy kernels, so a change in Numba's behaviour shows up there and not
as a mysterious failure below.  A secondary check with tracemalloc guards the Python side
against leaks (memory that keeps growing with the number of steps).
"""

from __future__ import annotations

import contextlib
import gc
import tracemalloc

import numpy as np
import pytest

fastbp = pytest.importorskip("fastbp")
numba = pytest.importorskip("numba")

from numba import _dispatcher  # noqa: E402
from numba.core.registry import CPUDispatcher  # noqa: E402
from numba.core.runtime import _nrt_python, rtsys  # noqa: E402

# NRT statistics are off unless NUMBA_NRT_STATS=1; switch them on (only counters, no behaviour change)
_nrt_python.memsys_enable_stats()


def _n_unboxed(obj):
    """NRT allocations that unboxing ``obj`` as a Numba argument costs."""
    if isinstance(obj, np.ndarray):
        return 1
    if isinstance(obj, np.random.Generator):
        return 1
    if isinstance(obj, (tuple, list)):
        return sum(_n_unboxed(o) for o in obj)
    return 0


class Tracker:
    def __init__(self):
        self.calls = 0
        self.unboxed = 0
        self.kernels = set()
        self.alloc = self.free = 0


@contextlib.contextmanager
def track_nrt():
    """Count NRT allocations / frees and Python->Numba argument unboxings in the block."""
    t = Tracker()

    def hooked_call(self, *args, **kwargs):
        t.calls += 1
        t.unboxed += _n_unboxed(args) + _n_unboxed(tuple(kwargs.values()))
        t.kernels.add(getattr(self, "__name__", repr(self)))
        return _dispatcher.Dispatcher.__call__(self, *args, **kwargs)

    assert "__call__" not in CPUDispatcher.__dict__
    gc.collect()
    s0 = rtsys.get_allocation_stats()
    CPUDispatcher.__call__ = hooked_call
    try:
        yield t
    finally:
        del CPUDispatcher.__call__
        s1 = rtsys.get_allocation_stats()
        t.alloc = s1.alloc - s0.alloc
        t.free = s1.free - s0.free


def _report(t):
    return (
        f"NRT alloc {t.alloc}, free {t.free}, argument unboxings {t.unboxed} "
        f"in {t.calls} Python->Numba calls to {sorted(t.kernels)}"
    )


def assert_no_kernel_allocations(t):
    assert t.alloc - t.unboxed == 0, "allocations inside compiled code: " + _report(t)
    assert t.alloc == t.free, "NRT memory not freed: " + _report(t)


# --------------------------------------------------------------------------- calibration


@numba.njit(cache=False)
def _toy_inplace(a, tup, x):
    for i in range(a.shape[0]):
        a[i] += tup[0][i] * x + tup[1][i]
    return a[0]


@numba.njit(cache=False)
def _toy_inner(a):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i]
    return s


@numba.njit(cache=False)
def _toy_outer(a, b, reps):
    s = 0.0
    for _ in range(reps):
        s += _toy_inner(a) + _toy_inner(b[:2])
    return s


@numba.njit(cache=False)
def _toy_allocating(a, reps):
    s = 0.0
    for _ in range(reps):
        tmp = a * 2.0
        s += tmp[0]
    return s


@numba.njit(cache=False)
def _toy_rng(gen, a):
    return gen.random() + a[0]


def test_unboxing_calibration():
    """The accounting rule: each array (or Generator) argument costs exactly one NRT allocation
    at the Python->Numba boundary; compiled->compiled calls and views cost nothing; an array
    made inside compiled code costs one each time."""
    a = np.ones(5)
    b = np.arange(5.0)
    gen = np.random.default_rng(0)
    # warm up (compile)
    _toy_inplace(a, (b, b), 0.5)
    _toy_outer(a, b, 1)
    _toy_allocating(a, 1)
    _toy_rng(gen, a)

    with track_nrt() as t:
        for _ in range(10):
            _toy_inplace(a, (b, b[::1]), 0.5)
    assert (t.calls, t.unboxed) == (10, 30)
    assert_no_kernel_allocations(t)

    with track_nrt() as t:
        _toy_outer(a, b, 100)
    assert (t.calls, t.unboxed) == (1, 2)
    assert_no_kernel_allocations(t)

    with track_nrt() as t:
        _toy_rng(gen, a)
    assert t.unboxed == 2
    assert_no_kernel_allocations(t)

    with track_nrt() as t:
        _toy_allocating(a, 7)
    assert t.unboxed == 1 and t.alloc == 8  # 1 unboxing + 7 temporaries: detected
    with pytest.raises(AssertionError, match="inside compiled code"):
        assert_no_kernel_allocations(t)

    assert "__call__" not in CPUDispatcher.__dict__  # hook removed


# --------------------------------------------------------------------------- the library


def _net_and_data(dtype, loss="cross_entropy", n=64, seed=0):
    sizes = [12, 16, 9, 4]
    net = fastbp.MLP(sizes, activation=["relu", "tanh"], loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], size=n)
    elif loss == "binary_cross_entropy":
        y = rng.random((n, sizes[-1])).astype(dtype)
    else:
        y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return net, X, y


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_allocates_nothing_in_numba(dtype, loss):
    net, X, y = _net_and_data(dtype, loss)
    Xb, yb = X[:16].copy(), y[:16].copy()
    for _ in range(3):  # warm-up: compilation, workspace
        net.train_step(Xb, yb, lr=0.01)
    p = net.params.copy()
    with track_nrt() as t:
        for _ in range(50):
            net.train_step(Xb, yb, lr=0.01)
    assert_no_kernel_allocations(t)
    assert not np.array_equal(net.params, p)  # it did train


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_smaller_batch_after_larger_allocates_nothing(dtype):
    """Workspace sized for the largest batch is reused for a smaller one (buf[:n])."""
    net, X, y = _net_and_data(dtype)
    net.train_step(X[:32], y[:32], lr=0.01)  # the largest batch first
    net.train_step(X[:5], y[:5], lr=0.01)
    net.train_step(X[:32], y[:32], lr=0.01)
    with track_nrt() as t:
        for k in (5, 32, 1, 17) * 5:
            net.train_step(X[:k], y[:k], lr=0.01)
    assert_no_kernel_allocations(t)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_epochs_allocate_nothing_in_numba(dtype, shuffle):
    # 64 samples, batch 10: six full batches and a short one of 4 every epoch
    net, X, y = _net_and_data(dtype)
    net.fit(X, y, epochs=1, batch_size=10, lr=0.01, shuffle=shuffle, seed=0)  # warm-up
    with track_nrt() as t:
        hist = net.fit(X, y, epochs=3, batch_size=10, lr=0.01, shuffle=shuffle, seed=1)
    assert len(hist.loss) == 3
    assert_no_kernel_allocations(t)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_cost_does_not_grow_with_batches(dtype):
    """GUIDE decision 3 (whole epochs in one compiled call, Python touches nothing per batch):
    whatever the wrapper costs once per call or per epoch, the NRT count -- unboxings included --
    is the same for 8 batches per epoch as for 2."""
    net, X, y = _net_and_data(dtype, n=64)
    for bs in (32, 8, 32, 8):  # warm-up, largest batch first
        net.fit(X, y, epochs=1, batch_size=bs, lr=0.01, seed=0)
    counts = {}
    for bs in (32, 8):
        with track_nrt() as t:
            net.fit(X, y, epochs=2, batch_size=bs, lr=0.01, seed=0)
        assert_no_kernel_allocations(t)
        counts[bs] = t
    assert counts[8].alloc == counts[32].alloc, (
        f"NRT allocations depend on the number of batches: batch 32 -> {_report(counts[32])}; "
        f"batch 8 -> {_report(counts[8])}"
    )


def test_python_side_does_not_leak():
    """Memory traced by tracemalloc does not keep growing with the number of steps."""
    net, X, y = _net_and_data("float64")
    Xb, yb = X[:16].copy(), y[:16].copy()
    for _ in range(20):
        net.train_step(Xb, yb, lr=0.01)
    net.fit(X, y, epochs=2, batch_size=10, lr=0.01)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(50):
            net.train_step(Xb, yb, lr=0.01)
        net.fit(X, y, epochs=2, batch_size=10, lr=0.01)
        gc.collect()
        mid, _ = tracemalloc.get_traced_memory()
        for _ in range(500):
            net.train_step(Xb, yb, lr=0.01)
        for _ in range(10):
            net.fit(X, y, epochs=2, batch_size=10, lr=0.01)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - mid < 64 * 1024, f"traced Python memory grew by {end - mid} bytes over 500 steps + 10 fits"
