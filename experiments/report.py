"""Markdown summary of every results CSV under docs/results (for the README): ``python -m experiments.report``."""

from __future__ import annotations

import csv
from collections import defaultdict
from statistics import mean

from .common import RESULTS


def _rows(name: str) -> list[dict[str, str]]:
    path = RESULTS / name
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def pruning_table() -> str:
    rows = _rows("pruning_curve.csv")
    acc: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        acc[row["method"]][float(row["fraction"])].append(float(row["test_accuracy"]))
    fractions = sorted({f for points in acc.values() for f in points if f < 1}, reverse=True)
    full = acc.get("all", {}).get(1.0, [])
    lines = [
        f"Full data: {mean(full):.4f} (n={len(full)})" if full else "Full data: not run yet",
        "",
        "| method | " + " | ".join(f"keep {f:.0%}" for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    for method in ("el2n", "grand", "forgetting", "ccs", "random", "easiest"):
        if method in acc:
            cells = [
                f"{mean(acc[method][f]):.4f} (n={len(acc[method][f])})" if acc[method].get(f) else "-"
                for f in fractions
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(name: str, columns: list[str]) -> str:
    rows = _rows(name)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def transfer_table() -> str:
    rows = _rows("transfer.csv")
    acc: dict[tuple[str, float, str], list[float]] = defaultdict(list)
    for row in rows:
        acc[(row["train_model"], float(row["fraction"]), row["scores_from"])].append(float(row["test_accuracy"]))
    lines = ["| trained | kept | scores from cnn | scores from mlp | random |", "|---|---|---|---|---|"]
    for model, fraction in sorted({(k[0], k[1]) for k in acc}):
        cells = [
            f"{mean(acc[(model, fraction, s)]):.4f}" if acc.get((model, fraction, s)) else "-"
            for s in ("cnn", "mlp", "random")
        ]
        lines.append(f"| {model} | {fraction:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    print("### Pruning curve\n")
    print(pruning_table())
    print("\n### Noisy labels\n")
    print(table("noisy_labels_detection.csv", ["score", "config", "auroc", "precision_top10"]))
    print()
    print(table("noisy_labels_training.csv", ["run", "seed", "test_accuracy", "examples", "flipped_kept"]))
    print("\n### Transfer\n")
    print(transfer_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
