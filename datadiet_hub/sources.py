"""Source datasets: the embedded Fashion-MNIST (Debian package) or anything ``datasets.load_dataset`` reads.

Returns a ``datasets.Dataset`` (or, with ``streaming=True``, a ``datasets.IterableDataset``) plus its ``Columns``
(input column, input kind, label column) as ``datadiet_hub.columns.detect_columns`` decides them, the one rule the
scoring engine, ``keep``, ``prune`` and the CLI share.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ._datasets_compat import arrow_column
from .columns import Columns, InputKind, column_roles, detect_columns
from .errors import InvalidArgumentError, SourceNotFoundError, transport_errors
from .hub import as_hub_error

logger = logging.getLogger(__name__)

FASHION_MNIST = "fashion_mnist"
FASHION_MNIST_APT = "dataset-fashion-mnist"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FMNIST_FILES = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class Source:
    """A loaded split, its ``Columns`` (input, kind, label; see ``datadiet_hub.columns``) and the facts the card's
    provenance needs about it."""

    dataset: datasets.Dataset | datasets.IterableDataset
    columns: Columns
    name: str
    split: str
    revision: str | None = None

    @property
    def input_column(self) -> str:
        return self.columns.input

    @property
    def label_column(self) -> str:
        if self.columns.label is None:  # detect_columns requires a label for every Source
            raise InvalidArgumentError(f"{self.name!r} has no label column; name it with --label-column.")
        return self.columns.label

    @property
    def kind(self) -> InputKind:
        """What the input column holds."""
        return self.columns.kind

    @property
    def streaming(self) -> bool:
        return isinstance(self.dataset, datasets.IterableDataset)

    @property
    def num_classes(self) -> int:
        features = self.dataset.features or {}
        feature = features.get(self.label_column)
        if feature is not None and hasattr(feature, "num_classes"):
            return int(feature.num_classes)
        if self.streaming:
            raise InvalidArgumentError(
                f"The label column {self.label_column!r} of the streamed {self.name!r} has no ClassLabel feature, "
                "so its number of classes is known only after a pass over the data (the scoring engine makes one)."
            )
        return int(max(self.dataset[self.label_column])) + 1

    @property
    def class_names(self) -> list[str] | None:
        feature = (self.dataset.features or {}).get(self.label_column)
        return list(feature.names) if feature is not None and hasattr(feature, "names") else None


def _read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: magic, dims, then big-endian payload (http://yann.lecun.com/exdb/mnist/)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise SourceNotFoundError(
            f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()}); reinstall the Debian package "
            f"{FASHION_MNIST_APT}.",
            path=path,
        )
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_files(split: str = "train", root: str | os.PathLike | None = None) -> list[Path]:
    """The IDX files (images, labels) of a Fashion-MNIST split; they may not exist."""
    if split not in _FMNIST_FILES:
        raise InvalidArgumentError(f"Fashion-MNIST has splits 'train' and 'test', not {split!r}.", value=split)
    folder = Path(root or os.environ.get("DATADIET_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    stem = _FMNIST_FILES[split]
    return [folder / f"{stem}-images-idx3-ubyte.gz", folder / f"{stem}-labels-idx1-ubyte.gz"]


def is_fashion_mnist(name: str, data_files: Any = None) -> bool:
    """Whether ``load_source(name, data_files=...)`` reads the embedded Fashion-MNIST."""
    return name in (FASHION_MNIST, "fashion-mnist") and data_files is None


def fashion_mnist_arrays(split: str = "train", root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 28, 28]`` uint8 and labels ``[N]`` of Fashion-MNIST from the Debian package's IDX files."""
    paths = fashion_mnist_files(split, root)
    root = paths[0].parent
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SourceNotFoundError(
            f"Fashion-MNIST files not found: {', '.join(missing)}. "
            f"Install them with `sudo apt-get install {FASHION_MNIST_APT}` "
            "(or point DATADIET_FASHION_MNIST_DIR at a folder holding the IDX files)."
        )
    images, labels = _read_idx(paths[0]), _read_idx(paths[1])
    if len(images) != len(labels):
        raise SourceNotFoundError(
            f"{root}: {len(images)} images but {len(labels)} labels; the IDX files are damaged, reinstall "
            f"{FASHION_MNIST_APT}.",
            path=root,
        )
    return images, labels.astype(np.int64)


def fashion_mnist_dataset(split: str = "train", root: str | os.PathLike | None = None) -> datasets.Dataset:
    """Fashion-MNIST as a ``datasets.Dataset`` with ``Image`` and ``ClassLabel`` features (like the Hub copy)."""
    images, labels = fashion_mnist_arrays(split, root)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=FASHION_MNIST_CLASSES)}
    )
    # Raw arrays go in as PNG bytes so the dataset is what a user gets from the Hub (pixels decode unchanged).
    return datasets.Dataset.from_dict({"image": grey_png_bytes(images), "label": labels}, features=features)


