"""Tests for fastbp._kernels.blas: BLAS gemm from nopython code."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from fastbp._kernels import blas
from fastbp._kernels.blas import gemm, gemm_available, gemm_loops

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
TRANS = [(False, False), (False, True), (True, False), (True, True)]
SHAPES = [  # (m, n, k)
    (1, 1, 1),
    (7, 13, 5),
    (33, 17, 65),
    (4, 3, 0),   # zero k: c <- beta * c
    (0, 3, 4),   # zero m
    (3, 0, 4),   # zero n
    (0, 0, 0),
]
SCALARS = [0.0, 1.0, -0.3]


def _operands(rng, dtype, transa, transb, m, n, k):
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    return a, b, c


def _reference(transa, transb, alpha, a, b, beta, c):
    """Reference in float64 and an elementwise error scale for the check."""
    opa = (a.T if transa else a).astype(np.float64)
    opb = (b.T if transb else b).astype(np.float64)
    c64 = c.astype(np.float64)
    ref = alpha * (opa @ opb)
    scale = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if beta != 0:  # BLAS: beta == 0 means c is not read
        ref = ref + beta * c64
        scale = scale + abs(beta) * np.abs(c64)
    return ref, scale


def _check(got, transa, transb, alpha, a, b, beta, c0, dtype):
    ref, scale = _reference(transa, transb, alpha, a, b, beta, c0)
    assert got.dtype == dtype
    assert got.shape == ref.shape
    rtol = RTOL[dtype]
    # relative to the size of the summands (robust to cancellation);
    # also compare with numpy's own result via assert_allclose
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= rtol * scale + np.finfo(dtype).tiny), (err.max(), scale.max())
    np.testing.assert_allclose(got, ref.astype(dtype), rtol=rtol,
                               atol=rtol * (scale.max() if scale.size else 0.0))


def test_available():
    assert gemm_available() is True
    assert all(addr for addr in blas._ADDRESSES.values())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa,transb", TRANS)
@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("func", [gemm, gemm_loops], ids=["gemm", "gemm_loops"])
def test_against_numpy(func, m, n, k, transa, transb, dtype):
    rng = np.random.default_rng(1000 * m + 100 * n + k)
    for alpha in SCALARS:
        for beta in SCALARS:
            a, b, c0 = _operands(rng, dtype, transa, transb, m, n, k)
            c = c0.copy()
            func(transa, transb, alpha, a, b, beta, c)
            _check(c, transa, transb, alpha, a, b, beta, c0, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa,transb", TRANS)
@pytest.mark.parametrize("func", [gemm, gemm_loops], ids=["gemm", "gemm_loops"])
def test_views(func, transa, transb, dtype):
    """Row slices, offset reshaped views of a flat buffer, and column slices
    (row stride > number of columns) for a, b and c."""
    rng = np.random.default_rng(7)
    m, n, k = 7, 13, 5
    alpha, beta = -0.3, 0.7

    # a: (m, k) or (k, m) view at an offset inside a flat buffer
    off = 11
    ashape = (k, m) if transa else (m, k)
    flat = rng.standard_normal(off + m * k + 9).astype(dtype)
    a = flat[off:off + m * k].reshape(ashape)

    # b: column slice of a wider array (leading dimension > columns)
    bshape = (n, k) if transb else (k, n)
    bwide = rng.standard_normal((bshape[0], bshape[1] + 6)).astype(dtype)
    b = bwide[:, 2:2 + bshape[1]]

    # c: row slice big[:m] of a taller array, and a column-sliced view
    for kind in ("rows", "cols"):
        if kind == "rows":
            big = rng.standard_normal((m + 5, n)).astype(dtype)
            c = big[:m]
        else:
            big = rng.standard_normal((m + 2, n + 4)).astype(dtype)
            c = big[1:1 + m, 3:3 + n]
        big0 = big.copy()
        c0 = c.copy()
        func(transa, transb, alpha, a, b, beta, c)
        _check(c.copy(), transa, transb, alpha, a, b, beta, c0, dtype)
        # nothing outside the view was touched
        mask = np.ones(big.shape, dtype=bool)
        if kind == "rows":
            mask[:m] = False
        else:
            mask[1:1 + m, 3:3 + n] = False
        np.testing.assert_array_equal(big[mask], big0[mask])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", [gemm, gemm_loops], ids=["gemm", "gemm_loops"])
def test_beta_zero_ignores_nan(func, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 4)).astype(dtype)
    b = rng.standard_normal((4, 5)).astype(dtype)
    c = np.full((6, 5), np.nan, dtype=dtype)
    func(False, False, 1.0, a, b, 0.0, c)
    np.testing.assert_allclose(c, a @ b, rtol=RTOL[dtype], atol=RTOL[dtype] * 10)
    # zero k with beta == 0 zeroes c, NaN or not
    c = np.full((6, 5), np.nan, dtype=dtype)
    func(False, False, 1.0, a[:, :0], b[:0, :], 0.0, c)
    assert np.all(c == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_integer_scalars_and_njit_caller(dtype):
    @njit
    def caller(a, b, c):
        gemm(False, True, 2, a, b, 1, c)   # integer alpha/beta are accepted
        gemm(True, False, np.float32(0.5), a[:, :0], a, 0.0, c[:0, :3])  # m == 0: no-op
        return c

    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 3)).astype(dtype)
    b = rng.standard_normal((5, 3)).astype(dtype)
    c0 = rng.standard_normal((4, 5)).astype(dtype)
    c = caller(a, b, c0.copy())
    _check(c, False, True, 2.0, a, b, 1.0, c0, dtype)


@pytest.mark.parametrize("func", [gemm, gemm_loops], ids=["gemm", "gemm_loops"])
def test_shape_mismatch_raises(func):
    a = np.ones((3, 4))
    b = np.ones((4, 5))
    c = np.zeros((3, 5))
    with pytest.raises(ValueError):
        func(False, False, 1.0, a, np.ones((3, 5)), 0.0, c)      # inner dims differ
    with pytest.raises(ValueError):
        func(False, False, 1.0, a, b, 0.0, np.zeros((3, 6)))     # bad c
    with pytest.raises(ValueError):
        func(True, False, 1.0, a, b, 0.0, c)                     # op(a) is 4x3
    with pytest.raises(ValueError):
        func(False, True, 1.0, a, b, 0.0, c)                     # op(b) is 5x4
    assert np.all(c == 0)


def test_bad_strides_raise():
    a = np.ones((3, 8))[:, ::2]          # last-dimension stride 2
    b = np.ones((4, 5))
    c = np.zeros((3, 5))
    with pytest.raises(ValueError):
        gemm(False, False, 1.0, a, b, 0.0, c)
    with pytest.raises(ValueError):
        gemm(False, False, 1.0, np.ones((3, 4)), b, 0.0, np.zeros((5, 3)).T)  # c is F-ordered
    with pytest.raises(ValueError):
        gemm(False, False, 1.0, np.ones((3, 4))[::-1], b, 0.0, c)  # negative row stride
    assert np.all(c == 0)
    # ... the loop fallback handles arbitrary strides
    a2 = np.arange(24.0).reshape(3, 8)[:, ::2]
    c2 = np.zeros((5, 3)).T
    gemm_loops(False, False, 1.0, a2, b, 0.0, c2)
    np.testing.assert_allclose(c2, a2 @ b)


def test_dtype_mismatch_is_typing_error():
    with pytest.raises(TypingError):
        gemm(False, False, 1.0, np.ones((2, 2), np.float32), np.ones((2, 2)), 0.0,
             np.zeros((2, 2), np.float32))
    with pytest.raises(TypingError):
        gemm(False, False, 1.0, np.ones((2, 2), np.int64), np.ones((2, 2), np.int64), 0.0,
             np.zeros((2, 2), np.int64))


def test_no_allocations():
    from numba.core.runtime import rtsys
    from numba.core.runtime import _nrt_python as _nrt

    @njit
    def loop(a, b, c, reps):
        for _ in range(reps):
            gemm(False, True, 1.0, a, b, 0.0, c)
            gemm(True, False, -0.3, c, a, 1.0, b[:5])  # view of b, no alloc

    @njit
    def allocating(reps):  # control: proves the counter works
        s = 0.0
        for _ in range(reps):
            s += np.empty(10).size
        return s

    a = np.ones((4, 3), np.float32)
    b = np.ones((5, 3), np.float32)
    c = np.zeros((4, 5), np.float32)
    loop(a, b, c, 1)
    allocating(1)

    def delta(fn, *args):
        before = rtsys.get_allocation_stats()
        fn(*args)
        after = rtsys.get_allocation_stats()
        return after.alloc - before.alloc, after.free - before.free

    was_enabled = _nrt.memsys_stats_enabled()
    _nrt.memsys_enable_stats()
    try:
        # crossing the dispatcher boundary costs a fixed number of NRT
        # allocations (one MemInfo per unboxed array); measure that baseline
        # with zero iterations, then require 100 gemm calls to add nothing
        base = delta(loop, a, b, c, 0)
        hundred = delta(loop, a, b, c, 100)
        control_base = delta(allocating, 0)
        control = delta(allocating, 100)
    finally:
        if not was_enabled:
            _nrt.memsys_disable_stats()
    assert hundred == base, (hundred, base)
    assert control[0] - control_base[0] >= 100


def _kernel_ir(dispatcher, sig):
    """LLVM IR of the body of one compiled overload (not its wrappers)."""
    import re
    ir = dispatcher.overloads[sig].library.get_llvm_str()
    name = dispatcher.py_func.__name__
    pat = re.compile(r"^define [^@]*@(_ZN\w*?%d%sB\S*?)\(" % (len(name), name), re.M)
    m = pat.search(ir)
    assert m is not None, f"no definition of {name} in the IR"
    return ir[m.start():ir.index("\n}\n", m.start())]


def test_no_refcount_ops_per_call():
    """The kernels' bodies must keep no NRT incref/decref on their array
    arguments: each pair left by Numba costs atomics (tens of ns) per call.
    Numba's refcount pruning only removes them when the control flow is
    simple; blas.py is written for that (see the note in it).  Compiled
    afresh (cache=False) because IR of cached code cannot be inspected."""
    from fastbp._config import JIT

    fresh = dict(JIT, cache=False)
    k_gemm = njit(**fresh)(gemm.py_func)
    k_loops = njit(**fresh)(gemm_loops.py_func)

    @njit
    def literal_flags(a, b, c):       # the usual case: constant flags
        k_gemm(False, True, 1.0, a, b, 0.0, c)
        k_loops(False, True, 1.0, a, b, 0.0, c)

    @njit
    def runtime_flags(ta, tb, a, b, c):
        k_gemm(ta, tb, 1.0, a, b, 0.0, c)

    a = np.ones((4, 3), np.float32)
    b = np.ones((5, 3), np.float32)
    c = np.zeros((4, 5), np.float32)
    literal_flags(a, b, c)
    runtime_flags(False, True, a, b, c)
    np.testing.assert_array_equal(c, 3.0)

    checked = 0
    for disp in (k_gemm, k_loops):
        for sig in disp.overloads:
            if disp is k_loops and str(sig[0]) == "bool":
                continue  # runtime-flag gemm_loops: 4 loop nests, not pruned
            body = _kernel_ir(disp, sig)
            assert "NRT_incref" not in body and "NRT_decref" not in body, (
                disp.py_func.__name__, sig)
            checked += 1
    assert checked == 3


_CACHE_SCRIPT = """
import json
import numpy as np
from numba import njit
from fastbp._kernels.blas import gemm

