"""One way to call any classifier: a tensor batch (``model(x)``) or keyword tensors (``model(**batch)``).

``transformers`` models take keyword tensors (``pixel_values``, or ``input_ids`` + ``attention_mask``) and return an
output object with ``.logits``; the project's own models take one tensor and return logits. Scoring code calls
:func:`logits_of` and never needs to know which kind it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError

#: A batch of model inputs: one tensor ``[N, ...]`` or a mapping of keyword tensors, each with the batch as dim 0.
Inputs = torch.Tensor | Mapping[str, torch.Tensor]

__all__ = ["Inputs", "as_logits", "batch_size", "logits_of", "map_inputs", "select"]


def logits_of(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    """The logits ``[N, K]`` of ``model`` on ``inputs``: ``model(x)`` for a tensor, ``model(**inputs)`` for a mapping.

    The output may be the logits tensor itself or an object with a ``.logits`` attribute (``transformers`` outputs).
    """
    return as_logits(model(**inputs) if isinstance(inputs, Mapping) else model(inputs))


def as_logits(out: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, or its ``.logits`` (``transformers`` outputs)."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, Mapping):
        logits = out.get("logits")
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"model returned {type(out).__name__}, expected a logits tensor or an output with a `.logits` tensor."
        )
    return logits


def batch_size(inputs: Inputs) -> int:
    """N, the size of dim 0 shared by every tensor of the batch; raises a clear error if they disagree."""
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() < 1:
            raise InvalidArgumentError(
                f"inputs must be a tensor [N, ...], got a 0-dim tensor of shape {tuple(inputs.shape)}."
            )
        return inputs.shape[0]
    if not isinstance(inputs, Mapping) or not inputs:
        raise InvalidArgumentError(
            f"inputs must be a tensor or a non-empty mapping of tensors, got {type(inputs).__name__}."
        )
    sizes = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor) or value.dim() < 1:
            raise InvalidArgumentError(
                f"inputs[{key!r}] must be a tensor with the batch as dim 0, got {_describe(value)}."
            )
        sizes[key] = value.shape[0]
    if len(set(sizes.values())) > 1:
        raise InvalidArgumentError(f"every input tensor needs the same batch size in dim 0, got {sizes}.")
    return next(iter(sizes.values()))


def map_inputs(inputs: Inputs, fn: Callable[[torch.Tensor], torch.Tensor]) -> Inputs:
    """Apply ``fn`` to the tensor, or to every tensor of the mapping (kept a plain ``dict``)."""
    if isinstance(inputs, torch.Tensor):
        return fn(inputs)
    return {key: fn(value) for key, value in inputs.items()}


def select(inputs: Inputs, rows: slice) -> Inputs:
    """Rows ``rows`` of every tensor of the batch."""
    return map_inputs(inputs, lambda t: t[rows])


def _describe(value: Any) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
