"""``ScoringConfig``: every knob of a scoring run, one field per CLI flag, saved with the outputs and the card."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datadiet_hub import metrics
from datadiet_hub.errors import InputNotFoundError, InvalidArgumentError

OBJECTIVES = ("auto", "classification", "causal-lm")
UNITS = ("epoch", "step")
AUGMENTATIONS = ("auto", "none", "crop-flip", "resized-crop-flip")
DATA_PATHS = ("auto", "memory", "loader")
TOKENIZER_KINDS = ("wordpiece", "bpe")
NOT_IDENTITY = ("output_dir", "num_workers", "parallel_seeds", "channels_last")
"""Fields that do not change a result (beyond float rounding), so a rerun may change them and still resume."""
PRECISIONS = ("fp32", "bf16")
OPTIMIZERS = ("sgd", "adam")


@dataclass
class ScoringConfig:
    """A scoring run: which data, which model, how many seeds, how long to train, when to score.

    Hardware (processes, devices) is not here: that belongs to ``accelerate launch`` / ``torchrun``.
    """

    output_dir: str = "runs/scores"
    """Where the score dataset (README.md, data/) and the resumable state (.datadiet/) go."""
    dataset: str = "fashion_mnist"
    """``fashion_mnist`` (Debian package) or anything ``datasets.load_dataset`` takes."""
    objective: str = "auto"
    """``classification`` (labelled examples), ``causal-lm`` (documents scored by reference language models) or
    ``auto`` (causal-lm when the split has a text column and no label column)."""
    split: str = "train"
    input_column: str | None = None
    """The column to score (images or texts); default detected (``datadiet_hub.columns.detect_columns``)."""
    image_column: str | None = None
    """Older name of ``input_column`` that also says the column holds images."""
    text_column: str | None = None
    """Older name of ``input_column`` that also says the column holds texts."""
    label_column: str | None = None
    revision: str | None = None
    data_files: list[str] | None = None
    streaming: bool = False
    """Read the split lazily (``datasets`` streaming): memory flat in the number of rows, no local arrow copy."""
    data_path: str = "auto"
    """``memory`` (decode the split once into one tensor), ``loader`` (DataLoader with worker processes) or
    ``auto`` (memory for small fixed-size images, else loader; the log says which and why)."""
    num_workers: int | None = None
    """DataLoader worker processes (loader path); default one per spare core, at most 4. Does not change results."""
    image_size: int | None = None
    """Side in pixels of the square images the model sees (resize shorter side + centre crop); default the
    images' own side when they share one, else the median shorter side of the first 256 rows."""
    image_channels: int | None = None
    """1 (grey) or 3 (RGB); default the majority mode of the first 256 rows."""
    tokenizer: str | None = None
    """A local ``tokenizer.json`` (or folder holding one); default: train one on the split."""
    tokenizer_kind: str = "wordpiece"
    vocab_size: int = 8000
    max_length: int = 128
    """Tokens per text, [CLS] and [SEP] included; longer texts are truncated."""
    model: str | None = None
    """Registry name (cnn, mlp, resnet18, vit-tiny, fasttext, text-transformer), ``transformers:...`` spec or
    ``package.module:function`` factory; None: chosen from the input kind (``scoring.models.DEFAULT_MODELS``)."""
    width: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """One independent training per seed (init and data order); scores are averaged over them."""
    scores: list[str] = field(default_factory=lambda: ["el2n"])
    at: list[int] = field(default_factory=lambda: [2])
    """Score times, in ``unit``s; each becomes its own config (``cnn-ep2``)."""
    unit: str = "epoch"
    epochs: int | None = None
    """Training length in epochs; defaults to the last score time (rounded up)."""
    batch_size: int = 128
    eval_batch_size: int = 256
    grand_batch_size: int = 128
    optimizer: str | None = None
    """sgd or adam; None: the model family's (``scoring.models.MODELS``)."""
    lr: float | None = None
    """None: the model family's learning rate for its optimizer."""
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float | None = None
    """L2 weight decay; None: the model family's (5e-4 with SGD for the image CNNs, 0 with Adam)."""
    lr_milestones: list[int] = field(default_factory=list)
    """Epochs at which the learning rate is multiplied by ``lr_gamma`` (paper: 60,120,160 with 0.2)."""
    lr_gamma: float = 0.2
    augmentation: str = "auto"
    """``crop-flip`` (pad 4, random crop, horizontal flip), ``none``, or ``auto`` (crop-flip for 3-channel images
    of side >= 32, else none). Scoring never augments."""
    mean: list[float] | None = None
    std: list[float] | None = None
    """Normalisation per channel; computed from the split when not given."""
    checkpoint_every: int = 1
    """Also checkpoint every this many epochs (besides every score time), for resuming long runs."""
    deterministic: bool = False
    """Bit-identical reruns on the same kind of device and software: deterministic torch algorithms, cuBLAS workspace
    config, one intra-op thread on CPU (slower; recorded in the provenance)."""

    precision: str = "fp32"
    """``fp32`` or ``bf16`` (forward passes of training and scoring under bfloat16 autocast; scores change slightly,
    see docs/performance.md)."""
    parallel_seeds: bool | None = None
    """Train the seeds together as one vectorized model (``datadiet_hub.scoring.parallel``); None: where it was
    measured faster (the log says which and why). Results equal sequential seeds up to float rounding."""
    channels_last: bool | None = None
    """Run the model's convolutions in the channels-last memory layout (``datadiet_hub.scoring.placement``); None:
    where it was measured faster (2-d convolutions on the CPU). Changes the scores by float rounding only."""

    def __post_init__(self) -> None:
        self._coerce()
        self.validate()

    def _coerce(self) -> None:
        """Accept what YAML/JSON files and the library's callers naturally write: ``at: 2`` for ``[2]``,
        ``scores: el2n,grand`` for ``["el2n", "grand"]``, ``data_files: x.parquet`` for ``["x.parquet"]``."""
        for name, (kind, is_list, _) in field_kinds().items():
            value = getattr(self, name)
            if value is None or not is_list:
                continue
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
                try:
                    value = [kind(part) for part in value]
                except ValueError:
                    pass  # validate() names the field and the expected type
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value]
            elif isinstance(value, tuple):
                value = list(value)
            setattr(self, name, value)

    def validate(self) -> None:
        """Check every field; raise ``ValueError`` naming the field, the bad value and the fix or the choices."""

        def choice(name: str, value: Any, options: tuple) -> None:
            if value not in options:
                raise InvalidArgumentError(f"Unknown {name} {value!r}. Choose between {', '.join(options)}.")

        for name, (kind, is_list, optional) in field_kinds().items():
            value = getattr(self, name)
            if value is None and optional:
                continue
            if is_list and (not isinstance(value, list) or not all(_is(v, kind) for v in value)):
                raise InvalidArgumentError(
                    f"{name}={value!r} must be a list of {kind.__name__}s (comma-separated on the "
                    f"command line: --{name.replace('_', '-')} ...)."
                )
            if not is_list and not _is(value, kind):
                raise InvalidArgumentError(
                    f"{name}={value!r} must be {'an' if kind is int else 'a'} {kind.__name__}"
                    f"{' or null' if optional else ''}."
                )
            if kind is float and not all(math.isfinite(v) for v in (value if is_list else [value])):
                default = getattr(ScoringConfig, name, None)
                example = f" (default: --{name.replace('_', '-')} {default})" if default is not None else ""
                raise InvalidArgumentError(
                    f"{name}={value!r} must be finite: NaN or infinity can only make training diverge. "
                    f"Give a finite number{example}."
                )
        if not self.scores:
            raise InvalidArgumentError(
                f"No scores requested; give --scores {','.join(metrics.names())} (any of them)."
            )
        for score in self.scores:
            choice("score", score, metrics.names())
        if len(set(self.scores)) != len(self.scores):
            raise InvalidArgumentError(f"scores={self.scores!r} lists a score twice.")
        choice("objective", self.objective, OBJECTIVES)
        if self.objective == "classification" and {"loss", "num_tokens"} & set(self.scores):
            raise InvalidArgumentError(
                "loss and num_tokens are language-model scores: use them with --objective causal-lm (or auto on a "
                "corpus without labels)."
            )
        choice("unit", self.unit, UNITS)
        choice("augmentation", self.augmentation, AUGMENTATIONS)
        if self.optimizer is not None:
            choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("data path", self.data_path, DATA_PATHS)
        choice("tokenizer kind", self.tokenizer_kind, TOKENIZER_KINDS)
        choice("precision", self.precision, PRECISIONS)
        named = {
            flag: value
            for flag, value in (
                ("--input-column", self.input_column),
                ("--image-column", self.image_column),
                ("--text-column", self.text_column),
            )
            if value is not None
        }
        if len(named) > 1:
            raise InvalidArgumentError(
                "Name the input column once, not " + " and ".join(f"{f} {v!r}" for f, v in named.items()) + "."
            )
        if self.image_channels is not None and self.image_channels not in (1, 3):
            raise InvalidArgumentError(f"image_channels={self.image_channels!r} must be 1 (grey) or 3 (RGB).")
        if self.image_size is not None and self.image_size < 1:
            raise InvalidArgumentError(
                f"image_size={self.image_size!r} must be a side in pixels >= 1, e.g. 32 or 224."
            )
        if self.num_workers is not None and self.num_workers < 0:
            raise InvalidArgumentError(
                f"num_workers={self.num_workers!r} must be >= 0 (0: decode in the main process)."
            )
        if self.max_length < 2:
            raise InvalidArgumentError(f"max_length={self.max_length!r} must be at least 2 tokens ([CLS] and [SEP]).")
        if self.vocab_size < 8:
            raise InvalidArgumentError(f"vocab_size={self.vocab_size!r} is too small; give at least 8 (e.g. 8000).")
        if self.streaming and self.data_path == "memory":
            raise InvalidArgumentError(
                "--streaming reads rows lazily: it needs --data-path loader (or auto), not memory."
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise InvalidArgumentError(f"seeds={self.seeds!r} must be a non-empty list of distinct integers >= 0.")
        if not self.at or any(t < 0 for t in self.at):
            raise InvalidArgumentError(f"at={self.at!r} must be a non-empty list of times >= 0 (in {self.unit}s).")
        if len(set(self.at)) != len(self.at):
            raise InvalidArgumentError(f"at={self.at!r} lists a score time twice.")
        if all(metrics.get(s).needs_training for s in self.scores) and all(t == 0 for t in self.at):
            raise InvalidArgumentError(
                f"{', '.join(s.capitalize() for s in self.scores)} need(s) training: with --scores "
                f"{','.join(self.scores)} give a score time > 0 (--at), got at={self.at!r}."
            )
        for name in ("batch_size", "eval_batch_size", "grand_batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name}={getattr(self, name)!r} must be at least 1.")
        if self.epochs is not None and self.epochs < 0:
            raise InvalidArgumentError(f"epochs={self.epochs!r} must be >= 0.")
        if self.width <= 0:
            raise InvalidArgumentError(f"width={self.width!r} must be positive.")
        if self.lr is not None and self.lr <= 0:
            raise InvalidArgumentError(f"lr={self.lr!r} must be positive.")
        if self.momentum < 0 or (self.weight_decay is not None and self.weight_decay < 0):
            raise InvalidArgumentError(
                f"momentum={self.momentum!r} and weight_decay={self.weight_decay!r} must be >= 0."
            )
        if self.lr_gamma <= 0:
            raise InvalidArgumentError(f"lr_gamma={self.lr_gamma!r} must be positive.")
        if any(m < 1 for m in self.lr_milestones) or self.lr_milestones != sorted(set(self.lr_milestones)):
            raise InvalidArgumentError(
                f"lr_milestones={self.lr_milestones!r} must be increasing epochs >= 1, e.g. 60,120,160."
            )
        if (self.mean is None) != (self.std is None):
            raise InvalidArgumentError("Give both mean and std, or neither (then they are computed from the data).")
        if self.mean is not None and self.std is not None:
            if len(self.mean) != len(self.std) or not self.mean:
                raise InvalidArgumentError(
                    f"mean={self.mean!r} and std={self.std!r} must have one value per channel each."
                )
            if any(s <= 0 for s in self.std):
                raise InvalidArgumentError(f"std={self.std!r} must be positive.")
        if self.data_files is not None and not self.data_files:
            raise InvalidArgumentError("data_files=[] is empty; leave it out or give at least one file.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a rerun to resume a previous one (all but ``NOT_IDENTITY``)."""
        return {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> ScoringConfig:
        """Read a YAML or JSON config file; ``overrides`` (e.g. from flags) win over the file."""
        return cls(**{**read_config_file(path), **overrides})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields of a YAML (``.yaml``/``.yml``) or JSON config file, checked against ``ScoringConfig``'s fields."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"Config file {str(path)!r} not found.", path=path)
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text) if text.strip() else {}
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        raise InvalidArgumentError(f"Cannot parse config file {str(path)!r}: {err}") from err
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"{path} must hold a mapping of config fields, got {type(data).__name__}.")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}  # accept flag spellings (batch-size)
    known = {f.name for f in dataclasses.fields(ScoringConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidArgumentError(f"{path}: unknown field(s) {unknown}. Known fields: {', '.join(sorted(known))}.")
    return data


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@functools.cache
def field_kinds() -> dict[str, tuple[type, bool, bool]]:
    """Per ``ScoringConfig`` field, from its type hint: (element type, is a list, may be None)."""
    kinds = {}
    for name, hint in typing.get_type_hints(ScoringConfig).items():
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None -> X
            optional = type(None) in typing.get_args(hint)
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if typing.get_origin(hint) is list:
            kinds[name] = (typing.get_args(hint)[0], True, optional)
        else:
            kinds[name] = (hint, False, optional)
    return kinds


PAPER_CIFAR10 = {
    "dataset": "uoft-cs/cifar10",
    "image_column": "img",
    "label_column": "label",
    "model": "resnet18",
    "seeds": list(range(10)),
    "scores": ["el2n", "grand", "forgetting"],
    "at": [0, 20, 200],
    "unit": "epoch",
    "epochs": 200,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "lr_milestones": [60, 120, 160],
    "lr_gamma": 0.2,
    "augmentation": "crop-flip",
}
"""The paper's CIFAR-10 recipe (Paul et al., 2021): ResNet-18, 10 seeds, GraNd/EL2N at init and epoch 20, and
the full 200-epoch run for forgetting. ``--preset cifar10-paper``."""

PRESETS = {"cifar10-paper": PAPER_CIFAR10}

FLAG_HELP: dict[str, str] = {
    "output_dir": "folder for the score dataset (README.md, data/) and the resumable state (.datadiet/)",
    "dataset": "what to score: fashion_mnist (Debian package), a Hub id, a local folder (imagefolder or data "
    "files), or one .parquet/.csv/.json(l) file",
    "split": "split of the dataset to score",
    "objective": "classification, causal-lm (per-document loss/el2n/grand from reference language models) or auto "
    "(causal-lm when the split has a text column and no label column; the log says which)",
    "input_column": "the column to score, images or texts (default: detected: the one Image column, else "
    "image/img/..., else the one text column, else text/sentence/...; the kind follows the column)",
    "image_column": "older name of --input-column for an image column",
    "text_column": "older name of --input-column for a text column",
    "label_column": "class label column (default: detected: the one ClassLabel column, else label/labels/...; "
    "string labels become classes in sorted order)",
    "revision": "dataset revision (git branch, tag or commit) for a Hub id",
    "data_files": "data files for a builder such as --dataset parquet (comma-separated paths or globs)",
    "streaming": "read the split lazily with datasets streaming: memory flat in rows, no local arrow copy",
    "data_path": "memory (decode the split once into one tensor), loader (DataLoader with worker processes), or "
    "auto (memory for small fixed-size images, else loader; the log says which and why)",
    "num_workers": "DataLoader worker processes on the loader path (default: one per spare core, at most 4; "
    "does not change results)",
    "image_size": "side in pixels of the square images the model sees: shorter side resized, centre cropped "
    "(default: the images' own side when all share one, else the median shorter side of the first 256 rows)",
    "image_channels": "1 (grey) or 3 (RGB): every image is converted to it (default: majority mode of the first "
    "256 rows; alpha composited over white, palettes expanded)",
    "tokenizer": "local tokenizer.json (or a folder holding one) for token models (text-transformer, "
    "transformers:...); default: train one on the split. fasttext reads character and word n-grams instead",
    "tokenizer_kind": "wordpiece or bpe: the tokenizer trained on the split when --tokenizer is not given",
    "vocab_size": "vocabulary size in tokens of the tokenizer trained on the split",
    "max_length": "tokens per text including [CLS] and [SEP]; longer texts are truncated, batches padded to "
    "their longest row",
    "model": "registry name (cnn, mlp, resnet18, vit-tiny for images; fasttext, text-transformer for text), a "
    "transformers:<model_type>?key=value spec, or a package.module:function factory (gets num_classes, in_channels, "
    "image_size, width, vocab_size, max_length if it accepts them) (default: chosen from the data: cnn for images, "
    "fasttext for text; the log says which and why)",
    "width": "width multiplier of the registry models (1.0 = the published sizes)",
    "seeds": "training seeds, one independent run each (init and data order); scores average over them",
    "scores": f"scores to compute: any of {', '.join(metrics.names())} (comma-separated); a corpus "
    "(--objective causal-lm) takes loss, el2n, grand (default there: loss,el2n)",
    "at": "score times in --unit (comma-separated); each becomes a config such as cnn-ep2",
    "unit": "unit of --at: epoch or step (optimizer steps)",
    "epochs": "training length in epochs (default: the last score time, rounded up)",
    "batch_size": "training batch size in examples",
    "eval_batch_size": "batch size in examples of the EL2N scoring pass (does not change the scores; lowered, with a "
    "log line, where a batch would not fit in memory)",
    "grand_batch_size": "batch size in examples of the GraNd pass (memory ~ batch x activations; lowered, with a log "
    "line, where a batch would not fit in memory)",
    "optimizer": "sgd or adam (default: the model family's: sgd for cnn/mlp/resnet18, adam for fasttext and "
    "transformers)",
    "lr": "learning rate (default: the model family's: 0.1 with sgd, 0.01 for fasttext, 0.001 for transformers)",
    "momentum": "SGD momentum",
    "nesterov": "SGD Nesterov momentum",
    "weight_decay": "L2 weight decay (default: the model family's: 5e-4 for cnn/mlp/resnet18 with sgd, 0 for "
    "fasttext and transformers with adam)",
    "lr_milestones": "epochs at which the learning rate is multiplied by --lr-gamma (paper: 60,120,160)",
    "lr_gamma": "learning-rate factor at each milestone",
    "augmentation": "training view: crop-flip (pad 4, random crop, flip), resized-crop-flip (random-resized crop "
    "25-100%% area + flip), none, or auto (crop-flip for colour images >= 32 px, resized-crop-flip when their "
    "sizes vary, else none); scoring never augments",
    "mean": "per-channel normalisation mean on the 0..1 scale (default: computed from the split)",
    "std": "per-channel normalisation std on the 0..1 scale (default: computed from the split)",
    "checkpoint_every": "also checkpoint every this many epochs, for resuming long runs",
    "deterministic": "bit-identical reruns on the same device kind and software (slower; a bare flag means true)",
    "precision": "fp32, or bf16: forward passes of training and scoring under bfloat16 autocast (scores change "
    "slightly: docs/performance.md gives the measured agreement)",
    "parallel_seeds": "train the seeds together as one vectorized model (equal to one by one up to float "
    "rounding); default: where measured faster, which the log says",
    "channels_last": "run convolutions in the channels-last memory layout (equal up to float rounding); default: "
    "for 2-d convolutions on the CPU, where it was measured faster",
}
"""One line per ``ScoringConfig`` field for ``--help``: what it does and its unit (the default is appended)."""
