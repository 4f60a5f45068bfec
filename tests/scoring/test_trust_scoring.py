"""Issue 13 on the scoring side: non-finite hyperparameters refused at parse time; clear one-line errors for a
missing dataset, an output dir that is a file, a full disk and an offline Hub; kill -9 at several points of a run
(mid-epoch, right after a checkpoint, while scoring, while writing) always resumes to bit-identical scores; the
engine runs the real fast GraNd."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import LAUNCH, PYTHON, REPO_ROOT, configs_in, read_scores, run_engine, subprocess_env
from trust_cli import BAD_INPUT, DISK, NETWORK, NOT_FOUND, assert_one_error, clean_env, datadiet

from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.run import STATE

# -- parse time -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("momentum", float("nan")),
        ("weight_decay", float("inf")),
        ("width", float("nan")),
        ("lr_gamma", float("inf")),
        ("mean", [float("nan")]),
        ("std", [float("inf")]),
    ],
)
def test_non_finite_hyperparameters_are_refused(field, value):
    from datadiet_hub.scoring.config import ScoringConfig

    kwargs = {field: value}
    if field == "mean":
        kwargs["std"] = [1.0]
    if field == "std":
        kwargs["mean"] = [0.5]
    with pytest.raises(ValueError, match=rf"{field}=.*finite"):
        ScoringConfig(**kwargs)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_cli_lr_nan_or_inf_is_one_line_and_writes_nothing(tmp_path, tiny_parquet, value):
    out = tmp_path / "out"
    result = datadiet(
        "score",
        "--dataset",
        tiny_parquet,
        f"--lr={value}",
        "--output-dir",
        out,
        "--at",
        "0",
        "--seeds",
        "0",
        "--width",
        "0.25",
        "--no-progress",
        tmp=tmp_path,
    )
    assert_one_error(result, BAD_INPUT, "lr", value)
    assert not out.exists()


# -- clear errors -------------------------------------------------------------------------------------------------------


def test_missing_dataset_file_is_not_found_locally(tmp_path):
    (tmp_path / "data").mkdir()
    result = datadiet("score", "--dataset", "data/missing.parquet", "--output-dir", tmp_path / "out", tmp=tmp_path)
    line = assert_one_error(result, NOT_FOUND, "data/missing.parquet")
    assert "Hub" not in line


def test_output_dir_that_is_a_file_is_one_line(tmp_path, tiny_parquet):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    result = datadiet("score", "--dataset", tiny_parquet, "--output-dir", blocker, "--at", "0", tmp=tmp_path)
    assert_one_error(result, DISK, "blocker")
    assert blocker.read_text() == "a file"


@contextlib.contextmanager
def full_disk(base: Path):
    """A 1 MiB tmpfs filled to the last byte: every write fails with ENOSPC (needs root, else skipped)."""
    mount = base / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        with contextlib.suppress(OSError), open(mount / ".filler", "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_score_leaves_nothing_half_written(tmp_path, tiny_parquet):
    with full_disk(tmp_path) as disk:
        out = disk / "out"
        result = datadiet(
            "score",
            "--dataset",
            tiny_parquet,
            "--output-dir",
            out,
            "--at",
            "0",
            "--seeds",
            "0",
            "--width",
            "0.25",
            tmp=tmp_path,
        )
        assert_one_error(result, DISK, "No space left")
        leftovers = [p for p in disk.rglob("*") if p.is_file() and p.name != ".filler"]
        assert all(p.stat().st_size > 0 and not p.name.endswith(".tmp") for p in leftovers), leftovers
        assert not (out / "README.md").exists() and not list(disk.rglob("*.parquet"))


def test_score_reads_the_default_prune_output(tmp_path, tiny_parquet):
    """``datadiet prune``'s default output (a ``save_to_disk`` folder) is a valid ``--dataset``."""
    import datasets

    folder = tmp_path / "pruned"
    datasets.load_dataset("parquet", data_files=str(tiny_parquet), split="train").select(range(50)).save_to_disk(
        str(folder)
    )
    out = tmp_path / "out"
    result = datadiet(
        "score",
        "--dataset",
        folder,
        "--output-dir",
        out,
        "--at",
        "0",
        "--seeds",
        "0",
        "--width",
        "0.25",
        "--no-progress",
        tmp=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_scores(out, "cnn-ep0")["idx"]) == 50


