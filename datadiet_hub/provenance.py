"""``Provenance``: what a score dataset was computed from and how, as one frozen, typed value.

Written once (``writer.write_score_dataset``, into the card's YAML ``datadiet:`` block and into every parquet
file's schema metadata under the key ``datadiet``) and read once (``folder.ScoreFolder.provenance`` for a card,
``Provenance.from_parquet_metadata`` for a table read straight from our parquet). A table returned by
``load_scores`` carries it in ``Dataset.info.description`` behind ``DESCRIPTION_MARKER`` (``attach``/``provenance_of``):
``datasets.load_dataset`` drops custom parquet schema metadata, but ``Dataset.info`` survives ``select``, ``filter``,
``with_format`` and ``save_to_disk``, so no global state joins ``load_scores`` and ``prune``.

Reading is tolerant: unknown keys are kept in each block's ``extra`` mapping (and written back unchanged), missing
ones are None. In the YAML the environment fields (``library_version``, ``torch_version``, ``hardware``, ...) sit at
the top level of the block, as in every card written so far; an ``environment:`` mapping is read too.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from ._version import __version__
from .errors import ProvenanceError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PARQUET_KEY = b"datadiet"
PARQUET_CONFIG_KEY = b"datadiet_config"
DESCRIPTION_MARKER = "\n\n<!-- datadiet-provenance "
_DESCRIPTION_END = " -->"
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
        """The versions of this process's libraries (never imports torch; reads installed package metadata)."""

        def version(package: str) -> str | None:
            try:
                return md.version(package)
            except md.PackageNotFoundError:
                return None

        values: dict[str, Any] = {
            "library_version": __version__,
            "code_commit": code_commit(),
            "python_version": platform.python_version(),
            "datasets_version": version("datasets"),
            "numpy_version": version("numpy"),
            "huggingface_hub_version": version("huggingface-hub"),
            "torch_version": version("torch"),
            "accelerate_version": version("accelerate"),
        }
        values.update(overrides)
        return cls(**values)


