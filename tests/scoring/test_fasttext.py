"""The default text model: hashed n-gram features (against a per-n-gram Python loop), the ``fasttext`` bag model,
exact GraNd for it (float64, against the one-example-at-a-time loop), the default model, optimizer and learning rate
per input kind (flags win), and a few hundred texts scored end to end with no ``--model``."""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest
import torch
from test_text import corpus

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring.data.ngrams import (
    _BASE,
    CHAR_NGRAMS,
    _mix,
    _normalise,
    build_features,
    hash_features,
    load_features,
    save_features,
)
from datadiet_hub.scoring.fasttext import FastText
from datadiet_hub.scoring.metrics._grand_layers import embedding_bag_sq_norms, rule_for
from datadiet_hub.scoring.metrics.grand import per_example_grad_norms, per_example_layer_sq_norms
from datadiet_hub.scoring.metrics.reference import naive_layer_sq_norms
from datadiet_hub.scoring.models import MODELS, build_model, choose_training

TEXTS = [
    "Der Mensch ist, was er isst.",
    "",
    "Chi va piano va sano e va lontano.",
    None,
    "El que  madruga, Dios le ayuda.",
    "la la la la la la",
    "Ça va?  Très bien, merci.",
    "x",
]


def _hash(text: str) -> int:
    value = 0
    for ch in text:
        value = (value * 0x100000001B3 + ord(ch) + 1) % 2**64
    return value


def _one(value: int, salt: int) -> int:
    return int(_mix(np.array([value], dtype=np.uint64), salt)[0])


def _naive_features(text: str | None) -> list[int]:
    """The documented features of one text, one n-gram at a time in plain Python."""
    framed = _normalise(text)
    out = [_one(_hash(framed[i : i + n]), n) for n in CHAR_NGRAMS for i in range(len(framed) - n + 1)]
    words = [_hash(w) for w in framed.split()]
    out += [_one(w, 101) for w in words]
    for a, b in itertools.pairwise(words):
        pair = int((np.array([a], dtype=np.uint64) * _BASE + np.array([_one(b, 0)], dtype=np.uint64))[0])
        out.append(_one(pair, 102))
    return sorted(out)


def test_vectorized_hashes_match_a_loop_over_ngrams():
    hashes, offsets = hash_features(TEXTS)
    assert offsets[0] == 0 and offsets[-1] == len(hashes) and len(offsets) == len(TEXTS) + 1
    for i, text in enumerate(TEXTS):
        assert sorted(hashes[offsets[i] : offsets[i + 1]].tolist()) == _naive_features(text), text


def test_features_get_dense_ids_and_pad_to_the_longest_row(tmp_path):
    features = build_features(TEXTS)
    assert features.ids.min() >= 1 and features.vocab_size == features.ids.max() + 1
    same = build_features(TEXTS)
    np.testing.assert_array_equal(features.ids, same.ids)  # no process-dependent hashing
    batch = features.batch(np.array([5, 1, 0]))
    lengths = features.offsets[[6, 2, 1]] - features.offsets[[5, 1, 0]]
    assert (
        batch["input_ids"].shape == (3, lengths.max()) and batch["attention_mask"].sum(1).tolist() == lengths.tolist()
    )
    assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
    row = batch["input_ids"][2, : lengths[2]]
    np.testing.assert_array_equal(row, features.ids[features.offsets[0] : features.offsets[1]])
    # "la" repeated: its bag holds repeated ids (counts matter to the mean)
    la = features.batch(np.array([5]))["input_ids"][0]
    assert len(np.unique(la)) < len(la)
    save_features(features, tmp_path)
    loaded = load_features(tmp_path)
    assert loaded is not None and loaded.vocab_size == features.vocab_size
    np.testing.assert_array_equal(
        loaded.batch(np.arange(len(TEXTS)))["input_ids"], features.batch(np.arange(8))["input_ids"]
    )


