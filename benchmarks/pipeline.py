"""The data pipeline: is memory flat in the number of rows, and what does the DataLoader path cost against the
in-memory path?

1. Peak RSS of scoring a synthetic PNG image set of N rows vs 10 N rows (EL2N at init, a tiny MLP, ``--streaming``
   and map-style): each size runs ``datadiet_hub.scoring.run`` in a fresh subprocess that reports its own peak RSS
   (``ru_maxrss`` of itself) and the peak of its largest DataLoader worker (``RUSAGE_CHILDREN``; a forked worker
   also counts the pages it shares with the main process, so the two are not summed). The ratios 10N / N of both
   are printed; the goal is <= 1.2.
2. End to end on Fashion-MNIST (60k rows, the small CNN, one seed, one epoch of training + EL2N, CPU): the
   DataLoader path (``--data-path loader``) against the in-memory path (``--data-path memory``), each in a fresh
   subprocess, alternated ``--repeats`` times; the ratio of the fastest runs is printed; the goal is <= 1.3.

Both use one torch thread per process and ``--workers`` DataLoader workers (default 1: this machine has 2 cores).

    python benchmarks/pipeline.py                 # 60k vs 600k rows, and Fashion-MNIST
    python benchmarks/pipeline.py --rows 6000     # a quick look: 6k vs 60k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE = 16
SHARD_ROWS = 60_000


def write_png_parquet(folder: Path, rows: int, seed: int = 0) -> list[str]:
    """``rows`` random grey SIDE x SIDE PNG images in 10 classes, as parquet shards of 60k rows with the
    ``datasets`` Image/ClassLabel features (written shard by shard: the generator's memory is flat too)."""
    import io

    import datasets
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"c{k}" for k in range(10)])}
    )
    rng = np.random.default_rng(seed)
    paths = []
    for shard, start in enumerate(range(0, rows, SHARD_ROWS)):
        path = folder / f"train-{shard:05d}.parquet"
        paths.append(str(path))
        if path.exists():
            continue
        n = min(SHARD_ROWS, rows - start)
        labels = rng.integers(0, 10, n)
        pixels = rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8)
        encoded = []
        for array in pixels:
            buffer = io.BytesIO()
            Image.fromarray(array, "L").save(buffer, format="PNG", compress_level=1)
            encoded.append({"bytes": buffer.getvalue(), "path": None})
        table = datasets.Dataset.from_dict({"image": encoded, "label": labels}, features=features)
        from datadiet_hub.atomic import atomic_path

        with atomic_path(path) as tmp:
            table.to_parquet(str(tmp))
    return paths


def child(ns: argparse.Namespace) -> None:
    """One scoring run in this process; prints the config's wall time and the peaks as JSON."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))  # this checkout's code, whatever the environment has installed
    from datadiet_hub.scoring.cli import build_parser, config_from_args
    from datadiet_hub.scoring.run import run, shutdown

    args = json.loads(ns.args)
    cfg = config_from_args(build_parser().parse_args(args))
    started = time.perf_counter()
    run(cfg, progress=False)
    shutdown()
    wall = time.perf_counter() - started
    import gc
    import multiprocessing

    gc.collect()
    multiprocessing.active_children()  # reaps finished workers, so RUSAGE_CHILDREN counts them
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "main_mb": own, "worker_mb": workers}))


def in_subprocess(args: list[str], workers: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DATADIET_NUM_WORKERS": str(workers)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(ns: argparse.Namespace, work: Path) -> list[str]:
    lines = []
    sizes = [ns.rows, 10 * ns.rows]
    for streaming in (True, False):
        peaks: dict[int, tuple[float, float]] = {}
        for rows in sizes:
            files = write_png_parquet(work / f"png-{rows}", rows)
            args = [
                "--dataset", "parquet", "--data-files", ",".join(files), "--model", "mlp", "--width", "0.05",
                "--seeds", "0", "--at", "0", "--scores", "el2n", "--eval-batch-size", "512",
                "--data-path", "loader", "--streaming", str(streaming).lower(),
                "--output-dir", str(work / f"out-{rows}-{streaming}"),
            ]  # fmt: skip
            result = in_subprocess(args, ns.workers)
            peaks[rows] = (result["main_mb"], result["worker_mb"])
            lines.append(
                f"| {'streaming' if streaming else 'map-style'} | {rows:>8} | {result['main_mb']:8.0f} | "
                f"{result['worker_mb']:9.0f} | {result['wall_s']:7.1f} |"
            )
            print(lines[-1], flush=True)
        (main_small, worker_small), (main_large, worker_large) = peaks[sizes[0]], peaks[sizes[1]]
        worker_ratio = f"{worker_large / worker_small:.3f}" if worker_small else "n/a"
        lines.append(
            f"| {'streaming' if streaming else 'map-style'} | ratio {sizes[1]} / {sizes[0]} | "
            f"**{main_large / main_small:.3f}** | **{worker_ratio}** | |"
        )
        print(lines[-1], flush=True)
    return lines


def speed(ns: argparse.Namespace, work: Path) -> list[str]:
    base = [
        "--dataset", "fashion_mnist", "--model", "cnn", "--seeds", "0", "--at", "1", "--scores", "el2n",
        "--augmentation", "none",
    ]  # fmt: skip
    times: dict[str, list[float]] = {"memory": [], "loader": []}
    lines = []
    for repeat in range(ns.repeats):
        for path in ("memory", "loader"):
            out = work / f"fm-{path}-{repeat}"
            result = in_subprocess([*base, "--data-path", path, "--output-dir", str(out)], ns.workers)
            times[path].append(result["wall_s"])
            lines.append(f"| {path} | {repeat} | {result['wall_s']:7.1f} | {result['main_mb']:6.0f} |")
            print(lines[-1], flush=True)
    ratio = min(times["loader"]) / min(times["memory"])
    lines.append(f"| loader / memory (fastest of {ns.repeats}) | | **{ratio:.3f}** | |")
    print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000, help="the small size N (the large one is 10 N)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per run (default 1)")
    parser.add_argument("--repeats", type=int, default=2, help="alternated repeats of the Fashion-MNIST runs")
    parser.add_argument("--skip", choices=["memory", "speed"], help="leave one part out")
    parser.add_argument("--work", help="folder for the data and runs (default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        ns.args = ns.child
        child(ns)
        return
    import torch

    with tempfile.TemporaryDirectory(prefix="pipeline-") as tmp:
        work = Path(ns.work or tmp)
        load = os.getloadavg()
        print(
            f"machine: {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, 1 thread per "
            f"process, {ns.workers} worker(s); load average at start {load[0]:.1f}"
        )
        if ns.skip != "memory":
            print("\n| path | rows | main peak MB | worker peak MB | wall s |")
            print("|---|---|---|---|---|")
            memory(ns, work)
        if ns.skip != "speed":
            print("\n| path | repeat | wall s | main peak MB |")
            print("|---|---|---|---|")
            speed(ns, work)
        print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
