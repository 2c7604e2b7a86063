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

#: Which products run as own loops (``matmul.py``) and which call BLAS (sgemm /
#: dgemm through scipy.linalg.cython_blas).  Measured with ``bench/matmul_route.py``
#: (float32, in-cache operands, own loops time / BLAS time), on a 2-core AVX-512
#: Xeon with OpenBLAS 0.3.30 on its SkylakeX core and on its Haswell core
#: (``OPENBLAS_CORETYPE=Haswell``, the kernels AVX2 machines get):
#:
#: * Below ``BLAS_MIN_MACS`` multiply-adds own loops win or tie on both cores
#:   (0.24-1.1x at 64-512): the call overhead is the product.  Except the
#:   forward ``mm_nt`` with fewer than ``OWN_NT_MIN_K`` inputs, whose own dot
#:   products are mostly tail: BLAS from a quarter of it (48 x 3 x 3: own 3.3x).
#: * SkylakeX-class cores (``openblas.SMALL_KERNELS``) have small-matrix kernels
#:   that read the operands in place up to ``SMALL_KERNEL_MAX_MACS``: BLAS won
#:   every product from 1024 multiply-adds up to there (own loops 1.1-20x
#:   slower; 2.3-6.7x for the short-row ``mm_nn`` / ``mm_tn``).  Above it BLAS
#:   packs, and a product over at most ``OWN_*_ROWS`` samples is own loops'
#:   (1-2 x 784 x 1024 forward: own 0.33-0.70x).
#: * Other cores pack every call: own loops win the forward ``mm_nt`` over at
#:   most ``OWN_NT_ROWS`` samples with ``OWN_NT_MIN_K`` or more inputs
#:   (0.16-0.64x) and lose it below that (2.7-15x at 3-9 inputs); the input
#:   delta ``mm_nn`` over more than ``OWN_NN_ROWS`` samples is BLAS's from
#:   ``BLAS_MIN_MACS`` on (own 1.2-3.7x); the weight gradient ``mm_tn`` is BLAS's
#:   from ``SMALL_GEMM_MACS`` on (over more than ``OWN_TN_ROWS`` samples), and
#:   below it for fewer than ``OWN_NT_MIN_K`` inputs to at least 8 outputs
#:   (own 1.5-2.7x); otherwise own loops (0.6-1.0x).
BLAS_MIN_MACS = 1024
SMALL_KERNEL_MAX_MACS = 1000000
SMALL_GEMM_MACS = 32768
OWN_NT_ROWS = 8
OWN_NT_MIN_K = 16
OWN_NN_ROWS = 8
OWN_TN_ROWS = 1

#: OpenBLAS runs a gemm on one thread by itself below about this many
#: multiply-adds (its ``SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD``).
OPENBLAS_THREAD_MIN_MACS = 262144

#: BLAS products with fewer multiply-adds than this (and at least
#: ``OPENBLAS_THREAD_MIN_MACS``) run with OpenBLAS lowered to one thread: its
#: per-call thread handoff costs more than the second core saves
#: (``bench/blas_threads.py`` measures the crossover).  Larger products use
#: the threads the user allowed.
BLAS_SINGLE_THREAD_MACS = 4194304


#: Networks whose multiply-adds per batch (sum of n_in * n_out over layers,
#: times the batch size) stay below this train on the flat, view-free SGD path
#: (``fastbp/_kernels/small.py``).
SMALL_NET_MACS = 32768

#: Options for small helpers that take arrays, which Numba inlines at the IR
#: level into their callers, so that no call (and no reference counting of
#: array arguments) happens per element or per sample.  Scalar formulas
#: (activations, losses, optimizer steps) are plain ``JIT`` functions instead:
#: compiled once per signature, and LLVM inlines them at every call site.
#: IR-level inlining re-types the callee at every call site; with the scalar
#: formulas inlined that way, a cold digits fit spent 44.6 s compiling, 37.2 s
#: without.
#:
#: The same option on the mid-level steps of the training step that have one
#: call site each (``train_batch``, ``_forward_loss``, ``weighted_loss_delta``,
#: ``backward``, ``_through_layer``, ``_layer_forward``): every compiled
#: function is a separate LLVM module into which Numba links (and then
#: re-optimises and re-generates machine code for) everything it calls, so each
#: level of the call tree processed the whole tree below it again.  Folding
#: those six levels into their callers cut the LLVM IR a cold digits fit
#: processes from 10.6 MB to 5.6 MB (plain SGD, with ``train.sgd_state``),
#: and its compile time from 38.5-41.7 to 26-30 CPU s.
JIT_INLINE = dict(JIT, inline="always")

#: Population training vectorises across networks: this many networks share
#: each vector loop (``fastbp/_kernels/lanes.py``).  A compile-time constant,
#: so the loops have a fixed trip count; 32 float32 lanes fill two AVX-512
#: registers.
LANES = 32

