"""Per-token and per-window scores of a causal LM: next-token loss, EL2N and the window loss GraNd differentiates.

A causal LM classifies every next token, so the Data Diet scores carry over token by token. Position t of a window
predicts token t + 1; ``next_token_labels`` marks the positions that count (a real next token) and gives every
other position (padding, the last real token) the label ``IGNORE``: pad positions and the first token (which no
position predicts) never count.

EL2N per token is ``||softmax(z_t) - onehot(y_t)||_2``; with ``p = softmax(z_t)``,
``||p - e_y||^2 = 1 - 2 p_y + sum_v p_v^2``, so only ``p_y`` and ``sum p^2`` are needed per position. They are
computed over chunks of positions, so at most ``CHUNK_BYTES`` of probabilities exist at a time, never ``T x V``
for a whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100
CHUNK_BYTES = 1 << 26
"""Float32 probabilities held at once by ``token_scores`` (64 MiB: 8,192 positions of a 2,048-token vocabulary)."""

__all__ = ["IGNORE", "document_loss", "lm_loss", "next_token_labels", "token_scores", "window_sums"]


def next_token_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``labels[b, t] = input_ids[b, t + 1]`` where both positions are real tokens, else ``IGNORE`` ([B, T])."""
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    labels = torch.full_like(input_ids, IGNORE)
    counts = mask[:, :-1] & mask[:, 1:]
    labels[:, :-1] = torch.where(counts, input_ids[:, 1:], torch.full_like(input_ids[:, 1:], IGNORE))
    return labels


def token_scores(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    want: tuple[str, ...] = ("loss", "el2n"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross entropy and EL2N of every position ``[B, T]`` (float32; 0 where ``labels == IGNORE``, and
    0 everywhere for a score not in ``want``).

    The softmax is taken in float32 over chunks of the counted positions only, so at most ``chunk_bytes`` of
    probabilities are alive at once whatever the batch, context and vocabulary.
    """
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    targets = labels.reshape(-1)
    rows = (targets != IGNORE).nonzero().squeeze(1)
    loss = torch.zeros(targets.shape, dtype=torch.float32, device=logits.device)
    el2n = torch.zeros_like(loss)
    step = max(1, chunk_bytes // (4 * vocab))
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        z = _wide(flat[part])
        y = targets[part].unsqueeze(1)
        if "loss" in want:  # log-sum-exp minus the target's logit: no [positions, V] temporary
            loss[part] = (torch.logsumexp(z, dim=1) - z.gather(1, y).squeeze(1)).float()
        if "el2n" in want:  # one fused softmax, then p_y and sum_v p_v^2
            p = torch.softmax(z, dim=1)
            sum_p2 = torch.linalg.vector_norm(p, ord=2, dim=1).square()
            el2n[part] = (1 - 2 * p.gather(1, y).squeeze(1) + sum_p2).clamp_min(0).sqrt().float()
    return loss.view(labels.shape), el2n.view(labels.shape)


def window_sums(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per window (row): ``loss`` and ``el2n`` summed over its counted positions, and ``tokens`` (how many)."""
    loss, el2n = token_scores(logits, labels)
    return {"loss": loss.sum(1), "el2n": el2n.sum(1), "tokens": (labels != IGNORE).sum(1)}


def document_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's own loss ``[B]``: the mean next-token cross entropy over its counted positions (0 for a row with
    none). GraNd differentiates this (the mean, not the token sum), so its scale does not grow with length."""
    per_token = F.cross_entropy(
        _wide(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="none"
    ).view(labels.shape)
    counts = (labels != IGNORE).sum(1).clamp_min(1)
    return per_token.sum(1) / counts


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The training loss: mean next-token cross entropy over every counted position of the batch."""
    return F.cross_entropy(_wide(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def _wide(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits in float32 for the softmax; float32 and float64 as they are."""
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
