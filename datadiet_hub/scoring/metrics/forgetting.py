"""Forgetting events (Toneva et al., 2019), counted on the minibatches as trained.

An event is a transition from correctly to incorrectly classified between two consecutive presentations of an
example. Examples never classified correctly are flagged ``never_learned`` and keep a count of 0 (DeepCore's
convention); data_diet's "infinitely forgotten" ranking is recovered from the flag.
"""

from __future__ import annotations

import torch


class ForgettingTracker:
    """Per-example state over training: last correctness, forgetting count, whether ever learned."""

    def __init__(self, num_examples: int):
        self.previous = torch.zeros(num_examples, dtype=torch.bool)  # unseen counts as "not correct"
        self.counts = torch.zeros(num_examples, dtype=torch.int32)
        self.learned = torch.zeros(num_examples, dtype=torch.bool)

    def update(self, idx: torch.Tensor, correct: torch.Tensor) -> None:
        """Record one presentation of the examples ``idx`` with their correctness as trained."""
        idx, correct = idx.cpu(), correct.cpu().bool()
        forgotten = self.previous[idx] & ~correct
        self.counts[idx] += forgotten.to(torch.int32)
        self.learned[idx] |= correct
        self.previous[idx] = correct

    @property
    def never_learned(self) -> torch.Tensor:
        return ~self.learned

    def state(self) -> dict[str, torch.Tensor]:
        return {"previous": self.previous, "counts": self.counts, "learned": self.learned}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.previous, self.counts, self.learned = (
            state["previous"].clone(),
            state["counts"].clone(),
            state["learned"].clone(),
        )
