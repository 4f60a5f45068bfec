"""The one atomic write: the target holds the old content or the new, never a part; an error leaves the old file and
no temporary; the new file has the permissions the umask allows (not mkstemp's 0600)."""

from __future__ import annotations

import os

import pytest

from datadiet_hub.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_replace_and_permissions(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "one\n")
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"two")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o644
    assert os.listdir(target.parent) == ["file.txt"]


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "file.csv"
    atomic_write_text(target, "a,b\r\n", newline="")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"a,b\r\n"
    assert sorted(os.listdir(tmp_path)) == ["file.csv"]


def test_a_writer_that_insists_on_a_suffix_writes_where_it_is_told(tmp_path):
    np = pytest.importorskip("numpy")
    target = tmp_path / "cache.npz"
    with atomic_path(target, suffix=".npz") as tmp:
        assert tmp.name.endswith(".npz") and tmp.name.startswith(".cache.npz.")
        np.savez(tmp, x=np.arange(3))
    with np.load(target) as f:
        assert f["x"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["cache.npz"]
