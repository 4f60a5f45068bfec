"""Sources (parquet file, parquet via data_files, a dataset folder, a tiny IDX Fashion-MNIST folder), tensors that
keep idx, normalisation computed or given, and the training augmentation (never used for scoring)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
import yaml
from conftest import make_images, read_scores, tiny_config, write_image_parquet

from datadiet_hub.hashing import example_id
from datadiet_hub.scoring.data import Preprocess, channel_stats, crop_flip, load_tensors, resolve_augmentation
from datadiet_hub.scoring.run import run
from datadiet_hub.sources import load_source


def test_parquet_file_keeps_row_order_and_ids(tiny_parquet):
    images, labels = make_images(203, 8, 1, 4)
    source = load_source(str(tiny_parquet))
    assert (source.input_column, source.label_column, source.num_classes) == ("image", "label", 4)
    data = load_tensors(source, progress=False)
    assert data.images.shape == (203, 1, 8, 8) and data.images.dtype == torch.uint8
    np.testing.assert_array_equal(data.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    assert data.example_ids[5] == example_id(images[5], int(labels[5]))


def test_data_files_source_and_folder_source(tmp_path, tiny_parquet):
    by_files = load_tensors(load_source("parquet", data_files=[str(tiny_parquet)]), progress=False)
    folder = tmp_path / "folder"
    write_image_parquet(folder / "data" / "train-00000-of-00001.parquet", 203, 8, 1)
    by_folder = load_tensors(load_source(str(folder)), progress=False)
    assert by_files.example_ids == by_folder.example_ids
    rgb = load_tensors(
        load_source(str(write_image_parquet(tmp_path / "rgb.parquet", 10, 8, 3, 3, image_column="img"))),
        progress=False,
    )
    assert rgb.images.shape == (10, 3, 8, 8) and rgb.num_classes == 3


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_a_tiny_idx_folder(tmp_path, monkeypatch):
    images, labels = make_images(12, 28, 1, 10)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv("DATADIET_FASHION_MNIST_DIR", str(tmp_path))
    data = load_tensors(load_source("fashion_mnist"), progress=False)
    assert data.shape == (1, 28, 28) and data.num_classes == 10
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    np.testing.assert_array_equal(data.images[:, 0].numpy(), images)


def test_unlabelled_rows_are_refused(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"image": list(np.zeros((3, 4, 4), np.uint8)), "label": [0, -1, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    ds.to_parquet(str(tmp_path / "u.parquet"))
    with pytest.raises(ValueError, match="Row 1 .* has label -1: scoring needs every row labelled"):
        load_tensors(load_source(str(tmp_path / "u.parquet")), progress=False)


def test_channel_stats_match_numpy():
    images = torch.randint(0, 256, (20, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3), ddof=1))


def test_given_normalisation_is_used_and_recorded(tmp_path, tiny_parquet):
    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, seeds=[0], mean=[0.25], std=[0.5]), progress=False)
    scoring = yaml.safe_load((out / "README.md").read_text().split("---")[1])["datadiet"]["scoring"]
    assert (scoring["mean"], scoring["std"]) == ([0.25], [0.5])
    with pytest.raises(ValueError, match="mean/std have 3 values but the images have 1 channel"):
        run(tiny_config(tmp_path / "other", tiny_parquet, seeds=[0], mean=[0.1] * 3, std=[0.2] * 3), progress=False)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((3, 32, 32), "crop-flip"),
        ((3, 64, 64), "crop-flip"),
        ((1, 28, 28), "none"),
        ((3, 8, 8), "none"),
        ((1, 32, 32), "none"),
    ],
)
def test_auto_augmentation(shape, expected):
    assert resolve_augmentation("auto", shape) == expected
    assert resolve_augmentation("none", shape) == "none"
    assert resolve_augmentation("crop-flip", shape) == "crop-flip"


def test_crop_flip_is_a_shifted_possibly_flipped_window_and_deterministic():
    x = torch.rand(64, 3, 8, 8)
    a = crop_flip(x, torch.Generator().manual_seed(1))
    b = crop_flip(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(a[i], w) or torch.equal(a[i], w.flip(-1)) for w in windows)
    assert not torch.equal(a, x)
    assert not torch.equal(a, crop_flip(x, torch.Generator().manual_seed(2)))


def test_preprocess_augments_only_training_batches():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    pre = Preprocess([0.5] * 3, [0.25] * 3, "crop-flip")
    plain = pre(images)
    torch.testing.assert_close(plain, (images.float() / 255 - 0.5) / 0.25)
    assert not torch.equal(pre(images, train=True, generator=torch.Generator().manual_seed(0)), plain)
    assert torch.equal(Preprocess([0.5] * 3, [0.25] * 3, "none")(images, train=True), plain)


def test_scores_do_not_depend_on_the_eval_batch_size(tmp_path, tiny_parquet):
    """Scoring is per example (eval mode): how rows are batched for the forward pass does not change a score."""
    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, seeds=[0], at=[1], eval_batch_size=7), progress=False)
    first = read_scores(out, "cnn-ep1")["el2n"]
    out2 = tmp_path / "out2"
    run(tiny_config(out2, tiny_parquet, seeds=[0], at=[1], eval_batch_size=203), progress=False)
    np.testing.assert_allclose(first, read_scores(out2, "cnn-ep1")["el2n"], rtol=1e-5, atol=1e-6)
