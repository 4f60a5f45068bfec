"""Per-token and per-window scores of a causal LM: next-token loss, EL2N and the window loss GraNd differentiates.

A causal LM classifies every next token, so the Data Diet scores carry over token by token. Position t of a window
predicts token t + 1; ``next_token_labels`` marks the positions that count (a real next token) and gives every
other position (padding, the last real token) the label ``IGNORE``: pad positions and the first token (which no
position predicts) never count.

EL2N per token is ``||softmax(z_t) - onehot(y_t)||_2``; with ``p = softmax(z_t)``,
``||p - e_y||^2 = 1 - 2 p_y + sum_v p_v^2``, so only ``p_y`` and ``sum p^2`` are needed per position. They are
computed over chunks of positions, so at most ``CHUNK_BYTES`` of probabilities exist at a time, never ``T x V``
for a whole batch; ``hidden_token_scores`` goes further and computes the logits themselves chunk by chunk from the
hidden states before the output layer (``datadiet_hub.scoring.lm.head``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

IGNORE = -100
CHUNK_BYTES = 1 << 21
"""Float32 logits per chunk of positions on a CPU (2 MiB: 64 positions of an 8,000-token vocabulary), each chunk
worked by one thread: small enough to stay in its core's cache from the output layer (``hidden_token_scores``)
through every pass of the scores. On 2 cores, 0.5 MiB and 8 MiB chunks measured slower (more calls; spills)."""
DEVICE_CHUNK_BYTES = 1 << 26
"""Float32 logits per chunk on an accelerator (64 MiB), where each call's launch costs more than a cache miss."""

__all__ = [
    "IGNORE",
    "default_chunk_bytes",
    "document_loss",
    "hidden_token_scores",
    "lm_loss",
    "next_token_labels",
    "token_scores",
    "window_sums",
]


