"""Score a checkpoint: EL2N (one eval-mode forward) and GraNd (per-example gradient norms), on un-augmented
inputs, for a given set of rows, so that the pass can be sharded across processes and gathered by ``idx``."""

from __future__ import annotations

import torch
from torch import nn

from .config import ScoringConfig
from .data import Preprocess, TensorData
from .loops import LABELS, Batch, evaluate, logits_of, model_inputs, ordered_batches
from .metrics.el2n import el2n_from_logits


def _el2n(model: nn.Module, batch: Batch) -> torch.Tensor:
    return el2n_from_logits(logits_of(model, model_inputs(batch)).float(), batch[LABELS])


def _grand(model: nn.Module, batch: Batch) -> torch.Tensor:
    from .metrics.grand import per_example_grad_norms

    (inputs,) = model_inputs(batch).values()
    norms = per_example_grad_norms(model, inputs, batch[LABELS])
    assert isinstance(norms, torch.Tensor)  # without per_layer, only the norms
    return norms.float()


def el2n_rows(
    model: nn.Module,
    data: TensorData,
    preprocess: Preprocess,
    rows: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """EL2N of ``rows`` (float32, in the order of ``rows``)."""
    batches = ordered_batches(data.images, data.labels, preprocess, batch_size=batch_size, rows=rows, device=device)
    return evaluate(model, batches, _el2n).to(torch.float32)


def grand_rows(
    model: nn.Module,
    data: TensorData,
    preprocess: Preprocess,
    rows: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """GraNd of ``rows`` (float32, in the order of ``rows``); eval mode: BatchNorm uses its running statistics
    (DESIGN.md section 1), whatever the metric function does."""
    batches = ordered_batches(data.images, data.labels, preprocess, batch_size=batch_size, rows=rows, device=device)
    return evaluate(model, batches, _grand, grad=True).to(torch.float32)


def score_rows(
    cfg: ScoringConfig,
    model: nn.Module,
    data: TensorData,
    preprocess: Preprocess,
    rows: torch.Tensor,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """The requested model-based scores (el2n, grand) of ``rows``; forgetting comes from the checkpoint."""
    scores = {}
    if "el2n" in cfg.scores:
        scores["el2n"] = el2n_rows(model, data, preprocess, rows, cfg.eval_batch_size, device)
    if "grand" in cfg.scores:
        scores["grand"] = grand_rows(model, data, preprocess, rows, cfg.grand_batch_size, device)
    return scores
