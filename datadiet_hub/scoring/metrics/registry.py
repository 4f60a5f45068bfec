"""The metric computations, registered by the name their declaration has in ``datadiet_hub.metrics``.

Two kinds: a ``@register`` function of ``(model, batch) -> [B]`` scores, evaluated on every scored checkpoint over
the un-augmented rows (in eval mode, sharded across processes, gathered by ``idx``); and a
``@register_from_training`` function of the checkpoint's tensors ``-> {column: [N]}`` for a score counted while
training (forgetting). ``score.py`` runs whatever is requested; nothing else in the engine names a metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from datadiet_hub import metrics as declarations
from datadiet_hub.errors import InvalidArgumentError

from ..forward import logits_of
from ..loops import LABELS, Batch, model_inputs
from .el2n import el2n_from_logits

BatchFn = Callable[[nn.Module, Batch], torch.Tensor]
TrainingFn = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Computation:
    """How one declared metric is computed: per batch of a checkpoint's rows, or from the training state."""

    name: str
    per_batch: BatchFn | None = None
    grad: bool = False
    batch_size: str = "eval_batch_size"
    from_training: TrainingFn | None = None


COMPUTATIONS: dict[str, Computation] = {}


def _check_declared(name: str) -> None:
    if name not in declarations.METRICS:
        raise InvalidArgumentError(
            f"Cannot register a computation for {name!r}: declare it first with datadiet_hub.metrics.declare.",
            value=name,
        )


def register(name: str, *, grad: bool = False, batch_size: str = "eval_batch_size") -> Callable[[BatchFn], BatchFn]:
    """Register ``func(model, batch) -> [B] scores`` for the declared metric ``name``.

    ``grad``: the function needs autograd (scored with gradients on, still in eval mode); ``batch_size``: the
    ``ScoringConfig`` field that sizes its batches."""

    def decorate(func: BatchFn) -> BatchFn:
        _check_declared(name)
        COMPUTATIONS[name] = Computation(name, per_batch=func, grad=grad, batch_size=batch_size)
        return func

    return decorate


def register_from_training(name: str) -> Callable[[TrainingFn], TrainingFn]:
    """Register ``func(checkpoint tensors) -> {column: [N] tensor}`` for the declared metric ``name``: the values
    and flags come from the training state saved with the checkpoint (a training callback must record them)."""

    def decorate(func: TrainingFn) -> TrainingFn:
        _check_declared(name)
        COMPUTATIONS[name] = Computation(name, from_training=func)
        return func

    return decorate


def get(name: str) -> Computation:
    """The computation of metric ``name``; ``InvalidArgumentError`` when it is declared but not registered."""
    declarations.get(name)
    try:
        return COMPUTATIONS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"Metric {name!r} is declared but has no computation; register one with "
            "datadiet_hub.scoring.metrics.registry.register.",
            value=name,
        ) from None


# -- causal language models (a corpus without labels: ``datadiet_hub.scoring.lm``) ----------------------------------

TokenFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TOKEN_COMPUTATIONS: dict[str, TokenFn] = {}
"""Per-token scores of a causal LM: ``func(logits [B, T, V], next-token labels [B, T]) -> [B, T]`` (0 where a
position predicts nothing); a document's score is their mean over its predicted tokens."""
WINDOW_COMPUTATIONS: dict[str, Computation] = {}
"""Per-window scores of a causal LM that need their own pass (GraNd): ``func(model, batch) -> [B]``; a document's
score is the token-weighted mean over its windows."""


def register_tokens(name: str) -> Callable[[TokenFn], TokenFn]:
    """Register a per-token causal-LM score for the declared metric ``name`` (one forward serves them all)."""

    def decorate(func: TokenFn) -> TokenFn:
        _check_declared(name)
        TOKEN_COMPUTATIONS[name] = func
        return func

    return decorate


def register_windows(
    name: str, *, grad: bool = False, batch_size: str = "eval_batch_size"
) -> Callable[[BatchFn], BatchFn]:
    """Register a per-window causal-LM score ``func(model, batch) -> [B]`` for the declared metric ``name``."""

    def decorate(func: BatchFn) -> BatchFn:
        _check_declared(name)
        WINDOW_COMPUTATIONS[name] = Computation(name, per_batch=func, grad=grad, batch_size=batch_size)
        return func

    return decorate


@register_tokens("loss")
def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross entropy per position."""
    from ..lm.metrics import token_scores

    return token_scores(logits, labels, want=("loss",))[0]


@register_tokens("el2n")
def token_el2n(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """||softmax - onehot(next token)||_2 per position, from p_y and sum p^2 over chunks of positions."""
    from ..lm.metrics import token_scores

    return token_scores(logits, labels, want=("el2n",))[1]


@register_windows("grand", grad=True, batch_size="grand_batch_size")
def window_grand(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Exact gradient norm of each window's mean next-token loss (one forward + one backward per batch)."""
    from ..lm.metrics import document_loss
    from .grand import per_example_grad_norms

    return per_example_grad_norms(model, model_inputs(batch), batch[LABELS], loss_fn=document_loss).float()


@register("el2n")
def el2n(model: nn.Module, batch: Batch) -> torch.Tensor:
    """EL2N of one batch in eval mode."""
    return el2n_from_logits(logits_of(model, model_inputs(batch)).float(), batch[LABELS])


@register("grand", grad=True, batch_size="grand_batch_size")
def grand(model: nn.Module, batch: Batch) -> torch.Tensor:
    """GraNd of one batch; eval mode: BatchNorm uses its running statistics, whatever the metric function does."""
    from .grand import per_example_grad_norms

    return per_example_grad_norms(model, model_inputs(batch), batch[LABELS]).float()


@register_from_training("forgetting")
def forgetting(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The forgetting counts and the never-learned flag the training callback saved with the checkpoint."""
    return {
        "forgetting": tensors["forgetting.counts"].to(torch.float32),
        "never_learned": (~tensors["forgetting.learned"].bool()).to(torch.uint8),
    }
