"""Train a model on a (pruned) training set and measure test accuracy: the evaluation behind the demo and the
experiments. Matched on iterations (the paper's protocol) or on epochs, as the caller chooses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.data import Preprocess, TensorData
from datadiet_hub.scoring.loops import (
    StepOutput,
    correct,
    cosine_lr,
    evaluate,
    ordered_batches,
    shuffled_batches,
    train_loop,
)
from datadiet_hub.scoring.placement import place
from datadiet_hub.scoring.train import lr_at, make_model, make_optimizer, resolved_for, seed_generator

__all__ = ["TrainResult", "accuracy", "cosine_lr", "default_device", "train_and_evaluate"]

SCHEDULES = ("cosine", "milestones")


@dataclass
class TrainResult:
    test_accuracy: float
    examples: int
    steps: int
    wall_time_s: float


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def accuracy(model: torch.nn.Module, data: TensorData, preprocess: Preprocess, batch_size: int = 1024) -> float:
    """Share of ``data`` that ``model`` classifies correctly (eval mode, un-augmented)."""
    device = next(model.parameters()).device
    batches = ordered_batches(data.images, data.labels, preprocess, batch_size=batch_size, device=device)
    return int(evaluate(model, batches, correct).sum()) / max(len(data), 1)


def train_and_evaluate(
    cfg: ScoringConfig,
    train: TensorData,
    test: TensorData,
    preprocess: Preprocess,
    *,
    seed: int,
    steps: int,
    desc: str = "train",
    progress: bool = True,
    schedule: str = "cosine",
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``cfg.model`` from ``seed`` for exactly ``steps`` SGD steps on ``train`` (reshuffled each pass) and
    return its accuracy on ``test``. ``schedule="cosine"`` (default) anneals the learning rate to 0 over the run, so
    the final accuracy is not the noise of a large constant step; ``"milestones"`` uses ``cfg.lr_milestones``."""
    if schedule not in SCHEDULES:
        raise InvalidArgumentError(f"Unknown schedule {schedule!r}. Choose between {', '.join(SCHEDULES)}.")
    started = time.perf_counter()
    cfg = resolved_for(cfg, train)  # the image family's optimizer and lr for what cfg leaves out
    base_lr = cfg.lr
    assert base_lr is not None
    device = torch.device(device) if device is not None else default_device()
    model = place(make_model(cfg, train, seed), cfg, device)
    optimizer = make_optimizer(cfg, model)
    spe = math.ceil(len(train) / cfg.batch_size)

    def lr(step: int) -> float:
        return cosine_lr(base_lr, step, steps) if schedule == "cosine" else lr_at(cfg, step // spe)

    batches = shuffled_batches(
        train.images.to(device),
        train.labels.to(device),
        preprocess,
        batch_size=cfg.batch_size,
        steps=range(steps),
        order=lambda epoch: seed_generator("downstream-order", seed, epoch),
        augment=lambda step: seed_generator("downstream-augment", seed, step),
    )
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=False) as bar:

        def tick(_: StepOutput) -> None:
            bar.update(1)

        train_loop(model, optimizer, batches, lr=lr, callbacks=[tick])
    return TrainResult(accuracy(model, test, preprocess), len(train), steps, time.perf_counter() - started)
