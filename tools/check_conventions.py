"""Static checks CI runs before the tests (cheap, no imports of fastbp).

* Numba options are set only in ``fastbp/_config.py``: every ``njit``/``jit``
  decorator or call elsewhere passes only ``**NAME`` option sets, ``@overload``
  passes ``jit_options=NAME``, and no ``fastmath=`` appears outside it.
* No ``njit(...)`` inside a function body (it would defeat ``cache=True``).
* Every ``@njit`` function has a docstring whose first line says what it does.
* Outside ``fastbp/_kernels``, the layout table is read by named column only
  (``layout[l, L_OUT]``, ``spec.layers(layout)``): no numeric column index on
  a name ending in ``layout`` and no positional unpacking of its rows; the
  optimizer hyper-parameter array by slot name (``optim.HYPER_SLOTS``, the
  ``H_*`` constants): no numeric index on a name ending in ``hyper``.

Usage: ``python tools/check_conventions.py [package_dir]``; exit status 1 and
one line per violation when something is wrong.
"""

from __future__ import annotations

import ast
import pathlib
import sys

JIT_NAMES = {"njit", "jit"}


def _name(node):
    """The bare name of a call target or decorator (``numba.njit`` -> ``njit``)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _check_call(call, where, errors):
    """A jit call may only forward option sets from _config (``**JIT``)."""
    name = _name(call)
    if name in JIT_NAMES:
        for kw in call.keywords:
            if kw.arg is not None:
                errors.append(f"{where}: {name}({kw.arg}=...) sets a Numba option; "
                              "use an option set from fastbp/_config.py (**JIT)")
        if call.args:
            errors.append(f"{where}: {name}(...) with a positional signature; "
                          "signatures are inferred (keeps one compiled entry per type)")
    elif name == "overload":
        for kw in call.keywords:
            if kw.arg == "jit_options" and not isinstance(kw.value, ast.Name):
                errors.append(f"{where}: overload(jit_options=...) must name an option set "
                              "from fastbp/_config.py")


def _is_layout(node, suffix="layout"):
    """Whether ``node`` is a name or attribute ending in ``suffix`` (a layout table)."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    return isinstance(name, str) and name.lower().endswith(suffix)


def _is_number(node):
    """An integer literal, possibly negated."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, int)


def _check_layout(node, rel, errors):
    """The layout table is read by named column (``L_IN`` ...), never by number."""
    where = f"{rel}:{getattr(node, 'lineno', None) or getattr(node.iter, 'lineno', '?')}" \
        if isinstance(node, (ast.Subscript, ast.For, ast.comprehension)) else rel
    if isinstance(node, ast.Subscript) and _is_layout(node.value):
        index = node.slice
        if isinstance(index, ast.Tuple) and len(index.elts) >= 2 and _is_number(index.elts[1]):
            errors.append(f"{where}: layout column read by number; use the named columns "
                          "L_IN, L_OUT, L_W, L_ACT, L_BN, L_STAT from fastbp/spec.py")
    if isinstance(node, ast.Subscript) and _is_layout(node.value, "hyper"):
        index = node.slice
        if _is_number(index.elts[-1] if isinstance(index, ast.Tuple) and index.elts else index):
            errors.append(f"{where}: hyper-parameter slot indexed by number; use "
                          "optim.HYPER_SLOTS[name] or the optimizer's attribute")
    if isinstance(node, (ast.For, ast.comprehension)) and _is_layout(node.iter) \
            and isinstance(node.target, (ast.Tuple, ast.List)):
        errors.append(f"{where}: layout rows unpacked by position; use spec.layers(layout) "
                      "or the named columns from fastbp/spec.py")


def check_file(path, rel, kernels=False):
    """Return the convention violations of one source file (``kernels``: under ``_kernels/``)."""
    errors = []
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not kernels:
            _check_layout(node, rel, errors)
        if isinstance(node, ast.keyword) and node.arg == "fastmath":
            errors.append(f"{rel}:{node.value.lineno}: fastmath= outside fastbp/_config.py")
        if isinstance(node, ast.Call):
            _check_call(node, f"{rel}:{node.lineno}", errors)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            jitted = any(_name(d) in JIT_NAMES for d in node.decorator_list)
            if jitted:
                doc = ast.get_docstring(node)
                if not doc or not doc.strip().splitlines()[0].strip():
                    errors.append(f"{rel}:{node.lineno}: @njit function {node.name} has no "
                                  "one-line docstring")
            inner_nodes = (n for stmt in node.body for n in ast.walk(stmt))
            for inner in inner_nodes:
                if isinstance(inner, ast.Call) and _name(inner) in JIT_NAMES:
                    errors.append(f"{rel}:{inner.lineno}: {_name(inner)}(...) inside the body of "
                                  f"{node.name}; define kernels at module level")
    return errors


def check_package(root):
    """Return every violation under the package directory ``root``."""
    root = pathlib.Path(root)
    errors = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel == f"{root.name}/_config.py":
            continue
        errors.extend(check_file(path, rel, kernels=rel.startswith(f"{root.name}/_kernels/")))
    return errors


def main(argv):
    """Run the checks and print each violation."""
    root = argv[1] if len(argv) > 1 else pathlib.Path(__file__).resolve().parents[1] / "fastbp"
    errors = check_package(root)
    for e in errors:
        print(e)
    print(f"conventions: {len(errors)} violation(s) in {root}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
