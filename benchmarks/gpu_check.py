"""GPU check (run on a CUDA machine): fast GraNd is exact on the GPU (float64, vs the naive loop) and its cost
relative to a plain forward+backward there, against vmap(grad) measured in the same run.

    python benchmarks/gpu_check.py [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from datadiet_hub.scoring.metrics.grand import per_example_grad_norms
from datadiet_hub.scoring.metrics.reference import naive_grad_norms, vmap_grad_norms
from datadiet_hub.scoring.models import build_model


def timed(fn, repeats: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    for name, channels, side, width in (("cnn", 1, 28, 1.0), ("mlp", 1, 28, 1.0), ("resnet18", 3, 32, 0.25)):
        torch.manual_seed(0)
        model = build_model(name, num_classes=10, in_channels=channels, image_size=side, width=width)
        model = model.to(device, torch.float64)
        x = torch.randn(8, channels, side, side, device=device, dtype=torch.float64)
        y = torch.randint(0, 10, (8,), device=device)
        ours = per_example_grad_norms(model, x, y)
        naive = naive_grad_norms(model, x, y)
        rel = ((ours - naive).abs() / naive.abs()).max().item()
        print(
            f"exactness {name:<9} float64 on cuda: max relative error vs naive loop {rel:.2e}"
            f" ({'OK' if rel <= 1e-6 else 'FAIL'})"
        )
    print(f"\ntiming, float32, batch {args.batch}, fastest of 10 (ratio to a plain forward+backward):")
    for name, channels, side, width in (("cnn", 1, 28, 1.0), ("resnet18", 3, 32, 1.0)):
        torch.manual_seed(0)
        model = build_model(name, num_classes=10, in_channels=channels, image_size=side, width=width).to(device)
        model.eval()
        x = torch.randn(args.batch, channels, side, side, device=device)
        y = torch.randint(0, 10, (args.batch,), device=device)

        def plain():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y, reduction="sum").backward()

        def forward():
            with torch.no_grad():
                model(x)

        base = timed(plain)
        rows = {
            "plain fwd+bwd": base,
            "ours": timed(lambda: per_example_grad_norms(model, x, y)),
            "vmap(grad) chunk 32": timed(lambda: vmap_grad_norms(model, x, y, chunk_size=32), repeats=3),
            "eval forward (EL2N cost)": timed(forward),
        }
        for label, seconds in rows.items():
            print(
                f"  {name:<9} {label:<26} {seconds * 1e3:8.2f} ms  {seconds / base:6.2f}x  "
                f"{args.batch / seconds:10.0f} ex/s"
            )


if __name__ == "__main__":
    main()
