"""Prune any dataset by score: ``prune`` (fast path, an indices mapping) and ``keep`` (a batched predicate for
``Dataset.filter`` / ``IterableDataset.filter``).

Only the score table's ``idx`` and score columns are read (plus ``label``, ``never_learned`` or ``example_id`` when
a strategy, a join or a check needs them), through arrow without a Python object per row, so pruning 10M rows
takes well under a second. The dataset being pruned is never read beyond the rows a check samples: ``prune``
only attaches an indices mapping, like ``Dataset.select``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import selection
from .align import (
    IdIndex,
    check_alignment,
    check_fingerprint,
    dataset_example_ids,
    join_by_content,
    report_missing,
    sample_positions,
    take_rows,
    validate_missing,
    validate_verify,
)
from .errors import ScoreMismatchError, ScoresNotFoundError
from .provenance import Provenance, as_provenance, provenance_of
from .schema import METRICS

logger = logging.getLogger(__name__)

JOIN_KEYS = ("idx", "example_id")


@dataclass(frozen=True)
class ScoreColumns:
    """Score values and labels in ``idx`` order (position i holds the score of source row i).

    ``example_ids`` is an arrow string array (never a Python list: 10M Python strings cost ~1 GB and seconds).
    """

    values: np.ndarray
    labels: np.ndarray | None
    example_ids: Any | None


def _column_names(scores: Any) -> list[str]:
    import pyarrow as pa

    if isinstance(scores, pa.Table):
        return scores.column_names
    if isinstance(scores, dict):
        return list(scores)
    if hasattr(scores, "with_format") and hasattr(scores, "column_names"):
        return list(scores.column_names)
    raise TypeError(
        f"scores must be a datasets.Dataset, pyarrow.Table or dict of arrays, not {type(scores).__name__}; "
        "load them with datadiet_hub.load_scores(...)."
    )


def _table(scores: Any, columns: list[str]):
    """Only the requested (and present) columns as a pyarrow Table, from a Dataset, a Table or a dict of arrays.

    For a memory-mapped ``Dataset`` this is a zero-copy slice: the other columns (per-seed lists, ids) are not read.
    """
    import pyarrow as pa

    present = [c for c in columns if c in _column_names(scores)]
    if isinstance(scores, pa.Table):
        return scores.select(present)
    if isinstance(scores, dict):
        return pa.table({k: scores[k] for k in present})
    from .align import arrow_column

    return pa.table({k: arrow_column(scores, k) for k in present})


def _numpy(column: Any) -> np.ndarray:
    """A pyarrow column as numpy, zero-copy when it is one chunk without nulls."""
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    if len(chunks) == 1:
        return chunks[0].to_numpy(zero_copy_only=False)
    return column.combine_chunks().to_numpy(zero_copy_only=False)


def _idx_inverse(idx: np.ndarray) -> np.ndarray | None:
    """None when ``idx`` is 0..n-1 in order (the usual case: nothing to reorder), else ``inv`` with
    ``inv[j]`` = the table row holding idx j. Raises unless ``idx`` is a permutation of 0..n-1; O(n), no sort."""
    n = len(idx)
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
            "duplicates. Use the complete score table of the split."
        )
    inverse = np.empty(n, dtype=np.int64)
    inverse[idx] = np.arange(n, dtype=np.int64)
    return inverse


def read_scores(
    scores: Any,
    column: str = "el2n",
    *,
    need_labels: bool = False,
    need_ids: bool = False,
    never_learned_as_inf: bool = True,
) -> ScoreColumns:
    """Extract one score column in ``idx`` order, checking it is complete and finite.

    float32 scores stay float32, so thresholds compare at the stored precision (``max_score=0.3`` keeps a stored
    ``0.3``). Reads only the columns asked for.
    """
    import pyarrow as pa

    names = _column_names(scores)
    if column not in names:
        available = [c for c in names if c in METRICS] or names
        raise ScoresNotFoundError(
            f"Score column {column!r} not found; this score table has {available}. Pass column= one of them."
        )
    wanted = ["idx", column]
    if column == "forgetting" and never_learned_as_inf:
        wanted.append("never_learned")
    if need_labels:
        if "label" not in names:
            raise ScoresNotFoundError(
                f"class_balanced=True needs a 'label' column in the score table; it has {names}."
            )
        wanted.append("label")
    if need_ids:
        if "example_id" not in names:
            raise ScoresNotFoundError(
                f"on='example_id' and content checks need an 'example_id' column in the score table; it has {names}."
                " Without ids, rows can only be matched by position: on='idx'."
            )
        wanted.append("example_id")
    table = _table(scores, wanted)
    raw = _numpy(table.column(column))
    if raw.dtype.kind != "f":
        raw = raw.astype(np.float64)
    inverse = _idx_inverse(_numpy(table.column("idx"))) if "idx" in table.column_names else None
    bad = ~np.isfinite(raw)
    if bad.any():
        first_row = int(np.flatnonzero(bad)[0])
        first = int(_numpy(table.column("idx"))[first_row]) if "idx" in table.column_names else first_row
        raise ScoreMismatchError(
            f"{int(bad.sum())} {column!r} score(s) are NaN or infinite (first at idx {first}); "
            "the score table is corrupt or was computed with a diverged model. Recompute or drop those rows."
        )

    def ordered(values: np.ndarray) -> np.ndarray:
        return values if inverse is None else values[inverse]

    values = ordered(raw)
    if "never_learned" in table.column_names:
        never = ordered(_numpy(table.column("never_learned")).astype(bool))
        if never.any():
            values = values.copy()
            values[never] = values.max(initial=0.0) + 1  # ranks above every learned row, as data_diet's inf
    labels = ordered(_numpy(table.column("label")).astype(np.int64, copy=False)) if need_labels else None
    ids = None
    if need_ids:
        ids = table.column("example_id")
        if inverse is not None:
            ids = ids.take(pa.array(inverse))
    return ScoreColumns(values, labels, ids)


def score_ids(scores: Any, positions: np.ndarray | None = None) -> Any:
    """The score table's ``example_id`` in ``idx`` order (all rows, or at ``positions``) as arrow, reading only
    the ``idx`` and ``example_id`` columns and never copying the whole id column (memory-mapped chunks stay so)."""

    names = _column_names(scores)
    if "example_id" not in names:
        raise ScoresNotFoundError(
            f"on='example_id' and content checks need an 'example_id' column in the score table; it has {names}."
            " Without ids, rows can only be matched by position: on='idx'."
        )
    table = _table(scores, ["idx", "example_id"])
    inverse = _idx_inverse(_numpy(table.column("idx"))) if "idx" in table.column_names else None
    rows = positions if inverse is None else (inverse if positions is None else inverse[positions])
    column = table.column("example_id")
    return column if rows is None else take_rows(column, np.asarray(rows, dtype=np.int64))


def num_scores(scores: Any) -> int:
    """Rows in a score table, without reading any column."""
    if isinstance(scores, dict):
        return len(next(iter(scores.values()), ()))
    return scores.num_rows if hasattr(scores, "num_rows") else len(scores)


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
    n_rows = num_scores(scores)
    k = selection.budget(n_rows, fraction=fraction, count=count)  # validate before reading anything
    cols = read_scores(scores, column, need_labels=class_balanced, never_learned_as_inf=never_learned_as_inf)
    values, n = cols.values, len(cols.values)
    candidates = None
    if min_score is not None or max_score is not None:
        if min_score is not None and max_score is not None and min_score > max_score:
            raise ValueError(f"min_score={min_score} is larger than max_score={max_score}; swap them.")
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
    sub = values if candidates is None else values[candidates]
    kwargs = dict(strategy=strategy, offset=offset, seed=seed, bins=bins)
    if class_balanced:
        labels = cols.labels if candidates is None else cols.labels[candidates]
        chosen = selection.class_balanced(sub, labels, k, **kwargs)
    else:
        chosen = selection.select(sub, k, **kwargs)
    return chosen if candidates is None else candidates[chosen]


def select_rows(dataset: Any, rows: np.ndarray) -> Any:
    """``dataset.select(rows)`` for ascending int64 ``rows``, without its per-row Python work.

    ``Dataset.select`` turns the index array into a Python list (plus ``min``/``max`` over it and a hash of it for
    the fingerprint): ~0.9 s for 5M rows. This builds the same indices mapping straight from the numpy array, the
    way ``Dataset.filter`` attaches its result, and composes it with an existing mapping. The result is
    indistinguishable from ``select`` (same rows, format, features; a later ``select`` or ``filter`` on it does not
    flatten the mapping). Falls back to ``select`` if the ``datasets`` internals it relies on change.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(dataset)
    if len(rows) == 0 or n == 0:
        return dataset.select(rows)
    if rows[0] < 0 or rows[-1] >= n:
        raise IndexError(f"Row {int(rows[-1] if rows[-1] >= n else rows[0])} is out of range for {n} rows.")
    if rows[-1] - rows[0] + 1 == len(rows):  # contiguous: a zero-copy slice
        return dataset.select(range(int(rows[0]), int(rows[-1]) + 1))
    try:
        import pyarrow as pa
        from datasets.table import InMemoryTable

        if dataset.list_indexes():
            return dataset.select(rows)
        mapping = pa.array(rows.astype(np.uint64, copy=False), type=pa.uint64())
        if dataset._indices is not None:
            mapping = dataset._indices.column(0).take(mapping)
        out = copy.deepcopy(dataset)  # what Dataset.filter does: shares the arrow data, copies format and info
        out._indices = InMemoryTable(pa.table({"indices": mapping}))
        out._fingerprint = _selection_fingerprint(dataset._fingerprint, rows)
        return out
    except (AttributeError, ImportError, TypeError) as err:  # datasets internals changed: the slow public path
        logger.debug("fast select unavailable (%s); using Dataset.select", err)
        return dataset.select(rows)


