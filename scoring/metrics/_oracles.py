"""Slow but obviously exact per-example gradient norms: the test oracle and the benchmark baselines for GraNd.

Both use the same definition as :func:`scoring.metrics.grand.per_example_grad_norms`: eval mode, per-example loss
= cross entropy of that single example, norm over the parameters with ``requires_grad=True``. Neither needs a rule
per layer type, so they also serve models the fast path refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.train(training)


def naive_grad_norms(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, per_layer: bool = False
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward and backward per example (the test oracle).

    Args:
        model: Any classifier returning logits ``[N, K]``.
        inputs: Batch ``[N, ...]``.
        targets: Integer labels ``[N]``.
        per_layer: Also return ``{module name: per-example squared norm [N]}`` over each module's own trainable
            parameters, keyed like :func:`~scoring.metrics.grand.per_example_grad_norms`.
    """
    owners = {
        name: [p for p in module.parameters(recurse=False) if p.requires_grad]
        for name, module in model.named_modules()
    }
    owners = {name: params for name, params in owners.items() if params}
    params = [p for group in owners.values() for p in group]
    n = inputs.shape[0]
    sq = {name: torch.zeros(n, dtype=params[0].dtype, device=inputs.device) for name in owners}
    with _eval_mode(model), torch.enable_grad():
        for i in range(n):
            loss = F.cross_entropy(model(inputs[i : i + 1]), targets[i : i + 1].long(), reduction="sum")
            grads = iter(torch.autograd.grad(loss, params, allow_unused=True))
            for name, group in owners.items():
                for _ in group:
                    grad = next(grads)
                    if grad is not None:
                        sq[name][i] += grad.square().sum()
    norms = torch.stack(list(sq.values())).sum(0).sqrt()
    return (norms, sq) if per_layer else norms


def vmap_grad_norms(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int | None = 8
) -> torch.Tensor:
    """``torch.func.vmap(grad)`` over examples, ``chunk_size`` at a time (materializes every per-example gradient).

    Args:
        model: Any classifier returning logits ``[N, K]``, without in-place updates of buffers in eval mode.
        inputs: Batch ``[N, ...]``.
        targets: Integer labels ``[N]``.
        chunk_size: Examples per vectorized chunk; memory grows with it (~45 MB/example for ResNet-18 in float32).
    """
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_fn(trainable: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (trainable, frozen, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0), reduction="sum")

    def sq_norm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        grads = grad(loss_fn)(params, x, y)
        return sum(g.square().sum() for g in grads.values())

    with _eval_mode(model), torch.enable_grad():
        sq = vmap(sq_norm, chunk_size=chunk_size)(inputs, targets.long())
    return sq.sqrt()