def test_min_count_drops_rare_features():
    every = build_features(TEXTS, min_count=1)
    rare = build_features(TEXTS, min_count=2)
    assert 1 < rare.vocab_size < every.vocab_size
    assert np.diff(rare.offsets).sum() == len(rare.ids) < len(every.ids)


def test_fasttext_grand_is_exact_against_the_per_example_loop():
    torch.manual_seed(0)
    features = build_features(TEXTS)
    batch = features.batch(np.arange(len(TEXTS)))
    inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
    model = build_model("fasttext", num_classes=3, vocab_size=features.vocab_size, pad_token_id=0, width=0.25)
    model = model.double()
    with torch.no_grad():
        model.classifier.weight.normal_()
    assert isinstance(model, FastText)
    assert rule_for("embedding", model.embedding, ["weight"]) is embedding_bag_sq_norms  # the closed form, no replay
    y = torch.arange(len(TEXTS)) % 3
    layers = per_example_layer_sq_norms(model, inputs, y)
    expected = naive_layer_sq_norms(model, inputs, y)
    for name in expected:
        torch.testing.assert_close(layers[name], expected[name], rtol=1e-10, atol=1e-30)
    norms = per_example_grad_norms(model, inputs, y)
    torch.testing.assert_close(norms, torch.stack(list(expected.values())).sum(0).sqrt(), rtol=1e-10, atol=0)
    assert norms.dtype == torch.float64 and (norms > 0).all()


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_rule_counts_repeated_and_padded_ids(mode):
    torch.manual_seed(1)
    bag = torch.nn.EmbeddingBag(6, 3, mode=mode, padding_idx=0).double()
    ids = torch.tensor([[2, 2, 2, 0], [1, 3, 3, 5], [0, 0, 0, 0], [4, 4, 0, 0]])
    g = torch.randn(4, 3, dtype=torch.float64)
    expected = []
    for i in range(4):
        weight = bag.weight.detach().clone().requires_grad_()
        out = torch.nn.functional.embedding_bag(ids[i : i + 1], weight, mode=mode, padding_idx=0)
        (grad,) = torch.autograd.grad((out * g[i]).sum(), weight)
        expected.append(grad.square().sum())
    torch.testing.assert_close(embedding_bag_sq_norms(bag, ids, g), torch.stack(expected), rtol=1e-12, atol=0)


# -- the default model, optimizer and learning rate ------------------------------------------------------------------


def test_defaults_follow_the_input_kind():
    image = choose_training(None, None, None, kind="image", input_column="img")
    assert (image.model, image.optimizer, image.lr, image.weight_decay) == ("cnn", "sgd", 0.1, 5e-4)
    text = choose_training(None, None, None, kind="text", input_column="text")
    assert (text.model, text.optimizer, text.lr, text.text_inputs) == ("fasttext", "adam", 0.01, "ngrams")
    assert text.weight_decay == 0.0
    assert "because the input column 'text' is text" in text.message
    assert text.message.startswith("model fasttext") and "optimizer adam" in text.message and "lr 0.01" in text.message
    transformer = choose_training("text-transformer", None, None, kind="text", input_column="text")
    assert (transformer.optimizer, transformer.lr, transformer.text_inputs) == ("adam", 0.001, "tokens")
    spec = choose_training("transformers:bert?hidden_size=32", None, None, kind="text", input_column="text")
    assert (spec.optimizer, spec.lr) == ("adam", 0.001)