def _selection_fingerprint(parent: str, rows: np.ndarray) -> str:
    try:
        import xxhash

        digest = xxhash.xxh64()
    except ImportError:
        import hashlib

        digest = hashlib.blake2b(digest_size=8)
    digest.update(f"datadiet-select|{parent}|".encode())
    digest.update(memoryview(np.ascontiguousarray(rows)))
    return digest.hexdigest()


def _batch_column(batch: Any, name: str) -> list | Any:
    """A column of a ``filter`` batch as a sequence: dict batches (python, numpy, lazy) or arrow tables."""
    if hasattr(batch, "column_names") and hasattr(batch, "column"):  # pyarrow.Table (format "arrow")
        return batch.column(name).to_pylist()
    value = batch[name]
    return value if not isinstance(value, np.ndarray) else value.tolist()


def _batch_names(batch: Any) -> list[str]:
    return list(batch.column_names) if hasattr(batch, "column_names") else list(batch.keys())


class KeepPredicate:
    """Batched predicate for ``ds.filter(pred, with_indices=True, batched=True)``; picklable for ``num_proc``.

    With ``on="idx"`` the row index passed by ``filter`` is looked up in a boolean mask over the scored rows
    (contiguous batches are one slice, so the predicate costs ~1 us per batch of 1000). With ``on="example_id"``
    each row's content hash (its ``example_id`` column, or the hash of its image and label) is looked up in an
    ``IdIndex`` instead, so the scores follow the content whatever the order.

    With ``on="idx"`` and a check requested, rows at the sample positions (every row for ``verify="full"``) are
    hashed as they pass and compared with the scored ``example_id``: a streamed or reordered copy fails early.

    ``stats`` counts rows seen, kept and without a score in this process (each ``num_proc`` worker has a copy).
    """

    def __init__(
        self,
        mask: np.ndarray,
        *,
        on: str,
        index: IdIndex | None = None,
        missing: str = "error",
        image_column: str | None = None,
        label_column: str | None = None,
        expected_ids: Any = None,
        check_positions: np.ndarray | None = None,
    ):
        self.mask = mask
        self.on = on
        self.missing = missing
        self.index = index
        self.image_column, self.label_column = image_column, label_column
        self.expected_ids = expected_ids
        self.check_positions = check_positions
        self.stats = {"rows": 0, "kept": 0, "missing": 0}

    def __call__(self, batch: Any, indices: list[int] | int | None = None) -> Any:
        single = isinstance(indices, (int, np.integer)) or (indices is None and not _is_batch(batch))
        if self.on == "idx":
            if indices is None:
                raise TypeError("keep(..., on='idx') needs the row indices: call ds.filter(pred, with_indices=True).")
            positions = _as_positions(indices)
            if isinstance(positions, slice):
                last, first_bad = positions.stop - 1, max(positions.start, len(self.mask))
            else:
                last = int(positions.max(initial=-1))
                first_bad = int(positions[positions >= len(self.mask)].min(initial=last))
            if last >= len(self.mask):
                raise ScoreMismatchError(
                    f"Row {first_bad} is beyond the {len(self.mask)} scored rows: the dataset is not the scored split. "
                    "Check the split, or join by content with on='example_id' (CLI: --on example_id)."
                )
            if self.expected_ids is not None:
                self._check(batch, positions, single)
            kept = np.atleast_1d(self.mask[positions])
        else:
            kept = self._by_content(batch, single)
        self.stats["rows"] += len(kept)
        self.stats["kept"] += int(np.count_nonzero(kept))
        return bool(kept[0]) if single else kept.tolist()

    def _ids(self, batch: Any, single: bool, rows: np.ndarray | None = None) -> list[str]:
        """Content ids of the batch's rows (or of ``rows`` within it): its ``example_id`` column, else hashes."""
        from .hashing import example_id

        names = _batch_names(batch)
        if "example_id" in names:
            ids = [batch["example_id"]] if single else _batch_column(batch, "example_id")
            return ids if rows is None else [ids[i] for i in rows]
        from .sources import IMAGE_COLUMN_GUESSES, LABEL_COLUMN_GUESSES

        image_col = self.image_column or next((c for c in IMAGE_COLUMN_GUESSES if c in names), None)
        label_col = self.label_column or next((c for c in LABEL_COLUMN_GUESSES if c in names), None)
        if image_col is None or label_col is None or image_col not in names or label_col not in names:
            fix = "" if self.on == "example_id" else ", or skip the check with verify='none'"
            raise ScoreMismatchError(
                f"Cannot hash rows with columns {names} to match them to the scores (image column {image_col!r}, "
                f"label column {label_col!r}); name them with image_column= and label_column=, or add an "
                f"'example_id' column{fix}."
            )
        if single:
            return [example_id(batch[image_col], batch[label_col])]
        images, labels = batch[image_col], batch[label_col]
        take = range(len(labels)) if rows is None else rows
        return [example_id(images[i], labels[i]) for i in take]

    def _check(self, batch: Any, positions: slice | np.ndarray, single: bool) -> None:
        """Compare the content ids of the batch's rows at check positions with the scored ids.

        O(log 32) for a batch without a sample row (a ``searchsorted`` on the slice bounds), so the check is free
        for all but 32 batches.
        """
        if isinstance(positions, slice):
            if self.check_positions is not None:
                lo, hi = np.searchsorted(self.check_positions, [positions.start, positions.stop])
                if lo == hi:
                    return
                pos = self.check_positions[lo:hi]
            else:
                pos = np.arange(positions.start, positions.stop)
            local = pos - positions.start
        else:
            local = (
                np.arange(len(positions))
                if self.check_positions is None
                else np.flatnonzero(np.isin(positions, self.check_positions))
            )
            pos = positions[local]
            if not len(local):
                return
        ours = self._ids(batch, single, None if single else local)
        if isinstance(self.expected_ids, dict):
            theirs = [self.expected_ids[p] for p in pos.tolist()]
        else:
            theirs = self.expected_ids.take(pos).to_pylist()
        for row, a, b in zip(pos.tolist(), ours, theirs):
            if a != b:
                raise ScoreMismatchError(
                    f"Row {row} differs from the scored example (example_id {a!r} vs scored {b!r}): the rows are "
                    "not the scored split in its order. If the dataset is a reordered, subsampled or re-exported "
                    "copy, join by content: on='example_id' (CLI: --on example_id); to skip the check, "
                    "verify='none' (CLI: --verify none)."
                )

    def _by_content(self, batch: Any, single: bool) -> np.ndarray:
        pos = self.index.lookup(self._ids(batch, single))
        unknown = int((pos < 0).sum())
        if unknown:
            before = self.stats["missing"]
            self.stats["missing"] += unknown
            if self.missing == "error":
                raise ScoreMismatchError(
                    f"{unknown} row(s) in this batch have no score (unknown example_id). Choose a policy: "
                    "missing='drop' or missing='keep' (CLI: --missing drop|keep)."
                )
            log = logger.warning if before == 0 else logger.debug
            log(
                "%d row(s) without a score so far (policy missing=%r); see KeepPredicate.stats.",
                self.stats["missing"],
                self.missing,
            )
        return np.where(pos >= 0, self.mask[np.maximum(pos, 0)], self.missing == "keep")


