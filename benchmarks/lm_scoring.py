"""Causal-LM scoring throughput: ``loss`` + ``el2n`` against a plain eval forward of the same model, and ``grand``
against a plain forward + backward, at context 128 and 512, in tokens per second; ratios from the same run.

    PYTHONPATH=. python benchmarks/lm_scoring.py                       # causal-transformer, vocab 8000, CPU
    PYTHONPATH=. python benchmarks/lm_scoring.py --device cuda --width 4 --tokens 65536

Every batch holds ``--tokens`` real tokens (no padding): batch size = tokens / context. Each pass alternates with
its baseline ``--repeats`` times after a warm-up; the ratio is the median of the per-repeat ratios (robust to a
machine whose load drifts), the seconds the medians. Goals (issue 21): loss+el2n <= 1.1x the eval forward, grand <= 1.5x
the forward + backward.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datadiet_hub.scoring.lm.engine import _token_sums  # noqa: E402
from datadiet_hub.scoring.lm.metrics import lm_loss, next_token_labels  # noqa: E402
from datadiet_hub.scoring.lm.models import build_lm  # noqa: E402
from datadiet_hub.scoring.loops import eval_mode  # noqa: E402
from datadiet_hub.scoring.metrics.registry import WINDOW_COMPUTATIONS  # noqa: E402


def once(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paired(
    base: Callable[[], None], other: Callable[[], None], repeats: int, device: torch.device
) -> tuple[float, float, float]:
    """Median seconds of ``base`` and ``other`` and the median of their per-repeat ratios: the two alternate, so a
    machine whose load drifts (shared cores) slows both sides of each ratio alike."""
    base(), other()  # warm-up
    pairs = [(once(base, device), once(other, device)) for _ in range(repeats)]
    return (
        statistics.median(a for a, _ in pairs),
        statistics.median(b for _, b in pairs),
        statistics.median(b / a for a, b in pairs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="causal-transformer")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--contexts", default="128,512")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per batch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()} torch {torch.__version__} "
        f"threads {torch.get_num_threads()} device {device}"
    )
    print(f"# model {args.model} width {args.width} vocab {args.vocab}, {args.tokens} tokens per batch")
    print("context,pass,seconds,tokens_per_s,ratio_to_baseline")
    per_token = _token_sums(["loss", "el2n"])
    grand = WINDOW_COMPUTATIONS["grand"].per_batch
    assert grand is not None
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
                model(**inputs)

        def scores() -> None:
            with eval_mode(model), torch.no_grad():
                per_token(model, batch)

        def forward_backward() -> None:
            with eval_mode(model):
                model.zero_grad(set_to_none=True)
                lm_loss(model(**inputs), batch["labels"]).backward()

        def grand_pass() -> None:
            with eval_mode(model):
                grand(model, batch)

        eval_s, scores_s, scores_ratio = paired(forward, scores, args.repeats, device)
        train_s, grand_s, grand_ratio = paired(forward_backward, grand_pass, args.repeats, device)
        for name, seconds, ratio in (
            ("eval forward (baseline)", eval_s, 1.0),
            ("loss+el2n", scores_s, scores_ratio),
            ("forward+backward (baseline)", train_s, 1.0),
            ("grand", grand_s, grand_ratio),
        ):
            print(f"{context},{name},{seconds:.4f},{tokens / seconds:.0f},{ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
