"""Score a checkpoint: EL2N (one eval-mode forward) and GraNd (per-example gradient norms), on un-augmented
inputs, for this process's share of the rows, so that the pass can be sharded across processes and gathered by
``idx``. The rows come from ``RunData`` (in memory or through the DataLoader), as dicts of keyword inputs."""

from __future__ import annotations

import torch
from torch import nn

from .config import ScoringConfig
from .data.prepare import RunData
from .forward import logits_of
from .loops import LABELS, Batch, evaluate, model_inputs
from .metrics.el2n import el2n_from_logits
from .precision import autocast_for, in_bfloat16


def _el2n(model: nn.Module, batch: Batch) -> torch.Tensor:
    return el2n_from_logits(logits_of(model, model_inputs(batch)).float(), batch[LABELS])


def _grand(model: nn.Module, batch: Batch) -> torch.Tensor:
    from .metrics.grand import per_example_grad_norms

    return per_example_grad_norms(model, model_inputs(batch), batch[LABELS]).float()


def el2n_rows(
    model: nn.Module,
    data: RunData,
    batch_size: int,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    precision: str = "fp32",
) -> torch.Tensor:
    """EL2N of ``data.eval_rows(batch_size, rank, world)`` (float32, in that order)."""
    batches = data.eval_batches(batch_size=batch_size, device=device, rank=rank, world=world)
    return evaluate(model, batches, _el2n, autocast=autocast_for(precision, device)).to(torch.float32)


def grand_rows(
    model: nn.Module,
    data: RunData,
    batch_size: int,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    precision: str = "fp32",
) -> torch.Tensor:
    """GraNd of ``data.eval_rows(batch_size, rank, world)`` (float32, in that order); eval mode: BatchNorm uses its
    running statistics (DESIGN.md section 1), whatever the metric function does."""
    batches = data.eval_batches(batch_size=batch_size, device=device, rank=rank, world=world)
    if precision == "bf16":  # see datadiet_hub.scoring.precision: GraNd runs a bfloat16 copy, not autocast
        model, batches = in_bfloat16(model, batches)
    return evaluate(model, batches, _grand, grad=True).to(torch.float32)


def score_rows(
    cfg: ScoringConfig, model: nn.Module, data: RunData, device: torch.device, rank: int = 0, world: int = 1
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The requested model-based scores (el2n, grand) as ``(rows, values)`` per score: the rows this process
    scored (they depend on the batch size on the DataLoader path) and their values. Forgetting comes from the
    checkpoint."""
    scores = {}
    if "el2n" in cfg.scores:
        rows = data.eval_rows(batch_size=cfg.eval_batch_size, rank=rank, world=world)
        scores["el2n"] = (rows, el2n_rows(model, data, cfg.eval_batch_size, device, rank, world, cfg.precision))
    if "grand" in cfg.scores:
        rows = data.eval_rows(batch_size=cfg.grand_batch_size, rank=rank, world=world)
        scores["grand"] = (rows, grand_rows(model, data, cfg.grand_batch_size, device, rank, world, cfg.precision))
    return scores
