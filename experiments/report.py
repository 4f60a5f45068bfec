"""Markdown summary of every results CSV under docs/results: ``python -m experiments.report`` prints it,
``python -m experiments.report --update-readme`` rewrites the tables between the README's report markers.

Accuracies are shown as mean ± standard error (n training seeds); comparisons as the mean paired difference (by
training seed and device) with its 95% t-interval, flagged "no measurable difference" where the interval contains 0.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

from .common import RESULTS
from .stats import Estimate, fmt_diff, fmt_pm, paired, paired_on_device, seed_means, t_interval

METHODS = ("el2n", "grand", "forgetting (random ties)", "forgetting (index ties)", "ccs", "random", "easiest")
INDEX_TIES = "forgetting (index ties)"


def _rows(name: str) -> list[dict[str, str]]:
    path = RESULTS / name
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def pruning_rows(path: Path | None = None) -> dict[tuple[str, float], dict[tuple[int, str], float]]:
    """``{(arm, fraction): {(seed, device): accuracy}}``; forgetting, the one score with ties, is split into one arm
    per tie-break, named after it (rows from before the column existed broke ties by the lowest row index)."""
    runs: dict[tuple[str, float], dict[tuple[int, str], float]] = defaultdict(dict)
    rows = _rows("pruning_curve.csv") if path is None else list(csv.DictReader(open(path, newline="")))
    for row in rows:
        arm = row["method"]
        tie = row.get("tie_break") or "index"
        if arm == "forgetting":
            arm = f"forgetting ({tie} ties)"
        runs[(arm, float(row["fraction"]))][(int(row["seed"]), row.get("device") or "")] = float(row["test_accuracy"])
    return runs


def pruning_runs(path: Path | None = None) -> dict[tuple[str, float], dict[int, float]]:
    """``{(arm, fraction): {seed: accuracy}}``, the training seed being the unit: a seed run on several devices
    counts once, as the mean of its devices."""
    return {
        cell: seed_means((seed, acc) for (seed, _), acc in accs.items()) for cell, accs in pruning_rows(path).items()
    }


def device_effect(path: Path | None = None) -> dict[tuple[str, str], Estimate]:
    """``(device, other device) -> Estimate`` of the accuracy difference between two devices over the runs made on
    both (same arm, fraction and seed): what a cross-device pair would add to a difference."""
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for accs in pruning_rows(path).values():
        for (seed, device), acc in accs.items():
            for (other_seed, other), other_acc in accs.items():
                if other_seed == seed and device < other:
                    pairs[(device, other)].append(acc - other_acc)
    return {key: t_interval(diffs) for key, diffs in pairs.items()}


def _arms(runs) -> list[str]:
    present = {arm for arm, _ in runs}
    ordered = [m for m in METHODS if m in present]
    return ordered + sorted(present - set(ordered) - {"all"})


def pruning_table() -> str:
    runs = pruning_runs()
    fractions = sorted({f for _, f in runs if f < 1}, reverse=True)
    full = runs.get(("all", 1.0), {})
    lines = [
        f"Full data: {fmt_pm(t_interval(full.values()))}" if full else "Full data: not run yet",
        "",
        "| method | " + " | ".join(f"keep {f:.0%}" for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    for arm in _arms(runs):
        cells = [fmt_pm(t_interval(runs[(arm, f)].values())) if runs.get((arm, f)) else "-" for f in fractions]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pruning_differences(path: Path | None = None) -> dict[tuple[str, float, str], Estimate]:
    """Paired differences in points of accuracy: ``(arm, fraction, baseline) -> Estimate``; the baselines are
    random, full data and, for a forgetting arm with another tie-break, forgetting with index ties. Pairs share
    their training seed and their device (``paired_on_device``); the unit is the seed."""
    runs = pruning_rows(path)
    full = runs.get(("all", 1.0), {})
    out: dict[tuple[str, float, str], Estimate] = {}
    for (arm, fraction), accs in runs.items():
        if arm == "all":
            continue
        bases = [("random", runs.get(("random", fraction), {})), ("full", full)]
        if arm.startswith("forgetting (") and arm != INDEX_TIES:  # the same scores with the old tie-break
            bases.append((INDEX_TIES, runs.get((INDEX_TIES, fraction), {})))
        for name, base in bases:
            if arm == name:
                continue
            diffs = paired_on_device(accs, base)
            if diffs:
                out[(arm, fraction, name)] = t_interval(diffs)
    return out


def differences_table(path: Path | None = None) -> str:
    """One row per (kept fraction, method), one column per baseline: long rather than wide, so it reads on a page."""
    diffs = pruning_differences(path)
    runs = pruning_runs(path)
    fractions = sorted({f for _, f in runs if f < 1}, reverse=True)
    bases = [b for b in ("random", "full", INDEX_TIES) if any(key[2] == b for key in diffs)]
    lines = [
        "| keep | method | " + " | ".join(f"vs {b}" for b in bases) + " |",
        "|---|---|" + "---|" * len(bases),
    ]
    for fraction in fractions:
        for arm in _arms(runs):
            cells = [fmt_diff(diffs[(arm, fraction, b)]) if (arm, fraction, b) in diffs else "-" for b in bases]
            if any(c != "-" for c in cells):
                lines.append(f"| {fraction:.0%} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def device_table(path: Path | None = None) -> str:
    """The same runs (arm, fraction, seed) on two devices: their accuracy difference."""
    lines = ["| device | minus | runs on both | difference |", "|---|---|---|---|"]
    for (a, b), est in sorted(device_effect(path).items()):
        lines.append(f"| {a} | {b} | {est.n} | {fmt_diff(est)} |")
    return "\n".join(lines)


def noisy_table() -> str:
    rows = _rows("noisy_labels_peers.csv")
    lines = [
        "| flipped | method | scores from | AUROC [95% CI] | precision at flip rate [95% CI] | flagged set |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (float(r["noise_rate"]), -float(r["auroc"]))):
        flagged = (
            f"{row['flagged']} flagged, precision {row['flagged_precision']}, recall {row['flagged_recall']}"
            if row.get("flagged")
            else ""
        )
        lines.append(
            f"| {float(row['noise_rate']):.0%} | {row['method']} | {row['model']} | "
            f"{row['auroc']} [{row['auroc_lo']}, {row['auroc_hi']}] | "
            f"{row['precision']} [{row['precision_lo']}, {row['precision_hi']}] | {flagged} |"
        )
    return "\n".join(lines)


def table(name: str, columns: list[str]) -> str:
    rows = _rows(name)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def noisy_training_table() -> str:
    runs: dict[str, dict[int, float]] = defaultdict(dict)
    for row in _rows("noisy_labels_training.csv"):
        runs[row["run"]][int(row["seed"])] = float(row["test_accuracy"])
    if not runs:
        return ""
    lines = ["| run | test accuracy |", "|---|---|"]
    lines += [f"| {name} | {fmt_pm(t_interval(accs.values()))} |" for name, accs in runs.items()]
    if len(runs) == 2:
        (_, a), (name, b) = runs.items()
        lines.append(f"| {name} minus all | {fmt_diff(t_interval(paired(b, a)))} |")
    return "\n".join(lines)


def transfer_table() -> str:
    acc: dict[tuple[str, float, str], dict[int, float]] = defaultdict(dict)
    for row in _rows("transfer.csv"):
        key = (row["train_model"], float(row["fraction"]), row["scores_from"])
        acc[key][int(row["seed"])] = float(row["test_accuracy"])
    lines = [
        "| trained | kept | scores from cnn | scores from mlp | random | cnn - random | mlp - random | cnn - mlp |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, fraction in sorted({(k[0], k[1]) for k in acc}):
        cells = [
            fmt_pm(t_interval(acc[(model, fraction, s)].values())) if acc.get((model, fraction, s)) else "-"
            for s in ("cnn", "mlp", "random")
        ]
        rand = acc.get((model, fraction, "random"), {})
        pairs = [(s, rand) for s in ("cnn", "mlp")] + [("cnn", acc.get((model, fraction, "mlp"), {}))]
        for s, base in pairs:  # each source against random, then the two sources against each other
            diffs = paired(acc.get((model, fraction, s), {}), base)
            cells.append(fmt_diff(t_interval(diffs)) if diffs else "-")
        lines.append(f"| {model} | {fraction:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SECTIONS = {
    "pruning": lambda: pruning_table(),
    "differences": lambda: differences_table(),
    "devices": lambda: device_table(),
    "noisy": lambda: noisy_table(),
    "noisy-training": lambda: noisy_training_table(),
    "transfer": lambda: transfer_table(),
}


def update_readme(path: Path) -> None:
    """Replace the text between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` with the current table, so
    the README's tables always come from the CSVs."""
    text = path.read_text()
    for name, make in SECTIONS.items():
        start, end = f"<!-- report:{name} -->", f"<!-- /report:{name} -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            text = f"{head}{start}\n{make()}\n{end}{tail}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--update-readme"]:
        update_readme(Path(argv[1]) if len(argv) > 1 else RESULTS.parents[1] / "README.md")
        return 0
    print("### Pruning curve (test accuracy, mean ± s.e. over training seeds)\n")
    print(pruning_table())
    print("\n### Paired differences (points of accuracy, 95% t-interval, paired by training seed and device)\n")
    print(differences_table())
    print("\n### The same runs on two devices\n")
    print(device_table())
    print("\n### Noisy labels (bootstrap 95% intervals over examples)\n")
    print(noisy_table())
    print()
    print(noisy_training_table())
    print("\n### Transfer\n")
    print(transfer_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
