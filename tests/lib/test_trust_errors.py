"""Issue 13, clear errors: every known user or environment error is one ``error:`` line with the fix and its own
exit code (see trust_cli); anything else is a bug and shows its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from trust_cli import (
    BAD_INPUT,
    HTTP,
    NETWORK,
    NOT_FOUND,
    REPO_ROOT,
    assert_one_error,
    clean_env,
    closed_port_endpoint,
    datadiet,
    snapshot,
)

# -- unknown names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "fashion-mnist-datadeit"],
        ["versions", "fashion-mnist-datadeit"],
        ["diff", "fashion-mnist-datadeit@v1", "fashion-mnist-datadeit@v2"],
        ["prune", "data.parquet", "--scores", "fashion-mnist-datadeit", "--fraction", "0.5", "--output", "out"],
    ],
    ids=["show", "versions", "diff", "prune"],
)
def test_unknown_local_name_without_store_is_one_line(tmp_path, argv, image_dataset):
    """No ``--store``: the default store ($DATADIET_HOME, here empty) is searched and the typo is quoted."""
    image_dataset.to_parquet(str(tmp_path / "data.parquet"))
    home = tmp_path / "home"
    home.mkdir()
    result = datadiet(*argv, tmp=tmp_path, DATADIET_HOME=str(home))
    assert_one_error(result, NOT_FOUND, "fashion-mnist-datadeit")
    assert not (tmp_path / "out").exists()


def test_load_scores_of_an_unknown_name_raises_not_found(tmp_path, monkeypatch):
    from datadiet_hub import load_scores
    from datadiet_hub.errors import ScoresNotFoundError

    monkeypatch.setenv("DATADIET_HOME", str(tmp_path / "empty"))
    with pytest.raises(ScoresNotFoundError, match="'nosuch'"):
        load_scores("nosuch")
    with pytest.raises(ScoresNotFoundError, match="'nosuch'"):
        load_scores("nosuch", "cnn-ep2", "v1")


# -- network and HTTP errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["versions", "you/fashion-mnist-datadiet"],
        ["show", "you/fashion-mnist-datadiet", "--config", "cnn-ep2"],
        ["show", "you/fashion-mnist-datadiet", "--config", "cnn-ep2", "--version", "v1"],
        ["publish", "{folder}", "--repo-id", "you/fashion-mnist-datadiet", "--version", "v1"],
    ],
    ids=["versions", "show", "show-version", "publish"],
)
def test_unreachable_hub_is_one_line_and_fast(tmp_path, score_folder, argv):
    endpoint = closed_port_endpoint()
    argv = [a.format(folder=score_folder) for a in argv]
    started = time.monotonic()
    result = datadiet(*argv, tmp=tmp_path, endpoint=endpoint, HF_TOKEN="hf_x")
    elapsed = time.monotonic() - started
    assert_one_error(result, NETWORK, "127.0.0.1")
    assert "HF_ENDPOINT" in result.stderr or "network" in result.stderr.lower()
    assert elapsed < 20, f"took {elapsed:.1f}s: retries before the error"


def test_load_scores_offline_fails_fast(tmp_path):
    code = "from datadiet_hub import load_scores\nload_scores('you/fashion-mnist-datadiet', 'cnn-ep2', 'v1')"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(tmp_path, closed_port_endpoint()),
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0 and "HubUnreachableError" in result.stderr.splitlines()[-1]
    assert elapsed < 15, f"took {elapsed:.1f}s"


def test_http_500_on_download_is_one_line(hub, score_folder, tmp_path):
    hub.double.add_repo_with_files("user/s", snapshot(score_folder), tag="v1")
    hub.double.fail_next("GET", r"/resolve/|/tree/|/paths-info/|/revision/", status=500, times=50)
    result = datadiet(
        "show", "user/s", "--config", "cnn-ep2", "--version", "v1", tmp=tmp_path, endpoint=hub.double.endpoint
    )
    assert_one_error(result, HTTP, "500")


def test_http_500_on_publish_is_one_line_and_names_the_state(hub, score_folder, tmp_path):
    hub.double.fail_next("POST", r"/commit/", status=500, times=50)
    result = datadiet(
        "publish",
        score_folder,
        "--repo-id",
        "user/s",
        "--version",
        "v1",
        tmp=tmp_path,
        endpoint=hub.double.endpoint,
        HF_TOKEN="hf_DoubleTestToken_9c1e5b7a",
    )
    line = assert_one_error(result, HTTP, "500")
    assert "untouched" in line


# -- local inputs -----------------------------------------------------------------------------------------------------


def test_missing_local_dataset_file_is_not_found_locally(tmp_path, score_folder):
    (tmp_path / "data").mkdir()
    result = datadiet(
        "prune",
        "data/missing.parquet",
        "--scores",
        score_folder,
        "--config",
        "cnn-ep2",
        "--fraction",
        "0.5",
        "--output",
        "out",
        tmp=tmp_path,
        endpoint=closed_port_endpoint(),
    )
    line = assert_one_error(result, NOT_FOUND, "data/missing.parquet")
    assert "Hub" not in line
    assert not (tmp_path / "out").exists()


def test_float_idx_column_is_a_clear_error(tmp_path, score_folder, image_dataset):
    path = score_folder / "data" / "cnn-ep2" / "train-00000-of-00001.parquet"
    table = pq.read_table(path)
    table = table.set_column(0, "idx", pa.array(table.column("idx").to_numpy().astype("float64")))
    pq.write_table(table, path)
    image_dataset.to_parquet(str(tmp_path / "data.parquet"))
    result = datadiet(
        "prune",
        "data.parquet",
        "--scores",
        score_folder,
        "--config",
        "cnn-ep2",
        "--fraction",
        "0.5",
        "--output",
        "out",
        tmp=tmp_path,
    )
    assert_one_error(result, BAD_INPUT, "idx")

    from datadiet_hub import prune

    with pytest.raises(ValueError, match="idx"):
        prune(image_dataset, table, fraction=0.5)


@pytest.mark.parametrize(
    "what",
    [
        "truncated-parquet",
        "garbage-yaml",
    ],
)
def test_corrupt_files_are_bad_input_not_not_found(tmp_path, score_folder, what):
    if what == "truncated-parquet":
        path = score_folder / "data" / "cnn-ep2" / "train-00000-of-00001.parquet"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        readme = score_folder / "README.md"
        readme.write_text("---\nconfigs: [unclosed\n---\n" + readme.read_text().split("---", 2)[2])
    before = snapshot(score_folder)
    result = datadiet("show", score_folder, "--config", "cnn-ep2", tmp=tmp_path)
    assert_one_error(result, BAD_INPUT)
    assert snapshot(score_folder) == before


# -- known errors versus bugs ---------------------------------------------------------------------------------------

_GUARDED = """
import sys
from datadiet_hub.cli_errors import run_guarded
def bug():
    {body}
