"""Slow but obviously exact per-example gradient norms: the test oracle and the benchmark baselines for GraNd.

Both use the same definition as :func:`datadiet_hub.scoring.metrics.grand.per_example_grad_norms`: eval mode, per-example loss
= cross entropy of that single example, norm over the parameters with ``requires_grad=True``. Neither needs a rule
per layer type, so they also serve models the fast path refuses. Inputs are a tensor or a mapping of keyword
tensors (see :mod:`datadiet_hub.scoring.forward`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from datadiet_hub.scoring.forward import Inputs, as_logits, batch_size, logits_of, map_inputs, select

__all__ = ["eval_mode", "naive_grad_norms", "naive_layer_sq_norms", "vmap_grad_norms"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every module in eval mode inside the block; each module's own flag restored afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.train(training)


_eval_mode = eval_mode  # the name experiments/dynamics imports


def naive_layer_sq_norms(
    model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One forward and backward per example: ``{module name: per-example squared norm [N]}`` (the test oracle).

    ``loss_fn(outputs, targets) -> [N]`` replaces the per-example cross entropy (a causal LM's document loss).

    Keys are the modules owning trainable parameters (names as in ``named_modules``, ``""`` for the root), each
    over its own parameters only; a parameter held by several modules (tied weights) counts once, under the first
    one (as in ``named_parameters``). The squared GraNd is their sum.
    """
    owners: dict[str, list[nn.Parameter]] = {}
    for full, param in model.named_parameters():  # a tied parameter once, under the first module holding it
        if param.requires_grad:
            owners.setdefault(full.rpartition(".")[0], []).append(param)
    params = [p for group in owners.values() for p in group]
    n = batch_size(inputs)
    device = targets.device
    sq = {name: torch.zeros(n, dtype=params[0].dtype, device=device) for name in owners}
    with eval_mode(model), torch.enable_grad():
        for i in range(n):
            logits = logits_of(model, select(inputs, slice(i, i + 1)))
            if loss_fn is None:
                loss = F.cross_entropy(logits, targets[i : i + 1].long(), reduction="sum")
            else:
                loss = loss_fn(logits, targets[i : i + 1]).sum()
            grads = iter(torch.autograd.grad(loss, params, allow_unused=True))
            for name, group in owners.items():
                for _ in group:
                    grad = next(grads)
                    if grad is not None:
                        sq[name][i] += grad.square().sum().to(sq[name].dtype)
    return sq


def naive_grad_norms(
    model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """One forward and backward per example: the GraNd norms ``[N]`` (the test oracle)."""
    return torch.stack(list(naive_layer_sq_norms(model, inputs, targets, loss_fn=loss_fn).values())).sum(0).sqrt()


def vmap_grad_norms(
    model: nn.Module, inputs: Inputs, targets: torch.Tensor, chunk_size: int | None = 8
) -> torch.Tensor:
    """``torch.func.vmap(grad)`` over examples, ``chunk_size`` at a time (materializes every per-example gradient).

    Args:
        model: Any classifier returning logits ``[N, K]`` (or an output with ``.logits``), without in-place updates
            of buffers in eval mode.
        inputs: Batch: a tensor ``[N, ...]`` or a mapping of keyword tensors ``[N, ...]``.
        targets: Integer labels ``[N]``.
        chunk_size: Examples per vectorized chunk; memory grows with it (~45 MB/example for ResNet-18 in float32).
    """
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_fn(trainable: dict[str, torch.Tensor], x: Inputs, y: torch.Tensor) -> torch.Tensor:
        one = map_inputs(x, lambda t: t.unsqueeze(0))
        args, kwargs = ((), dict(one)) if isinstance(one, Mapping) else ((one,), {})
        logits = as_logits(functional_call(model, (trainable, frozen, buffers), args, kwargs))
        return F.cross_entropy(logits, y.unsqueeze(0), reduction="sum")

    def sq_norm(x: Inputs, y: torch.Tensor) -> torch.Tensor:
        grads = grad(loss_fn)(params, x, y)
        return sum(g.square().sum() for g in grads.values())

    with eval_mode(model), torch.enable_grad():
        sq = vmap(sq_norm, chunk_size=chunk_size)(inputs, targets.long())
    return sq.sqrt()
