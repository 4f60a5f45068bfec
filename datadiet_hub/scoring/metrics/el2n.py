"""EL2N: the L2 norm (not squared) of the softmax error, ``||softmax(logits) - onehot(y)||_2`` (Paul et al., 2021)."""

from __future__ import annotations

import torch

from datadiet_hub.errors import InvalidArgumentError


def el2n_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example EL2N for a batch of logits ``[N, K]`` and integer targets ``[N]``.

    0 for a confident correct prediction, ``sqrt((K-1)/K)`` for a uniform one, ``sqrt(2)`` at most.
    """
    if logits.ndim != 2:
        raise InvalidArgumentError(f"logits must have shape [N, K], got {tuple(logits.shape)}.")
    if targets.shape != logits.shape[:1]:
        raise InvalidArgumentError(f"targets must have shape [{logits.shape[0]}], got {tuple(targets.shape)}.")
    error = torch.softmax(logits, dim=1)
    error[torch.arange(len(targets), device=logits.device), targets] -= 1.0
    return torch.linalg.vector_norm(error, dim=1)
