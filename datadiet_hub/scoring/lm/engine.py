"""Train one seed of a reference LM and score its checkpoints, on the engine's own loop, checkpoints and seeds.

Training is ``datadiet_hub.scoring.loops.train_loop`` with the next-token loss, the data order and reseeding of
``datadiet_hub.scoring.train`` (``stream_seed``/``seed_generator``), checkpoints of ``datadiet_hub.scoring.checkpoint``
(one at every score time plus the latest, so a killed run resumes from its last checkpoint and replays the same
batches). Scoring is ``loops.evaluate`` over windows, then windows are folded into documents.

Aggregation over a document's windows (``fold_windows``): ``loss`` and ``el2n`` are means over all of the document's
predicted tokens (the window sums added, divided by the token count), which is the token-weighted mean of the window
means; ``grand`` is the token-weighted mean of the windows' gradient norms. For a document that fits one window,
``grand`` is exactly the norm of the gradient of the document's mean next-token loss; for a longer one it is not the
norm of the whole document's gradient (which would need every window in one backward pass).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ScoringConfig
from ..loops import LABELS, Batch, model_inputs
from ..metrics.registry import TOKEN_COMPUTATIONS, WINDOW_COMPUTATIONS
from ..precision import evaluate_at
from ..train import Schedule, seed_generator, start_seed
from . import batches as lm_batches
from .corpus import Corpus, Windows
from .metrics import IGNORE, lm_loss
from .models import DEFAULT_LM, build_lm

logger = logging.getLogger(__name__)


def make_lm(cfg: ScoringConfig, corpus: Corpus, seed: int) -> nn.Module:
    return build_lm(
        cfg.model or DEFAULT_LM,
        vocab_size=corpus.vocab_size,
        max_length=cfg.max_length,
        pad_token_id=corpus.pad_id,
        width=cfg.width,
        seed=seed,
    )


def train_lm_seed(
    cfg: ScoringConfig,
    corpus: Corpus,
    windows: Windows,
    seed: int,
    schedule: Schedule,
    state_dir: Path,
    device: torch.device,
    *,
    progress: bool = True,
) -> None:
    """Train ``seed`` to the end of the schedule, resuming from its latest checkpoint if one exists (the setup and
    checkpoints of a classifier's seed: ``datadiet_hub.scoring.train.start_seed``)."""
    begun = start_seed(cfg, make_lm(cfg, corpus, seed), seed, schedule, state_dir, device)
    if begun.finished:
        return
    batches = lm_batches.train_batches(
        corpus,
        windows,
        batch_size=cfg.batch_size,
        steps=range(begun.start, schedule.total_steps),
        order=lambda epoch: seed_generator("order", seed, epoch),
        device=device,
    )
    begun.train(cfg, batches, device, loss_fn=lm_loss, progress=progress)


FUSED_TOKEN_SCORES = ("loss", "el2n")
"""Per-token scores computed together in one pass over each chunk of logits (``head.next_token_scores``), from the
hidden states when the model allows; other registered per-token scores take the model's full logits."""


def _token_sums(names: list[str]):
    """``(model, batch) -> [B, 1 + len(names)]``: each window's predicted tokens, then the sum over them of every
    registered per-token score in ``names``, from one forward pass."""

    def per_window(model: nn.Module, batch: Batch) -> torch.Tensor:
        from ..forward import logits_of
        from .head import next_token_scores
        from .metrics import token_scores

        inputs, labels = model_inputs(batch), batch[LABELS]
        fused = tuple(name for name in names if name in FUSED_TOKEN_SCORES)
        others = [name for name in names if name not in FUSED_TOKEN_SCORES]
        per_token: dict[str, torch.Tensor] = {}
        pair: tuple[torch.Tensor, torch.Tensor] | None = None
        if others:  # one forward for all: the full logits
            logits = logits_of(model, inputs)
            per_token.update({name: TOKEN_COMPUTATIONS[name](logits, labels) for name in others})
            pair = token_scores(logits, labels, want=fused) if fused else None
        elif fused:  # the logits need not exist at once (from the hidden states when the model allows)
            pair = next_token_scores(model, inputs, labels, want=fused)
        if pair is not None:
            per_token.update({name: pair[FUSED_TOKEN_SCORES.index(name)] for name in fused})
        columns = [(labels != IGNORE).sum(1).float()] + [per_token[name].sum(1) for name in names]
        return torch.stack(columns, dim=1)

    return per_window


def score_windows(
    cfg: ScoringConfig,
    model: nn.Module,
    corpus: Corpus,
    windows: Windows,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This process's windows and, per window, the sums of ``loss`` and ``el2n`` over its predicted tokens,
    ``tokens`` (how many) and ``grand`` (the gradient norm of its mean loss) as requested."""
    rows = lm_batches.eval_rows(windows, rank, world)
    per_token = [m for m in cfg.scores if m in TOKEN_COMPUTATIONS]
    batches = lm_batches.eval_batches(corpus, windows, rows, batch_size=cfg.eval_batch_size, device=device)
    sums = evaluate_at(cfg.precision, model, batches, _token_sums(per_token), device)
    out: dict[str, torch.Tensor] = {"tokens": sums[:, 0]}
    out.update({name: sums[:, 1 + k] for k, name in enumerate(per_token)})
    for name in cfg.scores:
        if name in WINDOW_COMPUTATIONS:
            computation = WINDOW_COMPUTATIONS[name]
            size = getattr(cfg, computation.batch_size)
            batches = lm_batches.eval_batches(corpus, windows, rows, batch_size=size, device=device)
            assert computation.per_batch is not None
            out[name] = evaluate_at(
                cfg.precision, model, batches, computation.per_batch, device, grad=computation.grad
            )
    return torch.from_numpy(rows), out


def fold_windows(
    windows: Windows, num_docs: int, values: dict[str, np.ndarray], metrics: list[str]
) -> dict[str, np.ndarray]:
    """Per-document scores from per-window values (see the module docstring) and ``num_tokens``, the number of
    predicted tokens per document; a document with none scores 0. Per-token scores arrive as window sums, per-window
    scores (``WINDOW_COMPUTATIONS``: grand) as one value per window."""
    from ..metrics.registry import WINDOW_COMPUTATIONS

    tokens = np.bincount(windows.doc, weights=values["tokens"], minlength=num_docs)
    safe = np.maximum(tokens, 1)
    out = {"num_tokens": tokens.astype(np.int64)}
    for metric in metrics:
        weights = values[metric] * values["tokens"] if metric in WINDOW_COMPUTATIONS else values[metric]
        out[metric] = (np.bincount(windows.doc, weights=weights, minlength=num_docs) / safe).astype(np.float32)
    return out
