"""prune / keep on real datasets: exact rows, the filter pattern, and refusal of mismatched pairs."""

import datasets
import numpy as np
import pytest
from builders import make_image_dataset, make_score_table

import datadiet_hub
from datadiet_hub.errors import ScoreMismatchError


def scores_for(ds, values=None):
    table = make_score_table(ds, values=values)
    return datasets.Dataset(table)


def test_prune_and_filter_keep_the_same_rows(image_dataset):
    values = np.arange(len(image_dataset), dtype=np.float32)[::-1]  # row 0 hardest
    scores = scores_for(image_dataset, values)
    pruned = datadiet_hub.prune(image_dataset, scores, fraction=0.25)
    filtered = image_dataset.filter(datadiet_hub.keep(scores, fraction=0.25), with_indices=True, batched=True)
    assert len(pruned) == len(filtered) == 10
    assert pruned["label"] == filtered["label"] == image_dataset.select(range(10))["label"]


def test_filter_pattern_with_plain_load_dataset(score_folder, image_dataset):
    scores = datasets.load_dataset(str(score_folder), "cnn-ep2", split="train")
    predicate = datadiet_hub.keep(scores, fraction=0.5, strategy="easiest", dataset=image_dataset)
    kept = image_dataset.filter(predicate, with_indices=True, batched=True, batch_size=7)
    expected = datadiet_hub.select_indices(scores, fraction=0.5, strategy="easiest")
    assert len(kept) == 20
    assert [row["label"] for row in kept] == [image_dataset[int(i)]["label"] for i in expected]


def test_wrong_length_is_refused(image_dataset):
    scores = scores_for(image_dataset)
    shorter = image_dataset.select(range(30))
    with pytest.raises(ScoreMismatchError, match="The scores have 40 rows but the dataset has 30.*on='example_id'"):
        datadiet_hub.prune(shorter, scores, fraction=0.5)
    with pytest.raises(ScoreMismatchError, match="40 rows but the dataset has 30"):
        datadiet_hub.keep(scores, fraction=0.5, dataset=shorter)


def test_same_length_different_content_is_refused(image_dataset):
    other = make_image_dataset(seed=99)
    with pytest.raises(ScoreMismatchError, match="differ from the scored examples.*on='example_id'"):
        datadiet_hub.prune(other, scores_for(image_dataset), fraction=0.5)


def test_reordered_copy_is_refused_by_position_and_joined_by_content(image_dataset):
    scores = scores_for(image_dataset, np.arange(40, dtype=np.float32))  # row 39 hardest
    order = np.random.default_rng(0).permutation(40)
    shuffled = image_dataset.select(order).flatten_indices()
    with pytest.raises(ScoreMismatchError):
        datadiet_hub.prune(shuffled, scores, fraction=0.25, verify="full")
    by_content = datadiet_hub.prune(shuffled, scores, fraction=0.25, on="example_id")
    from datadiet_hub.align import dataset_example_ids

    def ids(ds):
        return sorted(getattr(x, "as_py", lambda x=x: x)() for x in dataset_example_ids(ds))

    assert ids(by_content) == ids(image_dataset.select(range(30, 40)))


def test_subsampled_copy_missing_policies(image_dataset):
    scores = scores_for(image_dataset.select(range(30)))  # scores only for the first 30 rows
    with pytest.raises(ScoreMismatchError, match="10 of 40 dataset rows have no score.*missing='drop'"):
        datadiet_hub.prune(image_dataset, scores, fraction=1.0, on="example_id")
    assert len(datadiet_hub.prune(image_dataset, scores, fraction=1.0, on="example_id", missing="drop")) == 30
    assert len(datadiet_hub.prune(image_dataset, scores, fraction=1.0, on="example_id", missing="keep")) == 40


def test_keep_refuses_rows_beyond_the_scores(image_dataset):
    predicate = datadiet_hub.keep(scores_for(image_dataset.select(range(10))), fraction=0.5)
    with pytest.raises(ScoreMismatchError, match="beyond the 10 scored rows"):
        image_dataset.filter(predicate, with_indices=True, batched=True)


def test_keep_works_on_a_streaming_dataset(tmp_path, image_dataset):
    path = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(path))
    stream = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
    scores = scores_for(image_dataset, np.arange(40, dtype=np.float32))
    kept = list(datadiet_hub.prune(stream, scores, fraction=0.1))
    assert [row["label"] for row in kept] == image_dataset.select(range(36, 40))["label"]


@pytest.fixture(scope="module")
def duplicated_split():
    """A real split in which every Fashion-MNIST image appears twice (60 rows, 30 contents), scored row by row: the
    two copies of an image got different scores, as two rows of a scored split do."""
    import pyarrow as pa

    from datadiet_hub.align import dataset_example_ids
    from datadiet_hub.sources import fashion_mnist_dataset

    base = fashion_mnist_dataset("test").select(range(30))
    ds = datasets.concatenate_datasets([base, base]).flatten_indices()
    values = np.random.default_rng(0).random(60).astype(np.float32)
    table = pa.table(
        {"idx": np.arange(60), "example_id": dataset_example_ids(ds), "el2n": values, "label": ds["label"]}
    )
    return ds, datasets.Dataset(table)


@pytest.mark.parametrize("strategy", ["hardest", "easiest", "random"])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_join_by_content_honours_fraction_with_duplicate_content(duplicated_split, strategy, fraction):
    from datadiet_hub.align import dataset_example_ids

    ds, scores = duplicated_split
    shuffled = ds.shuffle(seed=3).flatten_indices()
    for data in (ds, shuffled):
        pruned = datadiet_hub.prune(data, scores, fraction=fraction, strategy=strategy, on="example_id")
        predicate = datadiet_hub.keep(scores, fraction=fraction, strategy=strategy, on="example_id")
        filtered = data.filter(predicate, with_indices=True, batched=True, batch_size=7)
        assert len(pruned) == len(filtered) == round(fraction * 60)  # rows of the dataset, not contents
        assert sorted(dataset_example_ids(pruned).to_pylist()) == sorted(dataset_example_ids(filtered).to_pylist())
    if strategy != "random":  # a ranking keeps both copies of a content, except the one the cut falls inside
        counts = np.unique(dataset_example_ids(pruned).to_pylist(), return_counts=True)[1]
        assert (counts == 1).sum() <= 1
        # and ranks each content by its first scored copy (the row the join matches)
        first = np.asarray(scores["el2n"])[:30]
        order = np.argsort(-first if strategy == "hardest" else first, kind="stable")
        expected = {scores[int(i)]["example_id"] for i in order[: int(np.ceil(fraction * 30))]}
        assert set(dataset_example_ids(pruned).to_pylist()) == expected


def test_a_copy_of_the_duplicated_split_keeps_the_selected_rows_it_holds(duplicated_split):
    """``fraction`` counts the scored split's rows: pruning a part of it keeps the part's selected rows."""
    from datadiet_hub.align import dataset_example_ids

    ds, scores = duplicated_split
    whole = datadiet_hub.prune(ds, scores, fraction=0.3, on="example_id")
    part = ds.select(range(0, 45)).flatten_indices()  # both copies of 15 contents, one copy of 15 others
    pruned = datadiet_hub.prune(part, scores, fraction=0.3, on="example_id")
    kept = set(dataset_example_ids(whole).to_pylist())
    assert set(dataset_example_ids(pruned).to_pylist()) <= kept
    assert len(pruned) == sum(i in kept for i in dataset_example_ids(part).to_pylist())
