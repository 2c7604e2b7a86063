"""Thread control: BLAS and Numba thread counts set together, and restored.

fastbp's kernels are serial; BLAS (OpenBLAS/MKL behind scipy) runs the large
matrix products with its own threads and Numba's ``prange`` kernels
(:class:`fastbp.population.Population`) use Numba's pool.  ``threads(n)``
sets both for a block of code and restores the previous settings on exit,
even after an exception.

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
