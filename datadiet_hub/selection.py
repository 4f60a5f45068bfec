"""``Selection``: the frozen value object saying which rows to keep, and ``select_indices`` that applies it.

``prune``, ``keep`` and ``select_indices`` take either ``selection=Selection(...)`` or the same fields as keyword
arguments. ``offset=`` is the deprecated name of two different knobs: the share skipped by ``hardest``/``offset``
(now ``skip``) and CCS's hardest share dropped (now ``beta``); it still works and maps to the right one.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from . import metrics, strategies
from .errors import ColumnNotFoundError, InvalidArgumentError, did_you_mean
from .ranking import INDEX, RANDOM, TieBreak
from .schema import BASE_COLUMNS, SUBSET_COLUMN_RE
from .score_table import arrow_table, column_names, idx_inverse, num_scores, read_scores, to_numpy

logger = logging.getLogger(__name__)


def _is_format_column(name: str) -> bool:
    """A column of the score format that is no score to rank by: ids, labels, a metric's spread, raw per-seed values
    or flags, a published subset."""
    companions = {c for m in metrics.METRICS.values() for c in m.columns if c != m.name}
    return (
        name in BASE_COLUMNS
        or name in companions
        or name.endswith(("_std", "_per_seed"))
        or SUBSET_COLUMN_RE.match(name) is not None
    )


def budget(n: int, *, fraction: float | None = None, count: int | None = None) -> int:
    """Number of rows to keep out of ``n``: ``count``, or ``fraction * n`` rounded half up (all rows if neither)."""
    _check_amount(fraction, count)
    if count is not None:
        if not count <= n:
            raise InvalidArgumentError(
                f"count={count!r} must be an integer between 0 and the number of rows ({n}).", value=count
            )
        return int(count)
    if fraction is None:
        return n
    return min(n, math.floor(fraction * n + 0.5))


def _check_amount(fraction: Any, count: Any) -> None:
    if fraction is not None and count is not None:
        raise InvalidArgumentError(
            f"Give either fraction ({fraction!r}) or count ({count!r}), not both.", value=(fraction, count)
        )
    if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0):
        raise InvalidArgumentError(
            f"count={count!r} must be an integer between 0 and the number of rows.", value=count
        )
    if fraction is not None and (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float, np.integer, np.floating))
        or math.isnan(fraction)
        or not 0 < fraction <= 1
    ):
        raise InvalidArgumentError(
            f"fraction={fraction!r} must be in (0, 1], e.g. 0.5 to keep half of the rows.", value=fraction
        )


def _share(name: str, value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value < 1:
        raise InvalidArgumentError(f"{name}={value!r} must be in [0, 1): {what}.", value=value)


@dataclass(frozen=True)
class Selection:
    """Which rows to keep.

    Attributes:
        column: score column to rank by (``el2n``, ``grand``, ``forgetting``); larger means harder.
        fraction: share of all rows to keep, in (0, 1]; or give ``count``. Neither: every row within the
            thresholds.
        count: number of rows to keep.
        strategy: a name in ``strategies.STRATEGIES`` (``hardest``, ``easiest``, ``random``, ``offset``, ``ccs``).
        skip: ``hardest``/``offset``: share of the hardest rows skipped first (data_diet's offset), in [0, 1).
        beta: ``ccs``: share of the hardest rows dropped before sampling strata, in [0, 1).
        min_score, max_score: absolute thresholds (inclusive); the strategy picks among rows within them.
        seed: for ``random``, ``ccs`` and the ``random`` tie-break.
        class_balanced: apply the strategy within each class, keeping class proportions.
        by: apply the strategy within the groups of this column (e.g. ``domain``), with budgets proportional to
            the group sizes, so pruning keeps the mix of sources; read from the score table, else from the dataset
            given to ``prune``/``keep``. ``class_balanced`` is ``by="label"``.
        bins: number of score strata for ``ccs``.
        tie_break: order among equal scores: ``random`` (seeded, default), ``index`` (lower row first) or a
            secondary score column (harder first), e.g. ``el2n`` to rank forgetting ties.
        never_learned_as_inf: rank ``never_learned`` rows above all others when ranking by ``forgetting``.
    """

    column: str = "el2n"
    fraction: float | None = None
    count: int | None = None
    strategy: str = "hardest"
    skip: float = 0.0
    beta: float = 0.0
    min_score: float | None = None
    max_score: float | None = None
    seed: int = 0
    class_balanced: bool = False
    by: str | None = None
    bins: int = 50
    tie_break: str = RANDOM
    never_learned_as_inf: bool = True

    def __post_init__(self) -> None:
        strategy = strategies.get(self.strategy)
        _check_amount(self.fraction, self.count)
        _share("skip", self.skip, "the share of hardest rows to skip first")
        _share("beta", self.beta, "the share of hardest rows CCS drops first")
        if self.skip and not strategy.uses_skip:
            raise InvalidArgumentError(
                f"skip={self.skip} does not apply to strategy={self.strategy!r}; it is for 'hardest' and 'offset'.",
                value=self.skip,
            )
        if self.beta and not strategy.uses_beta:
            raise InvalidArgumentError(
                f"beta={self.beta} does not apply to strategy={self.strategy!r}; it is for 'ccs'.", value=self.beta
            )
        if self.by is not None and (not isinstance(self.by, str) or not self.by):
            raise InvalidArgumentError(f"by={self.by!r} must name a column, e.g. by='domain'.", value=self.by)
        if self.by is not None and self.class_balanced:
            raise InvalidArgumentError(
                f"Give class_balanced=True or by={self.by!r}, not both (class_balanced is by='label').", value=self.by
            )
        if isinstance(self.bins, bool) or not isinstance(self.bins, (int, np.integer)) or self.bins < 1:
            raise InvalidArgumentError(f"bins={self.bins!r} must be a positive integer.", value=self.bins)
        for name in ("min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float, np.integer, np.floating))
                or not math.isfinite(value)
            ):
                raise InvalidArgumentError(
                    f"{name}={value!r} must be a finite number (a NaN or infinite threshold selects nothing or "
                    "everything); give a score value such as 0.05.",
                    value=value,
                )
        if _is_format_column(self.column):
            raise InvalidArgumentError(
                f"{self.column!r} is not a score column (it is part of the score format, not a difficulty); rank by "
                f"a score: one of {', '.join(metrics.names())}.",
                column=self.column,
                value=self.column,
            )
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise InvalidArgumentError(
                f"min_score={self.min_score} is larger than max_score={self.max_score}; swap them.",
                value=(self.min_score, self.max_score),
            )
        if not isinstance(self.tie_break, str) or not self.tie_break:
            raise InvalidArgumentError(
                f"tie_break={self.tie_break!r}: use 'random', 'index' or a score column name such as 'el2n'.",
                value=self.tie_break,
            )
        if self.tie_break == self.column:
            raise InvalidArgumentError(
                f"tie_break={self.tie_break!r} is the ranked column itself; use 'random', 'index' or another score "
                "column.",
                value=self.tie_break,
            )

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Selection:
        """A ``Selection`` from keyword arguments, mapping the deprecated ``offset=`` to ``beta`` (CCS) or
        ``skip`` (every other strategy)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known - {"offset"})
        if unknown:
            raise InvalidArgumentError(
                f"Unknown selection argument(s) {unknown}; choose from: {', '.join(sorted(known))}.", value=unknown
            )
        offset = kwargs.pop("offset", None)
        if offset is not None:
            target = "beta" if kwargs.get("strategy") == "ccs" else "skip"
            if target in kwargs and offset:
                raise InvalidArgumentError(
                    f"Give {target}= or the deprecated offset=, not both (offset={offset!r}).", value=offset
                )
            if offset:
                warnings.warn(
                    f"offset= is deprecated; use {target}={offset!r} (strategy={kwargs.get('strategy', 'hardest')!r}).",
                    DeprecationWarning,
                    stacklevel=4,
                )
                kwargs.setdefault(target, offset)
        return cls(**kwargs)

    def params(self) -> strategies.Params:
        """What the strategy function reads."""
        return strategies.Params(skip=self.skip, beta=self.beta, bins=self.bins, seed=self.seed)

    def amount(self, n: int) -> int:
        """Rows to keep out of ``n`` (before thresholds); a fraction that keeps none of ``n > 0`` rows is refused
        (only ``count=0`` asks for nothing)."""
        k = budget(n, fraction=self.fraction, count=self.count)
        if k == 0 and n > 0 and self.fraction is not None:
            raise InvalidArgumentError(
                f"fraction={self.fraction!r} keeps 0 of {n} rows (it rounds to none); ask for a larger fraction, or "
                "pass count=0 (CLI: --count 0) to keep nothing on purpose.",
                value=self.fraction,
            )
        return k


