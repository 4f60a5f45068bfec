"""Resuming: kill -9 in the middle and rerun the same command -> the same final scores as an uninterrupted run;
partial state (lost checkpoints, lost shards, stale temporaries); refusal to resume with another configuration;
what stays on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import LAUNCH, PYTHON, REPO_ROOT, configs_in, read_scores, run_engine, subprocess_env, tiny_config

from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.run import STATE, run


def assert_same_scores(a: Path, b: Path) -> None:
    assert configs_in(a) == configs_in(b)
    for config in configs_in(a):
        left, right = read_scores(a, config), read_scores(b, config)
        assert list(left) == list(right)
        for name in left:
            np.testing.assert_array_equal(left[name], right[name], err_msg=f"{config}/{name}")


@pytest.mark.slow
def test_kill_9_and_rerun_gives_the_uninterrupted_scores(tmp_path, tiny_parquet):
    def args(out: Path) -> list[str]:
        return [
            "--output-dir",
            str(out),
            "--dataset",
            str(tiny_parquet),
            "--seeds",
            "0,1",
            "--at",
            "0,1,4",
            "--epochs",
            "5",
            "--scores",
            "el2n,grand,forgetting",
            "--width",
            "0.5",
            "--batch-size",
            "16",
            "--augmentation",
            "crop-flip",
            "--no-progress",
        ]

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
    first = ckpt.checkpoint_path(out / STATE, 0, 13)  # seed 0's first checkpoint after init (13 steps/epoch)
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (out / "README.md").exists(), "the run was killed before it finished"
    assert ckpt.latest_checkpoint(out / STATE, 0)[0] < 65, "killed while training seed 0"
    assert ckpt.latest_checkpoint(out / STATE, 1) is None

    run_engine(args(out))  # the same command resumes
    assert_same_scores(reference, out)
    assert configs_in(out) == ["cnn-ep0", "cnn-ep1", "cnn-ep4"]


def test_resume_from_partial_state_is_exact(tmp_path, tiny_parquet):
    """Lose the last checkpoint of one seed (training resumes mid-run from the previous one), a score shard of
    another, the example-id file of the data cache (as a state folder from before that file, or a kill between the
    cache's files, leaves it), and leave temporaries behind: the rerun recomputes exactly what was lost."""
    out = tmp_path / "out"
    cfg = tiny_config(
        out, tiny_parquet, scores=["el2n", "forgetting"], at=[1, 3], epochs=4, seeds=[0, 1], augmentation="crop-flip"
    )
    run(cfg, progress=False)
    state = out / STATE
    reference = tmp_path / "reference"
    reference.mkdir()
    for config in configs_in(out):
        (reference / "data" / config).mkdir(parents=True)
        src = out / "data" / config / "train-00000-of-00001.parquet"
        (reference / "data" / config / src.name).write_bytes(src.read_bytes())

    # On disk: each score time plus the last periodic checkpoint, nothing else.
    assert [s for s, _ in ckpt.list_checkpoints(state, 0)] == [7, 21, 28]
    ckpt.checkpoint_path(state, 1, 28).unlink()
    ckpt.checkpoint_path(state, 1, 21).unlink()
    ckpt.shard_path(state, 1, 21).unlink()
    ckpt.shard_path(state, 0, 7).unlink()
    (state / "seed-1" / ".ckpt-step00000014.safetensors.999.tmp").write_bytes(b"half a file")
    (out / "README.md").unlink()
    (state / "example_ids.npy").unlink()

    run(cfg, progress=False)  # seed 1 retrains from step 7, both lost shards are rescored, the split is redecoded
    assert_same_scores(reference, out)
    assert (state / "example_ids.npy").exists()
    assert not list(state.rglob("*.tmp"))
    assert [s for s, _ in ckpt.list_checkpoints(state, 1)] == [7, 21, 28]


def test_refuses_to_resume_with_another_configuration(tmp_path, tiny_parquet, capsys):
    from datadiet_hub.scoring.cli import main

    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, seeds=[0]), progress=False)
    with pytest.raises(ValueError, match=r"different configuration \(lr: was 0\.05, now 0\.1\).*new --output-dir"):
        run(tiny_config(out, tiny_parquet, seeds=[0], lr=0.1), progress=False)

    base = [
        "--output-dir",
        str(out),
        "--dataset",
        str(tiny_parquet),
        "--width",
        "0.25",
        "--batch-size",
        "32",
        "--eval-batch-size",
        "64",
        "--grand-batch-size",
        "32",
        "--at",
        "1",
        "--lr",
        "0.05",
    ]
    os.environ.pop("DATADIET_DEBUG", None)
    assert main([*base, "--seeds", "0,1"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "seeds: was [0], now [0, 1]" in err and "Traceback" not in err
    assert main([*base, "--seeds", "0", "--no-progress"]) == 0  # the same settings resume (a no-op here)
    capsys.readouterr()
    # --output-dir is not part of the identity: the same run copied elsewhere resumes there.
    assert "output_dir" not in (out / STATE / "config.json").read_text()


def test_a_run_resumes_whether_the_data_chose_the_model_or_the_flags_named_it(tmp_path, tiny_parquet, capsys):
    """The model and its training defaults follow the data when left out: a rerun that names them (``--model cnn
    --optimizer sgd``) resumes a run that left them out, and the other way round; naming another model is refused
    with what differs."""
    import json

    from datadiet_hub.scoring.cli import main

    out = tmp_path / "out"
    base = ["--output-dir", str(out), "--dataset", str(tiny_parquet), "--width", "0.25", "--batch-size", "32",
            "--at", "1", "--seeds", "0", "--scores", "el2n", "--no-progress"]  # fmt: skip
    assert main(base) == 0
    recorded = json.loads((out / STATE / "config.json").read_text())
    assert (recorded["model"], recorded["optimizer"]) == ("cnn", "sgd")  # the data's choice, written down
    assert main([*base, "--model", "cnn", "--optimizer", "sgd", "--lr", str(recorded["lr"])]) == 0
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--model", "mlp"]) == 2
    assert "model: was 'cnn', now 'mlp'" in capsys.readouterr().err
