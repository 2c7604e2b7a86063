"""Check that an installed fastbp wheel loads its shipped kernels instead of compiling.

Run from outside the source tree, with an empty ``NUMBA_CACHE_DIR``, after
installing a wheel built by ``tools/build_backend.py`` (``.ci/run`` does)::

    python tools/check_wheel_kernels.py

It trains, predicts, evaluates and takes gradients in every ``fastbp.warmup``
family (what the wheel build compiled) and exits with status 1, naming them,
if any of the package's kernels was compiled: a shipped entry that was
missing, stale or not found.  (Generated kernels, ``fastbp_gen_*`` modules
written per architecture into the user's cache folder, are not shipped.)
"""

import os
import sys

from numba.core import event


class _Compiled(event.Listener):
    """Names of the fastbp functions compiled in this process."""

    def __init__(self):
        self.names = []

    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func
        if f.__module__ == "fastbp" or f.__module__.startswith("fastbp."):
            self.names.append(f"{f.__module__}.{f.__qualname__}")

    def on_end(self, ev):
        pass


def main():
    """Exit status 0 when every family loaded without compiling."""
    import fastbp
    from fastbp import _cache
    from fastbp.warmup import FAMILIES, warm
    shipped = _cache.precompiled_root()
    print(f"fastbp {fastbp.__file__}; shipped kernels: {shipped}")
    if not any(shipped.rglob("*.nbc")):
        print("FAILED: the installed package ships no compiled kernels")
        return 1
    compiled = _Compiled()
    event.register("numba:compile", compiled)
    for family in FAMILIES:
        warm(*family)
    if compiled.names:
        print(f"FAILED: {len(compiled.names)} fastbp kernels compiled instead of loaded:")
        for name in sorted(set(compiled.names)):
            print("  " + name)
        return 1
    print(f"ok: {len(FAMILIES)} kernel families loaded from the wheel, none compiled "
          f"(NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
