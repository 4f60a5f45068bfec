"""The selection strategies, one registered function each; ``STRATEGIES`` is the registry the CLI reads.

A strategy takes the finite scores of the candidate rows (position = row), the number to keep, its ``Params``
and the ``TieBreak``, and returns the kept positions, ascending. Adding a strategy is one ``@register`` function.
``class_balanced`` applies any strategy within each class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .errors import InvalidArgumentError
from .ranking import TieBreak, top_k


@dataclass(frozen=True)
class Params:
    """The knobs a strategy may read (``Selection.params()``): skipped share, CCS's beta and bins, the seed."""

    skip: float = 0.0
    beta: float = 0.0
    bins: int = 50
    seed: int = 0


StrategyFn = Callable[[np.ndarray, int, Params, TieBreak], np.ndarray]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its name, function, one-line help, and which ``Selection`` knobs it reads."""

    name: str
    func: StrategyFn
    help: str
    uses_skip: bool = False
    uses_beta: bool = False


STRATEGIES: dict[str, Strategy] = {}


def register(
    name: str, *, help: str, uses_skip: bool = False, uses_beta: bool = False
) -> Callable[[StrategyFn], StrategyFn]:
    """Register ``func`` as strategy ``name``."""

    def decorate(func: StrategyFn) -> StrategyFn:
        STRATEGIES[name] = Strategy(name, func, help, uses_skip, uses_beta)
        return func

    return decorate


def names() -> tuple[str, ...]:
    """The registered strategy names, in registration order (``hardest`` first)."""
    return tuple(STRATEGIES)


def get(name: str) -> Strategy:
    """The strategy called ``name``; ``InvalidArgumentError`` listing the choices otherwise."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"Unknown strategy {name!r}. Choose one of: {', '.join(STRATEGIES)}.", value=name
        ) from None


def _skip_count(n: int, share: float) -> int:
    return math.floor(share * n + 0.5)


def _window(scores: np.ndarray, k: int, skip: int, tie: TieBreak) -> np.ndarray:
    """Ranks ``skip`` to ``skip + k`` of the hardest-first order, O(n): the hardest ``skip + k`` rows minus the
    hardest ``skip`` of them (the tie-break gives one total order, so both agree on the ties)."""
    head = top_k(scores, skip + k, tie=tie)
    if skip == 0:
        return head
    return np.delete(head, top_k(scores[head], skip, tie=tie.subset(head)))


@register("hardest", help="the highest scores (the paper's default)", uses_skip=True)
def select_hardest(scores: np.ndarray, k: int, params: Params, tie: TieBreak) -> np.ndarray:
    if params.skip:
        return select_offset(scores, k, params, tie)
    return top_k(scores, k, largest=True, tie=tie)


@register("easiest", help="the lowest scores")
def select_easiest(scores: np.ndarray, k: int, params: Params, tie: TieBreak) -> np.ndarray:
    return top_k(scores, k, largest=False, tie=tie)


@register("random", help="uniformly at random (seeded), ignoring the scores")
def select_random(scores: np.ndarray, k: int, params: Params, tie: TieBreak) -> np.ndarray:
    rng = np.random.default_rng(params.seed)
    return np.sort(rng.choice(len(scores), size=k, replace=False)).astype(np.int64)


@register("offset", help="skip the hardest `skip` share (likely mislabeled), then the next hardest", uses_skip=True)
def select_offset(scores: np.ndarray, k: int, params: Params, tie: TieBreak) -> np.ndarray:
    n = len(scores)
    skip = _skip_count(n, params.skip)
    if skip + k > n:
        raise InvalidArgumentError(
            f"skip={params.skip} skips {skip} rows, leaving {n - skip}: cannot keep {k}. Lower the skip share "
            "or the fraction.",
            value=params.skip,
        )
    return _window(scores, k, skip, tie)


