"""``Provenance``: what a score dataset was computed from and how, as one frozen, typed value.

Written once (``writer.write_score_dataset``, into the card's YAML ``datadiet:`` block and into every parquet
file's schema metadata under the key ``datadiet``) and read once (``folder.ScoreFolder.provenance`` for a card,
``Provenance.from_parquet_metadata`` for a table read straight from our parquet). A table returned by
``load_scores`` carries it in ``Dataset.info.description`` (``table_provenance``). Its blocks are in
``provenance_blocks``; the versions and code commit come from ``runtime``.

Reading is tolerant: unknown keys are kept in each block's ``extra`` mapping (and written back unchanged), missing
ones are None. In the YAML the environment fields (``library_version``, ``torch_version``, ``hardware``, ...) sit at
the top level of the block, as in every card written so far; an ``environment:`` mapping is read too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ProvenanceError
from .provenance_blocks import (
    _ENVIRONMENT_FIELDS,
    FORMAT_VERSION,
    ConfigInfo,
    EnvironmentInfo,
    ScoringInfo,
    SourceInfo,
    _plain,
)
from .runtime import code_commit

__all__ = [
    "ConfigInfo",
    "EnvironmentInfo",
    "Provenance",
    "ScoringInfo",
    "SourceInfo",
    "code_commit",
]

logger = logging.getLogger(__name__)

PARQUET_KEY = b"datadiet"
PARQUET_CONFIG_KEY = b"datadiet_config"


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
