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
import tempfile
import threading

from .. import __version__
from .source import TEMPLATE, source

_LOCK = threading.Lock()
_MODULES = {}
_BUILD = None


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
    global _BUILD
    if _BUILD is None:
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        paths = [os.path.join(pkg, "_config.py"), os.path.join(pkg, "spec.py")]
        for sub in ("_kernels", "_gen"):
            folder = os.path.join(pkg, sub)
            paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                      if f.endswith(".py")]
        for p in paths:
            h.update(os.path.relpath(p, pkg).encode())
            with open(p, "rb") as f:
                h.update(f.read())
        _BUILD = h.hexdigest()[:16]
    return _BUILD


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


def _write_atomic(path, text, replace):
    """Write ``text`` to a temporary file and move it to ``path`` in one step:
    ``os.link`` (never over an existing file: a concurrent writer of the same
    text wins and its file stays untouched) or, with ``replace``, ``os.replace``."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".py", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system
            os.replace(tmp, path)
            return
    except BaseException:
        _unlink(tmp)
        raise
    _unlink(tmp)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def ensure_file(key):
    """Path of the module for ``key``, written if missing or not exactly the expected text."""
    text = source(key)
    folder = build_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, key_name(key) + ".py")
    old = _read(path)
    if old != text:
        _write_atomic(path, text, replace=old is not None or os.path.lexists(path))
        if _read(path) != text:  # a concurrent writer won with other text: replace it
            _write_atomic(path, text, replace=True)
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
