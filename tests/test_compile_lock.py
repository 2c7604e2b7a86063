"""Compile locks (``fastbp/_cache.py``): processes that miss the same kernel signature in
an empty cache at the same moment compile it once; the others wait and load it.

* Two fresh processes released together onto an empty ``NUMBA_CACHE_DIR`` call the
  same kernel: between them it is compiled once (one cache miss) and loaded once (one
  hit), and both get the same result.
* A compile that raises (a typing error) releases its lock: nothing stays held.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from numba.core.errors import TypingError

from fastbp import _cache
from fastbp._kernels.checks import all_finite

pytestmark = pytest.mark.skipif(_cache.fcntl is None, reason="no fcntl: no compile locks")

_CHILD = """
import json, os, sys, time
import numpy as np
from fastbp._kernels.losses import loss_delta
from fastbp.spec import CROSS_ENTROPY, SOFTMAX
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.01)
A = np.full((3, 4), 0.25, np.float32)
D = np.empty_like(A)
total = loss_delta(A, np.zeros_like(A), np.arange(3), CROSS_ENTROPY, SOFTMAX, 1.0, D, True, 0.0)
st = loss_delta.stats
print("RESULT", json.dumps({"misses": sum(st.cache_misses.values()),
                            "hits": sum(st.cache_hits.values()), "total": total}))
"""


def test_two_processes_compile_a_kernel_once(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    time.sleep(3.0)  # both imported and waiting
    go.write_text("")
    res = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        res.append(json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT")][-1][7:]))
    assert sorted(r["misses"] for r in res) == [0, 1], res
    assert sorted(r["hits"] for r in res) == [0, 1], res
    assert res[0]["total"] == res[1]["total"]
    assert any(f.endswith(".lock") for _, _, fs in os.walk(tmp_path / "cache") for f in fs)


def test_a_failed_compile_releases_its_lock():
    with pytest.raises(TypingError):
        all_finite("not an array")
    assert _cache._HELD == {}
    assert all_finite(np.ones(3))
