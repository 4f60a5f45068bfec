"""Issue 13, nothing lost and nothing half-written: prune never clobbers its input, a non-empty folder or a store
version; every write is temp + rename (a full disk leaves nothing behind); store names cannot nest into versions;
publish refuses what prune would refuse; files are shareable (mode from the umask) and the card is clean."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import make_provenance, make_score_table
from trust_cli import BAD_INPUT, DISK, EXISTS, assert_one_error, datadiet, snapshot


@pytest.fixture
def data_parquet(tmp_path, image_dataset) -> Path:
    path = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(path))
    return path


def _prune(tmp_path, score_folder, dataset, *extra):
    return datadiet(
        "prune", dataset, "--scores", score_folder, "--config", "cnn-ep2", "--fraction", "0.5", *extra, tmp=tmp_path
    )


# -- prune --output ---------------------------------------------------------------------------------------------------


def test_prune_refuses_to_overwrite_its_own_input(tmp_path, score_folder, data_parquet):
    before = data_parquet.read_bytes()
    result = _prune(tmp_path, score_folder, data_parquet, "--output", data_parquet, "--format", "parquet")
    assert_one_error(result, EXISTS, "data.parquet")
    assert data_parquet.read_bytes() == before


def test_prune_refuses_a_non_empty_output_folder(tmp_path, score_folder, data_parquet):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep-me.txt").write_text("mine")
    result = _prune(tmp_path, score_folder, data_parquet, "--output", out)
    assert_one_error(result, EXISTS, "--force")
    assert snapshot(out) == {"keep-me.txt": b"mine"}


def test_prune_refuses_to_write_into_a_store_version(tmp_path, score_folder, data_parquet):
    store = tmp_path / "store"
    assert (
        datadiet(
            "publish", score_folder, "--name", "tiny", "--version", "v1", "--store", store, tmp=tmp_path
        ).returncode
        == 0
    )
    version = store / "tiny" / "v1"
    before = snapshot(store)
    for target in (version, version / "pruned", store / "tiny" / "v2"):
        result = _prune(tmp_path, score_folder, data_parquet, "--output", target, "--force")
        assert_one_error(result, EXISTS, "store")
    assert snapshot(store) == before
    from datadiet_hub import LocalStore, load_scores

    assert len(load_scores("tiny", "cnn-ep2", store=LocalStore(store))) == 40


def test_prune_output_with_force_replaces_atomically(tmp_path, score_folder, data_parquet):
    out = tmp_path / "pruned.parquet"
    assert _prune(tmp_path, score_folder, data_parquet, "--output", out).returncode == 0
    again = _prune(tmp_path, score_folder, data_parquet, "--output", out)
    assert_one_error(again, EXISTS, "--force")
    assert _prune(tmp_path, score_folder, data_parquet, "--output", out, "--force").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_output_with_parquet_suffix_writes_parquet(tmp_path, score_folder, data_parquet):
    out = tmp_path / "x.parquet"
    assert _prune(tmp_path, score_folder, data_parquet, "--output", out).returncode == 0
    assert out.is_file() and out.read_bytes()[:4] == b"PAR1"
    assert pq.read_table(out).num_rows == 20


def test_default_prune_output_can_be_pruned_again(tmp_path, score_folder, data_parquet, image_dataset):
    """The default output is a ``save_to_disk`` folder; it is a valid DATASET for prune (and score: see
    tests/scoring/test_trust_scoring.py)."""
    import datasets

    from datadiet_hub.sources import load_source

    first = tmp_path / "pruned"
    assert _prune(tmp_path, score_folder, data_parquet, "--output", first).returncode == 0
    source = load_source(str(first))
    assert len(source.dataset) == 20 and source.input_column == "image"
    scores = make_score_table(source.dataset, seed=3)
    folder = tmp_path / "scores2"
    from datadiet_hub.writer import write_score_dataset

    write_score_dataset(folder, {"cnn-ep2": scores}, provenance=make_provenance(20), plots=False)
    second = tmp_path / "pruned2"
    result = _prune(tmp_path, folder, first, "--output", second)
    assert result.returncode == 0, result.stderr
    assert len(datasets.load_from_disk(str(second))) == 10


def test_output_dir_that_is_a_file_is_one_line(tmp_path, score_folder, data_parquet):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    result = _prune(tmp_path, score_folder, data_parquet, "--output", blocker / "pruned")
    assert_one_error(result, DISK, "blocker")
    assert blocker.read_text() == "a file"


# -- a full disk --------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def full_disk(base: Path):
    """A folder where every write fails with ENOSPC: a 1 MiB tmpfs filled to the last byte (needs root); skipped
    where mounting is not allowed."""
    mount = base / "full"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root); the disk-full case runs in CI as root")
    try:
        with contextlib.suppress(OSError), open(mount / ".filler", "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_disk_full_during_prune_leaves_nothing(tmp_path, score_folder, data_parquet, fmt):
    with full_disk(tmp_path) as disk:
        out = disk / ("pruned.parquet" if fmt == "parquet" else "pruned")
        result = _prune(tmp_path, score_folder, data_parquet, "--output", out, "--format", fmt)
        assert_one_error(result, DISK, "No space left")
        assert sorted(p.name for p in disk.iterdir()) == [".filler"]


def test_disk_full_during_store_publish_leaves_nothing(tmp_path, score_folder):
    with full_disk(tmp_path) as disk:
        result = datadiet("publish", score_folder, "--name", "tiny", "--version", "v1", "--store", disk, tmp=tmp_path)
        assert_one_error(result, DISK, "No space left")
        assert [p.name for p in disk.iterdir() if p.name != ".filler"] in ([], ["tiny"])
        assert not (disk / "tiny" / "v1").exists() and not list(disk.rglob(".tmp-*"))


# -- store names ------------------------------------------------------------------------------------------------------


def test_a_name_cannot_nest_inside_a_version(tmp_path, score_folder):
    store = tmp_path / "store"
    assert (
        datadiet(
            "publish", score_folder, "--name", "tiny", "--version", "v1", "--store", store, tmp=tmp_path
        ).returncode
        == 0
    )
    before = snapshot(store)
    result = datadiet("publish", score_folder, "--name", "tiny/v1", "--version", "x", "--store", store, tmp=tmp_path)
    assert_one_error(result, EXISTS, "tiny/v1")
    assert snapshot(store) == before


def test_name_a_version_b_and_name_a_slash_b_do_not_collide(tmp_path, score_folder):
    store = tmp_path / "store"
    first = datadiet("publish", score_folder, "--name", "a", "--version", "b", "--store", store, tmp=tmp_path)
    assert first.returncode == 0
    before = snapshot(store)
    second = datadiet("publish", score_folder, "--name", "a/b", "--version", "v1", "--store", store, tmp=tmp_path)
    assert_one_error(second, EXISTS, "a/b")
    assert snapshot(store) == before
    store2 = tmp_path / "store2"
    assert (
        datadiet(
            "publish", score_folder, "--name", "a/b", "--version", "v1", "--store", store2, tmp=tmp_path
        ).returncode
        == 0
    )
    third = datadiet("publish", score_folder, "--name", "a", "--version", "b", "--store", store2, tmp=tmp_path)
    assert_one_error(third, EXISTS, "a/b")


# -- publish validates like prune reads ---------------------------------------------------------------------------


def _rewrite(folder: Path, config: str, change) -> None:
    path = folder / "data" / config / "train-00000-of-00001.parquet"
    pq.write_table(change(pq.read_table(path)), path)


def _with_values(table: pa.Table, values) -> pa.Table:
    i = table.column_names.index("el2n")
    return table.set_column(i, pa.field("el2n", pa.float32()), pa.array(values, pa.float32()))


@pytest.mark.parametrize(
    "case",
    ["nan", "inf", "null", "rows-differ-from-card", "idx-hole"],
)
def test_publish_refuses_what_prune_refuses(hub, tmp_path, score_folder, case):
    def change(table: pa.Table) -> pa.Table:
        values = table.column("el2n").to_pylist()
        if case == "nan":
            return _with_values(table, [float("nan"), *values[1:]])
        if case == "inf":
            return _with_values(table, [*values[:-1], float("inf")])
        if case == "null":
            return _with_values(table, [None, *values[1:]])
        if case == "rows-differ-from-card":
            return table.slice(0, 39)
        idx = table.column("idx").to_numpy().copy()
        idx[5] = 41
        return table.set_column(0, "idx", pa.array(idx))

    if case == "rows-differ-from-card":
        for config in ("cnn-ep2", "cnn-ep0"):
            _rewrite(score_folder, config, change)
    else:
        _rewrite(score_folder, "cnn-ep2", change)
    store = tmp_path / "store"
    result = datadiet("publish", score_folder, "--name", "tiny", "--version", "v1", "--store", store, tmp=tmp_path)
    assert_one_error(result, BAD_INPUT, "cnn-ep2" if case != "rows-differ-from-card" else "40")
    assert not (store / "tiny" / "v1").exists()
    run = hub.run(
        """
