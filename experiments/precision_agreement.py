"""How far ``--precision bf16`` moves the scores: the same scoring run in float32 and under bfloat16 autocast, compared
per seed and config with Spearman's rank correlation (95% interval by the Fisher z-transform with the
Fieller-Hartley-Pearson variance 1.06 / (n - 3)) and the overlap of the top 10% (95% Wilson interval over those
rows). The float32 seed-to-seed Spearman of the same run is the yardstick: bf16 is harmless when it moves the
ranking much less than changing the seed does.

    python -m experiments.precision_agreement --rows 5000 --seeds 0,1 --at 0,1

Data: the first ``--rows`` rows of Fashion-MNIST's training split (written once as a parquet file under
``--workdir``), the small CNN. Writes docs/results/precision_agreement.csv (one row per config, score and seed);
resumable: both scoring runs resume from their checkpoints under ``--workdir``.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
from pathlib import Path

import numpy as np

from .common import RESULTS, ResultsCSV, numpy_columns, read_config, setup_logging

logger = logging.getLogger("experiments.precision_agreement")
FIELDS = [
    "config",
    "score",
    "seed",
    "rows",
    "spearman",
    "spearman_lo",
    "spearman_hi",
    "top10_overlap",
    "top10_lo",
    "top10_hi",
    "max_abs_diff",
    "fp32_seed_vs_seed_spearman",
    "device",
    "torch",
    "command",
]


def top_overlap(a: np.ndarray, b: np.ndarray, share: float = 0.1) -> tuple[float, int]:
    """Share of the top ``share`` rows by ``a`` also in the top ``share`` by ``b`` (ties by row index), and k."""
    k = max(1, round(share * len(a)))
    top_a = np.argsort(-a, kind="stable")[:k]
    top_b = np.argsort(-b, kind="stable")[:k]
    return np.intersect1d(top_a, top_b).size / k, k


def spearman_interval(rho: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% interval of Spearman's rho: Fisher z with variance 1.06 / (n - 3) (Fieller, Hartley and Pearson)."""
    if n <= 3 or abs(rho) >= 1:
        return rho, rho
    centre, half = math.atanh(rho), z * math.sqrt(1.06 / (n - 3))
    return math.tanh(centre - half), math.tanh(centre + half)


def wilson(share: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``share`` of ``n``."""
    denom = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denom
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--at", default="0,1", help="score times (epochs)")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--workdir", default="runs/precision")
    args = parser.parse_args(argv)
    setup_logging()
    import torch

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.run import run
    from datadiet_hub.sources import fashion_mnist_dataset
    from datadiet_hub.stats import spearman

    work = Path(args.workdir)
    data = work / f"fashion-mnist-{args.rows}.parquet"
    if not data.exists():
        work.mkdir(parents=True, exist_ok=True)
        fashion_mnist_dataset("train").select(range(args.rows)).to_parquet(str(data))
    seeds = [int(s) for s in args.seeds.split(",")]
    times = [int(t) for t in args.at.split(",")]
    outs = {}
    for precision in ("fp32", "bf16"):
        outs[precision] = work / f"{args.model}-{args.rows}-{precision}"
        cfg = ScoringConfig(
            output_dir=str(outs[precision]),
            dataset=str(data),
            model=args.model,
            seeds=seeds,
            scores=["el2n", "grand"],
            at=times,
            precision=precision,
        )
        run(cfg, progress=False)
    results = ResultsCSV(RESULTS / "precision_agreement.csv", FIELDS, ["config", "score", "seed"])
    command = f"python -m experiments.precision_agreement --rows {args.rows} --seeds {args.seeds} --at {args.at}"
    for t in times:
        config = f"{args.model}-ep{t}"
        full, half = (numpy_columns(read_config(outs[p], config)) for p in ("fp32", "bf16"))
        assert np.array_equal(full["idx"], half["idx"])
        for score in ("el2n", "grand"):
            a_all = np.stack(full[f"{score}_per_seed"]).astype(np.float64)
            b_all = np.stack(half[f"{score}_per_seed"]).astype(np.float64)
            for j, seed in enumerate(seeds):
                if results.done(config=config, score=score, seed=seed):
                    continue
                a, b = a_all[:, j], b_all[:, j]
                rho = spearman(a, b)
                lo, hi = spearman_interval(rho, len(a))
                overlap, k = top_overlap(a, b)
                o_lo, o_hi = wilson(overlap, k)
                other = a_all[:, (j + 1) % len(seeds)] if len(seeds) > 1 else a
                results.append(
                    {
                        "config": config,
                        "score": score,
                        "seed": seed,
                        "rows": len(a),
                        "spearman": f"{rho:.4f}",
                        "spearman_lo": f"{lo:.4f}",
                        "spearman_hi": f"{hi:.4f}",
                        "top10_overlap": f"{overlap:.4f}",
                        "top10_lo": f"{o_lo:.4f}",
                        "top10_hi": f"{o_hi:.4f}",
                        "max_abs_diff": f"{np.abs(a - b).max():.3g}",
                        "fp32_seed_vs_seed_spearman": f"{spearman(a, other):.4f}" if len(seeds) > 1 else "",
                        "device": f"CPU {platform.machine()}",
                        "torch": str(torch.__version__),
                        "command": command,
                    }
                )
                logger.info("%s %s seed %d: %s", config, score, seed, results.rows[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
