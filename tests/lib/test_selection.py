"""Each strategy keeps exactly the expected rows on a hand-checkable example; ties broken by lower idx."""

import numpy as np
import pytest

from datadiet_hub import select_indices
from datadiet_hub.selection import budget, top_k

# idx:          0    1    2    3    4    5    6    7    8    9
SCORES = [0.5, 0.9, 0.1, 0.9, 0.3, 0.7, 0.2, 0.9, 0.4, 0.6]
LABELS = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]


def table(values=SCORES, labels=LABELS, order=None):
    idx = np.arange(len(values)) if order is None else np.asarray(order)
    return {"idx": idx, "el2n": np.asarray(values, dtype=np.float32)[idx], "label": np.asarray(labels)[idx]}


def kept(**kwargs):
    return select_indices(table(), **kwargs).tolist()


def test_hardest_keeps_highest_and_breaks_ties_by_lower_idx():
    # 0.9 at idx 1, 3, 7; keeping 2 of the three tied rows takes the lower positions 1 and 3
    assert kept(fraction=0.2) == [1, 3]
    assert kept(count=4) == [1, 3, 5, 7]
    assert kept(fraction=0.5) == [1, 3, 5, 7, 9]


def test_default_strategy_is_hardest():
    assert kept(fraction=0.3) == kept(fraction=0.3, strategy="hardest") == [1, 3, 7]


def test_easiest_keeps_lowest():
    assert kept(fraction=0.3, strategy="easiest") == [2, 4, 6]
    # the 8 easiest include one of the three tied 0.9s: the one at the lowest position (idx 1)
    assert kept(count=8, strategy="easiest") == [0, 1, 2, 4, 5, 6, 8, 9]


def test_offset_skips_the_hardest_first():
    # order hardest->easiest: 1,3,7 (0.9), 5 (0.7), 9 (0.6), 0 (0.5), 8 (0.4), 4, 6, 2
    assert kept(fraction=0.3, strategy="offset", offset=0.2) == [5, 7, 9]
    assert kept(fraction=0.3, strategy="hardest", offset=0.2) == [5, 7, 9]


def test_random_is_seeded_and_exact():
    a = kept(fraction=0.5, strategy="random", seed=3)
    assert a == kept(fraction=0.5, strategy="random", seed=3)
    assert len(a) == 5 and len(set(a)) == 5 and all(0 <= i < 10 for i in a)
    assert any(kept(fraction=0.5, strategy="random", seed=s) != a for s in range(4, 10))


def test_thresholds_are_inclusive():
    assert kept(min_score=0.6) == [1, 3, 5, 7, 9]
    assert kept(max_score=0.3) == [2, 4, 6]
    assert kept(min_score=0.3, max_score=0.6) == [0, 4, 8, 9]
    # thresholds then a budget: the hardest 2 of the rows within [0.3, 0.6]
    assert kept(min_score=0.3, max_score=0.6, count=2) == [0, 9]


def test_class_balanced_keeps_proportions():
    out = select_indices(table(), fraction=0.4, class_balanced=True)
    # class 0 (idx 0,2,4,6,8) hardest two: 0 (0.5), 8 (0.4); class 1 hardest two: 1, 3
    assert out.tolist() == [0, 1, 3, 8]


def test_rows_in_any_order_are_keyed_by_idx():
    shuffled = table(order=[9, 3, 0, 7, 1, 8, 2, 6, 5, 4])
    assert select_indices(shuffled, fraction=0.3).tolist() == [1, 3, 7]


def test_ccs_covers_the_score_range():
    values = np.linspace(0, 1, 100)
    out = select_indices({"idx": np.arange(100), "el2n": values}, count=10, strategy="ccs", bins=10, seed=0)
    assert len(out) == 10
    assert sorted(set(np.minimum((values[out] * 10).astype(int), 9))) == list(range(10))  # one per stratum


def test_forgetting_ranks_never_learned_first():
    scores = {
        "idx": np.arange(4),
        "forgetting": np.array([3.0, 0.0, 1.0, 0.0]),
        "never_learned": np.array([False, True, False, False]),
    }
    assert select_indices(scores, column="forgetting", count=1).tolist() == [1]
    assert select_indices(scores, column="forgetting", count=1, never_learned_as_inf=False).tolist() == [0]


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan")])
def test_fraction_outside_range_is_refused(bad):
    with pytest.raises(ValueError, match=r"fraction=.* must be in \(0, 1\]"):
        kept(fraction=bad)


def test_unknown_strategy_and_column_are_named():
    with pytest.raises(ValueError, match="Unknown strategy 'hardset'.*hardest, easiest"):
        kept(fraction=0.5, strategy="hardset")
    from datadiet_hub.errors import ScoresNotFoundError

    with pytest.raises(ScoresNotFoundError, match="'grand' not found"):
        kept(fraction=0.5, column="grand")


def test_nan_scores_are_refused():
    from datadiet_hub.errors import ScoreMismatchError

    values = list(SCORES)
    values[4] = float("nan")
    with pytest.raises(ScoreMismatchError, match="NaN or infinite.*idx 4"):
        select_indices(table(values), fraction=0.5)


def test_budget_and_top_k_edges():
    assert budget(10, fraction=0.25) == 3  # 2.5 rounds half up
    assert budget(10) == 10
    assert top_k(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]
    assert top_k(np.array([1.0, 2.0]), 0).tolist() == []
