"""``--preset cifar10-paper`` (the paper's CIFAR-10 recipe) with overrides, for a few steps on a tiny CIFAR-shaped dataset:
ResNet-18 (CIFAR variant), SGD nesterov, crop+flip while training and never while scoring."""

from __future__ import annotations

import numpy as np
import torch
import yaml
from conftest import configs_in, read_scores

from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.data import tensors as data_module  # where Preprocess looks crop_flip up
from datadiet_hub.scoring.run import STATE


def test_paper_preset_for_a_few_steps(tmp_path, cifar_like_parquet, monkeypatch):
    from datadiet_hub.scoring.cli import main

    calls = []
    original = data_module.crop_flip

    def counting_crop_flip(x, generator, pad=4):
        calls.append(len(x))
        return original(x, generator, pad)

    monkeypatch.setattr(data_module, "crop_flip", counting_crop_flip)
    out = tmp_path / "out"
    argv = [
        "--preset",
        "cifar10-paper",
        "--output-dir",
        str(out),
        "--dataset",
        "parquet",
        "--data-files",
        str(cifar_like_parquet),
        "--seeds",
        "0,1",
        "--epochs",
        "1",
        "--unit",
        "step",
        "--at",
        "0,2",
        "--width",
        "0.0625",
        "--batch-size",
        "16",
        "--eval-batch-size",
        "32",
        "--grand-batch-size",
        "16",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert calls == [16] * 6, "every training batch (3 steps x 2 seeds) is augmented, nothing else"

    assert configs_in(out) == ["resnet18-ep0", "resnet18-step2"]
    later = read_scores(out, "resnet18-step2")
    assert {"el2n", "grand", "forgetting", "never_learned"} <= set(later)
    assert "forgetting" not in read_scores(out, "resnet18-ep0")

    scoring = yaml.safe_load((out / "README.md").read_text().split("---")[1])["datadiet"]["scoring"]
    expected = {
        "model": "resnet18",
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "lr_milestones": [60, 120, 160],
        "lr_gamma": 0.2,
        "augmentation": "crop-flip",
        "image_column": "img",
        "label_column": "label",
        "scores": ["el2n", "grand", "forgetting"],
        "batch_size": 16,
        "seeds": [0, 1],
        "at": [0, 2],
        "unit": "step",
        "epochs": 1,
        "width": 0.0625,
    }
    assert {k: scoring[k] for k in expected} == expected
    assert len(scoring["mean"]) == 3

    # Scoring saw the un-augmented images: EL2N from the step-2 checkpoint on plain normalised inputs.
    from datadiet_hub.scoring.data import Preprocess, load_tensors
    from datadiet_hub.scoring.models import build_model
    from datadiet_hub.sources import load_source

    data = load_tensors(load_source("parquet", data_files=[str(cifar_like_parquet)]), progress=False)
    x = Preprocess(scoring["mean"], scoring["std"], "crop-flip")(data.images)  # train=False: no augmentation
    model = build_model("resnet18", num_classes=10, in_channels=3, image_size=32, width=0.0625)
    tensors, _ = ckpt.load(ckpt.checkpoint_path(out / STATE, 1, 2))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    with torch.no_grad():
        p = torch.softmax(model.eval()(x), 1)
    el2n = torch.linalg.vector_norm(p - torch.nn.functional.one_hot(data.labels, 10), dim=1).numpy()
    np.testing.assert_allclose(later["el2n_per_seed"][:, 1], el2n, rtol=1e-4, atol=1e-5)
