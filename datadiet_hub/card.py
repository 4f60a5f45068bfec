"""``ScoreCard``: a score dataset's card, on ``huggingface_hub``'s ``DatasetCard``: rendered from the package
template (``templates/score_card.md``) out of the ``Provenance`` and per-config summaries, read back (any unreadable
card is one ``CardError``), and saved atomically.

What the template cannot know (measured results, a subset table) goes into NAMED SECTIONS that experiments fill::

    <!-- section:recommended-subsets -->
    ## Recommended subsets
    ...
    <!-- /section:recommended-subsets -->

A filled section replaces the generated section of the same name (the slug of its ``##`` heading) or, when the
template has none, comes before ``## Citation``; re-rendering a card (``refresh``) keeps every filled section.
Inside any section, ``<!-- name -->`` ... ``<!-- /name -->`` markers delimit a block that ``fill`` replaces.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from huggingface_hub import DatasetCard, DatasetCardData

from . import metrics as declarations
from ._version import __version__
from .atomic import atomic_write_bytes
from .errors import CardError
from .metrics import Metric
from .provenance import ConfigInfo, Provenance
from .schema import DATA_GLOB
from .stats import mean_pairwise_spearman

TEMPLATE = Path(__file__).parent / "templates" / "score_card.md"
CITATION_TAGS = ["data-pruning", "datadiet", "example-difficulty"]
KNOWN_LICENSES = {"fashion_mnist": "mit", "uoft-cs/cifar10": "unknown", "cifar10": "unknown"}
TASK_CATEGORIES = {"image": "image-classification", "text": "text-classification"}
"""The Hub task category of a card, by the input kind of the scored split."""


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
    name: str,
    info: ConfigInfo | None,
    metrics: list[str],
    per_seed: np.ndarray | None,
    others: Mapping[str, np.ndarray | None] | None = None,
) -> ConfigSummary:
    """The card row of one config; a metric that is noise at initialisation (EL2N) gets the warning there, with
    the seed-to-seed Spearman of the config's other metrics (``others``: their per-seed values), which are not."""
    info = info or ConfigInfo()
    noisy = _noise_at_init(info, metrics)
    note = f"⚠ noise control ({', '.join(m.title for m in noisy)} at init)" if noisy else ""
    if noisy:
        for metric, values in (others or {}).items():
            declared = declarations.METRICS.get(metric)
            if declared is not None and declared not in noisy and values is not None and values.ndim == 2:
                note += f"; {declared.title} seed-to-seed {seed_spearman_text(values)}"
    return ConfigSummary(
        name, str(info.model or "n/a"), info.time_text(), list(metrics), seed_spearman_text(per_seed), note
    )


def _noise_at_init(info: ConfigInfo, metrics: Sequence[str]) -> list[Metric]:
    declared = [declarations.METRICS[m] for m in metrics if m in declarations.METRICS]
    return [m for m in declared if info.at_init and m.noise_at_init]


def columns_text(metrics: Sequence[str], augmented: bool | None) -> str:
    """The card's paragraph defining the score columns present, from the metric declarations."""
    declared = [declarations.METRICS[m] for m in declarations.names() if m in metrics]
    if not declared:
        return ""
    minibatches = {True: "augmented minibatches as trained", False: "minibatches as trained, without augmentation"}
    words = {"minibatches": minibatches.get(augmented, "minibatches as trained")}  # type: ignore[arg-type]
    text = "Columns: " + "; ".join(m.card.format(**words) for m in declared) + "."
    averaged = [m for m in declared if m.over_seeds]
    if averaged:
        each = "Each is" if len(averaged) == len(declared) else f"{', '.join(f'`{m.name}`' for m in averaged)} are"
        text += f" {each} the mean over seeds (`*_std`: standard deviation, `*_per_seed`: raw values)."
    if all(m.higher_is_harder for m in declared):
        text += " Larger is harder for every metric."
    else:
        easy = ", ".join(f"`{m.name}`" for m in declared if not m.higher_is_harder)
        text += f" Larger is harder, except for {easy} (smaller is harder)."
    text += "".join(f" {m.card_note}" for m in declared if m.card_note)
    return textwrap.fill(text, width=115, break_long_words=False, break_on_hyphens=False)


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


