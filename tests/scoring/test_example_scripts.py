"""The scripts in examples/ run as a user would run them (a subprocess, from the repository root), shrunk by
DATADIET_EXAMPLE_ROWS, and print what they say they do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, tmp_path: Path, rows: int) -> str:
    env = {
        **os.environ,
        "DATADIET_EXAMPLE_ROWS": str(rows),
        "DATADIET_EXAMPLE_DIR": str(tmp_path / "work"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_example_is_run_by_some_test():
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    untested = [p.name for p in (ROOT / "examples").glob("*.py") if p.name not in tests]
    assert not untested, f"examples without a test: {untested}"


def test_prune_fashion_mnist_keeps_half_by_el2n_and_half_at_random(tmp_path):
    out = run_example("prune_fashion_mnist.py", tmp_path, rows=0)
    assert "hardest 50% by EL2N: 30000 rows" in out and "random 50%: 30000 rows" in out


def test_keep_with_filter_joins_a_shuffled_sample_by_content(tmp_path):
    out = run_example("keep_with_filter.py", tmp_path, rows=300)
    kept = int(out.split("kept ")[1].split(" of ")[0])
    assert "of 300 sampled rows" in out and 0 < kept < 300  # about half: the sample's share of the hardest half


@pytest.mark.slow
def test_score_your_own_csv_scores_and_prunes_it(tmp_path):
    out = run_example("score_your_own_csv.py", tmp_path, rows=20)
    assert "kept 40 of 80 fortunes" in out and out.count("hardest: [") == 3
