"""Every Numba flag fastbp uses lives here.

``FASTMATH`` is the set of LLVM fast-math flags: reciprocals, approximate
library functions, no signed zeros.  Not ``nnan`` / ``ninf``, so a NaN
produced during training still propagates and is detected.  Not ``reassoc``
or ``contract`` either: with them, the code Numba compiles in-process and the
code it loads from its on-disk cache made different choices (vectorised
reduction order, which multiply-adds become FMAs), so a fresh process and a
cache-loaded one trained the same network to different last bits -- which
breaks bit-exact resume across processes.  Dropping both cost no measurable
speed on the benchmark cases (BLAS does the large products).
"""

FASTMATH = {"nsz", "arcp", "afn"}

#: Options for every serial kernel.
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")

#: Options for kernels with ``prange`` loops.
JIT_PARALLEL = dict(JIT, parallel=True)

#: Matrix products with fewer multiply-adds than this run as register loops,
#: larger ones call BLAS (sgemm/dgemm through scipy.linalg.cython_blas).
SMALL_GEMM_MACS = 32768


#: Networks whose multiply-adds per batch (sum of n_in * n_out over layers,
#: times the batch size) stay below this train on the flat, view-free SGD path
#: (``fastbp/_kernels/small.py``).
SMALL_NET_MACS = 32768

#: Options for small hot helpers that Numba inlines at the IR level into their
#: callers, so that no call (and no reference counting of array arguments)
#: happens per element or per sample.
JIT_INLINE = dict(JIT, inline="always")
