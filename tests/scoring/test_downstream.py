"""Downstream training used by the demo and the experiments: deterministic, exact step count, cosine schedule."""

import pytest
import torch

from scoring.config import ScoringConfig
from scoring.data import Preprocess, TensorData
from scoring.downstream import cosine_lr, train_and_evaluate


def tiny(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = (torch.rand(n, 1, 8, 8, generator=g) * 60 + labels.view(-1, 1, 1, 1) * 60).to(torch.uint8)
    return TensorData(images, labels, [], 3)


def test_same_seed_same_result_and_exact_steps():
    cfg = ScoringConfig(model="mlp", batch_size=16, lr=0.05)
    train, test = tiny(), tiny(seed=1)
    pre = Preprocess([0.5], [0.25], "none")
    a = train_and_evaluate(cfg, train, test, pre, seed=3, steps=10, progress=False, device="cpu")
    b = train_and_evaluate(cfg, train, test, pre, seed=3, steps=10, progress=False, device="cpu")
    assert a.test_accuracy == b.test_accuracy and a.steps == 10 and a.examples == 64
    assert a.test_accuracy > 0.5  # the classes are separable by brightness


def test_cosine_schedule_and_bad_schedule():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
        train_and_evaluate(
            ScoringConfig(model="mlp"),
            tiny(),
            tiny(),
            Preprocess([0.5], [0.25], "none"),
            seed=0,
            steps=1,
            schedule="linear",
            progress=False,
        )
