"""Compare two score tables (two versions, or two configs): how much do they agree on which examples are hard?

Used by ``datadiet diff A B``. Three views, because a single correlation hides what matters for pruning:

- Spearman rank correlation over all rows (average ranks for ties, as ``scipy.stats.spearmanr``);
- overlap of the *kept* sets, i.e. the hardest (highest-score) fraction of each table, ``|A ∩ B| / k``, at the
  pruning levels people use (random selections would overlap by about the fraction itself);
- the rows whose rank moved most, to look at by hand.

Rows are joined by ``idx`` (the source row), and ``example_id`` is checked when both tables have it, so two
tables scored on different data are refused instead of being compared row by row. numpy only (no scipy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidArgumentError, ScoreMismatchError, did_you_mean
from .ranking import INDEX, TieBreak, order_hardest
from .score_table import column_names, numpy_column
from .stats import spearman


@dataclass(frozen=True)
class RankMove:
    """One row whose hardness rank differs between A and B (rank 1 = hardest)."""

    idx: int
    example_id: str | None
    rank_a: int
    rank_b: int
    score_a: float
    score_b: float

    @property
    def shift(self) -> int:
        """``rank_b - rank_a``: negative means the row got harder (moved towards the top) in B."""
        return self.rank_b - self.rank_a


@dataclass(frozen=True)
class Comparison:
    """Result of ``compare_scores``.

    Attributes:
        column: the score column compared.
        n: number of rows (same idx set in both).
        spearman: Spearman rank correlation (nan when one side is constant).
        overlaps: kept fraction -> ``|A ∩ B| / k`` of the hardest ``k = round(fraction * n)`` rows.
        moved: rows with the largest ``|rank_b - rank_a|``, largest first.
        names: labels of A and B for display.
    """

    column: str
    n: int
    spearman: float
    overlaps: dict[float, float]
    moved: list[RankMove] = field(default_factory=list)
    names: tuple[str, str] = ("A", "B")


def _hardness_order(scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row positions from hardest to easiest; ties by smaller idx first (``ranking.order_hardest``, rule "index"),
    so a diff never depends on a seed. ``idx`` is ascending here (the tables are joined by it)."""
    return order_hardest(scores, TieBreak(INDEX))


def _validate_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(f) for f in fractions)
    bad = [f for f in out if not 0 < f <= 1]
    if bad:
        raise InvalidArgumentError(
            f"Kept fractions must be in (0, 1], got {bad!r}; e.g. fractions=(0.1, 0.3, 0.5, 0.7).", value=bad
        )
    return out


