"""BLAS gemm callable from nopython (``@njit``) code, compatible with ``cache=True``.

How it works
------------
SciPy ships the BLAS it was built against and exports typed C entry points for
it in ``scipy.linalg.cython_blas.__pyx_capi__`` (one ``PyCapsule`` per routine).
At import time this module takes the raw addresses of ``sgemm`` and ``dgemm``
out of those capsules and registers them in LLVM's process-wide symbol table
under *our own* names (``fastbp_sgemm`` / ``fastbp_dgemm``) with
``llvmlite.binding.add_symbol``.

The compiled code only ever refers to those functions *by name*: the
``@intrinsic`` below emits an external declaration
``declare void @fastbp_sgemm(i8*, i8*, i32*, ...)`` and a call to it.  No
address is baked into the machine code, so Numba's on-disk cache can store the
object code; when a later process loads it, the linker resolves the names
against the symbols that this module registered when it was imported (which is
guaranteed, since any cached caller imports ``gemm`` from here).  (As always
with Numba's cache, a caller's cache entry is keyed on the caller's own source
file only: after editing this module, clear the caches of cached callers.)

The cython_blas entry points use the Fortran calling convention made C-friendly
by SciPy: every argument is passed by reference and SciPy's wrapper deals with
hidden string-length arguments itself.  Signature (s = float or double)::

    void xgemm(char *transa, char *transb, int *m, int *n, int *k,
               s *alpha, s *a, int *lda, s *b, int *ldb,
               s *beta, s *c, int *ldc)

Row-major arrays are handled with the usual transposition identity: a
row-major ``(r, q)`` array with row stride ``ld`` *is* the column-major
``(q, r)`` matrix with leading dimension ``ld``, i.e. its transpose.  So
``C = op(A) op(B)`` (row-major) is computed as the column-major product
``C^T = op(B)^T op(A)^T``: call ``xgemm(opb, opa, n, m, k, alpha, B, ldb, A,
lda, beta, C, ldc)``.
"""

import contextlib
import ctypes

from llvmlite import ir
import llvmlite.binding as _llvm
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import BLAS_SINGLE_THREAD_MACS, JIT, OPENBLAS_THREAD_MIN_MACS
from .openblas import AFFIXES as _AFFIXES, cython_blas as _cython_blas

__all__ = ["gemm", "gemm_loops", "gemm_available", "blas_thread_control"]


# --------------------------------------------------------------------------
# Symbol registration (runs once per process, at import)
# --------------------------------------------------------------------------

_SYMBOLS = {"sgemm": "fastbp_sgemm", "dgemm": "fastbp_dgemm"}


def _capsule_address(capsule):
    """Return (name, raw pointer) of a PyCapsule; the name is Cython's C
    signature string of the exported function."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    name = get_name(capsule)
    addr = get_pointer(capsule, name)
    if not addr:
        raise RuntimeError("PyCapsule_GetPointer returned NULL")
    return name, addr


def _register_symbols():
    capi = _cython_blas().__pyx_capi__
    addrs = {}
    for routine, symbol in _SYMBOLS.items():
        sig, addr = _capsule_address(capi[routine])
        # Guard the ABI the intrinsic assumes: 32-bit ints, all by reference.
        if sig is None or not sig.decode("ascii", "replace").replace(" ", "").startswith(
                "void(char*,char*,int*,int*,int*,"):
            raise ImportError(f"unexpected signature for cython_blas.{routine}: {sig!r}")
        _llvm.add_symbol(symbol, addr)
        addrs[symbol] = addr
    return addrs


_ADDRESSES = _register_symbols()


# --------------------------------------------------------------------------
# Thread policy: BLAS runs single-threaded where threading does not pay
# --------------------------------------------------------------------------
#
# OpenBLAS (pthreads build, as in SciPy's wheels) hands a gemm to its worker
# threads whenever the product has more than ~262k multiply-adds and the
# thread count is above 1, and synchronises with them on every call.  For the
# medium products of MLP training that handoff costs more than it saves (and
# far more when the other core is busy: a descheduled worker stalls the call
# for a time slice).  So ``gemm`` lowers OpenBLAS to one thread around
# products of OPENBLAS_THREAD_MIN_MACS <= m*n*k < BLAS_SINGLE_THREAD_MACS when
# it is set higher, and restores the count right after the call.  It only ever
# lowers the count, never raises it above what the user (``fastbp.threads``,
# threadpoolctl, OPENBLAS_NUM_THREADS) allowed, and it leaves the setting as it
# found it.  The thread count used for a product is a function of its shape
# and the user's setting alone, so same seed + same thread count stays
# bit-identical across processes.
#
# The two OpenBLAS functions are found in the library SciPy's cython_blas is
# linked against (dlsym on its handle searches its dependencies), under the
# names threadpoolctl knows (``scipy_openblas_set_num_threads``, ...), and
# registered like the gemm symbols: compiled code refers to them by name.  A
# BLAS that is not a pthreads OpenBLAS gets native no-op stand-ins ("one
# thread"), so the policy is then inert.

_THREAD_SYMBOLS = {"get": "fastbp_blas_get_threads", "set": "fastbp_blas_set_threads"}
_PTHREADS = 1  # openblas_get_parallel(): 0 serial build, 1 pthreads, 2 OpenMP


def _openblas_thread_functions():
    """(get, set) ctypes functions of SciPy's OpenBLAS, or None."""
    try:
        lib = ctypes.CDLL(_cython_blas().__file__)
    except (OSError, AttributeError):  # pragma: no cover - static builds
        return None
    for prefix, suffix in _AFFIXES:
        names = [f"{prefix}openblas_{f}{suffix}"
                 for f in ("get_num_threads", "set_num_threads", "get_parallel")]
        if all(hasattr(lib, name) for name in names):
            get, set_, parallel = (getattr(lib, name) for name in names)
            if parallel() != _PTHREADS:  # OpenMP: per-thread limits; serial: nothing to do
                return None
            get.restype = ctypes.c_int
            get.argtypes = []
            set_.restype = None
            set_.argtypes = [ctypes.c_int]
            return get, set_
    return None


