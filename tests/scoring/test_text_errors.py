"""Bad inputs on the text path, each through ``datadiet score``: one ``error:`` line naming the bad value and the
fix, its exit code, and no output folder left behind (the corrected command then starts afresh)."""

from __future__ import annotations

import json
import re

import pytest
from test_text import corpus

from datadiet_hub.scoring.cli import main

BERT = "transformers:bert?hidden_size=16&num_hidden_layers=1&num_attention_heads=2&intermediate_size=16"


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"], "language": r["language"]}) + "\n" for r in corpus(40)))
    return path


@pytest.fixture(scope="module")
def bad_tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizers")
    (folder / "truncated.json").write_text('{"version": "1.0", "model": {"type": "WordPiece"')
    (folder / "empty.json").write_text("")
    (folder / "no_model.json").write_text('{"version": "1.0", "truncation": null}')
    return folder


def _score(capsys, out, dataset, *flags) -> tuple[int, list[str]]:
    code = main(
        ["--dataset", str(dataset), "--output-dir", str(out), "--at", "1", "--seeds", "0", "--no-progress", *flags]
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return code, lines


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("truncated.json", r"Tokenizer file '.*truncated\.json' is not a tokenizer .*\(EOF while parsing"),
        ("empty.json", r"Tokenizer file '.*empty\.json' is not a tokenizer"),
        ("no_model.json", r"Tokenizer file '.*no_model\.json' is not a tokenizer .*Model missing"),
    ],
)
def test_a_corrupt_tokenizer_file_is_one_error(tmp_path, capsys, texts, bad_tokenizers, name, expected):
    out = tmp_path / "out"
    code, lines = _score(capsys, out, texts, "--model", "text-transformer", "--tokenizer", str(bad_tokenizers / name))
    assert code == 2 and len(lines) == 1
    assert re.search(expected, lines[0]) and "leave it out to train one" in lines[0]
    assert not out.exists()


def test_a_missing_tokenizer_file_is_not_found(tmp_path, capsys, texts):
    out = tmp_path / "out"
    code, lines = _score(capsys, out, texts, "--model", "text-transformer", "--tokenizer", str(tmp_path / "nope"))
    assert code == 3 and len(lines) == 1 and "not found" in lines[0] and not out.exists()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("transformers:bertt", "'bertt' is neither a local config.json nor a transformers model type. Close: bert"),
        ("transformers:bert?hidden_size", "the options 'hidden_size' are not key=value pairs joined by '&'"),
        ("transformers:bert?hidden_size=abc", "Field 'hidden_size' expected int, got str (value: 'abc')"),
        ("transformers:bert?hiden_size=16", "bert configs have no field 'hiden_size' (close: hidden_size"),
        (BERT.replace("num_attention_heads=2", "num_attention_heads=3"), "not a multiple of the number of attention"),
    ],
)
def test_a_bad_transformers_spec_is_one_error(tmp_path, capsys, texts, spec, expected):
    out = tmp_path / "out"
    code, lines = _score(capsys, out, texts, "--model", spec)
    assert code == 2 and len(lines) == 1, lines
    assert expected in lines[0] and f"--model {spec}" in lines[0]
    assert not out.exists()


def test_the_text_model_on_images_and_an_image_model_on_text(tmp_path, capsys, texts, tiny_parquet):
    code, lines = _score(capsys, tmp_path / "a", tiny_parquet, "--model", "fasttext")
    assert code == 2 and len(lines) == 1
    assert "'fasttext' is a text model (bag of n-grams), but the input column 'image' holds image" in lines[0]
    assert "Leave --model out to use the image default (cnn)" in lines[0]
    code, lines = _score(capsys, tmp_path / "b", texts, "--model", "resnet18")
    assert code == 2 and len(lines) == 1 and "holds text" in lines[0] and "fasttext, text-transformer" in lines[0]
    code, lines = _score(capsys, tmp_path / "c", texts, "--tokenizer", str(tmp_path / "tokenizer.json"))
    assert code == 2 and len(lines) == 1 and "reads the character and word n-grams" in lines[0]
    assert not any((tmp_path / name).exists() for name in "abc")


def test_the_corrected_command_then_runs(tmp_path, capsys, texts):
    out = tmp_path / "out"
    code, _ = _score(capsys, out, texts, "--model", "cnn")
    assert code == 2 and not out.exists()
    code, lines = _score(capsys, out, texts, "--model", BERT)
    assert code == 0 and not lines and (out / "README.md").exists()
