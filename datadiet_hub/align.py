"""Checks that a score table describes the dataset it is applied to, and the content-hash join when it doesn't.

By position (``on="idx"``): lengths must match and the ``example_id`` of a sample of rows (or every row with
``verify="full"``) must equal the hash of the dataset's own input and label (``hashing`` defines the id, ``join_columns`` picks
the columns); with ``verify="full"`` the card's
source fingerprint is compared too. By content (``on="example_id"``): each dataset row is matched to the score
row with the same content hash, whatever the order, through an ``IdIndex`` (sorted uint64 keys searched with numpy,
so 10M ids join in seconds without a Python dict).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._datasets_compat import arrow_column
from .columns import Columns, column_roles, detect_columns
from .errors import InvalidArgumentError, ScoreMismatchError
from .hashing import LabelSpace, example_id, example_ids, fingerprint, id_keys, own_class_names
from .provenance import Provenance

logger = logging.getLogger(__name__)

VERIFY_MODES = ("sample", "full", "none")
MISSING_POLICIES = ("error", "drop", "keep")
SAMPLE_ROWS = 32
HASH_BATCH = 1000
_HINT = (
    " If the dataset is a reordered, subsampled or re-exported copy, join by content instead: "
    "on='example_id' (CLI: --on example_id)."
)
_OVERRIDE = " If you are sure the rows match, skip the check with verify='none' (CLI: --verify none)."


def validate_missing(missing: str) -> str:
    if missing not in MISSING_POLICIES:
        raise InvalidArgumentError(
            f"missing={missing!r}; choose one of: {', '.join(MISSING_POLICIES)}.", value=missing
        )
    return missing


def validate_verify(verify: str) -> str:
    if verify not in VERIFY_MODES:
        raise InvalidArgumentError(f"verify={verify!r}; choose one of: {', '.join(VERIFY_MODES)}.", value=verify)
    return verify


def sample_positions(n: int, k: int = SAMPLE_ROWS) -> np.ndarray:
    """Evenly spread positions including the first and the last row."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64))


class IdIndex:
    """Exact lookup of example ids -> positions, built once, searched per batch; picklable (for ``num_proc``).

    Ids that are 128-bit hex hashes (every id ``hashing.example_id`` writes) become two uint64 each. The sorted
    array holds ``(high bits of the first word) << b | position`` in one uint64 (one ``np.sort``, ~1 s at 10M rows;
    ``argsort``/``lexsort`` take 3-4 s), so a ``searchsorted`` finds a candidate position and both full words are
    then compared. Runs of equal truncated keys (duplicate content, or rare truncation clashes) go to a small dict,
    which keeps the first (lowest) position for duplicated ids. Anything else (non-hex ids) uses a plain dict.
    """

    def __init__(self, ids: Any, positions: np.ndarray | None = None):
        keys = id_keys(ids)
        n = len(keys) if keys is not None else len(ids)
        self.positions = np.arange(n, dtype=np.int64) if positions is None else np.asarray(positions, np.int64)
        self._dict: dict[Any, int] | None = None
        if keys is None:  # not hex hashes: a dict over the Python strings
            values = ids.to_pylist() if hasattr(ids, "to_pylist") else list(ids)
            self._dict = {}
            for pos, eid in zip(self.positions.tolist(), values):
                self._dict.setdefault(eid, pos)
            return
        self.keys = keys
        self._bits = max(1, int(n - 1).bit_length())
        low = np.uint64((1 << self._bits) - 1)
        packed = ((keys[:, 0] >> np.uint64(self._bits)) << np.uint64(self._bits)) | np.arange(n, dtype=np.uint64)
        self._sorted = np.sort(packed)
        truncated = self._sorted >> np.uint64(self._bits)
        clash = np.flatnonzero(truncated[1:] == truncated[:-1])
        self._clash_keys = np.unique(truncated[clash]) if len(clash) else np.empty(0, np.uint64)
        self._clash: dict[tuple[int, int], int] = {}
        if len(clash):
            rows = np.unique(np.concatenate([clash, clash + 1]))
            for row in (self._sorted[rows] & low).astype(np.int64).tolist():  # ascending rows within each run
                key = (int(keys[row, 0]), int(keys[row, 1]))
                self._clash.setdefault(key, int(self.positions[row]))
        self._low = low

    def __len__(self) -> int:
        return len(self.positions)

    def lookup(self, ids: Any) -> np.ndarray:
        """Position of each id (the first one for duplicated ids), -1 where the id is unknown."""
        if self._dict is not None:
            values = ids.to_pylist() if hasattr(ids, "to_pylist") else list(ids)
            return np.fromiter((self._dict.get(e, -1) for e in values), dtype=np.int64, count=len(values))
        query = id_keys(ids)
        if query is None:  # a non-hex id cannot be among hex ones
            values = ids.to_pylist() if hasattr(ids, "to_pylist") else list(ids)
            out = np.full(len(values), -1, dtype=np.int64)
            good = [i for i, e in enumerate(values) if id_keys([e]) is not None]
            if good:
                out[good] = self.lookup([values[i] for i in good])
            return out
        return self.lookup_keys(query)

    def lookup_keys(self, query: np.ndarray) -> np.ndarray:
        """``lookup`` for ids already converted by ``hashing.id_keys``."""
        if len(query) == 0 or len(self.positions) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        bits = np.uint64(self._bits)
        truncated = query[:, 0] >> bits
        at = np.minimum(_searchsorted_local(self._sorted, truncated << bits), len(self._sorted) - 1)
        cand = self._sorted[at]
        row = (cand & self._low).astype(np.int64)
        hit = ((cand >> bits) == truncated) & (self.keys[row, 0] == query[:, 0]) & (self.keys[row, 1] == query[:, 1])
        out = np.where(hit, self.positions[row], -1)
        if self._clash:
            for i in np.flatnonzero(np.isin(truncated, self._clash_keys)).tolist():
                out[i] = self._clash.get((int(query[i, 0]), int(query[i, 1])), -1)
        return out


