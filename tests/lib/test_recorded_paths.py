"""Shipped cards and committed results record commands and paths relative to the repository or the user's folder,
never this machine's absolute paths (``/tmp/...``, ``/work/...``, ``/root/...``, ``/home/...``): in the card text,
its YAML provenance, the parquet metadata of its tables, and every results file."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "cards", ROOT / "docs" / "results"]
TEXT_SUFFIXES = {".md", ".txt", ".csv", ".json", ".jsonl", ".yaml", ".yml", ".tsv"}
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:tmp|work|root|home)/")


def _files(suffixes: set[str]) -> list[Path]:
    return sorted(p for folder in SCANNED for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _hits(text: str) -> list[str]:
    return [line.strip()[:160] for line in text.splitlines() if MACHINE_PATH.search(line)]


def test_the_pattern_finds_machine_paths_and_leaves_relative_ones():
    assert _hits("--output-dir /tmp/runs/x\n'/root/.cache/datadiet/v1'\nDATADIET_HOME=/home/me/d")
    assert not _hits("--output-dir runs/x\n~/.cache/datadiet/v1\nhttps://host/tmp/x\nexperiments/work/a")


@pytest.mark.parametrize("path", _files(TEXT_SUFFIXES), ids=lambda p: str(p.relative_to(ROOT)))
def test_text_records_hold_no_machine_paths(path):
    assert not _hits(path.read_text(errors="replace")), f"{path.relative_to(ROOT)} records absolute machine paths"


@pytest.mark.parametrize("path", _files({".parquet"}), ids=lambda p: str(p.relative_to(ROOT)))
def test_parquet_metadata_holds_no_machine_paths(path):
    metadata = {**(pq.read_metadata(path).metadata or {}), **(pq.read_schema(path).metadata or {})}
    found = [key for key, value in metadata.items() if MACHINE_PATH.search(value.decode("utf-8", "replace"))]
    assert not found, f"{path.relative_to(ROOT)}: metadata {found} records absolute machine paths"
