"""Issue 13, silent nonsense: inputs that can only produce an empty or meaningless result are refused with one
clear line (selections that keep nothing unless asked with ``count=0``, non-finite thresholds, columns that are not
scores, version names git would refuse)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from builders import make_image_dataset, make_score_table
from trust_cli import BAD_INPUT, assert_one_error, datadiet

from datadiet_hub import keep, prune, select_indices

N = 300


@pytest.fixture(scope="module")
def ds():
    return make_image_dataset(N)


@pytest.fixture(scope="module")
def scores(ds):
    return make_score_table(ds, seed=4, metrics=("el2n", "forgetting"))


def test_a_fraction_that_rounds_to_zero_rows_is_refused(ds, scores):
    for call in (
        lambda: select_indices(scores, fraction=0.001),
        lambda: prune(ds, scores, fraction=0.001),
        lambda: keep(scores, fraction=0.001),
    ):
        with pytest.raises(ValueError, match=r"fraction=0\.001 .*0 of 300 rows.*count=0"):
            call()
    assert len(prune(ds, scores, count=0)) == 0  # asked for explicitly: allowed
    assert len(prune(ds, scores, fraction=1 / N)) == 1


def test_thresholds_that_keep_nothing_are_refused(ds, scores):
    top = float(np.max(scores.column("el2n").to_numpy()))
    with pytest.raises(ValueError, match="no row"):
        select_indices(scores, min_score=top + 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_thresholds_are_refused(scores, bad):
    with pytest.raises(ValueError, match="min_score"):
        select_indices(scores, min_score=bad)
    with pytest.raises(ValueError, match="max_score"):
        select_indices(scores, max_score=bad, fraction=0.5)


def test_cli_min_score_nan_is_one_line(tmp_path, score_folder, image_dataset):
    image_dataset.to_parquet(str(tmp_path / "data.parquet"))
    result = datadiet(
        "prune",
        "data.parquet",
        "--scores",
        score_folder,
        "--config",
        "cnn-ep2",
        "--min-score",
        "nan",
        "--output",
        "out",
        tmp=tmp_path,
    )
    assert_one_error(result, BAD_INPUT, "nan")
    assert not (tmp_path / "out").exists()


def test_cli_fraction_that_keeps_nothing_is_one_line(tmp_path, score_folder, image_dataset):
    image_dataset.to_parquet(str(tmp_path / "data.parquet"))
    result = datadiet(
        "prune",
        "data.parquet",
        "--scores",
        score_folder,
        "--config",
        "cnn-ep2",
        "--fraction",
        "0.001",
        "--output",
        "out",
        tmp=tmp_path,
    )
    assert_one_error(result, BAD_INPUT, "0.001")
    assert not (tmp_path / "out").exists()


def test_missing_drop_with_no_row_matched_is_refused(ds, scores):
    other = make_image_dataset(50, seed=99)  # none of these images was scored
    with pytest.raises(ValueError, match="none of the 50"):
        prune(other, scores, fraction=0.5, on="example_id", missing="drop")
    assert len(prune(other, scores, fraction=0.5, on="example_id", missing="keep")) == 50  # keep: all kept


@pytest.mark.parametrize("column", ["idx", "label", "example_id", "el2n_std", "never_learned", "el2n_per_seed"])
def test_columns_that_are_not_scores_are_refused(ds, scores, column):
    with pytest.raises(ValueError, match=rf"{column!r} is not a score column.*el2n"):
        select_indices(scores, column=column, fraction=0.5)
    with pytest.raises(ValueError, match="not a score column"):
        prune(ds, scores, column=column, fraction=0.5)


BAD_REF_NAMES = [
    "v1..",
    "v1.lock",
    "v1.",
    "v1//x",
    "v1@{0}",
    "v1~1",
    "v1^",
    "v1:x",
    "v1?",
    "v1*",
    "v1[",
    "v1\\x",
]
GOOD_NAMES = ["v1", "v2", "v10", "2024-05-01", "v1.0", "v1_rc", "release-1.2.3"]


@pytest.mark.parametrize("name", BAD_REF_NAMES)
def test_version_names_git_refuses_are_refused(name):
    from datadiet_hub.versions import validate_version

    git = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"], capture_output=True)
    assert git.returncode != 0, f"git accepts {name!r}; the test list is wrong"
    with pytest.raises(ValueError, match="version"):
        validate_version(name)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_version_names_are_valid_git_refs(name):
    from datadiet_hub.versions import validate_version

    assert validate_version(name) == name
    assert subprocess.run(["git", "check-ref-format", f"refs/tags/{name}"]).returncode == 0


def test_cli_publish_with_a_bad_ref_name_writes_nothing(tmp_path, score_folder):
    store = tmp_path / "store"
    result = datadiet(
        "publish", score_folder, "--name", "tiny", "--version", "v1.lock", "--store", store, tmp=tmp_path
    )
    assert_one_error(result, BAD_INPUT, "v1.lock")
    assert not store.exists() or not any(store.rglob("*"))
