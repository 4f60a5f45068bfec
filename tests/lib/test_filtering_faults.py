"""Bad input to the loader and pruner: each case fails with an error that quotes the bad value and says what to do,
and nothing is pruned silently wrong."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pyarrow as pa
import pytest
from scale_builders import make_image_dataset, score_table, write_score_folder

from datadiet_hub import LocalStore, keep, load_scores, prune, select_indices
from datadiet_hub.errors import DatadietError, ScoreMismatchError, ScoresNotFoundError, ScoreTableError

N = 40


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()


@pytest.fixture
def ds():
    return make_image_dataset(N)


@pytest.fixture
def scores():
    return score_table(N)


# -- alignment -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [N - 1, N + 1])
def test_wrong_length_is_refused(rows, scores):
    other = make_image_dataset(rows)
    with pytest.raises(ScoreMismatchError, match=rf"scores have {N} rows but the dataset has {rows}.*on='example_id'"):
        prune(other, scores, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match="rows but the dataset has"):
        keep(scores, fraction=0.5, dataset=other)
    with pytest.raises(ScoreMismatchError):  # the length is checked even when content checks are off
        prune(other, scores, fraction=0.5, verify="none")


def test_reordered_dataset_without_example_id_is_caught_and_joinable(ds, scores):
    reordered = ds.select(np.random.default_rng(0).permutation(N))
    assert "example_id" not in reordered.column_names
    with pytest.raises(ScoreMismatchError, match=r"checked rows differ.*on='example_id' \(CLI: --on example_id\)"):
        prune(reordered, scores, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match="checked rows differ"):
        prune(reordered, scores, fraction=0.5, verify="full")
    joined = prune(reordered, scores, fraction=0.5, on="example_id")
    from datadiet_hub.align import dataset_example_ids

    kept_ids = {scores.column("example_id")[int(i)].as_py() for i in select_indices(scores, fraction=0.5)}
    assert set(dataset_example_ids(joined).to_pylist()) == kept_ids


def test_a_single_swapped_pair_is_caught_by_full_verify(ds, scores):
    order = np.arange(N)
    order[[5, 6]] = order[[6, 5]]  # one swapped pair: only a full check is sure to see it
    swapped = ds.select(order)
    with pytest.raises(ScoreMismatchError, match="2 of 40 checked rows differ"):
        prune(swapped, scores, fraction=0.5, verify="full")


def test_rows_that_cannot_be_hashed_get_a_clear_error(scores):
    plain = datasets.Dataset.from_dict({"x": list(range(N))})
    with pytest.raises(
        ScoreMismatchError, match=r"Cannot hash the dataset's rows.*No label column.*label_column=.*verify='none'"
    ):
        prune(plain, scores, fraction=0.5)
    assert len(prune(plain, scores, fraction=0.5, verify="none")) == N // 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_infinite_scores_are_refused(bad, ds):
    table = score_table(N)
    values = table.column("el2n").to_numpy().copy()
    values[[3, 17]] = bad
    table = table.set_column(table.column_names.index("el2n"), "el2n", pa.array(values, pa.float32()))
    with pytest.raises(ScoreMismatchError, match=r"2 'el2n' score\(s\) are NaN or infinite \(first at idx 3\)"):
        prune(ds, table, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match="NaN or infinite"):
        keep(table, fraction=0.5)
    assert len(prune(ds, table, fraction=0.5, column="forgetting")) == N // 2


def test_incomplete_or_duplicated_idx_is_refused(ds):
    table = score_table(N)
    idx = np.arange(N)
    idx[7] = 8
    dup = table.set_column(0, "idx", pa.array(idx))
    with pytest.raises(ScoreMismatchError, match=r"not a permutation of 0..39 \(1 position\(s\) are missing"):
        prune(ds, dup, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match="values run from 1 to 40"):
        select_indices(table.set_column(0, "idx", pa.array(np.arange(1, N + 1))), fraction=0.5)


# -- unknown names -------------------------------------------------------------------------------------------------


def test_unknown_column_lists_the_available_ones(ds, scores):
    with pytest.raises(ScoresNotFoundError, match=r"'grand' not found.*\['el2n', 'forgetting'\].*column="):
        prune(ds, scores, fraction=0.5, column="grand")
    without_ids = scores.drop_columns(["example_id"])
    with pytest.raises(ScoresNotFoundError, match="need an 'example_id' column"):
        prune(ds, without_ids, fraction=0.5, on="example_id")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(on="row"), r"on='row'; choose one of: idx, example_id"),
        (dict(missing="ignore"), r"missing='ignore'; choose one of: error, drop, keep"),
        (dict(verify="some"), r"verify='some'; choose one of: sample, full, none"),
        (dict(strategy="hardset"), r"Unknown strategy 'hardset'"),
    ],
)
def test_unknown_options_name_the_choices(ds, scores, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        prune(ds, scores, fraction=0.5, **kwargs)
    with pytest.raises(ValueError, match=pattern):
        keep(scores, fraction=0.5, **kwargs)


def test_unknown_config_version_and_name(tmp_path):
    folder = write_score_folder(tmp_path / "scores", N, configs=("cnn-ep2", "cnn-ep0"))
    with pytest.raises(ScoresNotFoundError, match=r"Config 'cnn-ep9' not found.*\['cnn-ep2', 'cnn-ep0'\]"):
        load_scores(folder, "cnn-ep9")
    with pytest.raises(ValueError, match="several configs.*config="):
        load_scores(folder)
    store = LocalStore(tmp_path / "store")
    store.publish(folder, "tiny", "v1")
    with pytest.raises(ScoresNotFoundError, match=r"Version 'v7' of 'tiny' not found.*available: \['v1'\]"):
        load_scores("tiny", "cnn-ep2", "v7", store=store)
    with pytest.raises(ScoresNotFoundError, match="No score dataset 'nope' in the local store"):
        load_scores("nope", store=store)
    assert len(load_scores("tiny", "cnn-ep2", "v1", store=store, cache_dir=str(tmp_path / "c"))) == N


# -- corrupt files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_or_truncated_parquet_is_a_clear_error(tmp_path, damage):
    folder = write_score_folder(tmp_path / "scores", 400)
    path = next((folder / "data" / "cnn-ep2").glob("*.parquet"))
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle - 64 : middle + 64] = bytes(range(128))
        data[:4] = b"XXXX"  # and a broken magic number, so every reader notices
    path.write_bytes(bytes(data))
    # a corrupt file is bad input (ScoreTableError, a ValueError; CLI exit 2), not "not found"
    with pytest.raises(ScoreTableError, match=r"cannot be read: a data file is corrupt or truncated.*Re-publish"):
        load_scores(folder, cache_dir=str(tmp_path / "cache"))


# -- budgets -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, math.nan, math.inf, True, "0.5"])
def test_fraction_outside_zero_one_is_refused(ds, scores, fraction):
    with pytest.raises(ValueError, match=r"fraction=.* must be in \(0, 1\]"):
        prune(ds, scores, fraction=fraction)
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        keep(scores, fraction=fraction)


def test_fraction_and_count_edges(ds, scores):
    assert len(prune(ds, scores, fraction=1.0)) == N
    assert len(prune(ds, scores, count=0)) == 0
    with pytest.raises(ValueError, match="either fraction .* or count"):
        prune(ds, scores, fraction=0.5, count=3)
    with pytest.raises(
        ValueError, match=rf"count={N + 1} must be an integer between 0 and the number of rows \({N}\)"
    ):
        prune(ds, scores, count=N + 1)


# -- empty input ---------------------------------------------------------------------------------------------------


def test_empty_dataset_and_scores(ds, scores, caplog):
    empty_ds, empty_scores = ds.select([]), scores.slice(0, 0)
    assert len(prune(empty_ds, empty_scores, fraction=0.5)) == 0
    assert len(prune(empty_ds, empty_scores, fraction=0.5, on="example_id")) == 0
    assert len(prune(empty_ds, scores, fraction=0.5, on="example_id")) == 0  # nothing to join
    assert select_indices(empty_scores, fraction=0.5).tolist() == []
    assert len(empty_ds.filter(keep(empty_scores, fraction=0.5), with_indices=True, batched=True)) == 0
    with pytest.raises(ScoreMismatchError, match=f"scores have {N} rows but the dataset has 0"):
        prune(empty_ds, scores, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match=f"scores have 0 rows but the dataset has {N}"):
        prune(ds, empty_scores, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match=f"{N} of {N} dataset rows have no score"):
        prune(ds, empty_scores, fraction=0.5, on="example_id")
    assert "empty" in caplog.text


def test_errors_are_catchable_as_builtins_and_as_the_library_base():
    with pytest.raises(DatadietError):
        select_indices({"idx": np.arange(3), "el2n": np.array([0.1, np.nan, 0.2])}, fraction=0.5)
    with pytest.raises(FileNotFoundError):
        select_indices({"idx": np.arange(3), "el2n": np.zeros(3)}, column="grand", fraction=0.5)
