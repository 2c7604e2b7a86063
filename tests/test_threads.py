"""Thread control and reproducibility across thread counts and processes."""

import subprocess
import sys

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastbp

SCRIPT = """
import sys, numpy as np, fastbp
rng = np.random.default_rng(0)
X = rng.normal(size=(256, 300)).astype(np.float32); y = rng.integers(0, 10, 256)
net = fastbp.MLP([300, 200, 10], loss="cross_entropy", dtype="float32", seed=0)
with fastbp.threads(int(sys.argv[1])):
    net.fit(X, y, epochs=2, batch_size=64, lr=0.05)
sys.stdout.write(net.params.tobytes().hex())
"""


def _train_in_process(n_threads):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(n_threads)], check=True,
                         capture_output=True, text=True, timeout=300).stdout
    return np.frombuffer(bytes.fromhex(out), dtype=np.float32)


def test_same_seed_same_threads_bitwise_identical_across_processes():
    a = _train_in_process(1)
    b = _train_in_process(1)
    assert np.array_equal(a, b)
    c = _train_in_process(2)
    d = _train_in_process(2)
    assert np.array_equal(c, d)
    # BLAS blocking may change the summation order with the thread count:
    # results stay within float32 rounding of each other
    np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def _blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_threads_context_sets_and_restores():
    before_numba = numba.get_num_threads()
    before_blas = _blas_threads()
    with fastbp.threads(1):
        assert numba.get_num_threads() == 1
        assert all(n == 1 for n in _blas_threads())
    assert numba.get_num_threads() == before_numba
    assert _blas_threads() == before_blas


def test_threads_context_restores_after_error():
    before = numba.get_num_threads()
    with pytest.raises(RuntimeError):
        with fastbp.threads(1):
            raise RuntimeError("boom")
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_threads_rejects_bad_counts(bad):
    with pytest.raises((ValueError, TypeError)):
        with fastbp.threads(bad):
            pass


def test_run_chunks_calls_every_chunk_once_and_reraises_after_all_ended():
    """``run_chunks``: chunk 0 on the caller's thread, the others on the pool; a
    chunk's exception is raised once every chunk has run."""
    import threading

    from fastbp.threads import run_chunks

    seen = []

    def kernel(tag, c):
        seen.append((tag, c, threading.current_thread() is threading.main_thread()))
        if c == 2:
            raise ValueError("chunk 2")

    with pytest.raises(ValueError, match="chunk 2"):
        run_chunks(kernel, 4, "a")
    assert sorted(c for _, c, _ in seen) == [0, 1, 2, 3]
    assert [main for _, c, main in seen if c == 0] == [True]
    assert not any(main for _, c, main in seen if c > 0)
    seen.clear()
    run_chunks(kernel, 1, "b")  # one chunk: on this thread, no pool
    assert seen == [("b", 0, True)]


def test_run_chunks_from_several_threads_while_the_pool_grows():
    """Concurrent callers with growing chunk counts: every chunk of every call runs
    (a replaced pool is never shut down under a caller still using it)."""
    import threading

    from fastbp.threads import run_chunks

    lock = threading.Lock()
    calls = []

    def kernel(tag, c):
        with lock:
            calls.append((tag, c))

    def caller(i):
        for n in range(1, 9):
            run_chunks(kernel, n, (i, n))

    ts = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    expected = sorted(((i, n), c) for i in range(4) for n in range(1, 9) for c in range(n))
    assert sorted(calls) == expected
