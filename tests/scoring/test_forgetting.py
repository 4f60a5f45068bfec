"""Forgetting events (Toneva et al.): scripted sequences, the never-learned flag, state round-trips, and the
engine counting events on the trained minibatches up to each score time only."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import read_scores, tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

from datadiet_hub.scoring.metrics.forgetting import ForgettingTracker


def present(tracker: ForgettingTracker, example: int, sequence: list[int]) -> None:
    for correct in sequence:
        tracker.update(torch.tensor([example]), torch.tensor([bool(correct)]))


def reference_counts(sequence: list[int]) -> tuple[int, bool]:
    """Correct->incorrect transitions between consecutive presentations; learned = ever correct."""
    forgets = sum(1 for prev, cur in itertools.pairwise(sequence) if prev and not cur)
    return forgets, any(sequence)


@pytest.mark.parametrize(
    ("sequence", "forgets", "never_learned"),
    [
        ([1, 0, 1, 0], 2, False),  # correct, wrong, correct, wrong: two forgetting events
        ([0, 0, 0, 0], 0, True),
        ([0, 1, 1, 1], 0, False),  # first presentation wrong is not a forget: nothing learned yet
        ([1, 1, 0, 0, 1], 1, False),
        ([0, 1, 0, 1, 0, 1], 2, False),
        ([1], 0, False),
        ([], 0, True),  # never presented: never learned
    ],
)
def test_scripted_sequences(sequence, forgets, never_learned):
    tracker = ForgettingTracker(3)
    present(tracker, 1, sequence)
    assert tracker.counts.tolist() == [0, forgets, 0]
    assert tracker.never_learned.tolist() == [True, never_learned, True]


def test_batched_updates_touch_only_their_rows():
    tracker = ForgettingTracker(4)
    tracker.update(torch.tensor([0, 2]), torch.tensor([True, True]))
    tracker.update(torch.tensor([2, 0, 3]), torch.tensor([False, True, False]))
    tracker.update(torch.tensor([1]), torch.tensor([False]))
    assert tracker.counts.tolist() == [0, 0, 1, 0]
    assert tracker.never_learned.tolist() == [False, True, False, True]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=0, max_size=12), min_size=1, max_size=6), st.integers(0, 2**31 - 1))
def test_matches_reference_in_random_batches(sequences, seed):
    """Each example has its own sequence; presentations are interleaved in random minibatches (each example at
    most once per batch, as in an epoch) -- the counts only depend on each example's own order."""
    n = len(sequences)
    tracker, pos = ForgettingTracker(n), [0] * n
    rng = np.random.default_rng(seed)
    while any(pos[i] < len(sequences[i]) for i in range(n)):
        pending = [i for i in range(n) if pos[i] < len(sequences[i])]
        batch = [i for i in pending if rng.random() < 0.6] or pending[:1]
        rng.shuffle(batch)
        tracker.update(torch.tensor(batch), torch.tensor([sequences[i][pos[i]] for i in batch]))
        for i in batch:
            pos[i] += 1
    for i, sequence in enumerate(sequences):
        forgets, learned = reference_counts([int(c) for c in sequence])
        assert int(tracker.counts[i]) == forgets
        assert bool(tracker.never_learned[i]) == (not learned)


def test_state_round_trip_continues_exactly():
    sequence = [1, 0, 1, 1, 0, 1, 0]
    whole = ForgettingTracker(1)
    present(whole, 0, sequence)
    first = ForgettingTracker(1)
    present(first, 0, sequence[:3])  # ends correct: the next wrong must still count
    resumed = ForgettingTracker(1)
    resumed.load_state({k: v.clone() for k, v in first.state().items()})
    present(resumed, 0, sequence[3:])
    assert resumed.counts.tolist() == whole.counts.tolist() == [3]
    assert resumed.learned.tolist() == whole.learned.tolist()


def test_engine_counts_up_to_each_score_time_on_trained_minibatches(tmp_path, tiny_parquet, monkeypatch):
    """Record every (step, rows, correct) the engine feeds the tracker; the forgetting column at step t must be
    the reference count over steps < t, per seed; never_learned is 'some seed not yet correct by t'."""
    from datadiet_hub.scoring import run as run_module
    from datadiet_hub.scoring.metrics import forgetting

    log: list[list[tuple[list[int], list[bool]]]] = []  # one list per tracker, in creation order
    original = forgetting.ForgettingTracker.update

    def recording_update(self, idx, correct):
        # not keyed by id(self): a finished seed's tracker can be freed and its id reused by the next one
        if not hasattr(self, "_test_log"):
            self._test_log = []
            log.append(self._test_log)
        self._test_log.append((idx.tolist(), correct.tolist()))
        return original(self, idx, correct)

    monkeypatch.setattr(forgetting.ForgettingTracker, "update", recording_update)
    at = [3, 10, 14]  # mid-epoch, mid-epoch of epoch 2, end of epoch 2 (7 steps per epoch)
    cfg = tiny_config(tmp_path / "out", tiny_parquet, scores=["el2n", "forgetting"], at=[0, *at], unit="step", lr=0.2)
    run_module.run(cfg, progress=False)
    assert len(log) == 2, "one tracker per seed"
    per_seed_steps = log  # seeds trained in order 0, 1 on one process
    n = 203
    for t in at:
        name = f"cnn-step{t}" if t % 7 else f"cnn-ep{t // 7}"
        table = read_scores(tmp_path / "out", name)
        expected_counts, expected_never = [], []
        for steps in per_seed_steps:
            assert len(steps) == 14
            seqs: list[list[int]] = [[] for _ in range(n)]
            for rows, correct in steps[:t]:
                for r, c in zip(rows, correct):
                    seqs[r].append(int(c))
            refs = [reference_counts(s) for s in seqs]
            expected_counts.append([f for f, _ in refs])
            expected_never.append([not learned for _, learned in refs])
        counts = np.array(expected_counts, dtype=np.float32).T  # [N, seeds]
        np.testing.assert_array_equal(table["forgetting_per_seed"], counts)
        np.testing.assert_allclose(table["forgetting"], counts.mean(1), rtol=1e-6)
        np.testing.assert_array_equal(table["never_learned"], np.array(expected_never).T.any(1))
    late = read_scores(tmp_path / "out", "cnn-ep2")
    assert late["forgetting"].sum() > 0, "lr 0.2 on noisy data should produce some forgetting events"
    assert "forgetting" not in read_scores(tmp_path / "out", "cnn-ep0"), "no forgetting at init"