#: Options for serial kernels that allocate nothing and run their own inner
#: loops over arrays (the population block kernel): Numba's reference counting
#: is switched off, so passing arrays to inlined helpers per sample costs no
#: atomic increments (a third of the time there).  They must not create
#: arrays, and are called from other kernels, not from Python.
JIT_NO_NRT = dict(JIT, _nrt=False)

#: The population lane kernel pushes this many samples through together, so
#: each weight row is read (and each gradient row written) once per group
#: rather than once per sample.
GROUP = 8

#: Networks whose multiply-adds per batch (sum of n_in * n_out over layers,
#: times the batch size) stay at or below this train on a generated,
#: shape-specialised epoch kernel (``fastbp/_gen``) when the epoch is one it
#: covers.  Measured with ``bench/gen_ab.py``: at or below it the generated
#: kernel ran 1.2-3.2x the generic engine (which takes its flat path there,
#: with results the generated kernel reproduces bit for bit where its dot
#: products are short, see ``_gen/source.DOT_SPLIT``); above it the
#: generic engine's BLAS / matmul products won (0.5-0.8x with the bound
#: lifted), the generated kernel's sums being serial chains in the flat
#: path's order (fast-math has no ``reassoc``: see FASTMATH).
GEN_NET_MACS = 32768

#: The two-thread engine (``_kernels/split.py``) runs the plain-SGD epochs the
#: generated kernels leave, with ``SPLIT_MIN_MACS`` to ``SPLIT_MAX_MACS``
#: multiply-adds a batch (forward pass) and at least ``SPLIT_MIN_BATCH`` samples,
#: when two threads and two cores are free.  Measured against the one-thread
#: general engine (``bench/split_sweep.py``, AMD Zen 5, 2 cores): 1.1-1.7x from
#: 5k to 8M multiply-adds a batch (batches 3-251), even at 15M (784-256-128-10,
#: batch 64); 0.8-0.97x from 32M on
#: (OpenBLAS's own two threads win: both threads of the split engine read every
#: weight) and at batch 2 (0.6-0.8x: the weights move between the cores' caches
#: every step for two rows' work).
SPLIT_MIN_MACS = 16384
SPLIT_MAX_MACS = 1 << 24
SPLIT_MIN_BATCH = 3

#: Smaller batches (1 or 2 samples) of at least ``UNITS_MIN_MACS`` multiply-adds go to
#: the two-thread units engine (``_kernels/split_units.py``) under the same conditions
#: (``bench/split_sweep.py``, same machine: 784-256-128-10 1.69x at batch 1, 1.24x at
#: batch 2; 242-53-5-823-24-12-394 at batch 1, 42k multiply-adds, 1.20x, below the
#: generated kernel, which takes batch-1 networks up to ``GEN_ONLINE_MACS``).
UNITS_MIN_MACS = 65536

#: The bound of ``GEN_NET_MACS`` for plain SGD one sample at a time (batch 1),
#: where the generic engine pays its per-layer call overhead on every sample.
#: Measured with ``bench/route_sweep.py`` and ``bench/one_case.py`` (float32,
#: 2-core AMD EPYC): the generated kernel ran 1.4-3.5x the generic engine on
#: every batch-1 shape of up to 22k multiply-adds, 1.8x at 64-128-96-10, 1.3x
#: at 100-200-100-10 (40k), and tied it at 300-300-300 (180k) and
#: 784-256-128-10 (234k), where compiling a kernel for the shape buys nothing.
GEN_ONLINE_MACS = 65536

#: The same bound for the optimizers that need the batch gradient (momentum,
#: Adam, AdamW, SGD with L1), where the alternative is the generic engine's
#: vectorised products rather than the flat path: measured with
#: ``bench/gen_ab.py --optimizer momentum|adam``, the generated kernel ran
#: 6-9x at 24 multiply-adds per batch, 0.9-2.3x at 832 and 0.3-0.6x at 20k.
GEN_STATE_MACS = 512

#: Deepest network (weight layers) given a generated kernel.
GEN_MAX_LAYERS = 6

#: Networks with at most this many parameters, trained one sample at a time
#: with an elementwise loss, get a generated kernel that keeps every value in
#: registers (``fastbp/_gen/registers.py``); its code (and compile time)
#: grows with the parameter count.
GEN_REG_PARAMS = 96

#: A process missing a fastbp kernel in the on-disk cache while another
#: process compiles the same signature waits at most this long for it
#: (``_cache.py``), then compiles it itself.
COMPILE_LOCK_WAIT_S = 300.0

# Stamp fastbp's cached kernels with a hash over all kernel sources (not just
# the defining file), so an edit or upgrade of a callee never loads stale code.
from . import _cache  # noqa: E402

_cache.install(COMPILE_LOCK_WAIT_S)
