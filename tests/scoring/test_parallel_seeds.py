"""Seeds in parallel (``datadiet_hub.scoring.parallel``): the vectorized stack trains every seed as it would be
trained alone: the same data order and augmentation, the same initial checkpoint, and scores equal up to float
rounding (EL2N and GraNd per seed within 1e-4 relative after one epoch of a small BatchNorm CNN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import read_scores, tiny_config

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.cli import build_parser, config_from_args
from datadiet_hub.scoring.data.prepare import prepare_data
from datadiet_hub.scoring.parallel import StackedModel, choose, stacked_batches
from datadiet_hub.scoring.run import run
from datadiet_hub.scoring.state import RunState
from datadiet_hub.scoring.train import seed_generator

SEEDS = [0, 1, 2]


def test_stacked_batches_are_each_seeds_own_batches(tmp_path, tiny_parquet):
    cfg = tiny_config(tmp_path / "out", tiny_parquet, augmentation="crop-flip")
    state = RunState(cfg.output_dir)
    state.prepare(cfg)
    data = prepare_data(cfg, state.path, progress=False)
    steps = range(3, 12)  # crosses an epoch boundary (7 steps per epoch) and starts mid-epoch like a resume
    stacked = list(stacked_batches(data, SEEDS, steps=steps, batch_size=32, device=torch.device("cpu")))
    assert len(stacked) == len(steps)
    for i, seed in enumerate(SEEDS):
        alone = data.train_batches(
            seed=seed,
            steps=steps,
            batch_size=32,
            order=lambda e, seed=seed: seed_generator("order", seed, e),
            augment=lambda s, seed=seed: seed_generator("augment", seed, s),
            device=torch.device("cpu"),
        )
        for together, own in zip(stacked, alone, strict=True):
            assert torch.equal(together["idx"][i], own["idx"])
            assert torch.equal(together["pixel_values"][i], own["pixel_values"])
    assert not torch.equal(stacked[0]["idx"][0], stacked[0]["idx"][1])  # the seeds' orders differ


def test_stacked_model_matches_single_models_forward_and_state():
    models = [
        torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3)) for _ in SEEDS
    ]
    stack = StackedModel(models).train()
    x = torch.randn(len(SEEDS), 8, 5)
    together = stack(x)
    for i, model in enumerate(models):
        model.train()
        torch.testing.assert_close(together[i], model(x[i]), rtol=1e-5, atol=1e-6)
        for name, value in model.state_dict().items():  # running statistics updated per seed, in place
            torch.testing.assert_close(stack.seed_state(i)[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_parallel_seeds_equal_sequential_seeds(tmp_path, tiny_parquet):
    common = dict(seeds=SEEDS, at=[0, 1], scores=["el2n", "grand", "forgetting"], augmentation="crop-flip")
    alone = run(tiny_config(tmp_path / "alone", tiny_parquet, parallel_seeds=False, **common), progress=False)
    together = run(tiny_config(tmp_path / "together", tiny_parquet, parallel_seeds=True, **common), progress=False)
    for seed in SEEDS:  # the same initialisation, bit for bit
        a, _ = ckpt.load(ckpt.checkpoint_path(alone / ".datadiet", seed, 0))
        b, _ = ckpt.load(ckpt.checkpoint_path(together / ".datadiet", seed, 0))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    for config in ("cnn-ep0", "cnn-ep1"):
        a, b = read_scores(alone, config), read_scores(together, config)
        np.testing.assert_array_equal(a["example_id"], b["example_id"])
        for name in ("el2n_per_seed", "grand_per_seed"):
            np.testing.assert_allclose(b[name], a[name], rtol=1e-4, atol=1e-6, err_msg=f"{config}/{name}")
        if config == "cnn-ep1":  # argmax flips from float rounding are possible but rare: at most 1% of rows
            assert np.mean(a["forgetting_per_seed"] != b["forgetting_per_seed"]) <= 0.01


def test_choose_refuses_randomness_and_falls_back_by_itself(tmp_path, tiny_parquet):
    dropout = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))
    cpu = torch.device("cpu")
    with pytest.raises(InvalidArgumentError, match=r"randomness in training .*Dropout"):
        choose(tiny_config(tmp_path, tiny_parquet, parallel_seeds=True), dropout, 3, cpu)
    auto = choose(tiny_config(tmp_path, tiny_parquet), dropout, 3, cpu)
    assert not auto.parallel and "random" in auto.reason
    off = choose(tiny_config(tmp_path, tiny_parquet, parallel_seeds=False), torch.nn.Linear(2, 2), 3, cpu)
    assert not off.parallel and off.reason == "--no-parallel-seeds"
    # the measured rule: on the CPU, models without convolutions go vectorized, convolutional ones do not
    assert choose(tiny_config(tmp_path, tiny_parquet), torch.nn.Linear(2, 2), 3, cpu).parallel
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    assert "convolutions" in choose(tiny_config(tmp_path, tiny_parquet), conv, 3, cpu).reason
    assert not choose(tiny_config(tmp_path, tiny_parquet), torch.nn.Linear(2, 2), 1, cpu).parallel


def test_parallel_seeds_is_a_switch(tmp_path):
    parser = build_parser()
    assert config_from_args(parser.parse_args(["--parallel-seeds"])).parallel_seeds is True
    assert config_from_args(parser.parse_args(["--no-parallel-seeds"])).parallel_seeds is False
    assert config_from_args(parser.parse_args([])).parallel_seeds is None


@pytest.mark.parametrize("resume_parallel", [True, False])
def test_seeds_resume_from_parallel_checkpoints(tmp_path, tiny_parquet, resume_parallel):
    """Checkpoints written by the stack resume the stack (optimizer momentum restored per seed) or single seeds:
    parallel_seeds is not part of the run's identity."""
    out = tmp_path / "out"
    common = dict(seeds=[0, 1], at=[1, 2], scores=["el2n"])
    run(tiny_config(out, tiny_parquet, parallel_seeds=True, **common), progress=False)
    before = read_scores(out, "cnn-ep2")["el2n_per_seed"]
    for seed in (0, 1):  # as if killed after epoch 1: the last checkpoint and everything after it are gone
        ckpt.checkpoint_path(out / ".datadiet", seed, 14).unlink()
        ckpt.shard_path(out / ".datadiet", seed, 14).unlink()
    run(tiny_config(out, tiny_parquet, parallel_seeds=resume_parallel, **common), progress=False)
    after = read_scores(out, "cnn-ep2")["el2n_per_seed"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-6)
    assert not np.array_equal(after, read_scores(out, "cnn-ep1")["el2n_per_seed"])


