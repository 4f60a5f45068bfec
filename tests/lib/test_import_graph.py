"""datadiet_hub's import graph: module-level imports only, no cycle, never the package ``__init__`` from inside."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "datadiet_hub"


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def module_imports(path: Path) -> tuple[set[str], list[str]]:
    """(sibling modules imported at module level, imports found inside functions)."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                top.add(node.module.split(".")[0])
            else:
                top.update(alias.name for alias in node.names)
    nested = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    nested.append(f"{path.name}:{node.lineno} from .{node.module}")
    return top, nested


def test_no_cycle_and_no_function_level_sibling_imports():
    graph, nested = {}, []
    for path in sorted(PACKAGE.glob("*.py")):
        top, inner = module_imports(path)
        graph[path.stem] = top
        nested += inner
    assert nested == [], "import siblings at module level (a cycle is the only excuse, and there is none)"
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle in datadiet_hub: {err.args[1]}") from None
    assert order
    importers_of_init = [m for m, deps in graph.items() if m != "__init__" and "__init__" in deps]
    assert importers_of_init == []
    assert all("__init__" not in deps for deps in graph.values())
