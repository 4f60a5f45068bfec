"""The local store under faults: an unwritable store, a publish killed with SIGKILL halfway, and two processes
publishing the same version at once. Real processes and real signals; the copy is slowed down (a sleep per file,
patched in the child) only so the kill and the race land while files are being copied."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scale_builders import write_score_folder

from datadiet_hub import LocalStore, load_scores
from datadiet_hub.errors import StoreError, VersionExistsError

REPO_ROOT = Path(__file__).resolve().parents[2]
N = 30

_CHILD = """
import json, shutil, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
real_copy = shutil.copy2
def slow_copy(src, dst, **kw):
    time.sleep(args["delay"])
    return real_copy(src, dst, **kw)
shutil.copy2 = slow_copy
from datadiet_hub import LocalStore
from datadiet_hub.errors import DatadietError
import datadiet_hub.folder, datadiet_hub.schema, pyarrow.parquet  # everything publish imports, before the barrier
go = Path(args["go"]) if args.get("go") else None
if go is not None:  # tell the parent this child has imported everything and waits at the barrier
    Path(f"{go}.ready-{args['source'].replace('/', '_')}").touch()
while go is not None and not go.exists():
    time.sleep(0.005)
try:
    info = LocalStore(args["root"]).publish(args["source"], args["name"], args["version"])
    print(json.dumps({"ok": True, "location": info.location}))
except DatadietError as err:
    print(json.dumps({"ok": False, "error": type(err).__name__, "message": str(err)}))
"""


def start_publish(root: Path, source: Path, version: str, *, delay: float, go: Path | None = None) -> subprocess.Popen:
    args = {
        "root": str(root),
        "source": str(source),
        "name": "tiny",
        "version": version,
        "delay": delay,
        "go": str(go) if go else None,
    }
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def source_with_many_files(path: Path, *, seed: int, files: int = 30) -> Path:
    """A valid score folder plus ``files`` plot files, so a publish copies long enough to be interrupted."""
    folder = write_score_folder(path, N, score_seed=seed)
    (folder / "plots").mkdir(exist_ok=True)
    for i in range(files):
        png = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(f"{seed}-{i}".encode()).digest() * 64  # a PNG signature
        (folder / "plots" / f"p{i:03d}.png").write_bytes(png)
    return folder


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_publish_into_an_unwritable_store_is_a_store_error(tmp_path):
    """Works as root too: the store root lies under a regular file, which no user can create folders in."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's parent folder should be")
    source = write_score_folder(tmp_path / "scores", N)
    before = tree_digest(source)
    with pytest.raises(
        StoreError,
        match=r"Cannot write to the store at .*not-a-folder.*Nothing was published.*"
        r"DATADIET_HOME",
    ):
        LocalStore(blocker / "store").publish(source, "tiny", "v1")
    assert tree_digest(source) == before and blocker.read_text().startswith("a file")


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: file permissions do not stop root from writing (the test above covers "
    "an unwritable store in a way that holds for root)",
)
def test_publish_into_a_read_only_folder_is_a_store_error(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    source = write_score_folder(tmp_path / "scores", N)
    root.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="Cannot write to the store"):
            LocalStore(root).publish(source, "tiny", "v1")
        assert LocalStore(root).versions("tiny") == []
    finally:
        root.chmod(0o755)


def test_sigkill_halfway_leaves_previous_versions_and_no_partial_version(tmp_path):
    root = tmp_path / "store"
    store = LocalStore(root)
    store.publish(write_score_folder(tmp_path / "v1", N, score_seed=1), "tiny", "v1")
    v1_before = tree_digest(root / "tiny" / "v1")
    source = source_with_many_files(tmp_path / "v2", seed=2)

    proc = start_publish(root, source, "v2", delay=0.1)
    deadline = time.monotonic() + 60
    tmp_dir = None
    while time.monotonic() < deadline:  # kill once the temporary copy is under way
        found = [p for p in (root / "tiny").glob(".tmp-v2-*") if sum(1 for f in p.rglob("*") if f.is_file()) >= 3]
        if found:
            tmp_dir = found[0]
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    assert tmp_dir is not None, "the publish never started copying"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert tmp_dir.exists()  # the kill left its partial copy behind...
    assert [v.name for v in store.versions("tiny")] == ["v1"]  # ...which is never listed as a version
    assert not (root / "tiny" / "v2").exists()
    assert tree_digest(root / "tiny" / "v1") == v1_before
    assert len(load_scores("tiny", version="v1", store=store, cache_dir=str(tmp_path / "c"))) == N

    info = store.publish(source, "tiny", "v2")  # the next publish succeeds and sweeps the dead one's folder
    assert [v.name for v in store.versions("tiny")] == ["v1", "v2"]
    assert tree_digest(Path(info.location)) == tree_digest(source)
    assert not list((root / "tiny").glob(".tmp-*"))
    assert len(load_scores("tiny", version="v2", store=store, cache_dir=str(tmp_path / "c"))) == N


def test_stale_cleanup_spares_a_live_publish(tmp_path):
    root = tmp_path / "store"
    live = root / "tiny" / f".tmp-v3-{os.getppid()}-abcdef12"  # a running process (our parent)
    dead = root / "tiny" / ".tmp-v3-999999999-abcdef12"  # no such pid
    for folder in (live, dead):
        folder.mkdir(parents=True)
    assert LocalStore(root).clean_stale("tiny") == 1
    assert live.exists() and not dead.exists()


def test_two_processes_publishing_the_same_version(tmp_path):
    root = tmp_path / "store"
    sources = [source_with_many_files(tmp_path / f"src{i}", seed=10 + i, files=10) for i in range(2)]
    go = tmp_path / "go"
    procs = [start_publish(root, src, "v1", delay=0.03, go=go) for src in sources]
    deadline = time.time() + 120  # both children import (seconds on a loaded machine) and wait at the barrier
    while len(list(tmp_path.glob("go.ready-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    winners = [i for i, r in enumerate(results) if r["ok"]]
    assert len(winners) == 1, results
    loser = results[1 - winners[0]]
    assert loser["error"] == "VersionExistsError"
    # both passed the "exists?" check and copied at once; the loser's atomic rename was refused
    assert "was published by another process meanwhile" in loser["message"], loser
    assert "'v1'" in loser["message"] and "Publish under a new version" in loser["message"]

    store = LocalStore(root)
    assert [v.name for v in store.versions("tiny")] == ["v1"]
    assert tree_digest(root / "tiny" / "v1") == tree_digest(sources[winners[0]])  # all of one, none of the other
    assert not list((root / "tiny").glob(".tmp-*"))
    assert len(load_scores("tiny", version="v1", store=store, cache_dir=str(tmp_path / "c"))) == N
    with pytest.raises(VersionExistsError, match="already exists.*immutable"):
        store.publish(sources[1 - winners[0]], "tiny", "v1")
