"""Model registry: the small CNN, the MLP, the CIFAR ResNet-18, any ``package.module:function`` factory, or a
``transformers`` model built from a config (``transformers:<model_type>?key=value&...`` or
``transformers:path/to/config.json``; no weights, nothing downloaded).

Builders are called with the keyword arguments they accept among ``num_classes``, ``in_channels``,
``image_size``, ``width`` (images) and ``vocab_size``, ``max_length``, ``pad_token_id`` (text), so the scoring
engine can build any of them from a config. Models are called the ``transformers`` way, with keyword inputs
(``pixel_values``, or ``input_ids`` + ``attention_mask``); ``adapt_inputs`` passes the one tensor positionally to
a model whose ``forward`` does not take those names (an ``nn.Sequential``, a plain ``forward(x)``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError, InvalidTypeError
from datadiet_hub.scoring.transformer import text_transformer, vit_tiny

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

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixel_values))


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

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values)


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

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(pixel_values)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


MODELS: dict[str, ModelFactory] = {
    "cnn": SmallCNN,
    "mlp": MLP,
    "resnet18": ResNet18,
    "text-transformer": text_transformer,
    "vit-tiny": vit_tiny,
}


TRANSFORMERS_PREFIX = "transformers:"


def resolve_factory(name: str) -> ModelFactory:
    """Return the factory for a registry name, a ``transformers:...`` spec or a ``package.module:function`` path."""
    if name in MODELS:
        return MODELS[name]
    if name.startswith(TRANSFORMERS_PREFIX):
        spec = name[len(TRANSFORMERS_PREFIX) :]

        def factory(
            *,
            num_classes: int,
            in_channels: int = 3,
            image_size: int = 32,
            width: float = 1.0,
            vocab_size: int | None = None,
            max_length: int | None = None,
            pad_token_id: int | None = None,
        ) -> nn.Module:
            return transformers_model(
                spec,
                num_classes=num_classes,
                in_channels=in_channels,
                image_size=image_size,
                width=width,
                vocab_size=vocab_size,
                max_length=max_length,
                pad_token_id=pad_token_id,
            )

        return factory
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise InvalidArgumentError(
                f"Model factory {name!r}: cannot import module {module_name!r} ({err})."
            ) from err
        found = getattr(module, attr, None)
        if not callable(found):
            raise InvalidArgumentError(f"Model factory {name!r}: {module_name!r} has no callable {attr!r}.")
        return found
    raise InvalidArgumentError(
        f"Unknown model {name!r}. Choose one of: {', '.join(MODELS)}, or give a factory as 'package.module:function'."
    )


CORE_ARGUMENTS = frozenset({"num_classes", "width", "in_channels", "image_size", "vocab_size", "max_length"})
"""What a factory taking ``**kwargs`` is offered (besides its named parameters): the data's shape, never extras
such as ``pad_token_id`` that a ``**kwargs`` factory may forward to a class that does not take them."""


def _accepted(factory: Callable[..., Any], offered: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``offered`` that ``factory`` takes (its named parameters, plus the core ones if it
    takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins / C callables: offer the core arguments
        return {k: v for k, v in offered.items() if k in CORE_ARGUMENTS}
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return {k: v for k, v in offered.items() if k in parameters or (var_keyword and k in CORE_ARGUMENTS)}


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int | None = None,
    image_size: int | None = None,
    width: float = 1.0,
    **extra: Any,
) -> nn.Module:
    """Build a model by registry name, ``transformers:`` spec or factory path.

    The factory gets ``num_classes``, ``width`` and the non-None data arguments (``in_channels``, ``image_size`` for
    images; ``vocab_size``, ``max_length``, ``pad_token_id`` for text) that its signature accepts.
    """
    factory = resolve_factory(name)
    offered: dict[str, Any] = {"num_classes": num_classes, "width": width}
    given = {"in_channels": in_channels, "image_size": image_size, **extra}
    offered.update({k: v for k, v in given.items() if v is not None})
    model = factory(**_accepted(factory, offered))
    if not isinstance(model, nn.Module):
        raise InvalidTypeError(f"Model factory {name!r} returned {type(model).__name__}, expected a torch.nn.Module.")
    return model


def adapt_inputs(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor | Mapping[str, torch.Tensor]:
    """What to call ``model`` with: the keyword inputs if its ``forward`` takes them (or ``**kwargs``), else the
    one input tensor positionally (a model with ``forward(x)``). Two or more inputs need keyword parameters."""
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return inputs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()) or all(
        k in parameters for k in inputs
    ):
        return inputs
    if len(inputs) == 1:
        return next(iter(inputs.values()))
    raise InvalidTypeError(
        f"{type(model).__name__}.forward{inspect.signature(model.forward)} does not take the keyword inputs "
        f"{sorted(inputs)}; give it parameters with those names (as transformers models have)."
    )


def _config_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def transformers_model(
    spec: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    width: float = 1.0,
    vocab_size: int | None = None,
    max_length: int | None = None,
    pad_token_id: int | None = None,
) -> nn.Module:
    """An ``AutoModelForSequenceClassification`` (text: ``vocab_size`` given) or
    ``AutoModelForImageClassification`` built from a config, randomly initialised (no weights are read).

    ``spec`` is a ``model_type`` with optional config overrides (``bert?hidden_size=64&num_hidden_layers=2``) or a
    local ``config.json`` (or a folder holding one). ``num_labels``, the vocabulary, the position count and the
    image geometry are set from the data. ``width`` is unused: size the model in the spec.
    """
    try:
        import transformers
    except ImportError as err:
        raise ImportError(
            f"--model transformers:{spec} needs the transformers library: pip install 'datadiet-hub[transformers]'."
        ) from err
    base, _, query = spec.partition("?")
    overrides = {k: _config_value(v) for k, v in parse_qsl(query, strict_parsing=bool(query))}
    if os.path.exists(base):
        path = os.path.join(base, "config.json") if os.path.isdir(base) else base
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True, **overrides)
    else:
        try:
            config = transformers.AutoConfig.for_model(base, **overrides)
        except ValueError as err:
            raise InvalidArgumentError(
                f"--model transformers:{spec}: {base!r} is neither a local config.json nor a transformers model type "
                f"({err})."
            ) from err
    config.num_labels = num_classes
    if vocab_size is not None:
        config.vocab_size = vocab_size
        if max_length is not None and getattr(config, "max_position_embeddings", max_length) < max_length:
            config.max_position_embeddings = max_length
        if pad_token_id is not None:
            config.pad_token_id = pad_token_id
        return transformers.AutoModelForSequenceClassification.from_config(config)
    config.num_channels = in_channels
    config.image_size = image_size
    return transformers.AutoModelForImageClassification.from_config(config)
