"""The research report, docs/report.md, written from the results CSVs under docs/results:
``python -m experiments.report`` rewrites it, ``--check`` fails when it is stale, ``--stdout`` prints it.

Accuracies are shown as mean ± standard error (n training seeds); comparisons as the mean paired difference (by
training seed and device) with its 95% t-interval, flagged "no measurable difference" where the interval contains 0.
Every sentence that compares two methods is made here from the interval it cites (``verdict``), so the prose cannot
claim more than the table shows; the fixed prose says what the intervals do not cover.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

from .common import RESULTS
from .stats import Estimate, fmt_diff, fmt_pm, holm_survivors, paired, paired_on_device, seed_means, t_interval

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
    survives = holm(diffs)
    runs = pruning_runs(path)
    fractions = sorted({f for _, f in runs if f < 1}, reverse=True)
    bases = [b for b in ("random", "full", INDEX_TIES) if any(key[2] == b for key in diffs)]

    def cell(key: tuple[str, float, str]) -> str:
        est = diffs[key]
        text = fmt_diff(est)
        return text + " (not after Holm)" if est.excludes_zero and key not in survives else text

    lines = [
        "| keep | method | " + " | ".join(f"vs {b}" for b in bases) + " |",
        "|---|---|" + "---|" * len(bases),
    ]
    for fraction in fractions:
        for arm in _arms(runs):
            cells = [cell((arm, fraction, b)) if (arm, fraction, b) in diffs else "-" for b in bases]
            if any(c != "-" for c in cells):
                lines.append(f"| {fraction:.0%} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def holm(diffs: dict, alpha: float = 0.05) -> set:
    """The keys of ``diffs`` whose difference from 0 survives Holm's correction for all of them at once."""
    return holm_survivors(diffs, alpha)


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


# ---- sentences made from intervals -------------------------------------------------------------------------------

ABOVE, BELOW, SAME = "higher", "lower", "no measurable difference"
SCORE_ARMS = ("el2n", "grand", "forgetting (random ties)", "forgetting (index ties)", "ccs")


def verdict(lo: float, hi: float) -> str:
    """What an interval of a difference allows one to say: ``higher`` only when it lies above 0, ``lower`` only when
    below, and otherwise ``no measurable difference``."""
    if lo > 0:
        return ABOVE
    if hi < 0:
        return BELOW
    return SAME


def est_verdict(est: Estimate) -> str:
    return verdict(est.lo, est.hi) if est.n >= 2 else SAME


def short(est: Estimate) -> str:
    """``+0.98 [+0.37, +1.58]`` in points."""
    return f"{est.mean * 100:+.2f} [{est.lo * 100:+.2f}, {est.hi * 100:+.2f}]"


