"""Your own data, end to end, as a user works: ``datadiet score`` with no model or column flags -> ``datadiet
publish`` -> ``load_scores`` and plain ``load_dataset("parquet")`` -> the source loaded the usual way -> ``prune``
and ``ds.filter(keep(...))`` agree (by position and by content) -> train on the kept rows. One case per form a
user's data takes (JSON lines, CSV, imagefolder, parquet, save_to_disk); the run is made small by flags only.
Then the commands of docs/guide.md "Your own data", read from the file and run, and the bad inputs of that path."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import datasets
import numpy as np
import own_files  # tests/scoring is on sys.path (conftest)
import pytest

import datadiet_hub
from datadiet_hub.cli import main

SMALL = ["--num-seeds", "2", "--epochs", "1", "--at", "1", "--batch-size", "32", "--no-progress"]
"""How small the run is; no model, column or data flags."""
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"

needs_fortunes = pytest.mark.skipif(
    not own_files.fortunes_available(),
    reason="needs the Debian packages fortunes-min fortunes-de fortunes-es fortunes-it",
)


def _json(path: Path) -> datasets.Dataset:
    return datasets.load_dataset("json", data_files=str(path), split="train")


def _csv(path: Path) -> datasets.Dataset:
    return datasets.load_dataset("csv", data_files=str(path), split="train")


def _imagefolder(path: Path) -> datasets.Dataset:
    return datasets.load_dataset("imagefolder", data_dir=str(path), split="train")


def _parquet(path: Path) -> datasets.Dataset:
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def _saved(path: Path) -> datasets.Dataset:
    return datasets.load_from_disk(str(path))


CASES = {
    "jsonl": (own_files.write_jsonl, "texts.jsonl", _json, "sentence"),
    "csv": (own_files.write_csv, "texts.csv", _csv, "Text"),
    "imagefolder": (own_files.write_imagefolder, "digits", _imagefolder, "image"),
    "parquet": (own_files.write_parquet, "digits.parquet", _parquet, "img"),
    "save_to_disk": (own_files.write_saved, "digits_saved", _saved, "image"),
}
TEXT_CASES = ("jsonl", "csv")


@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param(c, marks=needs_fortunes) if c in TEXT_CASES else c for c in CASES])
def test_own_data_end_to_end(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATADIET_HOME", str(tmp_path / "store"))
    make, name, load, input_column = CASES[case]
    path = make(tmp_path / name)

    assert main(["score", "--dataset", name, "--output-dir", "runs/own", *SMALL]) == 0
    assert main(["publish", "runs/own", "--name", "own-datadiet", "--version", "v1"]) == 0
    scores = datadiet_hub.load_scores("own-datadiet", version="v1")
    provenance = datadiet_hub.load_provenance("own-datadiet", version="v1")
    assert provenance.source.input_column == input_column
    assert provenance.source.input_kind == ("text" if case in TEXT_CASES else "image")

    files = sorted((tmp_path / "store").rglob("*.parquet"))
    plain = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    assert plain["example_id"] == scores["example_id"]
    assert np.allclose(plain["el2n"], scores["el2n"]) and np.isfinite(plain["el2n"]).all()

    ds = load(path)
    n = len(ds)
    assert len(scores) == n and provenance.source.num_rows == n
    ds = ds.add_column("row", list(range(n)))  # to compare selections; not a column the join reads
    el2n = np.asarray(scores["el2n"], dtype=np.float64)[np.argsort(scores["idx"])]
    hardest = set(np.argsort(-el2n, kind="stable")[: n // 2].tolist())

    pruned = datadiet_hub.prune(ds, scores, fraction=0.5)
    kept = ds.filter(datadiet_hub.keep(scores, fraction=0.5), with_indices=True, batched=True)
    assert pruned["row"] == kept["row"]
    assert set(pruned["row"]) == hardest or len(set(el2n.tolist())) < n  # ties may pick other equal rows
    assert len(pruned) == n // 2

    shuffled = ds.shuffle(seed=5)  # a reordered copy joins by content: the ids do not depend on the label's form
    by_content = datadiet_hub.prune(shuffled, scores, fraction=0.5, on="example_id", verify="full")
    streamed = shuffled.to_iterable_dataset().filter(
        datadiet_hub.keep(scores, fraction=0.5, on="example_id"), with_indices=True, batched=True
    )
    assert sorted(by_content["row"]) == sorted(row["row"] for row in streamed) == sorted(pruned["row"])

    kept.remove_columns("row").save_to_disk(str(tmp_path / "kept"))  # train on the kept rows
    small = ["--num-seeds", "1", "--epochs", "1", "--at", "1", "--batch-size", "32", "--no-progress"]
    assert main(["score", "--dataset", "kept", "--output-dir", "runs/kept", *small]) == 0
    trained = datadiet_hub.load_scores("runs/kept")
    assert len(trained) == len(kept)
    accuracy = datadiet_hub.load_provenance("runs/kept").configs
    assert accuracy  # the run recorded its training metrics


def _guide_blocks(section: str = "Your own data") -> tuple[list[list[str]], list[str]]:
    """The shell commands and the Python blocks of one section of docs/guide.md."""
    text = GUIDE.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    commands, python = [], []
    for lang, code in re.findall(r"```(bash|python)\n(.*?)```", body, flags=re.S):
        if lang == "python":
            python.append(code)
        else:
            commands += [shlex.split(line) for line in code.splitlines() if line.startswith("datadiet ")]
    return commands, python


@pytest.mark.slow
@needs_fortunes
def test_the_guides_own_data_commands_run(tmp_path, monkeypatch):
    """The guide's commands, as written, on files named as the guide names them; only the run is made small."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATADIET_HOME", str(tmp_path / "store"))
    own_files.write_csv(tmp_path / "my_texts.csv", per_language=40)
    own_files.write_imagefolder(tmp_path / "my_images", n=120)
    commands, python = _guide_blocks()
    assert [c[1] for c in commands[:3]] == ["score", "publish", "prune"] and python
    for command in commands:
        args = command[1:] + (SMALL if command[1] == "score" else [])
        assert main(args) == 0, command
    kept_file = datasets.load_dataset("parquet", data_files="my_texts_kept.parquet", split="train")
    names: dict = {}
    for code in python:
        exec(compile(code, str(GUIDE), "exec"), names)
    assert names["kept"]["Text"] == names["same"]["Text"] == kept_file["Text"]
    assert len(names["kept"]) == len(names["ds"]) // 2


