"""Benchmark: the activation-memory estimates of ``datadiet_hub.scoring.memory`` against the measured peak.

Usage::

    python benchmarks/memory_estimates.py > benchmarks/results/memory_estimates.txt

For the small CNN on 1x28x28 and the CIFAR ResNet-18 on 3x32x32 and 3x64x64 (channels-last, as ``datadiet score``
places them on the CPU), each of three passes (a training step, an eval forward under ``inference_mode``, our GraNd
pass) runs once in a fresh subprocess; the peak is the growth of the resident-set high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs``) over the RSS just before the pass. The table gives it next to the estimate, and
the ratio of the measured peak to the leaf outputs' sum (training, GraNd) or largest output (eval): the factors the
estimates use must stay above these.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datadiet_hub.scoring import memory
from datadiet_hub.scoring.metrics.grand import per_example_grad_norms
from datadiet_hub.scoring.models import build_model

CASES = [("cnn", 1, 28, 128), ("resnet18", 3, 32, 128), ("resnet18", 3, 64, 32)]
PASSES = ("train", "eval", "grand")


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(text.split(f"{field}:")[1].split()[0]) * 1024


def probe(name: str, channels: int, side: int, batch: int, what: str) -> None:
    """In a fresh process: print the peak growth of one pass, and the one-example sizes."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=channels, image_size=side).eval()
    model = model.to(memory_format=torch.channels_last)
    x, y = torch.randn(batch, channels, side, side), torch.randint(0, 10, (batch,))
    sizes = memory.activation_sizes(model, {"pixel_values": x})
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    if what == "train":
        F.cross_entropy(model.train()(x), y).backward()
    elif what == "eval":
        with torch.inference_mode():
            model(x)
    else:
        per_example_grad_norms(model, x, y)
    print(_status("VmHWM") - before, sizes.total, sizes.largest)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        name, channels, side, batch, what = sys.argv[2:]
        probe(name, int(channels), int(side), int(batch), what)
        return
    print(f"# python benchmarks/memory_estimates.py; torch {torch.__version__}, one thread, channels-last")
    print("| model | input | batch | pass | measured peak MB | estimate MB | measured / leaf outputs |")
    print("|---|---|---|---|---|---|---|")
    for name, channels, side, batch in CASES:
        for what in PASSES:
            args = [name, str(channels), str(side), str(batch), what]
            out = subprocess.run(
                [sys.executable, __file__, "--probe", *args], capture_output=True, text=True, check=True
            ).stdout.split()
            peak, total, largest = (int(v) for v in out[-3:])
            sizes = memory.ActivationSizes(total=total, largest=largest)
            estimate = sizes.training(batch) if what == "train" else sizes.scoring(batch, grad=what == "grand")
            base = largest if what == "eval" else total
            print(
                f"| {name} | {channels}x{side}x{side} | {batch} | {what} | {peak / 2**20:.0f} | "
                f"{estimate / 2**20:.0f} | {peak / (base * batch):.2f}x {'largest' if what == 'eval' else 'sum'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
