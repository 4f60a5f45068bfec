"""Batches of context windows in the shape the engine's loops take: ``idx`` (window numbers), the model's keyword
inputs (``input_ids``, ``attention_mask``, right-padded to the longest window of the batch) and ``labels`` (the
next-token targets, ``IGNORE`` where nothing is predicted).

Training order follows the engine's rule: epoch e visits every window in ``randperm(W, generator=order(e))`` in
chunks of ``batch_size``, so a step's batch depends only on its number and a resumed run replays the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..loops import IDX, LABELS
from .corpus import Corpus, Windows
from .metrics import next_token_labels


def make_batch(corpus: Corpus, windows: Windows, rows: np.ndarray, device: torch.device | str | None = None) -> dict:
    """The batch of windows ``rows`` (window numbers)."""
    lengths = windows.length[rows]
    width = int(lengths.max()) if len(rows) else 1
    ids = np.full((len(rows), width), corpus.pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (start, length) in enumerate(zip(windows.start[rows], lengths, strict=True)):
        ids[i, :length] = corpus.tokens[start : start + length]
        mask[i, :length] = 1
    input_ids = torch.from_numpy(ids).to(device)
    attention_mask = torch.from_numpy(mask).to(device)
    return {
        IDX: torch.from_numpy(np.asarray(rows, dtype=np.int64)),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        LABELS: next_token_labels(input_ids, attention_mask),
    }


def train_batches(
    corpus: Corpus,
    windows: Windows,
    *,
    batch_size: int,
    steps: range,
    order: Callable[[int], torch.Generator],
    device: torch.device | str | None = None,
) -> Iterator[dict]:
    """Training batches for the optimizer steps in ``steps`` (the last, partial chunk of an epoch is kept)."""
    n = len(windows)
    per_epoch = math.ceil(n / batch_size)
    perm, perm_epoch = np.empty(0, dtype=np.int64), -1
    for step in steps:
        epoch, b = divmod(step, per_epoch)
        if epoch != perm_epoch:
            perm, perm_epoch = torch.randperm(n, generator=order(epoch)).numpy(), epoch
        yield make_batch(corpus, windows, perm[b * batch_size : (b + 1) * batch_size], device)


def eval_rows(windows: Windows, rank: int = 0, world: int = 1) -> np.ndarray:
    """This process's windows for scoring, longest first (batches pad little); strided over processes."""
    order = np.argsort(-windows.length, kind="stable")
    return order[rank::world]


def eval_batches(
    corpus: Corpus, windows: Windows, rows: np.ndarray, *, batch_size: int, device: torch.device | str | None = None
) -> Iterator[dict]:
    """Scoring batches of the windows ``rows``, in that order."""
    for start in range(0, len(rows), batch_size):
        yield make_batch(corpus, windows, rows[start : start + batch_size], device)
