"""Recommended subsets of the shipped card: for every score config and metric, which rows the hardest 30 / 50 / 70%
are, as boolean columns on the score tables (``el2n_keep50`` ...), in the original row order, so that

    scores = load_dataset("cards/fashion-mnist-datadiet", "cnn-ep2", split="train")
    subset = fashion_mnist_train.select(np.flatnonzero(scores["el2n_keep50"]))

gives the subset without the library. The masks are ``datadiet_hub.select_indices(..., strategy="hardest", tie_break="index")``
(recorded per column in ``docs/results/subsets.csv``; the rule of the pruning-curve runs whose accuracy is given). Withheld:
EL2N at initialisation (a noise control, seed-to-seed Spearman about 0) and any metric whose score is the same for
every row of the config (forgetting after one epoch is 0 everywhere): such a "subset" would be chosen by the
tie-break, i.e. by row order, not by the score. The withheld ones are listed in the CSV with ``published`` false. The test accuracy each subset reached is taken from the
pruning-curve / transfer rows that trained on exactly that subset, and "not measured" otherwise.

    python -m experiments.subsets            # rewrite the keep columns and docs/results/subsets.csv
    python -m experiments.subsets --check    # verify the card's keep columns against the library
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import numpy as np

from .common import CARD, RESULTS, setup_logging
from .report import _rows
from .stats import fmt_pm, seed_means, t_interval

logger = logging.getLogger("experiments.subsets")
FRACTIONS = (0.3, 0.5, 0.7)
FIELDS = [
    "config",
    "column",
    "keep_column",
    "fraction",
    "kept",
    "strategy",
    "tie_break",
    "tie_decided_share",
    "trained",
    "test_accuracy",
    "n",
    "accuracy_source",
    "published",
]


def keep_column(metric: str, fraction: float) -> str:
    return f"{metric}_keep{round(fraction * 100)}"


def card_configs(card: Path) -> dict[str, dict]:
    from datadiet_hub.folder import ScoreFolder

    return ScoreFolder(card).metadata()["datadiet"]["configs"]


def withheld_reason(metric: str, info: dict, values: np.ndarray) -> str:
    """Why no subset is published for ``metric`` in this config ("" when one is): EL2N at initialisation is noise,
    and a score that is the same for every row decides nothing (the tie-break would pick the rows by order)."""
    if metric == "el2n" and float(info["epoch"]) == 0:
        return "EL2N at initialisation is a noise control"
    if len(values) and np.all(values == values[0]):
        return f"{metric} is {values[0]:g} for every row: the rows would be picked by row order"
    return ""


def masks(table, metric: str) -> tuple[dict[str, np.ndarray], str]:
    """``{keep column: boolean mask in idx order}`` and the tie-break used."""
    import datadiet_hub

    from .pruning_curve import library_tie_break

    # ties by the lowest row index: the rule of the pruning-curve runs whose accuracies the card reports (the
    # library's default is now a seeded random order; only forgetting has ties at these cuts)
    kwargs = {"tie_break": "index"} if library_tie_break() is not None else {}
    out = {}
    for fraction in FRACTIONS:
        rows = datadiet_hub.select_indices(
            table, column=metric, fraction=fraction, strategy="hardest", seed=0, **kwargs
        )
        mask = np.zeros(len(table), dtype=bool)
        mask[np.asarray(rows)] = True
        out[keep_column(metric, fraction)] = mask
    return out, "index (lowest row first)"


def measured_accuracy(config: str, metric: str, fraction: float) -> list[tuple[str, str, int, str]]:
    """``(trained model, mean ± s.e., n, source)`` for each results row set that trained on exactly this subset."""
    found = []
    accs = seed_means(  # the training seed is the unit, as in the report
        (int(row["seed"]), float(row["test_accuracy"]))
        for row in _rows("pruning_curve.csv")
        if row["method"] == metric
        and row["score_config"] == config
        and float(row["fraction"]) == fraction
        and (metric != "forgetting" or (row.get("tie_break") or "index") == "index")
    )
    runs = {"cnn": accs} if accs else {}
    for model, accs in runs.items():
        est = t_interval(accs.values())
        found.append((model, fmt_pm(est), est.n, "pruning_curve.csv"))
    if metric == "el2n" and config.endswith("-ep2"):
        trained: dict[str, dict[int, float]] = {}
        for row in _rows("transfer.csv"):
            if row["scores_from"] == config.split("-")[0] and float(row["fraction"]) == fraction:
                trained.setdefault(row["train_model"], {})[int(row["seed"])] = float(row["test_accuracy"])
        for model, accs in trained.items():
            if model == "cnn" and "cnn" in runs and config.startswith("cnn"):
                continue  # the pruning curve already has it
            est = t_interval(accs.values())
            found.append((model, fmt_pm(est), est.n, "transfer.csv"))
    return found


def accuracy_rows(base: dict) -> list[dict]:
    """``base`` (one subset's description) once per measured training, or once as "not measured"."""
    measured = measured_accuracy(base["config"], base["column"], float(base["fraction"]))
    measured = measured or [("", "not measured", 0, "")]
    return [
        {**base, "trained": model, "test_accuracy": acc, "n": n or "", "accuracy_source": source}
        for model, acc, n, source in measured
    ]


def write_csv(rows: list[dict]) -> None:
    target = RESULTS / "subsets.csv"
    from datadiet_hub.atomic import atomic_path

    with atomic_path(target) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def refresh_accuracy(card: Path) -> None:
    """Recompute the accuracy columns of docs/results/subsets.csv from the current results CSVs."""
    rows: list[dict] = []
    seen: set[tuple] = set()
    for row in _rows("subsets.csv"):  # in the CSV's order; withheld rows as they are
        if row.get("published") == "false":
            rows.append(row)
        elif (row["config"], row["keep_column"]) not in seen:
            seen.add((row["config"], row["keep_column"]))
            rows += accuracy_rows(row)
    write_csv(rows)
    update_card(card, rows)


def update_card(card: Path, rows: list[dict]) -> None:
    """The measured-accuracy table of the card, between its ``<!-- subsets-accuracy -->`` markers."""
    from .report import pruning_runs

    full = pruning_runs().get(("all", 1.0), {})
    lines = [
        f"Full data (cnn): {fmt_pm(t_interval(full.values()))}" if full else "Full data: not run",
        "",
        "| config | subset column | trained | test accuracy |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{r['config']}` | `{r['keep_column']}` | {r['trained']} | {r['test_accuracy']} |"
        for r in rows
        if r.get("trained")
    ]
    withheld = [r for r in rows if r.get("published") == "false"]
    if withheld:
        lines += ["", "No subset columns for: " + "; ".join(
            f"`{r['config']}` {r['column']} ({r['accuracy_source'].removeprefix('withheld: ')})" for r in withheld
        ) + "."]  # fmt: skip
    lines += ["", *against_full_data()]
    from datadiet_hub.card import ScoreCard

    readme = card / "README.md"
    score_card = ScoreCard.read(readme)
    score_card.fill("subsets-accuracy", "\n".join(lines))
    score_card.save(readme)


def against_full_data() -> list[str]:
    """The card's summary of the pruning curve against full data, each arm placed by its paired interval."""
    from .report import ABOVE, BELOW, SAME, est_verdict, pruning_differences, short

    diffs = pruning_differences()
    fractions = sorted({f for (_, f, base) in diffs if base == "full"}, reverse=True)
    lines = [
        "Against training on all of the data (paired by training seed and device, 95% t-intervals, points of "
        "accuracy; `docs/report.md` has every difference):",
        "",
    ]
    for f in fractions:
        groups: dict[str, list[str]] = {ABOVE: [], SAME: [], BELOW: []}
        for (arm, fraction, base), est in sorted(diffs.items()):
            if base == "full" and fraction == f:
                groups[est_verdict(est)].append(f"{arm} {short(est)}")
        parts = [f"{label}: {', '.join(groups[key])}" for key, label in
                 ((SAME, "no measurable difference"), (BELOW, "lower"), (ABOVE, "higher")) if groups[key]]  # fmt: skip
        lines.append(f"- keep {f:.0%}: " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card", default=str(CARD))
    parser.add_argument("--check", action="store_true", help="only verify the keep columns")
    parser.add_argument(
        "--accuracy-only", action="store_true", help="only refresh the measured accuracies (CSV and card table)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    if args.accuracy_only:
        refresh_accuracy(Path(args.card))
        return 0
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datadiet_hub.writer import write_parquet

    from .pruning_curve import tied_kept

    card = Path(args.card)
    out_rows = []
    for config, info in card_configs(card).items():
        path = card / "data" / config / "train-00000-of-00001.parquet"
        table = pq.read_table(path)
        scores = table.select([c for c in table.column_names if "_keep" not in c])
        new: dict[str, np.ndarray] = {}
        for metric in info["metrics"]:
            reason = withheld_reason(metric, info, scores.column(metric).to_numpy(zero_copy_only=False))
            if reason:
                out_rows.append(
                    {"config": config, "column": metric, "strategy": "hardest", "published": "false",
                     "accuracy_source": f"withheld: {reason}"}
                )  # fmt: skip
                continue
            metric_masks, tie = masks(scores, metric)
            new.update(metric_masks)
            from datadiet_hub.score_table import read_scores

            values = read_scores(scores, metric).values.astype(np.float64)
            for fraction in FRACTIONS:
                name = keep_column(metric, fraction)
                k = int(metric_masks[name].sum())
                ties = tied_kept(values, k)
                base = {
                    "config": config,
                    "column": metric,
                    "keep_column": name,
                    "fraction": fraction,
                    "kept": k,
                    "strategy": "hardest",
                    "tie_break": tie,
                    "tie_decided_share": ties["tied_share"],
                    "published": "true",
                }
                out_rows += accuracy_rows(base)
        if args.check:
            stale = [c for c in table.column_names if "_keep" in c and c not in new]
            if stale:
                raise SystemExit(
                    f"{config}: the card has withheld keep columns {stale}; run python -m experiments.subsets."
                )
            for name, mask in new.items():
                if name not in table.column_names:
                    raise SystemExit(f"{config}: the card has no {name} column; run python -m experiments.subsets.")
                if not np.array_equal(table.column(name).to_numpy(zero_copy_only=False), mask):
                    raise SystemExit(f"{config}: {name} differs from the library's selection.")
            logger.info("%s: %d keep columns match", config, len(new))
            continue
        old = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names if "_keep" in c}
        if old.keys() == new.keys() and all(np.array_equal(old[c], new[c]) for c in new):
            logger.info("%s: keep columns unchanged", config)
            continue
        for name, mask in new.items():
            scores = scores.append_column(name, pa.array(mask))
        write_parquet(path, scores)
        logger.info("%s: wrote %s", config, ", ".join(new) or "no keep columns")
    if not args.check:
        update_card(card, out_rows)
        write_csv(out_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