def _is_batch(batch: Any) -> bool:
    """Whether ``filter`` passed a batch (a column per key) rather than one example; formats one column at most."""
    if hasattr(batch, "num_rows"):
        return True
    first = next(iter(batch.keys()), None) if hasattr(batch, "keys") else None
    return first is not None and isinstance(batch[first], (list, np.ndarray))


def _as_positions(indices: Any) -> slice | np.ndarray:
    """Row positions of a ``filter`` call: a slice for a contiguous run (what ``datasets`` always passes)."""
    if isinstance(indices, (int, np.integer)):
        return np.array([int(indices)], dtype=np.int64)
    if isinstance(indices, range) and indices.step == 1:
        return slice(indices.start, indices.stop)
    if (
        isinstance(indices, list)
        and indices
        and indices[-1] - indices[0] + 1 == len(indices)
        and indices[0] >= 0
        and (len(indices) < 3 or indices[1] == indices[0] + 1)
    ):
        return slice(indices[0], indices[-1] + 1)
    positions = np.asarray(indices, dtype=np.int64)
    if positions.size and positions.min() < 0:
        raise ScoreMismatchError(f"Negative row index {int(positions.min())} passed to the keep predicate.")
    return positions


def _provenance(scores: Any, provenance: Provenance | Mapping[str, Any] | None) -> Provenance | None:
    if provenance is not None:
        return as_provenance(provenance)
    return provenance_of(scores)


