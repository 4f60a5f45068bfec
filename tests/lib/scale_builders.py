"""Small real datasets and score folders for the scale, alignment and fault tests (no torch, no network).

Images are tiny PNG-encoded arrays with a ``datasets.Image`` feature, so content hashes go through the same decode
path as a Hub image dataset; every image is distinct, so ``example_id`` is unique per row.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datadiet_hub.hashing import example_id, fingerprint

NUM_CLASSES = 3


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def image_arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 256  # distinct images even for tiny n
    images[:, 0, 1] = np.arange(n) // 256
    labels = rng.integers(0, NUM_CLASSES, size=n).astype(np.int64)
    return images, labels


def make_image_dataset(n: int = 60, seed: int = 0):
    """A ``datasets.Dataset`` with ``image`` (Image) and ``label`` (ClassLabel) columns."""
    import datasets

    images, labels = image_arrays(n, seed)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"c{i}" for i in range(NUM_CLASSES)])}
    )
    return datasets.Dataset.from_dict(
        {"image": [{"bytes": png(a), "path": None} for a in images], "label": labels.tolist()}, features=features
    )


def ids_of(n: int, seed: int = 0) -> list[str]:
    images, labels = image_arrays(n, seed)
    return [example_id(img, int(lab)) for img, lab in zip(images, labels)]


def score_table(n: int = 60, seed: int = 0, score_seed: int = 1) -> pa.Table:
    """A score table in the published format for ``make_image_dataset(n, seed)``; el2n has distinct values."""
    _, labels = image_arrays(n, seed)
    rng = np.random.default_rng(score_seed)
    per_seed = rng.random((n, 2), dtype=np.float32)
    forgetting = rng.integers(0, 4, size=(n, 2)).astype(np.float32)
    return pa.table(
        {
            "idx": pa.array(np.arange(n), pa.int64()),
            "example_id": pa.array(ids_of(n, seed), pa.string()),
            "label": pa.array(labels, pa.int64()),
            "el2n": pa.array(rng.permutation(n).astype(np.float32) / n, pa.float32()),
            "el2n_std": pa.array(per_seed.std(1), pa.float32()),
            "el2n_per_seed": pa.array(per_seed.tolist(), pa.list_(pa.float32())),
            "forgetting": pa.array(forgetting.mean(1), pa.float32()),
            "forgetting_std": pa.array(forgetting.std(1), pa.float32()),
            "forgetting_per_seed": pa.array(forgetting.tolist(), pa.list_(pa.float32())),
            "never_learned": pa.array(rng.random(n) > 0.9, pa.bool_()),
        }
    )


def provenance(n: int, seed: int = 0) -> dict:
    return {
        "source": {
            "dataset": "tiny-images",
            "split": "train",
            "num_rows": n,
            "fingerprint": fingerprint(ids_of(n, seed)),
        },
        "scoring": {"model": "cnn", "seeds": [0, 1], "epochs": 2},
    }


def write_score_folder(
    folder: Path,
    n: int = 60,
    seed: int = 0,
    score_seed: int = 1,
    *,
    configs: tuple[str, ...] = ("cnn-ep2",),
    prov: dict | None = None,
) -> Path:
    """A complete score dataset folder (README card + parquet) written by the real writer."""
    from datadiet_hub.writer import write_score_dataset

    tables = {c: score_table(n, seed, score_seed + i) for i, c in enumerate(configs)}
    return write_score_dataset(folder, tables, provenance=prov or provenance(n, seed), plots=False)


def write_parquet_dataset(path: Path, dataset) -> Path:
    """The dataset as one parquet file (what ``load_dataset("parquet", streaming=True)`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(dataset.with_format("arrow")[:], path)
    return path
