"""Seeds in parallel on the CPU: M seeds trained one at a time (``train_seed``) against the same M seeds trained as one
vectorized model (``train_seeds_together``), in one process, on the same prepared Fashion-MNIST split.

For each model, ``--steps`` optimizer steps (batch ``--batch-size``) of each of ``--seeds`` seeds, checkpoints
included (both paths write the same files); the two paths alternate ``--repeats`` times after one untimed warm-up
of each, so the shared machine's load hits them alike. Printed: the median seconds of each path, the median of the
per-repeat ratios sequential / vectorized (> 1: vectorized is faster), its min and max, and examples/s; rows are
appended to ``--csv``.

    python benchmarks/parallel_seeds.py --models cnn,mlp --seeds 3 --steps 60 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from results_csv import append_rows  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,mlp")
    parser.add_argument("--widths", default="1.0", help="comma-separated width multipliers")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "parallel_seeds.csv"))
    args = parser.parse_args()

    import torch

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.data.prepare import prepare_data
    from datadiet_hub.scoring.parallel import train_seeds_together
    from datadiet_hub.scoring.state import RunState
    from datadiet_hub.scoring.train import Schedule, make_model, train_seed

    work = Path(tempfile.mkdtemp(prefix="datadiet-parallel-seeds-"))
    device = torch.device(args.device)
    seeds = list(range(args.seeds))
    rows = []
    try:
        for width in [float(w) for w in args.widths.split(",")]:
            for name in args.models.split(","):
                cfg = ScoringConfig(
                    output_dir=str(work / "prep"),
                    model=name,
                    width=width,
                    seeds=seeds,
                    at=[args.steps],
                    unit="step",
                    batch_size=args.batch_size,
                    checkpoint_every=10**6,
                )
                state = RunState(cfg.output_dir)
                state.prepare(cfg)
                data = prepare_data(cfg, state.path, progress=False)
                schedule = Schedule.from_config(cfg, len(data))
                schedule = Schedule(schedule.steps_per_epoch, args.steps, (args.steps,))
                size = sum(p.numel() for p in make_model(cfg, data, 0).parameters())

                def sequential(folder: Path) -> None:
                    for seed in seeds:
                        train_seed(cfg, data, seed, schedule, folder, device, progress=False)

                def together(folder: Path) -> None:
                    train_seeds_together(cfg, data, seeds, schedule, folder, device, progress=False)

                def timed(fn) -> float:
                    folder = work / "state"
                    shutil.rmtree(folder, ignore_errors=True)
                    start = time.perf_counter()
                    fn(folder)
                    return time.perf_counter() - start

                timed(sequential), timed(together)  # warm-up
                for repeat in range(args.repeats):
                    seq, par = timed(sequential), timed(together)
                    rows.append(
                        {
                            "device": args.device,
                            "model": name,
                            "width": width,
                            "parameters": size,
                            "seeds": args.seeds,
                            "steps": args.steps,
                            "batch_size": args.batch_size,
                            "repeat": repeat,
                            "sequential_s": round(seq, 4),
                            "vectorized_s": round(par, 4),
                        }
                    )
                    print(
                        f"{name} x{width} repeat {repeat}: sequential {seq:.2f} s, vectorized {par:.2f} s, "
                        f"ratio {seq / par:.2f}",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        "| model | width | parameters | sequential s | vectorized s | speed-up (median, min-max) | examples/s seq / vec |"
    )
    print("|---|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["model"], r["width"]) for r in rows):
        mine = [r for r in rows if (r["model"], r["width"]) == key]
        seq = statistics.median(r["sequential_s"] for r in mine)
        par = statistics.median(r["vectorized_s"] for r in mine)
        ratios = [r["sequential_s"] / r["vectorized_s"] for r in mine]
        examples = args.seeds * args.steps * args.batch_size
        print(
            f"| {key[0]} | {key[1]} | {mine[0]['parameters']:,} | {seq:.2f} | {par:.2f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{examples / seq:.0f} / {examples / par:.0f} |"
        )
    append_rows(args.csv, "python benchmarks/parallel_seeds.py " + " ".join(sys.argv[1:]), rows)


if __name__ == "__main__":
    main()
