"""Agreement between scores: Spearman correlations between seeds, score times, architectures and metrics, and
GraNd at init vs the input norm (Kirsch 2023 found them almost the same on CIFAR-10). No training; seconds.

    python -m experiments.agreement
"""

from __future__ import annotations

import argparse
import itertools
import logging

import numpy as np

from .common import CARD, RESULTS, ResultsCSV, fashion_mnist, numpy_columns, read_config, setup_logging

logger = logging.getLogger("experiments.agreement")
FIELDS = ["kind", "a", "b", "spearman"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card", default=str(CARD))
    args = parser.parse_args(argv)
    setup_logging()

    from datadiet_hub.folder import ScoreFolder
    from datadiet_hub.stats import mean_pairwise_spearman, spearman

    configs = ScoreFolder(args.card).configs()
    tables = {c: numpy_columns(read_config(args.card, c)) for c in configs}
    out = RESULTS / "agreement.csv"
    out.unlink(missing_ok=True)  # cheap to recompute: always fresh
    results = ResultsCSV(out, FIELDS, ["kind", "a", "b"])
    columns = {}
    for config, table in tables.items():
        for metric in ("el2n", "grand", "forgetting"):
            if metric in table:
                columns[f"{metric}@{config}"] = table[metric].astype(np.float64)
                per_seed = np.stack(table[f"{metric}_per_seed"])
                results.append(
                    {
                        "kind": "seeds",
                        "a": f"{metric}@{config}",
                        "b": "",
                        "spearman": f"{mean_pairwise_spearman(per_seed):.4f}",
                    }
                )
    for a, b in itertools.combinations(columns, 2):
        metric_a, config_a = a.split("@")
        metric_b, config_b = b.split("@")
        model_a, model_b = config_a.rsplit("-", 1)[0], config_b.rsplit("-", 1)[0]
        kind = (
            "times"
            if metric_a == metric_b and model_a == model_b
            else "architectures"
            if metric_a == metric_b and config_a.rsplit("-", 1)[1] == config_b.rsplit("-", 1)[1]
            else "metrics"
            if config_a == config_b
            else "other"
        )
        if kind == "other":
            continue
        results.append({"kind": kind, "a": a, "b": b, "spearman": f"{spearman(columns[a], columns[b]):.4f}"})
    data = fashion_mnist()
    x = data.preprocess(data.train.images).flatten(1)
    input_norm = x.norm(dim=1).numpy().astype(np.float64)
    for name in columns:
        if name.startswith("grand@") and name.endswith("-ep0"):
            results.append(
                {
                    "kind": "input_norm",
                    "a": name,
                    "b": "input L2 norm (normalised pixels)",
                    "spearman": f"{spearman(columns[name], input_norm):.4f}",
                }
            )
    for row in results.rows:
        logger.info("%-13s %-22s %-22s %s", row["kind"], row["a"], row["b"], row["spearman"])
    heatmap({k: v for k, v in columns.items() if not k.endswith(("-ep0", "-ep1"))}, out.with_suffix(".png"))
    return 0


def heatmap(columns: dict[str, np.ndarray], path) -> None:
    """Spearman matrix of the given score columns (forgetting as raw counts, never-learned rows counted 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from datadiet_hub.stats import spearman

    names = sorted(columns, key=lambda n: (n.split("@")[1].split("-")[0], n.split("@")[0], n))
    matrix = np.array([[spearman(columns[a], columns[b]) for b in names] for a in names])
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(image, ax=ax, label="Spearman")
    ax.set_title("Agreement between scores (Fashion-MNIST, 5 seeds each)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
