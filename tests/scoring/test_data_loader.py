"""The DataLoader path: batches carry idx, equal the in-memory path's batches on fixed-size data, and are the same
whatever the number of workers, after a resume mid-epoch, and on the streamed path; the manifest pass gives the
in-memory path's ids and statistics; the automatic choice between the two paths and its reasons."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datadiet_hub.hashing import example_id
from datadiet_hub.scoring.data import Preprocess, channel_stats, load_tensors
from datadiet_hub.scoring.data.loader import Inputs, epoch_batches, model_inputs, scan, to_device
from datadiet_hub.scoring.data.plan import choose_path, image_geometry, probe, resolve_train_augmentation
from datadiet_hub.sources import load_source


def collect(loader) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


def same_batches(a, b) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


@pytest.fixture(scope="module")
def grey(tiny_parquet):
    source = load_source(str(tiny_parquet))
    inputs = Inputs("image", source.input_column, source.label_column, image_size=8, channels=1)
    return source, inputs


def test_loader_batches_equal_the_in_memory_batches(grey):
    source, inputs = grey
    data = load_tensors(source, progress=False)
    mean, std = channel_stats(data.images)
    pre = Preprocess(mean, std, "none")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(3))
    batches = collect(epoch_batches(source.dataset, inputs, batch_size=32, train=True, order=order, num_workers=0))
    assert len(batches) == 7 and len(batches[-1]["idx"]) == 203 - 6 * 32
    for b, batch in enumerate(batches):
        idx = order[b * 32 : (b + 1) * 32]
        assert torch.equal(batch["idx"], idx) and torch.equal(batch["labels"], data.labels[idx])
        moved = to_device(batch, torch.device("cpu"), mean=torch.tensor(mean), std=torch.tensor(std))
        assert torch.equal(moved["pixel_values"], pre(data.images[idx]))  # bit-identical inputs
        assert set(model_inputs(moved)) == {"pixel_values"}


def test_manifest_matches_the_in_memory_ids_and_statistics(grey):
    source, inputs = grey
    data = load_tensors(source, progress=False)
    manifest = scan(source.dataset, inputs, batch_size=50, num_workers=2, progress=False)
    assert [i.decode() for i in manifest.example_ids] == data.example_ids
    assert np.array_equal(manifest.labels, data.labels.numpy()) and manifest.num_classes == 4
    mean, std = manifest.mean_std()
    np.testing.assert_allclose(mean, channel_stats(data.images)[0], rtol=1e-9)
    np.testing.assert_allclose(std, channel_stats(data.images)[1], rtol=1e-6)


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    """An imagefolder of 60 images in 3 classes: sizes 12-40 px, modes RGB/L/RGBA/P, PNG and JPEG."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for i in range(60):
        label = i % 3
        w, h = (int(v) for v in rng.integers(12, 41, 2))
        array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        array[..., label] = 255
        image = Image.fromarray(array)
        mode = ["RGB", "L", "RGBA", "P"][i % 4]
        image = image.convert(mode) if mode != "P" else image.quantize(16)
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        fmt = "jpg" if mode in ("RGB", "L") and i % 8 < 4 else "png"
        image.save(folder / f"{i:03d}.{fmt}")
    return root


@pytest.fixture(scope="module")
def colour(colour_folder):
    source = load_source(str(colour_folder))
    probed = probe(source.dataset, source.input_column, "image")
    size, channels, reason = image_geometry(probed, image_size=16, channels=None)
    assert (size, channels) == (16, 3) and "majority" in reason
    return source, Inputs("image", source.input_column, source.label_column, size, channels, "resized-crop-flip")


def test_training_batches_do_not_depend_on_workers_and_resume_exactly(colour):
    source, inputs = colour
    order = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    kwargs = dict(batch_size=16, train=True, seed=4, epoch=2, order=order)
    alone = collect(epoch_batches(source.dataset, inputs, num_workers=0, **kwargs))
    pooled = collect(epoch_batches(source.dataset, inputs, num_workers=2, **kwargs))
    assert same_batches(alone, pooled)
    resumed = collect(epoch_batches(source.dataset, inputs, num_workers=2, start_batch=2, **kwargs))
    assert same_batches(alone[2:], resumed)
    assert alone[0]["pixel_values"].shape == (16, 3, 16, 16) and alone[0]["pixel_values"].dtype == torch.uint8
    other_epoch = collect(epoch_batches(source.dataset, inputs, num_workers=0, **{**kwargs, "epoch": 3}))
    assert not torch.equal(alone[0]["pixel_values"], other_epoch[0]["pixel_values"])  # augmentation per epoch
    scoring = collect(epoch_batches(source.dataset, inputs, batch_size=16, train=False, num_workers=0))
    again = collect(epoch_batches(source.dataset, inputs, batch_size=16, train=False, num_workers=2))
    assert same_batches(scoring, again)


