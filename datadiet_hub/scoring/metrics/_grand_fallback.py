"""Exact per-example gradients of one module's own parameters with ``torch.func``, for modules without a rule.

Given what the hooks captured for one call of a module (its arguments, and the gradient of the batch-sum loss with
respect to each of its outputs), example ``i``'s gradient with respect to the module's parameters is the
vector-Jacobian product of the module applied to example ``i``'s slice of the arguments with example ``i``'s slice
of the output gradients. ``vmap(grad(...))`` computes all of them at once, replaying only this module (not the
model); if a batching rule is missing, the same function runs example by example. Either way the value is exact
for any module that treats the examples independently, whatever it computes (attention, RNNs, ConvTranspose,
InstanceNorm, PReLU, RMSNorm, EmbeddingBag, custom layers).

Which dimension of each argument and output is the batch is decided per call: by data flow
(:mod:`datadiet_hub.scoring.metrics._batch_tracking`) and, for modules whose layout is declared by a flag (``batch_first`` of
``nn.MultiheadAttention`` and ``nn.RNN``/``LSTM``/``GRU``), by that flag, so a sequence-first input whose length
equals the batch size is read correctly.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from datadiet_hub.scoring.metrics._grand_layers import UnsupportedModuleError

logger = logging.getLogger(__name__)


class _Raw(nn.Module):
    """Calls the wrapped module's ``forward`` directly: its own hooks (ours and the user's) stay out of the replay."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.m = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.m.forward(*args, **kwargs)