_STAND_INS = """
define i32 @fastbp_blas_one_thread() {
  ret i32 1
}
define void @fastbp_blas_ignore_threads(i32 %n) {
  ret void
}
"""


_STAND_IN_ENGINES = []  # keeps the compiled stand-ins alive


def _stand_in_addresses():
    """Native ``int f(void) { return 1; }`` and ``void g(int) {}``, JIT-compiled."""
    module = _llvm.parse_assembly(_STAND_INS)
    machine = _llvm.Target.from_default_triple().create_target_machine()
    engine = _llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    _STAND_IN_ENGINES.append(engine)
    return (engine.get_function_address("fastbp_blas_one_thread"),
            engine.get_function_address("fastbp_blas_ignore_threads"))


def _register_thread_symbols():
    funcs = _openblas_thread_functions()
    if funcs is None:
        addrs = _stand_in_addresses()
    else:
        addrs = tuple(ctypes.cast(f, ctypes.c_void_p).value for f in funcs)
    for name, addr in zip(("get", "set"), addrs):
        _llvm.add_symbol(_THREAD_SYMBOLS[name], addr)
    return funcs


_THREAD_FUNCTIONS = _register_thread_symbols()


def blas_thread_control():
    """True when ``gemm`` manages OpenBLAS threads (a pthreads OpenBLAS was found)."""
    return _THREAD_FUNCTIONS is not None


@contextlib.contextmanager
def blas_one_thread():
    """OpenBLAS at one thread inside the block, its count restored after (a no-op
    without :func:`blas_thread_control`)."""
    before = _THREAD_FUNCTIONS[0]() if _THREAD_FUNCTIONS is not None else 1
    if before > 1:
        _THREAD_FUNCTIONS[1](1)
    try:
        yield
    finally:
        if before > 1:
            _THREAD_FUNCTIONS[1](before)


def gemm_available():
    """True: BLAS gemm is reachable from nopython code (symbols registered)."""
    return True


# --------------------------------------------------------------------------
# The intrinsic: call fastbp_{s,d}gemm with by-reference Fortran scalars
# --------------------------------------------------------------------------

def _is_int(t):
    return isinstance(t, types.Integer)