def init_warning(configs: Sequence[ConfigSummary]) -> str | None:
    """The warnings of the metrics that some config scored at initialisation where they are noise."""
    noted = {m for c in configs if c.note for m in c.metrics}
    texts = [declarations.METRICS[m].noise_at_init for m in declarations.names() if m in noted]
    return " ".join(t for t in texts if t) or None


def usage_config(configs: Sequence[ConfigSummary]) -> ConfigSummary:
    """The config the usage snippet loads: a score from training, not one at initialisation, and among those the
    one whose seeds agree most (its seed-to-seed Spearman); the first trained config when none was measured."""
    trained = [c for c in configs if c.time not in ("epoch 0", "step 0")] or list(configs)

    def agreement(config: ConfigSummary) -> float:
        try:
            return float(config.seed_spearman)
        except ValueError:
            return float("-inf")

    best = max(trained, key=agreement)  # max keeps the first of equals: the first trained config when none is known
    return best if agreement(best) > float("-inf") else trained[0]


def yaml_configs(config_names: list[str]) -> list[dict[str, Any]]:
    """The ``configs:`` YAML entries that let plain ``load_dataset(folder, config)`` find each parquet file."""
    return [
        {"config_name": name, "data_files": [{"split": "train", "path": DATA_GLOB.format(config=name)}]}
        for name in config_names
    ]


