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
"""

import functools
import hashlib
import os
import pathlib
import time

from numba.core import caching, event

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_PACKAGE = pathlib.Path(__file__).resolve().parent
_ALWAYS = ("_config.py", "spec.py")
_MARKERS = (b"njit", b"overload", b"intrinsic")


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


class UserProvidedLocator(_PackageStamp, caching.UserProvidedCacheLocator):
    """``NUMBA_CACHE_DIR`` set: cache there."""


class InTreeLocator(_PackageStamp, caching.InTreeCacheLocator):
    """The package's ``__pycache__`` when writable."""


class UserWideLocator(_PackageStamp, caching.UserWideCacheLocator):
    """The user's cache directory otherwise."""


LOCATORS = (UserProvidedLocator, InTreeLocator, UserWideLocator)


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


def _load_overload(self, sig, target_context):
    """``Cache.load_overload``; a fastbp kernel's miss waits for another process
    compiling the same signature, then loads its result (see the module docstring)."""
    data = _ORIGINAL["load"](self, sig, target_context)
    if data is not None or fcntl is None or not _ours(self):
        return data
    path = _lock_path(self, sig)
    if path in _HELD or not _acquire(path, _LOCK_WAIT_S[0]):
        return None
    data = _ORIGINAL["load"](self, sig, target_context)  # saved while this process waited
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
    if not _ORIGINAL and fcntl is not None:
        _ORIGINAL["load"] = caching.Cache.load_overload
        _ORIGINAL["save"] = caching.Cache.save_overload
        caching.Cache.load_overload = _load_overload
        caching.Cache.save_overload = _save_overload
        event.register("numba:compile", _FailedCompile())
