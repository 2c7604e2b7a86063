"""Numba's on-disk cache, made safe across edits and upgrades of fastbp.

Numba stamps a cached kernel with a hash of the one file that defines it.  A
fastbp kernel inlines helpers from other files (activations, losses, the
optimizer steps, ``spec`` constants), so after an upgrade or a ``git pull``
that changed only a callee, Numba would load the old machine code and train
with the old formula.  The locators below stamp every fastbp kernel with one
hash over all of fastbp's kernel sources instead: any change to any of them
makes every cached fastbp kernel stale, and Numba recompiles it.  Functions
outside fastbp keep Numba's own locators.

Processes that start together (test workers, MPI ranks, dask workers, the
warm-up's compilers) would each compile the same kernel.  A fastbp kernel's
cache miss therefore takes a lock file for that signature next to its cache
entry: the first process compiles and saves it, the others wait and load it
(``_config.COMPILE_LOCK_WAIT_S`` at most, then compile themselves).  Locks
follow the call graph (a kernel's compile only waits on its callees), so they
cannot deadlock; a failed compile releases its lock, and so does a process
that dies.  Not on Windows (no ``fcntl``): there each process compiles.

Kernels compiled when fastbp was built (a wheel build runs ``fastbp.warmup``
with ``FASTBP_PRECOMPILE_INTO`` set, ``tools/build_backend.py``) ship inside
the package, in ``fastbp/_precompiled`` laid out as the package's own folders.
A miss in the user's cache loads them from there when their stamp (the
kernel-source hash), Numba's version, the CPU and the Python version all
match; otherwise the kernel is compiled as before.  ``FASTBP_PRECOMPILED_DIR``
points elsewhere.
"""

import functools
import hashlib
import os
import pathlib
import time

from numba.core import caching, event
from numba.core.runtime import rtsys

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_PACKAGE = pathlib.Path(__file__).resolve().parent
_ALWAYS = ("_config.py", "spec.py")
_MARKERS = (b"njit", b"overload", b"intrinsic")
#: Set during a build: fastbp's kernels are cached into this folder, to ship.
PRECOMPILE_INTO = "FASTBP_PRECOMPILE_INTO"
#: Where shipped kernels are read from (default ``fastbp/_precompiled``).
PRECOMPILED_DIR = "FASTBP_PRECOMPILED_DIR"


def kernel_sources():
    """The fastbp source files whose contents compiled kernels depend on, sorted."""
    files = set(_PACKAGE.glob("_kernels/*.py"))
    for path in _PACKAGE.rglob("*.py"):
        if path.name in _ALWAYS or any(m in path.read_bytes() for m in _MARKERS):
            files.add(path)
    return sorted(files)


