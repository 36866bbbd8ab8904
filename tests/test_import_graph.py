"""No import circles inside the package.

The graph is read from the source with :mod:`ast`, so nothing is imported. Its edges are the
``import`` / ``from ... import`` statements that run when a module is imported: those at module
level, also inside module-level ``if`` / ``try`` / ``with`` blocks and class bodies, but not inside
functions (imports there run later) and not under ``if TYPE_CHECKING:`` (they never run).

``from P import X`` is an edge to the submodule ``P.X`` when ``P/X.py`` (or ``P/X/``) exists, otherwise to
``P`` itself, i.e. ``P/__init__.py``: so a submodule that imports a name from its own package's
``__init__`` (``from .. import __version__``) depends on that ``__init__``, which is a real circle
when the ``__init__`` imports the submodule at module level.

A second graph, :func:`import_graph` with ``in_functions=True``, adds the imports made inside functions
and methods (they run when the function is first called): a circle through one of those is still a
circle, only a later one, so there should be none either.

Importing ``P.X`` first runs ``P/__init__.py``, so an import of ``P.X`` is also an edge to each package
above it, except the importer's own packages: those have always started importing before the
importer runs (a package ``__init__`` importing its submodules is the usual, harmless pattern).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "vqametric"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(body: list[ast.stmt], in_functions: bool = False):
    """The import statements of ``body`` that run when the module is imported (``in_functions``:
    also those inside functions, which run when the function is called)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if in_functions:
                yield from _import_time_statements(node.body, in_functions)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body, in_functions)
            yield from _import_time_statements(node.orelse, in_functions)
        elif isinstance(node, ast.ClassDef):
            yield from _import_time_statements(node.body, in_functions)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block, in_functions)
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
            yield from _import_time_statements(node.body, in_functions)
            yield from _import_time_statements(getattr(node, "orelse", []), in_functions)


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` statement names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts.pop()                                  # a module's own package is level 1
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph(in_functions: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at import time (``in_functions``: or later, in a function)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_time_statements(tree.body, in_functions):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _base(module, is_package, node)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                graph[module].update(_with_packages_above(module, target, modules))
            graph[module].discard(module)
    return graph


def _with_packages_above(importer: str, target: str, modules: dict[str, Path]) -> set[str]:
    """``target`` and the packages above it that importing it runs, if they are the package's modules."""
    own = {importer.rsplit(".", i)[0] for i in range(importer.count(".") + 1)}
    parts = target.split(".")
    above = {".".join(parts[:i]) for i in range(1, len(parts))} - own
    return {m for m in above | {target} if m in modules}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle ``[a, b, ..., a]`` per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:                       # Tarjan; the package is small enough to recurse
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for comp in components:                          # a shortest circle through the component's first module
        start = min(comp)
        paths = {start: [start]}
        frontier = [start]
        found = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & comp):
                    if w == start:
                        found = paths[v] + [start]
                        break
                    if w not in paths:
                        paths[w] = paths[v] + [w]
                        nxt.append(w)
                if found:
                    break
            frontier = nxt
        cycles.append(found)
    return cycles


def test_graph_covers_the_package():
    graph = import_graph()
    assert "vqametric.registry" in graph and "vqametric.backends.head" in graph
    assert "vqametric.errors" in graph["vqametric.registry"]          # a relative import resolved
    assert "vqametric.backends.head" in graph["vqametric.backends"]   # a package __init__ importing a submodule


def test_cycle_finder_reports_the_modules():
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": {"p"}}
    assert find_cycles(graph) == [["p", "p.a", "p.b", "p"]]
    assert find_cycles({"p": {"p.a"}, "p.a": set()}) == []


def test_relative_and_package_imports_are_resolved():
    tree = ast.parse("from .. import __version__\nfrom . import head\nfrom ..errors import X\n")
    nodes = list(_import_time_statements(tree.body))
    assert _base("vqametric.backends.head", False, nodes[0]) == "vqametric"
    assert _base("vqametric.backends", True, nodes[1]) == "vqametric.backends"
    assert _base("vqametric.backends.lmm", True, nodes[2]) == "vqametric.backends.errors"


def test_importing_a_submodule_runs_the_packages_above_it():
    modules = dict.fromkeys(["p", "p.a", "p.b", "q", "q.c"], Path())
    assert _with_packages_above("p.a", "p.b", modules) == {"p.b"}          # p is already importing
    assert _with_packages_above("p.a", "q.c", modules) == {"q", "q.c"}     # q/__init__ runs first
    assert _with_packages_above("p.a", "p", modules) == {"p"}              # from . import name: an explicit edge


def test_imports_in_functions_and_type_checking_blocks_are_not_edges():
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
           "def f():\n    import c\nclass K:\n    import d\ntry:\n    import e\nexcept ImportError:\n    import g\n")
    names = [a.name for n in _import_time_statements(ast.parse(src).body) for a in n.names]
    assert names == ["TYPE_CHECKING", "b", "d", "e", "g"]


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles in vqametric/ (each line: a -> b means a imports b at module level):\n" + \
        "\n".join(" -> ".join(c) for c in cycles)


def test_imports_in_functions_are_edges_of_the_full_graph():
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
           "def f():\n    import c\n    if TYPE_CHECKING:\n        import h\n"
           "class K:\n    def m(self):\n        with x:\n            import d\n")
    names = [a.name for n in _import_time_statements(ast.parse(src).body, in_functions=True) for a in n.names]
    assert names == ["TYPE_CHECKING", "c", "d"]


#: circles through imports inside functions that are accepted, each with its reason: none
ALLOWED_CYCLES: list[list[str]] = []


def test_no_import_cycles_through_imports_in_functions():
    """No circle even counting the imports inside functions: modules depend on each other one way."""
    cycles = [c for c in find_cycles(import_graph(in_functions=True)) if c not in ALLOWED_CYCLES]
    assert not cycles, "import circles in vqametric/ counting imports inside functions (a -> b: a imports b):\n" + \
        "\n".join(" -> ".join(c) for c in cycles)
