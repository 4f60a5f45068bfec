"""Rendering a score dataset's card: the YAML (``DatasetCardData``) and the body (``templates/score_card.md``).

Everything shown comes from the ``Provenance`` and per-config summaries; reading a card back is ``folder.py``'s job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import DatasetCard, DatasetCardData

from ._version import __version__
from .folder import yaml_configs
from .provenance import ConfigInfo, Provenance
from .stats import mean_pairwise_spearman

TEMPLATE = Path(__file__).parent / "templates" / "score_card.md"
CITATION_TAGS = ["data-pruning", "datadiet", "example-difficulty"]
KNOWN_LICENSES = {"fashion_mnist": "mit", "uoft-cs/cifar10": "unknown", "cifar10": "unknown"}
INIT_EL2N_WARNING = (
    "EL2N at initialisation is a noise control, not a difficulty score: an untrained network's errors are "
    "unrelated across seeds (seed-to-seed Spearman about 0). Prune with a later config; GraNd at initialisation "
    "is meaningful (it follows the input norm)."
)


@dataclass
class ConfigSummary:
    """One row of the card's config table."""

    name: str
    model: str
    time: str
    metrics: list[str]
    seed_spearman: str = "n/a"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def summarize_config(
    name: str, info: ConfigInfo | None, metrics: list[str], per_seed: np.ndarray | None
) -> ConfigSummary:
    """The card row of one config; EL2N scored at initialisation gets the noise-control warning."""
    info = info or ConfigInfo()
    note = "⚠ noise control (EL2N at init)" if info.at_init and "el2n" in metrics else ""
    return ConfigSummary(
        name, str(info.model or "n/a"), info.time_text(), list(metrics), seed_spearman_text(per_seed), note
    )


def seed_spearman_text(per_seed: np.ndarray | None) -> str:
    """Mean pairwise Spearman of per-seed scores, formatted for the card table."""
    if per_seed is None or per_seed.ndim != 2 or per_seed.shape[1] < 2:
        return "n/a (1 seed)"
    return f"{mean_pairwise_spearman(per_seed):.3f}"


def _seeds_text(seeds: Sequence[Any] | None) -> str:
    if not seeds:
        return "n/a"
    if all(isinstance(s, (list, tuple)) for s in seeds):  # one list per combined run
        return "; ".join(_seeds_text(s) for s in seeds)
    return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M" if n < 10_000_000 else "n>1M"


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def training_text(provenance: Provenance) -> str:
    """The card's "training" row: the shared settings, else each run's (combined folders), else n/a."""
    shared = provenance.training_settings()
    text = _settings_text(shared)
    for run in provenance.runs:  # what a run set differently from the shared settings
        own = {k: v for k, v in run.training_settings().items() if shared.get(k) != v}
        if own:
            text += f"; {run.scoring.model or '?'}: {_settings_text(own)}"
    return text.lstrip("; ") or "n/a"


def environment_rows(provenance: Provenance) -> list[tuple[str, str]]:
    """(label, value) rows for the environment part of the provenance table; unknown values are left out."""
    envs = [provenance.environment, *(r.environment for r in provenance.runs)]

    def joined(name: str) -> str | None:
        values = sorted({str(getattr(e, name)) for e in envs if getattr(e, name) is not None})
        return ", ".join(values) or None

    rows = [
        ("hardware", joined("hardware")),
        ("device", joined("device")),
        ("code commit", joined("code_commit")),
        ("python", joined("python_version")),
        ("torch", joined("torch_version")),
        ("accelerate", joined("accelerate_version")),
        ("datasets", joined("datasets_version")),
        ("numpy", joined("numpy_version")),
        ("huggingface_hub", joined("huggingface_hub_version")),
        ("deterministic algorithms", joined("deterministic_algorithms")),
        ("cudnn benchmark", joined("cudnn_benchmark")),
    ]
    return [(label, value) for label, value in rows if value is not None]


def _is_local_path(dataset: str) -> bool:
    """A source named by a local path (``/data/x.parquet``, ``./copy``), which is no Hub dataset id."""
    return dataset.startswith(("/", "./", "../", "~")) or "\\" in dataset or os.path.exists(dataset)


def build_card(
    *,
    provenance: Provenance,
    configs: list[ConfigSummary],
    plots: Sequence[str] = (),
    examples: Sequence[str] = (),
    repo_hint: str = "path/to/scores",
    license: str | None = None,
) -> DatasetCard:
    """Render the card from the package template; the provenance goes under the YAML key ``datadiet``.

    ``plots`` are the score histograms (embedded), ``examples`` the example grids (``.png``, embedded) and tables
    (``.md``, linked), as paths relative to the folder.
    """
    source = provenance.source
    dataset = source.dataset or "unknown"
    metrics = sorted({m for c in configs for m in c.metrics})
    num_rows = int(source.num_rows or 0)
    card_data = DatasetCardData(
        license=license or KNOWN_LICENSES.get(dataset, "other"),
        pretty_name=f"Data-diet scores for {dataset}",
        tags=CITATION_TAGS + metrics,
        task_categories=["image-classification"],
        source_datasets=[] if _is_local_path(dataset) else [dataset],  # never publish a local path
        size_categories=[_size_category(num_rows)],
        configs=yaml_configs([c.name for c in configs]),
        datadiet=json.loads(json.dumps(provenance.to_dict())),  # plain tree: YAML gets no &id001 anchors
    )
    # the usage snippet shows a score from training, not one at initialisation
    example = next((c for c in configs if c.time not in ("epoch 0", "step 0")), configs[0])
    versions = sorted({str(v) for v in [provenance.environment.library_version] if v is not None})
    versions += sorted({str(r.environment.library_version) for r in provenance.runs if r.environment.library_version})
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=card_data.pretty_name,
        source_name=dataset,
        source_revision=source.revision or "unpinned",
        split=source.split or "n/a",
        num_rows=source.num_rows if source.num_rows is not None else "n/a",
        fingerprint=source.fingerprint or "n/a",
        repo_hint=repo_hint,
        first_config=example.name,
        first_metric=next((m for m in ("el2n", "grand", "forgetting") if m in example.metrics), "el2n"),
        configs=configs,
        init_warning=INIT_EL2N_WARNING if any(c.note for c in configs) else None,
        augmented=provenance.augmented,
        plots=list(plots),
        examples=[(path, path.endswith(".png")) for path in examples],
        model=provenance.scoring.model or "n/a",
        seeds=_seeds_text(provenance.scoring.seeds),
        training=training_text(provenance),
        environment=environment_rows(provenance),
        wall_time=f"{provenance.wall_time_s:.0f} s" if provenance.wall_time_s is not None else "n/a",
        library_version=", ".join(dict.fromkeys(versions)) or __version__,
        command=provenance.command,
    )
