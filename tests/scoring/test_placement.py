"""Channels-last placement: chosen for 2-d convolutions on the CPU (the log says so), overridable, never a change of
the scores beyond float rounding, GraNd exact on it, and a run may switch it and still resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import read_scores, tiny_config

from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.metrics.grand import per_example_grad_norms
from datadiet_hub.scoring.metrics.reference import naive_grad_norms
from datadiet_hub.scoring.models import build_model
from datadiet_hub.scoring.placement import channels_last_choice, place
from datadiet_hub.scoring.run import run


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4]


def test_auto_picks_channels_last_for_convolutions_on_cpu_only():
    cnn = build_model("cnn", num_classes=3, in_channels=3, image_size=12)
    mlp = build_model("mlp", num_classes=3, in_channels=1, image_size=12)
    auto = ScoringConfig()
    assert channels_last_choice(auto, cnn, "cpu")[0] is True
    assert channels_last_choice(auto, mlp, "cpu") == (False, "the model has no 2-d convolutions")
    assert channels_last_choice(auto, cnn, "meta") == (False, "measured on the CPU only")
    assert channels_last_choice(ScoringConfig(channels_last=False), cnn, "cpu") == (False, "as asked")
    placed = place(cnn, auto, "cpu")
    assert all(
        w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in _conv_weights(placed)
    )
    kept = place(
        build_model("cnn", num_classes=3, in_channels=3, image_size=12), ScoringConfig(channels_last=False), "cpu"
    )
    assert all(w.is_contiguous() for w in _conv_weights(kept))


@pytest.mark.parametrize("name", ["cnn", "resnet18"])
def test_grand_is_exact_on_a_channels_last_model(name):
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = build_model(name, num_classes=4, in_channels=3, image_size=16, width=0.25).eval()
        model = place(model, ScoringConfig(channels_last=True), "cpu")
        x, y = torch.randn(6, 3, 16, 16), torch.randint(0, 4, (6,))
        torch.testing.assert_close(
            per_example_grad_norms(model, x, y), naive_grad_norms(model, x, y), rtol=1e-6, atol=0
        )
    finally:
        torch.set_default_dtype(previous)


def test_layout_changes_scores_by_rounding_only_and_a_run_may_switch_it(tmp_path, tiny_parquet, caplog):
    common = dict(seeds=[0], at=[0, 1], scores=["el2n", "grand"])
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.run"):
        fast = run(tiny_config(tmp_path / "cl", tiny_parquet, channels_last=True, **common), progress=False)
    assert "memory layout channels-last (as asked)" in caplog.text
    plain = run(tiny_config(tmp_path / "nchw", tiny_parquet, channels_last=False, **common), progress=False)
    for config in ("cnn-ep0", "cnn-ep1"):
        a, b = read_scores(plain, config), read_scores(fast, config)
        for score in ("el2n", "grand"):
            np.testing.assert_allclose(b[score], a[score], rtol=1e-3, atol=1e-5, err_msg=f"{config}/{score}")
    # the layout is not part of a run's identity: the finished run resumes (does nothing) with the other layout
    again = run(tiny_config(tmp_path / "cl", tiny_parquet, channels_last=False, **common), progress=False)
    np.testing.assert_array_equal(read_scores(again, "cnn-ep1")["el2n"], read_scores(fast, "cnn-ep1")["el2n"])
