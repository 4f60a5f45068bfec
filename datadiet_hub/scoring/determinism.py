"""Deterministic mode (``--deterministic``): the same command on the same kind of device and software gives
bit-identical scores. Off by default because it is slower (one CPU thread, deterministic CUDA kernels)."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

logger = logging.getLogger(__name__)
CUBLAS_WORKSPACE = ":4096:8"


def enable(deterministic: bool) -> None:
    """Switch deterministic algorithms on for this process (call before the first CUDA matmul).

    cuBLAS needs a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``) for reproducible GEMMs; on CPU the intra-op
    thread count changes the order of float reductions, so it is pinned to 1. Seeds, data order and augmentation
    are already fixed by the run's seeded generators; this removes the kernels' own nondeterminism."""
    if not deterministic:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    logger.info("deterministic mode: deterministic algorithms on, %d intra-op thread(s)", torch.get_num_threads())


def describe() -> dict[str, Any]:
    """The settings that decide whether a rerun can be bit-identical, for the provenance."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "intra_op_threads": torch.get_num_threads(),
    }
