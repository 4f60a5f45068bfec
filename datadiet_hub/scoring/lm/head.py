"""Next-token ``loss`` and ``el2n`` from the hidden states before the output layer, without ``[B, T, V]`` logits.

A plain eval forward of a small LM spends most of its time in the output layer, and writing its ``[B, T, V]``
logits costs as much again as reading them back for the scores. Scoring from the last hidden states instead
applies the output layer to a few positions at a time and reduces each chunk of logits to the scores while it is
still in the CPU caches (``metrics.hidden_token_scores``), so ``loss`` + ``el2n`` cost about what the plain forward
costs.

That needs the logits to be exactly ``hidden @ W^T + b``. The registry's ``CausalTransformer`` is built that way.
A ``transformers`` model is split only when it is the library's own ``*ForCausalLM`` class of a model type whose
forward is known to end in a plain ``lm_head(hidden)`` (``PLAIN_HEAD_MODEL_TYPES``), its output layer is an
``nn.Linear``, and, on the first batch it scores, the split reproduces the model's own logits. Anything else (logit
soft-capping as in Gemma 2, logit scaling as in Cohere or Granite, a final logits bias, a vocabulary sliced after the
head, a subclass) is scored from the model's full logits, which gives the same scores at the cost of the extra pass.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..forward import Inputs, logits_of, select
from .metrics import hidden_token_scores, token_scores
from .models import CausalTransformer

logger = logging.getLogger(__name__)

PLAIN_HEAD_MODEL_TYPES = frozenset(
    {
        "gemma",
        "gpt2",
        "gpt_neo",
        "gpt_neox",
        "gptj",
        "llama",
        "mistral",
        "olmo",
        "olmo2",
        "phi",
        "phi3",
        "qwen2",
        "qwen3",
        "smollm3",
        "stablelm",
        "starcoder2",
    }
)
"""``transformers`` model types whose ``*ForCausalLM.forward`` computes ``logits = lm_head(last_hidden_state)`` and
nothing after it (read from their modeling code, transformers 5)."""

_CHECKED: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class OutputSplit:
    """A causal LM as ``hidden_states(inputs) -> [B, T, D]`` followed by the linear map ``weight``, ``bias``."""

    hidden_states: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
    weight: torch.Tensor
    bias: torch.Tensor | None


def output_split(model: nn.Module) -> OutputSplit | None:
    """The split of ``model`` at its output layer when its logits are exactly that layer of its hidden states (see
    the module docstring), else ``None``."""
    if isinstance(model, CausalTransformer) and type(model).forward is CausalTransformer.forward:
        head = model.head
        return OutputSplit(lambda inputs: model.hidden_states(**inputs), head.weight, head.bias)
    return _transformers_split(model)


def _transformers_split(model: nn.Module) -> OutputSplit | None:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in PLAIN_HEAD_MODEL_TYPES or not type(model).__module__.startswith("transformers.models."):
        return None
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:  # pragma: no cover - depends on the install
        return None
    if type(model).__name__ != MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type):
        return None
    head = model.get_output_embeddings()  # type: ignore[operator]
    base = getattr(model, "base_model", None)
    if type(head) is not nn.Linear or not isinstance(base, nn.Module) or base is model:
        return None

    def hidden_states(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return base(**inputs, use_cache=False).last_hidden_state

    return OutputSplit(hidden_states, head.weight, head.bias)


def _reproduces_logits(model: nn.Module, split: OutputSplit, inputs: Inputs) -> bool:
    """Whether the split gives the model's own logits on the first example of ``inputs``, to rounding."""
    one = select(inputs, slice(0, 1))
    assert isinstance(one, Mapping)
    full = logits_of(model, one)
    mine = F.linear(split.hidden_states(one), split.weight, split.bias)
    if full.shape != mine.shape:
        return False
    scale = float(full.abs().max()) if full.numel() else 0.0
    eps = torch.finfo(full.dtype).eps if full.is_floating_point() else 0.0
    return bool(((mine - full).abs() <= 64 * eps * (1.0 + scale)).all())


def next_token_scores(
    model: nn.Module, inputs: Inputs, labels: torch.Tensor, *, want: tuple[str, ...] = ("loss", "el2n")
) -> tuple[torch.Tensor, torch.Tensor]:
    """``token_scores`` of ``model`` on ``inputs`` (``[B, T]`` loss and EL2N), from the hidden states when the model
    splits at its output layer (``output_split``), else from its full logits."""
    split = output_split(model) if isinstance(inputs, Mapping) else None
    if split is not None and model not in _CHECKED:
        try:
            _CHECKED[model] = _reproduces_logits(model, split, inputs)
        except (TypeError, ValueError, AttributeError) as err:  # a base model that takes other arguments
            logger.debug("%s: no split at the output layer (%s)", type(model).__name__, err)
            _CHECKED[model] = False
        if not _CHECKED[model]:
            logger.info(
                "%s: its logits are not exactly its output layer applied to its hidden states; scoring from its "
                "full logits",
                type(model).__name__,
            )
    if split is None or not _CHECKED[model]:
        return token_scores(logits_of(model, inputs), labels, want=want)
    assert isinstance(inputs, Mapping)
    return hidden_token_scores(split.hidden_states(inputs), split.weight, split.bias, labels, want=want)