def build_card(
    *,
    provenance: Provenance,
    configs: list[ConfigSummary],
    plots: Sequence[str] = (),
    examples: Sequence[str] = (),
    repo_hint: str = "path/to/scores",
    license: str | None = None,
    sections: Mapping[str, str] | None = None,
) -> ScoreCard:
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
        task_categories=[TASK_CATEGORIES.get(str(source.input_kind or "image"), "image-classification")],
        source_datasets=[] if _is_local_path(dataset) else [dataset],  # never publish a local path
        size_categories=[_size_category(num_rows)],
        configs=yaml_configs([c.name for c in configs]),
        datadiet=json.loads(json.dumps(provenance.to_dict())),  # plain tree: YAML gets no &id001 anchors
    )
    example = usage_config(configs)
    versions = sorted({str(v) for v in [provenance.environment.library_version] if v is not None})
    versions += sorted({str(r.environment.library_version) for r in provenance.runs if r.environment.library_version})
    card = ScoreCard.from_template(
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
        first_metric=next((m for m in declarations.names() if m in example.metrics), "el2n"),
        configs=configs,
        init_warning=init_warning(configs),
        columns_text=columns_text(metrics, provenance.augmented),
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
    for name, markdown in (sections or {}).items():
        card.set_section(name, markdown)
    return card


_SECTION = re.compile(r"<!-- section:(?P<name>[a-z0-9-]+) -->\n(?P<body>.*?)\n<!-- /section:(?P=name) -->", re.S)
_HEADING = re.compile(r"^## (?P<title>.+)$", re.M)


def section_slug(title: str) -> str:
    """The name of a section from its heading: ``Recommended subsets`` -> ``recommended-subsets``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class ScoreCard(DatasetCard):
    """A score dataset's card: the ``DatasetCard`` with the provenance under ``datadiet:`` and named sections."""

    @classmethod
    def read(cls, path: str | os.PathLike) -> ScoreCard:
        """Parse a card file; every way it can fail is one ``CardError`` naming the file (never a Hub lookup)."""
        path = Path(path)
        if not path.is_file():  # DatasetCard.load would take a missing path for a Hub repo id
            raise CardError(
                f"{str(path)!r} does not exist: a score dataset needs its card (README.md with the `configs:` YAML). "
                "Point at the folder `datadiet score` wrote.",
                path=path,
            )
        try:
            return cls.load(path)
        except (ValueError, yaml.YAMLError, OSError, UnicodeDecodeError) as err:
            raise CardError(
                f"The card {str(path)!r} cannot be read: {' '.join(str(err).split())}. Fix its YAML header "
                "(between the two '---' lines) or rewrite the folder with `datadiet score`.",
                path=path,
            ) from err

    def metadata(self) -> dict[str, Any]:
        """The YAML header as a plain dict."""
        return self.data.to_dict()

    def provenance(self) -> Provenance:
        """The ``datadiet:`` block (an empty ``Provenance`` when the card has none)."""
        block = self.metadata().get("datadiet")
        if block is not None and not isinstance(block, dict):
            raise CardError(f"The card's `datadiet:` block is not a mapping ({block!r}).")
        return Provenance.from_dict(block)

    def sections(self) -> dict[str, str]:
        """The filled sections by name, each its markdown (heading included), in card order."""
        return {m["name"]: m["body"] for m in _SECTION.finditer(self.text)}

    def set_section(self, name: str, markdown: str, *, after: str | None = None) -> None:
        """Fill section ``name`` with ``markdown`` (usually starting with its ``##`` heading): in place of the
        filled or generated section of that name, else right after section ``after``, else before ``## Citation``
        (else at the end)."""
        if section_slug(name) != name:
            raise CardError(f"Invalid section name {name!r}: use lowercase words joined by '-', e.g. 'results'.")
        block = f"<!-- section:{name} -->\n{markdown.strip()}\n<!-- /section:{name} -->"
        spans = {n: (start, end) for n, start, end, _ in _spans(self.text)}
        text = self.text
        if name in spans:
            start, end = spans[name]
            self.text = _join(text[:start], block, text[end:])
        elif after is not None and after in spans:
            end = spans[after][1]
            self.text = _join(text[:end], block, text[end:])
        else:
            at = spans["citation"][0] if "citation" in spans else len(text)
            self.text = _join(text[:at], block, text[at:])

    def fill(self, marker: str, body: str) -> None:
        """Replace the block between ``<!-- marker -->`` and ``<!-- /marker -->`` (``CardError`` if absent)."""
        self.text = fill_marked(self.text, marker, body)

    def refresh(self, fresh: ScoreCard) -> ScoreCard:
        """``fresh`` (a new rendering, e.g. after a template change) with this card's filled sections kept, each
        after the section it followed here."""
        previous = None
        for name, _, _, filled in _spans(self.text):
            if filled:
                fresh.set_section(name, self.sections()[name], after=previous)
            previous = name
        return fresh

    def save(self, filepath: str | os.PathLike) -> None:
        """Write the card atomically (a reader sees the old card or the new one, never a part)."""
        atomic_write_bytes(Path(filepath), str(self).encode("utf-8"))


def _join(head: str, block: str, tail: str) -> str:
    head, tail = head.rstrip("\n"), tail.lstrip("\n")
    return (head + "\n\n" if head else "") + block + ("\n\n" + tail if tail else "\n")


def _spans(text: str) -> list[tuple[str, int, int, bool]]:
    """The body's sections in order: ``(name, start, end, filled)``; a generated section runs from its ``##``
    heading to the next heading or filled section."""
    filled = [(m["name"], m.start(), m.end(), True) for m in _SECTION.finditer(text)]
    headings = [h for h in _HEADING.finditer(text) if not any(a <= h.start() < b for _, a, b, _ in filled)]
    starts = sorted([h.start() for h in headings] + [a for _, a, _, _ in filled])
    generated = [
        (section_slug(h["title"]), h.start(), min([s for s in starts if s > h.start()], default=len(text)), False)
        for h in headings
    ]
    return sorted(filled + generated, key=lambda span: span[1])


def fill_marked(text: str, marker: str, body: str) -> str:
    """``text`` with the block between ``<!-- marker -->`` and ``<!-- /marker -->`` replaced by ``body``."""
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    if start not in text or end not in text.split(start, 1)[1]:
        raise CardError(f"The card has no {start} ... {end} block to fill; add the markers where it belongs.")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{start}\n{body.strip(chr(10))}\n{end}{tail}"
