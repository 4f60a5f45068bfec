"""Look before you delete: the hardest, the easiest and the most likely mislabeled rows of a scored split.

Three groups per score column: the ``per_group`` highest scores, the ``per_group`` lowest, and the rows that score
highest *within their own class* (a confidently wrong label is hard for every seed, so the top of each class is
where label noise shows). This module picks the rows (pure numpy, no matplotlib) and fetches them from the dataset
the scores describe, joined through ``align`` (length, card row count, sampled content hashes, and the content hash
of every row shown), so a mismatched dataset raises ``ScoreMismatchError`` instead of showing the wrong examples.
Drawing is elsewhere: ``_examples_plot`` (an image grid, the ``plot`` extra) and ``_examples_table`` (a Markdown
table of texts), both written by ``_examples_write``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from . import metrics
from ._join import ids_reader, provenance_for, validate_join
from .align import IdIndex, check_alignment, dataset_example_ids, join_columns, label_space, scored_columns
from .columns import Columns
from .errors import ColumnNotFoundError, DatadietError, InvalidArgumentError, ScoreMismatchError, did_you_mean
from .hashing import own_class_names
from .provenance import Provenance
from .ranking import INDEX, TieBreak, top_k
from .schema import metrics_in
from .score_table import arrow_table, column_names, num_scores, read_scores, score_ids
from .sources import Source

logger = logging.getLogger(__name__)

GROUPS = ("hardest", "easiest", "mislabeled")
DEFAULT_PER_GROUP = 8
DEFAULT_MAX_CHARS = 200
SUFFIXES = {"image": ".png", "text": ".md"}
UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)
"""What decoding a corrupt, mislabelled or oversized image raises (PIL's ``UnidentifiedImageError`` is an
``OSError``; an image over PIL's pixel limit a ``DecompressionBombError``)."""


def group_title(group: str, column: str, higher_is_harder: bool = True) -> str:
    """The heading of a group, naming the score column it is ranked by and which end of it is hard."""
    hard, easy = ("highest", "lowest") if higher_is_harder else ("lowest", "highest")
    return {
        "hardest": f"Hardest ({hard} {column})",
        "easiest": f"Easiest ({easy} {column})",
        "mislabeled": f"Most likely mislabeled ({hard} {column} within each class)",
    }[group]


def _check_per_group(per_group: Any) -> int:
    if isinstance(per_group, bool) or not isinstance(per_group, int | np.integer) or per_group < 1:
        raise InvalidArgumentError(
            f"per_group={per_group!r}: give how many examples to show per group as a whole number >= 1 "
            f"(CLI: --per-group, default {DEFAULT_PER_GROUP}).",
            value=per_group,
        )
    return int(per_group)


def pick_rows(
    values: np.ndarray, labels: np.ndarray | None, *, per_group: int = DEFAULT_PER_GROUP
) -> dict[str, np.ndarray]:
    """Row positions of each group, in display order (pure: no dataset, no plotting).

    Args:
        values: the score of row i at position i (larger is harder).
        labels: the class id of row i; None for rows without labels (a text corpus scored by language models),
            which have no ``mislabeled`` group.
        per_group: how many rows each group holds at most (fewer when the split is smaller).

    ``hardest``: highest scores first; ``easiest``: lowest first; ``mislabeled``: the highest-scoring row of each
    class, then the second of each class, and so on (within one such round, higher scores first), so the group
    spreads over the classes instead of repeating the hardest. Equal scores go to the lower row first, so the
    choice is deterministic. On a split smaller than ``per_group`` hardest and easiest show the same rows.
    """
    per_group = _check_per_group(per_group)
    values = np.asarray(values)
    if labels is None:
        return {
            "hardest": _highest(values, per_group),
            "easiest": _highest(-values.astype(np.float64), per_group),
        }
    labels = np.asarray(labels)
    if values.ndim != 1 or labels.shape != values.shape:
        raise InvalidArgumentError(
            f"values and labels must be 1-D and of one length (got shapes {values.shape} and {labels.shape}).",
            value=(values.shape, labels.shape),
        )
    return {
        "hardest": _highest(values, per_group),
        "easiest": _highest(-values.astype(np.float64), per_group),  # the lowest, ties to the lower row
        "mislabeled": _top_per_class(values, labels, per_group),
    }


def _highest(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest values, highest first, ties to the lower position: ``ranking.top_k`` (O(n),
    the ranking ``prune`` uses, with the ``index`` tie-break) and a sort of those ``k`` rows."""
    chosen = top_k(values, k, tie=TieBreak(INDEX))
    return chosen[np.lexsort((chosen, -values[chosen].astype(np.float64)))]


def _top_per_class(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Rounds over the classes: each round takes every class's highest remaining row (ties to the lower position),
    ordered by score; stops once ``k`` rows are taken. Each round is a few O(n) passes and a split with at least
    ``k`` classes needs one."""
    n = len(values)
    if labels.size and labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < max(n, 1 << 16):
        inverse, classes = labels.astype(np.intp), int(labels.max()) + 1
    else:
        uniques, inverse = np.unique(labels, return_inverse=True)
        classes = len(uniques)
    values = values.astype(np.float64)
    remaining = np.arange(n, dtype=np.int64)
    taken: list[np.ndarray] = []
    count = 0
    while count < k and len(remaining):
        rows, scores = inverse[remaining], values[remaining]
        best = np.full(classes, -np.inf)
        np.maximum.at(best, rows, scores)
        at_best = scores == best[rows]
        first = np.full(classes, n, dtype=np.int64)
        np.minimum.at(first, rows[at_best], remaining[at_best])
        chosen = first[first < n]
        chosen = chosen[np.lexsort((chosen, -values[chosen]))]
        taken.append(chosen[: k - count])
        count += len(taken[-1])
        if count < k:  # drop this round's rows (``remaining`` stays sorted, so they are found by bisection)
            keep = np.ones(len(remaining), dtype=bool)
            keep[np.searchsorted(remaining, chosen)] = False
            remaining = remaining[keep]
    return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Example:
    """One row to show.

    Attributes:
        group: ``hardest``, ``easiest`` or ``mislabeled``.
        idx: the row of the scored split (the score table's ``idx``).
        score: its value in the score column.
        label: its class id (the score table's ``label``); None for an unlabeled corpus.
        label_name: the class name when the dataset has ``ClassLabel`` names, else the label as text ("" without).
        value: the input as the dataset decodes it (a PIL image, an array, a string).
        never_learned: ranked by ``forgetting``, a row some seed never learned (it ranks above every learned row,
            as data_diet's infinite forgetting; ``score`` is its stored count).
    """

    group: str
    idx: int
    score: float
    label: int | None
    label_name: str
    value: Any
    never_learned: bool = False

    @property
    def score_text(self) -> str:
        """The score as shown: 4 significant digits, and whether the row was never learned."""
        return f"{self.score:.4g}" + (" (never learned)" if self.never_learned else "")


@dataclass(frozen=True)
class ExampleSet:
    """The examples of one score column, ready to draw (``kind`` ``image``) or tabulate (``kind`` ``text``);
    ``groups``: the groups shown, in order (no ``mislabeled`` for rows without labels)."""

    kind: str
    column: str
    examples: tuple[Example, ...]
    title: str = ""
    higher_is_harder: bool = True
    groups: tuple[str, ...] = GROUPS

    @property
    def labeled(self) -> bool:
        return "mislabeled" in self.groups

    def group_title(self, name: str) -> str:
        return group_title(name, self.column, self.higher_is_harder)

    def group(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.group == name]

    @property
    def suffix(self) -> str:
        """``.png`` for images, ``.md`` for texts."""
        return SUFFIXES[self.kind]


def score_column(scores: Any, column: str | None = None) -> str:
    """``column`` if the table has it as a numeric column; by default ``el2n``, else the table's first metric."""
    names = column_names(scores)
    if column is None:
        column = next(iter(["el2n"] if "el2n" in names else metrics_in(names)), None)
        if column is None:
            raise ColumnNotFoundError(
                f"The score table has no score column ({', '.join(metrics.names())}); its columns are {names}. Name one "
                "with column= (CLI: --column).",
                value=names,
            )
    if column not in names:
        raise ColumnNotFoundError(
            f"Score column {column!r} not found; this score table has {names}.{did_you_mean(column, names)} Pass "
            "column= one of them (CLI: --column).",
            column=column,
            value=column,
        )
    kind = arrow_table(scores, [column]).schema.field(column).type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        numeric = [
            c
            for c in names
            if c not in ("idx", "label")
            and (pa.types.is_floating(t := arrow_table(scores, [c]).schema.field(c).type) or pa.types.is_integer(t))
        ]
        raise InvalidArgumentError(
            f"Column {column!r} holds {kind}, not one number per row, so it cannot rank examples; choose a score "
            f"column: {numeric}.",
            column=column,
            value=column,
        )
    return column


def _label_name(value: Any, names: Sequence[str] | None) -> str:
    """A dataset label as its class name: ``ClassLabel`` names (or the card's) for a class id, a string as it is."""
    if names is not None and isinstance(value, int | np.integer) and 0 <= int(value) < len(names):
        return str(names[int(value)])
    return str(value)


def _dataset_rows(
    scores: Any,
    source: Source,
    wanted: np.ndarray,
    *,
    columns: Columns,
    on: str,
    verify: str,
    provenance: Provenance | None,
) -> np.ndarray:
    """The dataset row holding each wanted scored row, checked through ``align`` (``ScoreMismatchError`` if not)."""
    dataset = source.dataset
    join: dict[str, Any] = {"input_column": columns.input, "label_column": columns.label, "provenance": provenance}
    has_ids = "example_id" in column_names(scores)
    if on == "example_id":
        ids = score_ids(scores, wanted)
        rows = IdIndex(dataset_example_ids(dataset, **join)).lookup(ids)
        if (rows < 0).any():
            lost = [int(i) for i in wanted[rows < 0][:5]]
            raise ScoreMismatchError(
                f"{int((rows < 0).sum())} of the {len(wanted)} scored rows to show (idx {lost}...) have no row with "
                f"the same content (example_id) in {source.name!r}: the dataset is not the one scored, or lacks "
                "those rows. Check the dataset, --split and --data-files.",
                value=lost,
            )
        return rows
    check_alignment(
        dataset,
        ids_reader(scores),
        num_scores=num_scores(scores),
        verify=verify,
        **join,
    )
    if verify != "none" and has_ids:  # every row shown is the row scored, not only the sampled ones
        ours = dataset_example_ids(dataset, wanted, **join)
        theirs = score_ids(scores, wanted)
        differ = [int(wanted[i]) for i, (a, b) in enumerate(zip(ours.to_pylist(), theirs.to_pylist())) if a != b]
        if differ:
            raise ScoreMismatchError(
                f"{len(differ)} of the {len(wanted)} rows to show differ from the scored examples (first: row "
                f"{differ[0]}): {source.name!r} is not the split these scores were computed on, in this order. "
                "If it is a reordered or re-exported copy, join by content: on='example_id' (CLI: --on example_id).",
                value=differ[:5],
            )
    return wanted


def collect_examples(
    scores: Any,
    source: Source,
    *,
    column: str | None = None,
    per_group: int = DEFAULT_PER_GROUP,
    on: str = "idx",
    verify: str = "sample",
    provenance: Provenance | None = None,
    input_column: str | None = None,
    label_column: str | None = None,
    title: str = "",
) -> ExampleSet:
    """The hardest, easiest and most likely mislabeled rows of ``source``, by a score column of ``scores``.

    Args:
        scores: the score table (``load_scores``, a ``pyarrow.Table`` or dict of arrays) of ``source``'s split.
        source: the scored split, as ``sources.load_source`` returns it (its columns are the project's detection).
        column: the score column (default ``el2n``, else the first metric); any numeric column works. A metric
            declared ``higher_is_harder=False`` is ranked reversed, as ``prune`` ranks it.
        per_group: rows per group.
        on: ``idx`` (row i of the dataset is scored row i; checked) or ``example_id`` (join by content hash).
        verify: with ``on="idx"``: ``sample`` (length, card row count, 32 sampled hashes, plus every shown row),
            ``full`` (every row and the card's source fingerprint) or ``none`` (length only).
        provenance: the card's ``datadiet`` block; found automatically for tables from ``load_scores``.
        input_column, label_column: the dataset's input and label columns; by default the ones the card records,
            else ``columns.detect_columns`` (the columns a row's ``example_id`` is computed from, as for ``prune``).
        title: a heading for the grid or table.
    """
    per_group = _check_per_group(per_group)
    on, _, verify = validate_join(on, "error", verify)
    if source.streaming:
        raise InvalidArgumentError(
            f"{source.name!r} is streamed; showing examples needs random access to its rows. Load it without "
            "streaming.",
            value=source.name,
        )
    column = score_column(scores, column)
    labeled = "label" in column_names(scores)  # a corpus scored by language models has none: no mislabeled group
    table = read_scores(scores, column, need_labels=labeled)
    stored = read_scores(scores, column, never_learned_as_inf=False).values  # what the table holds, for display
    never = stored != table.values  # forgetting: the rows ranked as never learned
    declared = metrics.METRICS.get(column)
    higher_is_harder = declared is None or declared.higher_is_harder  # as selection ranks it
    hardness = table.values if higher_is_harder else -table.values
    picks = pick_rows(hardness, table.labels, per_group=per_group)
    wanted = np.unique(np.concatenate(list(picks.values()))).astype(np.int64)
    provenance = provenance_for(scores, provenance)
    columns = join_columns(
        source.dataset, input_column=input_column, label_column=label_column, scored=scored_columns(provenance)
    )
    try:
        rows = _dataset_rows(scores, source, wanted, columns=columns, on=on, verify=verify, provenance=provenance)
    except UNREADABLE as err:
        if isinstance(err, DatadietError):
            raise
        raise InvalidArgumentError(  # hashing decodes the inputs: a corrupt file surfaces here (PIL's OSError)
            f"Cannot read the rows of {source.name!r} to match them to the scores: {err}. A file is corrupt or not "
            "what its column says; fix or remove it.",
            value=source.name,
        ) from err
    label = columns.label or (source.label_column if labeled else None)
    fetched = source.dataset.select(rows.tolist()) if len(rows) else None
    try:
        inputs = fetched[columns.input] if fetched is not None else []
    except UNREADABLE as err:  # PIL cannot decode a file (UnidentifiedImageError is an OSError)
        raise InvalidArgumentError(
            f"One of the rows to show (idx {wanted[:12].tolist()}) of {source.name!r} cannot be decoded: {err}. "
            "Fix or remove the file, or look at another score column.",
            value=source.name,
        ) from err
    labels = fetched[label] if fetched is not None and label is not None else []
    names = (own_class_names(source.dataset.features, label) if label is not None else None) or label_space(
        provenance
    ).names
    groups = tuple(g for g in GROUPS if g in picks)
    where = {int(p): i for i, p in enumerate(wanted)}
    examples = tuple(
        Example(
            group=group,
            idx=int(position),
            score=float(stored[position]),
            label=int(table.labels[position]) if table.labels is not None else None,
            label_name=_label_name(labels[where[int(position)]], names) if label is not None else "",
            value=inputs[where[int(position)]],
            never_learned=bool(never[position]),
        )
        for group in groups
        for position in picks[group]
    )
    return ExampleSet(
        kind=str(columns.kind),
        column=column,
        examples=examples,
        title=title,
        higher_is_harder=higher_is_harder,
        groups=groups,
    )
