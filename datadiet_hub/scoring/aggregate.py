"""Mean and spread over seeds, keyed by ``idx``: per-seed raw shards -> one score table per config. Which columns a
metric gets (mean, std and per-seed values, or one value; its flags) is its declaration in ``datadiet_hub.metrics``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from datadiet_hub import metrics as declarations
from datadiet_hub.schema import score_schema

from . import checkpoint as ckpt


def _per_seed_column(matrix: np.ndarray) -> pa.Array:
    """``[N, M]`` float32 -> list<float32> column without a Python loop."""
    n, m = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * m, m, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.astype(np.float32).ravel()))


def build_table(
    step: int, seeds: list[int], metrics: list[str], state_dir: Path, example_ids: list[str], labels: np.ndarray
) -> pa.Table:
    """The score table of one score time from the shards of every seed (a metric no seed changes: the first's)."""
    shards = [ckpt.load(ckpt.shard_path(state_dir, seed, step))[0] for seed in seeds]
    n = len(labels)
    columns: dict[str, pa.Array] = {
        "idx": pa.array(np.arange(n, dtype=np.int64)),
        "example_id": pa.array(example_ids, type=pa.string()),
        "label": pa.array(labels.astype(np.int64)),
    }
    for metric in metrics:
        declared = declarations.get(metric)
        if not declared.over_seeds:
            columns[metric] = pa.array(shards[0][metric].numpy().astype(np.float32))
        else:
            matrix = np.stack([shard[metric].numpy().astype(np.float32) for shard in shards], axis=1)  # [N, M]
            columns[metric] = pa.array(matrix.mean(axis=1, dtype=np.float64).astype(np.float32))
            columns[f"{metric}_std"] = pa.array(matrix.std(axis=1, dtype=np.float64).astype(np.float32))
            columns[f"{metric}_per_seed"] = _per_seed_column(matrix)
        used = shards if declared.over_seeds else shards[:1]
        for flag in declared.flags:
            stacked = np.stack([shard[flag].numpy().astype(bool) for shard in used], axis=1)
            columns[flag] = pa.array(stacked.any(axis=1))
    schema = score_schema(metrics)
    return pa.table(columns).select(schema.names).cast(schema)
