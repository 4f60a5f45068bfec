"""The naive GraNd oracle for tests: one backward per example, the norm of the gradient over every trainable
parameter. Slow and obviously correct, so engine tests compare the engine's GraNd column (computed by the real
fast ``scoring.metrics.grand``) against it. It is never installed in the engine."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_example_grad_norms(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    norms = []
    for x, y in zip(inputs, targets):
        loss = F.cross_entropy(model(x[None]), y[None])
        grads = torch.autograd.grad(loss, params)
        norms.append(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    return torch.stack(norms).to(inputs.dtype)
