"""Causal-LM scoring throughput: ``loss`` + ``el2n`` against a plain eval forward of the same model, and ``grand``
against a plain forward + backward, at context 128 and 512, in tokens per second; ratios from the same run.

    PYTHONPATH=. python benchmarks/lm_scoring.py                       # causal-transformer, vocab 8000, CPU
    PYTHONPATH=. python benchmarks/lm_scoring.py --device cuda --width 4 --tokens 65536

Every batch holds ``--tokens`` real tokens (no padding): batch size = tokens / context. Timings are the median of
``--repeats`` passes after one warm-up pass. Goals (issue 21): loss+el2n <= 1.1x the eval forward, grand <= 1.5x
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


def timed(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="causal-transformer")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--contexts", default="128,512")
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per batch")
    parser.add_argument("--repeats", type=int, default=5)
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

        base_eval = timed(forward, args.repeats, device)
        base_train = timed(forward_backward, args.repeats, device)
        for name, seconds, base in (
            ("eval forward (baseline)", base_eval, base_eval),
            ("loss+el2n", timed(scores, args.repeats, device), base_eval),
            ("forward+backward (baseline)", base_train, base_train),
            ("grand", timed(grand_pass, args.repeats, device), base_train),
        ):
            print(f"{context},{name},{seconds:.4f},{tokens / seconds:.0f},{seconds / base:.2f}")


if __name__ == "__main__":
    main()