def test_offline_preset_is_one_line_and_each_warning_once(tmp_path):
    """Offline (``HF_HUB_OFFLINE=1``) the paper preset cannot download CIFAR-10: one error line, exit 5, every
    warning at most once. Under ``accelerate launch --quiet`` (the README's form: without ``--quiet`` accelerate
    itself prints a ``CalledProcessError`` traceback for any failing child) the launcher exits 1 whatever the
    child's code, so there only the output is checked."""
    argv = ["-m", "datadiet_hub.scoring", "--preset", "cifar10-paper", "--output-dir", str(tmp_path / "out")]
    env = clean_env(tmp_path, HF_HUB_OFFLINE="1")
    direct = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    line = assert_one_error(direct, NETWORK, "uoft-cs/cifar10")
    assert "HF_HUB_OFFLINE" in line
    accelerate = str(Path(sys.executable).parent / "accelerate")
    launched = subprocess.run(
        [accelerate, "launch", "--quiet", "--num_processes", "1", "--cpu", *argv],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert launched.returncode != 0 and "Traceback" not in launched.stderr, launched.stderr[-3000:]
    assert [ln for ln in launched.stderr.splitlines() if ln.startswith("error:")] == [line]
    for result in (direct, launched):
        lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith((" ", "\t"))]
        repeated = {ln for ln in lines if lines.count(ln) > 1}
        assert not repeated, repeated


# -- the real GraNd inside the engine -----------------------------------------------------------------------------


def test_subprocess_engine_runs_use_the_real_grand():
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='not_main'); "
        "import datadiet_hub.scoring.metrics.grand as g; print(g.__file__)"
    )
    result = subprocess.run(
        [PYTHON, "-c", code, str(LAUNCH)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO_ROOT / "datadiet_hub" / "scoring" / "metrics" / "grand.py"


# -- kill -9 at several points ------------------------------------------------------------------------------------

ARGS = [
    "--seeds", "0,1", "--at", "0,1,3", "--epochs", "3", "--scores", "el2n,grand,forgetting", "--width", "0.5",
    "--batch-size", "16", "--augmentation", "crop-flip", "--no-progress",
]  # fmt: skip
SPE = 13  # 203 rows / batch 16


def _args(out: Path, data: Path) -> list[str]:
    return ["--output-dir", str(out), "--dataset", str(data), *ARGS]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_parquet) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    run_engine(_args(out, tiny_parquet))
    return out


def _wait_for(predicate, process, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _mid_epoch(out: Path, process) -> str:
    state = out / STATE
    _wait_for(lambda: ckpt.checkpoint_path(state, 0, 0).exists(), process, "seed 0's init checkpoint")
    t0 = time.monotonic()
    _wait_for(lambda: ckpt.checkpoint_path(state, 0, SPE).exists(), process, "seed 0's epoch-1 checkpoint")
    time.sleep((time.monotonic() - t0) / 2)  # half an epoch later
    return "phase 1, mid-epoch 2 of seed 0"


def _right_after_a_checkpoint(out: Path, process) -> str:
    _wait_for(lambda: ckpt.checkpoint_path(out / STATE, 1, SPE).exists(), process, "seed 1's epoch-1 checkpoint")
    return "phase 1, seed 1 just checkpointed"


def _while_scoring(out: Path, process) -> str:
    _wait_for(lambda: ckpt.shard_path(out / STATE, 0, 0).exists(), process, "the first score shard")
    return "phase 2, after the first shard"


def _while_writing(out: Path, process) -> str:
    _wait_for(lambda: (out / "data").exists(), process, "the first data file")
    return "phase 3, writing the dataset"


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [_mid_epoch, _right_after_a_checkpoint, _while_scoring, _while_writing])
def test_kill_9_anywhere_resumes_to_identical_scores(tmp_path, tiny_parquet, reference, kill_at):
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [PYTHON, str(LAUNCH), *_args(out, tiny_parquet)],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        where = kill_at(out, process)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, where
    assert not (out / "README.md").exists(), f"killed too late ({where})"
    run_engine(_args(out, tiny_parquet))  # the same command resumes
    assert configs_in(out) == configs_in(reference) == ["cnn-ep0", "cnn-ep1", "cnn-ep3"]
    for config in configs_in(reference):
        left, right = read_scores(reference, config), read_scores(out, config)
        assert list(left) == list(right)
        for name in left:
            np.testing.assert_array_equal(left[name], right[name], err_msg=f"{where}: {config}/{name}")
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp"))


# -- the newcomer's path ----------------------------------------------------------------------------------------------


def test_the_demo_publishes_where_the_readme_examples_read(tmp_path, monkeypatch):
    """The README runs the demo, then reads ``fashion-mnist-datadiet`` by name (``datadiet diff @v1 @v2``) from the
    default store: so the demo must publish there, and no example may point at a
    demo-private store."""
    from datadiet_hub import LocalStore
    from datadiet_hub.downstream.demo import build_parser
    from datadiet_hub.store import default_root

    monkeypatch.setenv("DATADIET_HOME", str(tmp_path / "home"))
    args = build_parser().parse_args([])
    assert LocalStore(args.store).root == default_root() == tmp_path / "home"
    readme = (REPO_ROOT / "README.md").read_text()
    assert "runs/demo/store" not in readme
    assert "datadiet diff fashion-mnist-datadiet@v1" in readme and "DATADIET_HOME" in readme
