"""Noisy labels: flip a share of Fashion-MNIST training labels at random (symmetric: to any other class), and
measure how well each method finds the flipped rows, all methods on the same flips:

- EL2N and GraNd (at ``--score-epochs``) and forgetting (over ``--forgetting-epochs``) from our scoring run on the
  noisy labels (CNN, ``--seeds`` seeds);
- a linear baseline: PCA-100 + logistic regression, out-of-sample self-confidence from 5-fold cross-validation
  (score = 1 - predicted probability of the given label);
- cleanlab on the same 5-fold out-of-sample probabilities of the linear model, and again on those of the CNN
  (``--cnn-cv-epochs`` epochs per fold): ``get_label_quality_scores``
  (normalized margin) as a ranking, and ``find_label_issues`` (confident learning) as a flagged set.

Each row of ``docs/results/noisy_labels_peers.csv`` gives AUROC and precision in the top ``rate`` share of rows with
percentile-bootstrap 95% intervals over the examples (1000 resamples; they do not cover retraining or another
scoring run). Methods are compared in ``docs/results/noisy_labels_paired.csv``: the difference EL2N minus each
other method, bootstrapped on the same resampled rows for both (paired), not by whether two intervals overlap.
EL2N, GraNd and forgetting are in-sample (the scoring run trains on the rows it scores); the peers' probabilities are
out-of-sample (each row predicted by a model that did not train on it).

    python -m experiments.noisy_labels --rates 0.1,0.2,0.4 --seeds 2 --threads 1

``--train-seeds 0,1 --rates 0.1 --seeds 3`` also trains on the noisy set with and without its top-10% EL2N rows
(the protocol of ``noisy_labels_training.csv``). Resumable: the scoring runs resume from their checkpoints
(``runs/noisy/``), cross-validated probabilities are cached there, finished CSV rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from pathlib import Path

import numpy as np

from .common import RESULTS, ResultsCSV, device_name, fashion_mnist, numpy_columns, read_config, setup_logging, subset
from .stats import bootstrap_interval

logger = logging.getLogger("experiments.noisy_labels")
NOISE_FIELDS = ["score", "config", "auroc", "precision_top10", "noise_rate", "seeds"]  # the first (H200) 10% run
PEER_FIELDS = [
    "noise_rate",
    "method",
    "model",
    "auroc",
    "auroc_lo",
    "auroc_hi",
    "precision",
    "precision_lo",
    "precision_hi",
    "flagged",
    "flagged_precision",
    "flagged_recall",
    "protocol",
    "wall_time_s",
    "device",
]
PAIRED_FIELDS = [
    "noise_rate",
    "method",
    "minus",
    "auroc_diff",
    "auroc_diff_lo",
    "auroc_diff_hi",
    "precision_diff",
    "precision_diff_lo",
    "precision_diff_hi",
    "rows",
    "resamples",
]
REFERENCE = "EL2N"  # the method every other one is compared with, on the same rows
TRAIN_FIELDS = ["run", "seed", "test_accuracy", "examples", "flipped_kept", "steps", "wall_time_s", "device"]
FLIP_SEED = 0
FOLDS = 5
CNN_CV_EPOCHS = 2  # the default epochs per fold of the CNN's cross-validated probabilities


def flip_labels(labels: np.ndarray, rate: float, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``rate`` of the labels (chosen at random) to a different class, uniformly at random."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, num_classes, size=len(flipped))) % num_classes
    mask = np.zeros(len(labels), dtype=bool)
    mask[flipped] = True
    return noisy, mask


def linear_pred_probs(images: np.ndarray, labels: np.ndarray, cache: Path, folds: int = FOLDS) -> np.ndarray:
    """Out-of-sample class probabilities of PCA-100 + logistic regression, ``folds``-fold stratified CV (seed 0).
    PCA is fitted inside each fold on its training part only, so no held-out row leaks into its own prediction."""
    if cache.exists():
        return np.load(cache)
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    probs = np.zeros((len(x), 10), dtype=np.float64)
    for k, (fit, held) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=0).split(x, labels)):
        model = make_pipeline(
            PCA(100, random_state=0), StandardScaler(), LogisticRegression(max_iter=300, C=1.0, random_state=0)
        )
        model.fit(x[fit], labels[fit])
        probs[held] = model.predict_proba(x[held])
        _log_fold("linear", k, folds, probs[held], labels[held])
    _save_atomically(cache, probs)
    return probs


def cnn_pred_probs(noisy: np.ndarray, cache: Path, epochs: int, folds: int = FOLDS) -> np.ndarray:
    """Out-of-sample class probabilities of the small CNN (the scoring model, default SGD settings, cosine learning
    rate over ``epochs`` epochs of each fold's training part), ``folds``-fold stratified CV (seed 0)."""
    if cache.exists():
        return np.load(cache)
    import torch
    from sklearn.model_selection import StratifiedKFold

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.loops import (
        cosine_lr,
        evaluate,
        logits_of,
        model_inputs,
        ordered_batches,
        shuffled_batches,
        train_loop,
    )
    from datadiet_hub.scoring.train import make_model, make_optimizer, seed_generator

    cfg = ScoringConfig(model="cnn", optimizer="sgd", lr=0.1, weight_decay=5e-4)
    data = fashion_mnist()
    labels = torch.from_numpy(noisy)
    probs = np.zeros((len(noisy), 10), dtype=np.float64)
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(np.zeros(len(noisy)), noisy)
    for k, (fit, held) in enumerate(splits):
        train = subset(data.train, fit)
        train.labels = labels[torch.as_tensor(np.sort(fit))]
        model = make_model(cfg, train, seed=k)
        total = epochs * math.ceil(len(train) / cfg.batch_size)
        batches = shuffled_batches(
            train.images,
            train.labels,
            data.preprocess,
            batch_size=cfg.batch_size,
            steps=range(total),
            order=lambda epoch, k=k: seed_generator("noisy-cv-order", k, epoch),
        )
        train_loop(model, make_optimizer(cfg, model), batches, lr=lambda step, t=total: cosine_lr(cfg.lr, step, t))
        rows = torch.as_tensor(held)
        held_batches = ordered_batches(data.train.images, labels, data.preprocess, batch_size=1024, rows=rows)
        softmax = evaluate(model, held_batches, lambda m, batch: torch.softmax(logits_of(m, model_inputs(batch)), 1))
        probs[held] = softmax.double().numpy()
        _log_fold("cnn", k, folds, probs[held], noisy[held])
    _save_atomically(cache, probs)
    return probs


def _log_fold(model: str, k: int, folds: int, probs: np.ndarray, labels: np.ndarray) -> None:
    accuracy = float((probs.argmax(1) == labels).mean())
    logger.info("%s fold %d/%d: held-out accuracy on given labels %.4f", model, k + 1, folds, accuracy)


def _save_atomically(cache: Path, probs: np.ndarray) -> None:
    """The fold probabilities as ``cache`` (temp + rename: a killed run never leaves a partial cache)."""
    from datadiet_hub.atomic import atomic_path

    with atomic_path(cache, suffix=".npy") as tmp:
        np.save(tmp, probs)


def values_path(work: Path, method: str) -> Path:
    """Where a method's per-row suspicion values for one flip rate are kept (for the paired comparison)."""
    return work / "values" / (re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-") + ".npy")


def detection_row(rate: float, method: str, model: str, values: np.ndarray, flipped: np.ndarray, **extra) -> dict:
    """AUROC and precision in the top ``rate`` share, each with a bootstrap 95% interval over the examples."""
    from datadiet_hub.stats import auroc, precision_at

    work = extra.pop("work", None)
    if work is not None:  # kept so that methods can be compared on the same rows later
        _save_atomically(values_path(work, method), np.asarray(values, dtype=np.float64))

    a, a_lo, a_hi = bootstrap_interval(auroc, [values, flipped])
    p, p_lo, p_hi = bootstrap_interval(lambda v, f: precision_at(v, f, rate), [values, flipped])
    row = {"noise_rate": rate, "method": method, "model": model, "device": device_name()}
    row.update({k: f"{v:.4f}" for k, v in dict(auroc=a, auroc_lo=a_lo, auroc_hi=a_hi).items()})
    row.update({k: f"{v:.4f}" for k, v in dict(precision=p, precision_lo=p_lo, precision_hi=p_hi).items()})
    row.update(extra)
    return row


def paired_comparison(rate: float, work: Path, flipped: np.ndarray, methods: list[str], out: ResultsCSV) -> None:
    """``REFERENCE`` minus each other method, AUROC and precision at the flip rate, with a percentile-bootstrap 95%
    interval of the difference: each resample draws one set of rows and scores both methods on it, so the
    interval is that of the difference itself (two overlapping intervals can still hold a clear difference, and
    two separate ones can come from correlated methods). Covers the sampling of rows only, not another scoring
    run."""
    from datadiet_hub.stats import auroc, precision_at

    reference = values_path(work, REFERENCE)
    if not reference.exists():
        logger.info("rate %.2f: no saved %s values; paired comparison skipped", rate, REFERENCE)
        return
    ref = np.load(reference)
    for method in methods:
        if method == REFERENCE or out.done(noise_rate=rate, method=REFERENCE, minus=method):
            continue
        path = values_path(work, method)
        if not path.exists():
            logger.info("rate %.2f: no saved values for %s; paired comparison skipped", rate, method)
            continue
        other = np.load(path)
        n_boot = 1000
        a, a_lo, a_hi = bootstrap_interval(
            lambda x, y, f: auroc(x, f) - auroc(y, f), [ref, other, flipped], n_boot=n_boot
        )
        p, p_lo, p_hi = bootstrap_interval(
            lambda x, y, f: precision_at(x, f, rate) - precision_at(y, f, rate), [ref, other, flipped], n_boot=n_boot
        )
        out.append(
            {
                "noise_rate": rate,
                "method": REFERENCE,
                "minus": method,
                **{k: f"{v:+.4f}" for k, v in dict(auroc_diff=a, auroc_diff_lo=a_lo, auroc_diff_hi=a_hi).items()},
                **{
                    k: f"{v:+.4f}"
                    for k, v in dict(precision_diff=p, precision_diff_lo=p_lo, precision_diff_hi=p_hi).items()
                },
                "rows": len(ref),
                "resamples": n_boot,
            }
        )
        logger.info("rate %.2f: %s minus %s AUROC %+.4f [%+.4f, %+.4f]", rate, REFERENCE, method, a, a_lo, a_hi)


def noisy_parquet(work: Path, noisy: np.ndarray, flipped: np.ndarray) -> Path:
    """The training split with the noisy labels, as a parquet file the scoring run reads (written once)."""
    import datasets

    from datadiet_hub.sources import FASHION_MNIST_CLASSES, fashion_mnist_dataset

    parquet = work / "train-noisy.parquet"
    if not parquet.exists():
        work.mkdir(parents=True, exist_ok=True)
        ds = fashion_mnist_dataset("train").remove_columns("label")
        ds = ds.add_column("label", noisy.tolist()).cast_column(
            "label", datasets.ClassLabel(names=FASHION_MNIST_CLASSES)
        )
        from datadiet_hub.atomic import atomic_path

        with atomic_path(parquet) as tmp:
            ds.to_parquet(str(tmp))
        (work / "flipped.json").write_text(json.dumps(np.flatnonzero(flipped).tolist()))
    return parquet


def peers(
    rate: float,
    images: np.ndarray,
    noisy: np.ndarray,
    flipped: np.ndarray,
    work: Path,
    out: ResultsCSV,
    kind: str = "linear",
    cnn_epochs: int = 2,
) -> None:
    """Self-confidence and cleanlab on 5-fold out-of-sample probabilities of the linear model or the CNN."""
    import time

    import cleanlab

    suffix = "" if kind == "linear" else " (CNN probabilities)"
    methods = [m + suffix for m in ("self-confidence", "cleanlab normalized margin", "cleanlab confident learning")]
    methods[0] = "linear self-confidence" if kind == "linear" else "CNN self-confidence"
    if all(out.done(noise_rate=rate, method=m) for m in methods):
        return
    started = time.perf_counter()
    if kind == "linear":
        probs = linear_pred_probs(images, noisy, work / "linear_pred_probs.npy")
        model = f"PCA-100 + logistic regression, {FOLDS}-fold out-of-sample"
    else:
        probs = cnn_pred_probs(noisy, work / f"cnn_pred_probs_ep{cnn_epochs}.npy", cnn_epochs)
        model = f"CNN ({cnn_epochs} epoch{'s' if cnn_epochs != 1 else ''} per fold), {FOLDS}-fold out-of-sample"
    fit_s = time.perf_counter() - started
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    selfconf = probs[np.arange(len(noisy)), noisy]
    margin = get_label_quality_scores(noisy, probs, method="normalized_margin")
    issues = find_label_issues(noisy, probs, filter_by="prune_by_noise_rate")
    # the flagged set first, ordered within by cleanlab's quality score, then the rest by the same score
    ranked = np.where(issues, 2.0, 0.0) + (1.0 - margin)
    flagged = {
        "flagged": int(issues.sum()),
        "flagged_precision": f"{flipped[issues].mean():.4f}" if issues.any() else "",
        "flagged_recall": f"{issues[flipped].mean():.4f}",
    }
    for method, values, extra, protocol in (
        (methods[0], 1.0 - selfconf, {}, "1 - p(given label); higher = more suspect"),
        (methods[1], 1.0 - margin, {}, f"cleanlab {cleanlab.__version__} get_label_quality_scores"),
        (methods[2], ranked, flagged, f"cleanlab {cleanlab.__version__} find_label_issues (prune_by_noise_rate)"),
    ):
        if out.done(noise_rate=rate, method=method):
            continue
        row = detection_row(
            rate, method, model, values, flipped, protocol=protocol, wall_time_s=f"{fit_s:.1f}", work=work, **extra
        )
        out.append(row)
        logger.info("rate %.2f %s: AUROC %s", rate, method, row["auroc"])


def ours(rate: float, noisy: np.ndarray, flipped: np.ndarray, work: Path, args, out: ResultsCSV) -> None:
    """Our scores from a scoring run on the noisy labels (resumable from its checkpoints)."""
    import time

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.run import run

    early, late = f"cnn-ep{args.score_epochs}", f"cnn-ep{args.forgetting_epochs}"
    wanted = (("EL2N", "el2n", early), ("GraNd", "grand", early), ("forgetting", "forgetting", late))
    if all(out.done(noise_rate=rate, method=m) for m, _, _ in wanted):
        return
    started = time.perf_counter()
    parquet = noisy_parquet(work, noisy, flipped)
    cfg = ScoringConfig(
        output_dir=str(work / "scores"),
        dataset="parquet",
        data_files=[str(parquet)],
        seeds=list(range(args.seeds)),
        scores=["el2n", "grand", "forgetting"],
        at=sorted({args.score_epochs, args.forgetting_epochs}),
    )
    run(cfg, progress=False)
    wall = time.perf_counter() - started
    for method, score, config in wanted:
        if out.done(noise_rate=rate, method=method):
            continue
        table = numpy_columns(read_config(work / "scores", config))
        values = table[score].astype(np.float64)
        if score == "forgetting":  # never-learned rows rank first, as data_diet's infinity
            values = np.where(table["never_learned"], values.max() + 1, values)
        protocol = (
            f"CNN, {args.seeds} seeds, {config} (scores at epochs {cfg.at}, training {max(cfg.at)} epochs), "
            "higher = more suspect"
        )
        out.append(
            detection_row(
                rate,
                method,
                f"CNN {config}",
                values,
                flipped,
                protocol=protocol,
                wall_time_s=f"{wall:.1f}",
                work=work,
            )
        )
        logger.info("rate %.2f %s: AUROC %s", rate, method, out.rows[-1]["auroc"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="0.1,0.2,0.4", help="flip rates, comma-separated")
    parser.add_argument("--seeds", type=int, default=2, help="scoring seeds")
    parser.add_argument("--score-epochs", type=int, default=2, help="EL2N/GraNd time (epochs)")
    parser.add_argument("--forgetting-epochs", type=int, default=5, help="training length for forgetting")
    parser.add_argument(
        "--cnn-cv-epochs",
        type=int,
        default=CNN_CV_EPOCHS,
        help="epochs per fold of the CNN's 5-fold probabilities (0: skip)",
    )
    parser.add_argument("--peers-only", action="store_true", help="only the linear baseline and cleanlab")
    parser.add_argument("--train-epochs", type=int, default=5, help="downstream training length (full-set epochs)")
    parser.add_argument("--train-seeds", default="", help="downstream seeds for the drop-top-10%% training (0,1)")
    parser.add_argument("--workdir", default="runs/noisy")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--plot-only", action="store_true", help="only redraw the PNG from the CSVs")
    parser.add_argument(
        "--results-dir", default=str(RESULTS), help="where the CSVs and the PNG go (default: docs/results)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    results = Path(args.results_dir)
    if args.plot_only:
        plot(results)
        return 0
    import torch

    from datadiet_hub.sources import fashion_mnist_arrays

    if args.threads:
        torch.set_num_threads(args.threads)
        import os

        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    images, labels = fashion_mnist_arrays("train")
    out = ResultsCSV(results / "noisy_labels_peers.csv", PEER_FIELDS, ["noise_rate", "method"])
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    paired_out = ResultsCSV(results / "noisy_labels_paired.csv", PAIRED_FIELDS, ["noise_rate", "method", "minus"])
    for rate in rates:  # one rate at a time, to the end: an interrupted run leaves whole rates behind
        noisy, flipped = flip_labels(labels, rate, 10, seed=FLIP_SEED)
        work = Path(args.workdir) / f"rate{rate:g}"
        peers(rate, images, noisy, flipped, work, out)
        if not args.peers_only:
            ours(rate, noisy, flipped, work, args, out)
        if args.cnn_cv_epochs:
            peers(rate, images, noisy, flipped, work, out, kind="cnn", cnn_epochs=args.cnn_cv_epochs)
        plot(results)
        methods = [r["method"] for r in out.rows if float(r["noise_rate"]) == rate]
        paired_comparison(rate, work, flipped, methods, paired_out)
    if args.train_seeds:
        train_without_top(args, labels)
    return 0


def train_without_top(args, labels: np.ndarray) -> None:
    """Train on the 10%-noisy set with and without its top-10% EL2N rows; clean test accuracy per seed."""
    import torch

    from datadiet_hub.downstream.train import train_and_evaluate
    from datadiet_hub.scoring.config import ScoringConfig

    rate = 0.1
    noisy, flipped = flip_labels(labels, rate, 10, seed=FLIP_SEED)
    work = Path(args.workdir) / f"rate{rate:g}"
    data = fashion_mnist()
    data.train.labels = torch.from_numpy(noisy)
    early = f"cnn-ep{args.score_epochs}"
    el2n = read_config(work / "scores", early).column("el2n").to_numpy()
    top = np.argsort(-el2n, kind="stable")[: round(rate * len(el2n))]
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


def plot(results: Path = RESULTS) -> None:
    """AUROC and precision at the flip rate with their bootstrap 95% intervals, per method, one panel per rate."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = results / "noisy_labels_peers.csv"
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rates = sorted({float(r["noise_rate"]) for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    width = 0.8 / max(len(methods), 1)
    for ax, metric, title in ((axes[0], "auroc", "AUROC"), (axes[1], "precision", "precision at the flip rate")):
        for j, method in enumerate(methods):
            xs, ys, errs = [], [], [[], []]
            for i, rate in enumerate(rates):
                row = next((r for r in rows if r["method"] == method and float(r["noise_rate"]) == rate), None)
                if row is None:
                    continue
                y = float(row[metric])
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(y)
                errs[0].append(y - float(row[metric + "_lo"]))
                errs[1].append(float(row[metric + "_hi"]) - y)
            ax.bar(xs, ys, width=width, yerr=errs, capsize=2, label=method)
        ax.set_xticks(range(len(rates)), [f"{r:.0%} flipped" for r in rates])
        ax.set_ylim(0.4, 1.0)
        ax.set_title(title, fontsize=10)
    axes[1].legend(fontsize=7, loc="lower left")
    fig.suptitle("Finding flipped labels in Fashion-MNIST train (60k): same flips for every method", fontsize=10)
    fig.tight_layout()
    fig.savefig(results / "noisy_labels.png")
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
