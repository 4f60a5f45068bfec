"""GraNd: exact per-example gradient norms ``||grad_w CE(f(w, x_i), y_i)||_2`` from one forward and one backward pass.

The obvious ways to get them are slow: a loop over examples re-runs the model N times, and ``torch.func.vmap(grad)``
materializes every per-example gradient (~45 MB/example for ResNet-18). But the backward pass of the batch-sum loss
already computes, at each layer, the gradient of every example's own loss with respect to that layer's output
(the model runs in eval mode, so examples do not interact); with the layer's input this determines the per-example
weight gradient and hence its norm (DESIGN.md section 4, rules in :mod:`scoring.metrics._grand_layers`).

How a pass works:

1. forward hooks keep each parametrized layer's input and put a tensor hook on its output;
2. ``torch.autograd.grad`` is asked for gradients with respect to the graph's *inputs* only (the model input, or an
   embedding's output), never the weights: the batch weight gradients, a third of a plain backward, are skipped;
3. as each output gradient arrives, the layer's rule turns (input, output gradient) into per-example squared norms
   and the kept input is released, so memory stays close to that of a plain forward + backward.

Anything that would make the result silently wrong is refused instead: a parametrized module type without an exact
rule, a module called twice in one forward (shared weights), a parameter used outside its module's forward (weight
tying, functional use), BatchNorm without running statistics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scoring.metrics._grand_layers import Rule, UnsupportedModuleError, rule_for

__all__ = ["UnsupportedModuleError", "per_example_grad_norms"]

logger = logging.getLogger(__name__)


@dataclass
class _Tap:
    """One parametrized module and what its hooks saw during the current pass."""

    name: str
    module: nn.Module
    rule: Rule
    params: dict[str, nn.Parameter]
    calls: int = 0
    input: torch.Tensor | None = None
    input_version: int = 0


@dataclass
class _Pass:
    """Per-chunk state shared by the hooks."""

    sq_norms: dict[str, torch.Tensor]
    roots: list[torch.Tensor] = field(default_factory=list)


def per_example_grad_norms(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_size: int | None = None,
    per_layer: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exact GraNd score of every example: the L2 norm of its own loss gradient over all trainable parameters.

    The per-example loss is the cross entropy of that single example (not divided by the batch size). The model
    runs in eval mode (BatchNorm uses its running statistics, as in the paper); its train/eval flags are restored
    afterwards and no hooks or ``.grad`` are left behind. Parameters with ``requires_grad=False`` are excluded from
    the norm, which is how to score with part of a model frozen (or to skip a module the fast path refuses).

    Args:
        model: Classifier returning logits ``[N, K]``. Every module that owns trainable parameters must be a
            Linear, Conv1d/2d/3d, BatchNorm (with running stats), LayerNorm, GroupNorm or Embedding, called once
            per forward; anything else raises :class:`UnsupportedModuleError` naming it.
        inputs: Batch of inputs ``[N, ...]`` (floating point, or integer token ids for an embedding model).
        targets: Integer class labels ``[N]``.
        chunk_size: Run forward and backward on at most this many examples at a time, to bound activation memory;
            ``None`` runs the whole batch at once. The result does not depend on it (up to rounding). Layer
            temporaries are bounded separately by ``scoring.metrics._grand_layers.WORKSPACE_BYTES``.
        per_layer: Also return ``{module name: per-example squared norm [N]}`` (names as in ``named_modules``,
            ``""`` for the root), weight and bias together; the squared total is their sum.

    Returns:
        Norms ``[N]`` in the dtype of the model's parameters, or ``(norms, per_layer_squared_norms)``.
    """
    targets = _validate(model, inputs, targets, chunk_size)
    taps = _plan(model)
    dtype = next(iter(taps[0].params.values())).dtype
    n = inputs.shape[0]
    if inputs.is_inference():  # inference tensors cannot enter autograd graphs
        with torch.inference_mode(False):
            inputs = inputs.clone()
    inputs = inputs.detach()
    sq_norms = {tap.name: torch.zeros(n, dtype=dtype, device=inputs.device) for tap in taps}

    flags = [(module, module.training) for module in model.modules()]
    handles: list[torch.utils.hooks.RemovableHandle] = []
    state = _Pass(sq_norms={})
    try:
        model.eval()
        for tap in taps:
            handles.append(tap.module.register_forward_pre_hook(partial(_pre_hook, state)))
            handles.append(tap.module.register_forward_hook(partial(_forward_hook, state, tap)))
        step = n if chunk_size is None else chunk_size
        for start in range(0, n, step):
            chunk = slice(start, min(n, start + step))
            state.sq_norms = {name: sq[chunk] for name, sq in sq_norms.items()}  # views: hooks write in place
            _run_pass(model, taps, state, inputs[chunk], targets[chunk])
    finally:
        for handle in handles:
            handle.remove()
        for tap in taps:
            tap.calls, tap.input = 0, None
        state.roots.clear()
        for module, training in flags:
            module.train(training)

    norms = torch.stack(list(sq_norms.values())).sum(0).sqrt()
    return (norms, sq_norms) if per_layer else norms


