"""Score a checkpoint: EL2N (one eval-mode forward) and GraNd (per-example gradient norms), on un-augmented
inputs, for a given set of rows, so that the pass can be sharded across processes and gathered by ``idx``."""

from __future__ import annotations

import torch

from .config import ScoringConfig
from .data import Preprocess, TensorData
from .metrics.el2n import el2n_from_logits


@torch.no_grad()
def el2n_rows(
    model: torch.nn.Module,
    data: TensorData,
    preprocess: Preprocess,
    rows: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    model.eval()
    out = torch.empty(len(rows), dtype=torch.float32)
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        logits = model(preprocess(data.images[idx].to(device)))
        out[start : start + len(idx)] = el2n_from_logits(logits.float(), data.labels[idx].to(device)).cpu()
    return out


def grand_rows(
    model: torch.nn.Module,
    data: TensorData,
    preprocess: Preprocess,
    rows: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    from .metrics.grand import per_example_grad_norms

    model.eval()  # BatchNorm uses its running statistics (DESIGN.md section 1), whatever the function does
    out = torch.empty(len(rows), dtype=torch.float32)
    for start in range(0, len(rows), batch_size):
        idx = rows[start : start + batch_size]
        norms = per_example_grad_norms(model, preprocess(data.images[idx].to(device)), data.labels[idx].to(device))
        out[start : start + len(idx)] = norms.detach().float().cpu()
    return out


def score_rows(
    cfg: ScoringConfig,
    model: torch.nn.Module,
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
