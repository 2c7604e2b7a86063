"""No import cycles inside the ``fastbp`` package.

The package's import graph is read with ``ast`` from every module's source:
imports at module level and inside functions, classes and ``try`` blocks all
count (an import deferred into a function still makes the two modules depend
on each other).  Only imports of ``fastbp`` modules are edges; optional
third-party packages imported lazily are not part of the graph.

An edge goes to the module named: ``from .a import b`` depends on ``a`` (and
on ``a.b`` when that is a submodule); ``from . import x`` depends on the
submodule ``x``, or on the package's ``__init__`` when ``x`` is a name defined
there.  Merely being inside a package does not make a module depend on the
package's ``__init__``.
"""

import ast
from pathlib import Path

import fastbp

ROOT = Path(fastbp.__file__).resolve().parent
PKG = "fastbp"


def _modules():
    """Map dotted module name -> source path, for every ``.py`` file in the package."""
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _is_package(name, mods):
    return mods.get(name, Path()).name == "__init__.py"


def _resolve(name, mods):
    """The longest prefix of dotted ``name`` that is a package module (or None)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in mods:
            return cand
        parts.pop()
    return None


def _edges(module, path, mods):
    """Package modules ``module`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if _is_package(module, mods) else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PKG or alias.name.startswith(PKG + "."):
                    target = _resolve(alias.name, mods)
                    if target:
                        out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[:len(base) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
                if base != PKG and not base.startswith(PKG + "."):
                    continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in mods:
                    out.add(sub)  # a submodule
                    if node.module and base in mods and not _is_package(base, mods):
                        out.add(base)
                elif base in mods:
                    out.add(base)  # a name defined in that module
                else:
                    target = _resolve(base, mods)
                    if target:
                        out.add(target)
    out.discard(module)
    return out


def import_graph():
    """Map module -> set of package modules it imports."""
    mods = _modules()
    return {m: _edges(m, p, mods) for m, p in mods.items()}


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def _describe(comp, graph):
    members = set(comp)
    lines = [" <-> ".join(comp)]
    for m in comp:
        deps = sorted(graph[m] & members)
        lines.append(f"    {m} imports {', '.join(deps)}")
    return "\n".join(lines)


def test_graph_sees_the_package():
    graph = import_graph()
    assert "fastbp.network" in graph and "fastbp._kernels.train" in graph
    assert "fastbp.spec" in graph["fastbp.network"]
    # imports inside functions count: summary() imports fastbp.summary lazily
    assert "fastbp.summary" in graph["fastbp.network"]


def test_detector_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in fastbp/:\n" + "\n".join(
        _describe(c, graph) for c in cycles)


def test_epoch_loop_does_not_reach_back_up():
    """boundary (network, prepare, distributed) -> loop (training) -> kernels, one way."""
    graph = import_graph()
    above = {"fastbp", "fastbp.network", "fastbp.prepare", "fastbp.distributed", "fastbp.io",
             "fastbp.lbfgs", "fastbp.stream", "fastbp.sklearn", "fastbp.options"}
    assert not graph["fastbp.training"] & above
    assert "fastbp.training" not in graph["fastbp.lbfgs"]
    assert not graph["fastbp.errors"] and not graph["fastbp.metrics"] - {"fastbp.spec"}
    # nor does the loop call the network's boundary methods
    tree = ast.parse((ROOT / "training.py").read_text(encoding="utf-8"))
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not called & {"_xy", "_workspace", "gradient", "evaluate", "predict", "_optimizer"}
