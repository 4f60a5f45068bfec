"""The fixed cost around training: ``datadiet score`` against a bare torch loop doing the same work on the same data.

Both sides run Fashion-MNIST (60,000 rows), the small CNN, one seed, one epoch of SGD (batch 128, lr 0.1, Nesterov
momentum 0.9, weight decay 5e-4) and one EL2N pass (batch 1024) on the CPU, each as a fresh process timed from
start to exit (imports included: a user's script pays them too):

- ``bare``: a script that reads the IDX files with numpy, builds the same CNN, trains and computes EL2N, nothing
  else (no ids, no checkpoints, no dataset written): the loop of issue 22, in torch's default NCHW layout, scoring
  in batches of 1024;
- ``bare_tuned``: the same script with what ``datadiet score`` itself does for speed on the CPU: the model's weights
  channels-last (``datadiet_hub.scoring.placement``) and the EL2N pass in batches of 256 (the default
  ``--eval-batch-size``). ``warm / bare_tuned`` is then the pure fixed cost around training (imports, ids,
  checkpoints, the dataset, the card, its plots);
- ``cold``: ``datadiet score --dataset fashion_mnist --seeds 0 --at 1 --scores el2n`` with an empty cache of
  prepared splits (``DATADIET_DECODED_CACHE`` pointing at a new folder): loads, decodes and hashes every row;
- ``warm``: the same command with the cache an earlier run filled: links the prepared split instead.

The four are interleaved ``--repeats`` times (bare, bare_tuned, cold, warm, bare, ...) so the shared machine's load
hits them alike; the medians, the per-repeat ratios to the bare loops of the same repeat, and their spread are
printed and appended to ``--csv``. Goal (issue 22): the warm run within 1.2x of the bare loop.

``--prepare-only`` times just the preparation of the 60,000 rows (everything between "data path: memory" and the
first training step), in one process, interleaved:

- ``read``: what the bare loop does: the IDX files read with numpy into one uint8 tensor;
- ``before``: the preparation as it was before issue 22, rebuilt here: the source loaded twice (each time
  PNG-encoding 60,000 images with PIL), every image decoded through ``datasets``, ids hashed, channel statistics from
  a float64 copy;
- ``cold`` and ``warm``: ``prepare_data`` now, with an empty cache and with the cache filled.

Goal: preparing 60,000 small images in under 3 s (warm).

    python benchmarks/fixed_cost.py --repeats 5
    python benchmarks/fixed_cost.py --prepare-only --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_csv import append_rows  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]

BARE = r"""
import gzip, os, struct, sys, time
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

root = os.environ.get("DATADIET_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
def idx(path):
    data = gzip.open(path, "rb").read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)
images = torch.from_numpy(idx(f"{root}/train-images-idx3-ubyte.gz").copy())[:, None]
labels = torch.from_numpy(idx(f"{root}/train-labels-idx1-ubyte.gz").astype(np.int64))
x = images.float() / 255.0
mean, std = x.mean(), x.std()
torch.manual_seed(0)
tuned = sys.argv[3] == "tuned"
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(inplace=True), nn.Linear(128, 10),
)
if tuned:
    model = model.to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
model.train()
for start in range(0, min(len(labels), 128 * int(sys.argv[2])), 128):
    idx_ = perm[start:start + 128]
    loss = F.cross_entropy(model((images[idx_].float() / 255.0 - mean) / std), labels[idx_])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
model.eval()
scores = []
eval_batch = 256 if tuned else 1024
with torch.no_grad():
    for start in range(0, len(labels), eval_batch):
        probs = model((images[start:start + eval_batch].float() / 255.0 - mean) / std).softmax(1)
        scores.append((probs - F.one_hot(labels[start:start + eval_batch], 10)).norm(dim=1))