@intrinsic
def _xgemm(typingctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, single_below):
    """Raw column-major BLAS call.

    ``ta``/``tb``: integer character codes (ord('N') or ord('T')); ``m, n, k,
    lda, ldb, ldc``: integers (truncated to int32); ``alpha``/``beta``: any
    real scalar (cast to the array dtype); ``a, b, c``: arrays of one dtype
    (float32 -> sgemm, float64 -> dgemm); only their data pointers are used.
    ``single_below``: integer; products with OPENBLAS_THREAD_MIN_MACS <= m*n*k
    < single_below run with BLAS lowered to one thread (0: never).
    """
    arrs = (a, b, c)
    if not all(isinstance(x, types.Array) for x in arrs):
        return None
    dt = c.dtype
    if dt == types.float32:
        symbol = _SYMBOLS["sgemm"]
    elif dt == types.float64:
        symbol = _SYMBOLS["dgemm"]
    else:
        return None
    if a.dtype != dt or b.dtype != dt:
        return None
    if not all(_is_int(x) for x in (ta, tb, m, n, k, lda, ldb, ldc)):
        return None
    if not all(isinstance(x, (types.Integer, types.Float, types.Boolean))
               for x in (alpha, beta)):
        return None
    if not _is_int(single_below):
        return None

    sig = types.void(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, single_below)

    def codegen(context, builder, signature, args):
        (v_ta, v_tb, v_m, v_n, v_k, v_alpha, v_a, v_lda,
         v_b, v_ldb, v_beta, v_c, v_ldc, v_single) = args
        aty = signature.args

        i8 = ir.IntType(8)
        i32 = ir.IntType(32)
        fl = context.get_value_type(dt)
        i8p, i32p, flp = i8.as_pointer(), i32.as_pointer(), fl.as_pointer()

        fnty = ir.FunctionType(
            ir.VoidType(),
            [i8p, i8p, i32p, i32p, i32p, flp, flp, i32p, flp, i32p, flp, flp, i32p])
        fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)

        def by_ref_int(val, ty, dst):
            # alloca in the entry block, store at the current position
            v = context.cast(builder, val, ty, dst)
            return cgutils.alloca_once_value(builder, v)

        def by_ref_float(val, ty):
            v = context.cast(builder, val, ty, dt)
            return cgutils.alloca_once_value(builder, v)

        def data_ptr(val, ty):
            ary = context.make_array(ty)(context, builder, value=val)
            return builder.bitcast(ary.data, flp)

        p_ta = by_ref_int(v_ta, aty[0], types.int8)
        p_tb = by_ref_int(v_tb, aty[1], types.int8)
        p_m = by_ref_int(v_m, aty[2], types.int32)
        p_n = by_ref_int(v_n, aty[3], types.int32)
        p_k = by_ref_int(v_k, aty[4], types.int32)
        p_alpha = by_ref_float(v_alpha, aty[5])
        p_a = data_ptr(v_a, aty[6])
        p_lda = by_ref_int(v_lda, aty[7], types.int32)
        p_b = data_ptr(v_b, aty[8])
        p_ldb = by_ref_int(v_ldb, aty[9], types.int32)
        p_beta = by_ref_float(v_beta, aty[10])
        p_c = data_ptr(v_c, aty[11])
        p_ldc = by_ref_int(v_ldc, aty[12], types.int32)

        call_args = [p_ta, p_tb, p_m, p_n, p_k, p_alpha, p_a, p_lda,
                     p_b, p_ldb, p_beta, p_c, p_ldc]

        # thread policy, as straight LLVM code (no Numba-level branches, so
        # no effect on refcount pruning in the callers)
        i64 = ir.IntType(64)
        macs = builder.mul(builder.mul(builder.sext(builder.load(p_m), i64),
                                       builder.sext(builder.load(p_n), i64)),
                           builder.sext(builder.load(p_k), i64))
        single = context.cast(builder, v_single, aty[13], types.int64)
        mid = builder.and_(
            builder.icmp_signed(">=", macs, ir.Constant(i64, OPENBLAS_THREAD_MIN_MACS)),
            builder.icmp_signed("<", macs, single))
        get_fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, []), _THREAD_SYMBOLS["get"])
        set_fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i32]), _THREAD_SYMBOLS["set"])
        with builder.if_else(mid) as (lowered, as_set):
            with lowered:
                current = builder.call(get_fn, [])
                several = builder.icmp_signed(">", current, ir.Constant(i32, 1))
                with builder.if_then(several):
                    builder.call(set_fn, [ir.Constant(i32, 1)])
                builder.call(fn, call_args)
                with builder.if_then(several):
                    builder.call(set_fn, [current])
            with as_set:
                builder.call(fn, call_args)
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------------------
# Public kernels
# --------------------------------------------------------------------------

_INT32_MAX = 2147483647
_CHAR_N = 78  # ord('N')
_CHAR_T = 84  # ord('T')

# Per-call overhead note.  Numba increfs array arguments on entry and decrefs
# them on every exit; its LLVM "refprune" pass removes those pairs only when
# the control flow between them stays small and simple.  Calls to other njit
# functions (hidden exception exits), early ``return``s, several ``raise``
# sites, short-circuit ``and``/``or`` chains and signed ``//``/``%`` (each a
# branchy sign fix-up) all multiply the paths and, here, left 3 increfs and
# 3+ decrefs (atomic ops, 40-70 ns) on every call.  Hence the kernels below
# do their checks inline as straight-line ``|``/``&`` arithmetic with shifts
# and masks, have one ``raise`` site and a single normal exit.
# tests/test_blas.py::test_no_refcount_ops_per_call guards this.


