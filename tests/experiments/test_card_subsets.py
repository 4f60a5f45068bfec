"""The recommended subsets shipped in the card: plain ``load_dataset`` gives boolean keep columns in the original
row order, of the stated sizes, equal to the library's hardest-first selection, and none for EL2N at init."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest

import datadiet_hub

CARD = Path(__file__).resolve().parents[2] / "cards" / "fashion-mnist-datadiet"


@pytest.mark.parametrize("config", ["cnn-ep2", "mlp-ep10"])
def test_keep_columns_load_with_plain_load_dataset(config, tmp_path):
    # a fresh cache: datasets keys a local folder's cache by its file names, not their content
    scores = datasets.load_dataset(str(CARD), config, split="train", cache_dir=str(tmp_path))
    table = scores.with_format("numpy")[:]
    assert np.array_equal(table["idx"], np.arange(60000))  # original dataset order
    for metric in ("el2n", "grand"):
        for percent, size in ((30, 18000), (50, 30000), (70, 42000)):
            keep = table[f"{metric}_keep{percent}"]
            assert keep.dtype == bool and keep.sum() == size
            # the hardest rows by the metric: every kept score >= every dropped score
            assert table[metric][keep].min() >= table[metric][~keep].max()
        kept = np.flatnonzero(table[f"{metric}_keep50"])
        expected = np.sort(datadiet_hub.select_indices(scores, column=metric, fraction=0.5, strategy="hardest"))
        assert np.array_equal(kept, expected)
    assert table["forgetting_keep50"].sum() == 30000


def test_no_subset_from_el2n_at_initialisation(tmp_path):
    names = datasets.load_dataset(str(CARD), "cnn-ep0", split="train", cache_dir=str(tmp_path)).column_names
    assert "grand_keep50" in names
    assert not any(n.startswith("el2n_keep") for n in names)


def test_no_published_subset_is_decided_by_a_constant_score():
    import pyarrow.parquet as pq

    from experiments.subsets import withheld_reason

    withheld = 0
    for path in sorted((CARD / "data").glob("*/train-*.parquet")):
        table = pq.read_table(path)
        for column in [c for c in table.column_names if "_keep" in c]:
            values = table.column(column.split("_keep")[0]).to_numpy(zero_copy_only=False)
            assert np.unique(values).size > 1, f"{path.parent.name}: {column} is picked by row order"
        if "forgetting" in table.column_names and np.unique(table.column("forgetting")).size == 1:
            assert not any(c.startswith("forgetting_keep") for c in table.column_names)
            withheld += 1
    assert withheld == 2  # forgetting after one epoch, cnn and mlp: 0 for every row
    assert withheld_reason("forgetting", {"epoch": 1}, np.zeros(5)).startswith("forgetting is 0 for every row")
    assert withheld_reason("el2n", {"epoch": 0}, np.arange(5.0)) and not withheld_reason(
        "el2n", {"epoch": 2}, np.arange(5.0)
    )
