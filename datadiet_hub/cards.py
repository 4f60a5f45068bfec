"""The score dataset's README card: YAML (validated by ``huggingface_hub.DatasetCardData``) plus a readable body."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .schema import DATA_FILE

TEMPLATE = Path(__file__).parent / "templates" / "score_card.md"
CITATION_TAGS = ["data-pruning", "datadiet", "example-difficulty"]
KNOWN_LICENSES = {"fashion_mnist": "mit", "uoft-cs/cifar10": "unknown", "cifar10": "unknown"}


@dataclass
class ConfigSummary:
    """One row of the card's config table."""

    name: str
    model: str
    time: str
    metrics: list[str]
    seed_spearman: str = "n/a"
    extra: dict[str, Any] = field(default_factory=dict)


def yaml_configs(config_names: list[str]) -> list[dict[str, Any]]:
    """The ``configs:`` YAML entries that let plain ``load_dataset(folder, config)`` find each parquet file."""
    return [
        {
            "config_name": name,
            "data_files": [
                {"split": "train", "path": DATA_FILE.format(config=name).replace("train-00000-of-00001", "train-*")}
            ],
        }
        for name in config_names
    ]


def _seeds_text(seeds: list) -> str:
    if not seeds:
        return "n/a"
    if all(isinstance(s, list) for s in seeds):  # one list per combined run
        return "; ".join(_seeds_text(s) for s in seeds)
    return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M" if n < 10_000_000 else "n>1M"


def build_card(
    *,
    provenance: dict[str, Any],
    configs: list[ConfigSummary],
    plots: list[str] = (),
    repo_hint: str = "path/to/scores",
    license: str | None = None,
) -> huggingface_hub.DatasetCard:  # noqa: F821
    """Render the card from the package template; the provenance goes under the YAML key ``datadiet``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    source = provenance["source"]
    scoring = provenance.get("scoring", {})
    metrics = sorted({m for c in configs for m in c.metrics})
    card_data = DatasetCardData(
        license=license or KNOWN_LICENSES.get(source["dataset"], "other"),
        pretty_name=f"Data-diet scores for {source['dataset']}",
        tags=CITATION_TAGS + metrics,
        task_categories=["image-classification"],
        source_datasets=[source["dataset"]],
        size_categories=[_size_category(int(source["num_rows"]))],
        configs=yaml_configs([c.name for c in configs]),
        datadiet=provenance,
    )
    seeds = scoring.get("seeds", [])
    # the usage snippet shows a score from training, not one at initialisation
    example = next((c for c in configs if c.time not in ("epoch 0", "step 0")), configs[0])
    training = ", ".join(
        f"{k}={scoring[k]}"
        for k in ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "augmentation")
        if k in scoring
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name=card_data.pretty_name,
        source_name=source["dataset"],
        source_revision=source.get("revision") or "unpinned",
        split=source["split"],
        num_rows=source["num_rows"],
        fingerprint=source.get("fingerprint", "n/a"),
        repo_hint=repo_hint,
        first_config=example.name,
        first_metric=next((m for m in ("el2n", "grand", "forgetting") if m in example.metrics), "el2n"),
        configs=configs,
        plots=list(plots),
        model=scoring.get("model", "n/a"),
        seeds=_seeds_text(seeds),
        training=training or "n/a",
        hardware=provenance.get("hardware", "n/a"),
        wall_time=f"{provenance['wall_time_s']:.0f} s" if "wall_time_s" in provenance else "n/a",
        library_version=provenance.get("library_version", __version__),
        command=provenance.get("command"),
    )


def read_card_data(readme: str | Path) -> dict[str, Any]:
    """The YAML header of a score dataset's README as a dict (raises ``ValueError`` if it has none)."""
    from .versions import read_card_metadata

    data = read_card_metadata(Path(readme).read_text(encoding="utf-8"), source=str(readme))
    if not data:
        raise ValueError(f"{readme} has no YAML header.")
    return data


def seed_spearman_text(per_seed: np.ndarray | None) -> str:
    """Mean pairwise Spearman of per-seed scores, formatted for the card table."""
    from .stats import mean_pairwise_spearman

    if per_seed is None or per_seed.ndim != 2 or per_seed.shape[1] < 2:
        return "n/a (1 seed)"
    return f"{mean_pairwise_spearman(per_seed):.3f}"
