"""A small version of ``experiments/own_data.py``: the variable-size colour image folder made from the Debian
Fashion-MNIST and the fortunes by language, each scored end to end from the CLI and measured from plain
``load_dataset`` (the full runs: docs/results/own_data.csv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datadiet_hub.sources import FASHION_MNIST_DIR
from experiments import own_data

needs_fmnist = pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz").exists(),
    reason="needs the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)
needs_fortunes = pytest.mark.skipif(
    not all((own_data.FORTUNES / lang).is_dir() for lang in ("de", "es", "it")),
    reason="needs the Debian packages fortunes-de fortunes-es fortunes-it fortunes-min (apt-get install ...)",
)


def test_auroc_and_agreement_measures():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert own_data.auroc(scores, np.array([0, 0, 1, 1])) == 0.75
    assert own_data.auroc(scores, np.array([0, 0, 0, 1])) == 1.0
    per_seed = np.array([[1, 2], [2, 1], [3, 3], [4, 4]], dtype=float)
    assert own_data.seed_spearman(per_seed) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)


def test_fortunes_are_split_on_percent_lines(tmp_path):
    path = tmp_path / "f"
    path.write_bytes("Erste Weisheit,\nzweite Zeile.\n%\nkurz\n%\nDritte Weisheit über Größe.\n".encode())
    assert own_data.read_fortunes(path) == ["Erste Weisheit, zweite Zeile.", "Dritte Weisheit über Größe."]


@needs_fmnist
@pytest.mark.slow
def test_image_folder_small_end_to_end(tmp_path):
    root = own_data.make_image_folder(tmp_path / "images", n=150, flip=0.04)
    files = sorted((root / "train").rglob("*.*"))
    assert len(files) == 150 and {f.suffix for f in files} == {".png", ".jpg"}
    sizes = {Image.open(f).size for f in files}
    assert len(sizes) > 20 and all(20 <= s <= 96 for size in sizes for s in size)
    assert all(Image.open(f).mode == "RGB" for f in files[:10])
    flipped = own_data.image_flip_rows(root)
    assert flipped.sum() == 6 == len(json.loads((root / "flips.json").read_text()))
    results = tmp_path / "own.csv"
    own_data.main(["images", "--n", "150", "--seeds", "0,1", "--epochs", "1", "--work", str(tmp_path),
                   "--results", str(results)])  # fmt: skip
    (row,) = list(csv.DictReader(open(results)))
    assert (row["rows"], row["flipped"], row["data_path"], row["config"]) == ("150", "6", "loader", "cnn-ep1")
    assert 0.0 <= float(row["el2n_auroc"]) <= 1.0 and float(row["auroc_ci_low"]) <= float(row["auroc_ci_high"])


@needs_fortunes
@pytest.mark.slow
def test_fortunes_small_end_to_end(tmp_path):
    results = tmp_path / "own.csv"
    own_data.main(["text", "--per-language", "25", "--seeds", "0,1", "--epochs", "1", "--max-length", "32",
                   "--vocab-size", "300", "--work", str(tmp_path), "--results", str(results)])  # fmt: skip
    rows = [json.loads(line) for line in open(tmp_path / "text" / "train.jsonl", encoding="utf-8")]
    assert len(rows) == 100 and {r["language"] for r in rows} == {"de", "en", "es", "it"}
    (row,) = list(csv.DictReader(open(results)))
    assert (row["rows"], row["flipped"], row["model"]) == ("100", "4", "text-transformer")
    assert -1.0 <= float(row["seed_spearman"]) <= 1.0