def _validate(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk_size: int | None) -> torch.Tensor:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] == 0:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a tensor [N, ...] with N >= 1, got {shape}.")
    if not isinstance(targets, torch.Tensor) or targets.shape != inputs.shape[:1]:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a tensor of shape [{inputs.shape[0]}] (one label per input), got {shape}.")
    if targets.is_floating_point() or targets.is_complex():
        raise ValueError(f"targets must hold integer class labels, got dtype {targets.dtype}; use targets.long().")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    return targets.long()


def _plan(model: nn.Module) -> list[_Tap]:
    """One tap per module owning trainable parameters; refuse, all at once, the modules without an exact rule."""
    taps, refused = [], []
    for name, module in model.named_modules():
        params = {pname: p for pname, p in module.named_parameters(recurse=False) if p.requires_grad}
        if not params:
            continue
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in params.values()):
            raise ValueError(f"Module {name!r} has uninitialized (lazy) parameters; run one forward pass first.")
        try:
            taps.append(_Tap(name=name, module=module, rule=rule_for(name, module, sorted(params)), params=params))
        except UnsupportedModuleError as err:
            refused.append(str(err))
    if refused:
        raise UnsupportedModuleError(" | ".join(refused))
    if not taps:
        raise ValueError("model has no trainable parameters (all have requires_grad=False); GraNd would be 0.")
    logger.debug("GraNd taps: %s", ", ".join(f"{t.name or '<root>'}:{type(t.module).__name__}" for t in taps))
    return taps


def _pre_hook(state: _Pass, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Make a floating input that is not yet in the graph a graph root, so the backward reaches this layer."""
    if not args or not isinstance(args[0], torch.Tensor):
        raise UnsupportedModuleError(
            f"{type(module).__name__} was called without a positional tensor input; the fast GraNd path reads the "
            f"layer input from the first positional argument. Pass the input positionally."
        )
    x = args[0]
    if x.is_floating_point() and not x.requires_grad:
        x = x.detach().requires_grad_()
        state.roots.append(x)
        return (x, *args[1:])
    return None


def _forward_hook(state: _Pass, tap: _Tap, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    tap.calls += 1
    label = f"Module {tap.name or '<root>'!r} ({type(module).__name__})"
    if tap.calls > 1:
        raise UnsupportedModuleError(
            f"{label} was called {tap.calls} times in one forward pass (shared weights); its per-example gradient "
            "is a sum over calls, which the fast GraNd path does not compute. Use "
            "scoring.metrics._oracles.vmap_grad_norms for this model."
        )
    if not isinstance(output, torch.Tensor):
        raise UnsupportedModuleError(f"{label} returned {type(output).__name__}, expected a tensor.")
    x = args[0]
    tap.input, tap.input_version = x.detach(), x._version
    if output.requires_grad:
        output.register_hook(partial(_grad_hook, state, tap))
    if not x.is_floating_point():
        # Integer input (embedding ids): the graph starts at this output. Hand a copy downstream so that an
        # in-place op there cannot move the gradient we ask autograd for away from this layer.
        state.roots.append(output)
        return output.clone()
    return None


def _grad_hook(state: _Pass, tap: _Tap, grad: torch.Tensor) -> None:
    a, tap.input = tap.input, None
    if a is None:
        return
    if a._version != tap.input_version:
        raise RuntimeError(
            f"The input of module {tap.name or '<root>'!r} ({type(tap.module).__name__}) was modified in place "
            "after the module ran, so its per-example gradients cannot be recovered; make that op out of place."
        )
    state.sq_norms[tap.name] += tap.rule(tap.module, a, grad.detach()).to(state.sq_norms[tap.name].dtype)


def _run_pass(model: nn.Module, taps: list[_Tap], state: _Pass, x: torch.Tensor, y: torch.Tensor) -> None:
    """One forward and one backward of the batch-sum loss over one chunk; hooks add into ``state.sq_norms``."""
    state.roots.clear()
    for tap in taps:
        tap.calls, tap.input = 0, None
    with torch.enable_grad():
        logits = model(x)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"model must return logits of shape [N={x.shape[0]}, K], got {shape}.")
        # Sum, not mean: each example's rows of the output gradients are then that example's own loss gradient.
        loss = F.cross_entropy(logits, y, reduction="sum")
        if not loss.requires_grad:
            return
        _check_param_uses(loss, taps)
        torch.autograd.grad(loss, state.roots, allow_unused=True)
    state.roots.clear()


def _check_param_uses(loss: torch.Tensor, taps: list[_Tap]) -> None:
    """Refuse parameters reached by the graph more often than their module ran (tying or functional use).

    Each call of a supported module references each of its parameters once; a further reference means the
    parameter also contributes through ops the module's rule does not see.
    """
    uses: dict[int, int] = {}
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            variable = getattr(child, "variable", None)
            if variable is not None:
                uses[id(variable)] = uses.get(id(variable), 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    for tap in taps:
        for pname, param in tap.params.items():
            count = uses.get(id(param), 0)
            if count > tap.calls:
                full = f"{tap.name}.{pname}" if tap.name else pname
                raise UnsupportedModuleError(
                    f"Parameter {full!r} enters the graph {count} times but its module ({type(tap.module).__name__}) "
                    f"ran {tap.calls} times: it is also used outside the module's forward (weight tying or a "
                    "functional call), which the fast GraNd path cannot see. Use "
                    "scoring.metrics._oracles.vmap_grad_norms for this model."
                )
