"""Each strategy keeps exactly the expected rows on a hand-checkable example (ties by lower idx with
``tie_break="index"``); the seeded random and secondary-column tie-breaks; ``Selection`` and the registry."""

import numpy as np
import pytest

from datadiet_hub import Selection, select_indices
from datadiet_hub.errors import ColumnNotFoundError, InvalidArgumentError
from datadiet_hub.ranking import top_k
from datadiet_hub.selection import budget
from datadiet_hub.strategies import STRATEGIES, names, register

# idx:          0    1    2    3    4    5    6    7    8    9
SCORES = [0.5, 0.9, 0.1, 0.9, 0.3, 0.7, 0.2, 0.9, 0.4, 0.6]
LABELS = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]


def table(values=SCORES, labels=LABELS, order=None):
    idx = np.arange(len(values)) if order is None else np.asarray(order)
    return {"idx": idx, "el2n": np.asarray(values, dtype=np.float32)[idx], "label": np.asarray(labels)[idx]}


def kept(**kwargs):
    kwargs.setdefault("tie_break", "index")
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
    assert kept(fraction=0.3, strategy="offset", skip=0.2) == [5, 7, 9]
    assert kept(fraction=0.3, strategy="hardest", skip=0.2) == [5, 7, 9]
    with pytest.warns(DeprecationWarning, match="offset= is deprecated; use skip=0.2"):
        assert kept(fraction=0.3, strategy="offset", offset=0.2) == [5, 7, 9]  # the old name still works


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
    out = select_indices(table(), fraction=0.4, class_balanced=True, tie_break="index")
    # class 0 (idx 0,2,4,6,8) hardest two: 0 (0.5), 8 (0.4); class 1 hardest two: 1, 3
    assert out.tolist() == [0, 1, 3, 8]


def test_rows_in_any_order_are_keyed_by_idx():
    shuffled = table(order=[9, 3, 0, 7, 1, 8, 2, 6, 5, 4])
    assert select_indices(shuffled, fraction=0.3, tie_break="index").tolist() == [1, 3, 7]


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


# -- tie-breaks ------------------------------------------------------------------------------------------------------


def test_random_tie_break_is_seeded_and_not_always_the_lower_rows():
    values = np.zeros(200, dtype=np.float32)  # all tied
    scores = {"idx": np.arange(200), "el2n": values}
    picks = {tuple(select_indices(scores, count=20, seed=s).tolist()) for s in range(5)}
    assert len(picks) == 5  # each seed its own order
    first = select_indices(scores, count=20, seed=0)
    assert np.array_equal(first, select_indices(scores, count=20, seed=0))  # deterministic
    assert first.tolist() != list(range(20))  # not the lowest rows
    assert select_indices(scores, count=20, tie_break="index").tolist() == list(range(20))


def test_default_tie_break_is_random():
    values = np.zeros(50, dtype=np.float32)
    scores = {"idx": np.arange(50), "el2n": values}
    assert Selection().tie_break == "random"
    assert select_indices(scores, count=5).tolist() == select_indices(scores, count=5, tie_break="random").tolist()


def test_secondary_column_breaks_ties():
    scores = {
        "idx": np.arange(6),
        "forgetting": np.array([2, 1, 1, 1, 0, 1], dtype=np.float32),
        "el2n": np.array([0.0, 0.1, 0.9, 0.5, 0.3, 0.9], dtype=np.float32),
    }
    # hardest 3: row 0 (2 forgets), then of the tied 1s the highest el2n: rows 2 and 5 (0.9; equal -> lower row)
    assert select_indices(scores, column="forgetting", count=3, tie_break="el2n").tolist() == [0, 2, 5]
    # easiest 2: row 4 (0), then of the tied 1s the lowest el2n: row 1
    assert select_indices(scores, column="forgetting", count=2, strategy="easiest", tie_break="el2n").tolist() == [
        1,
        4,
    ]
    with pytest.raises(ColumnNotFoundError, match="tie_break='grand' names no column"):
        select_indices(scores, column="forgetting", count=2, tie_break="grand")


# -- Selection and the registry --------------------------------------------------------------------------------------


def test_selection_object_equals_keyword_arguments():
    sel = Selection(fraction=0.3, strategy="offset", skip=0.2, tie_break="index")
    assert select_indices(table(), selection=sel).tolist() == kept(fraction=0.3, strategy="offset", skip=0.2)
    with pytest.raises(InvalidArgumentError, match="not both"):
        select_indices(table(), selection=sel, fraction=0.5)
    with pytest.raises(AttributeError):
        sel.fraction = 0.5  # frozen


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(skip=0.1, strategy="easiest"), "skip=0.1 does not apply to strategy='easiest'"),
        (dict(beta=0.1, strategy="hardest"), "beta=0.1 does not apply"),
        (dict(skip=1.0), r"skip=1.0 must be in \[0, 1\)"),
        (dict(fraction=0.5, count=3), "either fraction"),
        (dict(bins=0, strategy="ccs"), "bins=0 must be a positive integer"),
        (dict(min_score=2.0, max_score=1.0), "swap them"),
        (dict(tie_break="el2n"), "is the ranked column itself"),
        (dict(strategy="hardset"), "Unknown strategy 'hardset'"),
    ],
)
def test_selection_validates_on_construction(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match) as info:
        Selection(**kwargs)
    assert isinstance(info.value, ValueError)


def test_offset_alias_maps_to_beta_for_ccs():
    with pytest.warns(DeprecationWarning, match="use beta=0.1"):
        sel = Selection.from_kwargs(strategy="ccs", offset=0.1, count=3)
    assert sel.beta == 0.1 and sel.skip == 0.0


def test_the_registry_drives_the_cli_choices():
    from datadiet_hub.cli import build_parser

    assert names()[:5] == ("hardest", "easiest", "random", "offset", "ccs")
    prune_parser = build_parser()._subparsers._group_actions[0].choices["prune"]
    strategy = next(a for a in prune_parser._actions if a.dest == "strategy")
    assert tuple(strategy.choices) == names()

    @register("every-other", help="test strategy")
    def every_other(scores, k, params, tie):
        return np.arange(0, len(scores), 2)[:k]

    try:
        assert kept(count=3, strategy="every-other") == [0, 2, 4]
        new_parser = build_parser()._subparsers._group_actions[0].choices["prune"]
        assert "every-other" in next(a for a in new_parser._actions if a.dest == "strategy").choices
    finally:
        del STRATEGIES["every-other"]
