"""docs/architecture.md stays true: its module map names every module of the package and only modules that exist,
and its error table lists every error class of ``errors.py``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def mapped_modules() -> set[str]:
    """Module paths named in the first column of the module map's tables, under their ``### `folder/``` heading."""
    names: set[str] = set()
    folder = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^###+ `([\w/]+/)`", line)
        if heading:
            folder = heading[1]
            continue
        if line.startswith("## "):
            folder = None
        if folder and line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(folder + name for name in re.findall(r"`([\w/]+\.py)`", first_cell))
    return names


def test_the_module_map_names_every_module_and_only_real_ones():
    actual = {p.relative_to(ROOT).as_posix() for p in (ROOT / "datadiet_hub").rglob("*.py")}
    mapped = mapped_modules()
    assert not actual - mapped, f"modules missing from docs/architecture.md: {sorted(actual - mapped)}"
    assert not mapped - actual, f"docs/architecture.md names modules that do not exist: {sorted(mapped - actual)}"


def test_the_error_table_lists_every_error_class():
    tree = ast.parse((ROOT / "datadiet_hub" / "errors.py").read_text())
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    rows = set(re.findall(r"^\| `(\w+Error)` \|", DOC.read_text(), re.M))
    assert classes == rows


def test_no_reference_to_notes_users_cannot_see():
    assert "DESIGN.md" not in DOC.read_text()
