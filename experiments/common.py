"""Shared pieces of the experiments: a resumable results CSV, cached Fashion-MNIST tensors, one training run."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadiet_hub.atomic import atomic_path

logger = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
CARD = Path(__file__).resolve().parents[1] / "cards" / "fashion-mnist-datadiet"


class ResultsCSV:
    """Append-only CSV keyed by some columns: finished rows are skipped on rerun, each new row is flushed."""

    def __init__(
        self,
        path: str | os.PathLike,
        fields: list[str],
        key: list[str],
        defaults: dict[str, Callable[[dict[str, str]], str]] | None = None,
    ):
        """``defaults`` fills columns that rows written before the column existed lack, from each old row (the
        file is rewritten once, atomically, with the new header)."""
        self.path, self.fields, self.key = Path(path), fields, key
        self.rows: list[dict[str, str]] = []
        if self.path.exists():
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.rows = list(reader)
                header = list(reader.fieldnames or [])
            if header != fields:
                self._migrate(header, defaults or {})

    def _migrate(self, header: list[str], defaults: dict[str, Callable[[dict[str, str]], str]]) -> None:
        extra = [f for f in header if f not in self.fields]
        if extra:
            raise ValueError(f"{self.path} has columns {extra} this experiment does not write; refusing to drop them.")
        missing = [f for f in self.fields if f not in header and f not in defaults]
        if missing:
            raise ValueError(
                f"{self.path} lacks the columns {missing} and no default was given for them; add them to the file "
                "or pass defaults."
            )
        self.rows = [{f: row[f] if f in header else defaults[f](row) for f in self.fields} for row in self.rows]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(self.rows)

    def _key(self, row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in self.key)

    def done(self, **key: Any) -> bool:
        wanted = self._key(key)
        return any(self._key(row) == wanted for row in self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in self.fields})
            handle.flush()
            os.fsync(handle.fileno())
        self.rows.append({k: str(row.get(k, "")) for k in self.fields})


@dataclass
class FashionMNIST:
    train: Any  # scoring.data.TensorData
    test: Any
    preprocess: Any


def fashion_mnist(progress: bool = False) -> FashionMNIST:
    """Train/test tensors straight from the Debian IDX files (same rows, same order as the scored split)."""
    import torch

    from datadiet_hub.hashing import example_ids_from_array
    from datadiet_hub.scoring.data import Preprocess, TensorData, channel_stats
    from datadiet_hub.sources import fashion_mnist_arrays

    def tensors(split: str, ids: bool) -> TensorData:
        images, labels = fashion_mnist_arrays(split)
        eids = example_ids_from_array(images, labels) if ids else []
        return TensorData(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels), eids, 10)

    train, test = tensors("train", True), tensors("test", False)
    mean, std = channel_stats(train.images)
    return FashionMNIST(train, test, Preprocess(mean, std, "none"))


def subset(data, rows: Iterable[int]):
    """The rows of a TensorData (kept in ascending order)."""
    import torch

    from datadiet_hub.scoring.data import TensorData

    rows = torch.as_tensor(np.sort(np.asarray(list(rows), dtype=np.int64)))
    return TensorData(data.images[rows], data.labels[rows], [], data.num_classes)


def device_name() -> str:
    """Where downstream training runs: the GPU's name, or 'cpu'."""
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def read_config(folder: str | os.PathLike, config: str):
    """One config of a score folder as an arrow table, read from its parquet files.

    Not ``datasets.load_dataset(folder, config)``: that caches a local folder under its name and the config's, not
    its content, so a second folder with the same name (``runs/noisy/rate0.2/scores`` after
    ``runs/noisy/rate0.1/scores``) or a rewritten card silently returns the first one's rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((Path(folder) / "data" / config).glob("train-*.parquet"))
    if not files:
        raise FileNotFoundError(f"No data/{config}/train-*.parquet under {folder}.")
    return pa.concat_tables([pq.read_table(f) for f in files])


def numpy_columns(table) -> dict[str, np.ndarray]:
    """Arrow columns as numpy (list columns as 2-D arrays)."""
    out = {}
    for name in table.column_names:
        column = table.column(name)
        if hasattr(column.type, "value_type"):
            out[name] = np.stack(column.to_numpy(zero_copy_only=False))
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def load_card_scores(config: str, card: Path = CARD):
    return read_config(card, config)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("datasets", "accelerate", "huggingface_hub", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
