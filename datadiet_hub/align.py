"""Checks that a score table describes the dataset it is applied to, and the content-hash join when it doesn't.

By position (``on="idx"``): lengths must match and the ``example_id`` of a sample of rows (or every row with
``verify="full"``) must equal the hash of the dataset's own image and label. By content (``on="example_id"``):
each dataset row is matched to the score row with the same content hash, whatever the order.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .errors import ScoreMismatchError
from .hashing import example_id

logger = logging.getLogger(__name__)

VERIFY_MODES = ("sample", "full", "none")
SAMPLE_ROWS = 32
_HINT = (
    " If the dataset is a reordered, subsampled or re-exported copy, join by content instead: "
    "on='example_id' (CLI: --on example_id)."
)


def sample_positions(n: int, k: int = SAMPLE_ROWS) -> np.ndarray:
    """Evenly spread positions including the first and the last row."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64))


def dataset_example_ids(dataset: Any, positions: np.ndarray | None = None, *, image_column: str | None = None,
                        label_column: str | None = None) -> list[str]:
    """Content hashes of dataset rows (all rows, or ``positions``): the ``example_id`` column if present, else
    computed from the decoded image and the label."""
    from .sources import detect_columns  # noqa: PLC0415

    rows = dataset if positions is None else dataset.select(positions)
    if "example_id" in dataset.column_names:
        return list(rows["example_id"])
    try:
        image_column, label_column = detect_columns(dataset, image_column, label_column)
    except ValueError as err:
        raise ScoreMismatchError(f"Cannot hash the dataset's rows to check them against the scores: {err}") from err
    ids = []
    for start in range(0, len(rows), 1000):
        batch = rows[start : start + 1000]
        ids += [example_id(img, lab) for img, lab in zip(batch[image_column], batch[label_column])]
    return ids


def check_alignment(
    dataset: Any,
    score_ids: np.ndarray | list[str] | None,
    *,
    num_scores: int,
    verify: str = "sample",
    image_column: str | None = None,
    label_column: str | None = None,
) -> None:
    """Raise ``ScoreMismatchError`` unless the dataset's rows are, position by position, the scored rows."""
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify={verify!r}; choose one of: {', '.join(VERIFY_MODES)}.")
    n = len(dataset)
    if n != num_scores:
        raise ScoreMismatchError(f"The scores have {num_scores} rows but the dataset has {n}." + _HINT)
    if verify == "none" or score_ids is None or n == 0:
        return
    positions = None if verify == "full" else sample_positions(n)
    ours = dataset_example_ids(dataset, positions, image_column=image_column, label_column=label_column)
    theirs = np.asarray(score_ids)[positions] if positions is not None else np.asarray(score_ids)
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    if bad:
        row = int(positions[bad[0]]) if positions is not None else bad[0]
        raise ScoreMismatchError(
            f"{len(bad)} of {len(ours)} checked rows differ from the scored examples (first: row {row}, "
            f"example_id {ours[bad[0]]!r} vs scored {theirs[bad[0]]!r})." + _HINT
        )


def join_by_content(
    dataset_ids: list[str], score_ids: np.ndarray | list[str], *, missing: str = "error"
) -> np.ndarray:
    """For each dataset row, the score position with the same ``example_id``; -1 where none (``missing="keep"``
    or ``"drop"``), or an error (``missing="error"``). Duplicate content maps to the first scored copy."""
    if missing not in ("error", "keep", "drop"):
        raise ValueError(f"missing={missing!r}; choose one of: error, keep, drop.")
    score_ids = np.asarray(score_ids, dtype=object)
    lookup: dict[str, int] = {}
    for pos, eid in enumerate(score_ids):
        lookup.setdefault(eid, pos)
    mapped = np.fromiter((lookup.get(eid, -1) for eid in dataset_ids), dtype=np.int64, count=len(dataset_ids))
    unmatched = int((mapped < 0).sum())
    if unmatched:
        if missing == "error":
            raise ScoreMismatchError(
                f"{unmatched} of {len(mapped)} dataset rows have no score (no matching example_id). Choose what to "
                "do with them: missing='drop' or missing='keep' (CLI: --missing drop|keep)."
            )
        logger.warning("%d of %d rows have no score; policy missing=%r.", unmatched, len(mapped), missing)
    return mapped
