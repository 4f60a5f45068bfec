"""Text classification data: column detection (text, label, string labels), a tokenizer trained on the split or
loaded from a local tokenizer.json, padding/truncation/attention masks, ids that hash text and label, and text
batches from the DataLoader path (map-style and streamed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from datadiet_hub.columns import Columns, InputKind, detect_columns
from datadiet_hub.hashing import example_id
from datadiet_hub.scoring.data.loader import Inputs, epoch_batches, scan
from datadiet_hub.scoring.data.text import TextEncoder, iter_texts, load_tokenizer, pad_id_of, train_tokenizer
from datadiet_hub.sources import load_source

WORDS = {
    "de": "der die das und ist nicht ein eine mit auf für von zu den",
    "es": "el la los las y es no un una con para por de que en",
    "it": "il lo la gli e è non un una con per di che in del",
}


def corpus(n: int = 90, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lang = sorted(WORDS)[i % 3]
        words = WORDS[lang].split()
        rows.append({"text": " ".join(rng.choice(words, int(rng.integers(3, 30)))), "language": lang, "n": i})
    return rows


@pytest.fixture(scope="module")
def text_jsonl(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "train.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in corpus()))
    return path


def test_text_and_string_label_columns_are_detected_and_encoded(text_jsonl):
    source = load_source(str(text_jsonl))
    assert source.columns == Columns("text", InputKind.TEXT, "language")
    assert source.class_names == ["de", "es", "it"] and source.num_classes == 3
    assert source.dataset[1]["language"] == 1  # "es"
    assert detect_columns(source.dataset) == Columns("text", InputKind.TEXT, "language")


def test_no_label_column_is_a_clear_error(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["a", "b"], "score": [0.1, 0.2]})
    with pytest.raises(
        ValueError, match=r"No label column found among the columns \['text', 'score'\].*--label-column"
    ):
        detect_columns(ds)
    ds = datasets.Dataset.from_dict({"url": ["a"], "title": ["b"], "label": [0]})
    assert detect_columns(ds) == Columns("title", InputKind.TEXT, "label")  # several text columns: the usual name
    ds = datasets.Dataset.from_dict({"a": ["x"], "b": ["y"], "label": [0]})
    with pytest.raises(ValueError, match="Several text columns.*--input-column"):
        detect_columns(ds)
    with pytest.raises(ValueError, match="Name one input column"):
        detect_columns(ds, image_column="a", text_column="b")


def test_example_id_hashes_text_and_label():
    assert example_id("hallo welt", 0) == example_id("hallo welt", 0)
    assert example_id("hallo welt", 0) != example_id("hallo welt", 1)
    assert example_id("hallo welt", 0) != example_id("hallo  welt", 0)


def test_trained_tokenizer_pads_truncates_and_masks(tmp_path):
    texts = [row["text"] for row in corpus()]
    tokenizer = train_tokenizer(iter(texts), vocab_size=200, kind="wordpiece")
    assert tokenizer.get_vocab_size() <= 200 and pad_id_of(tokenizer) == 0
    encoder = TextEncoder(tokenizer, max_length=8)
    out = encoder(["der die das", "el " * 40, ""])
    assert out["input_ids"].shape == (3, 8) and out["input_ids"].dtype == np.int64
    assert out["attention_mask"].tolist()[0] == [1, 1, 1, 1, 1, 0, 0, 0]  # [CLS] 3 words [SEP], padded
    assert out["attention_mask"][1].sum() == 8 and out["attention_mask"][2].sum() == 2  # truncated; empty
    assert (out["input_ids"][out["attention_mask"] == 0] == 0).all()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    loaded = TextEncoder(load_tokenizer(tmp_path), max_length=8)
    again = loaded(["der die das", "el " * 40, ""])
    assert all(np.array_equal(out[k], again[k]) for k in out)
    bpe = train_tokenizer(iter(texts), vocab_size=150, kind="bpe")
    assert TextEncoder(bpe, 16)(["il lo la"])["attention_mask"].sum() >= 3
    with pytest.raises(FileNotFoundError, match="Tokenizer file .*nowhere' not found"):
        load_tokenizer(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="Unknown tokenizer kind 'sentencepiece'"):
        train_tokenizer(iter(texts), kind="sentencepiece")


def test_text_batches_map_style_and_streamed(text_jsonl):
    source = load_source(str(text_jsonl))
    tokenizer = train_tokenizer(iter_texts(source.dataset, "text"), vocab_size=120)
    inputs = Inputs("text", "text", "language", encoder=TextEncoder(tokenizer, 16))
    batches = list(
        epoch_batches(source.dataset, inputs, batch_size=32, train=True, order=np.arange(90)[::-1], num_workers=2)
    )
    assert [len(b["idx"]) for b in batches] == [32, 32, 26]
    first = batches[0]
    assert set(first) == {"idx", "labels", "input_ids", "attention_mask"}
    assert first["idx"][0] == 89 and first["labels"][0] == 89 % 3
    assert first["input_ids"].shape[1] <= 16 and first["input_ids"].shape == first["attention_mask"].shape
    manifest = scan(source.dataset, inputs, num_workers=0, progress=False)
    assert manifest.example_ids[4].decode() == example_id(corpus()[4]["text"], 1)
    streamed = load_source(str(text_jsonl), streaming=True)
    names = Inputs("text", "text", "language", encoder=inputs.encoder, label_names=("de", "es", "it"))
    plain = list(epoch_batches(source.dataset, inputs, batch_size=32, train=False, num_workers=0))
    lazily = list(epoch_batches(streamed.dataset, names, batch_size=32, train=False, num_workers=0))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(plain, lazily) for k in a)
    assert np.array_equal(scan(streamed.dataset, names, progress=False).example_ids, manifest.example_ids)
