"""The static convention checks CI runs (tools/check_conventions.py)."""

import importlib.util
import pathlib
import textwrap

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_conventions", _ROOT / "tools" / "check_conventions.py")
check_conventions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_conventions)


def test_package_follows_conventions():
    assert check_conventions.check_package(_ROOT / "fastbp") == []


def _violations(tmp_path, source):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "_config.py").write_text("JIT = dict(cache=True, fastmath={'nsz'})\n")
    (pkg / "mod.py").write_text(textwrap.dedent(source))
    return check_conventions.check_package(pkg)


def test_config_module_may_set_options(tmp_path):
    assert _violations(tmp_path, '''
        from numba import njit
        from ._config import JIT

        @njit(**JIT)
        def f(x):
            """Double x."""
            return 2 * x
    ''') == []


def test_planted_violations_are_each_reported(tmp_path):
    errors = _violations(tmp_path, '''
        from numba import njit

        @njit(cache=True, fastmath=True)
        def no_doc(x):
            return x

        def builder():
            return njit(lambda x: x)
    ''')
    text = "\n".join(errors)
    assert "njit(cache=...)" in text
    assert "fastmath= outside" in text
    assert "no_doc has no one-line docstring" in text
    assert "inside the body of builder" in text
    # cache=, fastmath= (as an option), fastmath= (as a keyword), the docstring, and the inner
    # njit(lambda) twice (inside a body; a positional argument)
    assert len(errors) == 6