def test_augmentation_is_per_row_not_per_batch_position(colour):
    """A row gets the same crop in an epoch whatever batch it falls in (seeded by seed, epoch, idx)."""
    source, inputs = colour
    first = collect(epoch_batches(source.dataset, inputs, batch_size=7, train=True, seed=1, order=np.arange(60)))
    second = collect(
        epoch_batches(source.dataset, inputs, batch_size=5, train=True, seed=1, order=np.arange(60)[::-1])
    )
    a = torch.cat([b["pixel_values"] for b in first])
    b = torch.cat([b["pixel_values"] for b in second]).flip(0)
    assert torch.equal(a, b)


def test_streamed_batches_are_deterministic_resumable_and_complete(colour_folder):
    source = load_source(str(colour_folder), streaming=True)
    assert source.streaming
    inputs = Inputs("image", source.input_column, source.label_column, 16, 3, "resized-crop-flip")
    kwargs = dict(batch_size=8, train=True, seed=0, epoch=1, shuffle_seed=123)
    alone = collect(epoch_batches(source.dataset, inputs, num_workers=0, **kwargs))
    pooled = collect(epoch_batches(source.dataset, inputs, num_workers=2, **kwargs))
    assert same_batches(alone, pooled)
    seen = torch.cat([b["idx"] for b in alone])
    assert sorted(seen.tolist()) == list(range(60)) and seen.tolist() != list(range(60))  # shuffled, complete
    assert same_batches(alone[3:], collect(epoch_batches(source.dataset, inputs, start_batch=3, **kwargs)))
    shards = [collect(epoch_batches(source.dataset, inputs, batch_size=8, train=False, keep=(r, 2))) for r in (0, 1)]
    rows = sorted(torch.cat([b["idx"] for s in shards for b in s]).tolist())
    assert rows == list(range(60))
    # the streamed scoring view equals the map-style one for the same rows
    mapped = load_source(str(colour_folder))
    plain = collect(epoch_batches(mapped.dataset, inputs, batch_size=8, train=False))
    streamed = collect(epoch_batches(source.dataset, inputs, batch_size=8, train=False))
    assert same_batches(plain, streamed)


def test_manifest_of_a_varied_folder_and_of_its_stream(colour_folder, colour):
    source, inputs = colour
    manifest = scan(source.dataset, inputs, batch_size=16, num_workers=0, progress=False)
    row = source.dataset[7]
    assert manifest.example_ids[7].decode() == example_id(np.asarray(row["image"]), row["label"])
    assert len(manifest) == 60 and len(manifest.mean_std()[0]) == 3
    streamed = scan(load_source(str(colour_folder), streaming=True).dataset, inputs, batch_size=16, progress=False)
    assert np.array_equal(streamed.example_ids, manifest.example_ids)
    np.testing.assert_allclose(streamed.mean_std(), manifest.mean_std())


def test_manifest_save_load_roundtrip(tmp_path, grey):
    source, inputs = grey
    manifest = scan(source.dataset, inputs, num_workers=0, progress=False)
    manifest.save(tmp_path / "m.npz")
    again = type(manifest).load(tmp_path / "m.npz")
    assert np.array_equal(again.example_ids, manifest.example_ids) and again.mean_std() == manifest.mean_std()


def test_path_choice_and_reasons(grey, colour):
    source, _ = grey
    fixed = probe(source.dataset, source.input_column, "image")
    assert fixed.fixed_size == (8, 8) and fixed.modes == {"L": 203}
    path, reason = choose_path(
        requested="auto", kind="image", streaming=False, num_rows=203, probed=fixed, image_size=8, channels=1
    )
    assert path == "memory" and "fit in memory" in reason
    path, reason = choose_path(
        requested="auto", kind="image", streaming=False, num_rows=203, probed=fixed, image_size=16, channels=1
    )
    assert path == "loader" and "resize" in reason
    varied = probe(colour[0].dataset, "image", "image")
    path, reason = choose_path(
        requested="auto", kind="image", streaming=False, num_rows=60, probed=varied, image_size=16, channels=3
    )
    assert path == "loader" and "sizes vary" in reason
    with pytest.raises(ValueError, match="--data-path memory cannot hold this split: image sizes vary"):
        choose_path(
            requested="memory", kind="image", streaming=False, num_rows=60, probed=varied, image_size=16, channels=3
        )
    assert (
        choose_path(
            requested="loader", kind="image", streaming=False, num_rows=203, probed=fixed, image_size=8, channels=1
        )[0]
        == "loader"
    )
    path, reason = choose_path(
        requested="auto", kind="image", streaming=False, num_rows=10**9, probed=fixed, image_size=8, channels=1
    )
    assert path == "loader" and "exceeds the in-memory budget" in reason
    assert resolve_train_augmentation("auto", kind="image", path="loader", image_size=32, channels=3, varied=True) == (
        "resized-crop-flip"
    )
    assert resolve_train_augmentation(
        "auto", kind="image", path="memory", image_size=28, channels=1, varied=False
    ) == ("none")
