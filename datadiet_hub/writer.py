"""Write a score dataset folder: tables + a ``Provenance`` -> ``data/<config>/train-*.parquet``, plots, the card.

The layout is ``ScoreFolder``'s; every file is written to a temporary name and renamed into place, so a crash
leaves either the old file or the new one, never half of one. Each parquet file carries the provenance in its
schema metadata (key ``datadiet``), so a table read straight from it still says where it came from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ._examples_write import write_folder_examples
from ._plotting import PLOT_EXTRA, pyplot, save_png
from .atomic import atomic_write_bytes, write_parquet
from .card import ConfigSummary, build_card, summarize_config
from .errors import InvalidArgumentError, MissingExtraError, ScoreMismatchError
from .folder import ScoreFolder, is_examples_file
from .provenance import ConfigInfo, Provenance
from .schema import metrics_in, validate_config_name, validate_table
from .sources import Source
from .table_provenance import as_provenance

logger = logging.getLogger(__name__)

__all__ = ["atomic_write_bytes", "combine_score_folders", "refresh_card", "write_parquet", "write_score_dataset"]


def _plot_histograms(folder: ScoreFolder, config: str, table: pa.Table) -> list[str]:
    """One PNG per metric with a histogram of its mean score; skipped (logged) without matplotlib."""
    try:
        plt = pyplot()
    except MissingExtraError:
        logger.info("matplotlib not installed: no histograms in the card (%s).", PLOT_EXTRA)
        return []
    written = []
    for metric in metrics_in(table.column_names):
        values = table.column(metric).to_numpy()
        fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
        ax.hist(values, bins=50, color="#4c72b0")
        ax.set_xlabel(f"{metric} (mean over seeds)")
        ax.set_ylabel("examples")
        ax.set_title(f"{config}: {metric}")
        fig.tight_layout()
        target = folder.plot_file(config, metric)
        save_png(fig, target)
        written.append(target.relative_to(folder.path).as_posix())
    return written


def _per_seed(table: pa.Table, metric: str) -> np.ndarray | None:
    """The per-seed values of ``metric`` as an (n, seeds) array, when every row has the same number of seeds."""
    if f"{metric}_per_seed" not in table.column_names:
        return None
    column = table.column(f"{metric}_per_seed").combine_chunks()
    lengths = set(column.value_lengths().to_pylist()) if len(column) else set()
    if len(lengths) != 1:
        return None
    return column.flatten().to_numpy().reshape(len(table), lengths.pop())


def _class_label_metadata(table: pa.Table, prov: Provenance) -> dict[bytes, bytes]:
    """The ``datasets`` features of ``table`` with ``label`` as a ``ClassLabel`` of the scored class names, under the
    schema key ``datasets`` reads them from: ``load_dataset`` then gives the names with the table (our own
    ``datadiet`` key does not survive it), so ``keep`` can map a dataset's string labels without the card."""
    names = prov.source.label_names
    if not names or "label" not in table.column_names:
        return {}
    import datasets

    features = datasets.Features.from_arrow_schema(table.schema)
    features["label"] = datasets.ClassLabel(names=[str(n) for n in names])
    return {b"huggingface": json.dumps({"info": {"features": features.to_dict()}}).encode("utf-8")}


def _summary(name: str, table: pa.Table, info: ConfigInfo | None, override: Mapping[str, Any]) -> ConfigSummary:
    metrics = metrics_in(table.column_names)
    others = {m: _per_seed(table, m) for m in metrics[1:]} if info is not None and info.at_init else {}
    summary = summarize_config(name, info, metrics, _per_seed(table, metrics[0]), others)
    if "model" in override:
        summary.model = str(override["model"])
    if "time" in override:
        summary.time = str(override["time"])
    return summary