def _grouped(items: list[tuple[str, Estimate]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {ABOVE: [], SAME: [], BELOW: []}
    for name, est in items:
        out[est_verdict(est)].append(f"{name} {short(est)}")
    return out


def _clause(groups: dict[str, list[str]], above: str, same: str, below: str) -> str:
    parts = []
    for key, label in ((ABOVE, above), (SAME, same), (BELOW, below)):
        if groups[key]:
            parts.append(f"{label}: " + ", ".join(groups[key]))
    return "; ".join(parts)


def pruning_findings(path: Path | None = None) -> list[str]:
    """One bullet per kept fraction, each method placed by its interval against random and against full data."""
    diffs = pruning_differences(path)
    runs = pruning_runs(path)
    fractions = sorted({f for _, f in runs if f < 1}, reverse=True)
    arms = [a for a in _arms(runs) if a != "random"]
    bullets = []
    for f in fractions:
        n = sorted({diffs[(a, f, "random")].n for a in arms if (a, f, "random") in diffs})
        vs_random = _grouped([(a, diffs[(a, f, "random")]) for a in arms if (a, f, "random") in diffs])
        vs_full = _grouped([(a, diffs[(a, f, "full")]) for a in [*arms, "random"] if (a, f, "full") in diffs])
        bullets.append(
            f"**Keep {f:.0%}** (n = {', '.join(map(str, n))} seeds). Against random: "
            + _clause(vs_random, "higher", "no measurable difference", "lower")
            + ". Against full data: "
            + _clause(vs_full, "higher", "no measurable difference", "lower")
            + "."
        )
    return bullets


def where_beats_random(path: Path | None = None) -> list[str]:
    """For each score arm, the kept fractions at which its interval against random lies above 0, and those where
    it does not; a recipe such as "keep the hardest" is stated only for the former."""
    diffs = pruning_differences(path)
    runs = pruning_runs(path)
    fractions = sorted({f for _, f in runs if f < 1}, reverse=True)
    lines = []
    for arm in [a for a in SCORE_ARMS if any((a, f, "random") in diffs for f in fractions)]:
        wins = [
            f for f in fractions if (arm, f, "random") in diffs and est_verdict(diffs[(arm, f, "random")]) == ABOVE
        ]
        rest = [f for f in fractions if (arm, f, "random") in diffs and f not in wins]
        won = ", ".join(f"{f:.0%}" for f in wins) or "no kept fraction"
        lost = ", ".join(f"{f:.0%}" for f in rest)
        lines.append(f"{arm}: beats random at {won}" + (f"; not at {lost}" if lost else ""))
    return lines


def headline(path: Path | None = None, arm: str = "el2n", fraction: float = 0.5) -> str:
    """The one result the README leads with, worded by its interval (and by whether it survives Holm)."""
    diffs = pruning_differences(path)
    est, full = diffs[(arm, fraction, "random")], diffs.get((arm, fraction, "full"))
    word = est_verdict(est)
    text = (
        f"Keeping the hardest {fraction:.0%} of Fashion-MNIST's training set by {arm.upper()}, against a random "
        f"{fraction:.0%}: {fmt_diff(est)} of test accuracy for a small CNN ({word}"
    )
    if word != SAME and (arm, fraction, "random") not in holm(diffs):
        text += f"; not after Holm's correction for all {len(diffs)} differences of the report"
    text += ")"
    if full is not None:
        text += f"; against all of the data: {short(full)} pt (n={full.n}, {est_verdict(full)})"
    return text + ". 95% t-intervals over training seeds, paired by seed and device."


def noisy_paired_rows() -> list[dict[str, str]]:
    return _rows("noisy_labels_paired.csv")


def noisy_paired_table() -> str:
    rows = noisy_paired_rows()
    if not rows:
        return ""
    lines = [
        "| flipped | EL2N minus | AUROC difference [95% CI] | precision difference [95% CI] |",
        "|---|---|---|---|",
    ]
    for r in rows:
        a = verdict(float(r["auroc_diff_lo"]), float(r["auroc_diff_hi"]))
        p = verdict(float(r["precision_diff_lo"]), float(r["precision_diff_hi"]))
        lines.append(
            f"| {float(r['noise_rate']):.0%} | {r['minus']} | {r['auroc_diff']} [{r['auroc_diff_lo']}, "
            f"{r['auroc_diff_hi']}] {a} | {r['precision_diff']} [{r['precision_diff_lo']}, "
            f"{r['precision_diff_hi']}] {p} |"
        )
    return "\n".join(lines)


def noisy_findings(rows: list[dict[str, str]] | None = None) -> list[str]:
    """Per flip rate, where EL2N's AUROC and precision stand against each method, from the paired intervals."""
    rows = noisy_paired_rows() if rows is None else rows
    bullets = []
    for rate in sorted({float(r["noise_rate"]) for r in rows}):
        at = [r for r in rows if float(r["noise_rate"]) == rate]
        parts = []
        for metric, label in (("auroc", "AUROC"), ("precision", "precision at the flip rate")):
            groups: dict[str, list[str]] = {ABOVE: [], SAME: [], BELOW: []}
            for r in at:
                groups[verdict(float(r[f"{metric}_diff_lo"]), float(r[f"{metric}_diff_hi"]))].append(r["minus"])
            parts.append(
                f"EL2N's {label} is "
                + "; ".join(
                    f"{word} {', '.join(groups[key])}"
                    for key, word in (
                        (ABOVE, "higher than"),
                        (SAME, "not measurably different from"),
                        (BELOW, "lower than"),
                    )
                    if groups[key]
                )
            )
        bullets.append(f"**{rate:.0%} flipped:** " + ". ".join(parts) + ".")
    return bullets


def noisy_paired_coverage() -> str:
    """Which flip rates have paired comparisons, and which only have the table (no per-row values were kept)."""
    paired_rates = {float(r["noise_rate"]) for r in noisy_paired_rows()}
    table_rates = {float(r["noise_rate"]) for r in _rows("noisy_labels_peers.csv")}
    missing = sorted(table_rates - paired_rates)
    if not missing:
        return ""
    return (
        f"Compared here: {', '.join(f'{r:.0%}' for r in sorted(paired_rates))} flips. The rows at "
        f"{', '.join(f'{r:.0%}' for r in missing)} come from an earlier run that kept no per-row values, so they are "
        "ranked in the table but not compared."
    )


def noisy_wall_times() -> str:
    """Each flip rate's scoring-run wall time, from the CSV."""
    rows = sorted(
        (float(r["noise_rate"]), float(r["wall_time_s"]))
        for r in _rows("noisy_labels_peers.csv")
        if r["method"] == "EL2N"
    )
    return ", ".join(f"{wall:.0f} s at {rate:.0%}" for rate, wall in rows) or "not recorded"


def noisy_cnn_models() -> str:
    """Which CNN cross-validation settings the rows used, and whether they are the code's default."""
    import re

    from .noisy_labels import CNN_CV_EPOCHS

    by_model: dict[str, set[str]] = defaultdict(set)
    for r in _rows("noisy_labels_peers.csv"):
        if r["model"].startswith("CNN ("):
            by_model[r["model"]].add(f"{float(r['noise_rate']):.0%}")
    parts = []
    for model, rates in sorted(by_model.items()):
        found = re.search(r"\((\d+) epochs? per fold\)", model)
        epochs = int(found.group(1)) if found else None
        note = (
            f", not the code's default of {CNN_CV_EPOCHS} (`--cnn-cv-epochs`)"
            if epochs is not None and epochs != CNN_CV_EPOCHS
            else ""
        )
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''} per fold at {', '.join(sorted(rates))} flips{note}")
    return "; ".join(parts) or "not run"


def earlier_el2n() -> str:
    rows = [r for r in _rows("noisy_labels_detection.csv") if r["score"] == "el2n" and r["config"] == "cnn-ep2"]
    return f"{rows[0]['auroc']} ({rows[0]['seeds']} scoring seeds)" if rows else "not recorded"


def cross_device_findings() -> list[str]:
    """What the cross-device rerun shows per score at initialisation and after training, worded by the measured
    maximum difference: "equal up to float rounding" only when it is below 1e-5."""
    out = []
    for r in _rows("cross_device.csv"):
        diff = float(r["max_abs_diff"])
        equal = float(r["exact_equal_share"])
        if r["spearman"] == "nan":
            continue
        wording = "equal up to float rounding" if diff < 1e-5 else "not equal"
        out.append(
            f"`{r['config']}` {r['score']}: {wording} (max |difference| {r['max_abs_diff']}, {equal:.0%} of rows "
            f"exactly equal, Spearman {r['spearman']} against the card's seed-to-seed {r['card_seed0_vs_seed1_spearman']})"
        )
    return out


def ties_table() -> str:
    lines = [
        "| config | score | keep | kept rows decided by the tie-break | kept rows the same under both rules |",
        "|---|---|---|---|---|",
    ]
    for r in _rows("ties.csv"):
        if float(r["tied_share"]) > 0:
            lines.append(
                f"| {r['config']} | {r['column']} | {float(r['fraction']):.0%} | {float(r['tied_share']):.1%} | "
                f"{float(r['same_kept_share']):.1%} |"
            )
    untied = sorted({f"{r['column']} ({r['config']})" for r in _rows("ties.csv") if float(r["tied_share"]) == 0})
    return "\n".join(lines) + ("\n\nNo ties at any cut: " + ", ".join(untied) + "." if untied else "")


def agreement_table() -> str:
    rows = [r for r in _rows("agreement.csv") if r["kind"] in ("seeds", "input_norm")]
    lines = ["| what | score | with | Spearman |", "|---|---|---|---|"]
    for r in rows:
        what = "seed to seed (mean over pairs)" if r["kind"] == "seeds" else "input norm"
        lines.append(f"| {what} | {r['a']} | {r['b'] or '-'} | {r['spearman']} |")
    return "\n".join(lines)


def own_data_table() -> str:
    lines = [
        "| data | rows | flipped | model | EL2N AUROC [95% CI] | seed-to-seed Spearman | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in _rows("own_data.csv"):
        lines.append(
            f"| {r['dataset']} | {r['rows']} | {r['flipped']} | {r['model']} | {r['el2n_auroc']} "
            f"[{r['auroc_ci_low']}, {r['auroc_ci_high']}] | {r['seed_spearman']} | {r['wall_s']} |"
        )
    return "\n".join(lines)


def transfer_findings() -> list[str]:
    acc: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for row in _rows("transfer.csv"):
        acc[(row["train_model"], row["scores_from"])][int(row["seed"])] = float(row["test_accuracy"])
    out = []
    for model in sorted({m for m, _ in acc}):
        items = []
        for source, base in (("cnn", "random"), ("mlp", "random"), ("cnn", "mlp")):
            diffs = paired(acc.get((model, source), {}), acc.get((model, base), {}))
            if len(diffs) >= 2:
                est = t_interval(diffs)
                items.append(f"scores from {source} minus {base} {short(est)}: {est_verdict(est)}")
        out.append(f"**{model} trained:** " + "; ".join(items) + ".")
    return out


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def n_differences() -> tuple[int, int, int]:
    """(intervals in the differences table, those excluding 0, those surviving Holm)."""
    diffs = pruning_differences()
    return len(diffs), sum(e.excludes_zero for e in diffs.values()), len(holm(diffs))


def render() -> str:
    """docs/report.md from the CSVs."""
    total, excluding, surviving = n_differences()
    noisy_paired = noisy_paired_table()
    sections = [
        "<!-- Written by `python -m experiments.report` from docs/results/*.csv: edit experiments/report.py, not "
        "this file. -->",
        "# Results on Fashion-MNIST",
        "What the scores did, measured in this repository. Each experiment is one resumable command writing a CSV "
        "(and a PNG) to `docs/results/`: `python -m experiments.pruning_curve`, `python -m experiments.noisy_labels`, "
        "`python -m experiments.transfer`, `python -m experiments.agreement`, `python -m experiments.cross_device`, "
        "`python -m experiments.own_data`. Downstream training is the small CNN for the same number of SGD steps as "
        "5 epochs of the full set (matched on iterations, the paper's protocol; cosine learning rate), test accuracy "
        "on the 10,000 test images. Every row records its device and training seed. The scores are the shipped card "
        "`cards/fashion-mnist-datadiet`: EL2N and GraNd at epoch 2 of the CNN, forgetting through epoch 10; `ccs` and "
        "`easiest` rank by the same EL2N (`experiments/pruning_curve.py` has CCS's beta per kept fraction).",
        "## How to read the numbers",
        "Accuracies are mean ± standard error over training seeds (n per cell). A comparison is the mean paired "
        "difference in points of accuracy with its 95% t-interval (n - 1 degrees of freedom, `experiments/stats.py`). "
        "Pairs share their training seed (the same initialisation and batch-order stream for both arms) and their "
        "device: the same run on the H200 and on a CPU differs by a measurable offset (below), so a cross-device pair "
        "would carry it into the difference; where a seed ran on both devices it counts once, as the mean of its "
        "same-device differences. A difference is stated as a finding only where its interval excludes 0; "
        'otherwise the table says "no measurable difference", which is a finding too.\n\n'
        "The same seed is not the same run: on one device, a run repeated with the same subset, seed and number of "
        "steps need not give the same accuracy (downstream training is not run in deterministic mode). Pairing "
        "removes what two arms share through the seed, not this run-to-run noise; it stays in each interval. The "
        "CSVs here hold no such repeats, so its size is not separately measured.\n\n"
        f"All of the differences below are read from the one test set. The differences table holds {total} "
        f"intervals; {excluding} exclude 0 at 95% each, and {surviving} of those remain after Holm's correction "
        f'for all {total} at a family-wise 5% (the others are marked "not after Holm"). With that many intervals, a '
        "few that exclude 0 by chance are expected: read single marginal ones as provisional.",
        "## Pruning curve",
        pruning_table(),
        "![pruning curve](results/pruning_curve.png)",
        "### Paired differences (points of accuracy, 95% t-interval)",
        differences_table(),
        "### What the intervals show",
        'Each method is placed by its own interval: "higher" and "lower" only where the interval excludes 0.',
        _bullets(pruning_findings()),
        "Where each hardest-first score beats random (its interval against random above 0):",
        _bullets(where_beats_random()),
        "At keep 10% the hardest-first scores fall far below random while CCS, which drops the hardest rows first, "
        "does not (bullets above). A likely reason, not measured here: the hardest tenth holds the ambiguous and "
        "atypical images, and too few typical ones are left to learn the classes from.",
        "### The same runs on two devices",
        "The same run (arm, kept fraction, training seed) on both devices, where it was made on both "
        "(`python -m experiments.pruning_curve --per-device` repeats on this device the runs made elsewhere):",
        device_table(),
        "## Ties",
        "`docs/results/ties.csv` (`python -m experiments.pruning_curve --ties`): the share of kept rows sitting at "
        "the cut's score when more rows share it than fit (rows the tie-break chose, not the score), and the share "
        "of kept rows the lowest-index rule and a seeded random order (seed 0) have in common.",
        ties_table(),
        'The pruning curve runs forgetting with both rules ("forgetting (random ties)" and "forgetting (index '
        'ties)"), compared in the column "vs forgetting (index ties)" above.',
        "## Noisy labels",
        "`python -m experiments.noisy_labels --rates 0.1,0.2,0.4 --seeds 2 --threads 1`. The same symmetric flips (flip seed 0) of Fashion-MNIST train for every method, at 10%, 20% and 40% of the "
        "60,000 rows; AUROC and precision in the top `rate` share of rows. EL2N, GraNd and forgetting come from a CNN "
        "scoring run on the noisy labels (2 scoring seeds; EL2N and GraNd at epoch 2, forgetting over 5 epochs; "
        f"wall time {noisy_wall_times()} on a 2-core CPU shared with other jobs, one thread). They are "
        "**in-sample**: the scoring run "
        "trained on the rows it scores. The peers are **out-of-sample**: 5-fold cross-validated probabilities of a "
        "linear model (PCA-100 + logistic regression) and of the same small CNN "
        f"({noisy_cnn_models()}); cleanlab (`get_label_quality_scores`, `find_label_issues`) runs on each.",
        "The intervals are percentile bootstraps over the rows (1,000 resamples): they cover the sampling of "
        "examples, not another scoring run or another fold split. That variance is not in them: an earlier "
        f"run of the same EL2N at 10% flips gave an AUROC of {earlier_el2n()} "
        "(`docs/results/noisy_labels_detection.csv`).",
        noisy_table(),
        "### Paired differences (EL2N minus each method, same rows)",
        (
            "Two methods are compared by bootstrapping the difference itself: each resample draws one set of rows "
            "and scores both methods on it (`docs/results/noisy_labels_paired.csv`). Overlapping intervals in the "
            "table above say nothing either way. " + noisy_paired_coverage()
            if noisy_paired
            else "The paired comparison (`docs/results/noisy_labels_paired.csv`) has not been run for these rows: "
            "the table above ranks the methods but does not say which differences are measurable."
        ),
        noisy_paired,
        _bullets(noisy_findings()),
        "Training on the 10%-noisy set with and without its top-10% EL2N rows (earlier run, 3 scoring seeds, "
        "`docs/results/noisy_labels_training.csv`):",
        noisy_training_table(),
        "![noisy labels](results/noisy_labels.png)",
        "## Transfer",
        "Scores from one architecture used to prune for another, keep 50%:",
        transfer_table(),
        _bullets(transfer_findings()),
        "## Agreement between scores",
        "Spearman correlations over the 60,000 rows of the shipped card (`docs/results/agreement.csv`; descriptive, "
        "computed on the full population of rows, no interval). EL2N at initialisation does not agree with itself "
        "across seeds: it is a noise control, not a score to prune by.",
        agreement_table(),
        "## Reproducibility across devices",
        "The card's `mlp` command rerun for seed 0 on a CPU against the card's seed-0 values from the H200 "
        "(`docs/results/cross_device.csv`; device and torch version differ together):",
        _cross_device_table(),
        _bullets(cross_device_findings()),
        "## Your own data",
        "`python -m experiments.own_data images|text` (`docs/results/own_data.csv`): 4% of labels moved to a wrong "
        "class, how well EL2N finds them.",
        own_data_table(),
        "## Training dynamics",
        "Loss-landscape stability and kernel velocity by EL2N group: [dynamics.md](dynamics.md).",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _cross_device_table() -> str:
    from .cross_device import table as cross_table

    rows = _rows("cross_device.csv")
    return cross_table(rows).split("\n", 2)[2] if rows else ""


REPORT = RESULTS.parent / "report.md"


def write_report(path: Path = REPORT) -> None:
    """docs/report.md, atomically."""
    from datadiet_hub.atomic import atomic_write_bytes

    atomic_write_bytes(path, render().encode())


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/report.md is not what the CSVs give")
    parser.add_argument("--stdout", action="store_true", help="print the report instead of writing it")
    args = parser.parse_args(argv)
    if args.stdout:
        print(render(), end="")
        return 0
    if args.check:
        if not REPORT.exists() or REPORT.read_text() != render():
            print(f"{REPORT.name} is stale: run python -m experiments.report", file=sys.stderr)
            return 1
        return 0
    write_report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