def _named_items(module: nn.Module, args: tuple, kwargs: dict) -> list[tuple[str | None, Any]]:
    try:
        names = [
            p.name
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        names = []
    items: list[tuple[str | None, Any]] = [(names[i] if i < len(names) else None, a) for i, a in enumerate(args)]
    return items + list(kwargs.items())


def declared_dims(
    label: str, module: nn.Module, args: tuple, kwargs: dict, batched: Callable[[torch.Tensor], bool], default: int
) -> tuple[list[int | None], Callable[[int, int], int]]:
    """Per argument leaf: its batch dim or ``None``; and the batch dim of output leaf ``j`` (of ``count``)."""
    items = _named_items(module, args, kwargs)
    dims: list[int | None] = []
    if isinstance(module, nn.MultiheadAttention):
        seq = 0 if module.batch_first else 1
        for name, value in items:
            for leaf in tree_flatten(value)[0]:
                if not isinstance(leaf, torch.Tensor):
                    dims.append(None)
                elif name in ("query", "key", "value"):
                    if leaf.dim() != 3:
                        raise UnsupportedModuleError(
                            f"{label} got an unbatched {name} of shape {tuple(leaf.shape)}; GraNd needs the batch in "
                            "the input ([N, L, E] with batch_first=True, else [L, N, E])."
                        )
                    dims.append(seq)
                elif name == "key_padding_mask":
                    dims.append(0)
                elif batched(leaf):
                    raise UnsupportedModuleError(
                        f"{label} got a per-example {name} of shape {tuple(leaf.shape)} (batch and heads merged in "
                        "dim 0); GraNd cannot split it by example. Pass per-example padding as key_padding_mask [N, S] "
                        "and keep attn_mask shared ([L, S])."
                    )
                else:
                    dims.append(None)
        return dims, lambda j, count: seq if j == 0 else 0
    if isinstance(module, nn.RNNBase):
        seq = 0 if module.batch_first else 1
        if items and isinstance(items[0][1], nn.utils.rnn.PackedSequence):
            raise UnsupportedModuleError(
                f"{label} got a PackedSequence, which packs the examples' time steps together; GraNd needs padded "
                f"input [N, T, H] (batch_first=True) or [T, N, H]. Pad the batch and mask the padded steps instead."
            )
        for i, (_, value) in enumerate(items):
            for leaf in tree_flatten(value)[0]:
                dims.append(None if not isinstance(leaf, torch.Tensor) else (seq if i == 0 else 1))
        return dims, lambda j, count: seq if j == 0 else 1
    for _, value in items:
        for leaf in tree_flatten(value)[0]:
            dims.append(default if isinstance(leaf, torch.Tensor) and batched(leaf) else None)
    return dims, lambda j, count: default


@dataclass
class Replay:
    """One call of a module, as captured for the replay."""

    module: nn.Module
    params: dict[str, tuple[str, nn.Parameter]]  # name relative to module -> (owner module name, parameter)
    leaves: list[Any]  # argument leaves (tensors detached)
    in_dims: list[int | None]
    specs: list[TreeSpec]  # one per argument item
    keys: list[str | None]  # None: positional, else the keyword
    out_index: list[int] = field(default_factory=list)  # output leaves with a gradient hook
    out_unsqueeze: list[int | None] = field(default_factory=list)  # where example i's grad gets its batch dim back
    grads: dict[int, torch.Tensor] = field(default_factory=dict)  # out leaf position in out_index -> grad [n, ...]


def capture(module: nn.Module, args: tuple, kwargs: dict) -> tuple[list[Any], list[TreeSpec], list[str | None]]:
    leaves, specs, keys = [], [], []
    for i, value in enumerate([*args, *kwargs.values()]):
        flat, spec = tree_flatten(value)
        leaves += [t.detach() if isinstance(t, torch.Tensor) else t for t in flat]
        specs.append(spec)
        keys.append(None if i < len(args) else list(kwargs)[i - len(args)])
    return leaves, specs, keys


#: Bound, in bytes, on the per-example gradients one vectorized replay materializes at once.
REPLAY_BYTES = 64 * 2**20


def replay_sq_norms(replay: Replay, n: int, replaying: Callable[[], Any]) -> dict[str, torch.Tensor]:
    """Per-example squared gradient norm ``[n]`` of each owner module's parameters covered by this call."""
    names = list(replay.params)
    params = {f"m.{k}": replay.params[k][1].detach() for k in names}
    raw = _Raw(replay.module)
    batched_pos = [i for i, d in enumerate(replay.in_dims) if d is not None]
    batched_dims = [d for d in replay.in_dims if d is not None]
    present = [j for j in range(len(replay.out_index)) if j in replay.grads]
    if not present:
        return {}
    gs = [replay.grads[j] for j in present]

    def vjp(p: dict[str, torch.Tensor], batched: list[torch.Tensor], gs: list[torch.Tensor]) -> torch.Tensor:
        leaves = list(replay.leaves)
        for pos, dim, t in zip(batched_pos, batched_dims, batched, strict=True):
            leaves[pos] = t.unsqueeze(dim)  # back to a batch of one
        args, kwargs, start = [], {}, 0
        for spec, key in zip(replay.specs, replay.keys, strict=True):
            value = tree_unflatten(leaves[start : start + spec.num_leaves], spec)
            start += spec.num_leaves
            if key is None:
                args.append(value)
            else:
                kwargs[key] = value
        # The math attention kernel is plain ops with batching rules; the fused CPU kernels have none.
        with replaying(), sdpa_kernel(SDPBackend.MATH):
            out = torch.func.functional_call(raw, p, tuple(args), kwargs, strict=False)
        out_leaves = tree_flatten(out)[0]
        total = out_leaves[replay.out_index[present[0]]].new_zeros(())
        for j, g in zip(present, gs, strict=True):
            o, unsq = out_leaves[replay.out_index[j]], replay.out_unsqueeze[j]
            total = total + (o * (g if unsq is None else g.unsqueeze(unsq))).sum()
        return total

    batched = [replay.leaves[i] for i in batched_pos]
    per_example = sum(p.numel() for p in params.values()) * next(iter(params.values())).element_size() * 3
    chunk = max(1, REPLAY_BYTES // max(1, per_example))
    grad_fn = torch.func.grad(vjp)
    try:
        with torch.enable_grad():
            per_ex = torch.func.vmap(grad_fn, in_dims=(None, batched_dims, [0] * len(gs)), chunk_size=chunk)(
                params, batched, gs
            )
        out = {k: v.flatten(1).square().sum(1) for k, v in per_ex.items()}
    except (RuntimeError, NotImplementedError, ValueError) as err:  # a missing batching rule: same function, looped
        logger.debug("vmap replay of %s failed (%s); looping over examples", type(replay.module).__name__, err)
        out = {k: params[k].new_zeros(n) for k in params}
        with torch.enable_grad():
            for i in range(n):
                g_i = grad_fn(params, [t.select(d, i) for t, d in zip(batched, batched_dims, strict=True)],
                              [g[i] for g in gs])  # fmt: skip
                for k, v in g_i.items():
                    out[k][i] = v.square().sum()
    sq: dict[str, torch.Tensor] = {}
    for k in names:
        owner = replay.params[k][0]
        sq[owner] = sq[owner] + out[f"m.{k}"] if owner in sq else out[f"m.{k}"]
    return sq
