"""The metric declarations drive the format: a declared metric's columns are what ``score_schema`` and
``validate_table`` expect, ``Selection`` accepts it and ranks by its direction; the published subset columns
(``<metric>_keep<percent>``) have a place in the schema instead of being dropped."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from datadiet_hub import metrics
from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.schema import score_schema, subsets_in, validate_table
from datadiet_hub.selection import select_indices


def base(n: int) -> dict:
    return {"idx": np.arange(n), "example_id": [f"e{i}" for i in range(n)], "label": np.zeros(n, dtype=np.int64)}


def test_builtin_declarations_give_the_format_columns():
    assert metrics.names()[:3] == ("el2n", "grand", "forgetting")
    assert metrics.get("forgetting").columns == (
        "forgetting",
        "forgetting_std",
        "forgetting_per_seed",
        "never_learned",
    )
    assert score_schema(["el2n"]).names == ["idx", "example_id", "label", "el2n", "el2n_std", "el2n_per_seed"]
    with pytest.raises(InvalidArgumentError, match="Unknown metric 'nope'. Choose from: el2n, grand, forgetting"):
        score_schema(["nope"])


def test_a_declared_metric_is_validated_and_ranked_by_its_direction():
    metrics.declare(metrics.Metric("margin", help="h", card="c", higher_is_harder=False, over_seeds=False))
    try:
        values = np.array([0.5, 0.1, 0.9, 0.3], dtype=np.float32)
        table = validate_table(pa.table({**base(4), "margin": values, "stray": [1, 2, 3, 4]}))
        assert table.column_names == ["idx", "example_id", "label", "margin"]  # one column: no seeds
        assert table.schema.field("margin").type == pa.float32()
        assert list(select_indices(table, column="margin", count=2, strategy="hardest")) == [1, 3]
        with pytest.raises(InvalidArgumentError, match="already declared"):
            metrics.declare(metrics.Metric("margin", help="h", card="c"))
    finally:
        metrics.METRICS.pop("margin")
    with pytest.raises(InvalidArgumentError, match="already in use"):
        metrics.declare(metrics.Metric("other", help="h", card="c", flags=("never_learned",)))
    assert "other" not in metrics.METRICS


def test_subset_columns_survive_validation_and_are_no_score():
    n = 4
    el2n = np.array([0.1, 0.4, 0.3, 0.2], dtype=np.float32)
    columns = {
        **base(n),
        "el2n": el2n,
        "el2n_std": np.zeros(n, dtype=np.float32),
        "el2n_per_seed": [[v] for v in el2n],
        "el2n_keep70": [True, True, True, False],
        "el2n_keep30": [False, True, False, False],
        "grand_keep50": [True, False, True, False],  # no grand column: not a subset of this table
    }
    table = validate_table(pa.table(columns))
    assert subsets_in(list(columns)) == ["el2n_keep30", "el2n_keep70"]
    assert table.column_names[-2:] == ["el2n_keep30", "el2n_keep70"]
    assert table.schema.field("el2n_keep30").type == pa.bool_()
    with pytest.raises(InvalidArgumentError, match="not a score column"):
        select_indices(table, column="el2n_keep30", fraction=0.5)
