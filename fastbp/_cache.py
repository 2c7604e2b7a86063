"""Numba's on-disk cache, made safe across edits and upgrades of fastbp.

Numba stamps a cached kernel with a hash of the one file that defines it.  A
fastbp kernel inlines helpers from other files (activations, losses, the
optimizer steps, ``spec`` constants), so after an upgrade or a ``git pull``
that changed only a callee, Numba would load the old machine code and train
with the old formula.  The locators below stamp every fastbp kernel with one
hash over all of fastbp's kernel sources instead: any change to any of them
makes every cached fastbp kernel stale, and Numba recompiles it.  Functions
outside fastbp keep Numba's own locators.
"""

import functools
import hashlib
import pathlib

from numba.core import caching

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
    """SHA-256 (hex) over the names and contents of :func:`kernel_sources`."""
    h = hashlib.sha256()
    for path in kernel_sources():
        h.update(path.relative_to(_PACKAGE).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
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


def install():
    """Put fastbp's locators first in Numba's search order (idempotent)."""
    classes = caching.CacheImpl._locator_classes
    for cls in reversed(LOCATORS):
        if cls not in classes:
            classes.insert(0, cls)