def keep(
    scores: Any,
    *,
    on: str = "idx",
    missing: str = "error",
    dataset: Any = None,
    verify: str = "sample",
    image_column: str | None = None,
    label_column: str | None = None,
    provenance: Provenance | Mapping[str, Any] | None = None,
    **select_kwargs: Any,
) -> Callable:
    """A batched predicate keeping the rows ``select_indices(scores, **select_kwargs)`` selects.

    Use as ``ds.filter(keep(scores, fraction=0.5), with_indices=True, batched=True)`` (``batch_size=10_000``
    halves the time on large datasets); works on ``IterableDataset`` (streaming) and with ``num_proc``.

    Args:
        scores: the score table of the scored split.
        on: ``idx`` (row positions) or ``example_id`` (content-hash join, any order or subset).
        missing: with ``on="example_id"``, rows without a score: ``error``, ``drop`` or ``keep``.
        dataset: a ``datasets.Dataset`` to check before filtering (length, sampled hashes, card fingerprint);
            without it, ``on="idx"`` checks the sampled rows as they stream past.
        verify: ``sample`` (default), ``full`` or ``none``.
        image_column, label_column: columns to hash when the dataset has no ``example_id`` column.
        provenance: the card's ``datadiet`` block (``load_provenance``); found automatically for tables returned
            by ``load_scores``.
        **select_kwargs: passed to ``select_indices`` (column, fraction, strategy, ...).
    """
    on, missing, verify = _validate(on, missing, verify)
    provenance = _provenance(scores, provenance)
    kept = select_indices(scores, **select_kwargs)
    n = num_scores(scores)
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    if on == "example_id":
        ids = score_ids(scores)
        if verify == "full":
            check_fingerprint(ids, provenance, what="the score table's example ids")
        return KeepPredicate(
            mask, on=on, index=IdIndex(ids), missing=missing, image_column=image_column, label_column=label_column
        )
    has_ids = verify != "none" and "example_id" in _column_names(scores)
    if dataset is not None and hasattr(dataset, "__len__"):
        check_alignment(
            dataset,
            _ids_reader(scores) if has_ids else None,
            num_scores=n,
            verify=verify,
            image_column=image_column,
            label_column=label_column,
            provenance=provenance,
        )
        has_ids = False  # checked up front: nothing left to check while filtering
    elif verify != "none" and not has_ids:
        logger.info("The score table has no example_id column: rows are matched by position only.")
    ids = check_positions = None
    if has_ids and verify == "sample":  # only the 32 sampled ids: the predicate is pickled and hashed by filter
        check_positions = sample_positions(n)
        ids = dict(zip(check_positions.tolist(), score_ids(scores, check_positions).to_pylist()))
    elif has_ids:
        ids = score_ids(scores)
    return KeepPredicate(
        mask,
        on=on,
        image_column=image_column,
        label_column=label_column,
        expected_ids=ids,
        check_positions=check_positions,
    )


