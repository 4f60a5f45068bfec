"""Rank statistics in numpy (the library does not depend on scipy)."""

from __future__ import annotations

import numpy as np

from .errors import InvalidArgumentError


def rankdata(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions, as ``scipy.stats.rankdata``."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks); NaN when either side is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidArgumentError(
            f"spearman needs two 1-D arrays of equal length, got shapes {a.shape} and {b.shape}.",
            value=(a.shape, b.shape),
        )
    ra, rb = rankdata(a) - (len(a) + 1) / 2.0, rankdata(b) - (len(b) + 1) / 2.0
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def mean_pairwise_spearman(per_seed: np.ndarray) -> float:
    """Mean Spearman correlation over all pairs of columns of ``[N, M]`` per-seed scores (NaN for M < 2)."""
    m = per_seed.shape[1]
    pairs = [spearman(per_seed[:, i], per_seed[:, j]) for i in range(m) for j in range(i + 1, m)]
    return float(np.nanmean(pairs)) if pairs else float("nan")


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for finding the ``positive`` rows (ties count one half), via the
    Mann-Whitney U statistic on average ranks."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise InvalidArgumentError(
            f"auroc needs positive and negative rows; got {n_pos} positive and {n_neg} negative.",
            value=(n_pos, n_neg),
        )
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at(scores: np.ndarray, positive: np.ndarray, fraction: float) -> float:
    """Share of positives among the top ``fraction`` of rows by score (ties broken by lower position)."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    k = max(1, round(fraction * len(scores)))
    top = np.argsort(-scores, kind="stable")[:k]
    return float(positive[top].mean())