def as_selection(selection: Selection | None, kwargs: dict[str, Any]) -> Selection:
    """``selection`` itself, or one built from keyword arguments (not both)."""
    if selection is None:
        return Selection.from_kwargs(**kwargs)
    if kwargs:
        raise InvalidArgumentError(
            f"Give selection= or keyword arguments {sorted(kwargs)}, not both.", value=sorted(kwargs)
        )
    if not isinstance(selection, Selection):
        raise InvalidArgumentError(
            f"selection= must be a datadiet_hub.selection.Selection, not {type(selection).__name__}.",
            value=selection,
        )
    return selection


def group_column(scores: Any, name: str) -> np.ndarray | None:
    """The values of column ``name`` of the score table in ``idx`` order, or None when it has no such column."""
    if name not in column_names(scores):
        return None
    table = arrow_table(scores, ["idx", name])
    values = np.asarray(table.column(name).to_pylist())
    inverse = idx_inverse(to_numpy(table.column("idx")))
    return values if inverse is None else values[inverse]


def dataset_groups(dataset: Any, scores: Any, sel: Selection, on: str) -> np.ndarray | None:
    """The ``by`` column read from the dataset (row i: source row i) when the score table does not carry it."""
    if sel.by is None or sel.by in column_names(scores):
        return None
    if dataset is None or not hasattr(dataset, "__len__"):
        return None  # select_indices names the missing column
    if dataset.column_names and sel.by not in dataset.column_names:
        both = [*column_names(scores), *dataset.column_names]
        raise ColumnNotFoundError(
            f"by={sel.by!r} is a column neither of the score table (columns: {column_names(scores)}) nor of the "
            f"dataset (columns: {dataset.column_names}).{did_you_mean(sel.by, both)} Name a column of either, or add "
            f"it to the dataset first (dataset.add_column({sel.by!r}, values)).",
            column=sel.by,
            value=sel.by,
        )
    if on != "idx":
        raise InvalidArgumentError(
            f"by={sel.by!r} from the dataset needs on='idx' (rows in the scored order); with on='example_id' add "
            "the column to the score table.",
            value=sel.by,
        )
    if len(dataset) != num_scores(scores):
        return None  # the alignment check explains the length mismatch
    return np.asarray(dataset.select_columns([sel.by]).with_format(None)[sel.by])


