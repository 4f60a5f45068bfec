"""Benchmark: the three exact per-example norm methods for one convolution, layer by layer, and the cost model's pick.

Usage::

    python benchmarks/grand_conv_methods.py                      # batch 32, 5 repeats, one thread, CPU time
    python benchmarks/grand_conv_methods.py --batch 128 --repeats 3

For every convolution call of the registry's small CNN (1x28x28), the CIFAR ResNet-18 (3x32x32), the same ResNet-18
on 3x64x64 inputs, and a few shapes none of them has (a 5-tap text convolution, a depthwise and a 5x5 layer), it
captures the layer's real input and output gradient in one plain pass, then times
``_grand_layers.conv_sq_norms(..., method=m)`` for each applicable method ``m`` (``materialize``, ``ghost``,
``input_gram``; one estimated at over ``--skip-ratio`` times the cheapest is left untimed, shown as ``-``), the
column ``batch as groups`` (``materialize`` without per-example calls), and, as the baseline, the batch weight
gradient a plain backward computes for the same layer (``aten.convolution_backward`` with only the weight gradient
asked for): GraNd replaces that work with its own.

Each row says which method is fastest, which one ``conv_method`` picks from the shapes, and the picked method's time
over the fastest. The totals compare the pick with the rule used before the input Gram existed (ghost when
``T*(d+p) <= d*p``, else materialize with the batch as groups) and with the batch weight gradients. The timed
methods' norms are checked against each other. Timing: process CPU time, the fastest of ``--repeats`` runs after a
warm-up, all in this one process.
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datadiet_hub.scoring.metrics import _grand_layers as layers
from datadiet_hub.scoring.models import build_model

METHODS: tuple[layers.ConvMethod, ...] = ("materialize", "ghost", "input_gram")
COLUMNS = ("batch as groups", *METHODS)
"""``batch as groups``: ``materialize`` with every layer folded into one weight-gradient call
(``_grand_layers.per_example_calls`` answering no), the one way it ran before; not a pick of its own."""


def captured_convs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Conv2d, torch.Tensor, torch.Tensor]]:
    """(name, conv, input, output gradient) for every convolution call of one plain forward + backward."""
    seen: list[tuple[str, nn.Module, list[torch.Tensor]]] = []

    def hook(name: str, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        pair = [args[0].detach()]
        output.register_hook(lambda g: pair.append(g.detach()))
        seen.append((name, module, pair))

    handles = [
        m.register_forward_hook(lambda mod, args, out, name=name: hook(name, mod, args, out))
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd)
    ]
    out = model(x)
    F.cross_entropy(out, torch.zeros(len(x), dtype=torch.long), reduction="sum").backward()
    for h in handles:
        h.remove()
    model.zero_grad(set_to_none=True)
    return [(name, mod, a, g) for name, mod, (a, g) in seen]  # type: ignore[misc]


def extra_cases(batch: int, channels_last: bool) -> list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]]:
    """Shapes the registry models lack, on random inputs and output gradients."""
    specs = [
        ("conv1d k5 128ch L256", nn.Conv1d(128, 128, 5, padding=2), (256,)),
        ("depthwise 128ch 16x16", nn.Conv2d(128, 128, 3, padding=1, groups=128), (16, 16)),
        ("5x5 32->64 24x24", nn.Conv2d(32, 64, 5, padding=2), (24, 24)),
        ("3x3 s2 no-pad 64->64 15x15", nn.Conv2d(64, 64, 3, stride=2), (15, 15)),
    ]
    cases = []
    for name, conv, spatial in specs:
        a = torch.randn(batch, conv.in_channels, *spatial)
        if channels_last and a.dim() == 4:
            conv, a = conv.to(memory_format=torch.channels_last), a.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            g = torch.randn_like(conv(a))  # same memory format as the output
        cases.append((name, conv, a, g))
    return cases


def fastest(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def batch_weight_grad(conv: nn.modules.conv._ConvNd, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    padding = list(conv.padding) if not isinstance(conv.padding, str) else [0] * (a.dim() - 2)
    if isinstance(conv.padding, str):
        a = layers._pad_like_module(conv, a)
    return torch.ops.aten.convolution_backward(
        g, a, conv.weight, None, list(conv.stride), padding, list(conv.dilation), False, [0] * (a.dim() - 2),
        conv.groups, [False, True, False],
    )[1]  # fmt: skip


def old_rule(conv: nn.modules.conv._ConvNd, out_spatial: tuple[int, ...]) -> layers.ConvMethod:
    """The choice before the input Gram: ghost when it needs fewer multiply-adds than materializing."""
    t = math.prod(out_spatial)
    d, p = conv.weight[0].numel(), conv.out_channels // conv.groups
    return "ghost" if t * (d + p) <= d * p else "materialize"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--skip-ratio", type=float, default=20.0,
        help="leave untimed ('-') a method whose estimated cost is over this multiple of the cheapest estimate "
        "(ghost and input Gram on 64x64 stage-1 layers take seconds per call)",
    )  # fmt: skip
    parser.add_argument(
        "--layout", choices=("contiguous", "channels-last"), default="contiguous",
        help="memory layout of the models and inputs (datadiet score puts 2-d conv models channels-last on the CPU)",
    )  # fmt: skip
    parser.add_argument("--output", type=Path, help="also write the printed table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    channels_last = args.layout == "channels-last"

    groups: dict[str, list] = {}
    for model_name, channels, side in (("cnn", 1, 28), ("resnet18", 3, 32), ("resnet18", 3, 64)):
        model = build_model(model_name, num_classes=10, in_channels=channels, image_size=side).eval()
        x = torch.randn(args.batch, channels, side, side)
        if channels_last:
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        groups[f"{model_name} {side}x{side}"] = captured_convs(model, x)
    groups["other shapes"] = extra_cases(args.batch, channels_last)

    lines = [
        f"# command: python benchmarks/grand_conv_methods.py {shlex.join(sys.argv[1:])}".rstrip(),
        f"# torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}, python {platform.python_version()}",
        f"# layout {args.layout}; batch {args.batch}; process CPU time, fastest of {args.repeats} after a warm-up; ms per layer call",
        "",
        "| group | layer | in | T | d | p | batch wgrad | batch as groups | materialize | ghost | input_gram | fastest "
        "| picked | picked/fastest |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    totals: dict[str, dict[str, float]] = {}
    for group, cases in groups.items():
        total = totals.setdefault(group, {"batch wgrad": 0.0, "picked": 0.0, "old rule": 0.0, "fastest": 0.0})
        for name, conv, a, g in cases:
            in_spatial, out_spatial = tuple(a.shape[2:]), tuple(g.shape[2:])
            times: dict[str, float] = {}
            norms = {}
            costs = layers.conv_costs(conv, in_spatial, out_spatial)
            for method in METHODS:
                if method not in costs or costs[method] > args.skip_ratio * min(costs.values()):
                    continue
                norms[method] = layers.conv_sq_norms(conv, a, g, method=method)
                times[method] = fastest(lambda m=method: layers.conv_sq_norms(conv, a, g, method=m), args.repeats)
            if "materialize" in times:
                chooser = layers.per_example_calls
                layers.per_example_calls = lambda a, g, macs: False  # type: ignore[assignment]
                norms["batch as groups"] = layers.conv_sq_norms(conv, a, g, method="materialize")
                times["batch as groups"] = fastest(
                    lambda: layers.conv_sq_norms(conv, a, g, method="materialize"), args.repeats
                )
                layers.per_example_calls = chooser
            first, reference = next(iter(norms.items()))
            for method, value in norms.items():
                error = ((value - reference).abs() / reference.abs().clamp_min(1e-30)).max().item()
                if error > 1e-3:
                    raise AssertionError(f"{group} {name}: {method} differs from {first} by {error:.1e}")
            wgrad = fastest(lambda: batch_weight_grad(conv, a, g), args.repeats)
            picked = layers.conv_method(conv, in_spatial, out_spatial)
            best = min((m for m in times if m in METHODS), key=times.__getitem__)
            total["batch wgrad"] += wgrad
            total["picked"] += times[picked]
            before = old_rule(conv, out_spatial)
            total["old rule"] += times.get("batch as groups" if before == "materialize" else before, math.nan)
            total["fastest"] += times[best]
            cells = " | ".join(f"{times[m] * 1e3:.2f}" if m in times else "-" for m in COLUMNS)
            row = (
                f"| {group} | {name} | {'x'.join(map(str, in_spatial))} | {math.prod(out_spatial)} | "
                f"{conv.weight[0].numel()} | {conv.out_channels // conv.groups} | {wgrad * 1e3:.2f} | {cells} | "
                f"{best} | {picked} | {times[picked] / times[best]:.2f} |"
            )
            lines.append(row)
            print(row, flush=True)
    lines += ["", "| group | batch wgrad ms | picked ms | old rule ms | fastest ms | picked / batch wgrad "
              "| old rule / batch wgrad |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for group, t in totals.items():
        lines.append(
            f"| {group} | {t['batch wgrad'] * 1e3:.1f} | {t['picked'] * 1e3:.1f} | {t['old rule'] * 1e3:.1f} | "
            f"{t['fastest'] * 1e3:.1f} | {t['picked'] / t['batch wgrad']:.2f} | {t['old rule'] / t['batch wgrad']:.2f} |"
        )
    print("\n".join(lines[-(len(totals) + 3) :]))
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
