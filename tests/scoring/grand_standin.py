"""Test-only stand-in for ``scoring.metrics.grand`` (the fast GraNd lives on another branch): the naive loop.

``per_example_grad_norms`` here is the slow, obviously-correct oracle: one backward per example, the norm of the
gradient over every trainable parameter. It deliberately does *not* switch the model to eval mode, so the engine's
own ``model.eval()`` is what the plumbing tests check.
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F

CALLS: list[dict] = []


def per_example_grad_norms(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    CALLS.append({"training": model.training, "n": len(inputs)})
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    for x, y in zip(inputs, targets):
        loss = F.cross_entropy(model(x[None]), y[None])
        grads = torch.autograd.grad(loss, params)
        norms.append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    return torch.stack(norms).to(inputs.dtype)


def install() -> types.ModuleType:
    """Register this module as ``scoring.metrics.grand`` (for subprocess launchers)."""
    module = sys.modules[__name__]
    sys.modules["scoring.metrics.grand"] = module
    return module
