"""Where a model runs and in which memory layout: ``place(model, cfg, device)``.

On the CPU, convolutions over channels-last tensors (NHWC) run through oneDNN's fast kernels; the default NCHW layout
does not. Only the model's weights need converting: a convolution whose weight is channels-last returns channels-last
activations, so the data path stays as it is. ``benchmarks/fixed_cost.py`` measures the effect on a whole run. The
layout changes nothing but float rounding, so a run may switch it and still resume (``NOT_IDENTITY``); it is used
where it was measured faster (2-d convolutions on the CPU), ``--channels-last/--no-channels-last`` decides otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ScoringConfig

__all__ = ["channels_last_choice", "place"]


def channels_last_choice(cfg: ScoringConfig, model: nn.Module, device: torch.device | str) -> tuple[bool, str]:
    """Whether ``model`` runs channels-last on ``device``, and why (for the log)."""
    if cfg.channels_last is not None:
        return cfg.channels_last, "as asked"
    if torch.device(device).type != "cpu":
        return False, "measured on the CPU only"
    if not any(isinstance(module, nn.Conv2d) for module in model.modules()):
        return False, "the model has no 2-d convolutions"
    return True, "2-d convolutions on the CPU run faster channels-last"


def place(model: nn.Module, cfg: ScoringConfig, device: torch.device | str) -> nn.Module:
    """``model`` on ``device``, its 4-d weights channels-last where :func:`channels_last_choice` says so."""
    model = model.to(device)
    if channels_last_choice(cfg, model, device)[0]:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack it
    return model
