"""No dead code in the library (a vulture-style check): every function and class defined in ``datadiet_hub`` is
named somewhere else in the repository (library, experiments, benchmarks, scripts, examples or tests). Functions
registered by a decorator (strategies, metric computations) are used through their registry."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ("datadiet_hub", "experiments", "benchmarks", "scripts", "examples", "tests")


def test_every_function_and_class_of_the_library_is_used():
    files = [p for tree in TREES for p in (ROOT / tree).rglob("*.py")]
    names: Counter[str] = Counter()
    for path in files:
        names.update(re.findall(r"\b\w+\b", path.read_text()))
    unused = []
    for path in sorted((ROOT / "datadiet_hub").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            registered = any(isinstance(d, ast.Call) for d in node.decorator_list)  # @register("name", ...)
            if node.name.startswith("__") or registered:
                continue  # protocol methods; functions used through their registry
            if names[node.name] <= 1:
                unused.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not unused, "defined but never used:\n" + "\n".join(unused)
