"""Rank statistics against scipy on random and tied data."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from datadiet_hub.stats import auroc, mean_pairwise_spearman, precision_at, rankdata, spearman


@pytest.mark.filterwarnings("ignore:An input array is constant")
@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=40), st.integers(0, 1000))
def test_rankdata_and_spearman_match_scipy(values, seed):
    a = np.asarray(values, dtype=float)
    b = np.random.default_rng(seed).integers(0, 4, size=len(a)).astype(float)
    assert np.allclose(rankdata(a), sp.rankdata(a))
    expected = sp.spearmanr(a, b).statistic
    got = spearman(a, b)
    assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(expected, abs=1e-12)


def test_auroc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    positive = rng.random(60) < 0.3
    pos, neg = scores[positive], scores[~positive]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(scores, positive) == pytest.approx(pairs)
    assert auroc(np.arange(10.0), np.arange(10) >= 5) == 1.0
    with pytest.raises(ValueError, match="needs positive and negative"):
        auroc(np.ones(3), np.zeros(3, dtype=bool))


def test_precision_at_and_seed_agreement():
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.2])
    positive = np.array([True, False, False, True, False])
    assert precision_at(scores, positive, 0.4) == 0.5
    per_seed = np.stack([np.arange(10.0), np.arange(10.0), np.arange(10.0)[::-1]], axis=1)
    assert mean_pairwise_spearman(per_seed) == pytest.approx((1 - 1 - 1) / 3)