def test_explicit_flags_win():
    sgd = choose_training(None, "sgd", None, kind="text", input_column="text")
    assert (sgd.model, sgd.optimizer, sgd.lr, sgd.weight_decay) == ("fasttext", "sgd", 0.1, 5e-4)  # sgd's usual
    assert "optimizer sgd (--optimizer)" in sgd.message
    lr = choose_training(None, None, 0.5, kind="text", input_column="text")
    assert (lr.optimizer, lr.lr) == ("adam", 0.5) and "lr 0.5 (--lr)" in lr.message
    wd = choose_training(None, None, None, kind="text", input_column="text", weight_decay=1e-5)
    assert wd.weight_decay == 1e-5 and "weight decay 1e-05 (--weight-decay)" in wd.message
    mlp = choose_training("mlp", "adam", 3e-4, kind="image", input_column="image")
    assert (mlp.model, mlp.optimizer, mlp.lr) == ("mlp", "adam", 3e-4) and "; --model)" in mlp.message


@pytest.mark.parametrize(
    ("model", "kind", "expected"),
    [
        ("fasttext", "image", r"'fasttext' is a text model \(bag of n-grams\).*holds image.*Leave --model out.*cnn"),
        (
            "cnn",
            "text",
            r"'cnn' is an image model \(convolutional\).*holds text.*default \(fasttext\).*text-transformer",
        ),
        ("text-transformer", "image", r"text model \(transformer\).*vit-tiny"),
    ],
)
def test_a_model_for_the_other_input_kind_is_refused(model, kind, expected):
    with pytest.raises(InvalidArgumentError, match=expected):
        choose_training(model, None, None, kind=kind, input_column="x")


def test_every_registry_entry_declares_kind_family_and_training():
    for name, entry in MODELS.items():
        assert entry.kind in ("image", "text") and entry.family, name
        assert entry.training.optimizer in ("sgd", "adam") and entry.training.lr > 0, name


# -- end to end -------------------------------------------------------------------------------------------------------


def test_text_scored_with_no_model_flag(tmp_path, caplog):
    """300 texts with 10% flipped labels: the default bag model trains, scores EL2N and GraNd, and both rank the
    flipped rows high; the log names the choice and the reason."""
    from datadiet_hub.scoring.cli import main

    rows = corpus(300, seed=3)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(rows), 30, replace=False)
    languages = sorted({r["language"] for r in rows})
    for i in flipped:
        rows[i]["language"] = languages[(languages.index(rows[i]["language"]) + 1) % len(languages)]
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": r["text"], "language": r["language"]}) + "\n" for r in rows))
    out = tmp_path / "scores"
    with caplog.at_level(logging.INFO, logger="datadiet_hub"):
        args = ["--dataset", str(data), "--output-dir", str(out), "--at", "3", "--seeds", "0,1"]
        code = main([*args, "--scores", "el2n,grand", "--no-progress"])
    assert code == 0
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model ")]
    assert chosen == [
        "model fasttext (bag of n-grams; because the input column 'text' is text), optimizer adam (the bag of n-grams "
        "family's), lr 0.01 (the bag of n-grams family's), weight decay 0 (the bag of n-grams family's)"
    ]
    from conftest import read_scores

    scores = read_scores(out, "fasttext-ep3")
    positive = np.zeros(len(rows), dtype=bool)
    positive[flipped] = True
    for name in ("el2n", "grand"):
        values = scores[name]
        # AUROC: the share of (flipped, clean) pairs ranked in the right order
        auroc = (values[positive][:, None] > values[~positive][None, :]).mean()
        assert auroc > 0.9, (name, auroc)


def test_images_scored_with_no_model_flag_get_the_cnn(tmp_path, tiny_parquet, caplog):
    from conftest import configs_in, tiny_config

    from datadiet_hub.scoring.run import run

    cfg = tiny_config(tmp_path / "out", tiny_parquet, model=None, lr=None, seeds=[0])
    with caplog.at_level(logging.INFO, logger="datadiet_hub"):
        run(cfg, progress=False)
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("model ")]
    assert chosen == [
        "model cnn (convolutional; because the input column 'image' is image), optimizer sgd (the convolutional "
        "family's), lr 0.1 (the convolutional family's), weight decay 0.0005 (the convolutional family's)"
    ]
    assert configs_in(tmp_path / "out") == ["cnn-ep1"]