def _ids_reader(scores: Any) -> Callable[[np.ndarray | None], Any] | None:
    """For ``check_alignment``: reads the scored ids at the positions it checks (32 rows unless verify="full")."""
    if "example_id" not in _column_names(scores):
        return None
    return lambda positions: score_ids(scores, positions)


def _validate(on: str, missing: str, verify: str) -> tuple[str, str, str]:
    if on not in JOIN_KEYS:
        raise ValueError(f"on={on!r}; choose one of: {', '.join(JOIN_KEYS)}.")
    return on, validate_missing(missing), validate_verify(verify)


def prune(
    dataset: Any,
    scores: Any,
    *,
    on: str = "idx",
    missing: str = "error",
    verify: str = "sample",
    image_column: str | None = None,
    label_column: str | None = None,
    provenance: Provenance | Mapping[str, Any] | None = None,
    **select_kwargs: Any,
) -> Any:
    """Return ``dataset`` with only the selected rows, as an indices mapping (no copy of the data).

    Args:
        dataset: a ``datasets.Dataset``, or an ``IterableDataset`` (pruned lazily with ``filter(keep(...))``).
        scores: the score table of the same split.
        on: ``idx`` (row positions must match; checked by length and sampled content hashes) or ``example_id``
            (content-hash join; for reordered, subsampled or re-exported copies).
        missing: with ``on="example_id"``, rows without a score: ``error``, ``drop`` or ``keep``.
        verify: ``sample`` (default: length, card row count, 32 sampled hashes), ``full`` (every row's hash and the
            card's source fingerprint) or ``none`` (length only).
        provenance: the card's ``datadiet`` block (``load_provenance``); found automatically for tables returned
            by ``load_scores``. A fingerprint mismatch raises ``ScoreMismatchError`` (override: ``verify="none"``).
        **select_kwargs: passed to ``select_indices`` (column, fraction, strategy, ...).
    """
    on, missing, verify = _validate(on, missing, verify)
    if not hasattr(dataset, "__len__"):  # IterableDataset: stream through the predicate
        predicate = keep(
            scores,
            on=on,
            missing=missing,
            verify=verify,
            image_column=image_column,
            label_column=label_column,
            provenance=provenance,
            **select_kwargs,
        )
        return dataset.filter(predicate, with_indices=True, batched=True)
    provenance = _provenance(scores, provenance)
    kept = select_indices(scores, **select_kwargs)
    n = num_scores(scores)
    if len(dataset) == 0:
        logger.warning("The dataset to prune is empty; nothing to keep.")
    if on == "idx":
        check_alignment(
            dataset,
            _ids_reader(scores),
            num_scores=n,
            verify=verify,
            image_column=image_column,
            label_column=label_column,
            provenance=provenance,
        )
        return select_rows(dataset, kept)
    ids = score_ids(scores)
    if verify == "full":
        check_fingerprint(ids, provenance, what="the score table's example ids")
    mapped = join_by_content(
        dataset_example_ids(dataset, image_column=image_column, label_column=label_column), ids, missing=missing
    )
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    rows = np.flatnonzero(np.where(mapped >= 0, mask[np.maximum(mapped, 0)], missing == "keep"))
    return select_rows(dataset, rows)


__all__ = ["KeepPredicate", "keep", "prune", "read_scores", "report_missing", "select_indices", "select_rows"]
