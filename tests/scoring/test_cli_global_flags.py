"""`datadiet -v score ...`: the top-level verbosity flags may come before a verb that owns its own parser."""

from __future__ import annotations

import pytest

from datadiet_hub.cli import main


@pytest.mark.parametrize("flags", [["-v"], ["--verbose"], ["--no-verbose"], ["-v", "--no-verbose"]])
def test_verbosity_flag_before_score_reaches_the_score_parser(flags, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*flags, "score", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: datadiet score" in out and "--label-column" in out  # the real score parser, not the top-level stub


def test_verbose_score_with_a_missing_file_is_the_score_error_not_an_unknown_argument(tmp_path, capsys):
    code = main(["-v", "score", "--dataset", str(tmp_path / "absent.csv"), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "unrecognized arguments" not in err
    assert err.startswith("error: Could not load dataset")
    assert not (tmp_path / "run").exists()
