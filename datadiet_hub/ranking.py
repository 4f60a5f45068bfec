"""The one ranking of rows from hardest to easiest, and its tie-break.

Larger scores are harder (a metric declared ``higher_is_harder=False`` is negated before ranking, in ``selection.py``); ``never_learned`` rows rank above all
others when ranking by forgetting (``score_table.read_scores`` gives them ``max + 1``). Among equal scores the
``TieBreak`` decides, so every strategy keeps a well-defined set:

- ``"random"`` (default): a seeded pseudo-random order among equal scores. Each row's key is a hash of
  ``(seed, row position)``, so the order is deterministic for a seed, does not favour early rows, and is the same
  order whichever subset of rows is being ranked (thresholds, classes, the window of ``offset``).
- ``"index"``: the lower row position first (the rule before the tie-break existed).
- a column name (e.g. ``"el2n"`` to rank forgetting ties): the harder row by that column first (the easier one
  when selecting the easiest), then the lower position.

``top_k`` is O(n) (one ``np.partition``, then only the rows tied at the boundary are ordered); ``order_hardest``
sorts everything (O(n log n)) for reports and tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidArgumentError

RANDOM, INDEX = "random", "index"
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def _mix(seed: int, positions: np.ndarray) -> np.ndarray:
    """splitmix64 of ``seed`` and each position: a fast, well-spread uint64 per row."""
    offset = np.uint64((int(seed) * _GOLDEN + _GOLDEN) & _MASK64)
    z = positions.astype(np.uint64) * np.uint64(_GOLDEN) + offset
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True, eq=False)
class TieBreak:
    """How rows with equal scores are ordered (see the module docstring).

    Attributes:
        rule: ``"random"``, ``"index"`` or the name of the secondary column.
        seed: for ``"random"``.
        secondary: the secondary column's values, indexed by global row position (for a column rule).
        positions: the global row position of each local row, when ranking a subset (None: the identity).
    """

    rule: str = RANDOM
    seed: int = 0
    secondary: np.ndarray | None = None
    positions: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> TieBreak:
        """The same tie-break for the local rows ``rows`` (so a subset ranks its rows in the same order)."""
        positions = rows if self.positions is None else self.positions[rows]
        return TieBreak(self.rule, self.seed, self.secondary, np.asarray(positions, dtype=np.int64))

    def _global(self, local: np.ndarray) -> np.ndarray:
        return local.astype(np.int64, copy=False) if self.positions is None else self.positions[local]

    def order(self, local: np.ndarray, *, largest: bool = True) -> np.ndarray:
        """Indices into ``local`` (tied rows, local positions) in winning order: the first ones are kept."""
        glob = self._global(local)
        if self.rule == INDEX:
            return np.argsort(glob, kind="stable")
        if self.rule == RANDOM:
            return np.lexsort((glob, _mix(self.seed, glob)))
        if self.secondary is None:
            raise InvalidArgumentError(
                f"tie_break={self.rule!r} needs the secondary column's values; select_indices reads them from the "
                "score table.",
                value=self.rule,
            )
        second = self.secondary[glob]
        return np.lexsort((glob, -second if largest else second))

    def first(self, local: np.ndarray, count: int, *, largest: bool = True) -> np.ndarray:
        """The ``count`` winning rows among the tied ``local`` rows (unordered); O(t) for the common rules."""
        if count >= len(local):
            return local
        if count <= 0:
            return local[:0]
        if self.rule == INDEX and self.positions is None:
            return local[:count]  # local is ascending
        if self.rule == RANDOM:  # unique keys: hash in the high bits, the position in the low ones
            glob = self._global(local).astype(np.uint64)
            bits = np.uint64(max(1, int(glob.max(initial=0)).bit_length()))
            keys = ((_mix(self.seed, glob) >> bits) << bits) | glob
            return local[np.argpartition(keys, count - 1)[:count]]
        return local[self.order(local, largest=largest)[:count]]


def top_k(scores: np.ndarray, k: int, *, largest: bool = True, tie: TieBreak | None = None) -> np.ndarray:
    """Positions of the k largest (or smallest) scores, ascending; ties at the boundary by ``tie``.

    O(n): one ``np.partition`` finds the k-th value, boolean masks (already in position order) pick the rows
    strictly beyond it, and only the rows equal to it are ordered by the tie-break. At 10M rows this is ~0.2 s
    against ~0.8 s for ``argpartition`` + ``sort``.
    """
    tie = tie or TieBreak(INDEX)
    n = len(scores)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    keyed = -scores if largest else scores  # select the k smallest of `keyed`
    kth = np.partition(keyed, k - 1)[k - 1]
    mask = keyed < kth
    need = k - int(np.count_nonzero(mask))
    if need:
        mask[tie.first(np.flatnonzero(keyed == kth), need, largest=largest)] = True
    return np.flatnonzero(mask).astype(np.int64, copy=False)


def order_hardest(scores: np.ndarray, tie: TieBreak | None = None) -> np.ndarray:
    """All positions from hardest to easiest, equal scores in tie-break order (default: lower position first)."""
    tie = tie or TieBreak(INDEX)
    n = len(scores)
    local = np.arange(n, dtype=np.int64)
    within = np.empty(n, dtype=np.int64)
    within[tie.order(local)] = local  # each row's place in the tie-break order
    return np.lexsort((within, -np.asarray(scores)))
