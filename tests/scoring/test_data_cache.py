"""The cache of prepared splits (``datadiet_hub.scoring.data.cache``): a later run with the same source and data
settings links the decoded tensors, ids and plan instead of preparing them; a changed source gets a new key; a
killed or concurrent writer never leaves a half entry that a reader would take; Fashion-MNIST read from its IDX
arrays gives exactly what decoding its PNG dataset gives."""

from __future__ import annotations

import gzip
import logging
import struct
import threading

import numpy as np
import pytest
import torch
from conftest import write_image_parquet

from datadiet_hub import sources
from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.data import load_tensors
from datadiet_hub.scoring.data.cache import PreparedCache, cache_root
from datadiet_hub.scoring.data.prepare import prepare_data
from datadiet_hub.scoring.state import RunState


def write_idx(folder, images: np.ndarray, labels: np.ndarray, stem: str = "train") -> None:
    """Fashion-MNIST's IDX files (gzipped, big-endian header) for ``images`` ``[N, 28, 28]`` and ``labels``."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"{stem}-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">HBB3I", 0, 8, 3, *images.shape) + images.tobytes())
    with gzip.open(folder / f"{stem}-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">HBBI", 0, 8, 1, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fmnist(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 60)
    folder = tmp_path / "fmnist"
    write_idx(folder, images, labels)
    monkeypatch.setenv("DATADIET_FASHION_MNIST_DIR", str(folder))
    return folder, images, labels


def prepare(out, **fields):
    cfg = ScoringConfig(output_dir=str(out), **fields)
    state = RunState(out)
    state.prepare(cfg)
    return prepare_data(cfg, state.path, progress=False), state


def entries() -> list:
    root = cache_root()
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def test_fashion_mnist_arrays_equal_decoding_its_png_dataset(tiny_fmnist):
    _, images, labels = tiny_fmnist
    decoded = load_tensors(sources.load_source("fashion_mnist"), progress=False)
    data, _ = prepare(tiny_fmnist[0].parent / "out", dataset="fashion_mnist")
    assert torch.equal(data.tensors.images, decoded.images)
    assert torch.equal(data.tensors.images[:, 0], torch.from_numpy(images))
    assert data.tensors.example_ids == decoded.example_ids
    assert torch.equal(data.labels, torch.from_numpy(labels))


def test_a_second_run_links_the_cached_split_without_loading_the_source(tmp_path, tiny_fmnist, monkeypatch, caplog):
    first, state1 = prepare(tmp_path / "one", dataset="fashion_mnist")
    assert len(entries()) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the source was loaded although the split is cached")

    monkeypatch.setattr(sources, "fashion_mnist_dataset", refuse)
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.data.cache"):
        second, state2 = prepare(tmp_path / "two", dataset="fashion_mnist")
    assert "restored from the cache" in caplog.text
    assert state2.data_path.stat().st_ino == state1.data_path.stat().st_ino  # a link, not a copy
    assert torch.equal(second.tensors.images, first.tensors.images)
    assert second.example_ids.equals(first.example_ids)
    assert (second.mean, second.std, second.plan) == (first.mean, first.std, first.plan)


def test_a_changed_source_or_setting_gets_a_new_entry(tmp_path, tiny_fmnist, caplog):
    folder, images, labels = tiny_fmnist
    prepare(tmp_path / "a", dataset="fashion_mnist")
    changed = images.copy()
    changed[5, 3, 3] ^= 1  # one pixel
    write_idx(folder, changed, labels)
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.data.cache"):
        data, _ = prepare(tmp_path / "b", dataset="fashion_mnist")
    assert "restored" not in caplog.text
    assert int(data.tensors.images[5, 0, 3, 3]) == int(changed[5, 3, 3])
    prepare(tmp_path / "c", dataset="fashion_mnist", image_size=28, augmentation="crop-flip")  # another plan
    assert len(entries()) == 3


def test_a_datasets_source_is_keyed_by_its_fingerprint(tmp_path, caplog):
    data_file = write_image_parquet(tmp_path / "d" / "x.parquet", 40, 8, 1)
    prepare(tmp_path / "a", dataset=str(data_file))
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.data.cache"):
        prepare(tmp_path / "b", dataset=str(data_file))
    assert "restored from the cache" in caplog.text
    caplog.clear()
    write_image_parquet(data_file, 40, 8, 1, seed=1)  # new content, same path
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.data.cache"):
        data, _ = prepare(tmp_path / "c", dataset=str(data_file))
    assert "restored" not in caplog.text
    assert len(entries()) == 2 and len(data) == 40


def test_the_cache_can_be_turned_off(tmp_path, tiny_fmnist, monkeypatch):
    monkeypatch.setenv("DATADIET_DECODED_CACHE", "off")
    assert cache_root() is None
    prepare(tmp_path / "a", dataset="fashion_mnist")
    monkeypatch.setenv("DATADIET_DECODED_CACHE", str(tmp_path / "elsewhere"))
    prepare(tmp_path / "b", dataset="fashion_mnist")
    assert len(entries()) == 1 and entries()[0].parent == tmp_path / "elsewhere"


def _store(root, state_dir, barrier) -> None:
    barrier.wait()
    PreparedCache(root).store("k", state_dir, ("a.bin", "data.json"))


def test_concurrent_writers_and_a_killed_writer_leave_one_complete_entry(tmp_path, caplog):
    state = tmp_path / "state"
    state.mkdir()
    (state / "a.bin").write_bytes(b"x" * 1000)
    (state / "data.json").write_text("{}")
    root = tmp_path / "cache"
    root.mkdir()
    (root / ".k.killed.tmp").mkdir()  # what a writer killed before its rename leaves
    (root / ".k.killed.tmp" / "data.json").write_text("{}")
    cache = PreparedCache(root)
    assert not cache.restore("k", tmp_path / "reader", last="data.json")  # a temporary folder is no entry
    barrier = threading.Barrier(4)  # writers racing to the same rename (threads: the same os.rename semantics)
    writers = [threading.Thread(target=_store, args=(root, state, barrier)) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert "could not cache" not in caplog.text  # the losers of the race notice the entry and stop quietly
    assert sorted(p.name for p in (root / "k").iterdir()) == ["a.bin", "data.json"]
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == [".k.killed.tmp"]  # young: kept a day
    reader = tmp_path / "reader"
    reader.mkdir()
    assert cache.restore("k", reader, last="data.json")
    assert (reader / "a.bin").read_bytes() == b"x" * 1000


def test_grey_png_bytes_decode_to_the_same_pixels():
    import io

    from PIL import Image

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 7, 11), dtype=np.uint8)
    for image, row in zip(images, sources.grey_png_bytes(images)):
        decoded = Image.open(io.BytesIO(row["bytes"]))
        assert decoded.mode == "L"
        np.testing.assert_array_equal(np.asarray(decoded), image)
