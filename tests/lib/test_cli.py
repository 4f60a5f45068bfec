"""The ``datadiet`` CLI: helpful --help, one-line errors with exit codes, no tracebacks for user errors."""

import subprocess
import sys

import pytest

from datadiet_hub.cli import main


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "datadiet_hub.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize("verb", ["publish", "versions", "show", "diff", "prune", "env"])
def test_every_verb_has_help_with_examples(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"datadiet {verb}" in out


def test_publish_versions_show_prune_round_trip(score_folder, tmp_path, capsys):
    store = str(tmp_path / "store")
    assert main(["publish", str(score_folder), "--name", "tiny", "--version", "v1", "--store", store]) == 0
    assert "Published tiny v1" in capsys.readouterr().out
    assert main(["versions", "tiny", "--store", store]) == 0
    out = capsys.readouterr().out
    assert out.startswith("v1") and "configs=cnn-ep2,cnn-ep0" in out
    assert main(["show", "tiny", "--config", "cnn-ep2", "--store", store, "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "40 rows" in out and "hardest 3 by el2n" in out
    assert main(["diff", "tiny@v1:cnn-ep2", "tiny@v1:cnn-ep0", "--store", store]) == 0
    assert "Spearman" in capsys.readouterr().out


def test_prune_command_writes_the_kept_rows(score_folder, image_dataset, tmp_path, capsys):
    data = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(data))
    out = tmp_path / "pruned.parquet"
    code = main(
        [
            "prune",
            str(data),
            "--scores",
            str(score_folder),
            "--config",
            "cnn-ep2",
            "--fraction",
            "0.25",
            "--output",
            str(out),
            "--format",
            "parquet",
        ]
    )
    assert code == 0
    assert "Kept 10 of 40 rows" in capsys.readouterr().out
    import datasets

    assert len(datasets.load_dataset("parquet", data_files=str(out), split="train")) == 10


def test_user_errors_are_one_line_without_traceback(score_folder, tmp_path):
    store = str(tmp_path / "store")
    assert run_cli("publish", str(score_folder), "--name", "tiny", "--version", "v1", "--store", store).returncode == 0
    again = run_cli("publish", str(score_folder), "--name", "tiny", "--version", "v1", "--store", store)
    assert again.returncode == 4
    assert again.stderr.startswith("error: Version 'v1' of 'tiny' already exists")
    assert "Traceback" not in again.stderr
    missing = run_cli("show", "nope", "--store", store)
    assert (
        missing.returncode == 3
        and "Traceback" not in missing.stderr
        and "error: No score dataset 'nope'" in missing.stderr
    )
    bad = run_cli("prune", "x", "--scores", str(score_folder), "--output", str(tmp_path / "o"))
    assert bad.returncode == 2 and "Say how much to keep" in bad.stderr


def test_debug_env_shows_the_traceback(tmp_path):
    import os

    env = {**os.environ, "DATADIET_DEBUG": "1"}
    result = run_cli("show", "nope", "--store", str(tmp_path), env=env)
    assert result.returncode != 0 and "Traceback" in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # the traceback ends with the error the user would have seen
    assert last.startswith("datadiet_hub.errors.ScoresNotFoundError: ") and "'nope'" in last, last


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_prune_command_selection_flags_match_the_library(score_folder, image_dataset, tmp_path, capsys):
    import datasets

    from datadiet_hub import Selection, load_scores, prune

    data = tmp_path / "data.parquet"
    image_dataset = image_dataset.add_column("row", list(range(len(image_dataset))))  # to compare the kept rows
    image_dataset.to_parquet(str(data))
    base = ["prune", str(data), "--scores", str(score_folder), "--config", "cnn-ep2", "--format", "parquet"]
    outputs = {}
    for name, flags in {
        "skip": ["--strategy", "offset", "--skip", "0.1", "--fraction", "0.5", "--tie-break", "index"],
        "offset": ["--strategy", "offset", "--offset", "0.1", "--fraction", "0.5", "--tie-break", "index"],
        "ccs": ["--strategy", "ccs", "--beta", "0.1", "--fraction", "0.3", "--seed", "2"],
    }.items():
        out = tmp_path / f"{name}.parquet"
        assert main([*base, *flags, "--output", str(out)]) == 0
        outputs[name] = datasets.load_dataset("parquet", data_files=str(out), split="train")["row"]
    scores = load_scores(score_folder, "cnn-ep2")
    lib = prune(
        image_dataset, scores, selection=Selection(fraction=0.5, strategy="offset", skip=0.1, tie_break="index")
    )
    assert outputs["skip"] == outputs["offset"] == lib["row"] and len(lib) == 20
    ccs = prune(image_dataset, scores, selection=Selection(fraction=0.3, strategy="ccs", beta=0.1, seed=2))
    assert outputs["ccs"] == ccs["row"] and len(ccs) == 12
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*base, "--strategy", "hardset", "--fraction", "0.5", "--output", str(tmp_path / "x.parquet")])
    assert "invalid choice: 'hardset'" in capsys.readouterr().err


def test_boolean_options_are_switches():
    """Every boolean option of every verb is a --flag / --no-flag pair (argparse.BooleanOptionalAction)."""
    import argparse

    from datadiet_hub.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    switches = []
    for verb, sub in [("", parser), *subparsers.choices.items()]:
        for action in sub._actions:
            assert not isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)), (verb, action)
            if isinstance(action, argparse.BooleanOptionalAction):
                switches.append((verb, action.dest))
    assert {("prune", "class_balanced"), ("prune", "progress"), ("publish", "private"), ("", "verbose")} <= set(
        switches
    )
    args = parser.parse_args(["prune", "d", "--scores", "s", "--output", "o", "--class-balanced", "--no-progress"])
    assert (args.class_balanced, args.progress) == (True, False)
    args = parser.parse_args(["prune", "d", "--scores", "s", "--output", "o", "--no-class-balanced"])
    assert (args.class_balanced, args.progress) == (False, True)


def test_a_score_column_that_is_not_numeric_is_a_usage_error(score_folder, image_dataset, tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "text-scores"
    shutil.copytree(score_folder, folder)
    for path in (folder / "data" / "cnn-ep2").glob("*.parquet"):  # el2n written as text, e.g. by another tool
        table = pq.read_table(path)
        column = table.column_names.index("el2n")
        pq.write_table(table.set_column(column, "el2n", table.column("el2n").cast(pa.string())), path)
    data = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(data))
    out = tmp_path / "pruned.parquet"
    result = run_cli("prune", str(data), "--scores", str(folder), "--config", "cnn-ep2", "--fraction", "0.5",
                     "--output", str(out), "--no-progress")  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and "Column 'el2n' holds string values, not numeric scores" in errors[0], errors
    assert not out.exists()


def test_prune_no_progress_silences_datasets_bars(score_folder, image_dataset, tmp_path):
    data = tmp_path / "fresh.parquet"  # a file datasets has not cached: it would show "Generating train split"
    image_dataset.to_parquet(str(data))
    env = {**__import__("os").environ, "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    args = ["prune", str(data), "--scores", str(score_folder), "--config", "cnn-ep2", "--fraction", "0.5"]
    quiet = run_cli(*args, "--output", str(tmp_path / "a.parquet"), "--no-progress", env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "Generating train split" not in quiet.stderr and "it/s" not in quiet.stderr, quiet.stderr
    env["HF_DATASETS_CACHE"] = str(tmp_path / "cache2")
    loud = run_cli(*args, "--output", str(tmp_path / "b.parquet"), env=env)  # the control: bars by default
    assert loud.returncode == 0 and "Generating train split" in loud.stderr, loud.stderr