@njit(**JIT)
def gemm(transa, transb, alpha, a, b, beta, c):
    """c <- alpha * op(a) @ op(b) + beta * c   (op(x) = x.T if trans else x)

    a, b, c: 2-D arrays of one dtype (float32 or float64) with unit stride in
    the last dimension (C-contiguous arrays, or row slices/views of them such
    as big[:n] or a (rows, cols) view of a flat buffer). Row-major is handled by
    the usual swap: compute c^T = op(b)^T op(a)^T in column-major. Leading
    dimensions come from the arrays' row strides, so c may be a view like
    out[:n].

    As in BLAS, beta == 0 means c is not read (NaNs in c are overwritten).
    c must not overlap a or b.  Raises ValueError on inconsistent shapes or
    unsupported strides (before touching c); a dtype mismatch is a
    compile-time TypingError.
    """
    if transa:
        ka, m = a.shape
    else:
        m, ka = a.shape
    if transb:
        n, kb = b.shape
    else:
        kb, n = b.shape
    k = ka
    # Leading dimensions (elements) from the row strides.  Strides only
    # matter along axes of length > 1 of non-empty arrays (NumPy gives empty
    # arrays zero strides); otherwise ld = cols, as BLAS needs ld >= cols.
    # Shifts and masks instead of // and %: no sign-fixup branches (see the
    # note above).
    isz = c.itemsize
    sh = 2 if isz == 4 else 3
    mask = isz - 1
    ra = (a.shape[0] > 1) & (a.shape[1] > 0)
    rb = (b.shape[0] > 1) & (b.shape[1] > 0)
    rc = (c.shape[0] > 1) & (c.shape[1] > 0)
    lda = a.strides[0] >> sh if ra else a.shape[1]
    ldb = b.strides[0] >> sh if rb else b.shape[1]
    ldc = c.strides[0] >> sh if rc else c.shape[1]
    # non-short-circuit | and & keep this straight-line code
    bad = (
        (ka != kb) | (c.shape[0] != m) | (c.shape[1] != n)
        | (m > _INT32_MAX) | (n > _INT32_MAX) | (k > _INT32_MAX)
        | ((a.shape[0] > 0) & (a.shape[1] > 1) & (a.strides[1] != isz))
        | ((b.shape[0] > 0) & (b.shape[1] > 1) & (b.strides[1] != isz))
        | ((c.shape[0] > 0) & (c.shape[1] > 1) & (c.strides[1] != isz))
        | (ra & (((a.strides[0] & mask) != 0) | (lda < a.shape[1])))
        | (rb & (((b.strides[0] & mask) != 0) | (ldb < b.shape[1])))
        | (rc & (((c.strides[0] & mask) != 0) | (ldc < c.shape[1])))
        | (lda > _INT32_MAX) | (ldb > _INT32_MAX) | (ldc > _INT32_MAX)
    )
    if bad:
        raise ValueError("gemm: inconsistent shapes, or an array without unit "
                         "stride in its last dimension / with invalid row stride")
    if (m > 0) & (n > 0):
        # column-major: C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m).
        # k == 0 is left to BLAS (c <- beta * c, c not read if beta == 0);
        # max(ld, 1) satisfies its argument checks for empty operands.
        opb = _CHAR_T if transb else _CHAR_N
        opa = _CHAR_T if transa else _CHAR_N
        _xgemm(opb, opa, n, m, k, alpha, b, max(ldb, 1), a, max(lda, 1),
               beta, c, max(ldc, 1), BLAS_SINGLE_THREAD_MACS)


@njit(**JIT)
def gemm_loops(transa, transb, alpha, a, b, beta, c):
    """Plain-loop gemm with exactly the semantics of :func:`gemm`.

    Meant for tiny sizes (no BLAS call overhead) and as a reference.  Works
    for any strides, but c must not overlap a or b.
    """
    if transa:
        ka, m = a.shape
    else:
        m, ka = a.shape
    if transb:
        n, kb = b.shape
    else:
        kb, n = b.shape
    k = ka
    if ka != kb or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("gemm_loops: inconsistent shapes")
    if beta == 0:  # as BLAS: c is not read
        for i in range(m):
            for j in range(n):
                c[i, j] = 0
    elif beta != 1:
        for i in range(m):
            for j in range(n):
                c[i, j] = beta * c[i, j]
    if alpha != 0:
        for i in range(m):
            for p in range(k):
                if transa:
                    aip = alpha * a[p, i]
                else:
                    aip = alpha * a[i, p]
                if transb:
                    for j in range(n):
                        c[i, j] += aip * b[j, p]
                else:
                    for j in range(n):
                        c[i, j] += aip * b[p, j]
