"""Score a checkpoint: every requested metric registered per batch (``metrics/registry.py``: EL2N, GraNd, ...)
on un-augmented inputs, for this process's share of the rows, so that the pass can be sharded across processes and
gathered by ``idx``; and every metric counted during training, read from the checkpoint. The rows come from
``RunData`` (in memory or through the DataLoader), as dicts of keyword inputs."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from datadiet_hub import metrics as declarations
from datadiet_hub.errors import InvalidArgumentError

from .config import ScoringConfig
from .data.prepare import RunData
from .metrics.registry import get
from .precision import evaluate_at


def metric_rows(
    name: str,
    model: nn.Module,
    data: RunData,
    batch_size: int,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    precision: str = "fp32",
) -> torch.Tensor:
    """Metric ``name`` of ``data.eval_rows(batch_size, rank, world)`` (float32, in that order), under ``precision``
    (``datadiet_hub.scoring.precision``: autocast, or a bfloat16 copy of the model for metrics that need
    gradients)."""
    computation = get(name)
    if computation.per_batch is None:
        raise InvalidArgumentError(
            f"Metric {name!r} is counted during training, not computed on a checkpoint's rows.", value=name
        )
    batches = data.eval_batches(batch_size=batch_size, device=device, rank=rank, world=world)
    return evaluate_at(precision, model, batches, computation.per_batch, device, grad=computation.grad)


def wanted(cfg: ScoringConfig, seed: int) -> list[str]:
    """The requested metrics this seed computes: all of them for the first seed, only those averaged over seeds
    for the others (a metric no seed changes is computed once)."""
    return [m for m in cfg.scores if seed == cfg.seeds[0] or declarations.get(m).over_seeds]


def score_rows(
    cfg: ScoringConfig,
    model: nn.Module,
    data: RunData,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    seed: int | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The requested per-batch scores as ``(rows, values)`` per score: the rows this process scored (they depend
    on the batch size on the DataLoader path) and their values. Scores counted during training come from
    ``training_scores``."""
    scores = {}
    for name in wanted(cfg, cfg.seeds[0] if seed is None else seed):
        computation = get(name)
        if computation.per_batch is None:
            continue
        batch_size = getattr(cfg, computation.batch_size)
        rows = data.eval_rows(batch_size=batch_size, rank=rank, world=world)
        scores[name] = (rows, metric_rows(name, model, data, batch_size, device, rank, world, cfg.precision))
    return scores


def training_scores(cfg: ScoringConfig, tensors: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """The requested scores counted during training (their values and flags), from a checkpoint's tensors."""
    out: dict[str, torch.Tensor] = {}
    for name in wanted(cfg, seed):
        computation = get(name)
        if computation.from_training is not None:
            out.update(computation.from_training(tensors))
    return out
