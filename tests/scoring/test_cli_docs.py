"""docs/cli.md is generated from the argparse parsers (scripts/gen_cli_docs.py): fail when it is stale, so the
reference never drifts from the flags. Lives with the torch tests because `datadiet score`'s parser needs torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_generated_from_the_current_parsers():
    assert (ROOT / "docs" / "cli.md").read_text() == _generator().render(), (
        "docs/cli.md is stale: run python scripts/gen_cli_docs.py"
    )


def test_cli_reference_lists_every_command_flag_and_exit_code():
    from datadiet_hub.cli import build_parser
    from datadiet_hub.cli_errors import EXIT_CODES

    text = _generator().render()
    for action in build_parser()._actions:
        for name in getattr(action, "choices", None) or {}:
            assert f"## `datadiet {name}`" in text
    for flag in ("--fraction", "--seeds", "--repo-id", "--image-column"):
        assert f"`{flag}`" in text
    for code, meaning in EXIT_CODES:
        assert f"| {code} | {meaning} |" in text
