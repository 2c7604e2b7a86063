"""fastbp benchmarks: the asv suite (``bench_*.py``) and the peer comparisons.

asv imports this package before any benchmark module, so this is where each
benchmarked commit gets its own Numba cache.  In an environment that asv
built (``asv run`` / ``asv continuous`` / ``asv run A..B``), one virtualenv
serves every commit in turn: each commit's wheel is installed into the same
site-packages path, so a cache keyed on that path (the package's
``__pycache__``, or a user's ``NUMBA_CACHE_DIR``) would be shared between
commits.  Numba checks a source file's timestamp and size, not the code it
calls, so a kernel cached for one commit could run under another.  Here the
cache goes to ``<env>/numba-cache/<commit>`` instead: compiled once per
commit (in the first benchmark's ``setup``), never shared.  With
``--python=same`` (``ASV_ENV_TYPE`` "existing") nothing changes.
"""

import os

if (os.environ.get("ASV_ENV_TYPE", "existing") != "existing"
        and os.environ.get("ASV_ENV_DIR") and os.environ.get("ASV_COMMIT")):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(
        os.environ["ASV_ENV_DIR"], "numba-cache", os.environ["ASV_COMMIT"][:12])