def write_score_dataset(
    folder: str | os.PathLike,
    tables: dict[str, pa.Table],
    *,
    provenance: Provenance | Mapping[str, Any],
    config_info: dict[str, dict[str, Any]] | None = None,
    plots: bool = True,
    repo_hint: str | None = None,
    examples_source: Source | None = None,
) -> Path:
    """Write every config's table and the card into ``folder``.

    Args:
        folder: target folder (created); files of configs not in ``tables`` are left alone.
        tables: config name -> score table (validated against the format).
        provenance: a ``Provenance`` (``Provenance.from_scoring``); a ``datadiet:`` mapping is read with
            ``Provenance.from_dict``. Its ``configs`` give each config's model and time.
        config_info: optional per-config ``model``/``time`` overriding what the card shows.
        plots: draw score histograms when matplotlib is available.
        repo_hint: the repo id or path shown in the card's usage snippet.
        examples_source: the scored split; with ``plots``, each config's hardest, easiest and most likely
            mislabeled examples go to ``plots/`` (``examples.write_folder_examples``) and the card shows them.
    """
    if not tables:
        raise InvalidArgumentError("No score tables to write: give at least one config's table.", value=tables)
    prov = as_provenance(provenance) or Provenance()
    target = ScoreFolder(folder)
    config_info = config_info or {}
    summaries, plot_files, example_files = [], [], []
    checked = {}
    for name, table in tables.items():  # validate every table before writing any: a bad one leaves no file
        validate_config_name(name)
        checked[name] = validate_table(table)
    for name, table in checked.items():
        table = table.replace_schema_metadata({**prov.to_parquet_metadata(name), **_class_label_metadata(table, prov)})
        write_parquet(target.data_file(name), table)
        summaries.append(_summary(name, table, prov.configs.get(name), config_info.get(name, {})))
        if plots:
            plot_files += _plot_histograms(target, name, table)
        if plots and examples_source is not None:
            example_files += write_folder_examples(target, name, table, examples_source, provenance=prov)
    card = build_card(
        provenance=prov,
        configs=summaries,
        plots=plot_files,
        examples=example_files,
        repo_hint=repo_hint or str(folder),
    )
    target.write_card(card)
    logger.info("Wrote %d config(s) to %s", len(tables), target.path)
    return target.path


def refresh_card(folder: str | os.PathLike, *, repo_hint: str | None = None) -> Path:
    """Re-render a folder's card from its own provenance and tables (after a change to the card template).

    The filled sections (``ScoreCard.sections``: measured results, subset tables) are kept; the data files and plots
    are left as they are.
    """
    source = ScoreFolder(folder)
    prov = source.provenance()
    summaries = [_summary(name, source.read_table(name), prov.configs.get(name), {}) for name in source.validate()]
    plots = [p.as_posix() for p in source.files() if p.parts[0] == "plots"]
    fresh = build_card(
        provenance=prov,
        configs=summaries,
        plots=[p for p in plots if not is_examples_file(p)],
        examples=[p for p in plots if is_examples_file(p)],
        repo_hint=repo_hint or str(source.path),
    )
    source.card().refresh(fresh).save(source.readme)
    return source.path


def combine_score_folders(
    folder: str | os.PathLike, sources: list[str | os.PathLike], *, plots: bool = True, repo_hint: str | None = None
) -> Path:
    """Merge several score folders of the *same* source split (e.g. one per architecture) into one dataset.

    The sources must agree on the source fingerprint and must not share config names. The combined card keeps each
    run's provenance under ``runs`` and sums the wall times; ``datadiet_hub.scoring.model`` lists every model.
    """
    if not sources:
        raise InvalidArgumentError("Give at least one score folder to combine.", value=sources)
    tables: dict[str, pa.Table] = {}
    parts: list[Provenance] = []
    for src in map(ScoreFolder, sources):
        prov = src.provenance()
        if prov.source.dataset is None and prov.source.fingerprint is None:
            raise ScoreMismatchError(
                f"{src.readme} has no datadiet.source provenance; was it written by datadiet score?", path=src.path
            )
        if parts and prov.source.fingerprint != parts[0].source.fingerprint:
            raise ScoreMismatchError(
                f"{src.path} scores a different source (fingerprint {prov.source.fingerprint!r} vs "
                f"{parts[0].source.fingerprint!r}); only folders of the same split can be combined.",
                path=src.path,
                value=prov.source.fingerprint,
            )
        for name in src.configs():
            if name in tables:
                raise InvalidArgumentError(
                    f"Config {name!r} appears in more than one folder; rename one run's model.",
                    path=src.path,
                    config=name,
                )
            tables[name] = src.read_table(name)
        parts.append(prov)
    return write_score_dataset(folder, tables, provenance=Provenance.combine(parts), plots=plots, repo_hint=repo_hint)
