"""Check the import graph of the project's packages: no cycle between modules, no upward import.

The layers, lowest first: ``datadiet_hub`` (the library, no torch) < ``datadiet_hub.scoring`` (produce scores) <
``datadiet_hub.downstream`` (use pruned data) < ``experiments``. A module may import its own layer and the layers below it. The one allowed way
up is ``datadiet_hub/_torch_verbs.py``, the CLI's door into the torch verbs, which names its targets by string
(``importlib.import_module``). ``experiments`` may import only public names (no ``_private`` module or name).

Every ``import``/``from ... import`` counts, at module level or inside a function (a function-level import still
closes a cycle when it runs), as do ``importlib.import_module("literal")`` calls and the modules the door names in
strings (``"datadiet_hub.scoring.cli:main"``). Imports under ``if TYPE_CHECKING:`` never run, so they close no cycle, but an upward
one is still an upward dependency. Prints the package-level graph and each problem; exits 1 if there is any.

    python scripts/check_imports.py            # check the repository this script lives in
    python scripts/check_imports.py --root DIR
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("datadiet_hub", "datadiet_hub.scoring", "datadiet_hub.downstream", "experiments")
ROOTS = ("datadiet_hub", "experiments")  # the top-level folders holding the layers
DOOR = "datadiet_hub._torch_verbs"
PUBLIC_ONLY = ("experiments",)


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported module
    line: int
    dynamic: bool = False  # importlib.import_module("...") or a module named by the door, not an import statement
    type_only: bool = False  # under ``if TYPE_CHECKING:``
    names: tuple[str, ...] = ()  # the names taken by ``from target import names``


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path) -> dict[str, Path]:
    """Every module of the checked packages, by dotted name."""
    modules = {}
    for package in ROOTS:
        folder = root / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                modules[module_name(root, path)] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(
    node: ast.AST, type_only: bool = False
) -> Iterator[tuple[int, str | None, int, tuple[str, ...], bool, bool]]:
    """(line, module, level, names, dynamic, type_only) for every import under ``node``; ``type_only`` marks those
    inside ``if TYPE_CHECKING:`` (never executed, so they close no cycle, but they still count as a dependency)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield node.lineno, alias.name, 0, (), False, type_only
    elif isinstance(node, ast.ImportFrom):
        yield node.lineno, node.module, node.level, tuple(a.name for a in node.names), False, type_only
    elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            yield node.lineno, node.args[0].value, 0, (), True, type_only
    if _is_type_checking(node):
        assert isinstance(node, ast.If)
        for child in node.body:
            yield from _imports(child, True)
        for child in node.orelse:
            yield from _imports(child, type_only)
        return
    for child in ast.iter_child_nodes(node):
        yield from _imports(child, type_only)


def _door_targets(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """The modules the door names in strings (``"datadiet_hub.scoring.cli:main"``): its edges, imported on use."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            target = node.value.partition(":")[0]
            if package_of(target) in LAYERS[1:] and all(part.isidentifier() for part in target.split(".")):
                yield node.lineno, target


def build_graph(root: Path) -> tuple[dict[str, Path], list[Edge]]:
    """The modules of the checked packages and every import edge between two of them."""
    modules = find_modules(root)
    found: dict[tuple[str, str, int, bool, bool], tuple[str, ...]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found_here = list(_imports(tree))
        if name == DOOR:
            found_here += [(line, target, 0, (), True, False) for line, target in _door_targets(tree)]
        for line, target, level, names, dynamic, type_only in found_here:
            absolute = _resolve_relative(name, is_package, level, target) if level else target
            if absolute is None:
                continue
            taken: list[tuple[str, tuple[str, ...]]] = []
            if names:
                for imported in names:  # ``from pkg import submodule`` depends on the submodule itself
                    sub = f"{absolute}.{imported}"
                    taken.append((sub, ()) if sub in modules else (absolute, (imported,)))
            else:
                taken.append((absolute, ()))
            for target_module, taken_names in taken:
                if target_module not in modules:
                    continue  # outside the checked packages (torch, datasets, ...)
                if target_module != name:  # ``from pkg import a, b``: one edge to pkg taking a and b
                    key = (name, target_module, line, dynamic, type_only)
                    found[key] = found.get(key, ()) + taken_names
    return modules, [Edge(*key, names=names) for key, names in found.items()]


def package_of(module: str) -> str:
    """The layer a module belongs to: the longest layer name that is the module or a package above it."""
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=module.split(".")[0])


def layer(module: str) -> int:
    return LAYERS.index(package_of(module))


def upward_imports(edges: Iterable[Edge]) -> list[Edge]:
    """Imports of a higher layer, except through the door."""
    return [e for e in edges if layer(e.target) > layer(e.source) and not (e.source == DOOR and e.dynamic)]


def private_imports(edges: Iterable[Edge]) -> list[Edge]:
    """Imports by ``experiments`` of another package's ``_private`` module or name."""
    found = []
    for e in edges:
        if package_of(e.source) not in PUBLIC_ONLY or package_of(e.target) in PUBLIC_ONLY:
            continue
        if _is_private_module(e.target) or any(n.startswith("_") for n in e.names):
            found.append(e)
    return found


def _is_private_module(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def cycles(modules: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        if not e.type_only:  # never executed: closes no import cycle
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative, so deep graphs do not hit the recursion limit
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return sorted(found)


def package_graph(edges: Iterable[Edge]) -> dict[tuple[str, str], int]:
    """Number of module imports between each pair of different packages."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for e in edges:
        a, b = package_of(e.source), package_of(e.target)
        if a != b:
            counts[(a, b)] += 1
    return dict(sorted(counts.items(), key=lambda item: (LAYERS.index(item[0][0]), LAYERS.index(item[0][1]))))


def check(root: Path, out=sys.stdout) -> int:
    """Print the package graph and every problem; the number of problems."""
    modules, edges = build_graph(root)
    print(f"{len(modules)} modules, {len(edges)} imports between them. Package graph (imports):", file=out)
    upward = upward_imports(edges)
    for (a, b), n in package_graph(edges).items():
        note = ""
        if LAYERS.index(b) > LAYERS.index(a):
            bad = sum(1 for e in upward if package_of(e.source) == a and package_of(e.target) == b)
            note = f" (UPWARD: {bad})" if bad else f" (through the door {DOOR})"
        print(f"  {a} -> {b}: {n}{note}", file=out)
    problems = 0
    for component in cycles(modules, edges):
        problems += 1
        inside = [e for e in edges if e.source in component and e.target in component]
        links = ", ".join(f"{e.source} -> {e.target} (line {e.line})" for e in inside)
        print(f"CYCLE between {len(component)} modules: {links}", file=out)
    for e in upward:
        problems += 1
        print(
            f"UPWARD import: {modules[e.source].relative_to(root)}:{e.line} ({e.source}) imports {e.target}; "
            f"layers go {' < '.join(LAYERS)}. Move the code down, or reach the torch verbs through {DOOR}.",
            file=out,
        )
    for e in private_imports(edges):
        problems += 1
        private_names = [n for n in e.names if n.startswith("_")]
        what = e.target if _is_private_module(e.target) else f"{e.target}.{', '.join(private_names)}"
        print(
            f"PRIVATE import: {modules[e.source].relative_to(root)}:{e.line} ({e.source}) uses {what}; "
            "experiments use public names only: make it public where it lives.",
            file=out,
        )
    print("OK: no cycle, no upward import" if not problems else f"{problems} problem(s)", file=out)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root")
    args = parser.parse_args(argv)
    return 1 if check(args.root.resolve()) else 0


if __name__ == "__main__":
    sys.exit(main())
