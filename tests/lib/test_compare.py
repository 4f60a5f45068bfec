"""compare_scores: Spearman against scipy, kept-set overlap, most-moved rows, and refusal of misaligned tables."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata as scipy_rankdata
from scipy.stats import spearmanr

from datadiet_hub.compare import compare_scores, format_comparison
from datadiet_hub.errors import ScoreMismatchError
from datadiet_hub.stats import rankdata, spearman


def _table(scores, idx=None, example_id=None) -> Dataset:
    n = len(scores)
    idx = list(range(n)) if idx is None else list(idx)
    cols = {"idx": idx, "el2n": np.asarray(scores, dtype=np.float32)}
    cols["example_id"] = [f"ex{i}" for i in idx] if example_id is None else example_id
    return Dataset.from_dict(cols)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-3, 3)), min_size=3, max_size=40))
def test_spearman_matches_scipy_with_ties(pairs):
    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    np.testing.assert_allclose(rankdata(a), scipy_rankdata(a))
    expected = spearmanr(a, b).statistic if a.std() > 0 and b.std() > 0 else float("nan")
    np.testing.assert_allclose(spearman(a, b), expected, atol=1e-12, equal_nan=True)


def test_identical_tables_agree_perfectly():
    rng = np.random.default_rng(0)
    s = rng.random(100)
    c = compare_scores(_table(s), _table(s))
    assert c.n == 100 and c.spearman == pytest.approx(1.0)
    assert c.overlaps == {0.1: 1.0, 0.3: 1.0, 0.5: 1.0, 0.7: 1.0}
    assert c.moved == []
    assert "No row changed rank" in format_comparison(c)


def test_reversed_scores_and_known_overlaps():
    s = np.arange(10, dtype=float)  # idx 9 is hardest in A
    c = compare_scores(_table(s), _table(s[::-1]), fractions=(0.1, 0.5, 0.7, 1.0), top=3)
    assert c.spearman == pytest.approx(-1.0)
    # hardest 10%: {9} vs {0} -> 0; 50%: {5..9} vs {0..4} -> 0; 70%: {3..9} vs {0..6} -> {3,4,5,6} = 4/7
    assert c.overlaps == {0.1: 0.0, 0.5: 0.0, 0.7: pytest.approx(4 / 7), 1.0: 1.0}
    # the extremes moved most: idx 0 (rank 10 -> 1) and idx 9 (rank 1 -> 10), ties broken by idx
    assert [(m.idx, m.rank_a, m.rank_b, m.shift) for m in c.moved[:2]] == [(0, 10, 1, -9), (9, 1, 10, 9)]
    assert c.moved[0].example_id == "ex0" and len(c.moved) == 3


def test_rows_are_joined_by_idx_not_position():
    rng = np.random.default_rng(1)
    s = rng.random(30)
    perm = rng.permutation(30)
    shuffled = _table(s[perm], idx=perm)
    c = compare_scores(_table(s), shuffled)
    assert c.spearman == pytest.approx(1.0) and c.moved == []
    # a selected (index-mapped) Dataset is read in its selected order too
    c2 = compare_scores(_table(s).select(perm), _table(s))
    assert c2.spearman == pytest.approx(1.0)


def test_overlap_against_brute_force():
    rng = np.random.default_rng(2)
    a, b = rng.random(200), rng.random(200)
    c = compare_scores(_table(a), _table(b), fractions=(0.3,))
    k = 60
    expected = len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k])) / k
    assert c.overlaps[0.3] == pytest.approx(expected)
    assert c.spearman == pytest.approx(spearmanr(a.astype(np.float32), b.astype(np.float32)).statistic)


def test_different_idx_sets_are_refused():
    with pytest.raises(ScoreMismatchError, match=r"1 idx only in A \(e.g. \[4\]\).*1 only in B \(e.g. \[7\]\)"):
        compare_scores(_table([1, 2, 3, 4, 5]), _table([1, 2, 3, 4, 5], idx=[0, 1, 2, 3, 7]))


def test_different_example_ids_are_refused():
    b = _table([1, 2, 3], example_id=["ex0", "zz", "ex2"])
    with pytest.raises(ScoreMismatchError, match=r"idx 1: 'ex1' vs 'zz'.*example_id"):
        compare_scores(_table([1, 2, 3]), b)


def test_bad_inputs_name_the_problem():
    t = _table([1.0, 2.0])
    with pytest.raises(ScoreMismatchError, match="no column 'grand'.*columns are"):
        compare_scores(t, t, column="grand")
    with pytest.raises(ValueError, match=r"\(0, 1\].*\[1.5\]"):
        compare_scores(t, t, fractions=(0.1, 1.5))
    with pytest.raises(ScoreMismatchError, match="duplicate idx"):
        compare_scores(_table([1, 2], idx=[0, 0]), t)
    with pytest.raises(ScoreMismatchError, match="NaN"):
        compare_scores(_table([1.0, float("nan")]), t)


def test_format_comparison_mentions_every_part():
    rng = np.random.default_rng(3)
    c = compare_scores(_table(rng.random(50)), _table(rng.random(50)), names=("v1", "v2"), top=5)
    text = format_comparison(c)
    assert "el2n: v1 vs v2, 50 rows" in text and "Spearman rank correlation:" in text
    assert "keep  10% (      5 rows)" in text and "keep  70%" in text
    assert "rank v1" in text and len(c.moved) == 5
