"""Model registry: the small CNN, MLP, CIFAR ResNet-18 with a width multiplier, and custom factories end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import configs_in, read_scores, tiny_config
from torch import nn

from datadiet_hub.scoring.models import MODELS, build_model, resolve_factory
from datadiet_hub.scoring.run import run


@pytest.mark.parametrize("name", sorted(n for n, e in MODELS.items() if e.kind == "image"))
@pytest.mark.parametrize(("channels", "side"), [(1, 28), (3, 32), (1, 8)])
def test_registry_models_give_logits(name, channels, side):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=channels, image_size=side, width=0.25).eval()
    with torch.no_grad():
        assert model(torch.randn(3, channels, side, side)).shape == (3, 7)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_is_the_cifar_variant():
    model = build_model("resnet18", num_classes=10, in_channels=3, image_size=32)
    assert count(model) == 11_173_962  # the CIFAR ResNet-18 of the paper (kuangliu/pytorch-cifar)
    assert (model.conv1.kernel_size, model.conv1.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20
    half = build_model("resnet18", num_classes=10, in_channels=3, image_size=32, width=0.5)
    assert [half.layer1[0].conv1.out_channels, half.layer4[1].conv2.out_channels] == [32, 256]
    assert 0.2 < count(half) / count(model) < 0.3  # parameters scale with width^2


def test_width_scales_cnn_and_mlp():
    for name in ("cnn", "mlp"):
        small = build_model(name, num_classes=10, in_channels=1, image_size=28, width=0.5)
        big = build_model(name, num_classes=10, in_channels=1, image_size=28, width=2.0)
        assert count(small) < count(build_model(name, num_classes=10, in_channels=1, image_size=28)) < count(big)


def test_unknown_model_lists_the_choices():
    with pytest.raises(
        ValueError,
        match=r"Unknown model 'resnet50'\. Choose one of: cnn, mlp, resnet18, vit-tiny, fasttext, text-transformer, or give a "
        r"factory as 'package.module:function'\.",
    ):
        resolve_factory("resnet50")


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("no_such_module_xyz:f", ValueError, "cannot import module 'no_such_module_xyz'"),
        ("tests.scoring.factories:missing", ValueError, "has no callable 'missing'"),
        ("tests.scoring.factories:NOT_CALLABLE", ValueError, "has no callable 'NOT_CALLABLE'"),
        ("tests.scoring.factories:not_a_module", TypeError, "returned str, expected a torch.nn.Module"),
    ],
)
def test_bad_factories(name, error, message):
    with pytest.raises(error, match=message):
        build_model(name, num_classes=2, in_channels=1, image_size=8)


def test_custom_factory_end_to_end(tmp_path, tiny_parquet):
    out = tmp_path / "out"
    cfg = tiny_config(
        out,
        tiny_parquet,
        model="tests.scoring.factories:tiny_net",
        width=1.0,
        scores=["el2n", "grand", "forgetting"],
        at=[0, 1],
    )
    run(cfg, progress=False)
    assert configs_in(out) == ["tiny-net-ep0", "tiny-net-ep1"]
    table = read_scores(out, "tiny-net-ep1")
    for column in ("el2n", "grand", "forgetting"):
        assert np.isfinite(table[column]).all()
    assert table["grand_per_seed"].shape == (203, 2)
    assert "tests.scoring.factories:tiny_net" in (out / "README.md").read_text()
