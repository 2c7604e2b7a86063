"""Kernels compiled at build time and shipped in the package (``fastbp/_cache.py``,
``tools/build_backend.py``).

* A kernel compiled with ``FASTBP_PRECOMPILE_INTO`` set lands there, laid out as the
  package; a fresh process with an empty ``NUMBA_CACHE_DIR`` then loads it from there
  (``FASTBP_PRECOMPILED_DIR``) instead of compiling, with the same result.
* After any kernel source changes, the shipped entries are stale and not used: the
  kernel is compiled with the new source.
* The build backend adds the runtime dependencies only to wheel builds that compile,
  and the switch that turns the compile off works from the environment and from
  pip's ``-C`` settings.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastbp

ROOT = pathlib.Path(__file__).resolve().parent.parent

_REAL = """
import json, sys
import numpy as np
from fastbp._kernels.losses import loss_delta
from fastbp.spec import CROSS_ENTROPY, SOFTMAX
A = np.full((3, 4), 0.25, np.float32)
D = np.empty_like(A)
total = loss_delta(A, np.zeros_like(A), np.arange(3), CROSS_ENTROPY, SOFTMAX, 1.0, D, True, 0.0)
st = loss_delta.stats
print("RESULT", json.dumps({"misses": sum(st.cache_misses.values()),
                            "hits": sum(st.cache_hits.values()), "total": float(total),
                            "delta": D.ravel().tolist()}))
"""


def _run(code, env, cwd):
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][-1][7:])


def _env(tmp_path, name, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTBP_PRECOMPILE_INTO", "FASTBP_PRECOMPILED_DIR")}
    env.update(NUMBA_CACHE_DIR=str(tmp_path / name), **extra)
    return env


def test_a_shipped_kernel_loads_into_an_empty_cache(tmp_path):
    shipped = tmp_path / "shipped"
    built = _run(_REAL, _env(tmp_path, "build-cache", FASTBP_PRECOMPILE_INTO=str(shipped)),
                 tmp_path)
    assert built["misses"] == 1 and built["hits"] == 0
    entries = {p.relative_to(shipped).parts[0] for p in shipped.rglob("*.nbc")}
    assert entries == {"_kernels"}  # laid out as the package's folders
    assert not list((tmp_path / "build-cache").rglob("*.nbc"))  # fastbp's went to the build dir
    loaded = _run(_REAL, _env(tmp_path, "user-cache", FASTBP_PRECOMPILED_DIR=str(shipped)),
                  tmp_path)
    assert loaded["misses"] == 0 and loaded["hits"] == 1
    assert loaded["total"] == built["total"] and loaded["delta"] == built["delta"]
    # without the shipped folder the same fresh process compiles
    empty = tmp_path / "nothing-shipped"
    empty.mkdir()
    again = _run(_REAL, _env(tmp_path, "user-cache-2", FASTBP_PRECOMPILED_DIR=str(empty)),
                 tmp_path)
    assert again["misses"] == 1 and again["hits"] == 0
    assert again["delta"] == built["delta"]


def test_shipped_kernels_are_not_used_after_a_source_change(tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(os.path.dirname(fastbp.__file__), pkg / "fastbp",
                    ignore=shutil.ignore_patterns("__pycache__", "_precompiled"))
    kern = pkg / "fastbp" / "_kernels"
    (kern / "zz_value.py").write_text(textwrap.dedent('''
        """Test kernel."""
        from numba import njit
        from .._config import JIT


        @njit(**JIT)
        def value():
            """A constant."""
            return {}
    '''))
    code = ("import json; from fastbp._kernels.zz_value import value; v = value(); "
            "st = value.stats; print('RESULT', json.dumps([v, sum(st.cache_misses.values()), "
            "sum(st.cache_hits.values())]))")
    template = (kern / "zz_value.py").read_text()
    shipped = tmp_path / "shipped"

    def run(v, name, **extra):
        (kern / "zz_value.py").write_text(template.format(v))
        return _run(code, _env(tmp_path, name, PYTHONPATH=str(pkg), **extra), tmp_path)

    assert run(1, "b", FASTBP_PRECOMPILE_INTO=str(shipped)) == [1, 1, 0]  # built
    assert run(1, "u1", FASTBP_PRECOMPILED_DIR=str(shipped)) == [1, 0, 1]  # loaded
    assert run(2, "u2", FASTBP_PRECOMPILED_DIR=str(shipped)) == [2, 1, 0]  # stale: compiled


@pytest.fixture
def backend(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    monkeypatch.delenv("FASTBP_PRECOMPILE", raising=False)
    import build_backend
    return build_backend


def test_build_backend_compiles_only_wheels_and_can_be_switched_off(backend, monkeypatch):
    # setuptools' own hooks stubbed: the installed setuptools may predate the build's (>= 77)
    monkeypatch.setattr(backend._setuptools, "get_requires_for_build_wheel",
                        lambda config_settings=None: ["wheel-tools"])
    runtime = backend.runtime_requirements()
    assert any(r.startswith("numba") for r in runtime)
    assert backend.get_requires_for_build_wheel() == ["wheel-tools"] + runtime
    assert backend.wanted() and backend.wanted({"precompile": "1"})
    for off in ("0", "false", "no", "off"):
        assert not backend.wanted({"precompile": off})
        monkeypatch.setenv("FASTBP_PRECOMPILE", off)
        assert not backend.wanted()
        assert backend.get_requires_for_build_wheel() == ["wheel-tools"]
    assert backend.wanted({"precompile": "1"})  # pip's -C wins over the environment


def test_editable_builds_need_no_runtime_requirements(backend):
    pytest.importorskip("setuptools", minversion="77")  # what pyproject's build asks for
    assert not any(r.startswith("numba") for r in backend.get_requires_for_build_editable())