def grey_png_bytes(images: np.ndarray) -> list[dict]:
    """``[N, H, W]`` uint8 images as ``{"bytes": PNG, "path": None}`` rows, written without PIL.

    Each PNG holds one stored (uncompressed) deflate block with filter 0 on every row: far cheaper than PIL's
    encoder at level 1 (which made building the 60,000-row split cost seconds on every run) for a larger file; any
    PNG reader decodes the same pixels.
    """
    count, height, width = images.shape
    raw = np.zeros((count, height, width + 1), np.uint8)  # a 0 filter byte before every row
    raw[:, :, 1:] = images
    pack = struct.Struct(">I").pack

    def chunk(kind: bytes, data: bytes) -> bytes:
        return pack(len(data)) + kind + data + pack(zlib.crc32(kind + data))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    tail = chunk(b"IEND", b"")
    idat_crc = zlib.crc32(b"IDAT")
    rows = []
    for pixels in raw:
        data = zlib.compress(pixels.tobytes(), 0)
        rows.append(
            {
                "bytes": b"".join((head, pack(len(data)), b"IDAT", data, pack(zlib.crc32(data, idat_crc)), tail)),
                "path": None,
            }
        )
    return rows


def _is_text(feature: Any) -> bool:
    return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")


def check_rows(dataset: datasets.Dataset, columns: Columns) -> None:
    """Refuse, with one clear error, a split that cannot be trained on: a null label, a single class, and for
    text a null or empty text. Reads only those columns, through arrow."""
    import pyarrow.compute as pc

    label = columns.label
    assert label is not None
    labels = arrow_column(dataset, label)
    if labels.null_count:
        first = pc.index(pc.is_null(labels), True).as_py()
        raise InvalidArgumentError(
            f"{labels.null_count} row(s) have no label in column {label!r} (first: row {first}); drop them "
            f"(ds.filter(lambda row: row[{label!r}] is not None)) or give them a class.",
            column=label,
            value=labels.null_count,
        )
    classes = pc.unique(labels)
    if len(classes) < 2 and len(dataset) > 0:
        raise InvalidArgumentError(
            f"Every row has the label {classes[0].as_py()!r} (column {label!r}): scoring ranks examples by how hard "
            "they are to classify, which needs at least two classes. Check --label-column.",
            column=label,
            value=classes[0].as_py() if len(classes) else None,
        )
    if columns.kind is InputKind.TEXT:
        texts = arrow_column(dataset, columns.input)
        blank = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(texts)), 0), True)
        count = pc.sum(blank).as_py() or 0
        if count:
            first = pc.index(blank, True).as_py()
            raise InvalidArgumentError(
                f"{count} row(s) have a null or empty text in column {columns.input!r} (first: row {first}); drop "
                f"them first (ds.filter(lambda row: bool(row[{columns.input!r}] and row[{columns.input!r}].strip())).",
                column=columns.input,
                value=count,
            )


def _encode_string_labels(dataset: datasets.Dataset, label_column: str) -> datasets.Dataset:
    """A string label column (``"de"``, ``"fr"``) as a ``ClassLabel`` with the sorted names as classes 0..K-1."""
    feature = dataset.features[label_column]
    if _is_text(feature):
        logger.info("label column %r holds strings: encoding them as classes (sorted names)", label_column)
        return dataset.class_encode_column(label_column)
    return dataset


FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".tsv": "csv"}


def _logged(columns: Columns, name: str) -> Columns:
    logger.info(
        "%s: input column %r (%s), label column %r (datadiet_hub.columns.detect_columns; name them with "
        "--input-column / --label-column)",
        name,
        columns.input,
        columns.kind.value,
        columns.label,
    )
    return columns


def load_source(
    name: str,
    *,
    split: str = "train",
    input_column: str | None = None,
    label_column: str | None = None,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
    streaming: bool = False,
    image_column: str | None = None,
    text_column: str | None = None,
    for_scoring: bool = True,
    require_label: bool = True,
    recorded: tuple[str | None, str | None] = (None, None),
    opened: tuple[datasets.Dataset | datasets.IterableDataset, str] | None = None,
) -> Source:
    """Load a split by name: ``fashion_mnist`` reads the Debian package, anything else goes to ``load_dataset``.

    ``name`` may be a Hub id (``uoft-cs/cifar10``), a local folder (an ``imagefolder`` layout or data files), a
    single ``.parquet``/``.csv``/``.json(l)`` file, or a builder such as ``parquet`` with ``data_files``.
    ``streaming=True`` returns a ``datasets.IterableDataset`` read lazily (memory flat in the number of rows).
    For scoring (``for_scoring=True``, not streamed) the rows are checked (``check_rows``) and a string label
    column is encoded as classes (sorted names); ``for_scoring=False`` leaves the rows as loaded. Columns: ``detect_columns``
    (``image_column``/``text_column`` are older names of ``input_column`` that also fix the kind). ``recorded``: the
    (input, label) columns a score card records, used when no column is named and the dataset has both, so that a
    dataset scored with ``--label-column`` is read back the same way without the flag. ``opened``: what
    ``open_split`` returned for these arguments, when the caller has opened the split already.
    """
    named: dict[str, Any] = dict(
        input_column=input_column,
        label_column=label_column,
        image_column=image_column,
        text_column=text_column,
        require_label=require_label,  # False: an unlabeled corpus (scored by language models)
    )

    def pick_columns(dataset: Any) -> Columns:  # the card's columns first, when none is named
        none_named = all(named[k] is None for k in ("input_column", "label_column", "image_column", "text_column"))
        if none_named and all(recorded) and set(recorded) <= set(column_roles(dataset)):
            return detect_columns(dataset, input_column=recorded[0], label_column=recorded[1])
        return detect_columns(dataset, **named)

    if is_fashion_mnist(name, data_files):
        dataset = fashion_mnist_dataset(split)
        return Source(
            dataset.to_iterable_dataset() if streaming else dataset,
            pick_columns(dataset),
            name=FASHION_MNIST,
            split=split,
            revision=f"debian:{FASHION_MNIST_APT}",
        )

    if opened is None:
        opened = open_split(name, split=split, revision=revision, data_files=data_files, streaming=streaming)
    dataset, shown = opened
    columns = _logged(pick_columns(dataset), shown)
    if for_scoring and isinstance(dataset, datasets.Dataset):
        check_rows(dataset, columns)
        dataset = dataset if columns.label is None else _encode_string_labels(dataset, columns.label)
    if streaming and isinstance(dataset, datasets.Dataset):  # a save_to_disk folder, checked first
        dataset = dataset.to_iterable_dataset()
    return Source(dataset, columns, name=shown, split=split, revision=revision)


