"""Noisy labels: flip 10% of Fashion-MNIST training labels at random, score the noisy set (EL2N, GraNd,
forgetting), and report how well each score finds the flipped rows (AUROC, precision in the top 10%); then train on
the noisy set with and without its top-10% rows (by EL2N) and compare clean test accuracy.

    python -m experiments.noisy_labels [--seeds 3] [--score-epochs 2] [--forgetting-epochs 5] [--train-epochs 5]

Resumable: the scoring run resumes from its checkpoints (runs/noisy/), finished rows of the CSVs are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from .common import RESULTS, ResultsCSV, device_name, fashion_mnist, setup_logging, subset

logger = logging.getLogger("experiments.noisy_labels")
NOISE_FIELDS = ["score", "config", "auroc", "precision_top10", "noise_rate", "seeds"]
TRAIN_FIELDS = ["run", "seed", "test_accuracy", "examples", "flipped_kept", "steps", "wall_time_s", "device"]


def flip_labels(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``rate`` of the labels (chosen at random) to a different class, uniformly at random."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, size=len(flipped))) % num_classes
    mask = np.zeros(len(labels), dtype=bool)
    mask[flipped] = True
    return noisy, mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=3, help="scoring seeds")
    parser.add_argument("--score-epochs", type=int, default=2, help="EL2N/GraNd time (epochs)")
    parser.add_argument("--forgetting-epochs", type=int, default=5, help="training length for forgetting")
    parser.add_argument("--train-epochs", type=int, default=5, help="downstream training length (full-set epochs)")
    parser.add_argument("--train-seeds", default="0,1")
    parser.add_argument("--workdir", default="runs/noisy")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--plot-only", action="store_true", help="only redraw the PNG from the CSVs")
    args = parser.parse_args(argv)
    setup_logging()
    if args.plot_only:
        plot()
        return 0
    import datasets
    import torch

    from datadiet_hub.sources import FASHION_MNIST_CLASSES, fashion_mnist_arrays
    from datadiet_hub.stats import auroc, precision_at
    from downstream.train import train_and_evaluate
    from scoring.config import ScoringConfig
    from scoring.run import run

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    _images, labels = fashion_mnist_arrays("train")
    noisy, flipped = flip_labels(labels, args.rate, 10, seed=0)
    parquet = work / "train-noisy.parquet"
    if not parquet.exists():
        from datadiet_hub.sources import fashion_mnist_dataset

        work.mkdir(parents=True, exist_ok=True)
        ds = fashion_mnist_dataset("train").remove_columns("label")
        ds = ds.add_column("label", noisy.tolist()).cast_column(
            "label", datasets.ClassLabel(names=FASHION_MNIST_CLASSES)
        )
        tmp = parquet.with_suffix(".tmp")
        ds.to_parquet(str(tmp))
        tmp.rename(parquet)
        (work / "flipped.json").write_text(json.dumps(np.flatnonzero(flipped).tolist()))
    at = sorted({args.score_epochs, args.forgetting_epochs})
    cfg = ScoringConfig(
        output_dir=str(work / "scores"),
        dataset="parquet",
        data_files=[str(parquet)],
        seeds=list(range(args.seeds)),
        scores=["el2n", "grand", "forgetting"],
        at=at,
    )
    run(cfg, progress=False)

    early, late = f"cnn-ep{args.score_epochs}", f"cnn-ep{args.forgetting_epochs}"
    load = lambda c: datasets.load_dataset(str(work / "scores"), c, split="train")  # noqa: E731
    tables = {early: load(early), late: load(late)}
    noise = ResultsCSV(RESULTS / "noisy_labels_detection.csv", NOISE_FIELDS, ["score", "config"])
    for score, config in (("el2n", early), ("grand", early), ("forgetting", late), ("el2n", late)):
        if noise.done(score=score, config=config):
            continue
        table = tables[config].with_format("numpy")[:]  # dict of numpy arrays
        values = table[score].astype(np.float64)
        if score == "forgetting":  # never-learned rows rank first, as data_diet's infinity
            values = np.where(table["never_learned"], values.max() + 1, values)
        noise.append(
            {
                "score": score,
                "config": config,
                "auroc": f"{auroc(values, flipped):.4f}",
                "precision_top10": f"{precision_at(values, flipped, args.rate):.4f}",
                "noise_rate": args.rate,
                "seeds": args.seeds,
            }
        )
        logger.info("%s@%s: AUROC %s", score, config, noise.rows[-1]["auroc"])

    data = fashion_mnist()
    data.train.labels = torch.from_numpy(noisy)
    el2n = tables[early].with_format("numpy")[:]["el2n"]
    top = np.argsort(-el2n, kind="stable")[: round(args.rate * len(el2n))]
    keep_rows = np.setdiff1d(np.arange(len(el2n)), top)
    steps = args.train_epochs * math.ceil(len(data.train) / 128)
    training = ResultsCSV(RESULTS / "noisy_labels_training.csv", TRAIN_FIELDS, ["run", "seed"])
    for seed in (int(s) for s in args.train_seeds.split(",")):
        for name, rows in (("all noisy data", np.arange(len(el2n))), ("drop top 10% EL2N", keep_rows)):
            if training.done(run=name, seed=seed):
                continue
            result = train_and_evaluate(
                ScoringConfig(),
                subset(data.train, rows),
                data.test,
                data.preprocess,
                seed=seed,
                steps=steps,
                progress=False,
            )
            training.append(
                {
                    "run": name,
                    "seed": seed,
                    "test_accuracy": f"{result.test_accuracy:.4f}",
                    "examples": result.examples,
                    "flipped_kept": int(flipped[rows].sum()),
                    "steps": steps,
                    "wall_time_s": f"{result.wall_time_s:.1f}",
                    "device": device_name(),
                }
            )
            logger.info("%s seed %d: acc %.4f", name, seed, result.test_accuracy)
    plot()
    return 0


def plot() -> None:
    """Bars of AUROC and precision in the top 10% for finding the flipped labels, per score."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(RESULTS / "noisy_labels_detection.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = [f"{r['score']}@{r['config']}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    ax.bar(x - 0.2, [float(r["auroc"]) for r in rows], width=0.4, label="AUROC")
    ax.bar(x + 0.2, [float(r["precision_top10"]) for r in rows], width=0.4, label="precision in top 10%")
    ax.set_xticks(x, labels, rotation=15, fontsize=8)
    ax.set_ylim(0.5, 1.0)
    ax.set_title(
        f"Finding {float(rows[0]['noise_rate']):.0%} flipped labels (Fashion-MNIST, {rows[0]['seeds']} seeds)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "noisy_labels.png")
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
