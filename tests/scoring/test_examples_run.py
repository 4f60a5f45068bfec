"""A scoring run ends with the examples in the folder's ``plots/`` and the card showing them (issue 20)."""

from __future__ import annotations

import numpy as np
from conftest import tiny_config
from PIL import Image

from datadiet_hub._examples_plot import grid_pixels
from datadiet_hub.folder import ScoreFolder
from datadiet_hub.scoring.run import run


def test_scoring_writes_the_examples_grid_and_the_card_embeds_it(tmp_path, tiny_parquet):
    out = tmp_path / "out"
    run(tiny_config(out, tiny_parquet, seeds=[0]), progress=False)
    grid = out / "plots" / "cnn-ep1-el2n-examples.png"
    with Image.open(grid) as png:
        assert png.size == grid_pixels(3, 8)
        assert np.asarray(png.convert("L")).std() > 10  # thumbnails drawn, not a blank canvas
    card = (out / "README.md").read_text()
    assert "![plots/cnn-ep1-el2n-examples.png](plots/cnn-ep1-el2n-examples.png)" in card
    assert "plots/cnn-ep1-el2n-examples.png" in {p.as_posix() for p in ScoreFolder(out).files()}


def test_a_streamed_run_draws_no_examples(tmp_path, tiny_parquet, caplog):
    import logging

    from datadiet_hub.scoring.run import _examples_source

    with caplog.at_level(logging.INFO):
        assert _examples_source(tiny_config(tmp_path / "out", tiny_parquet, streaming=True)) is None
    assert "datadiet show OUT --examples DATASET" in caplog.text
    assert _examples_source(tiny_config(tmp_path / "out", tiny_parquet)).kind == "image"
