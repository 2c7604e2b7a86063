"""The BLAS thread policy in ``_kernels/blas.py``: OpenBLAS lowered to one thread
around medium products, restored after each call, never raised."""

import ctypes
import subprocess
import sys
import threading

import numpy as np
import pytest
from numba import njit
from threadpoolctl import threadpool_limits

import fastbp
from fastbp import _engine
from fastbp._config import BLAS_SINGLE_THREAD_MACS, OPENBLAS_THREAD_MIN_MACS
from fastbp._kernels import blas
from fastbp._kernels.blas import gemm

pytestmark = pytest.mark.skipif(not blas.blas_thread_control(),
                                reason="SciPy's BLAS is not a pthreads OpenBLAS")

# 61-2-220-57-15 at batch 79: the 220 -> 57 layer is a 79*220*57 = 990,660
# multiply-add product, which OpenBLAS would thread and the policy keeps on one
SIZES = [61, 2, 220, 57, 15]
BATCH = 79
assert OPENBLAS_THREAD_MIN_MACS <= BATCH * 220 * 57 < BLAS_SINGLE_THREAD_MACS


def _blas_threads():
    return blas._THREAD_FUNCTIONS[0]()


def _data(n=316):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], n)
    return X, y


def _fit(n_threads, epochs=2):
    X, y = _data()
    net = fastbp.MLP(SIZES, loss="cross_entropy", dtype="float32", seed=0)
    seen = []
    with fastbp.threads(n_threads):
        net.fit(X, y, epochs=epochs, batch_size=BATCH, lr=0.05, shuffle=True, seed=1,
                callbacks=[lambda net, epoch, hist: seen.append(_blas_threads())])
    return net.params.copy(), seen


@njit
def _mid_products(a, b, c, reps):
    for _ in range(reps):
        gemm(False, True, 1.0, a, b, 0.0, c)


def _mid_arrays():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((BATCH, 220)).astype(np.float32)
    b = rng.standard_normal((57, 220)).astype(np.float32)
    return a, b, np.zeros((BATCH, 57), np.float32)


@pytest.mark.parametrize("n", [1, 2])
def test_gemm_leaves_thread_count_as_found(n):
    a, b, c = _mid_arrays()
    with threadpool_limits(n, user_api="blas"):
        _mid_products(a, b, c, 3)
        assert _blas_threads() == n  # lowered only during the call, never raised
    np.testing.assert_allclose(c, a @ b.T, rtol=1e-4, atol=1e-3)


def test_concurrent_callers_restore_the_count():
    """Two Python threads in nogil gemm calls: each only restores the count it read
    as above one, so the user's setting survives any interleaving."""
    a, b, c = _mid_arrays()
    a2, b2, c2 = _mid_arrays()
    _mid_products(a, b, c, 1)
    with threadpool_limits(2, user_api="blas"):
        workers = [threading.Thread(target=_mid_products, args=args + (2000,))
                   for args in ((a, b, c), (a2, b2, c2))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert _blas_threads() == 2
    np.testing.assert_array_equal(c, c2)


def test_fit_keeps_the_users_thread_count():
    with threadpool_limits(2, user_api="blas"):
        _, seen = _fit(2)
        assert seen == [2, 2]  # between the epochs' kernel calls
        assert _blas_threads() == 2
        _, seen = _fit(1)
        assert seen == [1, 1]
        assert _blas_threads() == 2  # fastbp.threads restored it


@pytest.mark.parametrize("sizes, batch, dtype", [
    (SIZES, BATCH, "float32"),
    # forward product 64*300*200 = 3.84M multiply-adds: without the policy
    # OpenBLAS threads it, and its float64 result then differs from one
    # thread's in the last bits
    ([300, 200, 10], 64, "float64"),
])
def test_medium_network_same_bits_at_one_and_two_threads(sizes, batch, dtype):
    """Every product below BLAS_SINGLE_THREAD_MACS runs on one BLAS thread, so
    such a network trains to the same bits on the general engine whatever the thread
    count (the two-thread engines, which two threads would pick, split the batch
    instead: the same bits run to run, not across thread counts)."""
    assert max(batch * a * b for a, b in zip(sizes, sizes[1:])) < BLAS_SINGLE_THREAD_MACS
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4 * batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], 4 * batch)
    out = []
    for n in (1, 2):
        net = fastbp.MLP(sizes, loss="cross_entropy", dtype=dtype, seed=0)
        with fastbp.threads(n), _engine.force("general"):
            net.fit(X, y, epochs=2, batch_size=batch, lr=0.05, seed=1, optimizer="adam")
        out.append(net.params)
    assert np.array_equal(out[0], out[1])


_SCRIPT = """
import sys, numpy as np, fastbp
rng = np.random.default_rng(0)
X = rng.standard_normal((316, 61)).astype(np.float32); y = rng.integers(0, 15, 316)
net = fastbp.MLP([61, 2, 220, 57, 15], loss="cross_entropy", dtype="float32", seed=0)
with fastbp.threads(2):
    net.fit(X, y, epochs=2, batch_size=79, lr=0.05, seed=1)
sys.stdout.write(net.params.tobytes().hex())
"""


def test_bit_identical_across_processes():
    def run():
        out = subprocess.run([sys.executable, "-c", _SCRIPT], check=True,
                             capture_output=True, text=True, timeout=300).stdout
        return np.frombuffer(bytes.fromhex(out), dtype=np.float32)

    assert np.array_equal(run(), run())


def test_stand_ins_are_inert():
    """Without a pthreads OpenBLAS the symbols point at native 'one thread' stubs."""
    get_addr, set_addr = blas._stand_in_addresses()
    get = ctypes.CFUNCTYPE(ctypes.c_int)(get_addr)
    set_ = ctypes.CFUNCTYPE(None, ctypes.c_int)(set_addr)
    assert get() == 1
    set_(4)
    assert get() == 1
