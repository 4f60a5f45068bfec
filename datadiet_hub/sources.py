"""Source datasets: the embedded Fashion-MNIST (Debian package) or anything ``datasets.load_dataset`` reads.

Returns a ``datasets.Dataset`` plus the names of its image and label columns, so the scoring engine and the
pruning library see every source the same way.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InvalidArgumentError, SourceNotFoundError, transport_errors

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

FASHION_MNIST = "fashion_mnist"
FASHION_MNIST_APT = "dataset-fashion-mnist"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FMNIST_FILES = {"train": "train", "test": "t10k"}

IMAGE_COLUMN_GUESSES = ("image", "img", "pixel_values", "images", "picture")
LABEL_COLUMN_GUESSES = ("label", "labels", "fine_label", "coarse_label", "target", "class")


@dataclass(frozen=True)
class Source:
    """A loaded split and the facts the card's provenance needs about it."""

    dataset: datasets.Dataset
    image_column: str
    label_column: str
    name: str
    split: str
    revision: str | None = None

    @property
    def num_classes(self) -> int:
        feature = self.dataset.features[self.label_column]
        if hasattr(feature, "num_classes"):
            return int(feature.num_classes)
        return int(max(self.dataset[self.label_column])) + 1


def _read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: magic, dims, then big-endian payload (http://yann.lecun.com/exdb/mnist/)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise InvalidArgumentError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()}).")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_arrays(split: str = "train", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]`` uint8 and labels ``[N]`` of Fashion-MNIST from the Debian package's IDX files."""
    if split not in _FMNIST_FILES:
        raise InvalidArgumentError(f"Fashion-MNIST has splits 'train' and 'test', not {split!r}.")
    root = Path(root or os.environ.get("DATADIET_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    stem = _FMNIST_FILES[split]
    paths = [root / f"{stem}-images-idx3-ubyte.gz", root / f"{stem}-labels-idx1-ubyte.gz"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SourceNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. "
            f"Install them with `sudo apt-get install {FASHION_MNIST_APT}` "
            "(or point DATADIET_FASHION_MNIST_DIR at a folder holding the IDX files)."
        )
    images, labels = _read_idx(paths[0]), _read_idx(paths[1])
    if len(images) != len(labels):
        raise InvalidArgumentError(f"{root}: {len(images)} images but {len(labels)} labels.")
    return images, labels.astype(np.int64)


def fashion_mnist_dataset(split: str = "train", root: str | os.PathLike | None = None) -> datasets.Dataset:
    """Fashion-MNIST as a ``datasets.Dataset`` with ``Image`` and ``ClassLabel`` features (like the Hub copy)."""
    import datasets

    images, labels = fashion_mnist_arrays(split, root)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_CLASSES)}
    )
    # Raw arrays go in as PNG bytes so the dataset is what a user gets from the Hub; batched for speed.
    import io

    from PIL import Image

    def encode(start: int, stop: int) -> list[dict]:
        out = []
        for array in images[start:stop]:
            buffer = io.BytesIO()
            Image.fromarray(array, mode="L").save(buffer, format="PNG", compress_level=1)
            out.append({"bytes": buffer.getvalue(), "path": None})
        return out

    return datasets.Dataset.from_dict({"image": encode(0, len(images)), "label": labels}, features=features)


def _guess(columns: list[str], guesses: tuple[str, ...], what: str, flag: str) -> str:
    for name in guesses:
        if name in columns:
            return name
    raise InvalidArgumentError(f"Cannot find the {what} column among {columns}; name it with {flag}.")


def detect_columns(
    dataset: datasets.Dataset,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[str, str]:
    """Pick the image and label columns: given names are checked, missing ones guessed from features and names."""
    import datasets

    columns = list(dataset.column_names)
    for given, flag in ((image_column, "--image-column"), (label_column, "--label-column")):
        if given is not None and given not in columns:
            raise InvalidArgumentError(f"Column {given!r} ({flag}) is not in the dataset; columns are {columns}.")
    if image_column is None:
        typed = [c for c in columns if isinstance(dataset.features[c], datasets.Image)]
        image_column = (
            typed[0] if len(typed) == 1 else _guess(columns, IMAGE_COLUMN_GUESSES, "image", "--image-column")
        )
    if label_column is None:
        typed = [c for c in columns if isinstance(dataset.features[c], datasets.ClassLabel)]
        label_column = (
            typed[0] if len(typed) == 1 else _guess(columns, LABEL_COLUMN_GUESSES, "label", "--label-column")
        )
    return image_column, label_column


def load_source(
    name: str,
    *,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
) -> Source:
    """Load a split by name: ``fashion_mnist`` reads the Debian package, anything else goes to ``load_dataset``.

    ``name`` may be a Hub id (``uoft-cs/cifar10``), a local folder, or a builder such as ``parquet`` with
    ``data_files``.
    """
    if name in (FASHION_MNIST, "fashion-mnist") and data_files is None:
        dataset = fashion_mnist_dataset(split)
        return Source(
            dataset, "image", "label", name=FASHION_MNIST, split=split, revision=f"debian:{FASHION_MNIST_APT}"
        )
    import datasets

    if data_files is None and _saved_to_disk(name):  # `Dataset.save_to_disk` (the default `datadiet prune` output)
        dataset = _load_from_disk(name, split)
        image_column, label_column = detect_columns(dataset, image_column, label_column)
        return Source(dataset, image_column, label_column, name=name, split=split, revision=revision)
    if data_files is None and _looks_local(name) and not os.path.exists(name):
        raise SourceNotFoundError(
            f"Could not load dataset {name!r}: there is no such file or folder (relative to {os.getcwd()}). Check the "
            "path (a dataset given by name looks like 'owner/name', with no file extension)."
        )
    if os.path.isfile(name) and data_files is None:  # a single parquet/csv/json file
        builder = Path(name).suffix.lstrip(".").replace("jsonl", "json")
        name, data_files = builder, name
    try:
        dataset = datasets.load_dataset(name, split=split, revision=revision, data_files=data_files)
    except transport_errors() as err:  # datasets' ConnectionError "Couldn't reach ... on the Hub"
        from .hub import as_hub_error

        raise as_hub_error(f"Loading dataset {name!r} split {split!r}", err, secret=None) from err
    except (FileNotFoundError, ValueError) as err:
        raise SourceNotFoundError(f"Could not load dataset {name!r} split {split!r}: {err}") from err
    image_column, label_column = detect_columns(dataset, image_column, label_column)
    return Source(dataset, image_column, label_column, name=name, split=split, revision=revision)


_LOCAL_SUFFIXES = (".parquet", ".arrow", ".csv", ".tsv", ".json", ".jsonl", ".txt")


def _looks_local(name: str) -> bool:
    """A path rather than a Hub id: starts like one, or ends in a data file extension."""
    return name.startswith(("/", "./", "../", "~")) or name.lower().endswith(_LOCAL_SUFFIXES)


def _saved_to_disk(name: str) -> bool:
    folder = Path(name)
    return folder.is_dir() and ((folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file())


def _load_from_disk(name: str, split: str) -> datasets.Dataset:
    """A folder written by ``Dataset.save_to_disk`` (or ``DatasetDict.save_to_disk``: then ``split`` picks one)."""
    import datasets

    loaded = datasets.load_from_disk(name)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise SourceNotFoundError(f"{name} has splits {sorted(loaded)}, not {split!r}; choose one with --split.")
        return loaded[split]
    return loaded