def code_commit(package_dir: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout ``package_dir`` (default: this library) runs from, or None: not a git
    checkout (an installed wheel), no git, or a package folder that is not at the top of the repository git finds
    (a venv inside another repo). The scoring engine asks it about its own package folder."""
    folder = package_dir or Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != folder.parent:
        return None
    return lines[1] if len(lines[1]) == 40 else None


@dataclass(frozen=True)
class Provenance:
    """The ``datadiet:`` block of a score dataset's card, typed.

    Attributes:
        source: the scored split (its ``fingerprint`` is checked before pruning).
        scoring: model, seeds, times and training settings.
        configs: per config name, the model, time and metrics.
        environment: versions, code commit, hardware, determinism flags.
        wall_time_s: scoring time, summed over runs for combined folders.
        command: the command line that reproduces the scores.
        runs: for a folder combined from several runs, each run's own provenance (without ``source``).
        format_version: of the block layout; see ``FORMAT_VERSION``.
        extra: keys this version does not know, kept and written back.
    """

    source: SourceInfo = field(default_factory=SourceInfo)
    scoring: ScoringInfo = field(default_factory=ScoringInfo)
    configs: Mapping[str, ConfigInfo] = field(default_factory=dict)
    environment: EnvironmentInfo = field(default_factory=EnvironmentInfo)
    wall_time_s: float | None = None
    command: str | None = None
    runs: tuple[Provenance, ...] = ()
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- dict / YAML -------------------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Provenance:
        """Read a ``datadiet:`` block; tolerant of any mapping (unknown keys -> ``extra``, missing -> None)."""
        if data is None:
            return cls()
        if isinstance(data, Provenance):
            return data
        if not isinstance(data, Mapping):
            raise ProvenanceError(
                f"The datadiet provenance must be a mapping, not {type(data).__name__} ({data!r}).", value=data
            )
        data = dict(data)
        env = dict(data.pop("environment", None) or {})
        for name in _ENVIRONMENT_FIELDS:
            if name in data:
                env.setdefault(name, data.pop(name))
        raw_configs = data.pop("configs", None) or {}
        if not isinstance(raw_configs, Mapping):
            raise ProvenanceError(
                f"datadiet.configs must map config names to their info, not {raw_configs!r}.", value=raw_configs
            )
        runs = data.pop("runs", None) or ()
        wall = data.pop("wall_time_s", None)
        version = data.pop("format_version", None)
        return cls(
            source=SourceInfo.from_dict(data.pop("source", None)),
            scoring=ScoringInfo.from_dict(data.pop("scoring", None)),
            configs={str(k): ConfigInfo.from_dict(v) for k, v in raw_configs.items()},
            environment=EnvironmentInfo.from_dict(env),
            wall_time_s=float(wall) if wall is not None else None,
            command=data.pop("command", None),
            runs=tuple(cls.from_dict(r) for r in runs),
            format_version=int(version) if version is not None else FORMAT_VERSION,
            extra=data,
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``datadiet:`` YAML block (None fields left out unless read so; the source's identity always)."""
        out: dict[str, Any] = {"format_version": self.format_version}
        source = self.source.to_dict()
        if any(v is not None for v in source.values()):
            out["source"] = source
        scoring = self.scoring.to_dict()
        if scoring:
            out["scoring"] = scoring
        if self.configs:
            out["configs"] = {name: info.to_dict() for name, info in self.configs.items()}
        if self.runs:
            out["runs"] = [r.to_dict() for r in self.runs]
        out.update(self.environment.to_dict())  # flat, as format version 1 has always had them
        if self.wall_time_s is not None:
            out["wall_time_s"] = self.wall_time_s
        if self.command is not None:
            out["command"] = self.command
        out.update(_plain(dict(self.extra)))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Provenance:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise ProvenanceError(f"The provenance JSON does not parse: {err}.", value=text[:200]) from None

    # -- parquet schema metadata -------------------------------------------------------------------------------

    def to_parquet_metadata(self, config: str | None = None) -> dict[bytes, bytes]:
        """Schema metadata for a score table: the provenance as JSON under ``datadiet`` (and the config name)."""
        meta = {PARQUET_KEY: self.to_json().encode("utf-8")}
        if config is not None:
            meta[PARQUET_CONFIG_KEY] = config.encode("utf-8")
        return meta

    @classmethod
    def from_parquet_metadata(cls, metadata: Mapping[bytes, bytes] | None) -> Provenance | None:
        """The provenance stored in a parquet/arrow schema's metadata, or None when it has none."""
        raw = (metadata or {}).get(PARQUET_KEY)
        return None if raw is None else cls.from_json(raw.decode("utf-8"))

    # -- builders ----------------------------------------------------------------------------------------------

    @classmethod
    def from_scoring(
        cls,
        *,
        source: Mapping[str, Any],
        scoring: Mapping[str, Any],
        configs: Mapping[str, Mapping[str, Any]],
        environment: Mapping[str, Any] | None = None,
        wall_time_s: float | None = None,
        command: str | None = None,
        **extra: Any,
    ) -> Provenance:
        """The provenance of one scoring run, from the engine's plain values (``datadiet_hub.scoring.run`` calls this).

        ``scoring`` is the resolved ``ScoringConfig`` (its ``identity()`` plus derived values); fields the
        ``ScoringInfo`` does not name stay in its ``extra``. ``environment`` adds to ``EnvironmentInfo.current()``.
        """
        return cls(
            source=SourceInfo.from_dict(source),
            scoring=ScoringInfo.from_dict(scoring),
            configs={name: ConfigInfo.from_dict(info) for name, info in configs.items()},
            environment=EnvironmentInfo.current(**dict(environment or {})),
            wall_time_s=round(float(wall_time_s), 1) if wall_time_s is not None else None,
            command=command,
            extra=extra,
        )

    @classmethod
    def combine(cls, parts: list[Provenance]) -> Provenance:
        """One provenance for a folder combined from several runs of the same source split.

        Each run is kept under ``runs`` (without its ``source``). The combined ``scoring`` lists every model and
        keeps each training setting on which all runs agree, so the card can still show them; wall times add up.
        """
        if not parts:
            raise ProvenanceError("Give at least one provenance to combine.", value=parts)
        runs = tuple(replace(p, source=SourceInfo()) for p in parts)
        scorings = [p.scoring for p in parts]
        shared: dict[str, Any] = {}
        for name in (*ScoringInfo.TRAINING_FIELDS, "unit", "steps_per_epoch", "width", "scores"):
            values = {json.dumps(_plain(getattr(s, name)), sort_keys=True) for s in scorings}
            if len(values) == 1 and getattr(scorings[0], name) is not None:
                shared[name] = getattr(scorings[0], name)
        seeds = [s.seeds for s in scorings]
        configs: dict[str, ConfigInfo] = {}
        for p in parts:
            for name, info in p.configs.items():
                configs[name] = info if info.model is not None else replace(info, model=p.scoring.model)
        hardware = "; ".join(sorted({str(p.environment.hardware) for p in parts if p.environment.hardware}))
        walls = [p.wall_time_s for p in parts if p.wall_time_s is not None]
        commands = [p.command for p in parts if p.command]
        return cls(
            source=parts[0].source,
            scoring=ScoringInfo(
                model=", ".join(str(s.model or "?") for s in scorings),
                seeds=seeds[0] if all(s == seeds[0] for s in seeds) else tuple(seeds),
                **shared,
            ),
            configs=configs,
            environment=replace(parts[0].environment, hardware=hardware or None),
            wall_time_s=round(sum(walls), 1) if walls else None,
            command="\n".join(commands) or None,
            runs=runs,
        )

    # -- views -------------------------------------------------------------------------------------------------

    def training_settings(self) -> dict[str, Any]:
        """The training settings: this block's own, else (a combined folder) those on which every run agrees."""
        own = self.scoring.training_settings()
        if own or not self.runs:
            return own
        per_run = [r.scoring.training_settings() for r in self.runs]
        return {k: v for k, v in per_run[0].items() if all(p.get(k) == v for p in per_run[1:])}

    @property
    def augmented(self) -> bool | None:
        """Whether any run trained on augmented minibatches (None when no run says)."""
        flags = [s.augmented for s in [self.scoring, *(r.scoring for r in self.runs)] if s.augmented is not None]
        return any(flags) if flags else None

    def summary(self) -> str:
        """One line for ``datadiet versions``."""
        if self.source.dataset is not None or self.scoring.model is not None:
            seeds = self.scoring.seeds or ()
            config_epochs = [float(c.epoch) for c in self.configs.values() if c.epoch is not None]
            epochs: Any = self.scoring.epochs
            if epochs is None:
                epochs = max(self.scoring.at) if self.scoring.at else f"{max(config_epochs, default=0):g}"
            parts = [
                f"source={self.source.dataset or '?'}/{self.source.split or '?'} ({self.source.num_rows or '?'} rows)",
                f"model={self.scoring.model or '?'}",
                f"seeds={len(seeds)}",
                f"epochs={epochs}",
            ]
            if self.wall_time_s is not None:
                parts.append(f"wall={self.wall_time_s}s")
            return "  ".join(parts)
        items = list(self.extra.items())[:6]
        return "  ".join(f"{k}={_short(v)}" for k, v in items) or "(no datadiet provenance in card)"


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if len(value) > 6:
            return f"[{_short(value[0])}..{_short(value[-1])}] ({len(value)})"
        return "[" + ",".join(_short(v) for v in value) + "]"
    return str(value)


# -- the carrier on a loaded table ---------------------------------------------------------------------------------


def attach(dataset: Any, provenance: Provenance | None) -> Any:
    """Record ``provenance`` in ``dataset.info.description`` (behind ``DESCRIPTION_MARKER``) and return it.

    ``Dataset.info`` travels with ``select``, ``filter``, ``with_format``, ``shuffle`` and ``save_to_disk``;
    nothing is kept anywhere else.
    """
    if provenance is None:
        return dataset
    info = dataset.info
    text = info.description or ""
    if DESCRIPTION_MARKER in text:
        text = text[: text.index(DESCRIPTION_MARKER)]
    info.description = f"{text}{DESCRIPTION_MARKER}{provenance.to_json()}{_DESCRIPTION_END}"
    return dataset


def provenance_of(scores: Any) -> Provenance | None:
    """The provenance a score table carries: a ``Dataset`` from ``load_scores`` (and anything derived from it),
    or a pyarrow Table read from our parquet files; None for other tables (dicts, tables built by hand)."""
    schema = getattr(scores, "schema", None)
    if schema is not None and hasattr(schema, "metadata"):  # pyarrow.Table
        return Provenance.from_parquet_metadata(schema.metadata)
    info = getattr(scores, "info", None)
    text = getattr(info, "description", None) or ""
    if DESCRIPTION_MARKER not in text:
        return None
    body = text[text.rindex(DESCRIPTION_MARKER) + len(DESCRIPTION_MARKER) :]
    if body.endswith(_DESCRIPTION_END):
        body = body[: -len(_DESCRIPTION_END)]
    try:
        return Provenance.from_json(body)
    except ProvenanceError as err:
        logger.warning("Ignoring an unreadable provenance in the table's description: %s", err)
        return None


def as_provenance(value: Provenance | Mapping[str, Any] | None) -> Provenance | None:
    """Accept a ``Provenance`` or a ``datadiet:`` mapping (what older callers pass)."""
    if value is None or isinstance(value, Provenance):
        return value
    return Provenance.from_dict(value)
