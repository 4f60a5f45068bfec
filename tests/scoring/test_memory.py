"""Activation-memory estimates: the measured sizes, the batch a scoring pass is lowered to, the refusal to train at a
batch that cannot fit, and a whole run under a small memory budget (same scores, no folder left on refusal)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from conftest import read_scores, tiny_config
from torch import nn

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring import memory
from datadiet_hub.scoring.run import run


def test_sizes_are_the_leaf_outputs_of_one_example():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    batch = {"pixel_values": torch.randn(5, 4), "labels": torch.zeros(5, dtype=torch.long), "idx": torch.arange(5)}
    sizes = memory.activation_sizes(model.train(), batch)
    assert sizes == memory.ActivationSizes(total=(8 + 8 + 2) * 4, largest=8 * 4)
    assert model.training  # its mode is restored


def test_scoring_batches_are_lowered_only_as_far_as_needed():
    sizes = memory.ActivationSizes(total=1000, largest=100)
    assert memory.fitting_batch_size(sizes, 256, grad=False, available=None) == 256  # unknown memory: as asked
    assert memory.fitting_batch_size(sizes, 256, grad=False, available=10**9) == 256
    for grad in (False, True):
        fits = memory.fitting_batch_size(sizes, 256, grad=grad, available=60_000)
        budget = memory.SCORE_SHARE * 60_000
        assert 1 <= fits < 256
        assert sizes.scoring(fits, grad) <= budget < sizes.scoring(fits + 1, grad)  # the largest batch that fits
    assert memory.fitting_batch_size(sizes, 256, grad=True, available=10) == 1  # never below one example
    assert memory.fitting_batch_size(sizes, 256, grad=True, available=60_000) < memory.fitting_batch_size(
        sizes, 256, grad=False, available=60_000
    )  # GraNd keeps the graph: fewer examples fit


def test_a_training_batch_that_cannot_fit_is_refused_with_the_one_that_does():
    sizes = memory.ActivationSizes(total=1000, largest=100)
    memory.check_training_fits(sizes, 128, None, "m")  # unknown memory: no opinion
    memory.check_training_fits(sizes, 128, 10**9, "m")
    with pytest.raises(
        InvalidArgumentError, match=r"--batch-size 128 .*--batch-size (\d+) fits.*--image-size"
    ) as info:
        memory.check_training_fits(sizes, 128, 100_000, "m")
    fits = int(re.search(r"--batch-size (\d+) fits", str(info.value)).group(1))
    budget = memory.TRAIN_SHARE * 100_000
    assert sizes.training(fits) <= budget < sizes.training(fits + 1)
    memory.check_training_fits(sizes, fits, 100_000, "m")  # the advice is taken: no error
    with pytest.raises(InvalidArgumentError, match="Not even one example fits"):
        memory.check_training_fits(sizes, 128, 1_000, "m")


def test_the_estimate_bounds_what_a_real_pass_allocates():
    """On the small CNN the estimates are at least the peak of the tensors a training step and a GraNd pass keep
    alive at once (torch's CPU allocation events)."""
    from datadiet_hub.scoring.metrics.grand import per_example_grad_norms
    from datadiet_hub.scoring.models import build_model

    model = build_model("cnn", num_classes=10, in_channels=1, image_size=28).eval()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    sizes = memory.activation_sizes(model, {"pixel_values": x})
    assert sizes.training(64) >= _allocated_peak(lambda: _train_step(model, x, y))
    assert sizes.scoring(64, grad=True) >= _allocated_peak(lambda: per_example_grad_norms(model, x, y))
    with torch.inference_mode():
        assert sizes.scoring(64, grad=False) >= _allocated_peak(lambda: model(x))


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    torch.nn.functional.cross_entropy(model.train()(x), y).backward()
    model.zero_grad(set_to_none=True)
    model.eval()


def _allocated_peak(fn) -> int:
    """The largest total size of the tensors alive at once while ``fn`` runs, from the profiler's allocation events."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profile:
        fn()
    alive, peak = 0, 0
    for event in sorted(profile.events(), key=lambda e: e.time_range.start):
        alive += event.self_cpu_memory_usage
        peak = max(peak, alive)
    return peak


def test_a_run_under_a_small_budget_scores_the_same_and_refuses_to_train_what_cannot_fit(
    tiny_parquet, tmp_path, monkeypatch, caplog
):
    full = tmp_path / "full"
    run(tiny_config(full, tiny_parquet, seeds=[0], scores=["el2n", "grand"]), progress=False)
    sizes_seen = {}
    real_sizes = memory.activation_sizes

    def spy(model, batch):
        sizes_seen["sizes"] = real_sizes(model, batch)
        return sizes_seen["sizes"]

    monkeypatch.setattr(memory, "activation_sizes", spy)
    # room for 3 examples of the GraNd pass and 9 of EL2N, but enough to train at batch 32
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * real_budget(sizes_seen))
    small = tmp_path / "small"
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.run"):
        run(tiny_config(small, tiny_parquet, seeds=[0], scores=["el2n", "grand"]), progress=False)
    assert "--grand-batch-size 32 lowered to" in caplog.text
    for column in ("el2n", "grand"):
        np.testing.assert_allclose(
            read_scores(small, "cnn-ep1")[column], read_scores(full, "cnn-ep1")[column], rtol=1e-4, atol=1e-6
        )
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    refused = tmp_path / "refused"
    with pytest.raises(InvalidArgumentError, match="--batch-size 32 needs about"):
        run(tiny_config(refused, tiny_parquet, seeds=[0]), progress=False)
    assert not refused.exists()  # bad input leaves no folder behind


def real_budget(seen: dict) -> int:
    """Memory in which a batch-32 training step fits but a GraNd batch of 32 does not (half of it per pass)."""
    sizes: memory.ActivationSizes = seen["sizes"]
    return max(sizes.training(32), sizes.scoring(3, grad=True))