@register(
    "ccs",
    help="coverage-centric (Zheng et al. 2023): drop the hardest `beta` share, then sample score strata evenly",
    uses_beta=True,
)
def select_ccs(scores: np.ndarray, k: int, params: Params, tie: TieBreak) -> np.ndarray:
    """Drop the hardest ``beta`` share, split the rest into ``bins`` equal-width score strata and give each an
    equal share of the budget; strata smaller than their share keep everything and pass the remainder on. Rows
    within a stratum are drawn at random (``seed``)."""
    beta, bins = params.beta, params.bins
    n = len(scores)
    drop = _skip_count(n, beta)
    candidates = np.delete(np.arange(n, dtype=np.int64), top_k(scores, drop, tie=tie)) if drop else np.arange(n)
    if k > len(candidates):
        raise InvalidArgumentError(
            f"CCS with beta={beta} leaves {len(candidates)} rows: cannot keep {k}. Lower beta.", value=beta
        )
    values = scores[candidates]
    lo, hi = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    edges = np.linspace(lo, hi, bins + 1)
    strata = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    by_stratum = np.argsort(strata, kind="stable")  # one sort instead of one full scan per stratum
    sizes = np.bincount(strata, minlength=bins)
    members = np.split(candidates[by_stratum], np.cumsum(sizes)[:-1])
    take = np.zeros(bins, dtype=np.int64)
    remaining = k
    open_bins = [b for b in range(bins) if sizes[b] > 0]
    while remaining > 0 and open_bins:  # equal shares; small strata are taken whole and the rest redistributed
        share, extra = divmod(remaining, len(open_bins))
        next_open = []
        for j, b in enumerate(sorted(open_bins, key=lambda b: sizes[b] - take[b])):
            want = share + (1 if j < extra else 0)
            got = min(want, sizes[b] - take[b])
            take[b] += got
            remaining -= got
            if take[b] < sizes[b]:
                next_open.append(b)
        open_bins = next_open if remaining > 0 else []
    rng = np.random.default_rng(params.seed)
    chosen = [rng.choice(m, size=t, replace=False) for m, t in zip(members, take) if t > 0]
    return np.sort(np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)).astype(np.int64)


@register("middle", help="the central ranks: as many rows below as above the kept slice (Marion et al. 2023)")
def select_middle(scores: np.ndarray, k: int, params: Params, tie: TieBreak) -> np.ndarray:
    """Ranks ``(n - k) // 2`` to ``(n - k) // 2 + k`` of the hardest-first order: the middle of the distribution,
    which kept pretraining text best when pruning by reference-model perplexity."""
    return _window(scores, k, (len(scores) - k) // 2, tie)


def select(
    scores: np.ndarray, k: int, strategy: str, params: Params | None = None, tie: TieBreak | None = None
) -> np.ndarray:
    """Apply ``strategy`` to finite ``scores`` (no thresholds, no class balance); ties by ``tie`` (default: the
    lower row)."""
    params = params or Params()
    return get(strategy).func(scores, k, params, tie or TieBreak("index", params.seed))


def class_quotas(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class budgets proportional to class sizes (largest remainder, ties to the smaller label).

    Returns ``(classes, inverse, quota)``: the sorted class values, each row's class position, and how many rows
    each class keeps; the quotas sum to ``k`` and no quota exceeds its class size.
    """
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if not len(classes):
        return classes, inverse, np.zeros(0, dtype=np.int64)
    exact = k * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, then smaller label
    quota[order[: k - quota.sum()]] += 1
    return classes, inverse, quota


def class_balanced(
    scores: np.ndarray,
    labels: np.ndarray,
    k: int,
    strategy: str,
    params: Params | None = None,
    tie: TieBreak | None = None,
) -> np.ndarray:
    """Apply the strategy within each class (or any group: ``labels`` may hold domain names), with budgets from
    ``class_quotas``, so the kept set keeps the class proportions. Random draws use ``seed + class position``, so classes draw independent streams; the tie-break
    keys stay those of the whole table."""
    params = params or Params()
    tie = tie or TieBreak("index", params.seed)
    func = get(strategy).func
    classes, inverse, quota = class_quotas(labels, k)
    if not len(classes):
        return np.empty(0, dtype=np.int64)
    by_class = np.argsort(inverse, kind="stable")  # rows grouped by class, ascending within each class
    groups = np.split(by_class, np.cumsum(np.bincount(inverse, minlength=len(classes)))[:-1])
    kept = []
    for c, rows in enumerate(groups):
        per_class = replace(params, seed=params.seed + c)
        kept.append(rows[func(scores[rows], int(quota[c]), per_class, tie.subset(rows))])
    return np.sort(np.concatenate(kept)).astype(np.int64)