def next_token_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``labels[b, t] = input_ids[b, t + 1]`` where both positions are real tokens, else ``IGNORE`` ([B, T])."""
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    labels = torch.full_like(input_ids, IGNORE)
    counts = mask[:, :-1] & mask[:, 1:]
    labels[:, :-1] = torch.where(counts, input_ids[:, 1:], torch.full_like(input_ids[:, 1:], IGNORE))
    return labels


def default_chunk_bytes(device: torch.device) -> int:
    """Logits per chunk: ``CHUNK_BYTES`` on a CPU, ``DEVICE_CHUNK_BYTES`` on an accelerator."""
    return CHUNK_BYTES if device.type == "cpu" else DEVICE_CHUNK_BYTES


def token_scores(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    chunk_bytes: int | None = None,
    want: tuple[str, ...] = ("loss", "el2n"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross entropy and EL2N of every position ``[B, T]`` (float32; 0 where ``labels == IGNORE``, and
    0 everywhere for a score not in ``want``).

    The softmax is taken in float32 over chunks of the counted positions only, so at most ``chunk_bytes`` of
    probabilities are alive at once whatever the batch, context and vocabulary (default: ``default_chunk_bytes``).
    """
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    step = max(1, (chunk_bytes or default_chunk_bytes(logits.device)) // (4 * vocab))
    return _chunked(lambda part: _wide(flat[part]), labels, step, want, fresh=False, dtype=_wide_dtype(logits.dtype))


def hidden_token_scores(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    labels: torch.Tensor,
    *,
    chunk_bytes: int | None = None,
    want: tuple[str, ...] = ("loss", "el2n"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``token_scores`` of the logits ``hidden @ weight^T + bias`` (``hidden`` ``[B, T, D]``, ``weight`` ``[V, D]``),
    computed a chunk of positions at a time: each chunk's logits are reduced to the scores while they are still in
    the caches, and the ``[B, T, V]`` logits never exist."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    step = max(1, (chunk_bytes or default_chunk_bytes(hidden.device)) // (4 * weight.shape[0]))
    dtype = _wide_dtype(torch.promote_types(hidden.dtype, weight.dtype))
    return _chunked(
        lambda part: _wide(F.linear(flat[part], weight, bias)), labels, step, want, fresh=True, dtype=dtype
    )


@torch.no_grad()  # scores, never differentiated (GraNd differentiates ``document_loss``)
def _chunked(
    logits_at: Callable[[slice | torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    step: int,
    want: tuple[str, ...],
    *,
    fresh: bool,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the counted positions, ``step`` at a time; ``logits_at(positions)`` gives their logits ``[n, V]``
    (``fresh``: a new tensor the scores may overwrite), in ``dtype`` (float32, or float64 for float64 logits).

    With ``e = exp(z - max z)`` and ``s = sum e`` per position, ``lse = max z + log s``, the loss is ``lse - z_y``,
    ``p_y = exp(z_y - lse)`` and ``sum p^2 = ||e||^2 / s^2``: one exponential per logit. Each chunk only leaves four
    numbers per position (``z_y``, ``max z``, ``s``, ``||e||``); the rest is done once for the whole batch, so few
    operations run per chunk.
    """
    targets = labels.reshape(-1)
    counted = targets != IGNORE
    if bool(counted.all()):  # every position counts (full windows): plain slices, no index copies
        rows = None
        n = len(targets)
        parts: list[slice | torch.Tensor] = [slice(start, min(n, start + step)) for start in range(0, n, step)]
    else:
        rows = counted.nonzero().squeeze(1)
        n = len(rows)
        parts = [rows[start : start + step] for start in range(0, n, step)]
    z_y, top, total, norm = (torch.empty(n, dtype=dtype, device=labels.device) for _ in range(4))
    jobs, done = [], 0
    for part in parts:
        m = (part.stop - part.start) if isinstance(part, slice) else len(part)
        jobs.append((part, slice(done, done + m)))
        done += m

    def run(todo: list[tuple[slice | torch.Tensor, slice]]) -> None:
        for part, at in todo:
            z = logits_at(part)
            z_y[at] = z.gather(1, targets[part].unsqueeze(1)).squeeze(1)
            peak = z.amax(1, keepdim=True)
            top[at] = peak.squeeze(1)
            e = (z.sub_(peak) if fresh else z - peak).exp_()
            total[at] = e.sum(1)
            if "el2n" in want:
                norm[at] = torch.linalg.vector_norm(e, dim=1)  # one pass (vecdot would multiply, then sum)

    _run_split(run, jobs, labels.device)
    lse = top + total.log()
    loss = torch.zeros(targets.shape, dtype=torch.float32, device=labels.device)
    el2n = torch.zeros_like(loss)
    where = slice(None) if rows is None else rows
    if "loss" in want:
        loss[where] = (lse - z_y).float()
    if "el2n" in want:
        el2n[where] = (1 - 2 * torch.exp(z_y - lse) + (norm / total).square()).clamp_min(0).sqrt().float()
    return loss.view(labels.shape), el2n.view(labels.shape)


def _run_split(run: Callable[[list], None], jobs: list, device: torch.device) -> None:
    """``run(jobs)``; on a CPU with several torch threads, as one share of the jobs per thread, each share run by its
    own worker thread with one torch thread.

    Chunks of a few hundred kilobytes make short operations; run with every torch thread, each is a parallel region
    that waits for all threads, so on cores shared with other jobs a descheduled thread stalls every one of them.
    Independent workers only meet at the end. Autocast and grad mode are per thread, so under autocast the jobs run
    here, in this thread; the workers run without gradients, as the caller does.
    """
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    if threads < 2 or len(jobs) < 2 or torch.is_autocast_enabled("cpu"):
        run(jobs)
        return
    shares = [jobs[k::threads] for k in range(min(threads, len(jobs)))]
    for future in [_workers(threads).submit(_without_grad, run, share) for share in shares]:
        future.result()


_POOLS: dict[int, ThreadPoolExecutor] = {}
os.register_at_fork(after_in_child=_POOLS.clear)  # a forked child has none of the parent's threads: start its own


def _workers(threads: int) -> ThreadPoolExecutor:
    """Worker threads that each run torch with one thread (``set_num_threads`` is per thread for the OpenMP pool)."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(
            threads, thread_name_prefix="lm-scores", initializer=torch.set_num_threads, initargs=(1,)
        )
    return _POOLS[threads]


def _without_grad(run: Callable[[list], None], share: list) -> None:
    with torch.no_grad():
        run(share)


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


def _wide_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32
