"""Cross-device reproducibility of the shipped card: rerun the card's ``mlp`` command for one seed on this machine
(to epoch 2) and compare each score with the card's per-seed values for that seed (scored on the H200):
Spearman, overlap of the top 10%, max |difference|; the card's seed-to-seed Spearman for the same seed pair
(seed 0 vs 1) is the yardstick for "how close is close".

    python -m experiments.cross_device --threads 1      # ~3 min on one CPU thread

Writes docs/results/cross_device.csv (one row per config and score). Resumable: the scoring run resumes from its
checkpoints under runs/cross-device/.
"""

from __future__ import annotations

import argparse
import logging
import platform
from pathlib import Path

import numpy as np

from .common import CARD, RESULTS, ResultsCSV, load_card_scores, numpy_columns, read_config, setup_logging

logger = logging.getLogger("experiments.cross_device")
FIELDS = [
    "config",
    "score",
    "seed",
    "rows",
    "spearman",
    "top10_overlap",
    "max_abs_diff",
    "exact_equal_share",
    "card_seed0_vs_seed1_spearman",
    "card_device",
    "rerun_device",
    "rerun_torch",
]


def top_overlap(a: np.ndarray, b: np.ndarray, share: float = 0.1) -> float:
    """Share of the top ``share`` rows by ``a`` that are also in the top ``share`` by ``b`` (ties by row index)."""
    k = round(share * len(a))
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    return np.intersect1d(top_a, top_b).size / k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--at", default="0,1,2", help="score times (epochs) to compare")
    parser.add_argument("--workdir", default="runs/cross-device")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.run import run
    from datadiet_hub.stats import spearman

    torch.set_num_threads(args.threads)
    times = [int(t) for t in args.at.split(",")]
    out = Path(args.workdir) / args.model
    # the card's command, restricted to one seed and the first score times (constant learning rate: the first
    # epochs of the 10-epoch run are the same computation)
    cfg = ScoringConfig(
        output_dir=str(out),
        dataset="fashion_mnist",
        model=args.model,
        seeds=[args.seed],
        scores=["el2n", "grand", "forgetting"],
        at=times,
    )
    run(cfg, progress=False)
    results = ResultsCSV(RESULTS / "cross_device.csv", FIELDS, ["config", "score", "seed"])
    for t in times:
        config = f"{args.model}-ep{t}"
        card = numpy_columns(load_card_scores(config, CARD))
        mine = numpy_columns(read_config(out, config))
        assert np.array_equal(card["idx"], mine["idx"])
        for score in ("el2n", "grand", "forgetting"):
            if f"{score}_per_seed" not in card or score not in mine:
                continue
            if results.done(config=config, score=score, seed=args.seed):
                continue
            a = np.stack(card[f"{score}_per_seed"])[:, args.seed].astype(np.float64)
            b = mine[score].astype(np.float64)  # one seed: the mean is that seed's value
            other = np.stack(card[f"{score}_per_seed"])[:, 1 - args.seed if args.seed < 2 else 0].astype(np.float64)
            results.append(
                {
                    "config": config,
                    "score": score,
                    "seed": args.seed,
                    "rows": len(a),
                    "spearman": f"{spearman(a, b):.4f}",
                    "top10_overlap": f"{top_overlap(a, b):.4f}",
                    "max_abs_diff": f"{np.abs(a - b).max():.3g}",
                    "exact_equal_share": f"{np.mean(a.astype(np.float32) == b.astype(np.float32)):.4f}",
                    "card_seed0_vs_seed1_spearman": f"{spearman(a, other):.4f}",
                    "card_device": "NVIDIA H200 (torch 2.11.0+cu130)",
                    "rerun_device": f"CPU {platform.machine()}, {args.threads} thread(s)",
                    "rerun_torch": str(torch.__version__),
                }
            )
            logger.info("%s %s: %s", config, score, results.rows[-1])
    write_tables(results.rows)
    return 0


def table(rows: list[dict[str, str]], indent: str = "") -> str:
    lines = [
        "| config | score | Spearman with the card | top-10% overlap | max abs diff | rows exactly equal | "
        "card: seed 0 vs seed 1 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['config']} | {r['score']} | {r['spearman']} | {r['top10_overlap']} | {r['max_abs_diff']} | "
        f"{float(r['exact_equal_share']):.1%} | {r['card_seed0_vs_seed1_spearman']} |"
        for r in rows
    ]
    first = rows[0] if rows else {}
    head = (
        f"The card's `mlp` command rerun for seed {first.get('seed', 0)} on {first.get('rerun_device', 'CPU')} "
        f"(torch {first.get('rerun_torch', '?')}) against the card's seed-{first.get('seed', 0)} values from "
        f"{first.get('card_device', 'the H200')} (`docs/results/cross_device.csv`, `python -m "
        "experiments.cross_device`; 60,000 rows):"
    )
    return "\n".join([head, "", *lines])


def write_tables(rows: list[dict[str, str]]) -> None:
    """The measured agreement between the card's ``<!-- cross-device -->`` markers (docs/report.md quotes the CSV
    through ``python -m experiments.report``)."""
    from datadiet_hub.card import ScoreCard

    card = ScoreCard.read(CARD / "README.md")
    card.fill("cross-device", table(rows))
    card.save(CARD / "README.md")


if __name__ == "__main__":
    raise SystemExit(main())
