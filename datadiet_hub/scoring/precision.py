"""``--precision``: the forward passes of training and scoring in float32 (the default) or under bfloat16 autocast.

bf16 autocast runs matrix multiplications and convolutions in bfloat16 (8 bits of mantissa) and keeps the
weights, the optimizer state, reductions and the scores in float32. It is faster where the hardware has bf16
units (recent GPUs, some CPUs) and changes the scores slightly: ``docs/performance.md`` reports the measured
agreement with float32 scores (``experiments/precision_agreement.py``). It is never a default.

GraNd is the exception: its per-example gradient norms replay each layer's weight gradient from the captured
inputs and output gradients, which autocast leaves in mixed dtypes (a bfloat16 output gradient against a float32
input), so a bf16 GraNd pass runs a bfloat16 copy of the model on bfloat16 inputs instead (``in_bfloat16``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager

import torch

from .config import PRECISIONS
from .loops import evaluate


def autocast_for(precision: str, device: torch.device | str) -> Callable[[], AbstractContextManager]:
    """A factory of the context that forward passes run under: ``torch.autocast`` to bfloat16, or nothing."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "bf16":
        device_type = torch.device(device).type
        return lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    raise ValueError(f"Unknown precision {precision!r}. Choose between {', '.join(PRECISIONS)}.")


def in_bfloat16(model: torch.nn.Module, batches: Iterable[Mapping]) -> tuple[torch.nn.Module, Iterator[dict]]:
    """A bfloat16 copy of ``model`` and the batches with their floating-point tensors cast to bfloat16 (indices,
    labels and token ids unchanged); the caller's model is left as it is."""
    copied = copy.deepcopy(model).to(torch.bfloat16)

    def cast(batch: Mapping) -> dict:
        return {
            key: value.to(torch.bfloat16) if torch.is_tensor(value) and value.is_floating_point() else value
            for key, value in batch.items()
        }

    return copied, (cast(batch) for batch in batches)


def evaluate_at(
    precision: str,
    model: torch.nn.Module,
    batches: Iterable[Mapping],
    per_example: Callable[[torch.nn.Module, Mapping], torch.Tensor],
    device: torch.device | str,
    *,
    grad: bool = False,
) -> torch.Tensor:
    """``loops.evaluate`` of a scoring pass under ``precision``, in float32: autocast for forward-only metrics, and
    for metrics that need gradients under bf16 the bfloat16 copy of :func:`in_bfloat16` without autocast. Classifier
    and corpus scoring both go through here, so ``--precision`` means the same for both."""
    autocast = autocast_for(precision, device)
    if precision == "bf16" and grad:
        model, batches = in_bfloat16(model, batches)
        autocast = autocast_for("fp32", device)
    return evaluate(model, batches, per_example, grad=grad, autocast=autocast).to(torch.float32)
