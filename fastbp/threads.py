"""Thread control: BLAS and Numba thread counts set together, and restored.

fastbp's kernels are serial; BLAS (OpenBLAS/MKL behind scipy) runs the large
matrix products with its own threads, and :class:`fastbp.population.Population`
runs chunks of networks on Python threads (``run_chunks``, as many chunks as
Numba's thread count).  ``threads(n)`` sets both for a block of code and
restores the previous settings on exit, even after an exception.

``n`` is a ceiling, not a command for every product: fastbp's gemm lowers
OpenBLAS to one thread around medium products (``OPENBLAS_THREAD_MIN_MACS`` to
``BLAS_SINGLE_THREAD_MACS`` multiply-adds, ``fastbp/_config.py``), where the
per-call thread handoff costs more than a second core saves, and restores the
count right after each call.  Which thread count a product gets depends only
on its shape and ``n``, so the same seed and ``n`` give bit-identical results
across processes.
"""

import contextlib

import numba
from threadpoolctl import threadpool_limits

from ._pool import executor
from ._validate import check_int


@contextlib.contextmanager
def threads(n):
    """Run the block with ``n`` BLAS threads and ``n`` Numba threads.

    ``threads(1)`` makes every result independent of the machine's core count
    (the deterministic mode): each matrix product then sums in one fixed order.
    """
    n = check_int(n, "n", 1)
    n_numba = min(n, numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    limiter = threadpool_limits(n)
    try:
        numba.set_num_threads(n_numba)
        yield
    finally:
        numba.set_num_threads(previous)
        limiter.restore_original_limits()


def run_chunks(kernel, n_chunks, *args):
    """Call ``kernel(*args, c)`` for every chunk ``c < n_chunks``, the chunks on threads.

    fastbp's kernels release the GIL (``nogil``), so the chunks run in
    parallel; the caller sizes ``n_chunks`` from ``numba.get_num_threads()``.
    The first exception a chunk raises is raised here, after every chunk ended.
    """
    if n_chunks <= 1:
        kernel(*args, 0)
        return
    pool = executor(n_chunks - 1)
    futures = [pool.submit(kernel, *args, c) for c in range(1, n_chunks)]
    error = None
    try:
        kernel(*args, 0)  # this thread takes chunk 0
    except BaseException as e:  # noqa: BLE001 -- re-raised once the others ended
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            error = error or e
    if error is not None:
        raise error