# -- bad input: one error line, exit code 2, nothing left behind ----------------------------------------------------


def _rows(n: int = 24) -> list[dict]:
    words = "der die das und ist nicht ein eine mit auf el la los las y es no un una con".split()
    rng = np.random.default_rng(0)
    return [{"text": " ".join(rng.choice(words, 6)), "label": "ab"[i % 2]} for i in range(n)]


def _jsonl(path: Path, rows: list[dict]) -> str:
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path.name


def _image_tree(root: Path, bad: bytes | None) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / "train" / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8), "L").save(
                root / "train" / label / f"{i}.png"
            )
    if bad is not None:
        (root / "train" / "a" / "0.png").write_bytes(bad)
    return root.name


def _truncated_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 40), 7, np.uint8), "L").save(buffer, format="PNG")
    return buffer.getvalue()[:60]


BAD = {
    "null text": (lambda d: _jsonl(d / "t.jsonl", [{**r, "text": None} if i == 3 else r for i, r in enumerate(_rows())]),
                  [], r"1 row\(s\) have a null or empty text in column 'text' \(first: row 3\)"),
    "empty text": (lambda d: _jsonl(d / "t.jsonl", [{**r, "text": "  "} if i == 5 else r for i, r in enumerate(_rows())]),
                   [], r"null or empty text in column 'text' \(first: row 5\)"),
    "null label": (lambda d: _jsonl(d / "t.jsonl", [{**r, "label": None} if i == 2 else r for i, r in enumerate(_rows())]),
                   [], r"1 row\(s\) have no label in column 'label' \(first: row 2\)"),
    "mixed labels": (lambda d: _jsonl(d / "t.jsonl", [{**r, "label": 7} if i == 2 else r for i, r in enumerate(_rows())]),
                     [], "'label' looks like the label but holds mixed-type values"),
    "one class": (lambda d: _jsonl(d / "t.jsonl", [{**r, "label": "a"} for r in _rows()]),
                  [], "Every row has the label 'a'"),
    "missing column": (lambda d: _jsonl(d / "t.jsonl", _rows()), ["--input-column", "body"],
                       r"Column 'body' \(--input-column\) is not in the dataset; its columns are \['text', 'label'\]"),
    "missing label column": (lambda d: _jsonl(d / "t.jsonl", _rows()), ["--label-column", "Label"],
                             r"Column 'Label' \(--label-column\) is not in the dataset"),
    "non-UTF-8 CSV": (lambda d: (d / "t.csv").write_bytes("text,label\nGröße über alles,a\nnoch eins,b\n".encode("latin-1"))
                      and "t.csv", [], "Could not read 't.csv': it is not UTF-8 text"),
    "zero-byte image": (lambda d: _image_tree(d / "imgs", b""), [], r"Cannot decode '.*0\.png' as an image"),
    "corrupt image": (lambda d: _image_tree(d / "imgs", _truncated_png()), [], r"Cannot decode '.*0\.png' as an image"),
    "not an image": (lambda d: _image_tree(d / "imgs", b"plain text, not a PNG\n"), [],
                     r"Cannot decode '.*0\.png' as an image"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_error_line_and_leaves_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make, flags, message = BAD[case]
    name = make(tmp_path)
    code = main(["score", "--dataset", name, "--output-dir", "out", *flags, *SMALL])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and re.search(message, lines[0]), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # no folder that would pin a rerun to this config
