"""Model registry: the small CNN, the MLP, the CIFAR ResNet-18, or any ``package.module:function`` factory.

Every builder takes the same keyword arguments (``num_classes``, ``in_channels``, ``image_size``, ``width``)
so the scoring engine can build any of them from a config.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError, InvalidTypeError
from scoring.transformer import text_transformer, vit_tiny

ModelFactory = Callable[..., nn.Module]


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-pool blocks and a two-layer head; fast enough to train on 2 CPU cores."""

    def __init__(self, *, num_classes: int, in_channels: int = 1, image_size: int = 28, width: float = 1.0):
        super().__init__()
        c1, c2, hidden = max(1, round(16 * width)), max(1, round(32 * width)), max(1, round(128 * width))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Flatten, two hidden ReLU layers, linear classifier."""

    def __init__(self, *, num_classes: int, in_channels: int = 1, image_size: int = 28, width: float = 1.0):
        super().__init__()
        hidden = max(1, round(256 * width))
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * image_size * image_size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant (3x3 stem, stride 1, no max-pool), as in the paper; ``width`` scales all channels."""

    def __init__(self, *, num_classes: int, in_channels: int = 3, image_size: int = 32, width: float = 1.0):
        super().__init__()
        widths = [max(1, round(w * width)) for w in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, in_planes = [], widths[0]
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


MODELS: dict[str, ModelFactory] = {
    "cnn": SmallCNN,
    "mlp": MLP,
    "resnet18": ResNet18,
    "text-transformer": text_transformer,
    "vit-tiny": vit_tiny,
}


def resolve_factory(name: str) -> ModelFactory:
    """Return the factory for a registry name or a ``package.module:function`` path."""
    if name in MODELS:
        return MODELS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise InvalidArgumentError(
                f"Model factory {name!r}: cannot import module {module_name!r} ({err})."
            ) from err
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise InvalidArgumentError(f"Model factory {name!r}: {module_name!r} has no callable {attr!r}.")
        return factory
    raise InvalidArgumentError(
        f"Unknown model {name!r}. Choose one of: {', '.join(MODELS)}, or give a factory as 'package.module:function'."
    )


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> nn.Module:
    """Build a model by registry name or factory path; the factory gets the four keyword arguments."""
    model = resolve_factory(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size, width=width)
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"Model factory {name!r} returned {type(model).__name__}, expected a torch.nn.Module.")
    return model
