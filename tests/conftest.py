"""Shared fixtures: an isolated store per test, a tiny real image dataset, and a score folder made from it."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# The tests' own datasets cache (subprocesses inherit it): datasets caches a local folder by its name, so the many
# small "v1" folders the tests load must never land in the user's cache, where a later real load would meet them.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="datadiet-tests-datasets-")
if "datasets" in sys.modules:  # imported by a plugin first: point its config there too
    sys.modules["datasets"].config.HF_DATASETS_CACHE = Path(os.environ["HF_DATASETS_CACHE"])

import pytest
from builders import make_image_dataset, make_provenance, make_score_table


@pytest.fixture(autouse=True)
def isolated_store(tmp_path_factory, monkeypatch):
    """Every test gets its own DATADIET_HOME, so nothing touches ~/.cache/datadiet."""
    home = tmp_path_factory.mktemp("datadiet_home")
    monkeypatch.setenv("DATADIET_HOME", str(home))
    return home


@pytest.fixture
def image_dataset():
    return make_image_dataset()


@pytest.fixture
def score_folder(tmp_path, image_dataset) -> Path:
    """A score dataset folder (two configs) written by the real writer for ``image_dataset``."""
    from datadiet_hub.writer import write_score_dataset

    tables = {
        "cnn-ep2": make_score_table(image_dataset, seed=1),
        "cnn-ep0": make_score_table(image_dataset, seed=2, metrics=("el2n", "forgetting")),
    }
    return write_score_dataset(
        tmp_path / "scores",
        tables,
        provenance=make_provenance(len(image_dataset)),
        config_info={"cnn-ep2": {"model": "cnn", "time": "epoch 2"}},
        plots=False,
    )