def _aligned(a: Any, b: Any, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """idx, score_a, score_b, example_id (or None), joined by idx; raises ScoreMismatchError if the rows differ."""
    for label, table in (("A", a), ("B", b)):
        cols = column_names(table)
        for needed in ("idx", column):
            if needed not in cols:
                raise ScoreMismatchError(
                    f"Score table {label} has no column {needed!r}; its columns are {cols}."
                    f"{did_you_mean(needed, cols)} Pass column= one of them.",
                    column=needed,
                )
    idx_a, idx_b = numpy_column(a, "idx").astype(np.int64), numpy_column(b, "idx").astype(np.int64)
    for label, idx in (("A", idx_a), ("B", idx_b)):
        uniq, counts = np.unique(idx, return_counts=True)
        if (counts > 1).any():
            raise ScoreMismatchError(
                f"Score table {label} has duplicate idx values (e.g. {uniq[counts > 1][:5].tolist()}); each source row"
                " must appear once."
            )
    only_a, only_b = np.setdiff1d(idx_a, idx_b), np.setdiff1d(idx_b, idx_a)
    if len(only_a) or len(only_b):
        raise ScoreMismatchError(
            f"The two score tables cover different rows: {len(only_a)} idx only in A (e.g. {only_a[:5].tolist()}),"
            f" {len(only_b)} only in B (e.g. {only_b[:5].tolist()}). Compare scores of the same source split, or"
            " select the common rows first."
        )
    pos_a, pos_b = np.argsort(idx_a), np.argsort(idx_b)
    idx = idx_a[pos_a]
    score_a = numpy_column(a, column).astype(np.float64)[pos_a]
    score_b = numpy_column(b, column).astype(np.float64)[pos_b]
    for label, s in (("A", score_a), ("B", score_b)):
        if np.isnan(s).any():
            raise ScoreMismatchError(
                f"Score table {label} has {int(np.isnan(s).sum())} NaN values in {column!r} (e.g. idx"
                f" {idx[np.isnan(s)][:5].tolist()}); fill or drop them before comparing."
            )
    example_id = None
    if "example_id" in column_names(a) and "example_id" in column_names(b):
        ex_a = numpy_column(a, "example_id")[pos_a].astype(str)
        ex_b = numpy_column(b, "example_id")[pos_b].astype(str)
        differ = np.flatnonzero(ex_a != ex_b)
        if len(differ):
            i = differ[0]
            raise ScoreMismatchError(
                f"{len(differ)} rows have the same idx but different example_id (e.g. idx {int(idx[i])}:"
                f" {str(ex_a[i])!r} vs {str(ex_b[i])!r}): the tables were scored on different data or revisions."
                " Join them by example_id instead of idx."
            )
        example_id = ex_a
    return idx, score_a, score_b, example_id


def compare_scores(
    a: Any,
    b: Any,
    *,
    column: str = "el2n",
    fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
    top: int = 10,
    names: tuple[str, str] = ("A", "B"),
) -> Comparison:
    """Compare two score tables on one score column (higher = harder).

    Args:
        a: score table (``datasets.Dataset``, pyarrow Table or dict of columns) with ``idx`` and ``column``.
        b: the other table, covering the same ``idx`` set (and the same ``example_id`` per idx, if present).
        column: score column to compare, e.g. ``"el2n"``, ``"grand"``, ``"forgetting"``.
        fractions: kept fractions for the overlap of the hardest rows.
        top: how many most-moved rows to return.
        names: labels for A and B in ``format_comparison``.

    Raises:
        ScoreMismatchError: missing column, duplicate idx, different idx sets or example_ids, NaN scores.
        ValueError: a fraction outside (0, 1] or a negative ``top``.
    """
    fracs = _validate_fractions(fractions)
    if top < 0:
        raise InvalidArgumentError(f"top must be >= 0, got {top!r}; e.g. top=10.", value=top)
    idx, sa, sb, example_id = _aligned(a, b, column)
    n = len(idx)
    if n == 0:
        raise ScoreMismatchError("Both score tables are empty; nothing to compare.")
    order_a, order_b = _hardness_order(sa, idx), _hardness_order(sb, idx)
    overlaps = {}
    for f in fracs:
        k = max(1, round(f * n))
        overlaps[f] = len(np.intersect1d(order_a[:k], order_b[:k], assume_unique=True)) / k
    rank_a, rank_b = np.empty(n, np.int64), np.empty(n, np.int64)
    rank_a[order_a] = np.arange(1, n + 1)
    rank_b[order_b] = np.arange(1, n + 1)
    shift = np.abs(rank_b - rank_a)
    most = np.lexsort((idx, -shift))[: min(top, n)]
    moved = [
        RankMove(
            int(idx[i]),
            None if example_id is None else str(example_id[i]),
            int(rank_a[i]),
            int(rank_b[i]),
            float(sa[i]),
            float(sb[i]),
        )
        for i in most
        if shift[i] > 0
    ]
    return Comparison(column, n, spearman(sa, sb), overlaps, moved, tuple(names))  # type: ignore[arg-type]


def format_comparison(c: Comparison) -> str:
    """Human-readable report for ``datadiet diff``."""
    a, b = c.names
    lines = [
        f"{c.column}: {a} vs {b}, {c.n} rows",
        f"Spearman rank correlation: {c.spearman:.4f}",
        "Overlap of the kept (hardest) sets:",
    ]
    for f, o in c.overlaps.items():
        k = max(1, round(f * c.n))
        lines.append(f"  keep {f:>4.0%} ({k:>7} rows): {o:6.1%}   (random ~{f:.0%})")
    if c.moved:
        lines.append(f"Rows whose rank moved most (rank 1 = hardest, of {c.n}):")
        lines.append(
            f"  {'idx':>8}  {'example_id':<16} {'rank ' + a:>10} {'rank ' + b:>10} {'shift':>8}"
            f" {'score ' + a:>10} {'score ' + b:>10}"
        )
        for m in c.moved:
            ex = (m.example_id or "-")[:16]
            lines.append(
                f"  {m.idx:>8}  {ex:<16} {m.rank_a:>10} {m.rank_b:>10} {m.shift:>+8}"
                f" {m.score_a:>10.4g} {m.score_b:>10.4g}"
            )
    else:
        lines.append("No row changed rank.")
    return "\n".join(lines)
