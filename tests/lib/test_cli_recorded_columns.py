"""A dataset scored with ``--label-column`` (a name the detection does not know) is pruned and shown from the shell
without the flag: ``datadiet prune`` and ``show --examples`` read the columns the card records, as ``prune`` does."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datadiet_hub.cli import main
from datadiet_hub.hashing import example_id
from datadiet_hub.schema import score_schema
from datadiet_hub.writer import write_score_dataset

FORTUNES = "/usr/share/games/fortunes/fortunes"


def _texts(n: int) -> list[str]:
    with open(FORTUNES, encoding="utf-8") as handle:
        pieces = [" ".join(p.split()) for p in handle.read().split("\n%\n")]
    return [p for p in pieces if 10 <= len(p) <= 160][:n]


def _scored_csv(tmp_path, n: int = 24):
    texts = _texts(n)
    labels = [i % 3 for i in range(len(texts))]  # integer classes under a name detection does not know
    path = tmp_path / "quotes.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Sentence", "klass", "file"])
        writer.writerows([t, k, "fortunes"] for t, k in zip(texts, labels))
    scores = np.linspace(0.1, 0.9, len(texts), dtype=np.float32)[::-1].copy()
    table = pa.table(
        {
            "idx": np.arange(len(texts)),
            "example_id": [example_id(t, k) for t, k in zip(texts, labels)],
            "label": np.asarray(labels),
            "el2n": scores,
            "el2n_std": np.zeros_like(scores),
            "el2n_per_seed": [[float(s)] for s in scores],
        },
        schema=score_schema(["el2n"]),
    )
    provenance = {
        "format_version": 1,
        "source": {
            "dataset": "quotes.csv",
            "split": "train",
            "revision": None,
            "num_rows": len(texts),
            "input_column": "Sentence",
            "input_kind": "text",
            "label_column": "klass",
        },
        "scoring": {"model": "fasttext", "seeds": [0]},
        "configs": {"fasttext-ep1": {"epoch": 1, "metrics": ["el2n"]}},
    }
    folder = write_score_dataset(tmp_path / "scores", {"fasttext-ep1": table}, provenance=provenance, plots=False)
    return path, folder, len(texts)


def test_prune_reads_the_card_columns_when_detection_cannot(tmp_path, capsys):
    path, folder, n = _scored_csv(tmp_path)
    out = tmp_path / "kept.parquet"
    code = main(["prune", str(path), "--scores", str(folder), "--fraction", "0.5", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"Kept {n // 2} of {n} rows" in captured.out
    kept = pq.read_table(out)
    assert sorted(kept.column("klass").to_pylist()) == sorted(([i % 3 for i in range(n)])[: n // 2])


def test_show_examples_reads_the_card_columns_when_detection_cannot(tmp_path, capsys):
    path, folder, _ = _scored_csv(tmp_path)
    out = tmp_path / "examples.md"
    code = main(["show", str(folder), "--examples", str(path), "--per-group", "2", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "Hardest" in out.read_text(encoding="utf-8")