def open_split(
    name: str,
    *,
    split: str = "train",
    revision: str | None = None,
    data_files: str | list[str] | None = None,
    streaming: bool = False,
) -> tuple[datasets.Dataset | datasets.IterableDataset, str]:
    """The split as ``datasets`` reads it, and the name to show for it: the one set of rules for what a dataset
    argument means (``load_source`` and the corpus run both open splits here).

    ``name``: a folder written by ``save_to_disk`` (``split`` picks one of a ``DatasetDict``), a Hub id, a local
    folder of data files, one ``.parquet``/``.csv``/``.tsv``/``.json(l)`` file (shown as given), or a builder
    (``parquet``, ``json``) with ``data_files``. A missing local path, an unknown file type, an unreachable Hub and an
    unparsable file each raise one error of ours. ``streaming=True`` gives an ``IterableDataset``, except for a
    ``save_to_disk`` folder: that is memory-mapped already and comes back as a ``Dataset`` (flat in memory as well;
    ``.to_iterable_dataset()`` streams it).
    """
    if data_files is None and _saved_to_disk(name):  # `Dataset.save_to_disk` (the default `datadiet prune` output)
        return _load_from_disk(name, split), name
    if data_files is None and _looks_local(name) and not os.path.exists(name):
        raise SourceNotFoundError(
            f"Could not load dataset {name!r}: there is no such file or folder (relative to {os.getcwd()}). Check the "
            "path (a dataset given by name looks like 'owner/name', with no file extension)."
        )
    shown = name  # the card names the file the user gave, not the builder
    if os.path.isfile(name) and data_files is None:  # a single parquet/csv/json file
        suffix = Path(name).suffix.lower()
        if suffix not in FILE_BUILDERS:
            raise SourceNotFoundError(
                f"Cannot read {name!r}: unknown file type {suffix!r}. Give a {', '.join(sorted(FILE_BUILDERS))} "
                "file, a folder, or a Hub dataset id."
            )
        name, data_files = FILE_BUILDERS[suffix], name
    kwargs: dict[str, Any] = {"delimiter": "\t"} if str(data_files).endswith(".tsv") else {}
    try:
        with _builder_errors_quiet():
            dataset = datasets.load_dataset(
                name, split=split, revision=revision, data_files=data_files, streaming=streaming, **kwargs
            )
    except transport_errors() as err:  # datasets' ConnectionError "Couldn't reach ... on the Hub"
        raise as_hub_error(f"Loading dataset {name!r} split {split!r}", err, secret=None) from err
    except (FileNotFoundError, ValueError) as err:
        raise SourceNotFoundError(f"Could not load dataset {name!r} split {split!r}: {err}") from err
    except datasets.exceptions.DatasetGenerationError as err:  # the files are there but cannot be parsed
        raise InvalidArgumentError(f"Could not read {shown!r}: {_unreadable(err)}", value=shown) from err
    return dataset, shown


@contextlib.contextmanager
def _builder_errors_quiet() -> Iterator[None]:
    """``datasets``' file builders log an ERROR line before they raise on a file they cannot parse; that raise
    becomes one error of ours (``_unreadable``), so their line would be a second, raw copy of it on stderr."""
    builders = logging.getLogger("datasets.packaged_modules")
    level = builders.level
    builders.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        builders.setLevel(level)


def _unreadable(err: BaseException) -> str:
    """What is wrong with a data file ``datasets`` could not parse, and the fix, from the error's cause."""
    cause = err.__cause__ or err.__context__ or err
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"it is not UTF-8 text ({cause}). Convert it, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8.csv`, "
            "or load it yourself with load_dataset('csv', data_files=..., encoding='latin-1') and save_to_disk."
        )
    return f"{type(cause).__name__}: {cause}".strip()


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
