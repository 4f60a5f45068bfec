"""datatrove pipeline steps: score documents with a corpus run's trained reference models, and keep documents by a
published score dataset. Any datatrove executor runs them (``LocalPipelineExecutor``, ``SlurmPipelineExecutor``,
``RayPipelineExecutor``); training the reference models stays with ``datadiet score`` (Accelerate).

- ``ScoreDocuments(run_dir)``: put right after a reader; adds to each document's metadata ``example_id``,
  ``num_tokens``, every score's mean, ``_std`` and ``_per_seed``, and where the document sits in its input file
  (``file_path`` from the reader, ``row_in_file`` counted here). A writer (``ParquetWriter``, ``JsonlWriter``) saves
  one shard per task.
- ``merge_score_shards(shards, output_dir)``: the shards of every task -> one score dataset folder (card + parquet),
  rows in the order of the input files (sorted by path) and their lines, which is the order of
  ``load_dataset("json"|"parquet", data_files=sorted(files))``.
- ``KeepByScores(scores, ...)``: a filter keeping the documents a ``Selection`` keeps, joined by ``example_id``
  (the hash of the text, so any copy of the corpus in any order works) or by an ``idx`` metadata field.

This is the only module that imports datatrove (extra ``corpus``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from datadiet_hub.errors import InvalidArgumentError, MissingExtraError

try:
    from datatrove.data import Document, DocumentsPipeline
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.filters.base_filter import BaseFilter
except ImportError as err:  # pragma: no cover - depends on the install
    raise MissingExtraError(
        "The datatrove steps need datatrove: pip install 'datadiet-hub[corpus]'.", value="datatrove"
    ) from err

logger = logging.getLogger(__name__)

__all__ = ["KeepByScores", "ScoreDocuments", "merge_score_shards"]

ROW_IN_FILE = "row_in_file"


class ScoreDocuments(PipelineStep):
    """Score every document with the reference models of a corpus run (``datadiet score --objective causal-lm``).

    Args:
        run_dir: the run's ``--output-dir`` (its ``.datadiet`` folder holds the tokenizer and checkpoints).
        step: the checkpoint (optimizer step) to score with; default the last one every seed reached.
        batch_size: documents scored together.
        device: torch device of each task (``cuda`` on GPU nodes).
    """

    name = "datadiet scores"
    type = "📊 - STATS"

    def __init__(
        self, run_dir: str | os.PathLike, *, step: int | None = None, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size={batch_size!r} must be at least 1.", value=batch_size)
        self.run_dir, self.step, self.batch_size, self.device = str(run_dir), step, batch_size, device

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import torch

        from .lm.reference import ReferenceModels

        torch.set_num_threads(1)  # one thread per task: tasks are the parallelism
        models = ReferenceModels(self.run_dir, step=self.step, device=self.device)
        rows: dict[str, int] = {}
        batch: list[Document] = []
        for doc in data or ():
            path = str(doc.metadata.get("file_path", ""))
            doc.metadata[ROW_IN_FILE] = rows.get(path, 0)
            rows[path] = doc.metadata[ROW_IN_FILE] + 1
            batch.append(doc)
            if len(batch) == self.batch_size:
                yield from self._score(models, batch)
                batch = []
        if batch:
            yield from self._score(models, batch)

    def _score(self, models: Any, batch: list[Document]) -> Iterator[Document]:
        with self.track_time("batch"):
            scores = models.score([doc.text for doc in batch])
        for i, doc in enumerate(batch):
            for key, values in scores.items():
                value = values[i]
                doc.metadata[key] = value.tolist() if isinstance(value, np.ndarray) else _plain(value)
            self.stat_update("scored")
            yield doc


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def merge_score_shards(
    shards: str | os.PathLike | list[str],
    output_dir: str | os.PathLike,
    *,
    run_dir: str | os.PathLike,
    config: str | None = None,
) -> Path:
    """Merge the parquet or JSON-lines shards that ``ScoreDocuments`` + a writer produced (one per task) into one
    score dataset folder, rows ordered by (input file, line); returns the folder.

    Args:
        shards: a folder of shards (searched recursively for ``*.parquet``, ``*.jsonl``, ``*.jsonl.gz``) or a
            list of files.
        output_dir: the score dataset folder to write (README.md card + ``data/<config>/``).
        run_dir: the corpus run whose models scored the documents (for the provenance and the config name).
        config: config name; default ``<model>-step<step>`` as the run names it.
    """
    import datasets
    import pyarrow as pa

    from datadiet_hub.hashing import fingerprint
    from datadiet_hub.provenance import Provenance
    from datadiet_hub.schema import config_name, score_schema
    from datadiet_hub.writer import write_score_dataset

    from .aggregate import _per_seed_column
    from .lm.reference import ReferenceModels

    files = _shard_files(shards)
    if not files:
        raise InvalidArgumentError(f"No parquet or JSON-lines shards found in {shards!r}.", value=str(shards))
    builder = "parquet" if files[0].endswith(".parquet") else "json"
    table = datasets.load_dataset(builder, data_files=files, split="train").flatten()
    prefix = "metadata." if "metadata.example_id" in table.column_names else ""

    def column(name: str) -> list:
        return table[prefix + name]

    models = ReferenceModels(Path(run_dir))
    order = sorted(range(len(table)), key=lambda i: (str(column("file_path")[i]), int(column(ROW_IN_FILE)[i])))
    metrics = models.metrics
    ids = [column("example_id")[i] for i in order]
    columns: dict[str, Any] = {
        "idx": pa.array(np.arange(len(order), dtype=np.int64)),
        "example_id": pa.array(ids, type=pa.string()),
        "num_tokens": pa.array(np.asarray(column("num_tokens"), dtype=np.int64)[order]),
    }
    for metric in metrics:
        columns[metric] = pa.array(np.asarray(column(metric), dtype=np.float32)[order])
        columns[f"{metric}_std"] = pa.array(np.asarray(column(f"{metric}_std"), dtype=np.float32)[order])
        per_seed = np.asarray(column(f"{metric}_per_seed"), dtype=np.float32)[order]
        columns[f"{metric}_per_seed"] = _per_seed_column(per_seed)
    schema = score_schema([*metrics, "num_tokens"], label=False)
    name = config or config_name(models.cfg.model or "causal-transformer", models.step)
    provenance = Provenance.from_scoring(
        source={
            "dataset": str(shards),
            "split": "train",
            "num_rows": len(order),
            "fingerprint": fingerprint(ids),
            "input_kind": "text",
            "input_column": "text",
        },
        scoring={**models.cfg.identity(), "scored_by": "datatrove ScoreDocuments", "shards": len(files)},
        configs={name: {"model": models.cfg.model, "step": models.step, "metrics": metrics}},
    )
    out = write_score_dataset(
        output_dir, {name: pa.table({k: columns[k] for k in schema.names}, schema=schema)}, provenance=provenance
    )
    logger.info("merged %d shards (%d documents) into %s", len(files), len(order), out)
    return out


def _shard_files(shards: str | os.PathLike | list[str]) -> list[str]:
    if isinstance(shards, (list, tuple)):
        return sorted(str(s) for s in shards)
    folder = Path(shards)
    found = [p for pattern in ("*.parquet", "*.jsonl", "*.jsonl.gz") for p in folder.rglob(pattern)]
    return sorted(str(p) for p in found if not any(part.startswith(".") for part in p.relative_to(folder).parts))


class KeepByScores(BaseFilter):
    """Keep the documents a selection of a published score dataset keeps.

    Args:
        scores: a score table (``load_scores`` result, pyarrow table) or where to load one (folder, Hub repo id).
        config: the config to load when ``scores`` is a location.
        on: ``example_id`` (hash of the document's text; any order, any subset) or ``idx`` (a ``metadata["idx"]``
            holding the document's row in the scored split).
        missing: documents without a score: ``drop`` (default) or ``keep``.
        **selection: what to keep, as for ``datadiet_hub.prune``: ``column``, ``fraction``, ``strategy``
            (``middle``, ``easiest``, ...), ``by`` (a column of the score table), ``min_score``, ...
    """

    name = "datadiet keep"

    def __init__(
        self,
        scores: Any,
        *,
        config: str | None = None,
        on: str = "example_id",
        missing: str = "drop",
        **selection: Any,
    ) -> None:
        super().__init__()
        from datadiet_hub.loading import load_scores
        from datadiet_hub.score_table import num_scores, score_ids
        from datadiet_hub.selection import Selection, select_indices

        if on not in ("example_id", "idx"):
            raise InvalidArgumentError(f"on={on!r}: choose 'example_id' or 'idx'.", value=on)
        if missing not in ("drop", "keep"):
            raise InvalidArgumentError(f"missing={missing!r}: choose 'drop' or 'keep'.", value=missing)
        if isinstance(scores, (str, os.PathLike)):
            scores = load_scores(str(scores), config)
        kept = select_indices(scores, selection=Selection.from_kwargs(**selection))  # rows in idx order
        self.on, self.missing = on, missing
        if on == "idx":
            self.kept_idx = frozenset(int(i) for i in kept)
            self.known_idx = num_scores(scores)
        else:
            ids = score_ids(scores).to_pylist()  # idx order
            self.kept_ids = frozenset(ids[int(row)] for row in kept)
            self.known_ids = frozenset(ids)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.on == "idx":
            if "idx" not in doc.metadata:
                raise InvalidArgumentError("on='idx' needs metadata['idx'] on every document (the scored row).")
            row = int(doc.metadata["idx"])
            if not 0 <= row < self.known_idx:
                return self.missing == "keep" or (False, "no_score")
            return row in self.kept_idx or (False, "pruned")
        from datadiet_hub.hashing import example_id

        key = example_id(doc.text, None)
        if key not in self.known_ids:
            return self.missing == "keep" or (False, "no_score")
        return key in self.kept_ids or (False, "pruned")