np.save(sys.argv[1], torch.cat(scores).numpy())
"""

COMMAND = ["score", "--dataset", "fashion_mnist", "--seeds", "0", "--at", "1", "--scores", "el2n", "--no-progress"]


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


def prepare_only(repeats: int, csv_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import gzip
    import io
    import struct

    import numpy as np
    import torch

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.data import load_tensors
    from datadiet_hub.scoring.data.prepare import prepare_data
    from datadiet_hub.scoring.state import RunState
    from datadiet_hub.sources import fashion_mnist_files, load_source

    def read() -> None:
        arrays = []
        for path in fashion_mnist_files("train"):
            data = gzip.open(path, "rb").read()
            ndim = data[3]
            shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
            arrays.append(np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape))
        torch.from_numpy(arrays[0].copy())[:, None]

    def before() -> None:
        from PIL import Image

        from datadiet_hub import sources

        def pil_png(images: np.ndarray) -> list[dict]:  # the encoder fashion_mnist_dataset used before
            out = []
            for array in images:
                buffer = io.BytesIO()
                Image.fromarray(array, mode="L").save(buffer, format="PNG", compress_level=1)
                out.append({"bytes": buffer.getvalue(), "path": None})
            return out

        original = sources.grey_png_bytes
        sources.grey_png_bytes = pil_png
        try:
            load_source("fashion_mnist")  # the plan's load
            data = load_tensors(load_source("fashion_mnist"), progress=False)  # the decode's second load
        finally:
            sources.grey_png_bytes = original
        x = data.images.to(torch.float64) / 255.0
        x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))

    def prepare(cache: Path, out: Path) -> None:
        os.environ["DATADIET_DECODED_CACHE"] = str(cache)
        cfg = ScoringConfig(output_dir=str(out), seeds=[0], at=[1], scores=["el2n"])
        state = RunState(out)
        state.prepare(cfg)
        prepare_data(cfg, state.path, progress=False)

    work = Path(tempfile.mkdtemp(prefix="datadiet-prepare-"))
    rows, loads = [], []
    try:
        prepare(work / "warm-cache", work / "fill")
        for repeat in range(repeats):
            times = {}
            for name, fn in (
                ("read", read),
                ("before", before),
                ("cold", lambda: prepare(work / f"cold-{repeat}", work / f"c-{repeat}")),
                ("warm", lambda: prepare(work / "warm-cache", work / f"w-{repeat}")),
            ):
                start = time.perf_counter()
                fn()
                times[name] = time.perf_counter() - start
            rows.append(times)
            loads.append(os.getloadavg()[0])
            print(
                f"repeat {repeat}: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
                + f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nn={len(rows)} repeats; medians (min-max):")
    for name in rows[0]:
        values = [r[name] for r in rows]
        print(f"  {name:7s} {statistics.median(values):7.2f} s ({min(values):.2f}-{max(values):.2f})")
    for name in ("before", "cold"):
        ratios = [r[name] / r["warm"] for r in rows]
        print(f"  {name} / warm: median {statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f})")
    append_rows(
        csv_path,
        f"python benchmarks/fixed_cost.py --prepare-only --repeats {repeats}",
        [
            {"repeat": repeat, **{f"{k}_s": round(v, 3) for k, v in r.items()}, "load1": f"{loads[repeat]:.1f}"}
            for repeat, r in enumerate(rows)
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prepare-only", action="store_true", help="time the preparation of the rows only")
    parser.add_argument(
        "--steps", type=int, default=469, help="training steps (469 = one epoch); fewer keep every fixed cost"
    )
    parser.add_argument("--csv", default=None, help="default: benchmarks/results/fixed_cost[_prepare].csv")
    args = parser.parse_args()
    results = ROOT / "benchmarks" / "results"
    if args.prepare_only:
        prepare_only(args.repeats, Path(args.csv or results / "fixed_cost_prepare.csv"))
        return
    args.csv = args.csv or str(results / "fixed_cost.csv")
    command = COMMAND if args.steps == 469 else [*COMMAND[:6], str(args.steps), "--unit", "step", *COMMAND[7:]]
    work = Path(tempfile.mkdtemp(prefix="datadiet-fixed-cost-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_CACHE": str(work / "hf")}
    datadiet = [sys.executable, "-m", "datadiet_hub.cli"]
    warm_cache = work / "warm-cache"
    try:
        # fill the warm cache once (not timed)
        timed(
            datadiet + COMMAND + ["--output-dir", str(work / "fill")],
            {**env, "DATADIET_DECODED_CACHE": str(warm_cache)},
            work,
        )
        rows = []
        for repeat in range(args.repeats):
            bare = timed([sys.executable, "-c", BARE, str(work / "bare.npy"), str(args.steps), "plain"], env, work)
            tuned = timed([sys.executable, "-c", BARE, str(work / "tuned.npy"), str(args.steps), "tuned"], env, work)
            cold_cache = work / f"cold-cache-{repeat}"
            cold = timed(
                datadiet + command + ["--output-dir", str(work / f"cold-{repeat}")],
                {**env, "DATADIET_DECODED_CACHE": str(cold_cache)},
                work,
            )
            warm = timed(
                datadiet + command + ["--output-dir", str(work / f"warm-{repeat}")],
                {**env, "DATADIET_DECODED_CACHE": str(warm_cache)},
                work,
            )
            shutil.rmtree(cold_cache, ignore_errors=True)
            row = {
                "steps": args.steps,
                "repeat": repeat,
                "bare_s": round(bare, 2),
                "bare_tuned_s": round(tuned, 2),
                "cold_s": round(cold, 2),
                "warm_s": round(warm, 2),
                "load1": f"{os.getloadavg()[0]:.1f}",
            }
            rows.append(row)
            print(
                f"repeat {repeat}: bare {bare:.1f} s, bare_tuned {tuned:.1f} s, cold {cold:.1f} s ({cold / bare:.2f}x), "
                f"warm {warm:.1f} s ({warm / bare:.2f}x; {warm / tuned:.2f}x bare_tuned)",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nn={len(rows)} repeats, {os.cpu_count()} CPUs, torch threads default, {platform.platform()}")
    for name in ("bare", "bare_tuned", "cold", "warm"):
        print(f"{name:10s}  median {statistics.median(r[name + '_s'] for r in rows):6.1f} s")
    for run_name in ("cold", "warm"):
        for base in ("bare", "bare_tuned"):
            ratios = [r[run_name + "_s"] / r[base + "_s"] for r in rows]
            print(
                f"{run_name} / {base}: median {statistics.median(ratios):.2f}x "
                f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
            )
    append_rows(args.csv, f"python benchmarks/fixed_cost.py --repeats {args.repeats} --steps {args.steps}", rows)


if __name__ == "__main__":
    main()
