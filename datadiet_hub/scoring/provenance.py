"""The provenance of a scoring run, from its ``ScoringConfig``, the decoded source, the schedule and the machine it
ran on: the one place the engine fills ``datadiet_hub.provenance.Provenance`` (whose module owns the format)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from datadiet_hub import runtime
from datadiet_hub.columns import InputKind
from datadiet_hub.hashing import fingerprint
from datadiet_hub.metrics import get as get_metric
from datadiet_hub.metrics import names as metric_names
from datadiet_hub.provenance import Provenance, SourceInfo

from . import determinism
from .config import ScoringConfig

if TYPE_CHECKING:
    from .train import Schedule

logger = logging.getLogger(__name__)


def code_commit(package_dir: Path | None = None) -> str | None:
    """The commit of the checkout this engine runs from (``datadiet_hub.runtime.code_commit`` on the package
    folder ``datadiet_hub``, the parent of this subpackage)."""
    return runtime.code_commit(package_dir or Path(__file__).resolve().parents[1])


def environment(hardware: str, device: torch.device) -> dict[str, Any]:
    """What the engine adds to the runtime probe (``datadiet_hub.runtime``, read by ``EnvironmentInfo.current``):
    its own code commit, the hardware and device, the determinism settings of this process."""
    env: dict[str, Any] = {"code_commit": code_commit(), "hardware": hardware, "device": str(device)}
    env.update(determinism.describe())  # deterministic algorithms, cuDNN flags, cuBLAS workspace, threads
    return env


def config_entries(cfg: ScoringConfig, schedule: Schedule) -> dict[str, dict[str, Any]]:
    """Per score time that yields a config: its metrics, step and epoch (``configs`` of the provenance)."""
    from datadiet_hub.schema import config_name

    out = {}
    if cfg.model is None:
        raise ValueError("config_entries needs the run's model: resolve the config first (scoring.models).")
    for step in schedule.score_steps:
        # in declaration order; a score that needs training (forgetting) counts nothing at step 0
        metrics = [m for m in metric_names() if m in cfg.scores and (step > 0 or not get_metric(m).needs_training)]
        if metrics:
            name = config_name(cfg.model, step, schedule.steps_per_epoch)
            out[name] = {"step": step, "epoch": round(step / schedule.steps_per_epoch, 4), "metrics": metrics}
    return out


def build_provenance(
    cfg: ScoringConfig,
    data: Any,
    source: SourceInfo,
    schedule: Schedule,
    *,
    mean: list[float] | None,
    std: list[float] | None,
    augmentation: str,
    data_facts: Mapping[str, Any] | None = None,
    input_kind: InputKind = InputKind.IMAGE,
    label_names: Sequence[str] | None = None,
    configs: Mapping[str, Mapping[str, Any]],
    env: Mapping[str, Any],
    wall_time_s: float,
    command: str | None,
) -> Provenance:
    """The run's ``Provenance`` (the card's ``datadiet:`` block and every table's parquet metadata).

    ``data`` is anything with ``len`` and ``example_ids`` (a list or an arrow string array); ``data_facts`` (the
    data path and the image geometry or tokenizer, with the reasons) go into ``datadiet_hub.scoring.data``; the
    source records the input column and kind, and the class names by class id (``label_names``) through which a
    join maps string labels to the class ids the example ids hash."""
    scoring = cfg.identity()
    scoring.update(
        mean=None if mean is None else [round(v, 6) for v in mean],
        std=None if std is None else [round(v, 6) for v in std],
        augmentation=augmentation,
        data=dict(data_facts or {}),
        steps_per_epoch=schedule.steps_per_epoch,
        total_steps=schedule.total_steps,
    )
    return Provenance.from_scoring(
        source={
            "dataset": source.dataset,
            "split": cfg.split,
            "revision": source.revision,
            "num_rows": len(data),
            "fingerprint": fingerprint(data.example_ids),
            "input_column": source.input_column,
            "input_kind": str(input_kind),
            "label_column": source.label_column,
            "label_names": list(label_names) if label_names else None,
        },
        scoring=scoring,
        configs=configs,
        environment=env,
        wall_time_s=wall_time_s,
        command=command,
        **{f"{m}_convention": get_metric(m).convention for m in cfg.scores if get_metric(m).convention},
    )
