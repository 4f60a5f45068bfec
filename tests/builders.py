"""Builders of small real datasets and score tables for tests (imported by tests and conftest)."""

from __future__ import annotations

import numpy as np

N_ROWS = 40
NUM_CLASSES = 4


def make_image_dataset(n: int = N_ROWS, *, seed: int = 0, side: int = 8, channels: int = 1):
    """A real ``datasets.Dataset`` with ``Image`` and ``ClassLabel`` features (PNG-encoded random pixels)."""
    import datasets

    rng = np.random.default_rng(seed)
    shape = (side, side) if channels == 1 else (side, side, channels)
    images = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(n)]
    labels = [int(i % NUM_CLASSES) for i in range(n)]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"c{i}" for i in range(NUM_CLASSES)])}
    )
    from PIL import Image

    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in images], "label": labels}, features=features
    )


def make_score_table(dataset, *, seed: int = 1, metrics=("el2n",), seeds: int = 3, values=None):
    """A valid score table for ``dataset`` (real example_ids); ``values`` overrides the mean score column."""
    import pyarrow as pa

    from datadiet_hub.hashing import example_id
    from datadiet_hub.schema import score_schema

    n = len(dataset)
    rng = np.random.default_rng(seed)
    ids = [example_id(row["image"], row["label"]) for row in dataset]
    columns = {"idx": np.arange(n), "example_id": ids, "label": np.asarray(dataset["label"])}
    for metric in metrics:
        per_seed = rng.random((n, seeds)).astype(np.float32)
        mean = per_seed.mean(1) if values is None else np.asarray(values, dtype=np.float32)
        columns[metric] = mean
        columns[f"{metric}_std"] = per_seed.std(1)
        columns[f"{metric}_per_seed"] = per_seed.tolist()
        if metric == "forgetting":
            columns["never_learned"] = per_seed[:, 0] > 0.9
    return pa.table(columns, schema=score_schema(list(metrics)))


def make_provenance(n: int, dataset_name: str = "tiny") -> dict:
    return {
        "format_version": 1,
        "source": {"dataset": dataset_name, "split": "train", "revision": None, "num_rows": n, "fingerprint": "x"},
        "scoring": {"model": "cnn", "seeds": [0, 1, 2], "epochs": 2, "batch_size": 128},
        "configs": {"cnn-ep2": {"step": 2, "epoch": 2, "metrics": ["el2n"]}},
        "wall_time_s": 1.0,
    }
