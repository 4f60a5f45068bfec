"""Mean and spread over seeds, keyed by ``idx``: per-seed raw shards -> one score table per config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

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
    """The score table of one score time from the shards of every seed."""
    shards = [ckpt.load(ckpt.shard_path(state_dir, seed, step))[0] for seed in seeds]
    n = len(labels)
    columns: dict[str, pa.Array] = {
        "idx": pa.array(np.arange(n, dtype=np.int64)),
        "example_id": pa.array(example_ids, type=pa.string()),
        "label": pa.array(labels.astype(np.int64)),
    }
    for metric in metrics:
        matrix = np.stack([shard[metric].numpy().astype(np.float32) for shard in shards], axis=1)  # [N, M]
        columns[metric] = pa.array(matrix.mean(axis=1, dtype=np.float64).astype(np.float32))
        columns[f"{metric}_std"] = pa.array(matrix.std(axis=1, dtype=np.float64).astype(np.float32))
        columns[f"{metric}_per_seed"] = _per_seed_column(matrix)
        if metric == "forgetting":
            never = np.stack([shard["never_learned"].numpy().astype(bool) for shard in shards], axis=1)
            columns["never_learned"] = pa.array(never.any(axis=1))
    return pa.table(columns, schema=score_schema(metrics))
