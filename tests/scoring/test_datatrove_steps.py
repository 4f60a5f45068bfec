"""The datatrove steps under datatrove's own local executor with 2 tasks: scoring documents with a corpus run's
reference models gives the run's own scores, the 2 tasks' shards merge into one score dataset in the corpus's order,
and the filter keeps exactly what ``prune`` keeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datatrove")  # the `corpus` extra; CI installs it (scripts/setup.sh checks the import)

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from test_lm_run import stdlib_docstrings

import datadiet_hub
from datadiet_hub.scoring.cli import main
from datadiet_hub.scoring.datatrove_steps import KeepByScores, ScoreDocuments, merge_score_shards


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A corpus in two parquet files (one per task) and a finished 2-seed run on it."""
    import datasets

    folder = tmp_path_factory.mktemp("dt")
    texts = stdlib_docstrings(40)
    data = folder / "data"
    data.mkdir()
    for part in range(2):
        datasets.Dataset.from_dict({"text": texts[part * 20 : (part + 1) * 20]}).to_parquet(
            str(data / f"part-{part}.parquet")
        )
    run = folder / "run"
    args = ["--dataset", "parquet", "--data-files", f"{data}/part-0.parquet,{data}/part-1.parquet"]
    args += ["--objective", "causal-lm", "--output-dir", str(run), "--seeds", "0,1", "--at", "1"]
    args += ["--scores", "loss,el2n,grand", "--max-length", "24", "--vocab-size", "200", "--width", "0.25"]
    args += ["--batch-size", "16", "--no-progress"]
    assert main(args) == 0
    return data, run, texts


def test_two_tasks_score_and_merge_into_the_runs_scores(corpus_run, tmp_path):
    data, run, _ = corpus_run
    shards = tmp_path / "shards"
    LocalPipelineExecutor(
        [ParquetReader(str(data)), ScoreDocuments(run, batch_size=8), ParquetWriter(str(shards))],
        tasks=2,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    assert len(list(shards.glob("*.parquet"))) == 2  # one shard per task
    merged = merge_score_shards(shards, tmp_path / "merged", run_dir=run, config="dt")
    ours = datadiet_hub.load_scores(str(merged), "dt")
    theirs = datadiet_hub.load_scores(str(run), "causal-transformer-ep1")
    assert ours["example_id"] == theirs["example_id"]  # the corpus's order: files by path, then lines
    for column in ("num_tokens", "loss", "el2n", "grand"):
        np.testing.assert_allclose(ours[column], theirs[column], rtol=2e-4, atol=1e-6, err_msg=column)


def test_keep_by_scores_keeps_what_prune_keeps(corpus_run, tmp_path):
    import datasets

    data, run, _ = corpus_run
    out = tmp_path / "kept"
    step = KeepByScores(str(run), config="causal-transformer-ep1", column="loss", fraction=0.5, strategy="middle")
    LocalPipelineExecutor(
        [ParquetReader(str(data)), step, ParquetWriter(str(out))],
        tasks=2,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    kept = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in out.glob("*.parquet")))["train"]["text"]
    corpus = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in data.glob("*.parquet")), split="train")
    scores = datadiet_hub.load_scores(str(run), "causal-transformer-ep1")
    expected = datadiet_hub.prune(corpus, scores, column="loss", fraction=0.5, strategy="middle")
    assert sorted(kept) == sorted(expected["text"]) and len(kept) == 20


def test_the_pipeline_example_runs_locally(corpus_run, tmp_path):
    import datasets
    from conftest import REPO_ROOT, subprocess_env

    data, run, _ = corpus_run
    out = tmp_path / "example"
    command = [sys.executable, str(REPO_ROOT / "examples" / "corpus_pipeline.py")]
    command += ["--run", str(run), "--data", str(data), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    scores = datadiet_hub.load_scores(str(out / "scores"), "scores")
    kept = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in (out / "kept").glob("*.parquet")))
    assert len(scores) == 40 and len(kept["train"]) == 20
