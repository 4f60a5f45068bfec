"""Transfer across architectures: prune with scores from architecture A, train architecture B; compare with B's
own scores and with random at the same fraction (matched on iterations).

    python -m experiments.transfer [--fractions 0.5,0.3] [--seeds 0,1] [--epochs 5]
"""

from __future__ import annotations

import argparse
import logging
import math

from .common import CARD, RESULTS, ResultsCSV, device_name, fashion_mnist, load_card_scores, setup_logging, subset

logger = logging.getLogger("experiments.transfer")
FIELDS = [
    "train_model",
    "scores_from",
    "fraction",
    "seed",
    "test_accuracy",
    "examples",
    "steps",
    "wall_time_s",
    "device",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", default="0.5")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--time", default="ep2", help="score time suffix of the configs (default ep2)")
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    import datadiet_hub
    from datadiet_hub.downstream.train import train_and_evaluate
    from datadiet_hub.scoring.config import ScoringConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models.split(",")
    data = fashion_mnist()
    steps = args.epochs * math.ceil(len(data.train) / 128)
    results = ResultsCSV(RESULTS / "transfer.csv", FIELDS, ["train_model", "scores_from", "fraction", "seed"])
    scores = {m: load_card_scores(f"{m}-{args.time}", CARD) for m in models}
    for train_model in models:
        for fraction in (float(f) for f in args.fractions.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                for source in [*models, "random"]:
                    if results.done(train_model=train_model, scores_from=source, fraction=fraction, seed=seed):
                        continue
                    if source == "random":
                        rows = datadiet_hub.select_indices(
                            scores[train_model], fraction=fraction, strategy="random", seed=seed
                        )
                    else:
                        rows = datadiet_hub.select_indices(scores[source], column="el2n", fraction=fraction)
                    result = train_and_evaluate(
                        ScoringConfig(model=train_model),
                        subset(data.train, rows),
                        data.test,
                        data.preprocess,
                        seed=seed,
                        steps=steps,
                        progress=False,
                    )
                    results.append(
                        {
                            "train_model": train_model,
                            "scores_from": source,
                            "fraction": fraction,
                            "seed": seed,
                            "test_accuracy": f"{result.test_accuracy:.4f}",
                            "examples": result.examples,
                            "steps": steps,
                            "wall_time_s": f"{result.wall_time_s:.1f}",
                            "device": device_name(),
                        }
                    )
                    logger.info(
                        "train %s, scores %s, %.1f, seed %d: %.4f",
                        train_model,
                        source,
                        fraction,
                        seed,
                        result.test_accuracy,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
