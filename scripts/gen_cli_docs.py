"""Write docs/cli.md from the CLI's argparse parsers, so the reference cannot drift from the code.

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is stale (tests/scoring/test_cli_docs.py)

The torch verbs (``score``, ``demo``) have their own parsers behind ``datadiet_hub._torch_verbs``; they are read from
there, so generating needs the ``[torch]`` extra installed. The exit codes come from ``datadiet_hub.cli_errors``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: (a.help or "").replace("%%", "%") for a in action._choices_actions}
    return {}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            name = ", ".join(f"`{o}`" for o in action.option_strings)
            if action.nargs != 0:
                name += f" `{action.metavar or action.dest.upper()}`"
        else:
            name = f"`{action.metavar or action.dest}`"
        text = action.help or ""
        if "%(" in text or "%%" in text:
            params = {**vars(action), "prog": parser.prog}
            if params.get("choices") is not None:
                params["choices"] = ", ".join(map(str, params["choices"]))
            text = text % params
        if action.choices and "choices" not in text.lower():
            text += f" (choices: {', '.join(map(str, action.choices))})"
        if action.required:
            text += " Required."
        rows.append(f"| {name} | {_cell(text)} |")
    return rows


def _epilog(parser: argparse.ArgumentParser) -> str:
    epilog = (parser.epilog or "").strip()
    return f"```text\n{epilog}\n```" if epilog else ""


def _section(name: str, parser: argparse.ArgumentParser, summary: str) -> str:
    usage = parser.format_usage().strip().removeprefix("usage: ")
    description = (parser.description or summary or "").strip()
    parts = [f"## `{name}`", description, f"```text\n{usage}\n```"]
    rows = _argument_rows(parser)
    if rows:
        parts.append("| argument | meaning |\n|---|---|\n" + "\n".join(rows))
    epilog = _epilog(parser)
    if epilog:
        parts.append(epilog)
    return "\n\n".join(p for p in parts if p)


def _verb_parser(verb: str) -> argparse.ArgumentParser:
    from datadiet_hub._torch_verbs import VERBS

    module = importlib.import_module(VERBS[verb].partition(":")[0])
    build = module.build_parser
    try:
        return build(prog=f"datadiet {verb}")
    except TypeError:
        return build()


def render() -> str:
    """docs/cli.md as text."""
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal: fix the width
    from datadiet_hub._torch_verbs import VERBS
    from datadiet_hub.cli import build_parser
    from datadiet_hub.cli_errors import EXIT_CODES

    root = build_parser()
    summaries = _command_help(root)
    commands = _subparsers(root)
    lines = [
        "<!-- Written by `python scripts/gen_cli_docs.py` from the argparse parsers: edit the parsers, not this "
        "file. -->",
        "# Command line reference",
        (root.description or "").strip(),
        f"```text\n{root.format_usage().strip().removeprefix('usage: ')}\n```",
        "| command | what it does |\n|---|---|\n"
        + "\n".join(f"| [`datadiet {n}`](#datadiet-{n}) | {_cell(summaries.get(n, ''))} |" for n in commands),
        "Global options: `-v`/`--verbose` (log at INFO level), `--version`. Every command has `--help`.",
        "## Exit codes",
        "A known user or environment error prints one `error:` line naming the fix and exits with its own code; "
        "anything else is a bug and shows its traceback (`DATADIET_DEBUG=1` shows the traceback of any error).",
        "| code | meaning |\n|---|---|\n" + "\n".join(f"| {code} | {_cell(text)} |" for code, text in EXIT_CODES),
    ]
    for name, parser in commands.items():
        if name in VERBS:
            parser = _verb_parser(name)
        lines.append(_section(f"datadiet {name}", parser, summaries.get(name, "")))
    lines.append(
        "## `accelerate launch -m datadiet_hub.scoring`\n\nThe same flags as `datadiet score`, on 1..N processes "
        "(one per GPU): `accelerate launch --quiet -m datadiet_hub.scoring --preset cifar10-paper --output-dir "
        "runs/cifar10`. `--quiet` keeps accelerate from adding its own traceback to a failed run."
    )
    return "\n\n".join(line for line in lines if line) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is not what the parsers give")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/cli.md is stale: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    from datadiet_hub.atomic import atomic_write_text

    atomic_write_text(TARGET, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
