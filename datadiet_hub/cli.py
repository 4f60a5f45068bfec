"""``datadiet``: score, publish, list, inspect, compare and prune score datasets from the shell.

One argparse entry point with a subcommand per verb, like ``datasets-cli`` / ``hf``. Every subcommand's help
shows example calls. Known user and environment errors print one ``error:`` line and exit with their own code
(``cli_errors``: 2 bad input, 3 not found, 4 already exists, 5 network, 6 HTTP status, 7 disk); anything else is a
bug and shows its traceback; ``DATADIET_DEBUG=1`` shows the traceback of any error.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from pathlib import Path

import numpy as np

from . import runtime, strategies
from ._examples_table import markdown_table
from ._examples_write import render_examples
from ._join import JOIN_KEYS, provenance_for
from ._output import check_output, output_format, write_dataset
from ._progress import datasets_progress
from ._torch_verbs import run_verb
from ._version import __version__
from .align import MISSING_POLICIES, VERIFY_MODES, scored_columns
from .cli_errors import EXIT_CODES_HELP, run_guarded
from .compare import compare_scores, format_comparison
from .errors import InvalidArgumentError, ScoresNotFoundError
from .examples import DEFAULT_MAX_CHARS, DEFAULT_PER_GROUP, SUFFIXES, collect_examples, score_column
from .hub import push_version
from .loading import load_scores
from .pruning import prune
from .resolve import HUB, resolve
from .schema import metrics_in
from .selection import Selection
from .sources import load_source
from .store import LocalStore, default_root

logger = logging.getLogger(__name__)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _sub(subparsers, name: str, help_text: str, examples: list[str]) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_examples(*examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", metavar="DIR", help="local store folder (default: $DATADIET_HOME, else ~/.cache/datadiet)"
    )


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions like 0.1,0.5, got {text!r}") from None


# -- score ---------------------------------------------------------------------------------------------------------


def cmd_score(argv: list[str]) -> int:
    return run_guarded(lambda: run_verb("score", argv))


def cmd_demo(argv: list[str]) -> int:
    return run_guarded(lambda: run_verb("demo", argv))


# -- publish / versions ----------------------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.repo_id is None):
        raise InvalidArgumentError(
            "Give exactly one target: --name NAME (local store) or --repo-id USER/NAME (the Hub)."
        )
    if args.repo_id is not None:
        result = push_version(
            args.scores_dir, args.repo_id, args.version, private=args.private, as_branch=args.branch, force=args.force
        )
        print(result.describe())
        print(result.url)
        return 0
    if args.private or args.branch or args.force:
        raise InvalidArgumentError(
            "--private, --branch and --force apply to --repo-id (the Hub); local versions are immutable."
        )
    info = LocalStore(args.store).publish(args.scores_dir, args.name, args.version)
    print(f"Published {args.name} {info.name} -> {info.location} (configs: {', '.join(info.configs)})")
    print(f"Load it: datasets.load_dataset({info.location!r}, {info.configs[0]!r}, split='train')")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    place = resolve(args.name, store=args.store, local=args.local)
    versions, where = place.versions(), place.describe()
    if not versions:
        raise ScoresNotFoundError(
            f"No versions of {args.name!r} in {where}. Check the name (`ls {place.store.root}` lists the local "
            "store) or publish one with `datadiet publish`."
            if place.store is not None
            else f"No versions of {args.name!r} in {where}; publish one with `datadiet publish`.",
            value=args.name,
        )
    for v in versions:
        location = v.location if v.kind == "folder" else v.location[:12]
        print(f"{v.name:<10} {v.kind:<6} {location}  configs={','.join(v.configs)}  {v.summary()}")
    return 0


# -- show / diff ------------------------------------------------------------------------------------------------------


def _parse_ref(ref: str, default_config: str | None) -> tuple[str, str | None, str | None]:
    """``REPO_OR_DIR[@VERSION][:CONFIG]`` -> (location, version, config)."""
    location, config = ref, default_config
    if ":" in ref and not Path(ref).exists():
        location, config = ref.rsplit(":", 1)
    version = None
    if "@" in location and not Path(location).exists():
        location, version = location.rsplit("@", 1)
    return location, version, config


def cmd_show(args: argparse.Namespace) -> int:
    if args.examples is not None:
        return show_examples(args)
    scores = load_scores(args.scores, args.config, args.version, store=args.store)
    print(f"{args.scores} ({len(scores)} rows) columns: {', '.join(scores.column_names)}")
    metrics = metrics_in(scores.column_names)
    table = scores.select_columns(["idx", *metrics]).with_format("numpy")[:]
    print(f"{'metric':<12}{'min':>10}{'p10':>10}{'median':>10}{'p90':>10}{'max':>10}{'mean':>10}")
    for metric in metrics:
        v = table[metric].astype(float)
        q = np.percentile(v, [0, 10, 50, 90, 100])
        print(f"{metric:<12}" + "".join(f"{x:>10.4f}" for x in (*q, v.mean())))
    column = args.column or (metrics[0] if metrics else None)
    if column and args.top:
        order = np.argsort(-table[column], kind="stable")[: args.top]
        print(
            f"hardest {args.top} by {column}: "
            + ", ".join(f"idx {int(table['idx'][i])} ({table[column][i]:.3f})" for i in order)
        )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _examples_output(args: argparse.Namespace, kind: str, column: str) -> Path | None:
    """Where ``show --examples`` writes: ``--output``; else None for texts (stdout) and, for images,
    ``NAME-CONFIG-COLUMN-examples.png`` in the current folder."""
    if args.output is not None:
        return Path(args.output)
    if kind == "text":
        return None
    config = args.config
    if config is None:
        place = resolve(args.scores, store=args.store)
        config = place.folder(args.version).pick_config(None) if place.kind != HUB else "scores"
    stem = Path(str(args.scores).rstrip("/\\")).name or "scores"
    return Path(f"{stem}-{config}-{column}-examples.png")


def show_examples(args: argparse.Namespace) -> int:
    """``show NAME --examples DATASET``: the hardest, easiest and most likely mislabeled rows of DATASET."""
    scores = load_scores(args.scores, args.config, args.version, store=args.store)
    column = score_column(scores, args.column or ("el2n" if "el2n" in scores.column_names else None))
    source = load_source(
        args.examples,
        split=args.split,
        input_column=args.input_column,
        label_column=args.label_column,
        data_files=args.data_files,
        for_scoring=False,  # labels as the user has them; align maps them through the card's class names
        recorded=scored_columns(provenance_for(scores, None)),  # as scored, e.g. with --label-column
        require_label="label" in scores.column_names,  # a corpus scored by language models has no labels
    )
    out = _examples_output(args, source.kind, column)
    inputs = [args.examples, *(args.data_files or []), args.scores]
    stores = [LocalStore(args.store).root]
    if out is not None:  # refuse a bad output before the rows are read and drawn
        check_output(out, inputs=inputs, stores=stores, force=args.force)
        if out.suffix.lower() != SUFFIXES[source.kind]:
            raise InvalidArgumentError(
                f"--output {str(out)!r}: the examples of {'an image' if source.kind == 'image' else 'a text'} dataset are "
                f"written as "
                f"{SUFFIXES[source.kind]}; give a path ending in {SUFFIXES[source.kind]}.",
                value=str(out),
            )
    examples = collect_examples(
        scores,
        source,
        column=column,
        per_group=args.per_group,
        on=args.on,
        verify=args.verify,
        input_column=args.input_column,
        label_column=args.label_column,
        title=f"{args.scores} on {args.examples}",
    )
    if out is None:
        print(markdown_table(examples, max_chars=args.max_chars))
        return 0
    render_examples(examples, out, max_chars=args.max_chars)
    print(f"Wrote {len(examples.examples)} examples ({', '.join(examples.groups)}; by {column}) -> {out}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    tables = []
    for ref in (args.a, args.b):
        location, version, config = _parse_ref(ref, args.config)
        tables.append(load_scores(location, config, version, store=args.store))
    comparison = compare_scores(
        tables[0], tables[1], column=args.column, fractions=args.fractions, top=args.top, names=(args.a, args.b)
    )
    print(format_comparison(comparison))
    return 0


# -- prune -----------------------------------------------------------------------------------------------------------


def cmd_prune(args: argparse.Namespace) -> int:
    if args.fraction is None and args.count is None and args.min_score is None and args.max_score is None:
        raise InvalidArgumentError("Say how much to keep: --fraction F, --count N, or --min-score/--max-score.")
    fmt = output_format(args.output, args.format)
    inputs = [args.dataset, *(args.data_files or []), args.scores]
    out = check_output(args.output, inputs=inputs, stores=[LocalStore(args.store).root], force=args.force)
    skip, beta = args.skip, args.beta
    if args.offset:  # the old flag: CCS's beta for ccs, the skipped share otherwise
        if args.strategy == "ccs":
            beta = beta or args.offset
        else:
            skip = skip or args.offset
    selection = Selection(
        column=args.column,
        fraction=args.fraction,
        count=args.count,
        strategy=args.strategy,
        skip=skip,
        beta=beta,
        min_score=args.min_score,
        max_score=args.max_score,
        seed=args.seed,
        class_balanced=args.class_balanced,
        by=args.by,
        tie_break=args.tie_break,
    )
    with datasets_progress(args.progress):
        scores = load_scores(args.scores, args.config, args.version, store=args.store)
        source = load_source(
            args.dataset,
            split=args.split,
            data_files=args.data_files,
            input_column=args.input_column,
            label_column=args.label_column,
            for_scoring=False,  # the pruned copy keeps the rows as the user has them
            recorded=scored_columns(provenance_for(scores, None)),  # as scored, e.g. with --label-column
            require_label="label" in scores.column_names,  # a corpus scored by language models has none
        )
        named = args.input_column is not None or args.label_column is not None
        pruned = prune(
            source.dataset,
            scores,
            selection=selection,
            on=args.on,
            missing=args.missing,
            verify=args.verify,
            input_column=args.input_column if named else None,
            label_column=args.label_column if named else None,
        )
        check_output(out, inputs=inputs, stores=[LocalStore(args.store).root], force=args.force)  # again: it took time
        write_dataset(pruned, out, fmt)
    print(
        f"Kept {len(pruned)} of {len(source.dataset)} rows ({len(pruned) / max(len(source.dataset), 1):.1%}) "
        f"by {args.column} ({args.strategy}) -> {out}"
    )
    return 0


# -- env -------------------------------------------------------------------------------------------------------------


def cmd_env(args: argparse.Namespace) -> int:
    print(f"datadiet-hub: {runtime.get_library_version()}")
    print(f"python: {runtime.get_python_version()} ({platform.platform()})")
    for package, distribution in runtime.PACKAGES.items():
        print(f"{distribution}: {runtime.get_package_version(package) or 'not installed'}")
    print(f"store: {default_root()}")
    print(f"HF_ENDPOINT: {os.environ.get('HF_ENDPOINT', 'https://huggingface.co (default)')}")
    return 0


# -- parser ----------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datadiet",
        description="Per-example difficulty scores (EL2N, GraNd, forgetting) as versioned Hugging Face datasets.",
        epilog=_examples(
            "datadiet score --dataset fashion_mnist --seeds 0,1,2 --at 2 --output-dir runs/fmnist",
            "datadiet publish runs/fmnist --name fashion-mnist-datadiet --version v1",
            "datadiet prune fashion_mnist --scores fashion-mnist-datadiet --fraction 0.5 --output pruned/",
            "datadiet <command> --help",
        )
        + "\n\n"
        + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"datadiet-hub {__version__}")
    parser.add_argument(
        "-v", "--verbose", action=argparse.BooleanOptionalAction, default=False, help="log at INFO level"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _sub(
        sub,
        "score",
        "Train M seeds briefly and write per-example scores (needs the [torch] extra).",
        ["datadiet score --seeds 0,1,2 --at 2 --output-dir runs/fmnist", "datadiet score --help  # all flags"],
    )
    _sub(
        sub,
        "demo",
        "The main job: score Fashion-MNIST, publish v1, reload, prune 50%%, train, print a table.",
        ["datadiet demo", "datadiet demo --output-dir runs/demo --seeds 3 --epochs 3"],
    )

    p = _sub(
        sub,
        "publish",
        "Publish a score folder as an immutable version (local store, or the Hub).",
        [
            "datadiet publish runs/fmnist --name fashion-mnist-datadiet --version v1",
            "datadiet publish runs/fmnist --repo-id you/fashion-mnist-datadiet --version v1",
            "datadiet publish runs/fmnist --repo-id you/fashion-mnist-datadiet --version v1 --force  # replace",
        ],
    )
    p.add_argument("scores_dir", metavar="SCORES_DIR", help="folder written by `datadiet score`")
    p.add_argument("--name", help="name in the local store")
    p.add_argument("--repo-id", metavar="USER/NAME", help="Hub dataset repo (auth: HF_TOKEN or `hf auth login`)")
    p.add_argument("--version", required=True, help="version name, e.g. v1")
    p.add_argument(
        "--private", action=argparse.BooleanOptionalAction, default=False, help="Hub: create the repo private"
    )
    p.add_argument(
        "--branch",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Hub: mark the version with a branch instead of a tag",
    )
    p.add_argument(
        "--force",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Hub: replace an existing version (prints what it replaced)",
    )
    _add_store(p)
    p.set_defaults(func=cmd_publish)

    p = _sub(
        sub,
        "versions",
        "List the versions of a score dataset (local store name or Hub repo id).",
        ["datadiet versions fashion-mnist-datadiet", "datadiet versions you/fashion-mnist-datadiet"],
    )
    p.add_argument("name", metavar="NAME_OR_REPO_ID")
    p.add_argument(
        "--local", action=argparse.BooleanOptionalAction, default=False, help="only look in the local store"
    )
    _add_store(p)
    p.set_defaults(func=cmd_versions)

    p = _sub(
        sub,
        "show",
        "Summarise one config of a score dataset: columns, score quantiles, hardest rows; with --examples DATASET,\n"
        "show the hardest, the easiest and the most likely mislabeled rows (highest score within their class; none\n"
        "for a corpus without labels): a PNG grid of thumbnails for images, a Markdown table for texts.",
        [
            "datadiet show fashion-mnist-datadiet --config cnn-ep2",
            "datadiet show runs/fmnist --top 5",
            "datadiet show runs/fmnist --examples fashion_mnist --output fmnist-examples.png",
            "datadiet show runs/texts --examples texts.jsonl --per-group 5 > examples.md",
            "datadiet show you/cifar10-datadiet --version v1 --examples uoft-cs/cifar10 --column grand",
        ],
    )
    p.add_argument("scores", metavar="NAME_OR_PATH_OR_REPO_ID")
    p.add_argument("--config")
    p.add_argument("--version")
    p.add_argument(
        "--column",
        help="score column for the hardest rows (default: the first metric) and the examples (default: el2n)",
    )
    p.add_argument("--top", type=int, default=5, help="how many hardest rows to list (default: 5)")
    p.add_argument(
        "--examples",
        metavar="DATASET",
        help="the scored dataset, as `datadiet score --dataset` takes it (a Hub id, a data file, an imagefolder, a "
        "save_to_disk folder): show its example rows instead of the summary",
    )
    p.add_argument(
        "--per-group",
        type=_positive_int,
        default=DEFAULT_PER_GROUP,
        metavar="N",
        help=f"--examples: rows per group (default: {DEFAULT_PER_GROUP})",
    )
    p.add_argument(
        "--output",
        metavar="FILE",
        help="--examples: write here (.png for images, .md for texts; atomically). Default: texts print the "
        "Markdown table to stdout; images go to NAME-CONFIG-COLUMN-examples.png in the current folder",
    )
    p.add_argument(
        "--force",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="--examples: replace an existing output file",
    )
    p.add_argument(
        "--max-chars",
        type=_positive_int,
        default=DEFAULT_MAX_CHARS,
        metavar="N",
        help=f"--examples on texts: cut each text to N characters (default: {DEFAULT_MAX_CHARS})",
    )
    p.add_argument("--split", default="train", help="--examples: the split of DATASET (default: train)")
    p.add_argument("--data-files", nargs="+", help="--examples: data files for builder datasets such as parquet")
    p.add_argument("--input-column", help="--examples: the image or text column (default: the card's, else detected)")
    p.add_argument("--image-column", dest="input_column", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--text-column", dest="input_column", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--label-column", help="--examples: the label column (default: the card's, else detected)")
    p.add_argument(
        "--on", default="idx", choices=JOIN_KEYS, help="--examples: join the scores to DATASET by row or by content"
    )
    p.add_argument(
        "--verify",
        default="sample",
        choices=VERIFY_MODES,
        help="--examples with --on idx: content check of the alignment (every row shown is checked too)",
    )
    _add_store(p)
    p.set_defaults(func=cmd_show)

    p = _sub(
        sub,
        "diff",
        "Compare two versions or configs: Spearman, kept-set overlap, rows that moved most.",
        [
            "datadiet diff fashion-mnist-datadiet@v1:cnn-ep2 fashion-mnist-datadiet@v2:cnn-ep2",
            "datadiet diff runs/fmnist:cnn-ep1 runs/fmnist:cnn-ep2 --column el2n",
        ],
    )
    p.add_argument("a", metavar="A", help="REPO_OR_DIR_OR_NAME[@VERSION][:CONFIG]")
    p.add_argument("b", metavar="B", help="the same, for the other side")
    p.add_argument("--config", help="config used when A or B names none")
    p.add_argument("--column", default="el2n", help="score column (default: el2n)")
    p.add_argument(
        "--fractions",
        type=_fractions,
        default=(0.1, 0.3, 0.5, 0.7),
        help="kept fractions for the overlap (default: 0.1,0.3,0.5,0.7)",
    )
    p.add_argument("--top", type=int, default=10, help="rows whose rank moved most (default: 10)")
    _add_store(p)
    p.set_defaults(func=cmd_diff)

    p = _sub(
        sub,
        "prune",
        "Prune a dataset by score and save the kept rows (arrow folder or parquet).",
        [
            "datadiet prune fashion_mnist --scores fashion-mnist-datadiet --fraction 0.5 --output pruned/",
            "datadiet prune fashion_mnist --scores runs/fmnist --config cnn-ep2 --strategy offset --skip 0.1 "
            "--fraction 0.5 --output pruned.parquet --format parquet",
            "datadiet prune ./my_copy --scores you/fmnist-datadiet --version v1 --on example_id --missing drop "
            "--fraction 0.7 --output pruned/",
            "datadiet prune corpus.jsonl --scores runs/corpus --column loss --strategy middle --by domain "
            "--fraction 0.5 --output kept/",
        ],
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        help="as `datadiet score --dataset` takes it: fashion_mnist, a Hub id, a folder (imagefolder, save_to_disk, "
        "data files) or one .parquet/.csv/.json(l) file",
    )
    p.add_argument(
        "--scores",
        required=True,
        metavar="NAME_OR_PATH_OR_REPO_ID",
        help="the score dataset: a folder written by `datadiet score`, a local-store name or a Hub repo id",
    )
    p.add_argument("--config", help="config of the score dataset (required when it has several)")
    p.add_argument("--version", help="published version, e.g. v1 (default: the newest in the local store)")
    p.add_argument("--split", default="train", help="split of DATASET (default: train)")
    p.add_argument("--data-files", nargs="+", help="data files for builder datasets such as parquet")
    p.add_argument("--input-column", help="the column to hash with the label (default: the card's, else detected)")
    p.add_argument("--image-column", dest="input_column", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--text-column", dest="input_column", help=argparse.SUPPRESS)  # the older name
    p.add_argument("--label-column", help="the label column (default: the card's, else detected)")
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show progress bars (default: on)"
    )
    p.add_argument("--column", default="el2n", help="score column (default: el2n)")
    p.add_argument("--fraction", type=float, help="share of rows to keep, in (0, 1]")
    p.add_argument("--count", type=int, help="number of rows to keep")
    p.add_argument(
        "--strategy",
        default="hardest",
        choices=strategies.names(),
        help="; ".join(f"{s.name}: {s.help}" for s in strategies.STRATEGIES.values()),
    )
    p.add_argument("--skip", type=float, default=0.0, help="hardest/offset: share of hardest rows skipped first")
    p.add_argument("--beta", type=float, default=0.0, help="ccs: share of hardest rows dropped first")
    p.add_argument("--offset", type=float, default=0.0, help="deprecated: --skip (or --beta for ccs)")
    p.add_argument(
        "--tie-break",
        default="random",
        metavar="RULE",
        help="order among equal scores: random (seeded, default), index (lower row first) or a score column",
    )
    p.add_argument("--min-score", type=float)
    p.add_argument("--max-score", type=float)
    p.add_argument("--seed", type=int, default=0, help="random/ccs seed")
    p.add_argument(
        "--class-balanced", action=argparse.BooleanOptionalAction, default=False, help="keep class proportions"
    )
    p.add_argument(
        "--by",
        metavar="COLUMN",
        help="apply the strategy within the groups of this column (of the scores or the dataset, e.g. domain), "
        "keeping the mix of groups",
    )
    p.add_argument("--on", default="idx", choices=JOIN_KEYS, help="join by row position or content")
    p.add_argument(
        "--missing", default="error", choices=MISSING_POLICIES, help="--on example_id: rows without a score"
    )
    p.add_argument(
        "--verify",
        default="sample",
        choices=VERIFY_MODES,
        help="--on idx: content check of the alignment",
    )
    p.add_argument(
        "--output",
        required=True,
        help="output: a .parquet file, else a save_to_disk folder (never the input, a score dataset or a store)",
    )
    p.add_argument(
        "--format", choices=["arrow", "parquet"], help="default: parquet for a .parquet --output, else arrow"
    )
    p.add_argument(
        "--force",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="replace an existing --output (atomically)",
    )
    _add_store(p)
    p.set_defaults(func=cmd_prune)

    p = _sub(sub, "env", "Print versions and settings for bug reports.", ["datadiet env"])
    p.set_defaults(func=cmd_env)
    return parser


FORWARDED = {"score": cmd_score, "demo": cmd_demo}
_VERBOSITY_FLAGS = ("-v", "--verbose", "--no-verbose")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lead = 0  # global verbosity flags before the verb (`datadiet -v score ...`) must not hide a forwarded verb
    while lead < len(argv) and argv[lead] in _VERBOSITY_FLAGS:
        lead += 1
    if lead < len(argv) and argv[lead] in FORWARDED:  # these own their flags (ScoringConfig fields)
        if lead and argv[lead - 1] != "--no-verbose":  # the last one wins, as argparse does
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return FORWARDED[argv[lead]](argv[lead + 1 :])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_guarded(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
