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

import dataclasses
import difflib
import importlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from datadiet_hub.columns import InputKind
from datadiet_hub.errors import InvalidArgumentError, InvalidTypeError
from datadiet_hub.scoring.fasttext import fasttext
from datadiet_hub.scoring.transformer import text_transformer, vit_tiny

if TYPE_CHECKING:
    from datadiet_hub.scoring.config import ScoringConfig

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class TrainingDefaults:
    """The optimizer, learning rate and weight decay a model family trains well with in a few epochs; a run takes
    them for every one of ``--optimizer``/``--lr``/``--weight-decay`` the user leaves out."""

    optimizer: str
    lr: float
    weight_decay: float


CONV_SGD = TrainingDefaults("sgd", 0.1, 5e-4)
"""Convolutional and MLP image models: SGD, Nesterov momentum 0.9, lr 0.1, weight decay 5e-4 (the paper's)."""
TRANSFORMER_ADAM = TrainingDefaults("adam", 1e-3, 0.0)
"""Transformers (text and image): Adam at 1e-3; SGD at 0.1 makes them diverge in a few epochs. No weight decay:
Adam's L2 term, normalized like the gradient, moves every embedding row by about lr per step towards zero."""
NGRAM_ADAM = TrainingDefaults("adam", 0.01, 0.0)
"""The bag of n-grams: Adam at 1e-2 (each feature vector is updated only by the texts holding it), no weight decay
(with Adam it would erase in a few dozen steps the vectors of every feature absent from the batch)."""
OPTIMIZER_DEFAULTS = {"sgd": CONV_SGD, "adam": TRANSFORMER_ADAM}
"""Learning rate and weight decay for an optimizer the user chose when it is not the family's own."""


@dataclass(frozen=True)
class ModelEntry:
    """A registry model: how to build it, which input kind it reads and its family's training defaults.

    ``text_inputs`` says how a text model reads its text: ``tokens`` (a tokenizer's ids in order, trained on the split
    or ``--tokenizer``) or ``ngrams`` (the split's hashed character and word n-grams, computed once).
    """

    factory: ModelFactory
    kind: InputKind
    family: str
    training: TrainingDefaults
    text_inputs: str = "tokens"

    def __call__(self, **kwargs: Any) -> nn.Module:
        return self.factory(**kwargs)


MODELS: dict[str, ModelEntry] = {
    "cnn": ModelEntry(SmallCNN, InputKind.IMAGE, "convolutional", CONV_SGD),
    "mlp": ModelEntry(MLP, InputKind.IMAGE, "multilayer perceptron", CONV_SGD),
    "resnet18": ModelEntry(ResNet18, InputKind.IMAGE, "convolutional", CONV_SGD),
    "vit-tiny": ModelEntry(vit_tiny, InputKind.IMAGE, "transformer", TRANSFORMER_ADAM),
    "fasttext": ModelEntry(fasttext, InputKind.TEXT, "bag of n-grams", NGRAM_ADAM, text_inputs="ngrams"),
    "text-transformer": ModelEntry(text_transformer, InputKind.TEXT, "transformer", TRANSFORMER_ADAM),
}
DEFAULT_MODELS = {InputKind.IMAGE: "cnn", InputKind.TEXT: "fasttext"}
"""The model a run uses when ``--model`` is not given, by the kind of the input column."""
FALLBACK_TRAINING = {InputKind.IMAGE: CONV_SGD, InputKind.TEXT: TRANSFORMER_ADAM}
"""Training defaults for a ``package.module:function`` factory, whose family is unknown, by input kind."""


TRANSFORMERS_PREFIX = "transformers:"


@dataclass(frozen=True)
class TrainingChoice:
    """The model, optimizer and learning rate of a run, and why (the one line the run logs)."""

    model: str
    optimizer: str
    lr: float
    weight_decay: float
    text_inputs: str
    message: str


def choose_training(
    model: str | None,
    optimizer: str | None,
    lr: float | None,
    *,
    kind: InputKind | str,
    input_column: str,
    weight_decay: float | None = None,
) -> TrainingChoice:
    """Fill what the user left out (``None``) from the data and the model family; what the user gave always wins.

    No model: the default of the input kind (``DEFAULT_MODELS``). No optimizer: the family's. No learning rate or
    weight decay: the family's when the optimizer is the family's, else that optimizer's usual ones
    (``OPTIMIZER_DEFAULTS``). A registry model given data of the other kind is refused, naming its family and the fix.
    """
    try:
        kind = InputKind(kind)
    except ValueError as err:
        raise InvalidArgumentError(
            f"Unknown input kind {kind!r}. Choose between {', '.join(DEFAULT_MODELS)}."
        ) from err
    name = model if model is not None else DEFAULT_MODELS[kind]
    entry = MODELS.get(name)
    if entry is not None:
        if entry.kind != kind:
            choices = ", ".join(n for n, e in MODELS.items() if e.kind == kind)
            raise InvalidArgumentError(
                f"--model {name!r} is {'an' if str(entry.kind)[0] in 'aeiou' else 'a'} {entry.kind} model ({entry.family}), but the input column {input_column!r} "
                f"holds {kind}. Leave --model out to use the {kind} default ({DEFAULT_MODELS[kind]}), or choose a "
                f"{kind} model: {choices}.",
                value=name,
            )
        family, training, text_inputs = entry.family, entry.training, entry.text_inputs
    elif name.startswith(TRANSFORMERS_PREFIX):
        family, training, text_inputs = "transformer", TRANSFORMER_ADAM, "tokens"
    else:
        family, training, text_inputs = "custom", FALLBACK_TRAINING[kind], "tokens"
    chosen_optimizer = optimizer if optimizer is not None else training.optimizer
    if chosen_optimizer == training.optimizer:
        usual, usual_why = training, f"the {family} family's"
    else:
        usual, usual_why = OPTIMIZER_DEFAULTS[chosen_optimizer], f"the usual one for {chosen_optimizer}"
    chosen_lr, lr_why = (lr, "--lr") if lr is not None else (usual.lr, usual_why)
    chosen_wd, wd_why = (
        (weight_decay, "--weight-decay") if weight_decay is not None else (usual.weight_decay, usual_why)
    )
    model_why = "--model" if model is not None else f"because the input column {input_column!r} is {kind}"
    optimizer_why = "--optimizer" if optimizer is not None else f"the {family} family's"
    message = (
        f"model {name} ({family}; {model_why}), optimizer {chosen_optimizer} ({optimizer_why}), "
        f"lr {chosen_lr:g} ({lr_why}), weight decay {chosen_wd:g} ({wd_why})"
    )
    return TrainingChoice(name, chosen_optimizer, chosen_lr, chosen_wd, text_inputs, message)


