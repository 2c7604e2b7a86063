"""The folder of generated kernel modules: names, atomic writes, imports.

Numba caches a compiled function by its source file (path, modification
time and size), so each generated kernel is a real ``.py`` file, written
once and never rewritten while it is valid:

* The folder is ``$FASTBP_GEN_DIR`` if set; else, when ``NUMBA_CACHE_DIR``
  is set, its sibling ``<NUMBA_CACHE_DIR>-fastbp-gen``; else
  ``fastbp/generated`` under the user's cache folder (``$XDG_CACHE_HOME``,
  ``~/.cache``, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on
  Windows).
* Inside it, one subfolder per fastbp build:
  ``v<version>-t<template>-<hash>``, the hash covering the sources of
  ``fastbp/_kernels``, ``fastbp/_gen``, ``_config.py`` and ``spec.py``.  An
  upgrade or an edited kernel therefore never meets an old file (nor the
  Numba cache entries compiled from it).
* A file is written to a temporary name in the same folder and renamed into
  place (``os.replace``, atomic), so no reader ever sees a partial file.
  Before importing, the file's text is compared with the text it must hold;
  a file that differs (corrupt, truncated, edited) is replaced atomically,
  never imported.
"""

import hashlib
import importlib.util
import os
import sys
import threading

from .._version import __version__
from .._cache import kernel_source_hash
from .._npz import write_atomic
from .source import TEMPLATE, source

_LOCK = threading.Lock()
_MODULES = {}


def _user_cache():
    if sys.platform == "win32":
        root = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    elif sys.platform == "darwin":
        root = os.path.expanduser("~/Library/Caches")
    else:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "fastbp", "generated")


def base_dir():
    """The folder that holds every build's generated kernels (see the module docstring)."""
    env = os.environ.get("FASTBP_GEN_DIR")
    if env:
        return os.path.abspath(env)
    numba_dir = os.environ.get("NUMBA_CACHE_DIR")
    if numba_dir:
        return os.path.abspath(numba_dir).rstrip(os.sep) + "-fastbp-gen"
    return _user_cache()


def build_hash():
    """Hash of the sources a generated kernel is made from and calls (16 hex digits)."""
    return kernel_source_hash()[:16]


def build_dir():
    """This build's subfolder of :func:`base_dir`."""
    return os.path.join(base_dir(), f"v{__version__}-t{TEMPLATE}-{build_hash()}")


def key_name(key):
    """File stem of a kernel key (a hash of its ``repr``)."""
    return "k" + hashlib.sha256(repr(key).encode()).hexdigest()[:20]


def _read(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def ensure_file(key):
    """Path of the module for ``key``, written if missing or not exactly the expected text."""
    text = source(key)
    folder = build_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, key_name(key) + ".py")
    old = _read(path)
    if old != text:  # missing, partial or corrupt: (re)write it atomically
        write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


def load(key):
    """The imported generated module for ``key`` (written and imported once per process)."""
    mod = _MODULES.get(key)
    if mod is not None:
        return mod
    with _LOCK:
        mod = _MODULES.get(key)
        if mod is None:
            path = ensure_file(key)
            name = f"fastbp_gen_{build_hash()}_{key_name(key)}"
            spec = importlib.util.spec_from_file_location(name, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[name]
                raise
            _MODULES[key] = mod
    return mod
