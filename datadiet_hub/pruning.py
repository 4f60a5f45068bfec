"""``prune``: the dataset with only the selected rows, as an indices mapping (no copy of the data).

Only the score table's ``idx`` and score columns are read (plus ``label``, ``example_id`` or a tie-break column when
a strategy, a join or a check needs them), through arrow, so pruning 10M rows takes well under a second. The
dataset being pruned is never read beyond the rows a check samples.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._datasets_compat import select_rows
from ._join import copies_to_keep, ids_reader, provenance_for, rows_to_keep, validate_join
from .align import IdIndex, check_alignment, check_fingerprint, dataset_example_ids, join_by_content
from .keeping import _one_input_column, keep
from .provenance import Provenance
from .score_table import num_scores, score_ids
from .selection import Selection, as_selection, dataset_groups, select_indices

logger = logging.getLogger(__name__)

__all__ = ["prune", "select_rows"]


def prune(
    dataset: Any,
    scores: Any,
    *,
    on: str = "idx",
    missing: str = "error",
    verify: str = "sample",
    input_column: str | None = None,
    label_column: str | None = None,
    provenance: Provenance | Mapping[str, Any] | None = None,
    selection: Selection | None = None,
    image_column: str | None = None,
    **selection_kwargs: Any,
) -> Any:
    """Return ``dataset`` with only the selected rows, as an indices mapping (no copy of the data).

    Args:
        dataset: a ``datasets.Dataset``, or an ``IterableDataset`` (pruned lazily with ``filter(keep(...))``).
        scores: the score table of the same split.
        on: ``idx`` (row positions must match; checked by length and sampled content hashes) or ``example_id``
            (content-hash join; for reordered, subsampled or re-exported copies). With ``example_id``, ``fraction``
            and ``count`` count the scored split's rows, and rows sharing one content are kept or dropped together
            except where the cut falls among them (``_join.copies_to_keep``).
        missing: with ``on="example_id"``, rows without a score: ``error``, ``drop`` or ``keep``.
        verify: ``sample`` (default: length, card row count, 32 sampled hashes), ``full`` (every row's hash and the
            card's source fingerprint) or ``none`` (length only).
        input_column, label_column: the columns a row's ``example_id`` is computed from when the dataset has no
            ``example_id`` column (default: the ones the card records, else ``datadiet_hub.columns.detect_columns``;
            string labels are mapped through the class names the card records). ``image_column`` is the older name
            of ``input_column``.
        provenance: the card's ``datadiet`` block (``load_provenance``); found automatically for tables returned
            by ``load_scores``. A fingerprint mismatch raises ``ScoreMismatchError`` (override: ``verify="none"``).
        selection: a ``Selection`` saying what to keep; or give its fields as keyword arguments (``column``,
            ``fraction``, ``count``, ``strategy``, ``skip``, ``beta``, ``seed``, ``tie_break``, ...; see
            ``Selection``). The deprecated ``offset=`` maps to ``skip`` (or ``beta`` for ``ccs``).
    """
    on, missing, verify = validate_join(on, missing, verify)
    sel = as_selection(selection, selection_kwargs)  # validated before anything is read
    input_column = _one_input_column(input_column, image_column)
    if not hasattr(dataset, "__len__"):  # IterableDataset: stream through the predicate
        predicate = keep(
            scores,
            on=on,
            missing=missing,
            verify=verify,
            input_column=input_column,
            label_column=label_column,
            provenance=provenance,
            selection=sel,
        )
        return dataset.filter(predicate, with_indices=True, batched=True)
    provenance = provenance_for(scores, provenance)
    kept = select_indices(scores, selection=sel, groups=dataset_groups(dataset, scores, sel, on))
    n = num_scores(scores)
    if len(dataset) == 0:
        logger.warning("The dataset to prune is empty; nothing to keep.")
    if on == "idx":
        check_alignment(
            dataset,
            ids_reader(scores),
            num_scores=n,
            verify=verify,
            input_column=input_column,
            label_column=label_column,
            provenance=provenance,
        )
        return select_rows(dataset, kept)
    ids = score_ids(scores)
    if verify == "full":
        check_fingerprint(ids, provenance, what="the score table's example ids")
    index = IdIndex(ids)
    first = index.lookup(ids)  # each scored row's first copy: rows sharing content are one content's
    mapped = join_by_content(
        dataset_example_ids(dataset, input_column=input_column, label_column=label_column, provenance=provenance),
        index,
        missing=missing,
    )
    counts = copies_to_keep(scores, sel, first, kept)
    rows = np.flatnonzero(rows_to_keep(mapped, counts, first) | ((mapped < 0) & (missing == "keep")))
    return select_rows(dataset, rows)
