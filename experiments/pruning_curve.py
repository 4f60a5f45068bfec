"""Pruning curve on Fashion-MNIST: test accuracy after training on the kept fraction, for EL2N-hardest,
GraNd-hardest, forgetting, random, easiest and CCS, with a full-data baseline. Runs are matched on iterations
(the paper's protocol): every run takes the same number of SGD steps as ``--epochs`` over the full set.

    python -m experiments.pruning_curve --threads 1 [--epochs 5] [--seeds 0,1,2,3,4]
        [--fractions 0.5,0.3,0.7,0.1,0.9] [--forgetting-tie-breaks random,index]
    python -m experiments.pruning_curve --ties     # tie analysis only (no training)

The plan runs the most important cells first: full data, then per fraction (in the order given) every method but
forgetting over all seeds, and forgetting last, once per tie-break (only where the installed library supports
``tie_break``). Resumable: each finished run is a row of docs/results/pruning_curve.csv (with its device and the
tie-break the selection used; rows from before the column existed broke ties by the lowest row index, ``index``)
and is skipped on rerun.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math

import numpy as np

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
FIELDS = [
    "method",
    "fraction",
    "seed",
    "test_accuracy",
    "examples",
    "steps",
    "wall_time_s",
    "score_config",
    "device",
    "tie_break",
]
ORDER = ("el2n", "random", "grand", "ccs", "easiest")  # forgetting comes last, per tie-break
TIE_FIELDS = [
    "config",
    "column",
    "fraction",
    "kept",
    "tied_kept",
    "tied_share",
    "boundary_score",
    "same_kept_share",
]


def library_tie_break() -> str | None:
    """The default tie-break of the installed ``datadiet_hub`` selection, or None before it had one (then ties
    go to the lower row index)."""
    import dataclasses

    import datadiet_hub

    if "tie_break" in inspect.signature(datadiet_hub.select_indices).parameters:
        return str(inspect.signature(datadiet_hub.select_indices).parameters["tie_break"].default)
    try:
        from datadiet_hub.selection import Selection
    except ImportError:
        return None
    fields = {f.name: f for f in dataclasses.fields(Selection)}
    return str(fields["tie_break"].default) if "tie_break" in fields else None


def plan(seeds: list[int], fractions: list[float], methods: list[str], tie_breaks: list[str]) -> list[tuple]:
    """``(method, fraction, seed, tie_break)`` in the order the runs should finish."""
    out: list[tuple] = [("all", 1.0, s, "") for s in seeds] if "all" in methods else []
    for fraction in fractions:
        out += [(m, fraction, s, "") for m in ORDER if m in methods for s in seeds]
    if "forgetting" in methods:
        for tie in tie_breaks:
            out += [("forgetting", f, s, tie) for f in fractions for s in seeds]
    return out


def ccs_beta(fraction: float) -> float:
    """CCS drops the hardest beta share first; Zheng et al. raise beta with the pruning rate (0 at low pruning)."""
    return 0.0 if fraction >= 0.5 else 0.1 if fraction >= 0.3 else 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="training length in epochs of the full set (default 5)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--fractions", default="0.5,0.3,0.7,0.1,0.9", help="in the order they should finish")
    parser.add_argument(
        "--forgetting-tie-breaks",
        default="random,index",
        help="tie-breaks to run forgetting with (needs a library with tie_break; skipped otherwise)",
    )
    parser.add_argument("--ties", action="store_true", help="only measure ties (docs/results/ties.csv)")
    parser.add_argument(
        "--methods",
        default=",".join(["all", *METHODS]),
        help=f"comma-separated, from all (the full-data baseline), {', '.join(METHODS)} (default: every one)",
    )
    parser.add_argument("--card", default=str(CARD))
    parser.add_argument("--output", default=str(RESULTS / "pruning_curve.csv"))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--per-device",
        action="store_true",
        help="count a run as done only if it ran on this device, so that runs made elsewhere are repeated here and "
        "every comparison can be paired on one device (the report never pairs across devices)",
    )
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - {"all", *METHODS})
    if unknown:
        parser.error(f"--methods {args.methods!r}: unknown {unknown}; choose from all, {', '.join(METHODS)}")
    setup_logging()
    if args.ties:
        measure_ties(args.card)
        return 0
    import torch

    import datadiet_hub
    from datadiet_hub.downstream.train import train_and_evaluate
    from datadiet_hub.scoring.config import ScoringConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    fractions = [float(f) for f in args.fractions.split(",")]
    old_rule = {"tie_break": lambda row: "" if row["method"] in ("all", "random") else "index"}
    results = ResultsCSV(args.output, FIELDS, ["method", "fraction", "seed", "tie_break"], old_rule)
    data = fashion_mnist()
    cfg = ScoringConfig(model="cnn")
    steps = args.epochs * math.ceil(len(data.train) / cfg.batch_size)
    lib_tie = library_tie_break()
    tie_breaks = [t for t in args.forgetting_tie_breaks.split(",") if t] if lib_tie else []
    if lib_tie is None and "forgetting" in methods:
        logger.info("the installed datadiet_hub has no tie_break: forgetting runs are skipped (merge main first)")
    scores_cache: dict[str, object] = {}
    here = device_name()
    for method, fraction, seed, tie in plan(seeds, fractions, methods, tie_breaks):
        if ran(results.rows, method, fraction, seed, tie, here if args.per_device else None):
            continue
        used = tie or (lib_tie or "index")
        if method == "all":
            rows, config, used = range(len(data.train)), "", ""
        else:
            config, column, strategy, extra = METHODS[method]
            if config not in scores_cache:
                from pathlib import Path

                scores_cache[config] = load_card_scores(config, Path(args.card))
            kwargs = dict(extra)
            if strategy == "ccs":
                kwargs["beta"] = ccs_beta(fraction)
            if lib_tie is not None:
                kwargs["tie_break"] = used
            if strategy == "random":
                used = ""
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
                "device": here,
                "tie_break": used,
            }
        )
        logger.info(
            "%-10s %.1f seed %d %s: acc %.4f (%d ex, %.0f s)",
            method,
            fraction,
            seed,
            used,
            result.test_accuracy,
            result.examples,
            result.wall_time_s,
        )
    plot(args.output)
    return 0


def ran(rows: list[dict[str, str]], method: str, fraction: float, seed: int, tie: str, device: str | None) -> bool:
    """Whether a run is already in the CSV (on ``device``, when given). For the float scores (``tie == ""``) ties
    are negligible, so a row with any tie-break counts."""
    return any(
        r["method"] == method
        and float(r["fraction"]) == fraction
        and int(r["seed"]) == seed
        and (tie == "" or r["tie_break"] == tie)
        and (device is None or r["device"] == device)
        for r in rows
    )


def tied_kept(scores: np.ndarray, k: int, seed: int = 0) -> dict:
    """Ties among the ``k`` hardest rows: how many kept rows share the score at the cut (so the tie-break, not the
    score, decided which of them are kept), and how many kept rows the lowest-index rule and a seeded random
    order among equal scores have in common."""
    order_index = np.argsort(-scores, kind="stable")  # ties to the lower row index (the old rule)
    boundary = scores[order_index[k - 1]]
    kept_at_boundary = int((scores[order_index[:k]] == boundary).sum())
    # a choice is made only when the rows sharing the cut's score do not all fit: then every kept row with that
    # score was picked by the tie-break, not by the score
    tied = kept_at_boundary if int((scores == boundary).sum()) > kept_at_boundary else 0
    rng = np.random.default_rng(seed)
    order_random = np.lexsort((rng.permutation(len(scores)), -scores))  # seeded random order among equal scores
    same = np.intersect1d(order_index[:k], order_random[:k]).size
    return {
        "kept": k,
        "tied_kept": tied,
        "tied_share": f"{tied / k:.4f}",
        "boundary_score": f"{boundary:g}",
        "same_kept_share": f"{same / k:.4f}",
    }


def measure_ties(card: str, fractions: tuple[float, ...] = (0.9, 0.7, 0.5, 0.3, 0.1)) -> None:
    """docs/results/ties.csv: for each score used by the pruning curve, the share of kept rows that are ties at the
    cut, and the overlap of the kept sets under the two tie-breaks (index vs seeded random, seed 0)."""
    import csv
    from pathlib import Path

    out = RESULTS / "ties.csv"
    rows = []
    for name in ("el2n", "grand", "forgetting"):
        config, column, _, _ = METHODS[name]
        from datadiet_hub.score_table import read_scores

        # the values the library ranks (forgetting: never_learned rows as +inf), in idx order
        scores = read_scores(load_card_scores(config, Path(card)), column).values.astype(np.float64)
        for fraction in fractions:
            k = round(fraction * len(scores))
            row = {"config": config, "column": column, "fraction": fraction}
            row.update(tied_kept(scores, k))
            rows.append(row)
            logger.info("%s@%s keep %.0f%%: %s", column, config, fraction * 100, row)
    fields = TIE_FIELDS
    from datadiet_hub.atomic import atomic_path

    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def plot(csv_path: str) -> None:
    """Mean test accuracy vs kept fraction per method, error bars one standard error over training seeds: the whole
    range on the left, and on the right the band around full data where the methods that work differ."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import pruning_runs
    from .stats import t_interval

    runs = pruning_runs(Path(csv_path))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    full = runs.get(("all", 1.0))
    full_est = t_interval(full.values()) if full else None
    for ax in axes:
        if full_est:
            ax.axhline(
                full_est.mean,
                color="black",
                linestyle="--",
                linewidth=1,
                label=f"all data ({full_est.mean:.4f}, n={full_est.n})",
            )
        for arm in sorted({a for a, _ in runs} - {"all"}):
            xs = sorted(f for a, f in runs if a == arm)
            ests = [t_interval(runs[(arm, x)].values()) for x in xs]
            errs = [0.0 if e.n < 2 else e.se for e in ests]
            ax.errorbar(xs, [e.mean for e in ests], yerr=errs, marker="o", capsize=3, label=arm)
        ax.set_xlabel("fraction of training set kept")
    axes[0].set_ylabel("test accuracy (mean ± s.e. over seeds)")
    axes[0].set_title("Fashion-MNIST, small CNN, matched iterations")
    axes[0].legend(fontsize=7)
    if full_est:
        axes[1].set_ylim(full_est.mean - 0.03, full_est.mean + 0.01)
        axes[1].set_title("zoom: within 3 points of full data")
    fig.tight_layout()
    fig.savefig(Path(csv_path).with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
