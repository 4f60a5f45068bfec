"""The score dataset's format: columns (from the metric declarations), types, config names, and their validation."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from . import metrics as _metrics
from .errors import InvalidNameError, ScoreTableError

BASE_COLUMNS = {"idx": pa.int64(), "example_id": pa.string(), "label": pa.int64()}
OPTIONAL_BASE = frozenset({"label"})  # an unlabeled corpus (causal-LM scores) has no label column
SUBSET_COLUMN_RE = re.compile(r"^(?P<metric>[a-z0-9_]+)_keep(?P<percent>[1-9][0-9]?)$")
"""Optional boolean columns ``<metric>_keep<percent>``: a published subset (true for the rows in the hardest
``percent``% by that metric, e.g. ``el2n_keep50``), loadable with plain ``datasets``; they follow the metric columns."""
DATA_FILE = "data/{config}/train-00000-of-00001.parquet"
DATA_GLOB = "data/{config}/train-*.parquet"
CONFIG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def config_name(model: str, step: int, steps_per_epoch: int | None = None) -> str:
    """``cnn-ep2`` when the step is a whole epoch, else ``cnn-step150``; factories use their function name,
    ``transformers:`` specs their model type or config folder (``transformers:bert?hidden_size=64`` -> ``bert``)."""
    spec = model.split("?", 1)[0].rstrip("/")
    if spec.endswith(".json") and "/" in spec:
        spec = spec.rsplit("/", 1)[0]  # a config.json: name it by its folder
    short = spec.rsplit(":", 1)[-1].rsplit("/", 1)[-1].lower().replace("_", "-")
    short = re.sub(r"[^a-z0-9._-]+", "-", short).strip("-._") or "model"
    if steps_per_epoch and step % steps_per_epoch == 0:
        return f"{short}-ep{step // steps_per_epoch}"
    return f"{short}-step{step}"


def validate_config_name(name: str) -> str:
    if not CONFIG_RE.match(name):
        raise InvalidNameError(
            f"Invalid config name {name!r}: use lowercase letters, digits, '.', '_' or '-', e.g. 'cnn-ep2'.",
            value=name,
        )
    return name


def metric_columns(metric: str) -> dict[str, pa.DataType]:
    """The columns of one declared metric (``datadiet_hub.metrics``) and their arrow types."""
    declared = _metrics.get(metric)
    value = pa.type_for_alias(declared.dtype)
    columns = {declared.name: value}
    if declared.over_seeds:
        columns.update({f"{declared.name}_std": value, f"{declared.name}_per_seed": pa.list_(value)})
    columns.update({flag: pa.bool_() for flag in declared.flags})
    return columns


def score_schema(
    metrics: list[str] | tuple[str, ...], subsets: list[str] | tuple[str, ...] = (), *, label: bool = True
) -> pa.Schema:
    """The arrow schema of a config holding the given metrics (and subset columns), in canonical column order; ``label=False`` for an unlabeled corpus."""
    fields = [(k, v) for k, v in BASE_COLUMNS.items() if label or k not in OPTIONAL_BASE]
    for metric in metrics:
        fields.extend(metric_columns(metric).items())
    fields.extend((name, pa.bool_()) for name in subsets)
    return pa.schema(fields)


def metrics_in(column_names: list[str]) -> list[str]:
    """The metrics a score table carries, judged by their mean columns, in declaration order."""
    return [m for m in _metrics.names() if m in column_names]


def subsets_in(column_names: list[str]) -> list[str]:
    """The subset columns (``<metric>_keep<percent>``) of metrics the table carries, ordered by metric and percent."""
    carried = metrics_in(column_names)
    found = []
    for name in column_names:
        match = SUBSET_COLUMN_RE.match(name)
        if match and match["metric"] in carried:
            found.append((carried.index(match["metric"]), int(match["percent"]), name))
    return [name for *_, name in sorted(found)]


def is_score_column(name: str) -> bool:
    """Whether ``name`` is a declared metric's value column (mean), the thing one ranks by."""
    return name in _metrics.METRICS


def validate_table(table: pa.Table) -> pa.Table:
    """Check a score table against the format: required columns, types, unique contiguous ``idx``.

    Returns the table cast to the canonical schema; raises ``ValueError`` naming the first problem.
    """
    names = table.column_names
    if "idx" in names and not pa.types.is_integer(table.schema.field("idx").type):
        raise ScoreTableError(
            f"Score table's 'idx' column has type {table.schema.field('idx').type}; it must hold integer row "
            "positions (int64). Rewrite the table with `datadiet score`."
        )
    missing = [c for c in BASE_COLUMNS if c not in names and c not in OPTIONAL_BASE]
    if missing:
        raise ScoreTableError(
            f"Score table lacks required column(s) {missing}; it has {names}. Build it with the columns of "
            "schema.score_schema.",
            value=missing,
        )
    metrics = metrics_in(names)
    if not metrics:
        raise ScoreTableError(
            f"Score table has no score column (one of {', '.join(_metrics.names())}); it has {names}.", value=names
        )
    schema = score_schema(metrics, subsets_in(names), label="label" in names)
    absent = [f.name for f in schema if f.name not in names]
    if absent:
        raise ScoreTableError(f"Score table lacks column(s) {absent} that go with {metrics}.", value=absent)
    table = table.select(schema.names).cast(schema)

    idx = table.column("idx").to_numpy()
    if len(idx) and not np.array_equal(np.sort(idx), np.arange(len(idx))):
        raise ScoreTableError(
            "Score table's 'idx' column must hold each row position 0..N-1 exactly once; it has gaps or "
            "duplicates. Use the complete table of the split.",
            column="idx",
        )
    return table


def validate_scores(table: pa.Table) -> None:
    """What ``prune`` requires of every value, checked before a table becomes a version: no nulls anywhere, and
    finite score, std and per-seed values. Raises ``ScoreTableError`` naming the column and the first bad idx."""
    import numpy as np
    import pyarrow.compute as pc

    for name in table.column_names:
        column = table.column(name)
        if column.null_count:
            raise ScoreTableError(f"Column {name!r} has {column.null_count} null value(s); every row needs a value.")
        base = name.removesuffix("_per_seed").removesuffix("_std")
        if base not in _metrics.METRICS:
            continue
        values = pc.list_flatten(column) if name.endswith("_per_seed") else column
        if values.null_count:
            raise ScoreTableError(f"Column {name!r} has null per-seed value(s); every seed needs a score.")
        array = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = ~np.isfinite(array)
        if bad.any():
            raise ScoreTableError(
                f"Column {name!r} has {int(bad.sum())} NaN or infinite value(s); a diverged run? Recompute the "
                "scores (e.g. a smaller --lr)."
            )
