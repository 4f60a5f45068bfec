"""Contract test for ``_datasets_compat``: the private ``datasets`` state it touches exists in the supported
versions, the fast paths equal the public API, and the post-condition catches wrong rows and falls back."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from datadiet_hub import _datasets_compat as compat

ROOT = Path(__file__).resolve().parents[2]


def make(n: int = 50) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict(
        {"x": rng.random(n).tolist(), "label": (np.arange(n) % 3).tolist(), "name": [f"r{i}" for i in range(n)]}
    )


def test_installed_datasets_is_in_the_supported_range_declared_in_pyproject():
    declared = re.search(r'"datasets([<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert declared, "pyproject.toml must pin the supported datasets range"
    assert SpecifierSet(declared.group(1)) == SpecifierSet(compat.SUPPORTED_DATASETS)
    assert Version(datasets.__version__) in SpecifierSet(compat.SUPPORTED_DATASETS)


def test_the_private_state_we_touch_exists():
    ds = make().select([3, 1, 2])
    from datasets.table import InMemoryTable

    assert ds._indices is not None and ds._indices.column(0).to_pylist() == [3, 1, 2]
    assert isinstance(ds._fingerprint, str) and compat.fingerprint_of(ds) == ds._fingerprint
    assert InMemoryTable is not None


@pytest.mark.parametrize("base", ["plain", "mapped", "formatted"])
def test_fast_paths_equal_the_public_api(base):
    ds = make()
    if base == "mapped":
        ds = ds.select(np.random.default_rng(1).permutation(50)[:40])
    elif base == "formatted":
        ds = ds.with_format("numpy", columns=["x"], output_all_columns=True)
    rows = np.array([0, 4, 5, 9, 17, 30, 39], dtype=np.int64)
    ours, theirs = compat.select_rows(ds, rows), ds.select(rows)
    assert ours.with_format("arrow")[:].equals(theirs.with_format("arrow")[:]) and ours.format == theirs.format
    assert compat.rows_match(ours, ds, rows)
    public = ds.select(rows).select_columns(["name"]).with_format("arrow")[:].column("name")
    assert compat.arrow_column(ds, "name", rows).to_pylist() == public.to_pylist()
    assert compat.arrow_column(ds, "x").to_pylist() == ds.with_format(None)["x"][:]


def test_the_post_condition_rejects_other_rows_and_falls_back(caplog):
    ds = make()
    rows = np.array([2, 5, 11, 40], dtype=np.int64)
    wrong = ds.select([2, 5, 12, 40])  # what a silently changed internal could return
    assert not compat.rows_match(wrong, ds, rows)
    assert not compat.rows_match(ds.select([2, 5, 11]), ds, rows)  # wrong length
    with caplog.at_level(logging.WARNING, logger="datadiet_hub._datasets_compat"):
        result = compat.checked_selection(ds, rows, wrong)
    assert result["name"] == ["r2", "r5", "r11", "r40"]
    assert "returned other rows than asked for" in caplog.text


def test_contiguous_and_empty_selections_use_the_public_slice():
    ds = make()
    assert compat.select_rows(ds, np.arange(5, 9))["name"] == ["r5", "r6", "r7", "r8"]
    assert len(compat.select_rows(ds, np.empty(0, dtype=np.int64))) == 0
    with pytest.raises(IndexError, match="Row 50 is out of range for 50 rows"):
        compat.select_rows(ds, np.array([1, 50]))
