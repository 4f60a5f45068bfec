"""Deterministic mode: the same command run twice (fresh processes, same device kind and software) gives
bit-identical score columns, and the provenance records the settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from conftest import PYTHON, REPO_ROOT, configs_in, subprocess_env

SCORE_COLUMNS = ("el2n", "el2n_per_seed", "grand", "grand_per_seed", "forgetting", "forgetting_per_seed")


def score(out: Path, data: Path) -> None:
    command = [
        PYTHON, "-m", "datadiet_hub.scoring", "--output-dir", str(out), "--dataset", str(data), "--seeds", "0,1",
        "--scores", "el2n,grand,forgetting", "--at", "0,2", "--width", "0.25", "--batch-size", "32",
        "--augmentation", "crop-flip", "--deterministic", "--no-progress",
    ]  # fmt: skip
    # the real GraNd (no stand-in) and the default thread count: deterministic mode pins it
    env = {k: v for k, v in subprocess_env().items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def column_bytes(out: Path, config: str) -> dict[str, bytes]:
    table = pq.read_table(out / "data" / config / "train-00000-of-00001.parquet")
    present = [c for c in SCORE_COLUMNS if c in table.column_names]
    assert "el2n" in present and "grand" in present
    return {
        c: b"".join(bytes(buf) for chunk in table.column(c).chunks for buf in chunk.buffers() if buf) for c in present
    }


def provenance(out: Path) -> dict:
    text = (out / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])["datadiet"]


def test_same_command_twice_gives_bit_identical_scores(tmp_path, tiny_parquet):
    first, second = tmp_path / "first", tmp_path / "second"
    score(first, tiny_parquet)
    score(second, tiny_parquet)
    assert configs_in(first) == configs_in(second) == ["cnn-ep0", "cnn-ep2"]
    for config in configs_in(first):
        assert column_bytes(first, config) == column_bytes(second, config), config
    recorded = provenance(first)
    assert recorded["scoring"]["deterministic"] is True
    assert recorded["deterministic_algorithms"] is True
    assert recorded["intra_op_threads"] == 1
