"""Properties of the selection strategies on arbitrary score vectors (hypothesis): exact counts, subsets,
deterministic ties filled by the documented rule (lower position for "index"; a seeded hash order for "random";
a secondary column), and class-balanced budgets."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from datadiet_hub import Selection, select_indices
from datadiet_hub.ranking import TieBreak, _mix, order_hardest, top_k
from datadiet_hub.selection import budget
from datadiet_hub.strategies import Params, class_balanced, class_quotas, select


def sel(strategy="hardest", **kwargs):
    """(strategy, params) of a validated Selection, for the strategy functions."""
    selection = Selection(strategy=strategy, tie_break="index", **kwargs)
    return selection.strategy, selection.params()


SETTINGS = settings(max_examples=150, deadline=None)
# few distinct values, so ties are common; plus arbitrary finite float32 values
tied = st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]), min_size=0, max_size=80)
free = st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=0, max_size=80)
score_lists = st.one_of(tied, free)


@st.composite
def scores_and_k(draw, min_size=0):
    values = np.asarray(draw(score_lists.filter(lambda v: len(v) >= min_size)), dtype=np.float32)
    k = draw(st.integers(0, len(values)))
    return values, k


def is_sorted_subset(kept: np.ndarray, n: int) -> bool:
    return (
        kept.dtype == np.int64
        and bool(np.all(np.diff(kept) > 0))
        and (len(kept) == 0 or (kept[0] >= 0 and kept[-1] < n))
    )


@SETTINGS
@given(scores_and_k(), st.booleans())
def test_hardest_and_easiest_are_exact_and_break_ties_by_position(case, largest):
    values, k = case
    kept = top_k(values, k, largest=largest)
    assert len(kept) == k and is_sorted_subset(kept, len(values))
    reference = np.argsort(-values if largest else values, kind="stable")[:k]  # stable: ties -> lower position
    assert kept.tolist() == sorted(reference.tolist())
    assert np.array_equal(kept, top_k(values.copy(), k, largest=largest))  # deterministic


@SETTINGS
@given(scores_and_k(min_size=1), st.floats(0, 0.99))
def test_offset_is_the_stable_order_window(case, offset):
    values, k = case
    skip = math.floor(offset * len(values) + 0.5)
    k = min(k, len(values) - skip)
    kept = select(values, k, *sel("offset", skip=offset))
    assert len(kept) == k and is_sorted_subset(kept, len(values))
    assert kept.tolist() == sorted(order_hardest(values)[skip : skip + k].tolist())


@SETTINGS
@given(scores_and_k(), st.integers(0, 2**32 - 1))
def test_random_is_exact_subset_and_seeded(case, seed):
    values, k = case
    kept = select(values, k, *sel("random", seed=seed))
    assert len(kept) == k and is_sorted_subset(kept, len(values))
    assert np.array_equal(kept, select(values, k, *sel("random", seed=seed)))


@SETTINGS
@given(scores_and_k(min_size=1), st.floats(0, 0.5), st.integers(1, 12), st.integers(0, 1000))
def test_ccs_is_exact_subset_without_the_dropped_hardest(case, beta, bins, seed):
    values, k = case
    drop = math.floor(beta * len(values) + 0.5)
    k = min(k, len(values) - drop)
    kept = select(values, k, *sel("ccs", beta=beta, bins=bins, seed=seed))
    assert len(kept) == k and is_sorted_subset(kept, len(values))
    assert not set(kept.tolist()) & set(order_hardest(values)[:drop].tolist())
    assert np.array_equal(kept, select(values, k, *sel("ccs", beta=beta, bins=bins, seed=seed)))


@SETTINGS
@given(st.data())
def test_class_balanced_counts_follow_the_class_proportions(data):
    n = data.draw(st.integers(1, 80))
    labels = np.asarray(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    values = np.asarray(
        data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=n, max_size=n)), dtype=np.float32
    )
    k = data.draw(st.integers(0, n))
    strategy = data.draw(st.sampled_from(["hardest", "easiest", "random"]))
    kept = class_balanced(values, labels, k, *sel(strategy, seed=1))
    assert len(kept) == k and is_sorted_subset(kept, n)
    classes, inverse, quota = class_quotas(labels, k)
    sizes = np.bincount(inverse)
    assert quota.sum() == k and np.all(quota <= sizes)
    assert np.all(np.abs(quota - k * sizes / n) < 1)  # largest remainder: never off by a whole row
    counts = np.bincount(inverse[kept], minlength=len(classes))
    assert counts.tolist() == quota.tolist()
    if strategy == "hardest":  # within each class: that class's hardest rows, ties to the lower position
        for c in range(len(classes)):
            rows = np.flatnonzero(inverse == c)
            expect = rows[np.argsort(-values[rows], kind="stable")[: quota[c]]]
            assert sorted(expect.tolist()) == [r for r in kept.tolist() if inverse[r] == c]
    assert np.array_equal(kept, class_balanced(values, labels, k, *sel(strategy, seed=1)))


@SETTINGS
@given(st.integers(0, 10**7), st.floats(1e-9, 1.0))
def test_budget_rounds_half_up_within_bounds(n, fraction):
    k = budget(n, fraction=fraction)
    assert 0 <= k <= n and k == min(n, math.floor(fraction * n + 0.5))


@SETTINGS
@given(scores_and_k(min_size=1), st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.sampled_from(["hardest", "random"]))
def test_thresholds_then_budget_pick_only_rows_inside(case, low, strategy):
    values, _ = case
    inside = np.flatnonzero(values >= low)
    k = len(inside) // 2
    table = {"idx": np.arange(len(values)), "el2n": values}
    kept = select_indices(table, min_score=low, count=k, strategy=strategy, tie_break="index")
    assert len(kept) == k and set(kept.tolist()) <= set(inside.tolist())


@SETTINGS
@given(scores_and_k())
def test_row_order_of_the_table_does_not_matter(case):
    values, k = case
    order = np.random.default_rng(len(values)).permutation(len(values))
    table = {"idx": order, "el2n": values[order]}
    assert np.array_equal(select_indices(table, count=k, tie_break="index"), top_k(values, k))
    assert np.array_equal(select_indices(table, count=k, seed=3), top_k(values, k, tie=TieBreak("random", 3)))


def test_top_k_matches_argpartition_at_scale():
    values = np.random.default_rng(0).random(2_000_000).astype(np.float32)
    values[::1000] = 0.5  # plenty of ties at the boundary region
    k = 1_000_000
    kept = top_k(values, k)
    assert len(kept) == k and is_sorted_subset(kept, len(values))
    assert kept.tolist() == sorted(np.argsort(-values, kind="stable")[:k].tolist())


def random_order(values: np.ndarray, seed: int) -> np.ndarray:
    """The documented "random" rule, spelled out: by score descending, then by splitmix64(seed, row), then row."""
    rows = np.arange(len(values))
    return np.lexsort((rows, _mix(seed, rows), -values))


@SETTINGS
@given(scores_and_k(), st.integers(0, 2**40), st.sampled_from(["hardest", "easiest"]))
def test_random_tie_break_fills_ties_by_the_seeded_order(case, seed, strategy):
    values, k = case
    table = {"idx": np.arange(len(values)), "el2n": values}
    kept = select_indices(table, count=k, strategy=strategy, seed=seed)
    assert len(kept) == k and is_sorted_subset(kept, len(values))
    assert np.array_equal(kept, select_indices(table, count=k, strategy=strategy, seed=seed))  # deterministic
    order = random_order(values if strategy == "hardest" else -values, seed)
    assert kept.tolist() == sorted(order[:k].tolist())


@SETTINGS
@given(scores_and_k(min_size=1), st.floats(0, 0.9), st.integers(0, 1000))
def test_offset_window_under_the_random_rule(case, skip, seed):
    values, k = case
    n_skip = math.floor(skip * len(values) + 0.5)
    k = min(k, len(values) - n_skip)
    kept = select(values, k, "offset", Params(skip=skip, seed=seed), TieBreak("random", seed))
    assert kept.tolist() == sorted(random_order(values, seed)[n_skip : n_skip + k].tolist())


@SETTINGS
@given(st.data())
def test_secondary_column_fills_ties_by_that_column(data):
    n = data.draw(st.integers(1, 60))
    primary = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=n, max_size=n)), np.float32)
    second = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=n, max_size=n)), np.float32)
    k = data.draw(st.integers(0, n))
    table = {"idx": np.arange(n), "forgetting": primary, "el2n": second}
    kept = select_indices(table, column="forgetting", count=k, tie_break="el2n")
    reference = np.lexsort((np.arange(n), -second, -primary))[:k]  # primary, then el2n harder, then lower row
    assert kept.tolist() == sorted(reference.tolist())
    assert np.array_equal(
        order_hardest(primary, TieBreak("el2n", secondary=second)), np.lexsort((np.arange(n), -second, -primary))
    )


def test_random_tie_break_at_scale_is_linear_in_the_ties():
    values = np.random.default_rng(1).integers(0, 20, 2_000_000).astype(np.float32)  # forgetting-like: huge ties
    kept = top_k(values, 1_000_000, tie=TieBreak("random", 7))
    assert len(kept) == 1_000_000 and is_sorted_subset(kept, len(values))
    boundary = np.sort(values)[::-1][999_999]
    assert (values[kept] >= boundary).all() and (values[kept] > boundary).sum() == (values > boundary).sum()
    assert np.array_equal(kept, top_k(values, 1_000_000, tie=TieBreak("random", 7)))


@SETTINGS
@given(st.data())
def test_class_balanced_random_ties_follow_the_whole_tables_order(data):
    n = data.draw(st.integers(1, 60))
    labels = np.asarray(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    values = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)), np.float32)
    k, seed = data.draw(st.integers(0, n)), data.draw(st.integers(0, 10**6))
    table = {"idx": np.arange(n), "el2n": values, "label": labels}
    kept = select_indices(table, count=k, class_balanced=True, seed=seed)
    assert np.array_equal(kept, select_indices(table, count=k, class_balanced=True, seed=seed))
    _, inverse, quota = class_quotas(labels, k)
    order = random_order(values, seed)  # the whole table's order, restricted to each class
    for c in range(len(quota)):
        expect = [r for r in order.tolist() if inverse[r] == c][: quota[c]]
        assert sorted(expect) == [r for r in kept.tolist() if inverse[r] == c]
