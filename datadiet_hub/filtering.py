"""Prune any dataset by score: ``prune`` (fast path, ``select``) and ``keep`` (a batched predicate for
``Dataset.filter`` / ``IterableDataset.filter``).

Only the score table's ``idx``, score and (when needed) ``label`` / ``never_learned`` / ``example_id`` columns are
read; the dataset being pruned is never decoded unless a content-hash join or check asks for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import selection
from .align import check_alignment, dataset_example_ids, join_by_content
from .errors import ScoreMismatchError, ScoresNotFoundError
from .schema import METRICS

logger = logging.getLogger(__name__)

JOIN_KEYS = ("idx", "example_id")


@dataclass(frozen=True)
class ScoreColumns:
    """Score values and labels in ``idx`` order (position i holds the score of source row i)."""

    values: np.ndarray
    labels: np.ndarray | None
    example_ids: np.ndarray | None


def _table(scores: Any, columns: list[str]):
    """The requested columns as a pyarrow Table, from a Dataset, a pyarrow Table or a dict of arrays."""
    import pyarrow as pa  # noqa: PLC0415

    if isinstance(scores, pa.Table):
        table = scores
    elif isinstance(scores, dict):
        table = pa.table({k: scores[k] for k in columns if k in scores})
    elif hasattr(scores, "with_format") and hasattr(scores, "column_names"):
        present = [c for c in columns if c in scores.column_names]
        table = scores.select_columns(present).with_format("arrow")[:]
    else:
        raise TypeError(
            f"scores must be a datasets.Dataset, pyarrow.Table or dict of arrays, not {type(scores).__name__}; "
            "load them with datadiet_hub.load_scores(...)."
        )
    return table


def read_scores(
    scores: Any, column: str = "el2n", *, need_labels: bool = False, need_ids: bool = False,
    never_learned_as_inf: bool = True,
) -> ScoreColumns:
    """Extract one score column in ``idx`` order, checking it is complete and finite."""
    wanted = ["idx", column, "label", "example_id", "never_learned"]
    table = _table(scores, wanted)
    names = table.column_names
    if column not in names:
        available = [c for c in names if c in METRICS] or names
        raise ScoresNotFoundError(f"Score column {column!r} not found; this score table has {available}.")
    raw = table.column(column).to_numpy(zero_copy_only=False)
    if raw.dtype.kind != "f":  # keep float32 as float32 so thresholds compare at the stored precision
        raw = raw.astype(np.float64)
    if "idx" in names:
        idx = table.column("idx").to_numpy(zero_copy_only=False)
        n = len(idx)
        if n and (idx.min() < 0 or idx.max() >= n or len(np.unique(idx)) != n):
            raise ScoreMismatchError(
                f"The score table's idx column is not a permutation of 0..{n - 1}: it was filtered or has "
                "duplicates. Use the complete score table of the split."
            )
    else:
        idx = np.arange(len(raw))
    bad = ~np.isfinite(raw)
    if bad.any():
        first = int(idx[np.flatnonzero(bad)[0]])
        raise ScoreMismatchError(
            f"{int(bad.sum())} {column!r} score(s) are NaN or infinite (first at idx {first}); "
            "the score table is corrupt or was computed with a diverged model. Recompute or drop those rows."
        )
    values = np.empty(len(raw), dtype=raw.dtype)
    values[idx] = raw
    if column == "forgetting" and never_learned_as_inf and "never_learned" in names:
        never = np.empty(len(raw), dtype=bool)
        never[idx] = table.column("never_learned").to_numpy(zero_copy_only=False)
        values[never] = (values.max(initial=0.0) + 1.0)  # ranks above every learned row, as data_diet's inf
    labels = ids = None
    if need_labels:
        if "label" not in names:
            raise ScoresNotFoundError("class_balanced=True needs a 'label' column in the score table.")
        labels = np.empty(len(raw), dtype=np.int64)
        labels[idx] = table.column("label").to_numpy(zero_copy_only=False)
    if need_ids:
        if "example_id" not in names:
            raise ScoresNotFoundError("on='example_id' needs an 'example_id' column in the score table.")
        ids = np.empty(len(raw), dtype=object)
        ids[idx] = np.asarray(table.column("example_id").to_pylist(), dtype=object)
    return ScoreColumns(values, labels, ids)


def select_indices(
    scores: Any,
    *,
    column: str = "el2n",
    fraction: float | None = None,
    count: int | None = None,
    strategy: str = "hardest",
    offset: float = 0.0,
    min_score: float | None = None,
    max_score: float | None = None,
    seed: int = 0,
    class_balanced: bool = False,
    bins: int = 50,
    never_learned_as_inf: bool = True,
) -> np.ndarray:
    """Source-row positions to keep, ascending.

    Args:
        scores: the score table (``datasets.Dataset`` from ``load_scores``, a pyarrow Table or dict).
        column: score column to rank by (``el2n``, ``grand``, ``forgetting``); larger means harder.
        fraction: share of all rows to keep, in (0, 1]; or give ``count``. Neither: keep everything that
            passes the thresholds.
        strategy: ``hardest`` (the paper's default), ``easiest``, ``random`` (seeded), ``offset`` (skip the
            hardest ``offset`` share, then keep the next hardest), ``ccs`` (coverage-centric, drops the hardest
            ``offset`` share then samples ``bins`` score strata evenly).
        min_score, max_score: absolute thresholds (inclusive); the strategy then picks among rows within them.
        seed: for ``random`` and ``ccs``.
        class_balanced: apply the strategy within each class, keeping class proportions.
        never_learned_as_inf: rank ``never_learned`` rows above all others when ranking by ``forgetting``.
    """
    if strategy not in selection.STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}. Choose one of: {', '.join(selection.STRATEGIES)}.")
    if strategy == "offset" and offset == 0:
        logger.info("strategy='offset' with offset=0 is the same as 'hardest'.")
    cols = read_scores(scores, column, need_labels=class_balanced, never_learned_as_inf=never_learned_as_inf)
    values, n = cols.values, len(cols.values)
    k = selection.budget(n, fraction=fraction, count=count)
    candidates = np.arange(n, dtype=np.int64)
    if min_score is not None or max_score is not None:
        if min_score is not None and max_score is not None and min_score > max_score:
            raise ValueError(f"min_score={min_score} is larger than max_score={max_score}.")
        inside = np.ones(n, dtype=bool)
        if min_score is not None:
            inside &= values >= min_score
        if max_score is not None:
            inside &= values <= max_score
        candidates = np.flatnonzero(inside)
        if fraction is None and count is None:
            return candidates
        if k > len(candidates):
            raise ValueError(
                f"Only {len(candidates)} rows lie within the thresholds, fewer than the {k} requested; "
                "widen min_score/max_score or lower the fraction."
            )
    sub = values[candidates]
    kwargs = dict(strategy=strategy, offset=offset, seed=seed, bins=bins)
    if class_balanced:
        chosen = selection.class_balanced(sub, cols.labels[candidates], k, **kwargs)
    else:
        chosen = selection.select(sub, k, **kwargs)
    return candidates[chosen]


class KeepPredicate:
    """Batched predicate for ``ds.filter(pred, with_indices=True, batched=True)``; picklable for ``num_proc``.

    With ``on="idx"`` the row index passed by ``filter`` is looked up in a boolean mask over the scored rows.
    With ``on="example_id"`` each row's content hash (its ``example_id`` column, or the hash of its image and
    label) is looked up instead, so the scores follow the content whatever the order.
    """

    def __init__(self, mask: np.ndarray, *, on: str, ids: np.ndarray | None = None, missing: str = "error",
                 image_column: str | None = None, label_column: str | None = None):
        self.mask = mask
        self.on = on
        self.missing = missing
        self.image_column, self.label_column = image_column, label_column
        self._id_to_pos = {eid: i for i, eid in enumerate(ids)} if ids is not None else None

    def __call__(self, batch: dict, indices: list[int] | int | None = None) -> Any:
        if self.on == "idx":
            if indices is None:
                raise TypeError("keep(..., on='idx') needs the row indices: call ds.filter(pred, with_indices=True).")
            positions = np.atleast_1d(np.asarray(indices, dtype=np.int64))
            if positions.size and positions.max() >= len(self.mask):
                raise ScoreMismatchError(
                    f"Row {int(positions.max())} is beyond the {len(self.mask)} scored rows: the dataset is not the "
                    "scored split. Check the split, or join by content with on='example_id'."
                )
            kept = self.mask[positions]
        else:
            kept = self._by_content(batch)
        if indices is not None:
            batched = isinstance(indices, (list, np.ndarray))
        else:
            batched = isinstance(next(iter(batch.values()), None), list)
        return kept.tolist() if batched else bool(kept[0])

    def _by_content(self, batch: dict) -> np.ndarray:
        if "example_id" in batch:
            ids = batch["example_id"]
        else:
            from .hashing import example_id  # noqa: PLC0415

            image_col = self.image_column or next((c for c in ("image", "img") if c in batch), None)
            label_col = self.label_column or next((c for c in ("label", "labels") if c in batch), None)
            if image_col is None or label_col is None:
                raise ScoreMismatchError(
                    f"Cannot hash rows with columns {list(batch)}; give image_column= and label_column=."
                )
            images, labels = batch[image_col], batch[label_col]
            if not isinstance(labels, list):
                images, labels = [images], [labels]
            ids = [example_id(img, lab) for img, lab in zip(images, labels)]
        if isinstance(ids, str):
            ids = [ids]
        pos = np.fromiter((self._id_to_pos.get(e, -1) for e in ids), dtype=np.int64, count=len(ids))
        if (pos < 0).any() and self.missing == "error":
            raise ScoreMismatchError(
                f"{int((pos < 0).sum())} row(s) in this batch have no score (unknown example_id). Choose a policy: "
                "missing='drop' or missing='keep'."
            )
        return np.where(pos >= 0, self.mask[np.maximum(pos, 0)], self.missing == "keep")


def keep(
    scores: Any,
    *,
    on: str = "idx",
    missing: str = "error",
    dataset: Any = None,
    verify: str = "sample",
    image_column: str | None = None,
    label_column: str | None = None,
    **select_kwargs: Any,
) -> Callable:
    """A batched predicate keeping the rows ``select_indices(scores, **select_kwargs)`` selects.

    Use as ``ds.filter(keep(scores, fraction=0.5), with_indices=True, batched=True)``. Pass ``dataset=ds`` to
    verify alignment first (length and a sample of content hashes).
    """
    if on not in JOIN_KEYS:
        raise ValueError(f"on={on!r}; choose one of: {', '.join(JOIN_KEYS)}.")
    kept = select_indices(scores, **select_kwargs)
    n = len(_table(scores, ["idx"]).column("idx")) if not isinstance(scores, dict) else len(scores["idx"])
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    ids = read_scores(scores, select_kwargs.get("column", "el2n"), need_ids=True).example_ids if (
        on == "example_id" or (dataset is not None and verify != "none")) else None
    if dataset is not None and on == "idx" and hasattr(dataset, "__len__"):
        check_alignment(dataset, ids, num_scores=n, verify=verify, image_column=image_column,
                        label_column=label_column)
    return KeepPredicate(mask, on=on, ids=ids if on == "example_id" else None, missing=missing,
                         image_column=image_column, label_column=label_column)


def prune(
    dataset: Any,
    scores: Any,
    *,
    on: str = "idx",
    missing: str = "error",
    verify: str = "sample",
    image_column: str | None = None,
    label_column: str | None = None,
    **select_kwargs: Any,
) -> Any:
    """Return ``dataset`` with only the selected rows, via ``Dataset.select`` (no copy of the data).

    Args:
        dataset: a ``datasets.Dataset`` (or ``IterableDataset``, pruned lazily with ``filter``).
        scores: the score table of the same split.
        on: ``idx`` (row positions must match; checked by length and sampled content hashes) or ``example_id``
            (content-hash join; for reordered or subsampled copies).
        missing: with ``on="example_id"``, rows without a score: ``error``, ``drop`` or ``keep``.
        verify: ``sample`` (default), ``full`` or ``none`` content check when ``on="idx"``.
        **select_kwargs: passed to ``select_indices`` (column, fraction, strategy, ...).
    """
    if on not in JOIN_KEYS:
        raise ValueError(f"on={on!r}; choose one of: {', '.join(JOIN_KEYS)}.")
    if not hasattr(dataset, "__len__"):  # IterableDataset: stream through the predicate
        predicate = keep(scores, on=on, missing=missing, image_column=image_column, label_column=label_column,
                         **select_kwargs)
        return dataset.filter(predicate, with_indices=True, batched=True)
    kept = select_indices(scores, **select_kwargs)
    if on == "idx":
        need_ids = verify != "none"
        ids = read_scores(scores, select_kwargs.get("column", "el2n"), need_ids=need_ids).example_ids \
            if need_ids else None
        n = len(_table(scores, ["idx"]).column("idx")) if not isinstance(scores, dict) else len(scores["idx"])
        check_alignment(dataset, ids, num_scores=n, verify=verify, image_column=image_column,
                        label_column=label_column)
        return dataset.select(kept)
    ids = read_scores(scores, select_kwargs.get("column", "el2n"), need_ids=True).example_ids
    mapped = join_by_content(dataset_example_ids(dataset, image_column=image_column, label_column=label_column),
                             ids, missing=missing)
    mask = np.zeros(len(ids), dtype=bool)
    mask[kept] = True
    rows = np.flatnonzero(np.where(mapped >= 0, mask[np.maximum(mapped, 0)], missing == "keep"))
    return dataset.select(rows)
