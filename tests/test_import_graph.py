"""The import graph of the four packages, read from their source with :mod:`ast`.

Layering: ``operators`` knows nothing of ``priors`` or ``pnp``, and ``priors`` never imports
``pnp``, not even inside a function.  Inside ``priors`` the imports form no cycle, neither at
module level (any of its modules can be imported first) nor through imports deferred into
functions (a cycle hidden that way is still a cycle).  ``python tests/test_import_graph.py``
prints the cycles of every package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("operators", "problems", "pnp", "priors")


def project_modules() -> dict[str, Path]:
    """Dotted name -> source file of every module of :data:`PACKAGES` (a package is its ``__init__``)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement run at some point, with whether it sits inside a function.

    Imports under ``if TYPE_CHECKING:`` never run and are left out."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, in_function))
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children: list[ast.AST] = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in children:
            visit(child, in_function)

    visit(tree, False)
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a project module (None outside the project)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolved against the importing module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        # ``from pkg import sub`` imports the submodule when there is one, else a name of pkg
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return {t for t in (_known(n, modules) for n in names) if t is not None and t != module}


def import_graph(*, function_level: bool = True) -> dict[str, set[str]]:
    """Module -> project modules it imports (module-level ones, plus those in functions if asked)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node, in_function in _imports(tree):
            if function_level or not in_function:
                edges |= _targets(node, module, path.name == "__init__.py", modules)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]], package: str) -> list[list[str]]:
    """Strongly connected components (size > 1) of the graph restricted to ``package``, sorted."""
    inside = {m: {t for t in ts if t.split(".")[0] == package} for m, ts in graph.items() if m.split(".")[0] == package}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(inside.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(inside):
        if v not in index:
            strongconnect(v)
    return sorted(found)


def _offending(graph: dict[str, set[str]], source: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if m.split(".")[0] == source
                  for t in ts if t.split(".")[0] in forbidden)


@pytest.fixture(scope="module")
def full_graph() -> dict[str, set[str]]:
    return import_graph(function_level=True)


def test_the_graph_sees_known_edges(full_graph):
    # guards the parser itself: a relative import, a submodule import and a function-level one
    assert "priors.base" in full_graph["priors.certify"]
    assert "problems.metrics" in full_graph["problems.problem"]  # from . import metrics
    assert "priors.certify" in full_graph["pnp.convergence"]  # imported inside a function


def test_priors_never_imports_pnp(full_graph):
    assert _offending(full_graph, "priors", ("pnp",)) == []


def test_operators_imports_neither_priors_nor_pnp(full_graph):
    assert _offending(full_graph, "operators", ("priors", "pnp")) == []


def test_no_import_cycle_inside_priors(full_graph):
    assert cycles(import_graph(function_level=False), "priors") == []
    assert cycles(full_graph, "priors") == []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module imported, directly or not, when ``start`` runs (all its code paths)."""
    seen, todo = set(), [start]
    while todo:
        for t in graph.get(todo.pop(), ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


def test_loading_a_model_never_imports_the_trainer(full_graph):
    assert "priors.training" not in reachable(full_graph, "priors.pretrained")
    assert "priors.training" not in reachable(full_graph, "priors.registry")


def test_cycle_finder_on_a_small_graph():
    graph = {"priors.a": {"priors.b"}, "priors.b": {"priors.a", "priors.c"}, "priors.c": set(), "pnp.x": {"priors.a"}}
    assert cycles(graph, "priors") == [["priors.a", "priors.b"]]
    assert cycles(graph, "pnp") == []


if __name__ == "__main__":
    for level, graph in (("module-level", import_graph(function_level=False)),
                         ("with function-level imports", import_graph(function_level=True))):
        for pkg in PACKAGES:
            found = cycles(graph, pkg)
            print(f"{pkg}: {len(found)} import cycle(s), {level}")
            for component in found:
                print("   ", " <-> ".join(component))
