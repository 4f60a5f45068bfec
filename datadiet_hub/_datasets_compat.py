"""The only code that touches private ``datasets`` state (``Dataset._indices``, ``Dataset._fingerprint``,
``datasets.table.InMemoryTable``), for two fast paths the public API lacks:

- ``select_rows``: ``Dataset.select`` turns the index array into a Python list (plus ``min``/``max`` over it and a
  hash of it for the fingerprint): ~0.9 s for 5M rows. We attach the same indices mapping straight from numpy, the
  way ``Dataset.filter`` does.
- ``arrow_column``: ``dataset.with_format("arrow")[:]`` on a selected dataset gathers row by row in Python (~4 s per
  million rows); a pyarrow ``take`` through the indices mapping does the same in milliseconds.

Both check their result through the public API on a sample of rows (the post-condition): a silent change in
``datasets`` internals then falls back to the public path, logged, instead of returning wrong rows. The versions
this is written for are ``SUPPORTED_DATASETS``; ``tests/lib/test_datasets_compat.py`` is the contract test.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from ._arrow import take_rows

logger = logging.getLogger(__name__)

SUPPORTED_DATASETS = ">=4.0,<6"  # keep in step with pyproject.toml
CHECK_ROWS = 8  # rows compared through the public API after each fast path


def check_positions(n: int, k: int = CHECK_ROWS) -> np.ndarray:
    """Evenly spread positions, first and last included."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64))


def fingerprint_of(dataset: Any) -> str | None:
    """``Dataset._fingerprint`` (the cache key ``datasets`` derives from the operations applied)."""
    return getattr(dataset, "_fingerprint", None)


def _public_rows(dataset: Any, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
    """Rows at ``positions`` read through the public API: ``__getitem__`` with a list, arrow format (no decoding,
    no fingerprinting: ~0.3 ms for a few rows)."""
    return dataset.with_format("arrow", columns=columns)[positions.tolist()]


def rows_match(result: Any, dataset: Any, rows: np.ndarray) -> bool:
    """The post-condition of ``select_rows``: ``result`` has ``len(rows)`` rows, and at sampled positions ``i`` its
    row is ``dataset``'s row ``rows[i]``, both read through the public API."""
    if len(result) != len(rows):
        return False
    sample = check_positions(len(rows))
    return _public_rows(result, sample).equals(_public_rows(dataset, rows[sample]))


def _selection_fingerprint(parent: str | None, rows: np.ndarray) -> str:
    try:
        import xxhash

        digest: Any = xxhash.xxh64()
    except ImportError:
        digest = hashlib.blake2b(digest_size=8)
    digest.update(f"datadiet-select|{parent}|".encode())
    digest.update(np.ascontiguousarray(rows).data)
    return str(digest.hexdigest())


def _fast_select(dataset: Any, rows: np.ndarray) -> Any:
    """``dataset.select(rows)`` by attaching the indices mapping directly (private state)."""
    from datasets.table import InMemoryTable

    mapping = pa.array(rows.astype(np.uint64, copy=False), type=pa.uint64())
    if dataset._indices is not None:
        mapping = dataset._indices.column(0).take(mapping)
    out = copy.deepcopy(dataset)  # what Dataset.filter does: shares the arrow data, copies format and info
    out._indices = InMemoryTable(pa.table({"indices": mapping}))
    out._fingerprint = _selection_fingerprint(dataset._fingerprint, rows)
    return out


def checked_selection(dataset: Any, rows: np.ndarray, candidate: Any) -> Any:
    """``candidate`` if it passes the post-condition, else the public ``dataset.select(rows)`` (logged)."""
    if rows_match(candidate, dataset, rows):
        return candidate
    logger.warning(
        "The fast row selection returned other rows than asked for (datasets internals changed? supported: "
        "datasets%s); using Dataset.select instead.",
        SUPPORTED_DATASETS,
    )
    return dataset.select(rows)


def select_rows(dataset: Any, rows: np.ndarray) -> Any:
    """``dataset.select(rows)`` for ascending int64 ``rows``, without its per-row Python work.

    The result is indistinguishable from ``select`` (same rows, format, features; a later ``select`` or ``filter``
    on it does not flatten the mapping). Contiguous rows become a zero-copy slice through the public ``select``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    n = len(dataset)
    if len(rows) == 0 or n == 0:
        return dataset.select(rows)
    if rows[0] < 0 or rows[-1] >= n:
        raise IndexError(f"Row {int(rows[-1] if rows[-1] >= n else rows[0])} is out of range for {n} rows.")
    if rows[-1] - rows[0] + 1 == len(rows):  # contiguous: a zero-copy slice
        return dataset.select(range(int(rows[0]), int(rows[-1]) + 1))
    if dataset.list_indexes():
        return dataset.select(rows)
    try:
        candidate = _fast_select(dataset, rows)
    except (AttributeError, ImportError, TypeError) as err:  # internals renamed: the slow public path
        logger.warning(
            "Fast select unavailable (%s; supported: datasets%s); using Dataset.select.", err, SUPPORTED_DATASETS
        )
        return dataset.select(rows)
    return checked_selection(dataset, rows, candidate)


def _public_column(dataset: Any, name: str, positions: np.ndarray | None) -> Any:
    rows = dataset if positions is None else dataset.select(positions)
    return rows.select_columns([name]).with_format("arrow")[:].column(name)


def _column_matches(dataset: Any, name: str, positions: np.ndarray | None, column: Any) -> bool:
    """The post-condition of ``arrow_column``: sampled values equal the public API's."""
    n = len(dataset) if positions is None else len(positions)
    if len(column) != n:
        return False
    sample = check_positions(n, 4)
    source = sample if positions is None else np.asarray(positions, dtype=np.int64)[sample]
    expected = _public_rows(dataset, source, [name]).column(name)
    return bool(expected.to_pylist() == take_rows(column, sample).to_pylist())


def arrow_column(dataset: Any, name: str, positions: np.ndarray | None = None) -> Any:
    """One column of a ``datasets.Dataset`` as arrow, through its indices mapping if it has one (all rows, or
    the rows at ``positions``)."""
    try:
        column = dataset.data.column(name)
        mapping = dataset._indices
        if mapping is not None:
            rows = mapping.column(0) if positions is None else take_rows(mapping.column(0), positions)
            column = take_rows(column, rows)
        elif positions is not None:
            column = take_rows(column, positions)
    except (AttributeError, KeyError, TypeError):  # not a map-style Dataset (or internals changed): public path
        return _public_column(dataset, name, positions)
    if not _column_matches(dataset, name, positions, column):
        logger.warning(
            "Reading column %r through the indices mapping gave other values than the public API (supported: "
            "datasets%s); using the public path.",
            name,
            SUPPORTED_DATASETS,
        )
        return _public_column(dataset, name, positions)
    return column