def select_indices(
    scores: Any, *, selection: Selection | None = None, groups: Any = None, **kwargs: Any
) -> np.ndarray:
    """Source-row positions to keep, ascending.

    Args:
        scores: the score table (``datasets.Dataset`` from ``load_scores``, a pyarrow Table or dict).
        selection: a ``Selection``; or give its fields as keyword arguments (``column``, ``fraction``, ``count``,
            ``strategy``, ``skip``, ``beta``, ``min_score``, ``max_score``, ``seed``, ``class_balanced``, ``bins``,
            ``tie_break``, ``never_learned_as_inf``, ``by``; deprecated: ``offset``).
        groups: with ``by``, the group of every source row (position i: row i), when the score table lacks the
            column (``prune``/``keep`` pass the dataset's column).
    """
    sel = as_selection(selection, kwargs)
    if sel.strategy == "offset" and sel.skip == 0:
        logger.info("strategy='offset' with skip=0 is the same as 'hardest'.")
    k = sel.amount(num_scores(scores))  # validate before reading anything
    secondary = sel.tie_break if sel.tie_break not in (RANDOM, INDEX) else None
    cols = read_scores(
        scores,
        sel.column,
        need_labels=sel.class_balanced,
        never_learned_as_inf=sel.never_learned_as_inf,
        secondary=secondary,
    )
    values = cols.values
    if sel.by is not None:
        groups = group_column(scores, sel.by) if groups is None else np.asarray(groups)
        if groups is None:
            raise ColumnNotFoundError(
                f"by={sel.by!r} is not a column of the score table (columns: {column_names(scores)})."
                f"{did_you_mean(sel.by, column_names(scores))} Pass the dataset "
                "(prune(dataset, scores, by=...), keep(scores, dataset=ds, by=...)) so the groups are read from it, "
                "or add the column to the table.",
                column=sel.by,
                value=sel.by,
            )
        if len(groups) != len(values):
            raise InvalidArgumentError(
                f"by={sel.by!r}: {len(groups)} group values for {len(values)} scored rows; give one per row.",
                value=len(groups),
            )
    tie = TieBreak(sel.tie_break, sel.seed, cols.secondary)
    candidates = None
    if sel.min_score is not None or sel.max_score is not None:
        inside = np.ones(len(values), dtype=bool)
        if sel.min_score is not None:
            inside &= values >= sel.min_score
        if sel.max_score is not None:
            inside &= values <= sel.max_score
        candidates = np.flatnonzero(inside)
        if sel.fraction is None and sel.count is None:
            if len(values) and not len(candidates):
                raise InvalidArgumentError(
                    f"no row has a {sel.column!r} score within min_score={sel.min_score}, max_score={sel.max_score} "
                    f"(scores run from {float(values.min()):.4g} to {float(values.max()):.4g}); nothing would be "
                    "kept. Widen the thresholds.",
                    value=(sel.min_score, sel.max_score),
                )
            return candidates
        if k > len(candidates):
            raise InvalidArgumentError(
                f"Only {len(candidates)} rows lie within the thresholds, fewer than the {k} requested; "
                "widen min_score/max_score or lower the fraction.",
                value=k,
            )
        values, tie = values[candidates], tie.subset(candidates)
        groups = None if groups is None else groups[candidates]
    declared = metrics.METRICS.get(sel.column)
    if declared is not None and not declared.higher_is_harder:
        values = -values  # "hardest" keeps the largest: flip a metric whose smaller values are the harder ones
    if groups is not None and sel.by is not None:
        chosen = strategies.class_balanced(values, groups, k, sel.strategy, sel.params(), tie)
    elif sel.class_balanced:
        if cols.labels is None:
            raise InvalidArgumentError("class_balanced=True needs the score table's labels.", column="label")
        labels = cols.labels if candidates is None else cols.labels[candidates]
        chosen = strategies.class_balanced(values, labels, k, sel.strategy, sel.params(), tie)
    else:
        chosen = strategies.select(values, k, sel.strategy, sel.params(), tie)
    return chosen if candidates is None else candidates[chosen]
