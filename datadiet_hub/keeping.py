"""``keep``: a batched predicate for ``Dataset.filter`` / ``IterableDataset.filter`` keeping the selected rows.

Works on streaming datasets and with ``num_proc`` (the predicate is picklable). With ``on="idx"`` the row index
``filter`` passes is looked up in a boolean mask over the scored rows; with ``on="example_id"`` each row's content
hash is looked up instead, so the scores follow the content whatever the order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._join import copies_to_keep, ids_reader, provenance_for, validate_join
from .align import (
    IdIndex,
    check_alignment,
    check_fingerprint,
    join_columns,
    label_space,
    sample_positions,
    scored_columns,
)
from .columns import Columns
from .errors import InvalidArgumentError, InvalidTypeError, ScoreMismatchError
from .hashing import LabelSpace, example_id, example_ids, own_class_names
from .provenance import Provenance
from .score_table import column_names, num_scores, score_ids
from .selection import Selection, as_selection, dataset_groups, select_indices

logger = logging.getLogger(__name__)


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
    each row's content hash (its ``example_id`` column, or the hash of its input and label) is looked up in an
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
        input_column: str | None = None,
        label_column: str | None = None,
        expected_ids: Any = None,
        check_positions: np.ndarray | None = None,
        labels: LabelSpace | None = None,
        own_names: list[str] | None = None,
        scored: tuple[str | None, str | None] = (None, None),
        limits: dict[int, int] | None = None,
    ):
        self.mask = mask
        self.limits = limits or {}  # score position -> copies to keep, for content scored more than once
        self._taken: dict[int, int] = {}
        self.on = on
        self.missing = missing
        self.index = index
        self.input_column, self.label_column = input_column, label_column
        self.labels = labels or LabelSpace()
        self.scored = scored  # the (input, label) columns the card records
        self.own_names = own_names  # the dataset's ClassLabel names, when keep() was given the dataset
        self._columns: Columns | None = None
        self.expected_ids = expected_ids
        self.check_positions = check_positions
        self.stats = {"rows": 0, "kept": 0, "missing": 0}

    def __call__(self, batch: Any, indices: list[int] | int | None = None) -> Any:
        single = isinstance(indices, (int, np.integer)) or (indices is None and not _is_batch(batch))
        if self.on == "idx":
            if indices is None:
                raise InvalidTypeError(
                    "keep(..., on='idx') needs the row indices: call ds.filter(pred, with_indices=True)."
                )
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
        names = _batch_names(batch)
        if "example_id" in names:
            ids = [batch["example_id"]] if single else _batch_column(batch, "example_id")
            return ids if rows is None else [ids[i] for i in rows]
        columns = self._join_columns(batch)
        label = columns.label
        if label is None:  # an unlabeled corpus: documents hash their text alone
            texts = [batch[columns.input]] if single else _batch_column(batch, columns.input)
            return [example_id(texts[i], None) for i in (range(len(texts)) if rows is None else rows)]
        if single:
            return example_ids([batch[columns.input]], [batch[label]], self.labels, self.own_names)
        values, labels = batch[columns.input], batch[label]
        if hasattr(batch, "column_names") and hasattr(batch, "column"):  # pyarrow.Table
            values, labels = values.to_pylist(), labels.to_pylist()
        take = range(len(labels)) if rows is None else rows
        return example_ids([values[i] for i in take], [labels[i] for i in take], self.labels, self.own_names)

    def _join_columns(self, batch: Any) -> Columns:
        """The columns to hash, decided on the first batch (``align.join_columns``) and kept for the rest."""
        if self._columns is None:
            self._columns = join_columns(
                batch, input_column=self.input_column, label_column=self.label_column, scored=self.scored
            )
        return self._columns

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
        if self.index is None:
            raise InvalidArgumentError("on='example_id' needs an IdIndex of the scored ids; build it with keep().")
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
        kept = np.where(pos >= 0, self.mask[np.maximum(pos, 0)], self.missing == "keep")
        if self.limits:  # content scored several times: the first copies that pass, as many as were selected
            for i in np.flatnonzero(np.isin(pos, list(self.limits))).tolist():
                p = int(pos[i])
                taken = self._taken.get(p, 0)
                kept[i] = taken < self.limits[p]
                self._taken[p] = taken + 1
        return kept


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


def keep(
    scores: Any,
    *,
    on: str = "idx",
    missing: str = "error",
    dataset: Any = None,
    verify: str = "sample",
    input_column: str | None = None,
    label_column: str | None = None,
    provenance: Provenance | Mapping[str, Any] | None = None,
    selection: Selection | None = None,
    image_column: str | None = None,
    **selection_kwargs: Any,
) -> Callable:
    """A batched predicate keeping the rows ``select_indices(scores, selection)`` selects.

    Use as ``ds.filter(keep(scores, fraction=0.5), with_indices=True, batched=True)`` (``batch_size=10_000``
    halves the time on large datasets); works on ``IterableDataset`` (streaming) and with ``num_proc``.

    Args:
        scores: the score table of the scored split.
        on: ``idx`` (row positions) or ``example_id`` (content-hash join, any order or subset; ``fraction`` and
            ``count`` count the scored split's rows, and content scored several times keeps the first copies that
            pass, as many as were selected: the rows ``prune`` keeps).
        missing: with ``on="example_id"``, rows without a score: ``error``, ``drop`` or ``keep``.
        dataset: a ``datasets.Dataset`` to check before filtering (length, sampled hashes, card fingerprint);
            without it, ``on="idx"`` checks the sampled rows as they stream past. Its ``ClassLabel`` names, if any,
            map class ids numbered otherwise than the scored classes.
        verify: ``sample`` (default), ``full`` or ``none``.
        input_column, label_column: columns to hash when the dataset has no ``example_id`` column (default: the
            ones the card records, else ``datadiet_hub.columns.detect_columns``); ``image_column`` is the older
            name of ``input_column``.
        provenance: the card's ``datadiet`` block (``load_provenance``); found automatically for tables returned
            by ``load_scores``.
        selection: a ``Selection`` saying what to keep; or give its fields as keyword arguments (``column``,
            ``fraction``, ``count``, ``strategy``, ``skip``, ``beta``, ``seed``, ``tie_break``, ...; see
            ``Selection``). The deprecated ``offset=`` maps to ``skip`` (or ``beta`` for ``ccs``).
    """
    on, missing, verify = validate_join(on, missing, verify)
    sel = as_selection(selection, selection_kwargs)  # validated before anything is read
    input_column = _one_input_column(input_column, image_column)
    provenance = provenance_for(scores, provenance)
    hashing: dict[str, Any] = {
        "input_column": input_column,
        "label_column": label_column,
        "labels": label_space(provenance),
        "scored": scored_columns(provenance),
        "own_names": _own_names(dataset, input_column, label_column, scored_columns(provenance)),
    }
    kept = select_indices(scores, selection=sel, groups=dataset_groups(dataset, scores, sel, on))
    n = num_scores(scores)
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    if on == "example_id":
        ids = score_ids(scores)
        if verify == "full":
            check_fingerprint(ids, provenance, what="the score table's example ids")
        index = IdIndex(ids)
        first = index.lookup(ids)  # each scored row's first copy: rows sharing content count as one example's
        counts = copies_to_keep(scores, sel, first, kept)
        repeated = np.flatnonzero(np.bincount(first, minlength=n) > 1) if len(first) else np.empty(0, np.int64)
        limits = {int(p): int(counts[p]) for p in repeated.tolist()}
        return KeepPredicate(counts > 0, on=on, index=index, missing=missing, limits=limits, **hashing)
    has_ids = verify != "none" and "example_id" in column_names(scores)
    if dataset is not None and hasattr(dataset, "__len__"):
        check_alignment(
            dataset,
            ids_reader(scores) if has_ids else None,
            num_scores=n,
            verify=verify,
            input_column=input_column,
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
    return KeepPredicate(mask, on=on, expected_ids=ids, check_positions=check_positions, **hashing)


def _own_names(
    dataset: Any, input_column: str | None, label_column: str | None, scored: tuple[str | None, str | None]
) -> list[str] | None:
    """The ``ClassLabel`` names of the dataset's label column, when ``keep`` is given a dataset with features:
    batches carry class ids only, and these say which class each id is (``LabelSpace``)."""
    features = getattr(dataset, "features", None)
    if not features or "example_id" in features:
        return None
    try:
        columns = join_columns(features, input_column=input_column, label_column=label_column, scored=scored)
    except (InvalidArgumentError, ScoreMismatchError):
        return None  # no label to name (an unlabeled corpus): hashing, if it is asked for, says what is missing
    return own_class_names(features, columns.label) if columns.label is not None else None


def _one_input_column(input_column: str | None, image_column: str | None) -> str | None:
    """``input_column``, or its older name ``image_column``; naming both differently is an error."""
    if image_column is not None and input_column is not None and image_column != input_column:
        raise InvalidArgumentError(
            f"Give input_column ({input_column!r}) or its older name image_column ({image_column!r}), not both."
        )
    return input_column if input_column is not None else image_column