@njit(cache=True)
def caller(a, b, c, alpha, beta):
    gemm(False, True, alpha, a, b, beta, c)

out = {"hits": 0, "misses": 0, "err": 0.0}
for dt in (np.float32, np.float64):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 7)).astype(dt)
    b = rng.standard_normal((3, 7)).astype(dt)
    c = rng.standard_normal((5, 3)).astype(dt)
    ref = 2.0 * a.astype(np.float64) @ b.T.astype(np.float64) + 0.5 * c
    caller(a, b, c, 2.0, 0.5)
    out["err"] = max(out["err"], float(np.abs(c - ref).max() / np.abs(ref).max()))
out["hits"] = sum(caller.stats.cache_hits.values())
out["misses"] = sum(caller.stats.cache_misses.values())
out["gemm_hits"] = sum(gemm.stats.cache_hits.values())
print("RESULT" + json.dumps(out))
"""


def test_cache_roundtrip(tmp_path):
    """A cache=True caller of gemm is saved by one process and loaded (and
    linked against the registered BLAS symbols) by the next."""
    root = Path(blas.__file__).resolve().parents[2]
    (tmp_path / "fastbp_cache_caller.py").write_text(textwrap.dedent(_CACHE_SCRIPT))
    cache_dir = tmp_path / "numba_cache"
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env.pop("NUMBA_DISABLE_JIT", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(blas.__file__).parents[2]), str(tmp_path)]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    assert (root / "fastbp").is_dir()

    def run():
        proc = subprocess.run(
            [sys.executable, "-c", "import fastbp_cache_caller"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
        return json.loads(line[len("RESULT"):]), proc.stderr

    first, err1 = run()
    assert "NumbaWarning" not in err1, err1          # e.g. "cannot cache ..."
    assert first["misses"] == 2 and first["hits"] == 0
    assert first["err"] < 1e-5
    index_files = list(cache_dir.rglob("*.nbi"))
    assert any("fastbp_cache_caller" in p.name for p in index_files), index_files
    assert any("blas" in p.name for p in index_files), index_files

    second, err2 = run()
    assert "NumbaWarning" not in err2, err2
    assert second["hits"] == 2 and second["misses"] == 0
    assert second["err"] < 1e-5
