"""The blocks of a ``Provenance``: the scored split (``SourceInfo``, the one description of a source split, also
what a scoring run caches about it), how it was scored (``ScoringInfo``), each config (``ConfigInfo``) and where
(``EnvironmentInfo``, filled from the runtime probe). Each is frozen and tolerant: unknown keys are kept in
``extra`` and written back unchanged, missing ones are None."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from . import runtime
from .errors import ProvenanceError

__all__ = ["FORMAT_VERSION", "ConfigInfo", "EnvironmentInfo", "ScoringInfo", "SourceInfo"]

FORMAT_VERSION = 1
# the source fields always written, even when unknown: a missing revision means "unpinned" and should say so
_ALWAYS_WRITTEN = frozenset({"dataset", "split", "revision", "num_rows", "fingerprint"})

_B = TypeVar("_B", bound="_Block")
_ENVIRONMENT_FIELDS = (
    "library_version",
    "code_commit",
    "python_version",
    "torch_version",
    "accelerate_version",
    "datasets_version",
    "numpy_version",
    "huggingface_hub_version",
    "hardware",
    "device",
    "deterministic_algorithms",
    "cudnn_benchmark",
)


def _plain(value: Any) -> Any:
    """YAML/JSON-ready copy: tuples to lists, mappings to dicts, numpy scalars to Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _frozen(value: Any) -> Any:
    """Lists become tuples (recursively) so the value object holds no mutable sequence."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class _Block:
    """A block of the ``datadiet:`` YAML: typed fields plus ``extra`` for keys this version does not know."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """The keys the block was read with: written back even when None, so a card round-trips exactly."""

    @classmethod
    def from_dict(cls: type[_B], data: Mapping[str, Any] | None) -> _B:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ProvenanceError(
                f"A provenance block must be a mapping, not {type(data).__name__} ({data!r}).", value=data
            )
        known = {f.name for f in fields(cls)} - {"extra", "given"}
        kwargs = {k: _frozen(v) for k, v in data.items() if k in known}
        extra = {str(k): v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra, given=frozenset(kwargs))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "given"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in self.given or f.name in self._always():
                out[f.name] = _plain(value)
        out.update(_plain(dict(self.extra)))
        return out

    def _always(self) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class SourceInfo(_Block):
    """The scored split: its name, revision, size and content fingerprint (hash over all ``example_id``).

    ``input_column``/``input_kind``/``label_column`` are the columns the run read (older cards name the input
    ``image_column``, or ``text_column`` in ``extra``); ``label_names`` are the class names by class id, through
    which a join maps string labels to the class ids the ids were hashed with (see ``hashing``)."""

    dataset: str | None = None
    split: str | None = None
    revision: str | None = None
    num_rows: int | None = None
    fingerprint: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    input_column: str | None = None
    input_kind: str | None = None
    label_names: tuple[str, ...] | None = None
    package: str | None = None
    package_version: str | None = None

    def _always(self) -> frozenset[str]:
        return _ALWAYS_WRITTEN


@dataclass(frozen=True)
class ScoringInfo(_Block):
    """How the scores were made: model, seeds, when they were taken, and the training settings."""

    model: str | None = None
    seeds: tuple[Any, ...] | None = None
    scores: tuple[str, ...] | None = None
    epochs: int | None = None
    at: tuple[int, ...] | None = None
    unit: str | None = None
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    optimizer: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float | None = None
    augmentation: str | None = None
    deterministic: bool | None = None
    width: float | None = None

    TRAINING_FIELDS = (
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "momentum",
        "nesterov",
        "weight_decay",
        "lr_milestones",
        "lr_gamma",
        "augmentation",
        "deterministic",
    )

    def training_settings(self) -> dict[str, Any]:
        """The training settings that are known, in a stable order (for the card's "training" row)."""
        out = {}
        for name in self.TRAINING_FIELDS:
            value = getattr(self, name)
            if value is not None and value != ():
                out[name] = _plain(value)
        return out

    @property
    def augmented(self) -> bool | None:
        """Whether training used augmentation (None when unknown)."""
        if self.augmentation is None:
            return None
        return str(self.augmentation).lower() not in ("none", "false", "off", "")


@dataclass(frozen=True)
class ConfigInfo(_Block):
    """One config of the dataset: the model and the time (epoch/step) its scores were taken at, its metrics."""

    model: str | None = None
    step: int | None = None
    epoch: float | None = None
    metrics: tuple[str, ...] | None = None

    @property
    def at_init(self) -> bool:
        """Scores taken before any training step (epoch/step 0)."""
        return self.step == 0 or (self.step is None and self.epoch is not None and float(self.epoch) == 0.0)

    def time_text(self) -> str:
        """``epoch 2``, ``step 150 (epoch 0.32)`` or ``n/a`` for the card."""
        if self.epoch is not None and float(self.epoch) == int(float(self.epoch)):
            return f"epoch {float(self.epoch):g}"
        if self.step is not None and self.epoch is not None:
            return f"step {self.step} (epoch {float(self.epoch):.2f})"
        if self.step is not None:
            return f"step {self.step}"
        return f"epoch {float(self.epoch):g}" if self.epoch is not None else "n/a"


@dataclass(frozen=True)
class EnvironmentInfo(_Block):
    """Where the scores were computed: library and dependency versions, code commit, hardware, determinism."""

    library_version: str | None = None
    code_commit: str | None = None
    python_version: str | None = None
    torch_version: str | None = None
    accelerate_version: str | None = None
    datasets_version: str | None = None
    numpy_version: str | None = None
    huggingface_hub_version: str | None = None
    hardware: str | None = None
    device: str | None = None
    deterministic_algorithms: bool | None = None
    cudnn_benchmark: bool | None = None
    cudnn_deterministic: bool | None = None
    cublas_workspace_config: str | None = None
    intra_op_threads: int | None = None
    """The settings ``--deterministic`` fixes (scoring/determinism.py); None where a run did not record them."""

    @classmethod
    def current(cls, **overrides: Any) -> EnvironmentInfo:
        """This process's versions and code commit (``runtime``: probed once, never imports torch); a version the
        block has no field for (pyarrow, ...) is left out, so the recorded set stays the card's."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            "library_version": runtime.get_library_version(),
            "code_commit": runtime.code_commit(),
            "python_version": runtime.get_python_version(),
            **{k: v for k, v in runtime.versions().items() if k in known},
        }
        values.update(overrides)
        return cls(**values)
