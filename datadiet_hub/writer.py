"""Write a score dataset folder: ``data/<config>/train-*.parquet``, plots, and the README card.

The folder is a complete Hub dataset repo; every file is written to a temporary name and renamed into place, so
a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .cards import ConfigSummary, build_card, seed_spearman_text
from .schema import DATA_FILE, metrics_in, validate_config_name, validate_table

logger = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(path: Path, table: pa.Table) -> None:
    """Atomically write one parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _plot_histograms(folder: Path, config: str, table: pa.Table) -> list[str]:
    """One PNG per metric with a histogram of its mean score; skipped (logged) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib not installed: no histograms in the card (pip install 'datadiet-hub[plot]').")
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
        rel = f"plots/{config}-{metric}.png"
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target.with_suffix(".tmp.png"))
        plt.close(fig)
        os.replace(target.with_suffix(".tmp.png"), target)
        written.append(rel)
    return written


def write_score_dataset(
    folder: str | os.PathLike,
    tables: dict[str, pa.Table],
    *,
    provenance: dict[str, Any],
    config_info: dict[str, dict[str, Any]] | None = None,
    plots: bool = True,
    repo_hint: str | None = None,
) -> Path:
    """Write every config's table and the card into ``folder``.

    Args:
        folder: target folder (created); files of configs not in ``tables`` are left alone.
        tables: config name -> score table (validated against the format).
        provenance: the YAML ``datadiet:`` block (needs ``source`` with dataset, split, num_rows).
        config_info: per config, ``model`` and ``time`` for the card's table.
        plots: draw score histograms when matplotlib is available.
        repo_hint: the repo id or path shown in the card's usage snippet.
    """
    if not tables:
        raise ValueError("No score tables to write.")
    folder = Path(folder)
    config_info = config_info or {}
    summaries, plot_files = [], []
    for name, table in tables.items():
        validate_config_name(name)
        table = validate_table(table)
        write_parquet(folder / DATA_FILE.format(config=name), table)
        metrics = metrics_in(table.column_names)
        per_seed = None
        if f"{metrics[0]}_per_seed" in table.column_names:
            column = table.column(f"{metrics[0]}_per_seed").combine_chunks()
            lengths = set(column.value_lengths().to_pylist()) if len(column) else set()
            if len(lengths) == 1:
                per_seed = column.flatten().to_numpy().reshape(len(table), lengths.pop())
        info = config_info.get(name, {})
        summaries.append(
            ConfigSummary(
                name,
                str(info.get("model", "n/a")),
                str(info.get("time", "n/a")),
                metrics,
                seed_spearman_text(per_seed),
            )
        )
        if plots:
            plot_files += _plot_histograms(folder, name, table)
    card = build_card(provenance=provenance, configs=summaries, plots=plot_files, repo_hint=repo_hint or str(folder))
    atomic_write_bytes(folder / "README.md", str(card).encode("utf-8"))
    logger.info("Wrote %d config(s) to %s", len(tables), folder)
    return folder


def combine_score_folders(
    folder: str | os.PathLike, sources: list[str | os.PathLike], *, plots: bool = True, repo_hint: str | None = None
) -> Path:
    """Merge several score folders of the *same* source split (e.g. one per architecture) into one dataset.

    The sources must agree on the source fingerprint and must not share config names. The combined card keeps each
    run's provenance under ``runs`` and sums the wall times; ``scoring.model`` lists every model.
    """
    from .cards import read_card_data

    if not sources:
        raise ValueError("Give at least one score folder to combine.")
    tables: dict[str, pa.Table] = {}
    info: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    source_block: dict[str, Any] | None = None
    for src in map(Path, sources):
        card = read_card_data(src / "README.md")
        prov = card.get("datadiet") or {}
        if "source" not in prov:
            raise ValueError(f"{src}/README.md has no datadiet.source provenance; was it written by datadiet score?")
        if source_block is None:
            source_block = prov["source"]
        elif prov["source"].get("fingerprint") != source_block.get("fingerprint"):
            raise ValueError(
                f"{src} scores a different source (fingerprint {prov['source'].get('fingerprint')!r} vs "
                f"{source_block.get('fingerprint')!r}); only folders of the same split can be combined."
            )
        for entry in card.get("configs", []):
            name = entry["config_name"]
            if name in tables:
                raise ValueError(f"Config {name!r} appears in more than one folder; rename one run's model.")
            files = sorted((src / "data" / name).glob("train-*.parquet"))
            tables[name] = pa.concat_tables([pq.read_table(f) for f in files])
            model = prov.get("scoring", {}).get("model", "n/a")
            meta = prov.get("configs", {}).get(name, {})
            epoch = meta.get("epoch")
            info[name] = {"model": model, "time": f"epoch {epoch:g}" if isinstance(epoch, (int, float)) else "n/a"}
        runs.append({k: v for k, v in prov.items() if k != "source"})
    models = [r.get("scoring", {}).get("model", "?") for r in runs]
    seeds = [r.get("scoring", {}).get("seeds", []) for r in runs]
    provenance = {
        "format_version": 1,
        "source": source_block,
        "scoring": {"model": ", ".join(models), "seeds": seeds[0] if all(s == seeds[0] for s in seeds) else seeds},
        "configs": {
            name: {**meta, "model": r.get("scoring", {}).get("model")}
            for r in runs
            for name, meta in r.get("configs", {}).items()
        },
        "runs": runs,
        "hardware": "; ".join(sorted({str(r.get("hardware", "?")) for r in runs})),
        "wall_time_s": round(sum(float(r.get("wall_time_s", 0.0)) for r in runs), 1),
        "library_version": runs[0].get("library_version"),
        "command": "\n".join(str(r["command"]) for r in runs if r.get("command")),
    }
    return write_score_dataset(
        folder, tables, provenance=provenance, config_info=info, plots=plots, repo_hint=repo_hint
    )
