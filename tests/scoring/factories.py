"""Custom model factories for the tests (``--model tests.scoring.factories:tiny_net``)."""

from __future__ import annotations

from torch import nn


def tiny_net(*, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> nn.Module:
    """Conv-BN-ReLU, global average pool, linear: a custom factory with BatchNorm, as a user would write one."""
    channels = max(2, round(8 * width))
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    )


def not_a_module(**kwargs):
    return "not a module"


NOT_CALLABLE = 3
