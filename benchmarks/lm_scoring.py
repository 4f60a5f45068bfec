"""Causal-LM scoring throughput: ``loss`` + ``el2n`` against a plain eval forward of the same model, and ``grand``
against a plain forward + backward, at context 128 and 512, in tokens per second; ratios from the same run.

    PYTHONPATH=. python benchmarks/lm_scoring.py                       # causal-transformer, vocab 8000, CPU
    PYTHONPATH=. python benchmarks/lm_scoring.py --clock cpu                       # on a shared machine
    PYTHONPATH=. python benchmarks/lm_scoring.py --device cuda --width 4 --tokens 65536

Every batch holds ``--tokens`` real tokens (no padding): batch size = tokens / context. The same model and batch
serve all four passes, which run in turn ``--repeats`` rounds after a warm-up round; a pass's ratio is the median of
its per-round ratios to its baseline (robust to a machine whose load drifts; min and max printed too, and every
round's ratio at the end), the seconds the medians. ``--clock cpu`` times by process CPU time, for shared machines.
The script also compares the scores it times with float64 formulas on the model's full logits. Goals (issue 21): loss+el2n <= 1.1x the eval forward, grand <= 1.5x
the forward + backward.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datadiet_hub.scoring.forward import logits_of  # noqa: E402
from datadiet_hub.scoring.lm.engine import _token_sums  # noqa: E402
from datadiet_hub.scoring.lm.metrics import IGNORE, lm_loss, next_token_labels  # noqa: E402
from datadiet_hub.scoring.lm.models import build_lm  # noqa: E402
from datadiet_hub.scoring.loops import eval_mode  # noqa: E402
from datadiet_hub.scoring.metrics.registry import WINDOW_COMPUTATIONS  # noqa: E402


def timer(clock: str, device: torch.device) -> Callable[[Callable[[], None]], float]:
    """Seconds of one call by the wall clock, or by this process's CPU time (all threads): on cores shared with
    other jobs the CPU time of a pass does not grow with their load, the wall time does."""
    now = time.process_time if clock == "cpu" else time.perf_counter

    def once(fn: Callable[[], None]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = now()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return now() - start

    return once


def interleaved(passes: dict[str, Callable[[], None]], repeats: int, once: Callable) -> dict[str, list[float]]:
    """Seconds of every pass in each of ``repeats`` rounds; a round runs each pass once, in turn, after one warm-up
    round, so a drift in the machine's load touches a pass and its baseline alike."""
    for fn in passes.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(repeats):
        for name, fn in passes.items():
            times[name].append(once(fn))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="causal-transformer")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--contexts", default="128,512")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per batch")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (at least 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="time by the wall clock or by process CPU time"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's); 1 makes --clock cpu exact"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.repeats < 3:
        parser.error(f"--repeats must be at least 3, got {args.repeats}.")
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} torch {torch.__version__} "
        f"threads {torch.get_num_threads()} device {device}; load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"# model {args.model} width {args.width} vocab {args.vocab}, {args.tokens} tokens per batch")
    print(
        f"# clock: {'process CPU time (all threads)' if args.clock == 'cpu' else 'wall time'}, {args.repeats} rounds"
    )
    print("context,pass,seconds,tokens_per_s,ratio_to_baseline,ratio_min,ratio_max")
    per_token = _token_sums(["loss", "el2n"])
    grand = WINDOW_COMPUTATIONS["grand"].per_batch
    assert grand is not None
    once = timer(args.clock, device)
    notes = []
    for context in (int(c) for c in args.contexts.split(",")):
        model = build_lm(args.model, vocab_size=args.vocab, max_length=context, pad_token_id=0, width=args.width)
        model = model.to(device)
        rows = max(1, args.tokens // context)
        ids = torch.randint(1, args.vocab, (rows, context), device=device)
        mask = torch.ones_like(ids)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": next_token_labels(ids, mask)}
        inputs = {"input_ids": ids, "attention_mask": mask}
        tokens = rows * context

        def forward() -> None:
            with eval_mode(model), torch.no_grad():
                logits_of(model, inputs)

        def scores() -> None:
            with eval_mode(model), torch.no_grad():
                per_token(model, batch)

        def forward_backward() -> None:
            with eval_mode(model):
                model.zero_grad(set_to_none=True)
                lm_loss(logits_of(model, inputs), batch["labels"]).backward()

        def grand_pass() -> None:
            with eval_mode(model):
                grand(model, batch)

        with eval_mode(model), torch.no_grad():  # the timed scores against float64 formulas on the full logits
            fast = per_token(model, batch)
            labels = batch["labels"]
            counted = labels != IGNORE
            z = logits_of(model, inputs).double()
            loss = torch.zeros(labels.shape, dtype=torch.float64)
            el2n = torch.zeros_like(loss)
            loss[counted] = F.cross_entropy(z[counted], labels[counted], reduction="none")
            p = z[counted].softmax(-1)
            p[torch.arange(len(p)), labels[counted]] -= 1  # p - onehot(next token)
            el2n[counted] = p.norm(dim=-1)
            full = torch.stack([counted.sum(1).double(), loss.sum(1), el2n.sum(1)], 1)
            worst = float(((fast.double() - full).abs() / full.abs().clamp_min(1e-12)).max())
            notes.append(
                f"# context {context}: loss+el2n window sums vs float64 formulas, max relative diff {worst:.1e}"
            )
            del z, p
        times = interleaved(
            {"eval": forward, "scores": scores, "train": forward_backward, "grand": grand_pass}, args.repeats, once
        )
        for name, base, label in (
            ("eval", "eval", "eval forward (baseline)"),
            ("scores", "eval", "loss+el2n"),
            ("train", "train", "forward+backward (baseline)"),
            ("grand", "train", "grand"),
        ):
            ratios = [a / b for a, b in zip(times[name], times[base], strict=True)]
            seconds = statistics.median(times[name])
            print(
                f"{context},{label},{seconds:.4f},{tokens / seconds:.0f},{statistics.median(ratios):.2f},"
                f"{min(ratios):.2f},{max(ratios):.2f}",
                flush=True,
            )
            if name != base:
                notes.append(f"# context {context} {label} per-round ratios: {' '.join(f'{r:.2f}' for r in ratios)}")
    for note in notes:
        print(note)
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
