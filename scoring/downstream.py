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


def cosine_lr(base: float, step: int, total: int) -> float:
    return 0.5 * base * (1 + math.cos(math.pi * step / max(total, 1)))


@dataclass
class TrainResult:
    test_accuracy: float
    examples: int
    steps: int
    wall_time_s: float


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorData, preprocess: Preprocess, batch_size: int = 1024) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(data), batch_size):
        logits = model(preprocess(data.images[start : start + batch_size].to(device)))
        correct += int((logits.argmax(1).cpu() == data.labels[start : start + batch_size]).sum())
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
    schedule: str = "cosine",
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``cfg.model`` from ``seed`` for exactly ``steps`` SGD steps on ``train`` (reshuffled each pass) and
    return its accuracy on ``test``. ``schedule="cosine"`` (default) anneals the learning rate to 0 over the run, so
    the final accuracy is not the noise of a large constant step; ``"milestones"`` uses ``cfg.lr_milestones``."""
    if schedule not in ("cosine", "milestones"):
        raise ValueError(f"Unknown schedule {schedule!r}. Choose between cosine, milestones.")
    started = time.perf_counter()
    device = torch.device(device) if device is not None else default_device()
    model = make_model(cfg, train, seed).to(device)
    images, labels = train.images.to(device), train.labels.to(device)
    optimizer = make_optimizer(cfg, model)
    spe = math.ceil(len(train) / cfg.batch_size)
    step = 0
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=False)
    model.train()
    while step < steps:
        epoch = step // spe
        order = torch.randperm(len(train), generator=seed_generator("downstream-order", seed, epoch))
        for b in range(spe):
            if step >= steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(cfg.lr, step, steps) if schedule == "cosine" else lr_at(cfg, epoch)
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            idx = idx.to(device)
            x = preprocess(images[idx], train=True, generator=seed_generator("downstream-augment", seed, step))
            loss = F.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
    bar.close()
    return TrainResult(accuracy(model, test, preprocess), len(train), steps, time.perf_counter() - started)
