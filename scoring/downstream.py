"""Train a model on a (pruned) training set and measure test accuracy: the evaluation behind the demo and the
experiments. Matched on iterations (the paper's protocol) or on epochs, as the caller chooses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import ScoringConfig
from .data import Preprocess, TensorData
from .train import lr_at, make_model, make_optimizer, seed_generator


@dataclass
class TrainResult:
    test_accuracy: float
    examples: int
    steps: int
    wall_time_s: float


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorData, preprocess: Preprocess, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        logits = model(preprocess(data.images[start : start + batch_size]))
        correct += int((logits.argmax(1) == data.labels[start : start + batch_size]).sum())
    return correct / max(len(data), 1)


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
) -> TrainResult:
    """Train ``cfg.model`` from ``seed`` for exactly ``steps`` SGD steps on ``train`` (reshuffled each pass) and
    return its accuracy on ``test``. The learning-rate milestones of ``cfg`` are read in epochs of ``train``."""
    started = time.perf_counter()
    model = make_model(cfg, train, seed)
    optimizer = make_optimizer(cfg, model)
    spe = math.ceil(len(train) / cfg.batch_size)
    step = 0
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=False)
    model.train()
    while step < steps:
        epoch = step // spe
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, epoch)
        order = torch.randperm(len(train), generator=seed_generator(seed, 7, epoch))
        for b in range(spe):
            if step >= steps:
                break
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = preprocess(train.images[idx], train=True, generator=seed_generator(seed, 8, step))
            loss = F.cross_entropy(model(x), train.labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
    bar.close()
    return TrainResult(accuracy(model, test, preprocess), len(train), steps, time.perf_counter() - started)
