"""Command line of the scoring engine: ``accelerate launch -m datadiet_hub.scoring ...`` and ``datadiet score ...``.

Flags map one-to-one to ``ScoringConfig`` fields (``--batch-size`` -> ``batch_size``); ``--config FILE`` (YAML or
JSON) and ``--preset`` fill the rest, flags win. Lists are comma-separated (``--seeds 0,1,2``, ``--at 0,1,2``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from typing import Any

from datadiet_hub._progress import datasets_progress
from datadiet_hub.errors import InvalidArgumentError

from .config import FLAG_HELP, PRESETS, ScoringConfig, field_kinds, read_config_file

EXAMPLES = """examples:
  datadiet score --dataset fashion_mnist --seeds 0,1,2 --at 2 --output-dir runs/fmnist
  datadiet score --scores el2n,grand,forgetting --at 0,1,2 --unit epoch --output-dir runs/fmnist-all
  accelerate launch --quiet -m datadiet_hub.scoring --preset cifar10-paper --output-dir runs/cifar10
  torchrun --nproc_per_node 2 -m datadiet_hub.scoring --model resnet18 --width 0.25 --output-dir runs/r18
  datadiet score --config scoring.yaml --output-dir runs/x     # flags override the file
  datadiet score --dataset ./my_images --image-size 64 --model resnet18 --width 0.25 --output-dir runs/mine
  datadiet score --dataset reviews.csv --output-dir runs/reviews     # text: columns and model detected
  datadiet score --dataset reviews.csv --input-column body --label-column stars --streaming --output-dir runs/r
  datadiet score --dataset corpus.jsonl --output-dir runs/corpus   # text without labels: reference LMs (causal-lm)
  datadiet score --dataset parquet --data-files 'web/*.parquet' --streaming --objective causal-lm \\
      --scores loss,el2n,grand --unit step --at 500 --output-dir runs/web
Rerunning the same command resumes an interrupted run."""


def _parse_list(kind: type):
    def parse(text: str):
        try:
            return [kind(part) for part in text.split(",") if part.strip() != ""]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from err

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def build_parser(prog: str = "datadiet score") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train M seeds briefly and write per-example EL2N / GraNd / forgetting scores as a dataset.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML or JSON file with config fields; flags override it")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), help="a ready recipe (a --config file and flags override it)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress bars, datasets' own included (default: on)",
    )
    parser.add_argument(
        "-v", "--verbose", action=argparse.BooleanOptionalAction, default=False, help="log at INFO level"
    )
    for name, (kind, is_list, _) in field_kinds().items():
        flag = "--" + name.replace("_", "-")
        if is_list:
            parser.add_argument(flag, type=_parse_list(kind), default=None, metavar=f"{kind.__name__.upper()},...")
        elif kind is bool:  # a switch: --streaming / --no-streaming (unset: the config file's or the default)
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=kind, default=None)
    for action in parser._actions:
        name = action.dest
        if name in ScoringConfig.__dataclass_fields__:
            default = ScoringConfig.__dataclass_fields__[name]
            factory: Any = default.default_factory
            value = default.default if default.default is not dataclasses.MISSING else factory()
            text = FLAG_HELP[name]
            action.help = text if value is None and "default:" in text else f"{text} (default: {value})"
    parser.add_argument("--num-seeds", type=int, help="shorthand for --seeds 0,1,...,N-1 (N independent runs)")
    return parser


def config_from_args(ns: argparse.Namespace) -> ScoringConfig:
    flags = {f.name: getattr(ns, f.name) for f in dataclasses.fields(ScoringConfig) if getattr(ns, f.name) is not None}
    if ns.num_seeds is not None:
        if "seeds" in flags:
            raise InvalidArgumentError("Give --seeds or --num-seeds, not both.")
        flags["seeds"] = list(range(ns.num_seeds))
    # Precedence, lowest first: field defaults < --preset < --config file < flags.
    base = dict(PRESETS[ns.preset]) if ns.preset else {}
    if ns.config:
        base.update(read_config_file(ns.config))
    return ScoringConfig(**{**base, **flags})


def main(argv: list[str] | None = None, prog: str = "python -m datadiet_hub.scoring") -> int:
    from datadiet_hub.cli_errors import run_guarded

    parser = build_parser(prog)
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if ns.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def go() -> int:
        from .run import run, shutdown

        cfg = config_from_args(ns)
        command = "datadiet score " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        try:
            with datasets_progress(ns.progress):
                out = run(cfg, progress=ns.progress, command=command)
            main_process = _is_main_process()
        finally:
            shutdown()
        if main_process:
            print(f"Scores written to {out} (load: datasets.load_dataset({str(out)!r}, '<config>', split='train'))")
        return 0

    return run_guarded(go)


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process
