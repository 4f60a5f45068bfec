"""A string column holding image file paths (a CSV with ``image,label`` rows pointing at PNG files) is not text:
column detection refuses it with the cast that makes it images, and the cast dataset is detected as images."""

from __future__ import annotations

import csv

import datasets
import numpy as np
import pytest

from datadiet_hub.columns import InputKind, detect_columns
from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.sources import fashion_mnist_arrays, grey_png_bytes, load_source


@pytest.fixture(scope="module")
def png_csv(tmp_path_factory):
    """Twelve real Fashion-MNIST images written as PNG files, and a CSV naming them by absolute path."""
    folder = tmp_path_factory.mktemp("pngs")
    images, labels = fashion_mnist_arrays("test")
    rows = []
    for i, png in enumerate(grey_png_bytes(images[:12])):
        path = folder / f"{i}.png"
        path.write_bytes(png["bytes"])
        rows.append({"image": str(path), "label": int(labels[i])})
    table = folder / "images.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return table


def test_a_column_of_png_paths_is_refused_with_the_cast(png_csv):
    ds = datasets.load_dataset("csv", data_files=str(png_csv), split="train")
    with pytest.raises(InvalidArgumentError, match="image file paths") as info:
        detect_columns(ds)
    message = str(info.value)
    assert "cast_column('image', datasets.Image())" in message and "8 of the first 8 exist" in message
    with pytest.raises(InvalidArgumentError, match="image file paths"):
        load_source(str(png_csv))  # what `datadiet score --dataset images.csv` and `datadiet prune` read
    with pytest.raises(InvalidArgumentError, match="image file paths"):
        detect_columns(ds, input_column="image")
    with pytest.raises(InvalidArgumentError, match="image file paths"):
        detect_columns(ds[:4])  # a batch, as Dataset.filter passes it


def test_the_cast_column_is_detected_as_images_and_decodes_the_pixels(png_csv):
    ds = datasets.load_dataset("csv", data_files=str(png_csv), split="train").cast_column("image", datasets.Image())
    columns = detect_columns(ds)
    assert (columns.input, columns.kind, columns.label) == ("image", InputKind.IMAGE, "label")
    images, _ = fashion_mnist_arrays("test")
    assert np.array_equal(np.asarray(ds[3]["image"]), images[3])


def test_text_column_reads_the_paths_as_text_when_asked(png_csv):
    ds = datasets.load_dataset("csv", data_files=str(png_csv), split="train")
    assert detect_columns(ds, text_column="image").kind is InputKind.TEXT


def test_a_named_image_column_of_extensionless_paths_and_plain_text_are_told_apart(tmp_path):
    paths = datasets.Dataset.from_dict({"img": ["scans/0001", "scans/0002"], "label": [0, 1]})
    with pytest.raises(InvalidArgumentError, match="image file paths"):
        detect_columns(paths)
    prose = datasets.Dataset.from_dict({"text": ["see photo.png here", "a/b and c"], "label": [0, 1]})
    assert detect_columns(prose).kind is InputKind.TEXT
