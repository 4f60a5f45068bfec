"""The scoring engine on the DataLoader path: the same scores as the in-memory path on fixed-size data, a
variable-size colour image folder and a text set end to end from the CLI (loaded back with plain
``load_dataset``), a ``transformers`` model built from a config, streaming, and kill -9 + resume mid-epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import LAUNCH, PYTHON, REPO_ROOT, read_scores, run_engine, subprocess_env, tiny_config
from test_data_loader import colour_folder  # noqa: F401  (fixture)
from test_text import corpus, text_jsonl  # noqa: F401  (fixture)
from torch import nn

from datadiet_hub.hashing import example_id
from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.run import STATE, run


def card(out: Path) -> dict:
    return yaml.safe_load((Path(out) / "README.md").read_text().split("---")[1])["datadiet"]


def test_loader_path_gives_the_in_memory_scores(tmp_path, tiny_parquet):
    """Same rows, same order, same normalised pixels: the two paths train and score alike (float noise only: the
    normalisation statistics are summed differently)."""
    common = dict(seeds=[0], at=[0, 1], scores=["el2n", "grand", "forgetting"], num_workers=1)
    run(tiny_config(tmp_path / "memory", tiny_parquet, **common), progress=False)
    run(tiny_config(tmp_path / "loader", tiny_parquet, data_path="loader", **common), progress=False)
    assert card(tmp_path / "memory")["scoring"]["data"]["data_path"] == "memory"
    assert card(tmp_path / "loader")["scoring"]["data"]["data_path"] == "loader"
    for config in ("cnn-ep0", "cnn-ep1"):
        a, b = read_scores(tmp_path / "memory", config), read_scores(tmp_path / "loader", config)
        assert list(a["example_id"]) == list(b["example_id"])
        for name in ("el2n", "grand"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=f"{config}/{name}")
    np.testing.assert_array_equal(
        read_scores(tmp_path / "memory", "cnn-ep1")["forgetting"],
        read_scores(tmp_path / "loader", "cnn-ep1")["forgetting"],
    )


def test_colour_folder_end_to_end_from_the_cli(tmp_path, colour_folder):  # noqa: F811
    import datasets

    from datadiet_hub.cli import main

    out = tmp_path / "scores"
    code = main(
        ["score", "--dataset", str(colour_folder), "--image-size", "24", "--seeds", "0,1", "--at", "0,1",
         "--scores", "el2n,forgetting", "--width", "0.25", "--batch-size", "16", "--num-workers", "1",
         "--output-dir", str(out), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    scores = datasets.load_dataset(str(out), "cnn-ep1", split="train")
    assert len(scores) == 60 and scores.column_names[:3] == ["idx", "example_id", "label"]
    source = datasets.load_dataset(str(colour_folder), split="train")
    assert scores[7]["example_id"] == example_id(np.asarray(source[7]["image"]), source[7]["label"])
    provenance = card(out)
    data = provenance["scoring"]["data"]
    assert (data["data_path"], data["image_size"], data["image_channels"]) == ("loader", 24, 3)
    assert "sizes vary" in data["data_path_reason"]
    assert provenance["scoring"]["augmentation"] == "none"  # side 24 < 32: auto leaves small images alone
    assert (provenance["source"]["input_column"], provenance["source"]["input_kind"]) == ("image", "image")
    assert len(provenance["scoring"]["mean"]) == 3


class TinyText(nn.Module):
    """Embedding, masked mean over positions, linear: a stand-in text classifier with keyword inputs."""

    def __init__(self, *, num_classes: int, vocab_size: int, pad_token_id: int = 0, width: float = 1.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, max(4, round(16 * width)), padding_idx=pad_token_id)
        self.head = nn.Linear(self.embed.embedding_dim, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp_min(1)
        return self.head(pooled)


def tiny_text(**kwargs) -> nn.Module:
    return TinyText(**{k: v for k, v in kwargs.items() if k in ("num_classes", "vocab_size", "pad_token_id", "width")})


def test_text_set_end_to_end(tmp_path, text_jsonl):  # noqa: F811
    import datasets

    out = tmp_path / "text"
    run_engine(
        ["--dataset", str(text_jsonl), "--model", "tests.scoring.test_data_engine:tiny_text", "--seeds", "0,1",
         "--at", "0,2", "--scores", "el2n,forgetting", "--batch-size", "16", "--optimizer", "adam", "--lr", "0.01",
         "--weight-decay", "0", "--vocab-size", "100", "--max-length", "24", "--output-dir", str(out),
         "--no-progress"]
    )  # fmt: skip
    configs = sorted(p.name for p in (out / "data").iterdir())
    scores = datasets.load_dataset(str(out), configs[-1], split="train")
    rows = corpus()
    assert len(scores) == len(rows)
    assert scores[4]["example_id"] == example_id(rows[4]["text"], ["de", "es", "it"].index(rows[4]["language"]))
    provenance = card(out)
    assert (provenance["source"]["input_column"], provenance["source"]["input_kind"]) == ("text", "text")
    assert provenance["source"]["label_column"] == "language"
    assert provenance["source"]["label_names"] == ["de", "es", "it"]  # the class ids the example ids hash
    assert provenance["scoring"]["data"]["tokenizer_vocab_size"] <= 100 and provenance["scoring"]["mean"] is None
    # training learned the languages: the mean EL2N fell from init
    start = datasets.load_dataset(str(out), configs[0], split="train")
    assert np.mean(scores["el2n"]) < np.mean(start["el2n"])


def test_transformers_models_from_a_config(tmp_path, text_jsonl, colour_folder):  # noqa: F811
    pytest.importorskip("transformers")
    bert = "transformers:bert?hidden_size=16&num_hidden_layers=1&num_attention_heads=2&intermediate_size=32"
    run(
        tiny_config(tmp_path / "bert", text_jsonl, model=bert, seeds=[0], at=[1], vocab_size=80, max_length=16,
                    optimizer="adam", lr=0.001, weight_decay=0.0, num_workers=0),
        progress=False,
    )  # fmt: skip
    vit = "transformers:vit?hidden_size=16&num_hidden_layers=1&num_attention_heads=2&intermediate_size=32&patch_size=8"
    run(tiny_config(tmp_path / "vit", colour_folder, model=vit, seeds=[0], at=[1], image_size=16, num_workers=0),
        progress=False)  # fmt: skip
    for out, rows in ((tmp_path / "bert", 90), (tmp_path / "vit", 60)):
        (config,) = [p.name for p in (out / "data").iterdir()]
        el2n = read_scores(out, config)["el2n"]
        assert len(el2n) == rows and np.isfinite(el2n).all() and (el2n > 0).all()


def test_streaming_scores_at_init_equal_the_map_style_ones(tmp_path, colour_folder):  # noqa: F811
    common = dict(seeds=[0], at=[0], image_size=16, num_workers=1, data_path="loader")
    run(tiny_config(tmp_path / "map", colour_folder, **common), progress=False)
    run(tiny_config(tmp_path / "stream", colour_folder, streaming=True, **common), progress=False)
    a, b = read_scores(tmp_path / "map", "cnn-ep0"), read_scores(tmp_path / "stream", "cnn-ep0")
    assert list(a["example_id"]) == list(b["example_id"])
    np.testing.assert_allclose(a["el2n"], b["el2n"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_kill_9_mid_epoch_on_the_loader_path_resumes_exactly(tmp_path, colour_folder):  # noqa: F811
    def args(out: Path) -> list[str]:
        return ["--output-dir", str(out), "--dataset", str(colour_folder), "--image-size", "32", "--seeds", "0",
                "--unit", "step", "--at", "0,6,12", "--epochs", "4", "--scores", "el2n,forgetting",
                "--width", "0.25", "--batch-size", "16", "--augmentation", "resized-crop-flip",
                "--num-workers", "1", "--no-progress"]  # fmt: skip

    reference = tmp_path / "uninterrupted"
    run_engine(args(reference))
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [PYTHON, str(LAUNCH), *args(out)], cwd=REPO_ROOT, env=subprocess_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mid = ckpt.checkpoint_path(out / STATE, 0, 6)  # 4 steps per epoch: step 6 is mid epoch 1
    deadline = time.monotonic() + 180
    while not mid.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL and not (out / "README.md").exists()
    assert ckpt.latest_checkpoint(out / STATE, 0)[0] < 16
    run_engine(args(out))
    for config in ("cnn-step6", "cnn-ep3"):
        left, right = read_scores(reference, config), read_scores(out, config)
        for name in ("el2n", "forgetting"):
            np.testing.assert_array_equal(left[name], right[name], err_msg=f"{config}/{name}")
    assert json.loads((out / STATE / "data.json").read_text())["augmentation"] == "resized-crop-flip"


@pytest.mark.multi_process
def test_two_processes_on_the_loader_path_give_the_one_process_scores(tmp_path, colour_folder):  # noqa: F811
    """Seeds spread over 2 processes, scoring dealt in whole batches (60 rows, batches of 16: uneven shares)."""
    import sys

    def args(out: Path) -> list[str]:
        return ["--output-dir", str(out), "--dataset", str(colour_folder), "--image-size", "16", "--seeds", "0,1",
                "--at", "0,1", "--scores", "el2n,forgetting", "--width", "0.25", "--batch-size", "16",
                "--eval-batch-size", "16", "--num-workers", "1", "--no-progress"]  # fmt: skip

    one, two = tmp_path / "one", tmp_path / "two"
    run_engine(args(one))
    run_engine(
        args(two), launcher=[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    )
    for config in ("cnn-ep0", "cnn-ep1"):
        left, right = read_scores(one, config), read_scores(two, config)
        assert list(left["example_id"]) == list(right["example_id"])
        assert set(left) == set(right)
        for name in ("el2n", "forgetting"):
            if name in left:  # forgetting from epoch 1 on
                np.testing.assert_allclose(left[name], right[name], rtol=1e-5, atol=1e-6, err_msg=f"{config}/{name}")
