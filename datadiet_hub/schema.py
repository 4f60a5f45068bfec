"""The score dataset's format (DESIGN.md section 3): columns, types, config names, and their validation."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from .errors import InvalidArgumentError, InvalidNameError, ScoreTableError

METRICS = ("el2n", "grand", "forgetting", "loss")
BASE_COLUMNS = {"idx": pa.int64(), "example_id": pa.string(), "label": pa.int64()}
OPTIONAL_BASE = frozenset({"label"})  # an unlabeled corpus (causal-LM scores) has no label column
EXTRA_COLUMNS = {"num_tokens": pa.int64()}  # per-document facts that are not scores (causal-LM scores)
METRIC_COLUMNS = {
    "loss": {"loss": pa.float32(), "loss_std": pa.float32(), "loss_per_seed": pa.list_(pa.float32())},
    "el2n": {"el2n": pa.float32(), "el2n_std": pa.float32(), "el2n_per_seed": pa.list_(pa.float32())},
    "grand": {"grand": pa.float32(), "grand_std": pa.float32(), "grand_per_seed": pa.list_(pa.float32())},
    "forgetting": {
        "forgetting": pa.float32(),
        "forgetting_std": pa.float32(),
        "forgetting_per_seed": pa.list_(pa.float32()),
        "never_learned": pa.bool_(),
    },
}
# The direction of every score column: larger means harder (more important to keep) for all three metrics.
HIGHER_IS_HARDER = {"el2n": True, "grand": True, "forgetting": True, "loss": True}
DATA_FILE = "data/{config}/train-00000-of-00001.parquet"
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


def score_schema(
    metrics: list[str] | tuple[str, ...], *, label: bool = True, extra: list[str] | tuple[str, ...] = ()
) -> pa.Schema:
    """The arrow schema of a config holding the given metrics, in canonical column order (``label`` left out for an
    unlabeled corpus; ``extra`` names columns of ``EXTRA_COLUMNS`` such as ``num_tokens``)."""
    fields = [(k, v) for k, v in BASE_COLUMNS.items() if label or k not in OPTIONAL_BASE]
    fields += [(k, EXTRA_COLUMNS[k]) for k in EXTRA_COLUMNS if k in extra]
    for metric in metrics:
        if metric not in METRIC_COLUMNS:
            raise InvalidArgumentError(f"Unknown metric {metric!r}. Choose from: {', '.join(METRICS)}.", value=metric)
        fields.extend(METRIC_COLUMNS[metric].items())
    return pa.schema(fields)


def metrics_in(column_names: list[str]) -> list[str]:
    """The metrics a score table carries, judged by their mean columns."""
    return [m for m in METRICS if m in column_names]


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
            f"Score table has no score column (one of {', '.join(METRICS)}); it has {names}.", value=names
        )
    schema = score_schema(metrics, label="label" in names, extra=[c for c in EXTRA_COLUMNS if c in names])
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
        if base not in METRICS:
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
