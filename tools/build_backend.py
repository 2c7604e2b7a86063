"""fastbp's build backend: setuptools, plus the kernels compiled into the wheel.

A wheel build (``pip install .``, ``python -m build``) runs ``fastbp.warmup``
on the source tree with ``FASTBP_PRECOMPILE_INTO`` set, so that every kernel
family it covers is compiled once, here, into ``fastbp/_precompiled``, and
ships in the wheel as package data.  The installed package loads them on its
first run instead of compiling (``fastbp/_cache.py``: only where the stamp,
Numba's version, the CPU and the Python version match; anything else compiles
on first use as before).  The build environment therefore also installs the
runtime dependencies (``get_requires_for_build_wheel``).

Editable installs and sdists compile nothing.  Skip the compile with
``FASTBP_PRECOMPILE=0`` in the environment or ``pip install -C precompile=0 .``;
a failed compile warns and builds the wheel without the kernels.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401  (the hooks passed through unchanged)
    build_editable, build_sdist, get_requires_for_build_editable, get_requires_for_build_sdist,
    prepare_metadata_for_build_editable, prepare_metadata_for_build_wheel)

__all__ = ["build_editable", "build_sdist", "build_wheel", "get_requires_for_build_editable",
           "get_requires_for_build_sdist", "get_requires_for_build_wheel",
           "prepare_metadata_for_build_editable", "prepare_metadata_for_build_wheel"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fastbp" / "_precompiled"
_OFF = ("0", "false", "no", "off")


def wanted(config_settings=None):
    """Whether this wheel build compiles the kernels (see the module docstring)."""
    setting = (config_settings or {}).get("precompile")
    value = setting if setting is not None else os.environ.get("FASTBP_PRECOMPILE", "1")
    return str(value).strip().lower() not in _OFF


def runtime_requirements():
    """The project's runtime dependencies, from pyproject.toml."""
    from setuptools.config.pyprojecttoml import load_file
    return list(load_file(ROOT / "pyproject.toml")["project"]["dependencies"])


def get_requires_for_build_wheel(config_settings=None):
    """setuptools' requirements, and the runtime ones when the kernels are compiled."""
    extra = runtime_requirements() if wanted(config_settings) else []
    return _setuptools.get_requires_for_build_wheel(config_settings) + extra


def precompile(out=OUT):
    """Compile every ``fastbp.warmup`` kernel family into ``out`` (replaced); True if done."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, FASTBP_PRECOMPILE_INTO=str(out),
               NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="fastbp-build-"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("FASTBP_PRECOMPILED_DIR", None)
    print("fastbp: compiling the kernels into the wheel (FASTBP_PRECOMPILE=0 skips)...",
          file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, "-m", "fastbp.warmup"], env=env, cwd=ROOT,
                          stdout=sys.stderr).returncode == 0
    shutil.rmtree(env["NUMBA_CACHE_DIR"], ignore_errors=True)
    for lock in out.rglob("*.lock"):
        lock.unlink()
    if not done:
        shutil.rmtree(out, ignore_errors=True)
        print("fastbp: WARNING: compiling the kernels failed; the wheel ships without them "
              "and compiles them on first use", file=sys.stderr, flush=True)
    return done


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """setuptools' wheel, with the compiled kernels in it unless switched off."""
    if wanted(config_settings):
        precompile()
    else:
        shutil.rmtree(OUT, ignore_errors=True)
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
