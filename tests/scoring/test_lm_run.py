"""``datadiet score`` on a text corpus without labels: the objective is chosen by itself, the score dataset loads with
plain ``load_dataset("parquet")`` and ``load_scores``, its scores equal a direct computation with the saved
checkpoints, and it prunes the corpus."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import datadiet_hub
from datadiet_hub.scoring import checkpoint as ckpt
from datadiet_hub.scoring.cli import main
from datadiet_hub.scoring.data.text import load_tokenizer
from datadiet_hub.scoring.lm.models import build_lm


def stdlib_docstrings(limit: int = 48) -> list[str]:
    """Real English text that every Python has: docstrings of the standard library's public functions."""
    import collections
    import json as json_module
    import os
    import re
    import shutil
    import textwrap

    texts = []
    for module in (os, re, shutil, textwrap, json_module, collections):
        for name in sorted(dir(module)):
            doc = inspect.getdoc(getattr(module, name, None))
            if not name.startswith("_") and doc and 40 < len(doc) < 1500 and doc not in texts:
                texts.append(doc)
    return texts[:limit]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    texts = stdlib_docstrings()
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    with path.open("w") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"text": text, "domain": ["os", "text"][i % 2]}) + "\n")
    return path


@pytest.fixture(scope="module")
def scored(corpus_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scores") / "run"
    args = ["--dataset", str(corpus_file), "--output-dir", str(out), "--seeds", "0,1", "--at", "0,1"]
    args += ["--scores", "loss,el2n,grand", "--max-length", "24", "--vocab-size", "200", "--width", "0.25"]
    args += ["--batch-size", "16", "--no-progress"]
    assert main(args) == 0
    return out


def test_auto_objective_is_logged(corpus_file, tmp_path, caplog):
    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.lm.run import resolve_objective

    with caplog.at_level(logging.WARNING):
        assert resolve_objective(ScoringConfig(dataset=str(corpus_file))) == "causal-lm"
    assert "no label column" in caplog.text and "causal-lm" in caplog.text
    assert resolve_objective(ScoringConfig(dataset=str(corpus_file), label_column="domain")) == "classification"


def test_scores_load_with_plain_datasets_and_match_a_direct_computation(scored, corpus_file):
    import datasets

    texts = [json.loads(line)["text"] for line in corpus_file.read_text().splitlines()]
    files = sorted(str(p) for p in (scored / "data" / "causal-transformer-ep1").glob("*.parquet"))
    table = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(table) == len(texts)
    for column in ("idx", "example_id", "num_tokens", "loss", "loss_std", "loss_per_seed", "el2n", "grand"):
        assert column in table.column_names
    assert "label" not in table.column_names
    assert table["idx"] == list(range(len(texts)))
    assert len(set(table["example_id"])) == len(texts)
    # the step-0 scores of seed 0 against the checkpoint, document by document, in float64
    state = scored / ".datadiet"
    tokenizer = load_tokenizer(state / "tokenizer.json")
    step0 = datasets.load_dataset(
        "parquet", data_files=sorted(str(p) for p in (scored / "data" / "causal-transformer-ep0").glob("*.parquet"))
    )["train"]
    tensors, _ = ckpt.load(ckpt.checkpoint_path(state, 0, 0))
    model = build_lm("causal-transformer", vocab_size=tokenizer.get_vocab_size(), max_length=24, pad_token_id=0,
                     width=0.25)  # fmt: skip
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    model = model.double().eval()
    long_docs = 0
    for i, text in enumerate(texts):
        ids = torch.tensor(tokenizer.encode(text).ids)
        targets, losses, el2ns = [], [], []
        for start in range(0, len(ids) - 1, 23):  # windows of 24 tokens overlapping by one
            window = ids[start : start + 24]
            with torch.no_grad():
                logits = model(window[None])[0, :-1]
            losses.append(F.cross_entropy(logits, window[1:], reduction="none"))
            el2ns.append((logits.softmax(-1) - F.one_hot(window[1:], logits.shape[-1])).norm(dim=-1))
            targets.append(window[1:])
        long_docs += len(targets) > 1
        assert step0[i]["num_tokens"] == len(ids) - 1
        assert step0[i]["loss_per_seed"][0] == pytest.approx(torch.cat(losses).mean().item(), rel=1e-4)
        assert step0[i]["el2n_per_seed"][0] == pytest.approx(torch.cat(el2ns).mean().item(), rel=1e-4)
    assert long_docs > 5  # the test covers documents cut into several windows
    # training moved the scores: the loss at epoch 1 is lower on average than at initialisation
    assert np.mean(table["loss"]) < np.mean(step0["loss"])


def test_the_scores_prune_the_corpus(scored, corpus_file):
    import datasets

    corpus = datasets.load_dataset("json", data_files=str(corpus_file), split="train")
    scores = datadiet_hub.load_scores(str(scored), "causal-transformer-ep1")
    kept = datadiet_hub.prune(corpus, scores, column="loss", fraction=0.5, strategy="easiest", verify="full")
    assert len(kept) == len(corpus) // 2
    loss = np.asarray(scores["loss"])
    assert set(kept["text"]) == {corpus[int(i)]["text"] for i in np.argsort(loss, kind="stable")[: len(kept)]}
    shuffled = corpus.shuffle(seed=0).select(range(30))  # by content: the text alone identifies a document
    by_content = datadiet_hub.prune(shuffled, scores, column="loss", fraction=0.5, on="example_id", missing="drop")
    assert 0 < len(by_content) < 30


def test_datadiet_prune_keeps_the_middle_within_each_domain(scored, corpus_file, tmp_path):
    import datasets

    from datadiet_hub.cli import main as datadiet

    out = tmp_path / "kept"
    args = [str(corpus_file), "--scores", str(scored), "--config", "causal-transformer-ep1", "--column", "loss"]
    args += ["--strategy", "middle", "--by", "domain", "--fraction", "0.5", "--output", str(out)]
    assert datadiet(["prune", *args]) == 0
    kept = datasets.load_from_disk(str(out))
    corpus = datasets.load_dataset("json", data_files=str(corpus_file), split="train")
    for domain in ("os", "text"):
        assert kept["domain"].count(domain) == pytest.approx(corpus["domain"].count(domain) / 2, abs=1)


def test_a_corpus_run_loads_its_split_once(corpus_file, tmp_path, monkeypatch):
    """Choosing the objective opens the split; the run tokenizes that same split instead of loading it again."""
    import datasets

    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    args = ["--dataset", str(corpus_file), "--output-dir", str(tmp_path / "run"), "--seeds", "0", "--at", "0"]
    args += ["--max-length", "24", "--vocab-size", "200", "--width", "0.25", "--no-progress"]
    assert main(args) == 0
    assert len(calls) == 1, calls


def test_precision_applies_to_reference_lm_training(corpus_file, tmp_path):
    """``--precision bf16`` is part of a corpus run's recorded configuration, so its training runs under bf16
    autocast as a classifier's does (the shared ``train.start_seed`` setup): the bf16 weights after one epoch differ
    from the float32 ones, slightly. Both runs read one tokenizer file."""
    from datadiet_hub.scoring.data.text import train_tokenizer

    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(train_tokenizer(iter(stdlib_docstrings()), vocab_size=200).to_str())

    def trained(precision: str) -> dict[str, torch.Tensor]:
        out = tmp_path / precision
        args = ["--dataset", str(corpus_file), "--output-dir", str(out), "--seeds", "0", "--at", "1"]
        args += ["--objective", "causal-lm", "--max-length", "24", "--vocab-size", "200", "--width", "0.25"]
        args += ["--batch-size", "16", "--precision", precision, "--tokenizer", str(tokenizer), "--no-progress"]
        assert main(args) == 0
        state = out / ".datadiet"
        step = ckpt.latest_checkpoint(state, 0)
        assert step is not None and step[0] > 0
        return ckpt.load(step[1])[0]

    fp32, bf16 = trained("fp32"), trained("bf16")
    weights = [k for k in fp32 if k.startswith("model.") and fp32[k].is_floating_point()]
    gaps = [float((fp32[k] - bf16[k]).abs().max()) for k in weights]
    assert max(gaps) > 0  # trained under autocast, not in float32
    assert max(gaps) < 0.1  # and the same training otherwise


def test_a_typod_text_column_of_a_corpus_gets_the_close_match(corpus_file):
    import datasets

    from datadiet_hub.errors import InvalidArgumentError
    from datadiet_hub.scoring.lm.corpus import detect_text_column

    corpus = datasets.load_dataset("json", data_files=str(corpus_file), split="train")
    with pytest.raises(InvalidArgumentError, match="Did you mean 'text'\\?"):
        detect_text_column(corpus, "txet")


def test_show_examples_of_a_corpus_without_labels(scored, corpus_file, capsys, tmp_path):
    """``datadiet show RUN --examples CORPUS``: the hardest and easiest documents with their text; no mislabeled
    group (there are no labels), in the terminal and in a Markdown file."""
    import datasets

    from datadiet_hub.cli import main as datadiet

    args = ["show", str(scored), "--config", "causal-transformer-ep1", "--examples", str(corpus_file)]
    assert datadiet([*args, "--column", "loss", "--per-group", "3", "--max-chars", "5000"]) == 0
    shown = capsys.readouterr().out
    assert "Hardest (highest loss)" in shown and "Easiest (lowest loss)" in shown and "mislabeled" not in shown
    scores = datasets.load_dataset(str(scored), "causal-transformer-ep1", split="train")
    texts = [json.loads(line)["text"] for line in corpus_file.read_text().splitlines()]
    hardest = int(np.argmax(scores["loss"]))
    assert f"| {hardest} | " in shown and texts[hardest].splitlines()[0][:40] in shown.replace("\\", "")
    out = tmp_path / "examples.md"
    assert datadiet([*args, "--output", str(out)]) == 0
    assert "Easiest (lowest el2n)" in out.read_text() and "mislabeled" not in out.read_text()


def test_two_fresh_bpe_runs_give_the_same_tokenizer_and_scores(corpus_file, tmp_path):
    """A BPE tokenizer trained on the corpus is the same in every run (``tokenizers``' BPE trainer breaks count ties
    by token, deterministically), so two fresh runs with the same seeds give identical files and scores. WordPiece
    training is not reproducible (docs/corpus.md says why), hence this test names ``--tokenizer-kind bpe``."""
    import datasets

    def run(name: str) -> tuple[str, list[float]]:
        out = tmp_path / name
        args = ["--dataset", str(corpus_file), "--output-dir", str(out), "--seeds", "0", "--at", "1"]
        args += ["--objective", "causal-lm", "--max-length", "24", "--vocab-size", "200", "--width", "0.25"]
        args += ["--batch-size", "16", "--tokenizer-kind", "bpe", "--no-progress"]
        assert main(args) == 0
        scores = datasets.load_dataset(str(out), "causal-transformer-ep1", split="train")
        return (out / ".datadiet" / "tokenizer.json").read_text(), scores["loss"]

    (tokenizer_a, loss_a), (tokenizer_b, loss_b) = run("a"), run("b")
    assert tokenizer_a == tokenizer_b
    assert loss_a == loss_b
