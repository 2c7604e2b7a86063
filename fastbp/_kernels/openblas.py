"""SciPy's BLAS library: its ``cython_blas`` module and which OpenBLAS core it runs.

No fastbp imports (``_cache`` stamps kernels with :data:`SMALL_KERNELS`, and
``blas`` registers the routines of :func:`cython_blas`).

OpenBLAS's AVX-512 cores (SkylakeX, Cooperlake, SapphireRapids) have
"small-matrix" gemm kernels that read the operands in place (no packing, no
threads) for products of up to about 10**6 multiply-adds; other cores pack
both operands on every call.  Where ``matmul.py``'s own loops beat BLAS
depends on it (``_config.SMALL_KERNEL_MAX_MACS``), so the routing reads the
core once, here.  It is a compile-time constant of the kernels, and part of
their cache stamp (``_cache.kernel_source_hash``).
"""

import ctypes
import glob
import importlib
import importlib.machinery
import importlib.util
import os
import sys

#: Symbol prefixes and suffixes of OpenBLAS builds (SciPy's wheels: ``scipy_``).
AFFIXES = [(p, s) for p in ("scipy_", "") for s in ("", "64_", "_64")]

_SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")


def cython_blas():
    """scipy's ``cython_blas`` extension module.

    ``import scipy.linalg.cython_blas`` first runs ``scipy/linalg/__init__``,
    which costs ~0.4 s of import time for nothing we use, so the extension is
    loaded straight from its file; any surprise falls back to the plain import.
    """
    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return sys.modules[name]
    try:
        import scipy
        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        for path in sorted(glob.glob(os.path.join(folder, "cython_blas.*"))):
            if path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    except Exception:  # pragma: no cover - unusual scipy layouts
        pass
    return importlib.import_module(name)


def openblas_core():
    """The core name SciPy's OpenBLAS chose at load (e.g. ``'SkylakeX'``), or ``''``."""
    try:
        lib = ctypes.CDLL(cython_blas().__file__)
    except (OSError, AttributeError):  # pragma: no cover - static builds
        return ""
    for prefix, suffix in AFFIXES:
        func = getattr(lib, f"{prefix}openblas_get_corename{suffix}", None)
        if func is not None:
            func.restype = ctypes.c_char_p
            func.argtypes = []
            return (func() or b"").decode("ascii", "replace")
    return ""


#: True when SciPy's BLAS is an OpenBLAS whose core has small-matrix kernels.
SMALL_KERNELS = openblas_core().lower() in _SMALL_KERNEL_CORES
