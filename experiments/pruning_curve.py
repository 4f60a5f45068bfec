"""Pruning curve on Fashion-MNIST: test accuracy after training on the kept fraction, for EL2N-hardest,
GraNd-hardest, forgetting, random, easiest and CCS, with a full-data baseline. Runs are matched on iterations
(the paper's protocol): every run takes the same number of SGD steps as ``--epochs`` over the full set.

    python -m experiments.pruning_curve [--epochs 5] [--seeds 0,1] [--fractions 0.9,0.7,0.5,0.3,0.1]

Resumable: each finished run is a row of docs/results/pruning_curve.csv and is skipped on rerun.
"""

from __future__ import annotations

import argparse
import logging
import math

from .common import CARD, RESULTS, ResultsCSV, device_name, fashion_mnist, load_card_scores, setup_logging, subset

logger = logging.getLogger("experiments.pruning_curve")

# name -> (config, column, strategy, extra kwargs)
METHODS = {
    "el2n": ("cnn-ep2", "el2n", "hardest", {}),
    "grand": ("cnn-ep2", "grand", "hardest", {}),
    "forgetting": ("cnn-ep10", "forgetting", "hardest", {}),
    "random": ("cnn-ep2", "el2n", "random", {}),
    "easiest": ("cnn-ep2", "el2n", "easiest", {}),
    "ccs": ("cnn-ep2", "el2n", "ccs", {}),
}
FIELDS = ["method", "fraction", "seed", "test_accuracy", "examples", "steps", "wall_time_s", "score_config", "device"]


def ccs_beta(fraction: float) -> float:
    """CCS drops the hardest beta share first; Zheng et al. raise beta with the pruning rate (0 at low pruning)."""
    return 0.0 if fraction >= 0.5 else 0.1 if fraction >= 0.3 else 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="training length in epochs of the full set (default 5)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--fractions", default="0.9,0.7,0.5,0.3,0.1")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--card", default=str(CARD))
    parser.add_argument("--output", default=str(RESULTS / "pruning_curve.csv"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    import datadiet_hub
    from downstream.train import train_and_evaluate
    from scoring.config import ScoringConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    methods = args.methods.split(",")
    results = ResultsCSV(args.output, FIELDS, ["method", "fraction", "seed"])
    data = fashion_mnist()
    cfg = ScoringConfig(model="cnn")
    steps = args.epochs * math.ceil(len(data.train) / cfg.batch_size)
    plan = [("all", 1.0, s) for s in seeds] + [(m, f, s) for f in fractions for m in methods for s in seeds]
    scores_cache: dict[str, object] = {}
    for method, fraction, seed in plan:
        if results.done(method=method, fraction=fraction, seed=seed):
            continue
        if method == "all":
            rows, config = range(len(data.train)), ""
        else:
            config, column, strategy, extra = METHODS[method]
            if config not in scores_cache:
                from pathlib import Path

                scores_cache[config] = load_card_scores(config, Path(args.card))
            kwargs = dict(extra)
            if strategy == "ccs":
                kwargs["offset"] = ccs_beta(fraction)
            rows = datadiet_hub.select_indices(
                scores_cache[config], column=column, fraction=fraction, strategy=strategy, seed=seed, **kwargs
            )
        train = subset(data.train, rows)
        result = train_and_evaluate(
            cfg, train, data.test, data.preprocess, seed=seed, steps=steps, desc=f"{method} {fraction}", progress=False
        )
        results.append(
            {
                "method": method,
                "fraction": fraction,
                "seed": seed,
                "test_accuracy": f"{result.test_accuracy:.4f}",
                "examples": result.examples,
                "steps": result.steps,
                "wall_time_s": f"{result.wall_time_s:.1f}",
                "score_config": config,
                "device": device_name(),
            }
        )
        logger.info(
            "%-10s %.1f seed %d: acc %.4f (%d ex, %.0f s)",
            method,
            fraction,
            seed,
            result.test_accuracy,
            result.examples,
            result.wall_time_s,
        )
    plot(args.output)
    return 0


def plot(csv_path: str) -> None:
    """Mean test accuracy vs kept fraction per method (error bars: min/max over seeds)."""
    import csv
    from collections import defaultdict
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by[row["method"]][float(row["fraction"])].append(float(row["test_accuracy"]))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for method, points in sorted(by.items()):
        if method == "all":
            full = sum(points[1.0]) / len(points[1.0])
            ax.axhline(full, color="black", linestyle="--", linewidth=1, label=f"all data ({full:.4f})")
            continue
        xs = sorted(points)
        means = [sum(points[x]) / len(points[x]) for x in xs]
        lo = [m - min(points[x]) for m, x in zip(means, xs)]
        hi = [max(points[x]) - m for m, x in zip(means, xs)]
        ax.errorbar(xs, means, yerr=[lo, hi], marker="o", capsize=3, label=method)
    ax.set_xlabel("fraction of training set kept")
    ax.set_ylabel("test accuracy")
    ax.set_title("Fashion-MNIST, small CNN, matched iterations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(csv_path).with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
