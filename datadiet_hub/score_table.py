"""The adapter from a score table (``datasets.Dataset``, ``pyarrow.Table`` or dict of arrays) to ``idx``-ordered
columns.

Only the columns asked for are read, through arrow without a Python object per row (a memory-mapped ``Dataset`` is
sliced zero-copy, so the per-seed lists and ids are never touched). Every consumer (selection, prune/keep, diff)
reads score tables through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ._arrow import take_rows
from ._datasets_compat import arrow_column
from .errors import ColumnNotFoundError, InvalidTypeError, ScoreMismatchError, ScoreTableError, did_you_mean
from .schema import is_score_column


@dataclass(frozen=True)
class ScoreColumns:
    """Score values and labels in ``idx`` order (position i holds the score of source row i).

    ``values`` already ranks ``never_learned`` rows above all others when asked to (``never_learned_as_inf``);
    ``secondary`` is the tie-break column, when one was asked for. ``example_ids`` is an arrow string array (never
    a Python list: 10M Python strings cost ~1 GB and seconds).
    """

    values: np.ndarray
    labels: np.ndarray | None = None
    example_ids: Any | None = None
    secondary: np.ndarray | None = None


def column_names(scores: Any) -> list[str]:
    """The columns of a score table of any supported kind."""
    if isinstance(scores, pa.Table):
        return scores.column_names
    if isinstance(scores, dict):
        return list(scores)
    if hasattr(scores, "with_format") and hasattr(scores, "column_names"):
        return list(scores.column_names)
    raise InvalidTypeError(
        f"scores must be a datasets.Dataset, pyarrow.Table or dict of arrays, not {type(scores).__name__}; "
        "load them with datadiet_hub.load_scores(...)."
    )


def num_scores(scores: Any) -> int:
    """Rows in a score table, without reading any column."""
    if isinstance(scores, dict):
        return len(next(iter(scores.values()), ()))
    return int(scores.num_rows) if hasattr(scores, "num_rows") else len(scores)


def arrow_table(scores: Any, columns: list[str]) -> pa.Table:
    """Only the requested (and present) columns as a pyarrow Table, zero-copy where the source allows."""
    present = [c for c in columns if c in column_names(scores)]
    if isinstance(scores, pa.Table):
        return scores.select(present)
    if isinstance(scores, dict):
        return pa.table({k: scores[k] for k in present})
    return pa.table({k: arrow_column(scores, k) for k in present})


def to_numpy(column: Any) -> np.ndarray:
    """A pyarrow column as numpy, zero-copy when it is one chunk without nulls."""
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    if len(chunks) == 1:
        return chunks[0].to_numpy(zero_copy_only=False)
    return column.combine_chunks().to_numpy(zero_copy_only=False)


def idx_inverse(idx: np.ndarray) -> np.ndarray | None:
    """None when ``idx`` is 0..n-1 in order (the usual case: nothing to reorder), else ``inv`` with
    ``inv[j]`` = the table row holding idx j. Raises unless ``idx`` is a permutation of 0..n-1; O(n), no sort."""
    n = len(idx)
    if idx.dtype.kind not in "iu":
        raise ScoreTableError(
            f"The score table's idx column has type {idx.dtype}; it must hold integer row positions (int64). "
            "Rewrite the table with `datadiet score` (or cast idx to int64 if its values are whole numbers).",
            column="idx",
            value=str(idx.dtype),
        )
    if n == 0 or (idx[0] == 0 and idx[-1] == n - 1 and np.array_equal(idx, np.arange(n, dtype=idx.dtype))):
        return None
    problem = None
    if idx.min() < 0 or idx.max() >= n:
        problem = f"values run from {int(idx.min())} to {int(idx.max())}"
    else:
        seen = np.zeros(n, dtype=bool)
        seen[idx] = True
        if not seen.all():
            problem = f"{int(n - seen.sum())} position(s) are missing and as many duplicated"
    if problem:
        raise ScoreMismatchError(
            f"The score table's idx column is not a permutation of 0..{n - 1} ({problem}): it was filtered or has "
            "duplicates. Use the complete score table of the split.",
            column="idx",
        )
    inverse = np.empty(n, dtype=np.int64)
    inverse[idx] = np.arange(n, dtype=np.int64)
    return inverse


def _missing_column(column: str, names: list[str], why: str) -> ColumnNotFoundError:
    available = [c for c in names if is_score_column(c)] or names
    return ColumnNotFoundError(
        f"{why} {column!r} not found; this score table has {available}.{did_you_mean(column, names)} Pass column= "
        "one of them.",
        column=column,
        value=column,
    )


def _finite(raw: np.ndarray, column: str, table: pa.Table) -> np.ndarray:
    if raw.dtype.kind not in "biuf":  # strings, lists, structs: not something to rank by
        numeric = [c for c in table.column_names if c != "idx" and pa.types.is_floating(table.schema.field(c).type)]
        raise InvalidTypeError(
            f"Column {column!r} holds {table.schema.field(column).type} values, not numeric scores; rank by a "
            f"score column{' (' + ', '.join(numeric) + ')' if numeric else ''}.",
            column=column,
            value=str(table.schema.field(column).type),
        )
    if raw.dtype.kind != "f":
        raw = raw.astype(np.float64)
    bad = ~np.isfinite(raw)
    if bad.any():
        first_row = int(np.flatnonzero(bad)[0])
        first = int(to_numpy(table.column("idx"))[first_row]) if "idx" in table.column_names else first_row
        raise ScoreMismatchError(
            f"{int(bad.sum())} {column!r} score(s) are NaN or infinite (first at idx {first}); "
            "the score table is corrupt or was computed with a diverged model. Recompute or drop those rows.",
            column=column,
        )
    return raw


def read_scores(
    scores: Any,
    column: str = "el2n",
    *,
    need_labels: bool = False,
    need_ids: bool = False,
    never_learned_as_inf: bool = True,
    secondary: str | None = None,
) -> ScoreColumns:
    """Extract one score column (and optionally labels, ids, a secondary score) in ``idx`` order, checking it is
    complete and finite.

    float32 scores stay float32, so thresholds compare at the stored precision (``max_score=0.3`` keeps a stored
    ``0.3``). Rows flagged ``never_learned`` rank above every learned row when ``column`` is ``forgetting`` and
    ``never_learned_as_inf`` (data_diet's infinite forgetting). Reads only the columns asked for.
    """
    names = column_names(scores)
    if column not in names:
        raise _missing_column(column, names, "Score column")
    wanted = ["idx", column]
    if column == "forgetting" and never_learned_as_inf:
        wanted.append("never_learned")
    if secondary is not None:
        if secondary not in names:
            raise ColumnNotFoundError(
                f"tie_break={secondary!r} names no column of the score table; it has {names}."
                f"{did_you_mean(secondary, [*names, 'random', 'index'])} Use tie_break='random', 'index' or a score "
                "column such as 'el2n'.",
                column=secondary,
                value=secondary,
            )
        wanted.append(secondary)
    if need_labels:
        if "label" not in names:
            raise ColumnNotFoundError(
                f"class_balanced=True needs a 'label' column in the score table; it has {names}.", column="label"
            )
        wanted.append("label")
    if need_ids:
        if "example_id" not in names:
            raise ColumnNotFoundError(
                f"on='example_id' and content checks need an 'example_id' column in the score table; it has {names}."
                " Without ids, rows can only be matched by position: on='idx'.",
                column="example_id",
            )
        wanted.append("example_id")
    table = arrow_table(scores, list(dict.fromkeys(wanted)))
    inverse = idx_inverse(to_numpy(table.column("idx"))) if "idx" in table.column_names else None

    def ordered(values: np.ndarray) -> np.ndarray:
        return values if inverse is None else values[inverse]

    values = ordered(_finite(to_numpy(table.column(column)), column, table))
    if column == "forgetting" and never_learned_as_inf and "never_learned" in table.column_names:
        never = ordered(to_numpy(table.column("never_learned")).astype(bool))
        if never.any():
            values = values.copy()
            values[never] = values.max(initial=0.0) + 1  # ranks above every learned row, as data_diet's inf
    second = None
    if secondary is not None:
        second = ordered(_finite(to_numpy(table.column(secondary)), secondary, table))
    labels = ordered(to_numpy(table.column("label")).astype(np.int64, copy=False)) if need_labels else None
    ids = None
    if need_ids:
        ids = table.column("example_id")
        if inverse is not None:
            ids = ids.take(pa.array(inverse))
    return ScoreColumns(values, labels, ids, second)


def score_ids(scores: Any, positions: np.ndarray | None = None) -> Any:
    """The score table's ``example_id`` in ``idx`` order (all rows, or at ``positions``) as arrow, reading only
    the ``idx`` and ``example_id`` columns and never copying the whole id column (memory-mapped chunks stay so)."""
    names = column_names(scores)
    if "example_id" not in names:
        raise ColumnNotFoundError(
            f"on='example_id' and content checks need an 'example_id' column in the score table; it has {names}."
            " Without ids, rows can only be matched by position: on='idx'.",
            column="example_id",
        )
    table = arrow_table(scores, ["idx", "example_id"])
    inverse = idx_inverse(to_numpy(table.column("idx"))) if "idx" in table.column_names else None
    rows = positions if inverse is None else (inverse if positions is None else inverse[positions])
    column = table.column("example_id")
    return column if rows is None else take_rows(column, np.asarray(rows, dtype=np.int64))


def numpy_column(scores: Any, name: str) -> np.ndarray:
    """One column as numpy in table row order (not reordered by ``idx``): for callers that join by ``idx``."""
    names = column_names(scores)
    if name not in names:
        raise ColumnNotFoundError(
            f"The score table has no column {name!r}; its columns are {names}.{did_you_mean(name, names)}", column=name
        )
    return to_numpy(arrow_table(scores, [name]).column(name))