def resolve_training(
    cfg: ScoringConfig, kind: InputKind | str, input_column: str
) -> tuple[ScoringConfig, TrainingChoice]:
    """``cfg`` with ``model``, ``optimizer``, ``lr`` and ``weight_decay`` filled in by :func:`choose_training`."""
    choice = choose_training(
        cfg.model, cfg.optimizer, cfg.lr, kind=kind, input_column=input_column, weight_decay=cfg.weight_decay
    )
    resolved = dataclasses.replace(
        cfg, model=choice.model, optimizer=choice.optimizer, lr=choice.lr, weight_decay=choice.weight_decay
    )
    return resolved, choice


def resolve_factory(name: str) -> ModelFactory:
    """Return the factory for a registry name, a ``transformers:...`` spec or a ``package.module:function`` path."""
    if name in MODELS:
        return MODELS[name].factory
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
    config = _transformers_config(transformers, spec, base, query)
    config.num_labels = num_classes
    if vocab_size is not None:
        config.vocab_size = vocab_size
        if max_length is not None and getattr(config, "max_position_embeddings", max_length) < max_length:
            config.max_position_embeddings = max_length
        if pad_token_id is not None:
            config.pad_token_id = pad_token_id
        auto: Any = transformers.AutoModelForSequenceClassification
    else:
        config.num_channels = in_channels
        config.image_size = image_size
        auto = transformers.AutoModelForImageClassification
    try:
        return auto.from_config(config)
    except (ValueError, TypeError, KeyError) as err:  # e.g. hidden_size not a multiple of the heads
        task = "text" if vocab_size is not None else "image"
        raise InvalidArgumentError(
            f"--model transformers:{spec}: transformers cannot build a {task} classifier from this config "
            f"({_one_line(err)}). Fix the config values in the spec.",
            value=spec,
        ) from err


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _transformers_config(transformers: Any, spec: str, base: str, query: str) -> Any:
    """The config of a ``transformers:`` spec, every mistake in it one ``InvalidArgumentError`` quoting the spec:
    a query that is not ``key=value&...``, an unknown model type (with the close ones), an unknown key (a typo
    would otherwise be kept as an unused attribute), or a value of the wrong type."""
    example = "e.g. transformers:bert?hidden_size=64&num_hidden_layers=2"
    try:
        pairs = parse_qsl(query, strict_parsing=bool(query))
    except ValueError as err:
        raise InvalidArgumentError(
            f"--model transformers:{spec}: the options {query!r} are not key=value pairs joined by '&' ({err}); "
            f"{example}.",
            value=spec,
        ) from err
    overrides = {k: _config_value(v) for k, v in pairs}
    local = os.path.exists(base)
    if not local:
        known_types = sorted(transformers.CONFIG_MAPPING.keys())
        if base not in known_types:
            close = difflib.get_close_matches(base, known_types, n=5)
            hint = f" Close: {', '.join(close)}." if close else ""
            raise InvalidArgumentError(
                f"--model transformers:{spec}: {base!r} is neither a local config.json nor a transformers model type."
                f"{hint} Give a model_type such as bert, distilbert, roberta, gpt2, vit ({example}), or a path to a "
                "config.json.",
                value=spec,
            )
        defaults = transformers.CONFIG_MAPPING[base]()
        unknown = sorted(k for k in overrides if k not in defaults.to_dict() and not hasattr(defaults, k))
        if unknown:
            matches = {k: difflib.get_close_matches(k, list(defaults.to_dict()), n=3) for k in unknown}
            hints = "; ".join(f"{k!r} (close: {', '.join(c)})" if c else repr(k) for k, c in matches.items())
            raise InvalidArgumentError(
                f"--model transformers:{spec}: {base} configs have no field {hints}. Check the spelling against "
                f"transformers' {type(defaults).__name__}.",
                value=spec,
            )
    try:
        if local:
            path = os.path.join(base, "config.json") if os.path.isdir(base) else base
            return transformers.AutoConfig.from_pretrained(path, local_files_only=True, **overrides)
        return transformers.AutoConfig.for_model(base, **overrides)
    except Exception as err:  # strict-dataclass validation, JSON errors, ValueError/TypeError from a config class
        raise InvalidArgumentError(
            f"--model transformers:{spec}: transformers rejects this config ({_one_line(err)}). Give each option a "
            f"value of the field's type ({example}).",
            value=spec,
        ) from err
