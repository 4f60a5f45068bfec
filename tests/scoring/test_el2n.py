"""EL2N = ||softmax(logits) - onehot(y)||_2, computed from a tiny model's outputs."""

import math

import pytest
import torch

from datadiet_hub.scoring.metrics.el2n import el2n_from_logits
from datadiet_hub.scoring.models import build_model


def test_el2n_of_a_tiny_model_equals_the_softmax_formula():
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=5, in_channels=1, image_size=4, width=0.1).eval()
    x = torch.randn(7, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    model = model.double()
    with torch.no_grad():
        logits = model(x)
    got = el2n_from_logits(logits, y)
    for i in range(7):  # the definition, written out per example
        p = [math.exp(v) for v in logits[i].tolist()]
        total = sum(p)
        err = [p[k] / total - (1.0 if k == int(y[i]) else 0.0) for k in range(5)]
        assert got[i].item() == pytest.approx(math.sqrt(sum(e * e for e in err)), rel=1e-12)


def test_known_values():
    k = 10
    uniform = torch.zeros(1, k)
    assert el2n_from_logits(uniform, torch.tensor([3])).item() == pytest.approx(math.sqrt((k - 1) / k))
    confident_right = torch.full((1, k), -50.0)
    confident_right[0, 2] = 50.0
    assert el2n_from_logits(confident_right, torch.tensor([2])).item() == pytest.approx(0.0, abs=1e-12)
    assert el2n_from_logits(confident_right, torch.tensor([5])).item() == pytest.approx(math.sqrt(2.0))


def test_logits_are_not_modified():
    logits = torch.randn(3, 4)
    before = logits.clone()
    el2n_from_logits(logits, torch.tensor([0, 1, 2]))
    assert torch.equal(logits, before)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"logits must have shape \[N, K\]"):
        el2n_from_logits(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"targets must have shape \[3\]"):
        el2n_from_logits(torch.zeros(3, 2), torch.tensor([0, 1]))
