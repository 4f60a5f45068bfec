"""The main job, end to end on the embedded Fashion-MNIST: score the train set with EL2N over several seeds,
publish the scores as ``v1`` in the local store, reload them with plain ``load_dataset``, prune 50% (hardest, via
``datadiet_hub.prune``) and 50% at random (via ``ds.filter(datadiet_hub.keep(...))``), train the same small CNN
on each (and on all data) for the same number of steps, and print test accuracy, examples kept and wall time."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("datadiet.demo")

NAME = "fashion-mnist-datadiet"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datadiet demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  datadiet demo\n  datadiet demo --seeds 5 --score-epochs 2 --train-epochs 5",
    )
    parser.add_argument("--output-dir", default="runs/demo", help="scores, store and results (default: runs/demo)")
    parser.add_argument(
        "--store",
        help="local store to publish v1 to (default: the local store every other command reads, $DATADIET_HOME "
        "or ~/.cache/datadiet, so `datadiet show fashion-mnist-datadiet` works right after the demo)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="scoring seeds (default: 3)")
    parser.add_argument("--score-epochs", type=int, default=2, help="EL2N after this many epochs (default: 2)")
    parser.add_argument(
        "--train-epochs",
        type=int,
        default=3,
        help="downstream training length in epochs of the full set; pruned runs get the same "
        "number of steps (default: 3)",
    )
    parser.add_argument("--fraction", type=float, default=0.5, help="share kept (default: 0.5)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars (default: on)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from datadiet_hub.cli_errors import run_guarded

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("datasets", "accelerate", "httpx", "huggingface_hub", "scoring", "downstream", "datadiet_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from datadiet_hub._progress import datasets_progress

    def go() -> int:
        with datasets_progress(args.progress):
            return demo(args)

    return run_guarded(go)


def demo(args: argparse.Namespace) -> int:
    import datasets
    import torch

    import datadiet_hub
    from datadiet_hub.columns import Columns, InputKind
    from datadiet_hub.errors import VersionExistsError
    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.data import Preprocess, channel_stats, load_tensors
    from datadiet_hub.scoring.run import run
    from datadiet_hub.sources import Source, fashion_mnist_dataset

    from .train import train_and_evaluate

    progress = args.progress
    out = Path(args.output_dir)
    started = time.perf_counter()
    # The demo's 2 cores are best used by one process with all threads.
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    logger.info("1/5 scoring Fashion-MNIST train: EL2N at epoch %d, %d seeds", args.score_epochs, args.seeds)
    t0 = time.perf_counter()
    cfg = ScoringConfig(
        output_dir=str(out / "scores"),
        dataset="fashion_mnist",
        seeds=list(range(args.seeds)),
        scores=["el2n"],
        at=[args.score_epochs],
    )
    run(
        cfg,
        progress=progress,
        command=f"datadiet score --seeds {','.join(map(str, cfg.seeds))} --at "
        f"{args.score_epochs} --output-dir {cfg.output_dir}",
    )
    score_time = time.perf_counter() - t0
    config = f"cnn-ep{args.score_epochs}"

    logger.info("2/5 publishing %s v1 to the local store", NAME)
    store = datadiet_hub.LocalStore(args.store)  # None: the default store, as for load_scores and the CLI
    try:
        info = store.publish(cfg.output_dir, NAME, "v1")
        folder = info.location
    except VersionExistsError:
        folder = str(store.path(NAME, "v1"))
        logger.info("   v1 already published at %s (versions are immutable): reusing it", folder)

    logger.info(
        "3/5 reloading with plain datasets.load_dataset('parquet', data_files=%r)", f"{folder}/data/{config}/*.parquet"
    )
    # the parquet builder with absolute paths: datasets caches load_dataset(<local folder>, config) by the folder's
    # name ("v1") and config, so another dataset's "v1" loaded before would be served instead (README caveat)
    scores = datasets.load_dataset(
        "parquet", data_files=f"{Path(folder).resolve()}/data/{config}/*.parquet", split="train"
    )

    logger.info("4/5 pruning to %.0f%%: hardest by EL2N (prune) and random (filter + keep)", 100 * args.fraction)
    ds = fashion_mnist_dataset("train")
    hardest = datadiet_hub.prune(ds, scores, column="el2n", fraction=args.fraction, strategy="hardest")
    random_half = ds.filter(
        datadiet_hub.keep(scores, fraction=args.fraction, strategy="random", seed=0, dataset=ds),
        with_indices=True,
        batched=True,
    )

    logger.info(
        "5/5 training the same CNN on each, matched on iterations (%d epochs of the full set, cosine learning rate)",
        args.train_epochs,
    )

    def decode(d: Any, split: str) -> Any:
        return load_tensors(
            Source(d, Columns("image", InputKind.IMAGE, "label"), "fashion_mnist", split), progress=progress
        )

    full = decode(ds, "train")
    test = decode(fashion_mnist_dataset("test"), "test")
    mean, std = channel_stats(full.images)
    preprocess = Preprocess(mean, std, "none")
    steps = args.train_epochs * math.ceil(len(full) / cfg.batch_size)
    rows = []
    for label, subset in (
        ("all data", full),
        (f"EL2N hardest {args.fraction:.0%}", decode(hardest, "train")),
        (f"random {args.fraction:.0%}", decode(random_half, "train")),
    ):
        result = train_and_evaluate(cfg, subset, test, preprocess, seed=0, steps=steps, desc=label, progress=progress)
        rows.append(
            {
                "run": label,
                "test_accuracy": result.test_accuracy,
                "examples": result.examples,
                "steps": result.steps,
                "wall_time_s": round(result.wall_time_s, 1),
            }
        )
        logger.info(
            "   %-20s acc %.4f (%d examples, %.0f s)", label, result.test_accuracy, result.examples, result.wall_time_s
        )

    total = time.perf_counter() - started
    summary = {
        "score_config": config,
        "seeds": args.seeds,
        "score_wall_time_s": round(score_time, 1),
        "total_wall_time_s": round(total, 1),
        "store_version": folder,
        "runs": rows,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print()
    print(f"Scores: {folder} (config {config}, {args.seeds} seeds, scored in {score_time:.0f} s)")
    print(f"{'run':<22}{'test acc':>10}{'examples':>10}{'steps':>8}{'wall s':>9}")
    for row in rows:
        print(
            f"{row['run']:<22}{row['test_accuracy']:>10.4f}{row['examples']:>10}{row['steps']:>8}"
            f"{row['wall_time_s']:>9.1f}"
        )
    print(f"Total wall time {total:.0f} s. Results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