@functools.lru_cache(maxsize=1)
def kernel_source_hash():
    """SHA-256 (hex) over the names and contents of :func:`kernel_sources`, and the
    BLAS routing the kernels were compiled for (``openblas.SMALL_KERNELS``)."""
    from ._kernels.openblas import SMALL_KERNELS  # loads scipy's BLAS: not at module load
    h = hashlib.sha256()
    for path in kernel_sources():
        h.update(path.relative_to(_PACKAGE).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    h.update(b"small-kernels" if SMALL_KERNELS else b"packed-kernels")
    return h.hexdigest()


def _in_package(py_file):
    try:
        pathlib.Path(py_file).resolve().relative_to(_PACKAGE)
    except (ValueError, OSError):
        return False
    return True


class _PackageStamp:
    """Locator mixin: fastbp files only, stamped with the whole kernel-source hash."""

    def get_source_stamp(self):
        """The stamp Numba stores with a cache entry and compares on load."""
        return kernel_source_hash()

    @classmethod
    def from_function(cls, py_func, py_file):
        """A locator for fastbp's own functions; ``None`` hands others to Numba's."""
        if not _in_package(py_file):
            return None
        return super().from_function(py_func, py_file)


def _package_dir(py_file):
    """The folder of ``py_file`` relative to the package (``_kernels``, or ``.``)."""
    return pathlib.Path(py_file).resolve().parent.relative_to(_PACKAGE)


def precompiled_root():
    """The folder shipped kernels are read from."""
    return pathlib.Path(os.environ.get(PRECOMPILED_DIR) or _PACKAGE / "_precompiled")


class PrecompileLocator(_PackageStamp, caching._SourceFileBackedLocatorMixin,
                        caching._CacheLocator):
    """``FASTBP_PRECOMPILE_INTO`` set (a build): cache there, laid out as the package."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(os.environ[PRECOMPILE_INTO], _package_dir(py_file))

    def get_cache_path(self):
        """The folder this function's entries go to."""
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        """A locator while building, ``None`` otherwise."""
        if not os.environ.get(PRECOMPILE_INTO):
            return None
        return super().from_function(py_func, py_file)


class UserProvidedLocator(_PackageStamp, caching.UserProvidedCacheLocator):
    """``NUMBA_CACHE_DIR`` set: cache there."""


class InTreeLocator(_PackageStamp, caching.InTreeCacheLocator):
    """The package's ``__pycache__`` when writable."""


class UserWideLocator(_PackageStamp, caching.UserWideCacheLocator):
    """The user's cache directory otherwise."""


LOCATORS = (PrecompileLocator, UserProvidedLocator, InTreeLocator, UserWideLocator)


#: Lock files this process holds (path -> file descriptor): compiles under way.
_HELD = {}


def _ours(cache):
    return isinstance(getattr(cache, "_impl", None) and cache._impl.locator, _PackageStamp)


def _lock_path(cache, sig):
    digest = hashlib.sha256(repr(tuple(sig) if isinstance(sig, list) else sig).encode())
    return os.path.join(cache.cache_path,
                        f"{cache._impl.filename_base}.{digest.hexdigest()[:16]}.lock")


def _acquire(path, wait_s):
    """Hold ``path``'s lock: True once held, False when it cannot be had in ``wait_s``."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _HELD[path] = fd
            return True
        except BlockingIOError:  # another process holds it: wait
            if time.monotonic() > deadline:
                os.close(fd)
                return False
            time.sleep(0.02)
        except OSError:  # no locks on this file system: compile without one
            os.close(fd)
            return False


def _release(path):
    fd = _HELD.pop(path, None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the lock


def _load_shipped(cache, sig, target_context):
    """The entry for ``sig`` from the kernels shipped with the package, or ``None``."""
    locator = cache._impl.locator
    if isinstance(locator, PrecompileLocator):
        return None
    path = precompiled_root() / _package_dir(locator._py_file)
    if not path.is_dir():
        return None
    shipped = caching.IndexDataCacheFile(cache_path=str(path),
                                         filename_base=cache._impl.filename_base,
                                         source_stamp=locator.get_source_stamp())
    try:
        data = shipped.load(cache._index_key(sig, target_context.codegen()))
    except Exception:  # unreadable (a partial copy, another Python): compile instead
        return None
    return None if data is None else cache._impl.rebuild(target_context, data)


def _load_cached(cache, sig, target_context):
    """Numba's ``Cache.load_overload`` without its ``target_context.refresh()``.

    The refresh imports and installs every typing and lowering registry (about
    0.2 s, the largest part of a warm process's first call); loading machine
    code needs none of it, only the runtime's symbols (``rtsys.initialize``,
    which the refresh would run).  A compile refreshes the context itself.
    """
    rtsys.initialize(target_context)
    with cache._guard_against_spurious_io_errors():
        return cache._load_overload(sig, target_context)


def _load_overload(self, sig, target_context):
    """``Cache.load_overload``; a fastbp kernel's miss loads the shipped entry, or
    waits for another process compiling the same signature, then loads its result
    (see the module docstring)."""
    if not _ours(self):
        return _ORIGINAL["load"](self, sig, target_context)
    data = _load_cached(self, sig, target_context)
    if data is not None:
        return data
    data = _load_shipped(self, sig, target_context)
    if data is not None or fcntl is None:
        return data
    path = _lock_path(self, sig)
    if path in _HELD or not _acquire(path, _LOCK_WAIT_S[0]):
        return None
    data = _load_cached(self, sig, target_context)  # saved while this process waited
    if data is not None:
        _release(path)
    return data  # None: this process compiles, and save_overload releases the lock


def _save_overload(self, sig, data):
    """``Cache.save_overload``, then the signature's lock is released."""
    try:
        _ORIGINAL["save"](self, sig, data)
    finally:
        if _HELD and _ours(self):
            _release(_lock_path(self, sig))


class _FailedCompile(event.Listener):
    """Releases the locks of a compile that raised (no ``save_overload`` follows)."""

    def on_start(self, ev):
        pass

    def on_end(self, ev):
        exc = getattr(ev, "_exc_details", None)  # (type, value, traceback); no public accessor
        if not _HELD or not exc or exc[0] is None:
            return
        cache = getattr(ev.data.get("dispatcher"), "_cache", None)
        if cache is not None and _ours(cache):
            prefix = os.path.join(cache.cache_path, cache._impl.filename_base + ".")
            for path in [p for p in _HELD if p.startswith(prefix)]:
                _release(path)


_ORIGINAL = {}
#: Longest wait for another process's compile (``_config.COMPILE_LOCK_WAIT_S``).
_LOCK_WAIT_S = [300.0]


def install(lock_wait_s):
    """Put fastbp's locators first in Numba's search order and the compile locks on
    Numba's cache (idempotent); a miss waits at most ``lock_wait_s`` for another process."""
    _LOCK_WAIT_S[0] = float(lock_wait_s)
    classes = caching.CacheImpl._locator_classes
    for cls in reversed(LOCATORS):
        if cls not in classes:
            classes.insert(0, cls)
    if not _ORIGINAL:
        _ORIGINAL["load"] = caching.Cache.load_overload
        _ORIGINAL["save"] = caching.Cache.save_overload
        caching.Cache.load_overload = _load_overload
        if fcntl is not None:
            caching.Cache.save_overload = _save_overload
            event.register("numba:compile", _FailedCompile())
