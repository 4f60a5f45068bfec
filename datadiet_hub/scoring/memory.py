"""Activation-memory estimates, so that a run on large images fails with a message instead of being killed.

On a CPU an allocation that does not fit is not an exception: the operating system kills the process, with no word
of why. The CIFAR-style ResNet-18 keeps its input resolution through stage 1, so on 512x512 images one example's
activations take about 1.4 GB, and the default batches (128 to train, 256 to score) need hundreds of GB.

One forward of a single example under ``no_grad`` measures the bytes of every leaf module's output. From those:

- training keeps about all of them for the backward: ``TRAIN_FACTOR`` x their sum per example;
- an eval pass (EL2N) keeps a few layers alive at a time: ``EVAL_FACTOR`` x the largest output, at most the sum
  (ResNet-18's residual branches keep more alive than a chain);
- a GraNd pass keeps the graph and the hooks' inputs: ``GRAND_FACTOR`` x the sum.

The factors sit above the peaks measured on the small CNN and the CIFAR ResNet-18 (training 0.98-1.47x the sum, an
eval forward 3.1-5.7x the largest output, GraNd 1.05-1.98x the sum: ``benchmarks/results/memory_estimates.txt``).

Training at a batch that does not fit raises :class:`InvalidArgumentError` naming the batch that would (the batch is
part of the recipe, so it is not changed silently); scoring passes, whose batch size does not change the scores,
get a smaller batch and a log line.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError

from .forward import logits_of
from .loops import model_inputs

logger = logging.getLogger(__name__)

TRAIN_FACTOR = 2.0
EVAL_FACTOR = 8
GRAND_FACTOR = 2.5
TRAIN_SHARE = 0.9
"""Training must fit in this share of the memory available when the run starts."""
SCORE_SHARE = 0.5
"""A scoring pass's batch is lowered until it fits in this share."""


@dataclass(frozen=True)
class ActivationSizes:
    """Bytes of the leaf modules' outputs for one example: their sum and the largest."""

    total: int
    largest: int

    def training(self, batch: int) -> int:
        return math.ceil(TRAIN_FACTOR * self.total * batch)

    def scoring(self, batch: int, grad: bool) -> int:
        per_example = GRAND_FACTOR * self.total if grad else min(self.total, EVAL_FACTOR * self.largest)
        return math.ceil(per_example * batch)


def activation_sizes(model: nn.Module, batch: Mapping[str, Any]) -> ActivationSizes:
    """Run ``model`` on the first example of ``batch`` (a batch as the loaders yield it) and measure its outputs."""
    one = {k: v[:1] if torch.is_tensor(v) else v for k, v in batch.items()}
    sizes: list[int] = []

    def record(module: nn.Module, args: tuple, output: Any) -> None:
        tensors = [output] if torch.is_tensor(output) else [t for t in _flat(output) if torch.is_tensor(t)]
        sizes.append(sum(t.numel() * t.element_size() for t in tensors))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            logits_of(model, model_inputs(one))
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return ActivationSizes(total=sum(sizes), largest=max(sizes, default=0))


def _flat(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, (tuple, list)):
        return list(value)
    return list(getattr(value, "values", lambda: [])())


def available_bytes(device: torch.device) -> int | None:
    """Memory this process may still use: free GPU memory, or the machine's ``MemAvailable`` shared by the local
    processes (``LOCAL_WORLD_SIZE``); ``None`` where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    return available // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def check_training_fits(sizes: ActivationSizes, batch_size: int, available: int | None, what: str) -> None:
    """Raise when a training batch of ``batch_size`` would not fit in :data:`TRAIN_SHARE` of ``available``."""
    if available is None or sizes.training(batch_size) <= TRAIN_SHARE * available:
        return
    fits = max(0, int(TRAIN_SHARE * available // max(1, sizes.training(1))))
    advice = f"--batch-size {fits} fits" if fits else "not even one example fits"
    needed = format_bytes(sizes.training(batch_size))
    raise InvalidArgumentError(
        f"Training {what} at --batch-size {batch_size} needs about {needed} of activations; "
        f"{format_bytes(available)} are available, and the operating system would kill the run. "
        f"{advice.capitalize()}; or lower --image-size (the images are resized to it), or choose a smaller --model.",
        value=batch_size,
    )


def fitting_batch_size(sizes: ActivationSizes, requested: int, grad: bool, available: int | None) -> int:
    """``requested``, or the largest batch under it whose scoring pass fits in :data:`SCORE_SHARE` of ``available``
    (at least 1)."""
    if available is None or sizes.scoring(requested, grad) <= SCORE_SHARE * available:
        return requested
    return max(1, min(requested, int(SCORE_SHARE * available // max(1, sizes.scoring(1, grad)))))


def format_bytes(n: int) -> str:
    """``1.4 GB``, ``176 MB``, ``12 kB`` or ``800 B``."""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if unit == "GB" else f"{n / size:.0f} {unit}"
    return f"{n} B"
