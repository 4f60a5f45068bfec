"""What ``prune`` and ``keep`` share: the join options, the provenance to check against, the scored-id reader, and
how a selection counts rows when several rows share one content (``copies_to_keep``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from .align import validate_missing, validate_verify
from .errors import InvalidArgumentError
from .hashing import own_class_names
from .provenance import Provenance, SourceInfo
from .score_table import arrow_table, column_names, idx_inverse, num_scores, score_ids, to_numpy
from .selection import Selection, select_indices
from .table_provenance import as_provenance, provenance_of

JOIN_KEYS = ("idx", "example_id")


def validate_join(on: str, missing: str, verify: str) -> tuple[str, str, str]:
    """``(on, missing, verify)`` after checking each against its choices."""
    if on not in JOIN_KEYS:
        raise InvalidArgumentError(f"on={on!r}; choose one of: {', '.join(JOIN_KEYS)}.", value=on)
    return on, validate_missing(missing), validate_verify(verify)


def provenance_for(scores: Any, provenance: Provenance | Mapping[str, Any] | None) -> Provenance | None:
    """The provenance given, else the one the score table carries (``load_scores``), else, for a table read with
    plain ``load_dataset`` (which drops it), the class names of its ``label`` ``ClassLabel`` alone, else None."""
    if provenance is not None:
        return as_provenance(provenance)
    carried = provenance_of(scores)
    if carried is not None:
        return carried
    names = own_class_names(getattr(scores, "features", None), "label")
    return Provenance(source=SourceInfo(label_names=tuple(names))) if names else None


def ids_reader(scores: Any) -> Callable[[np.ndarray | None], Any] | None:
    """For ``check_alignment``: reads the scored ids at the positions it checks (32 rows unless verify="full")."""
    if "example_id" not in column_names(scores):
        return None
    return lambda positions: score_ids(scores, positions)


def copies_to_keep(scores: Any, sel: Selection, first: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """With ``on="example_id"``: how many rows of each scored content (by the score position of its first copy)
    to keep.

    Rows with the same content share one ``example_id``, and a join maps each of them to the content's first scored
    copy (``first``: that position for every score row). The selection ranks the score table's rows, each carrying
    its content's first-copy score, so ``fraction`` and ``count`` are rows of the scored split, the copies of a
    content sit side by side in a ranking (one score, ties broken by position) and are kept or dropped together
    except where the cut falls among them. ``kept``: ``select_indices`` over the score table, the answer when no
    content is scored twice.
    """
    n = num_scores(scores)
    if len(first) == 0 or bool((first == np.arange(n)).all()):
        counts = np.zeros(n, dtype=np.int64)
        counts[kept] = 1
        return counts
    wanted = ("idx", sel.column, "never_learned", "label", sel.tie_break, sel.by)  # what the selection reads
    table = arrow_table(scores, [c for c in dict.fromkeys(wanted) if c is not None])
    inverse = idx_inverse(to_numpy(table.column("idx"))) if "idx" in table.column_names else None
    order = first if inverse is None else inverse[first]
    table = table.take(pa.array(order)).drop_columns([c for c in ("idx",) if c in table.column_names])
    table = table.append_column("idx", pa.array(np.arange(n, dtype=np.int64)))
    chosen = select_indices(table, selection=sel)
    return np.bincount(first[chosen], minlength=n).astype(np.int64)


def rows_to_keep(positions: np.ndarray, counts: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Whether each dataset row is kept, from its score position (``positions``; -1: no score): a content scored
    once keeps every copy the dataset holds when selected; a content scored k times keeps the first ``counts[p]``
    of its rows, in row order (the rows ``keep``'s predicate lets through)."""
    scored = positions >= 0
    keep = scored & (counts[np.maximum(positions, 0)] > 0)
    repeated = np.bincount(first, minlength=len(counts)) > 1
    limited = np.flatnonzero(scored & repeated[np.maximum(positions, 0)])
    if not len(limited):
        return keep
    order = limited[np.argsort(positions[limited], kind="stable")]
    grouped = positions[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep[order] = rank < counts[grouped]
    return keep