from datadiet_hub.hub import push_version
try:
    push_version(ARGS["folder"], "user/s", "v1")
    result = "published"
except ValueError as e:
    result = str(e)
""",
        args={"folder": str(score_folder)},
    )
    assert run.result != "published"
    assert hub.double.find("POST", r"/commit/") == []


# -- what the writer leaves on disk -------------------------------------------------------------------------------


def _write(folder: Path, image_dataset, provenance=None) -> Path:
    from datadiet_hub.writer import write_score_dataset

    return write_score_dataset(
        folder,
        {"cnn-ep2": make_score_table(image_dataset)},
        provenance=provenance or make_provenance(len(image_dataset)),
        plots=False,
    )


@pytest.mark.parametrize(
    "umask",
    [0o022, 0o077],
)
def test_written_files_follow_the_umask(tmp_path, image_dataset, umask):
    old = os.umask(umask)
    try:
        folder = _write(tmp_path / "scores", image_dataset)
        store = tmp_path / "store"
        from datadiet_hub import LocalStore

        LocalStore(store).publish(folder, "tiny", "v1")
    finally:
        os.umask(old)
    for root in (folder, store / "tiny" / "v1"):
        for path in (root / "README.md", root / "data" / "cnn-ep2" / "train-00000-of-00001.parquet"):
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_card_names_no_local_path_and_has_no_yaml_anchors(tmp_path, image_dataset):
    provenance = make_provenance(len(image_dataset))
    provenance["source"]["dataset"] = str(tmp_path / "private" / "data.parquet")
    shared = [0, 1, 2]
    provenance["scoring"]["seeds"] = shared
    provenance["configs"]["cnn-ep2"]["seeds"] = shared  # one object referenced twice
    folder = _write(tmp_path / "scores", image_dataset, provenance)
    text = (folder / "README.md").read_text()
    header = text.split("---")[1]
    assert "&id" not in header and "*id" not in header
    import yaml

    card = yaml.safe_load(header)
    assert all(not str(s).startswith("/") and str(tmp_path) not in str(s) for s in card.get("source_datasets", []))
    assert card["datadiet"]["scoring"]["seeds"] == [0, 1, 2] == card["datadiet"]["configs"]["cnn-ep2"]["seeds"]


def test_no_partial_parquet_when_the_writer_fails(tmp_path, image_dataset):
    """A table that fails validation half-way through a multi-config write leaves no file of it."""
    from datadiet_hub.writer import write_score_dataset

    good = make_score_table(image_dataset)
    bad = good.set_column(0, "idx", pa.array(np.zeros(len(good), dtype=np.int64)))
    with pytest.raises(ValueError):
        write_score_dataset(
            tmp_path / "scores", {"cnn-ep2": good, "cnn-ep0": bad}, provenance=make_provenance(40), plots=False
        )
    assert not (tmp_path / "scores" / "README.md").exists()
    assert not list((tmp_path / "scores").rglob("*.parquet")) if (tmp_path / "scores").exists() else True


# -- kill -9 during a Hub publish ---------------------------------------------------------------------------------


def test_kill_9_between_commit_and_tag_and_rerun_publishes_the_same_version(hub, score_folder, tmp_path):
    """The client dies after its commit landed on main but before the tag: the version does not exist (no tag),
    previous state is intact, and rerunning the same command finishes it with exactly the folder's files."""
    import time

    from trust_cli import clean_env

    token = "hf_DoubleTestToken_9c1e5b7a"
    argv = [sys.executable, "-m", "datadiet_hub.cli", "publish", str(score_folder), "--repo-id", "user/s"]
    env = clean_env(tmp_path, hub.double.endpoint, HF_TOKEN=token)
    process = subprocess.Popen([*argv, "--version", "v1"], env=env, cwd=tmp_path, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:  # freeze the double (it takes this lock per request) the moment the commit has landed
        hub.double._lock.acquire()
        repo = hub.double.repos.get(("dataset", "user/s"))
        if repo is not None and any("publish version v1" in c.message for c in repo.commits.values()):
            break
        hub.double._lock.release()
        assert process.poll() is None and time.monotonic() < deadline, "the publish ended before its commit landed"
        time.sleep(0.001)
    try:
        tagged_before_kill = "v1" in repo.tags
        process.kill()
        process.wait()
    finally:
        hub.double._lock.release()
    assert not tagged_before_kill, "killed too late: the tag request had already been handled"
    assert "v1" not in repo.tags  # no half version: without its tag, v1 does not exist
    rerun = subprocess.run([*argv, "--version", "v1"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    published = {k: v for k, v in repo.files_at("v1").items() if k != ".gitattributes"}
    local = {p.relative_to(score_folder).as_posix(): p.read_bytes() for p in score_folder.rglob("*") if p.is_file()}
    assert published == local
