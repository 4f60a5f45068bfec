"""Statistics for the results: mean and standard error over training seeds, paired differences with a 95%
t-interval, and percentile-bootstrap intervals for detection metrics (AUROC, precision).

Why paired: every method at a fraction is trained with the same downstream seeds (same init, same batch order up to
the subset), so the difference per seed removes the seed-to-seed spread that both arms share. The same seed is not the
same run, though: training is not in deterministic mode, so a run repeated with the same subset, seed and steps on
one device can land elsewhere; that noise is not shared by the pair and stays in its interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values with its standard error and a two-sided t-interval (NaN bounds when n < 2)."""

    mean: float
    se: float
    n: int
    lo: float
    hi: float

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of 0 (a measurable difference)."""
        return self.n >= 2 and (self.lo > 0 or self.hi < 0)


def t_interval(values: Iterable[float], level: float = 0.95) -> Estimate:
    """Mean, standard error (sample s.d. / sqrt(n)) and the ``level`` t-interval with n - 1 degrees of freedom."""
    from scipy.stats import t

    x = np.asarray(list(values), dtype=np.float64)
    n = len(x)
    if n == 0:
        raise ValueError("t_interval needs at least one value, got none.")
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, math.nan, n, math.nan, math.nan)
    se = float(x.std(ddof=1) / math.sqrt(n))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * se
    return Estimate(mean, se, n, mean - half, mean + half)


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """Per-seed differences ``a[seed] - b[seed]`` over the seeds both sides have, in seed order."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def seed_means(values: Iterable[tuple[int, float]]) -> dict[int, float]:
    """``{seed: mean}`` over ``(seed, value)`` pairs, in seed order: the training seed is the unit, so a seed run on
    several devices counts once, as the mean of its runs."""
    by_seed: dict[int, list[float]] = {}
    for seed, value in values:
        by_seed.setdefault(seed, []).append(value)
    return {seed: sum(v) / len(v) for seed, v in sorted(by_seed.items())}


def paired_on_device(a: dict[tuple[int, str], float], b: dict[tuple[int, str], float]) -> list[float]:
    """Per seed, ``a - b`` on the devices both sides ran that seed on (the mean where there are several), in seed
    order. Never across devices: a seed's init and batch order are the same everywhere, but its arithmetic is not,
    so a cross-device pair would add the device's offset to the difference. Seeds with no device in common are
    left out."""
    return list(seed_means((seed, a[(seed, d)] - b[(seed, d)]) for seed, d in set(a) & set(b)).values())


def bootstrap_interval(
    statistic: Callable[..., float],
    arrays: Sequence[np.ndarray],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, lo, hi)``: the statistic on the data and the percentile interval over ``n_boot`` resamples of
    rows (the same rows drawn for every array). Covers the sampling of examples only, not retraining."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"bootstrap_interval needs arrays of equal length, got {[len(a) for a in arrays]}.")
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        rows = rng.integers(0, n, size=n)
        draws[i] = statistic(*(a[rows] for a in arrays))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(statistic(*arrays)), float(lo), float(hi)


def p_value(est: Estimate) -> float:
    """Two-sided p-value of a t-test of mean 0 for ``est`` (1.0 when there is no spread to test against)."""
    from scipy.stats import t

    if est.n < 2 or not est.se > 0:
        return 1.0
    return float(2 * t.sf(abs(est.mean / est.se), est.n - 1))


def holm_survivors(estimates: dict, alpha: float = 0.05) -> set:
    """Keys whose estimate differs from 0 under Holm's step-down correction for all ``len(estimates)`` tests at
    family-wise error ``alpha``: many intervals read from one test set each have a 5% chance of excluding 0 by
    luck, Holm bounds the chance that any of the survivors is such a fluke."""
    ordered = sorted(estimates.items(), key=lambda item: p_value(item[1]))
    m, survivors = len(ordered), set()
    for i, (key, est) in enumerate(ordered):
        if p_value(est) > alpha / (m - i):
            break
        survivors.add(key)
    return survivors


def fmt_pm(est: Estimate, digits: int = 4) -> str:
    """``0.9199 ± 0.0003 (n=2)``; ``0.9199 (n=1)`` without a spread."""
    if est.n < 2:
        return f"{est.mean:.{digits}f} (n={est.n})"
    return f"{est.mean:.{digits}f} ± {est.se:.{digits}f} (n={est.n})"


def fmt_diff(est: Estimate, scale: float = 100.0, unit: str = " pt") -> str:
    """``+0.41 pt [-3.9, +4.7] (n=2)`` in points (x100), with the flag where the interval contains 0."""
    if est.n < 2:
        return f"{est.mean * scale:+.2f}{unit} (n={est.n}, no interval)"
    text = f"{est.mean * scale:+.2f}{unit} [{est.lo * scale:+.2f}, {est.hi * scale:+.2f}] (n={est.n})"
    return text if est.excludes_zero else text + " no measurable difference"
