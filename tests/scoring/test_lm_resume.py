"""A sharded corpus streamed through (``--streaming``): kill -9 while training, rerun the same command, and get the
scores of the uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import LAUNCH, PYTHON, REPO_ROOT, configs_in, read_scores, run_engine, subprocess_env
from test_lm_run import stdlib_docstrings

from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.run import STATE


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> list[Path]:
    import datasets

    texts = stdlib_docstrings(45)
    folder = tmp_path_factory.mktemp("shards")
    paths = []
    for part in range(3):
        path = folder / f"train-{part:05d}-of-00003.parquet"
        datasets.Dataset.from_dict({"text": texts[part::3]}).to_parquet(str(path))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_streamed_corpus_resumes_after_kill_9_with_the_same_scores(tmp_path, shards):
    """Both runs read one tokenizer file: training a tokenizer is not deterministic (the ``tokenizers`` trainers
    break count ties in hash order), so two fresh runs that each train one differ; a resumed run reuses the one it
    saved."""
    from test_lm_run import stdlib_docstrings as texts

    from datadiet_hub.scoring.data.text import train_tokenizer

    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(train_tokenizer(iter(texts(45)), vocab_size=200).to_str())

    def args(out: Path) -> list[str]:
        return [
            "--dataset", "parquet", "--data-files", ",".join(str(p) for p in shards), "--streaming",
            "--output-dir", str(out), "--seeds", "0,1", "--at", "1,3", "--scores", "loss,el2n",
            "--max-length", "24", "--tokenizer", str(tokenizer), "--width", "0.25", "--batch-size", "8", "--no-progress",
        ]  # fmt: skip

    reference = tmp_path / "uninterrupted"
    run_engine(args(reference))
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [PYTHON, str(LAUNCH), *args(out)],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while process.poll() is None and time.monotonic() < deadline:
        steps = [s for s, _ in ckpt.list_checkpoints(out / STATE, 0)]
        if any(s > 0 for s in steps):  # seed 0 saved its first checkpoint after init
            break
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "README.md").exists(), "the run was killed before it finished"
    assert ckpt.latest_checkpoint(out / STATE, 1) is None, "killed while training seed 0"

    run_engine(args(out))  # the same command resumes
    assert configs_in(out) == configs_in(reference) == ["causal-transformer-ep1", "causal-transformer-ep3"]
    for config in configs_in(out):
        left, right = read_scores(reference, config), read_scores(out, config)
        assert list(left) == list(right)
        for name in left:
            np.testing.assert_array_equal(left[name], right[name], err_msg=f"{config}/{name}")
