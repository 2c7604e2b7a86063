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


def test_layout_and_hyper_read_by_name_outside_kernels(tmp_path):
    source = '''
        from .spec import L_IN, L_OUT
        from .optim import HYPER_SLOTS

        def ok(net, opt, layout):
            opt.hyper[HYPER_SLOTS["lr"]] = 0.1
            return layout[0, L_IN], net._layout[-1, L_OUT], layout[:, L_OUT].sum(), layout[2]

        def bad(net, opt, hyper):
            width = net._layout[:, 1].sum()
            n_in = net.model.layout[0, 0]
            last = layout[-1, -1]
            for n_in, n_out, off, *_ in net._layout:
                pass
            rows = [a for a, b, *_ in layout]
            opt.hyper[2] = 0.5
            hyper[:, 0] = 1.0
    '''
    errors = _violations(tmp_path, source)
    assert sum("layout column read by number" in e for e in errors) == 3
    assert sum("unpacked by position" in e for e in errors) == 2
    assert sum("hyper-parameter slot indexed by number" in e for e in errors) == 2
    assert len(errors) == 7
    kernels = tmp_path / "pkg" / "_kernels"
    kernels.mkdir()
    (kernels / "k.py").write_text(textwrap.dedent(source))  # kernels index by number freely
    assert len(check_conventions.check_package(tmp_path / "pkg")) == 7