def _searchsorted_local(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """``np.searchsorted(haystack, needles)``, visiting the needles in (nearly) ascending order.

    Random needles into a 80 MB array miss the cache on every probe (~1 us each: 10 s for 10M); in ascending order
    numpy reuses the previous bound and the probes walk memory forwards. The order comes from one ``np.sort`` of
    ``(needle high bits | needle position)``, several times faster than ``argsort``.
    """
    m = len(needles)
    if m < 4096:
        return np.searchsorted(haystack, needles)
    bits = np.uint64(int(m - 1).bit_length())
    order = np.sort(((needles >> bits) << bits) | np.arange(m, dtype=np.uint64)) & np.uint64((1 << int(bits)) - 1)
    order = order.astype(np.int64)
    out = np.empty(m, dtype=np.int64)
    out[order] = np.searchsorted(haystack, needles[order])
    return out


def label_space(provenance: Provenance | None) -> LabelSpace:
    """The scored class names the card records (``source.label_names``), to map a dataset's labels to class ids."""
    names = provenance.source.label_names if provenance is not None else None
    return LabelSpace(tuple(str(n) for n in names) if names else None)


def scored_columns(provenance: Provenance | None) -> tuple[str | None, str | None]:
    """The (input, label) columns the card says the scoring run read, or Nones."""
    if provenance is None:
        return None, None
    source = provenance.source
    recorded = source.input_column or source.image_column or source.extra.get("text_column")
    return (str(recorded) if recorded else None), source.label_column


def join_columns(
    source: Any,
    *,
    input_column: str | None = None,
    label_column: str | None = None,
    scored: tuple[str | None, str | None] = (None, None),
) -> Columns:
    """The columns whose content and label give a row's ``example_id``: the ones named, else the ``scored`` ones
    (``scored_columns`` of the card) when the dataset has them, else ``detect_columns``. ``source``: a dataset,
    its features or a batch."""
    if input_column is None and label_column is None:
        recorded = [c for c in scored if c is not None]
        if len(recorded) == 2 and all(c in column_roles(source) for c in recorded):
            return detect_columns(source, input_column=recorded[0], label_column=recorded[1])
        if scored[0] is not None and scored[1] is None and scored[0] in column_roles(source):  # unlabeled corpus
            return detect_columns(source, input_column=scored[0], require_label=False)
        try:
            return detect_columns(source)
        except InvalidArgumentError as err:
            raise ScoreMismatchError(
                f"Cannot hash the dataset's rows to match them to the scores: {err} Or add an 'example_id' column; "
                "with on='idx' the check can be skipped with verify='none'.",
                value=err.value,
            ) from err
    unlabeled = scored[0] is not None and scored[1] is None  # the card of a corpus: documents hash their text alone
    return detect_columns(source, input_column=input_column, label_column=label_column, require_label=not unlabeled)


def dataset_example_ids(
    dataset: Any,
    positions: np.ndarray | None = None,
    *,
    input_column: str | None = None,
    label_column: str | None = None,
    provenance: Provenance | None = None,
) -> Any:
    """Content hashes of dataset rows (all rows, or ``positions``) as an arrow string array: the ``example_id``
    column if present (read through arrow, no Python strings), else ``hashing.example_ids`` of the input and label
    columns (``join_columns``; only those two are read), labels mapped through the card's class names."""
    if "example_id" in dataset.column_names:
        return arrow_column(dataset, "example_id", positions)
    columns = join_columns(
        dataset, input_column=input_column, label_column=label_column, scored=scored_columns(provenance)
    )
    label = columns.label
    if label is None:  # an unlabeled corpus: documents hash their text alone
        rows = dataset if positions is None else dataset.select(positions)
        texts = rows.select_columns([columns.input]).with_format(None).iter(batch_size=HASH_BATCH)
        return pa.array([example_id(t, None) for batch in texts for t in batch[columns.input]], type=pa.string())
    space = label_space(provenance)
    own_names = own_class_names(dataset.features, label)
    if space.names is None and own_names is None and _holds_strings(dataset, label):
        space = LabelSpace(tuple(sorted(set(dataset.unique(label)))))  # what scoring did with the whole split
        logger.warning(
            "The score card records no class names; numbering the dataset's string labels in sorted order %s, as "
            "scoring does for the whole split.",
            list(space.names or ())[:10],
        )
    rows = dataset if positions is None else dataset.select(positions)
    rows = rows.select_columns(columns.names())
    ids: list[str] = []
    for batch in rows.with_format(None).iter(batch_size=HASH_BATCH):
        ids += example_ids(batch[columns.input], batch[label], space, own_names)
    return pa.array(ids, type=pa.string())


def _holds_strings(dataset: Any, column: str) -> bool:
    feature = (dataset.features or {}).get(column)
    return getattr(feature, "dtype", None) in ("string", "large_string")


def _first_difference(ours: Any, theirs: Any) -> tuple[int, int]:
    """(number of differing rows, first differing row) of two equal-length arrow string arrays."""
    differs = pc.not_equal(ours, theirs)
    count = pc.sum(differs).as_py() or 0
    first = pc.index(differs, True).as_py() if count else -1
    return count, first


def card_fingerprint(provenance: Provenance | None) -> str | None:
    """The source fingerprint recorded in a card's provenance, if any."""
    if provenance is None:
        return None
    value = provenance.source.fingerprint or provenance.extra.get("fingerprint")
    return str(value) if value and value != "n/a" else None


def check_fingerprint(ids: Any, provenance: Provenance | None, *, what: str) -> None:
    """Compare the order-sensitive fingerprint of ``ids`` with the card's; no-op when the card has none."""
    expected = card_fingerprint(provenance)
    if expected is None or provenance is None:
        return
    actual = fingerprint(ids)
    if actual != expected:
        source = provenance.source
        name = f"{source.dataset or '?'} split {source.split or '?'}" if source.dataset else "its source"
        raise ScoreMismatchError(
            f"The fingerprint of {what} ({actual[:16]}...) differs from the source fingerprint in the score card "
            f"({expected[:16]}..., {name}): the scores were computed on other rows or another order."
            + _HINT
            + _OVERRIDE,
            value=actual,
        )


def check_alignment(
    dataset: Any,
    score_ids: Any,
    *,
    num_scores: int,
    verify: str = "sample",
    input_column: str | None = None,
    label_column: str | None = None,
    provenance: Provenance | None = None,
) -> None:
    """Raise ``ScoreMismatchError`` unless the dataset's rows are, position by position, the scored rows.

    Args:
        dataset: a ``datasets.Dataset``.
        score_ids: the score table's ``example_id`` in ``idx`` order (arrow array or list), or a function
            returning them at given positions (None: all), so a sampled check reads 32 ids, or None to check the
            length only.
        num_scores: rows in the score table.
        verify: ``sample`` (32 evenly spread rows), ``full`` (every row, plus the card's source fingerprint when
            ``provenance`` has one) or ``none`` (length only).
        provenance: the card's ``datadiet`` block (``load_provenance``); its ``source.num_rows`` is checked too.
    """
    validate_verify(verify)
    n = len(dataset)
    if n != num_scores:
        raise ScoreMismatchError(f"The scores have {num_scores} rows but the dataset has {n}." + _HINT)
    card_rows = provenance.source.num_rows if provenance is not None else None
    if verify != "none" and card_rows is not None and int(card_rows) != n:
        raise ScoreMismatchError(
            f"The score card says the source split has {card_rows} rows but the dataset has {n}." + _HINT + _OVERRIDE
        )
    if verify == "none" or score_ids is None or n == 0:
        return
    positions = None if verify == "full" else sample_positions(n)
    ours = dataset_example_ids(
        dataset, positions, input_column=input_column, label_column=label_column, provenance=provenance
    )
    if callable(score_ids):
        theirs = score_ids(positions)
    else:
        theirs = score_ids if isinstance(score_ids, (pa.Array, pa.ChunkedArray)) else pa.array(score_ids, pa.string())
        if positions is not None:
            theirs = theirs.take(pa.array(positions))
    if verify == "full":
        check_fingerprint(ours, provenance, what="the dataset's example ids")
    count, first = _first_difference(ours, theirs)
    if count:
        row = int(positions[first]) if positions is not None else first
        raise ScoreMismatchError(
            f"{count} of {len(ours)} checked rows differ from the scored examples (first: row {row}, "
            f"example_id {ours[first].as_py()!r} vs scored {theirs[first].as_py()!r})." + _HINT + _OVERRIDE
        )


def join_by_content(dataset_ids: Any, score_ids: Any, *, missing: str = "error") -> np.ndarray:
    """For each dataset row, the score position with the same ``example_id``; -1 where none (``missing="keep"``
    or ``"drop"``), or an error (``missing="error"``). Duplicate content maps to the first scored copy."""
    validate_missing(missing)
    index = score_ids if isinstance(score_ids, IdIndex) else IdIndex(score_ids)
    mapped = index.lookup(dataset_ids)
    report_missing(int((mapped < 0).sum()), len(mapped), missing)
    return mapped


def report_missing(unmatched: int, total: int, missing: str, *, where: str = "dataset rows") -> None:
    """Apply the ``missing`` policy to a count of rows without a score: raise, or log how many were dropped/kept."""
    if not unmatched:
        return
    if missing == "drop" and unmatched == total:
        raise ScoreMismatchError(
            f"none of the {total} {where} has a score (no example_id matches): with missing='drop' nothing would be "
            "left. These scores describe another dataset; check --scores / --config, or the dataset's split.",
            value=total,
        )
    if missing == "error":
        raise ScoreMismatchError(
            f"{unmatched} of {total} {where} have no score (no matching example_id). Choose what to do with them: "
            "missing='drop' or missing='keep' (CLI: --missing drop|keep)."
        )
    logger.warning(
        "%d of %d %s have no score; policy missing=%r (%s them).",
        unmatched,
        total,
        where,
        missing,
        "dropped" if missing == "drop" else "kept",
    )