sys.exit(run_guarded(bug))
"""


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("return {}['missing_key']", "KeyError"),
        ("return int('x')", "ValueError"),
        ("import no_such_module_x", "ModuleNotFoundError"),
    ],
    ids=["KeyError", "ValueError", "ImportError"],
)
def test_a_bug_shows_its_traceback(tmp_path, body, error):
    result = subprocess.run(
        [sys.executable, "-c", _GUARDED.format(body=body)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith(error)


def test_debug_env_traceback_is_the_real_error(tmp_path):
    result = datadiet("show", "nope", "--store", tmp_path / "store", tmp=tmp_path, DATADIET_DEBUG="1")
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("datadiet_hub.errors.ScoresNotFoundError: ")


def test_exit_codes_are_documented():
    reference = (REPO_ROOT / "docs" / "cli.md").read_text()  # generated from the parsers and EXIT_CODES
    help_text = subprocess.run(
        [sys.executable, "-m", "datadiet_hub.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    ).stdout
    for code, word in (
        (BAD_INPUT, "bad"),
        (NOT_FOUND, "not found"),
        (NETWORK, "network"),
        (HTTP, "HTTP"),
        (7, "disk"),
    ):
        assert (f"{code} " in help_text and word in help_text.lower()) or word in help_text, (code, word)
        assert f"| {code} |" in reference, f"exit code {code} not in docs/cli.md's exit-code table"
