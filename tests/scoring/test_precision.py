"""``--precision bf16``: training and scoring forward passes under bfloat16 autocast (GraNd on a bfloat16 copy of the
model); the scores move a little, not much; the precision is part of a run's identity; fp32 stays the default."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import read_scores, tiny_config

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.run import run
from datadiet_hub.scoring.state import RunState
from datadiet_hub.stats import spearman


def test_bf16_scores_are_close_to_fp32_but_not_equal(tmp_path, tiny_parquet):
    common = dict(seeds=[0], at=[0, 1], scores=["el2n", "grand"])
    full = run(tiny_config(tmp_path / "fp32", tiny_parquet, **common), progress=False)
    half = run(tiny_config(tmp_path / "bf16", tiny_parquet, precision="bf16", **common), progress=False)
    for config in ("cnn-ep0", "cnn-ep1"):
        a, b = read_scores(full, config), read_scores(half, config)
        for score in ("el2n", "grand"):
            assert np.isfinite(b[score]).all()
            assert not np.array_equal(a[score], b[score]), f"{config}/{score}: bf16 changed nothing"
            assert spearman(a[score], b[score]) > 0.95, f"{config}/{score}"
    assert json.loads((half / ".datadiet" / "config.json").read_text())["precision"] == "bf16"


def test_precision_is_checked_and_part_of_the_identity(tmp_path, tiny_parquet):
    assert ScoringConfig().precision == "fp32"
    with pytest.raises(InvalidArgumentError, match=r"Unknown precision 'fp16'. Choose between fp32, bf16"):
        ScoringConfig(precision="fp16")
    state = RunState(tmp_path / "out")
    state.prepare(tiny_config(tmp_path / "out", tiny_parquet))
    with pytest.raises(InvalidArgumentError, match=r"precision: was 'fp32', now 'bf16'"):
        state.check_config(tiny_config(tmp_path / "out", tiny_parquet, precision="bf16"))
    old = json.loads(state.config_path.read_text())
    del old["precision"]  # a run started before the field existed resumes as fp32
    state.config_path.write_text(json.dumps(old))
    state.check_config(tiny_config(tmp_path / "out", tiny_parquet))
