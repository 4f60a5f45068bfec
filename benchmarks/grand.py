"""Benchmark: exact per-example gradient norms (GraNd) by four methods, and EL2N, against plain passes.

Usage::

    python benchmarks/grand.py            # full run: cnn and resnet18, batch 32 and 128, 3 timed repeats
    python benchmarks/grand.py --quick    # one repeat, batch 16: a smoke run
    python benchmarks/grand.py --models text-transformer --threads 2   # the text transformer, sequence length 128
    python benchmarks/grand.py --models llama-tiny --methods "plain fwd+bwd,naive loop,ours"

``llama-tiny`` is a ``transformers`` Llama classifier from a tiny config (hidden 64, 2 layers, 4 heads with 2 key/value
heads, vocabulary 1000) on 64 tokens per example; it needs ``transformers``.

Models: the small CNN on 1x28x28, the CIFAR ResNet-18 on 3x32x32 (10 classes, weights at init), and
``text-transformer`` (``datadiet_hub.scoring.transformer.TextTransformer`` at its default size: width 128, 2 pre-norm encoder
layers with 4 heads, feed-forward 512, learned positions; vocabulary 8000, 4 classes) on token ids of length 128
with an attention mask that pads each sequence after 64 to 127 tokens, called with keyword inputs
(``input_ids``, ``attention_mask``) as a ``transformers`` model is.

Timing: everything runs in this one process on the same model and the same batch. Each repeat runs every method
once, in turn, after one untimed warm-up round, so slow drifts of a shared machine hit all methods alike. The table
shows the median seconds over the repeats, and the ratio to the baseline computed within each repeat (the two ran
back to back) as its median and its range over the repeats: on a busy machine the range says how far to trust it.
``--clock cpu`` times each call by this process's CPU time instead of the wall clock: on a machine shared with other
jobs, time-slicing inflates wall times by whatever else runs, while CPU time only counts this process's own work (it
is still inflated by contention for caches and memory bandwidth). Ratios are to a plain forward + backward of the same batch (eval mode, mean loss, weight gradients computed), and
for EL2N to a plain eval-mode forward under ``torch.inference_mode``.

Peak memory: torch's CPU allocations are invisible to tracemalloc, so each method is also run once in a fresh
subprocess (same seed, model and batch) and we report the growth of the process's resident-set high-water mark
(``ru_maxrss``) over its RSS just before the call: the extra memory the method needed at its peak, including
activations, gradients and temporaries but not the model and batch themselves.

Methods: ``naive`` (a forward and backward per example), ``vmap`` (``torch.func.vmap(grad)``, chunks of 8),
``backpack`` (BackPACK ``BatchL2Grad``; only if installed, ``pip install backpack-for-pytorch``), ``ours``
(``datadiet_hub.scoring.metrics.grand.per_example_grad_norms``). Each method's norms are checked against ours.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.forward import Inputs, logits_of
from datadiet_hub.scoring.metrics.el2n import el2n_from_logits
from datadiet_hub.scoring.metrics.grand import per_example_grad_norms
from datadiet_hub.scoring.metrics.reference import naive_grad_norms, vmap_grad_norms
from datadiet_hub.scoring.models import build_model
from datadiet_hub.scoring.placement import place
from datadiet_hub.scoring.transformer import text_transformer

SHAPES = {"cnn": (1, 28), "resnet18": (3, 32)}  # (channels, side): Fashion-MNIST and CIFAR-10 inputs
TEXT = {"vocab_size": 8000, "num_classes": 4, "length": 128}
LLAMA = dict(
    vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, num_labels=4,
)  # fmt: skip
LLAMA_LENGTH = 64
GRAND_METHODS = ["plain fwd+bwd", "naive loop", "vmap(grad) chunk 8", "backpack BatchL2Grad", "ours"]
ABLATIONS = ["ours (input as root)"]
"""Timed only when named in ``--methods``: ``ours (input as root)`` is ours as it was before the backward stopped at
the first layer's output (``grand._rule_on_fresh_input`` answering no: the input image is made a graph root and its
gradient computed)."""
EL2N_METHODS = ["plain eval fwd", "el2n"]


LAYOUT = "scoring"
"""The image models' memory layout: ``scoring`` places them as ``datadiet score`` does (channels-last for 2-d
convolutions on the CPU, ``datadiet_hub.scoring.placement``), or ``contiguous`` / ``channels-last``; every method
of a case times the same placed model."""


def make_case(model_name: str, batch: int) -> tuple[nn.Module, Inputs, torch.Tensor]:
    torch.manual_seed(0)
    if model_name == "llama-tiny":
        import transformers

        config = transformers.LlamaConfig(**LLAMA)
        model = transformers.AutoModelForSequenceClassification.from_config(config)
        ids = torch.randint(1, LLAMA["vocab_size"], (batch, LLAMA_LENGTH))
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return model.eval(), inputs, torch.randint(0, LLAMA["num_labels"], (batch,))
    if model_name == "text-transformer":
        length = TEXT["length"]
        model = text_transformer(vocab_size=TEXT["vocab_size"], num_classes=TEXT["num_classes"], max_length=length)
        mask = (torch.arange(length)[None] < torch.randint(64, length, (batch, 1))).long()
        ids = torch.randint(1, TEXT["vocab_size"], (batch, length)) * mask
        inputs = {"input_ids": ids, "attention_mask": mask}
        return model.eval(), inputs, torch.randint(0, TEXT["num_classes"], (batch,))
    channels, side = SHAPES[model_name]
    model = build_model(model_name, num_classes=10, in_channels=channels, image_size=side).eval()
    wanted = {"scoring": None, "contiguous": False, "channels-last": True}[LAYOUT]
    model = place(model, ScoringConfig(channels_last=wanted), "cpu")
    return model, torch.randn(batch, channels, side, side), torch.randint(0, 10, (batch,))


def make_methods(
    model: nn.Module, x: Inputs, y: torch.Tensor, *, with_backpack: bool = True
) -> dict[str, Callable[[], torch.Tensor | None]]:
    """Zero-argument callables for every available method; BackPACK gets its own extended copy of the model."""

    def plain() -> None:
        F.cross_entropy(logits_of(model, x), y).backward()
        model.zero_grad(set_to_none=True)

    def eval_forward() -> torch.Tensor:
        with torch.inference_mode():
            return logits_of(model, x)

    def el2n() -> torch.Tensor:
        with torch.inference_mode():
            return el2n_from_logits(logits_of(model, x), y)

    methods: dict[str, Callable[[], torch.Tensor | None]] = {
        "plain fwd+bwd": plain,
        "naive loop": lambda: naive_grad_norms(model, x, y),
        "vmap(grad) chunk 8": lambda: vmap_grad_norms(model, x, y, chunk_size=8),
        "ours": lambda: per_example_grad_norms(model, x, y),
        "ours (input as root)": lambda: _input_as_root(model, x, y),
        "plain eval fwd": eval_forward,
        "el2n": el2n,
    }
    backpack_run = _backpack_method(model, x, y) if with_backpack and isinstance(x, torch.Tensor) else None
    if backpack_run is not None:
        methods["backpack BatchL2Grad"] = backpack_run
    return methods


def _input_as_root(model: nn.Module, x: Inputs, y: torch.Tensor) -> torch.Tensor:
    from datadiet_hub.scoring.metrics import grand

    stop_at_output = grand._rule_on_fresh_input
    grand._rule_on_fresh_input = lambda *args: False  # type: ignore[assignment]
    try:
        return per_example_grad_norms(model, x, y)
    finally:
        grand._rule_on_fresh_input = stop_at_output


def _backpack_method(model: nn.Module, x: Inputs, y: torch.Tensor) -> Callable[[], torch.Tensor] | None:
    try:
        from backpack import backpack, extend
        from backpack.extensions import BatchL2Grad
    except ImportError:
        return None
    warnings.filterwarnings("ignore", message="Full backward hook is firing")  # BackPACK's hooks, harmless here
    # BackPACK's converter turns residual adds into modules it knows; if it fails, the method reports the error in
    # the table instead of a time.
    try:
        bp_model = extend(_relu_as_modules(copy.deepcopy(model)).eval(), use_converter=True)
    except Exception as err:  # noqa: BLE001 - any converter failure is a result to report
        message = f"{type(err).__name__} in backpack.extend(use_converter=True): {err}"

        def refuse() -> torch.Tensor:
            raise RuntimeError(message)

        return refuse
    loss_fn = extend(nn.CrossEntropyLoss(reduction="sum"))

    def run() -> torch.Tensor:
        with backpack(BatchL2Grad()):
            loss_fn(bp_model(x), y).backward()
        params = [p for p in bp_model.parameters() if p.requires_grad]
        sq = sum(p.batch_l2 for p in params)
        for p in params:
            del p.batch_l2
        bp_model.zero_grad(set_to_none=True)
        return sq.sqrt()

    return run


def _relu_as_modules(model: nn.Module) -> nn.Module:
    """Same model with each functional ``torch.relu`` call as its own ``nn.ReLU`` module.

    BackPACK 1.7.1's converter crashes with torch 2.13 on repeated functional calls (``_transform_remove_duplicates``
    calls ``get_submodule`` on the builtin ``torch.relu``); modules sidestep that. The numbers are unchanged.
    """
    import torch.fx

    graph_module = torch.fx.symbolic_trace(model)
    for i, node in enumerate(list(graph_module.graph.nodes)):
        if node.op == "call_function" and node.target in (torch.relu, F.relu):
            graph_module.add_submodule(f"relu_{i}", nn.ReLU())
            with graph_module.graph.inserting_after(node):
                replacement = graph_module.graph.call_module(f"relu_{i}", node.args)
            node.replace_all_uses_with(replacement)
            graph_module.graph.erase_node(node)
    graph_module.recompile()
    return graph_module


def time_methods(
    methods: dict[str, Callable], names: list[str], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float] | str]:
    """Seconds per call in every repeat (methods interleaved within each repeat, after one warm-up round); a failing
    method reports its error instead."""
    times: dict[str, list[float]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    for _ in range(repeats + 1):  # the first round is the warm-up
        for name in names:
            if name in failed or name not in methods:
                continue
            start = clock()
            try:
                methods[name]()
            except Exception as err:  # noqa: BLE001 - report it, do not abort the whole benchmark
                failed[name] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
                continue
            times[name].append(clock() - start)
    out: dict[str, list[float] | str] = {}
    for name in names:
        if name not in methods:
            out[name] = "not installed"
        elif name in failed:
            out[name] = failed[name]
        else:
            out[name] = times[name][1:]
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) so that earlier peaks (imports, setup) do not hide ours."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def memory_probe(model_name: str, batch: int, method: str) -> None:
    """Subprocess entry: run one method once and print the RSS high-water growth in bytes as JSON."""
    model, x, y = make_case(model_name, batch)
    methods = make_methods(model, x, y, with_backpack=method.startswith("backpack"))
    if not _reset_peak_rss():
        raise SystemExit("cannot reset the RSS high-water mark (/proc/self/clear_refs); memory not measured")
    before = _rss_bytes()
    methods[method]()
    print(json.dumps({"peak_bytes": max(0, _peak_rss_bytes() - before)}))


def measure_memory(model_name: str, batch: int, method: str) -> float | None:
    cmd = [sys.executable, __file__, "--memory-probe", model_name, str(batch), method]
    cmd += ["--threads", str(torch.get_num_threads()), "--layout", LAYOUT]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]


def check_agreement(methods: dict[str, Callable], reference: torch.Tensor) -> dict[str, float | str]:
    out = {}
    for name in ("naive loop", "vmap(grad) chunk 8", "backpack BatchL2Grad"):
        if name in methods:
            try:
                out[name] = float(((methods[name]() - reference).abs() / reference).max())
            except Exception as err:  # noqa: BLE001 - the timing table reports it too
                out[name] = f"failed ({type(err).__name__})"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, batch 16 only")
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated; default 32,128 (16 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per method (default 3, 1 quick)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method memory subprocesses")
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of: {', '.join(GRAND_METHODS + EL2N_METHODS + ABLATIONS)}",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time (all threads), far less disturbed by other jobs on a "
        "shared machine (use it with --threads 1)",
    )
    parser.add_argument(
        "--layout",
        choices=["scoring", "contiguous", "channels-last"],
        default="scoring",
        help="image models' memory layout: scoring = as `datadiet score` places them (channels-last for 2-d "
        "convolutions on the CPU); default: %(default)s",
    )
    parser.add_argument("--memory-probe", nargs=3, metavar=("MODEL", "BATCH", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global LAYOUT
    LAYOUT = args.layout
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args.memory_probe[0], int(args.memory_probe[1]), args.memory_probe[2])
        return

    chosen = set(args.methods.split(",")) if args.methods else set()
    batches = [int(b) for b in (args.batch_sizes or ("16" if args.quick else "32,128")).split(",")]
    repeats = args.repeats or (1 if args.quick else 3)
    print("# command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(f"# image models' layout: {LAYOUT}")
    print(f"# clock: {'process CPU time (all threads)' if args.clock == 'cpu' else 'wall time'}")
    print(
        f"# median of {repeats} repeat(s) after 1 warm-up; 'x plain' = median over repeats of the ratio to the plain "
        "pass timed in the same repeat, range = its min-max; peak = RSS high-water growth in a fresh subprocess"
    )
    print("# load average at start (1/5/15 min): {:.2f} {:.2f} {:.2f}\n".format(*os.getloadavg()))
    header = f"| {'model':16} | {'batch':>5} | {'method':22} | {'s/batch':>8} | {'examples/s':>10} | {'x plain':>7} |"
    header += f" {'x plain range':>11} |"
    header += f" {'peak MB':>8} | {'x plain peak':>12} |"
    rule = "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"
    notes = []
    print(header)
    print(rule, flush=True)
    for model_name in args.models.split(","):
        for batch in batches:
            model, x, y = make_case(model_name, batch)
            methods = make_methods(model, x, y)
            names = [n for n in GRAND_METHODS + EL2N_METHODS if not chosen or n in chosen]
            names += [n for n in ABLATIONS if n in chosen]
            seconds = time_methods(
                methods, names, repeats, time.process_time if args.clock == "cpu" else time.perf_counter
            )
            memory = {}
            if not args.no_memory:
                memory = {n: measure_memory(model_name, batch, n) for n in names if isinstance(seconds[n], list)}
            agreement = check_agreement(
                {k: v for k, v in methods.items() if k in names}, per_example_grad_norms(model, x, y)
            )
            notes.append(
                f"{model_name} b{batch}: max relative difference to ours: "
                + ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in agreement.items())
            )
            for name in names:
                base = "plain eval fwd" if name in EL2N_METHODS else "plain fwd+bwd"
                print(_row(model_name, batch, name, seconds, memory, base), flush=True)
    print()
    print("\n".join(f"# {note}" for note in notes))
    print("# load average at end (1/5/15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("# EL2N rows: 'x plain' is relative to 'plain eval fwd' (inference_mode); GraNd rows to 'plain fwd+bwd'.")


def _row(model_name: str, batch: int, name: str, seconds: dict, memory: dict, base: str) -> str:
    """Median seconds; the ratio to the baseline per repeat (both ran in that repeat, back to back): its median and
    its range over the repeats."""
    sec = seconds[name]
    if not isinstance(sec, list):
        return f"| {model_name:16} | {batch:>5} | {name:22} | {sec} |"
    median = statistics.median(sec)
    base_sec = seconds.get(base)
    if isinstance(base_sec, list):
        ratios = [a / b for a, b in zip(sec, base_sec, strict=True)]
        ratio, spread = f"{statistics.median(ratios):7.2f}", f"{min(ratios):.2f}-{max(ratios):.2f}"
    else:
        ratio, spread = f"{'-':>7}", "-"
    mem, base_mem = memory.get(name), memory.get(base)
    mem_s = f"{mem / 2**20:8.0f}" if mem is not None else f"{'-':>8}"
    mem_ratio = f"{mem / base_mem:12.2f}" if mem is not None and base_mem else f"{'-':>12}"
    return (
        f"| {model_name:16} | {batch:>5} | {name:22} | {median:8.3f} | {batch / median:10.1f} | {ratio} |"
        f" {spread:>11} | {mem_s} | {mem_ratio} |"
    )


if __name__ == "__main__":
    main()
