"""The on-disk kernel cache is invalidated when any kernel source changes."""

import os
import shutil
import subprocess
import sys
import textwrap

import fastbp
from fastbp import _cache
from fastbp._kernels import activations, train


def test_fastbp_kernels_use_the_package_stamp():
    for kernel in (train.batch_epoch, activations.bias_act):
        kernel.enable_caching()
        assert isinstance(kernel._cache._impl.locator, _cache.LOCATORS)
        assert kernel._cache._impl.locator.get_source_stamp() == _cache.kernel_source_hash()


def test_kernel_sources_cover_the_kernels_and_constants():
    names = {p.name for p in _cache.kernel_sources()}
    assert {"_config.py", "spec.py", "train.py", "activations.py", "jit.py"} <= names


def test_editing_a_callee_in_another_file_recompiles_the_caller(tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(os.path.dirname(fastbp.__file__), pkg / "fastbp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    kern = pkg / "fastbp" / "_kernels"
    callee = kern / "zz_callee.py"
    (kern / "zz_caller.py").write_text(textwrap.dedent('''
        """Test caller."""
        from numba import njit
        from .._config import JIT
        from .zz_callee import value


        @njit(**JIT)
        def caller():
            """Calls the callee."""
            return value()
    '''))
    template = textwrap.dedent('''
        """Test callee."""
        from numba import njit
        from .._config import JIT_INLINE


        @njit(**JIT_INLINE)
        def value():
            """A constant."""
            return {}
    ''')
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(pkg))
    run = [sys.executable, "-c",
           "from fastbp._kernels.zz_caller import caller; print(caller(), sum(caller.stats.cache_hits.values()))"]
    outs = []
    for v in (1, 1, 2):
        callee.write_text(template.format(v))
        outs.append(subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True,
                                   check=True).stdout.split())
    assert outs == [["1", "0"], ["1", "1"], ["2", "0"]]  # compiled, loaded, recompiled
