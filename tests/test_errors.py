"""Exception classes live in fastbp.errors and stay importable where they were first defined."""

import pickle

import fastbp
import fastbp.io
import fastbp.network
from fastbp import errors


def test_one_class_each_reexported():
    assert fastbp.DivergenceError is errors.DivergenceError is fastbp.network.DivergenceError
    assert fastbp.io.FormatError is errors.FormatError
    assert issubclass(errors.DivergenceError, FloatingPointError)
    assert issubclass(errors.FormatError, ValueError)


def test_pickles_naming_the_old_module_still_load():
    for cls, old in ((errors.DivergenceError, b"fastbp.network"), (errors.FormatError, b"fastbp.io")):
        data = pickle.dumps(cls("boom"), protocol=0)
        assert b"fastbp.errors" in data
        back = pickle.loads(data.replace(b"fastbp.errors", old))
        assert type(back) is cls and str(back) == "boom"


def test_errors_module_imports_nothing_from_fastbp():
    import ast
    import pathlib
    tree = ast.parse(pathlib.Path(errors.__file__).read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
