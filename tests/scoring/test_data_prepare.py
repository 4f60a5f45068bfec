"""``prepare_data``: the plan (path, geometry, augmentation, reasons) saved and reused, the in-memory path as before,
the DataLoader path for varied images and text, and batches that train a model the same way across a resume."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from test_data_loader import colour_folder  # noqa: F401  (fixture)
from test_text import text_jsonl  # noqa: F401  (fixture)

from datadiet_hub.scoring.config import ScoringConfig
from datadiet_hub.scoring.data import Preprocess, channel_stats, load_tensors
from datadiet_hub.scoring.data.prepare import prepare_data
from datadiet_hub.scoring.models import adapt_inputs, build_model


def cfg(tmp_path, dataset, **fields) -> ScoringConfig:
    return ScoringConfig(output_dir=str(tmp_path), dataset=str(dataset), num_workers=0, **fields)


def test_in_memory_path_is_chosen_for_small_fixed_size_images(tmp_path, tiny_parquet, caplog):
    from datadiet_hub.sources import load_source

    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.data.prepare"):
        data = prepare_data(cfg(tmp_path, tiny_parquet), tmp_path / "state", progress=False)
    assert data.path == "memory" and "data path: memory (small fixed-size images" in caplog.text
    plain = load_tensors(load_source(str(tiny_parquet)), progress=False)
    assert torch.equal(data.tensors.images, plain.images) and data.example_ids.to_pylist() == plain.example_ids
    assert (data.mean, data.std) == channel_stats(plain.images)
    batch = next(data.eval_batches(batch_size=64, device=torch.device("cpu")))
    assert torch.equal(batch["pixel_values"], Preprocess(data.mean, data.std, "none")(plain.images[:64]))
    plan = json.loads((tmp_path / "state" / "data.json").read_text())
    assert plan["path"] == "memory" and plan["augmentation"] == "none"
    forced = prepare_data(cfg(tmp_path, tiny_parquet, data_path="loader"), tmp_path / "forced", progress=False)
    assert forced.path == "loader"
    via_loader = next(forced.eval_batches(batch_size=64, device=torch.device("cpu")))
    assert torch.equal(via_loader["pixel_values"], batch["pixel_values"])  # the same inputs by either path
    assert forced.example_ids.equals(data.example_ids)


def test_loader_path_for_varied_colour_images(tmp_path, colour_folder, caplog):  # noqa: F811
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.data.prepare"):
        data = prepare_data(cfg(tmp_path, colour_folder, image_size=32), tmp_path / "state", progress=False)
    assert data.path == "loader" and "sizes vary" in caplog.text
    assert data.plan.augmentation == "resized-crop-flip" and data.model_kwargs == {"in_channels": 3, "image_size": 32}
    assert len(data) == 60 and data.num_classes == 3 and len(data.mean) == 3
    batches = list(data.eval_batches(batch_size=16, device=torch.device("cpu")))
    x = torch.cat([b["pixel_values"] for b in batches])
    assert x.shape == (60, 3, 32, 32) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2  # normalised by the manifest statistics
    again = prepare_data(cfg(tmp_path, colour_folder, image_size=32), tmp_path / "state", progress=False)
    assert again.example_ids.equals(data.example_ids)


def train_epochs(data, seed, epochs, batch_size, *, stop_at=None, model=None, optimizer=None, start=0):
    """A plain SGD loop over ``RunData.train_batches`` (stopping at ``stop_at``, or resuming at ``start``)."""
    spe = -(-len(data) // batch_size)
    torch.manual_seed(seed)
    if model is None:
        model = build_model("cnn", num_classes=data.num_classes, width=0.25, **data.model_kwargs)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    step = start
    for batch in data.train_batches(
        seed=seed,
        steps=range(start, stop_at or epochs * spe),
        batch_size=batch_size,
        order=lambda epoch: torch.Generator().manual_seed(seed * 1000 + epoch),
        augment=lambda s: torch.Generator().manual_seed(s),
        device=torch.device("cpu"),
    ):
        inputs = {k: v for k, v in batch.items() if k not in ("idx", "labels")}
        loss = torch.nn.functional.cross_entropy(model(**adapt_inputs(model, inputs)), batch["labels"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    return model, optimizer, step


def test_training_through_the_loader_resumes_exactly(tmp_path, colour_folder):  # noqa: F811
    data = prepare_data(cfg(tmp_path, colour_folder, image_size=16), tmp_path / "state", progress=False)
    full, _, _ = train_epochs(data, seed=1, epochs=2, batch_size=16)
    model, optimizer, step = train_epochs(data, seed=1, epochs=2, batch_size=16, stop_at=5)  # mid epoch 1
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    torch.manual_seed(123)  # a fresh process
    resumed_model = build_model("cnn", num_classes=3, width=0.25, **data.model_kwargs)
    resumed_model.load_state_dict(state)
    resumed_opt = torch.optim.SGD(resumed_model.parameters(), lr=0.05)
    resumed_opt.load_state_dict(opt_state)
    resumed, _, _ = train_epochs(data, 1, 2, 16, model=resumed_model, optimizer=resumed_opt, start=step)
    for name, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_text_run_data(tmp_path, text_jsonl):  # noqa: F811
    tokens = {"model": "transformers:bert"}  # a token model: the tokenizer is trained on the split
    data = prepare_data(
        cfg(tmp_path, text_jsonl, vocab_size=100, max_length=12, **tokens), tmp_path / "state", progress=False
    )
    assert data.path == "loader" and data.plan.kind == "text" and data.mean is None
    assert (tmp_path / "state" / "tokenizer.json").exists()
    assert data.model_kwargs["max_length"] == 12 and data.model_kwargs["pad_token_id"] == 0
    batch = next(data.eval_batches(batch_size=90, device=torch.device("cpu")))
    assert batch["input_ids"].shape[0] == 90 and batch["input_ids"].shape[1] <= 12
    assert np.array_equal(batch["labels"].numpy(), np.arange(90) % 3)
    model = build_model(
        "transformers:bert?hidden_size=16&num_hidden_layers=1&num_attention_heads=2&intermediate_size=32",
        num_classes=data.num_classes,
        **data.model_kwargs,
    )
    inputs = {k: v for k, v in batch.items() if k not in ("idx", "labels")}
    assert model(**adapt_inputs(model, inputs)).logits.shape == (90, 3)
    tokenizer_file = tmp_path / "state" / "tokenizer.json"
    given = prepare_data(
        cfg(tmp_path, text_jsonl, tokenizer=str(tokenizer_file), max_length=12, **tokens),
        tmp_path / "given",
        progress=False,
    )
    again = next(given.eval_batches(batch_size=90, device=torch.device("cpu")))
    assert torch.equal(again["input_ids"], batch["input_ids"])


def test_decode_after_a_kill_loads_the_split_through_the_runs_one_loader(tmp_path, tiny_parquet, monkeypatch):
    """A run killed after its plan and before the decoded tensors decodes on the rerun; the split is loaded by
    ``load_run_source`` (the one owner of the run's columns and options), not by a second copy of its arguments."""
    from datadiet_hub.scoring.data import prepare

    first = prepare_data(cfg(tmp_path, tiny_parquet), tmp_path / "state", progress=False)
    (tmp_path / "state" / "data.safetensors").unlink()  # the decode did not finish
    calls = []
    real = prepare.load_run_source
    monkeypatch.setattr(prepare, "load_run_source", lambda c, *a: calls.append(c) or real(c, *a))
    again = prepare_data(cfg(tmp_path, tiny_parquet), tmp_path / "state", progress=False)
    assert len(calls) == 1 and torch.equal(again.tensors.images, first.tensors.images)
    assert again.example_ids.equals(first.example_ids)


@pytest.mark.parametrize("data_path", ["memory", "loader"])
def test_a_classification_run_loads_its_split_once(tmp_path, tiny_parquet, monkeypatch, data_path):
    """The objective detection, the plan, the decode or the DataLoader, and the card's examples share one load."""
    import datasets

    from datadiet_hub.scoring.cli import main

    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    args = ["--dataset", str(tiny_parquet), "--output-dir", str(tmp_path / "run"), "--seeds", "0", "--at", "0"]
    args += ["--scores", "el2n", "--width", "0.25", "--data-path", data_path, "--num-workers", "0", "--no-progress"]
    assert main(args) == 0
    assert len(calls) == 1, calls
