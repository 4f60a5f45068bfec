"""Sources: Fashion-MNIST from the Debian package's IDX files (or a clear error), other datasets via datasets."""

import gzip
import struct

import numpy as np
import pytest

from datadiet_hub.columns import Columns, InputKind, detect_columns
from datadiet_hub.errors import SourceNotFoundError
from datadiet_hub.hashing import example_id, fingerprint
from datadiet_hub.sources import fashion_mnist_dataset, load_source


def write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fmnist(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 10
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv("DATADIET_FASHION_MNIST_DIR", str(tmp_path))
    return images, labels


def test_fashion_mnist_reads_idx_into_image_and_classlabel(fake_fmnist):
    import datasets

    images, labels = fake_fmnist
    ds = fashion_mnist_dataset("train")
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"].names[9] == "Ankle boot"
    assert len(ds) == 12 and ds["label"] == labels.tolist()
    assert np.array_equal(np.asarray(ds[3]["image"]), images[3])  # lossless
    # the content hash of the decoded image equals the hash of the raw IDX array
    assert example_id(ds[3]["image"], 3) == example_id(images[3], 3)


def test_missing_package_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setenv("DATADIET_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(SourceNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_source("fashion_mnist")


def test_other_sources_go_to_load_dataset_with_detected_columns(tmp_path, image_dataset):
    path = tmp_path / "tiny.parquet"
    image_dataset.rename_column("image", "img").to_parquet(str(path))
    source = load_source(str(path))
    assert source.columns == Columns("img", InputKind.IMAGE, "label")
    assert len(source.dataset) == len(image_dataset)
    with pytest.raises(ValueError, match="Column 'pixels' .--image-column. is not in the dataset"):
        detect_columns(source.dataset, image_column="pixels")


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(SourceNotFoundError, match="Could not load dataset"):
        load_source(str(tmp_path / "nothing-here"))


def test_example_id_depends_on_pixels_and_label_only():
    a = np.zeros((4, 4), dtype=np.uint8)
    assert example_id(a, 1) == example_id(a.copy(), 1)
    assert example_id(a, 1) != example_id(a, 2)
    b = a.copy()
    b[0, 0] = 1
    assert example_id(a, 1) != example_id(b, 1)
    assert fingerprint(["a", "b"]) != fingerprint(["b", "a"])


def test_a_latin1_csv_is_one_error_and_no_raw_log_line_from_datasets(tmp_path, caplog):
    """datasets' csv builder logs "Failed to read file ..." at ERROR before raising: the CLI (whose logging prints
    warnings and errors) showed that raw line above its own `error:` line."""
    import logging

    from datadiet_hub.errors import InvalidArgumentError

    path = tmp_path / "quotes.csv"
    path.write_bytes(
        "Sentence,lang\nDie Straße ist naß,german\nGrüß Gott,german\nhello there,english\n".encode("latin-1")
    )
    with caplog.at_level(logging.WARNING), pytest.raises(InvalidArgumentError, match="not UTF-8"):
        load_source(str(path), for_scoring=False)
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("datasets")]
