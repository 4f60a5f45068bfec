"""A typo'd column name is answered with the close matches ("Did you mean 'el2n'?") wherever a column is named:
the dataset's input, text and label columns, the score column, tie_break, by, compare's column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import datadiet_hub
from datadiet_hub.columns import detect_columns
from datadiet_hub.compare import compare_scores
from datadiet_hub.errors import ColumnNotFoundError, DatadietError, InvalidArgumentError, did_you_mean
from datadiet_hub.examples import score_column
from datadiet_hub.score_table import numpy_column


def test_the_helper_suggests_close_names_and_nothing_for_far_ones():
    assert did_you_mean("el2m", ["idx", "el2n", "grand"]) == " Did you mean 'el2n'?"
    assert did_you_mean("EL2N", ["el2n", "grand"]) == " Did you mean 'el2n'?"  # a different case is close
    assert did_you_mean("zzz", ["el2n", "grand"]) == ""
    assert did_you_mean(3, ["el2n"]) == ""


@pytest.fixture(scope="module")
def texts():
    import datasets

    lines = [line for line in open(__file__).read().splitlines() if line.strip()][:40]
    return datasets.Dataset.from_dict({"text": lines, "label": [i % 2 for i in range(len(lines))]})


@pytest.mark.parametrize(
    ("named", "typo", "meant"),
    [("text_column", "txet", "text"), ("input_column", "Text", "text"), ("label_column", "lable", "label")],
)
def test_dataset_columns(texts, named, typo, meant):
    with pytest.raises(InvalidArgumentError, match=f"Did you mean '{meant}'\\?") as info:
        detect_columns(texts, **{named: typo})
    assert info.value.value == typo


@pytest.fixture(scope="module")
def scores():
    n = 40
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "idx": np.arange(n),
            "example_id": [f"{i:032x}" for i in range(n)],
            "label": rng.integers(0, 2, n),
            "el2n": rng.random(n).astype(np.float32),
            "forgetting": rng.integers(0, 3, n).astype(np.float32),
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "meant"),
    [
        ({"column": "el2m"}, "el2n"),
        ({"column": "el2n", "tie_break": "forgeting"}, "forgetting"),
        ({"column": "el2n", "by": "lable"}, "label"),
    ],
)
def test_score_table_columns(scores, kwargs, meant):
    with pytest.raises(DatadietError, match=f"Did you mean '{meant}'\\?"):
        datadiet_hub.select_indices(scores, fraction=0.5, **kwargs)


def test_other_score_column_readers(scores):
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'el2n'\\?"):
        score_column(scores, "el2m")
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'label'\\?"):
        numpy_column(scores, "labels")
    with pytest.raises(DatadietError, match="Did you mean 'el2n'\\?"):
        compare_scores(scores, scores, column="el2m")
