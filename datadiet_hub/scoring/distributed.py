"""The accelerate plumbing of a scoring run: one Accelerator, work done on the main process with its error raised
on every process, broadcasting a value, and gathering per-process ``(idx, value)`` rows into idx order.

Every function works unchanged on 1 process (no collectives are issued) and on N (gloo or NCCL).
"""

from __future__ import annotations

import os
import pickle
import platform
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:
    from accelerate import Accelerator

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 604800  # a week: see make_accelerator


def make_accelerator() -> Accelerator:
    """The run's Accelerator (CPU when no GPU is present).

    Processes without a seed to train wait at a barrier while the others train: the default 30 min collective
    timeout would kill long runs (10 seeds on 8 GPUs), so they wait as long as a run may take
    (``DATADIET_DIST_TIMEOUT_S``, default a week)."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    timeout = timedelta(seconds=float(os.environ.get("DATADIET_DIST_TIMEOUT_S", str(DEFAULT_TIMEOUT_S))))
    return Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[InitProcessGroupKwargs(timeout=timeout)])


def run_on_main(accelerator: Accelerator, func: Callable[[], T]) -> T | None:
    """Run ``func`` on the main process only and re-raise its error on *every* process, so that a failure there
    (bad config, missing dataset, full disk) stops the whole group instead of leaving the others at a barrier.
    Returns ``func()`` on the main process and None elsewhere."""
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = func()
        except Exception as err:  # noqa: BLE001 -- re-raised below, on every process
            error = err
    if accelerator.num_processes > 1:
        shipped = broadcast(accelerator, None if error is None else _portable(error))
        if shipped is not None and error is None:
            raise shipped
    if error is not None:
        raise error
    return result


def _portable(error: Exception) -> Exception:
    """The error itself if it survives pickling (to reach the other processes), else a RuntimeError naming it."""
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 -- any unpicklable exception
        return RuntimeError(f"{type(error).__name__} on the main process: {error}")


def broadcast(accelerator: Accelerator, value: Any) -> Any:
    """The main process's ``value`` (any picklable object) on every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def gather_rows(
    accelerator: Accelerator, rows: torch.Tensor, values: dict[str, torch.Tensor], n: int
) -> dict[str, np.ndarray]:
    """Gather per-process ``(idx, value)`` pairs and place them by idx.

    The processes' rows may be any partition of 0..N-1 (strided rows, whole batches dealt round-robin, uneven
    shares): each process pads its rows to the longest share with idx -1, padding is dropped, and the gathered idx
    must cover 0..N-1 exactly once.

    Args:
        accelerator: the run's Accelerator (``gather`` is a collective: every process calls this).
        rows: this process's source rows.
        values: per-row tensors of this process, aligned with ``rows``; the same names on every process.
        n: the number of rows in the split.

    Returns:
        ``{name: array [n]}`` with entry i the value of source row i.
    """
    for name, tensor in values.items():
        if len(tensor) != len(rows):
            raise ValueError(f"values[{name!r}] has {len(tensor)} entries for {len(rows)} rows; give one per row.")
    counts = accelerator.gather(torch.tensor([len(rows)], dtype=torch.int64, device=accelerator.device))
    width = int(counts.max()) if counts.numel() else 0
    idx = torch.full((width,), -1, dtype=torch.int64)
    idx[: len(rows)] = rows.to(torch.int64)
    all_idx = accelerator.gather(idx.to(accelerator.device)).cpu().numpy()
    valid = all_idx >= 0
    covered = np.unique(all_idx[valid])
    if covered.size != n or valid.sum() != n or (n and covered[-1] != n - 1):
        raise RuntimeError(
            f"Sharded scoring covered {covered.size} distinct of {n} rows ({int(valid.sum())} "
            "gathered); every row must be scored exactly once."
        )
    out = {}
    for name in sorted(values):  # same order on every process: gather is a collective
        tensor = values[name]
        padded = torch.zeros(width, dtype=tensor.dtype)
        padded[: len(tensor)] = tensor
        gathered = accelerator.gather(padded.to(accelerator.device)).cpu().numpy()
        placed = np.empty(n, dtype=gathered.dtype)
        placed[all_idx[valid]] = gathered[valid]
        out[name] = placed
    return out


def describe_hardware(accelerator: Accelerator) -> str:
    """``"2 process(es) on NVIDIA H100 ..."`` or ``"1 process(es) on CPU (16 cores, x86_64)"``."""
    if accelerator.device.type == "cuda":
        device = torch.cuda.get_device_name(accelerator.device)
    else:
        device = f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    return f"{accelerator.num_processes} process(es) on {device}"


def shutdown() -> None:
    """Tear the process group down before the interpreter exits: with gloo, a process leaving while its peer still
    holds the connection can abort (SIGABRT) at exit. The command line calls this after ``run``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
