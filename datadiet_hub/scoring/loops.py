"""The one SGD training loop and the one evaluation loop, shared by the scoring engine (``datadiet_hub.scoring.train``,
``datadiet_hub.scoring.score``), downstream training (``datadiet_hub.downstream.train``) and the experiments.

Both loops consume an iterator of batches: dicts with ``idx`` (source rows, int64), ``labels`` and the model's
keyword inputs (every other key; ``pixel_values`` for the in-memory image tensors). The caller decides what a batch
is (``shuffled_batches``, ``ordered_batches``, or a ``DataLoader`` yielding such dicts); per-step work (the
forgetting update, checkpoints, progress, logging) comes in as callbacks, not as copies of the loop.

Determinism is the batch source's job: ``shuffled_batches`` draws the order of epoch e and the augmentation of step s
from generators the caller seeds, and ``train_loop(reseed=...)`` reseeds the global RNG before every step, so that a
run resumed at step s replays exactly the batches and dropout masks of the uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .forward import Inputs, logits_of

Batch = Mapping[str, Any]
IDX, LABELS, PIXELS = "idx", "labels", "pixel_values"
_NOT_INPUTS = frozenset({IDX, LABELS})


class Preprocessor(Protocol):
    """uint8 images -> model input (``datadiet_hub.scoring.data.Preprocess``)."""

    def __call__(
        self, images: torch.Tensor, *, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


def model_inputs(batch: Batch) -> Inputs:
    """The model's input of a batch: every key except ``idx`` and ``labels``. A lone input is returned as the tensor
    itself (``model(x)``: a plain ``forward(self, x)``, an ``nn.Sequential`` or a user factory all take it), several
    as a mapping of keyword tensors (``model(**inputs)``, transformers-style); see ``datadiet_hub.scoring.forward.logits_of``."""
    inputs = {k: v for k, v in batch.items() if k not in _NOT_INPUTS}
    return next(iter(inputs.values())) if len(inputs) == 1 else inputs


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.train(training)


# -- batch sources ---------------------------------------------------------------------------------------------------


def shuffled_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    preprocess: Preprocessor,
    *,
    batch_size: int,
    steps: range,
    order: Callable[[int], torch.Generator],
    augment: Callable[[int], torch.Generator] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Training batches for the optimizer steps in ``steps``: epoch e visits all rows in the order
    ``randperm(N, generator=order(e))`` in chunks of ``batch_size`` (the last, partial chunk is kept), so a step's
    batch depends only on its number. ``augment(step)`` seeds the step's training augmentation; without it the
    images are only normalised. Rows are taken on the device that holds ``images``."""
    n = len(labels)
    per_epoch = math.ceil(n / batch_size)
    perm, perm_epoch = torch.empty(0, dtype=torch.int64), -1
    for step in steps:
        epoch, b = divmod(step, per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = torch.randperm(n, generator=order(epoch)), epoch
        idx = perm[b * batch_size : (b + 1) * batch_size].to(images.device)
        if augment is None:
            x = preprocess(images[idx])
        else:
            x = preprocess(images[idx], train=True, generator=augment(step))
        yield {IDX: idx, PIXELS: x, LABELS: labels[idx]}


def ordered_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    preprocess: Preprocessor,
    *,
    batch_size: int,
    rows: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Evaluation batches of ``rows`` (default: all, in order), un-augmented, moved to ``device``; ``idx`` stays on
    the CPU with the caller's rows."""
    if rows is None:
        rows = torch.arange(len(labels))
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        yield {IDX: idx, PIXELS: preprocess(images[idx].to(device)), LABELS: labels[idx].to(device)}


# -- the loops -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutput:
    """What a per-step callback sees: ``step`` optimizer steps are done, the last one on ``batch``."""

    step: int
    batch: Batch
    logits: torch.Tensor  # detached
    loss: torch.Tensor  # detached, the batch mean


StepCallback = Callable[[StepOutput], None]


def train_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    *,
    start_step: int = 0,
    lr: Callable[[int], float] | None = None,
    reseed: Callable[[int], int] | None = None,
    callbacks: Sequence[StepCallback] = (),
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> int:
    """One SGD step per batch (train mode); returns the number of steps done, counting from ``start_step``.

    Args:
        model: the model, already on the batches' device.
        optimizer: its optimizer.
        batches: dicts with ``labels`` and the model's keyword inputs (and ``idx`` for callbacks that need it).
        start_step: the number of the first step (a resumed run continues its count).
        lr: the learning rate of step s, set on every parameter group before the step; None leaves it alone.
        reseed: if given, ``torch.manual_seed(reseed(s))`` right before the forward pass of step s, so randomness
            inside the model (dropout) depends only on the step.
        callbacks: called after every step with a ``StepOutput``, in order (forgetting, checkpoints, progress).
        loss_fn: ``loss_fn(logits, labels)``, a batch mean.
        autocast: the context the forward pass and the loss run under (``datadiet_hub.scoring.precision``).
    """
    model.train()
    step = start_step
    for batch in batches:
        if lr is not None:
            rate = lr(step)
            for group in optimizer.param_groups:
                group["lr"] = rate
        if reseed is not None:
            torch.manual_seed(reseed(step))
        with autocast():
            logits = logits_of(model, model_inputs(batch))
            loss = loss_fn(logits, batch[LABELS])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if callbacks:
            out = StepOutput(step, batch, logits.detach(), loss.detach())
            for callback in callbacks:
                callback(out)
    return step


def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    per_example: Callable[[nn.Module, Batch], torch.Tensor],
    *,
    grad: bool = False,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> torch.Tensor:
    """``per_example(model, batch)`` over every batch in eval mode (BatchNorm uses its running statistics),
    concatenated on the CPU in batch order; row i of the result belongs to the i-th example the batches yield.
    ``grad=True`` keeps autograd on (GraNd needs gradients); otherwise the pass runs under ``no_grad``. The model's
    own train/eval flags are restored afterwards. ``per_example`` runs under ``autocast()``."""
    parts = []
    with eval_mode(model), torch.set_grad_enabled(grad), autocast():
        for batch in batches:
            parts.append(per_example(model, batch).detach().cpu())
    return torch.cat(parts) if parts else torch.empty(0)


# -- per-example functions for ``evaluate`` -------------------------------------------------------------------------


def predictions(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Predicted class per example."""
    return logits_of(model, model_inputs(batch)).argmax(1)


def correct(model: nn.Module, batch: Batch) -> torch.Tensor:
    """True where the prediction is the label."""
    return predictions(model, batch) == batch[LABELS]


def wrong(model: nn.Module, batch: Batch) -> torch.Tensor:
    """True where the prediction is not the label (0/1 error)."""
    return predictions(model, batch) != batch[LABELS]


# -- learning-rate schedules ------------------------------------------------------------------------------------------


def cosine_lr(base: float, step: int, total: int) -> float:
    """Cosine annealing from ``base`` at step 0 to 0 at step ``total``."""
    return 0.5 * base * (1 + math.cos(math.pi * step / max(total, 1)))


def step_lr(base: float, epoch: int, milestones: Sequence[int], gamma: float) -> float:
    """``base`` times ``gamma`` for every milestone epoch reached."""
    return base * gamma ** sum(epoch >= m for m in milestones)
