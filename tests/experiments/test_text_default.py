"""experiments/text_default.py without training: fortunes become sentences, the flip mask matches the written set,
the results CSV keeps one row set per method and a rerun skips what it holds."""

from __future__ import annotations

import json

import numpy as np

from experiments import text_default as td


def test_fortunes_become_short_sentences(tmp_path):
    path = tmp_path / "fortunes"
    path.write_bytes(
        "Erster Satz ist lang genug. Kurz.\n%\nZweiter Block,\nueber zwei Zeilen verteilt!\n%\n".encode("latin-1")
    )
    assert td.fortune_sentences(path) == ["Erster Satz ist lang genug.", "Zweiter Block, ueber zwei Zeilen verteilt!"]


def test_rows_replace_their_method_and_reruns_skip_them(tmp_path):
    results = tmp_path / "r.csv"
    flipped = np.array([True, False, False, True, False])
    scores = {"el2n": np.array([0.9, 0.1, 0.2, 0.8, 0.3])}
    rows = td.metric_rows("m", "model", scores, flipped, seeds="0", epochs=1, wall_s=1.0, hardware="h", command="c")
    assert rows[0]["auroc"] == 1.0 and rows[0]["rows"] == 5 and rows[0]["flipped"] == 2
    td.write_rows(rows, results)
    td.write_rows(rows, results)
    assert results.read_text().count("\nm,") == 1
    assert td.measured(results, 5, 2) == {"m"} and td.measured(results, 6, 2) == set()


def test_the_flip_mask_is_the_one_written(tmp_path, monkeypatch):
    texts = {lang: [f"{lang} sentence number {i} is here." for i in range(30)] for lang in ("de", "en", "es", "it")}
    monkeypatch.setattr(td, "language_files", lambda language: [language])
    monkeypatch.setattr(td, "fortune_sentences", lambda language: texts[language])
    data, mask = td.make_set(tmp_path, per_language=20, flip=0.1)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(rows) == 80 and mask.sum() == 8
    wrong = [r["language"] != r["text"].split()[0] for r in rows]
    assert wrong == mask.tolist()
    again, mask_again = td.make_set(tmp_path, per_language=20, flip=0.1)
    assert again == data and (mask_again == mask).all()