def test_an_mlp_on_the_loader_path_goes_vectorized_by_itself_and_matches(tmp_path, tiny_parquet, caplog):
    import logging

    common = dict(seeds=[0, 1], at=[1], model="mlp", data_path="loader", num_workers=0, augmentation="none")
    alone = run(tiny_config(tmp_path / "alone", tiny_parquet, parallel_seeds=False, **common), progress=False)
    with caplog.at_level(logging.INFO, logger="datadiet_hub.scoring.parallel"):
        together = run(tiny_config(tmp_path / "together", tiny_parquet, **common), progress=False)
    assert "trained together (no convolutions, on the CPU" in caplog.text
    a, b = read_scores(alone, "mlp-ep1"), read_scores(together, "mlp-ep1")
    np.testing.assert_allclose(b["el2n_per_seed"], a["el2n_per_seed"], rtol=1e-4, atol=1e-6)


def test_text_batches_of_different_shapes_are_never_stacked(tmp_path, tiny_parquet):
    """Text batches are padded to their own longest row, so two seeds' batches differ in shape: the automatic
    choice trains them one at a time (the default text model has no convolution and would be picked otherwise),
    and asking for --parallel-seeds is a clear error."""
    cpu, linear = torch.device("cpu"), torch.nn.Linear(2, 2)
    auto = choose(tiny_config(tmp_path, tiny_parquet), linear, 3, cpu, ragged=True)
    assert not auto.parallel and "padded" in auto.reason
    with pytest.raises(InvalidArgumentError, match="padded to their own longest row"):
        choose(tiny_config(tmp_path, tiny_parquet, parallel_seeds=True), linear, 3, cpu, ragged=True)
