"""Score your own small CSV and prune it: a few hundred fortunes (the Debian fortunes-de/-es/-it/-min packages),
labelled by language, scored by EL2N with a tiny text transformer, then the hardest rows printed and kept.

    python examples/score_your_own_csv.py                # 100 fortunes per language, ~1 min on 2 CPU cores
    DATADIET_EXAMPLE_ROWS=30 python examples/score_your_own_csv.py

Needs the [torch] and [text] extras. Writes under runs/example-csv/ (or $DATADIET_EXAMPLE_DIR).
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import datadiet_hub

FORTUNES = Path("/usr/share/games/fortunes")
# language -> its fortune files (the English ones sit at the top level, beside other packages' files)
LANGUAGES = {
    "de": sorted((FORTUNES / "de").glob("*")),
    "es": sorted((FORTUNES / "es").glob("*")),
    "it": sorted((FORTUNES / "it").glob("*")),
    "en": [FORTUNES / name for name in ("fortunes", "literature", "riddles")],
}


def fortunes(files: list[Path]) -> list[str]:
    """Short fortunes from fortune files: blocks between lines holding only '%'."""
    texts = []
    for path in (p for p in files if p.is_file() and p.suffix not in (".dat", ".u8")):
        blocks = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
        texts += [" ".join(b.split()) for b in blocks if 20 <= len(b) <= 300]
    return sorted(set(texts))


def write_csv(path: Path, per_language: int) -> None:
    rng = random.Random(0)
    rows = []
    for language, files in LANGUAGES.items():
        texts = fortunes(files)
        rows += [{"text": t, "language": language} for t in rng.sample(texts, min(per_language, len(texts)))]
    rng.shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "language"])
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    from datasets import load_dataset

    from datadiet_hub.scoring.cli import main as score

    per_language = int(os.environ.get("DATADIET_EXAMPLE_ROWS", "100"))
    work = Path(os.environ.get("DATADIET_EXAMPLE_DIR", "runs/example-csv"))
    data, out = work / "fortunes.csv", work / "scores"
    write_csv(data, per_language)
    # the same flags as `datadiet score`; rerunning resumes (and then only re-reads the finished scores)
    code = score(
        [
            "--dataset", str(data), "--text-column", "text", "--label-column", "language",
            "--model", "text-transformer", "--width", "0.25", "--max-length", "48", "--vocab-size", "800",
            "--seeds", "0,1", "--at", "2", "--scores", "el2n", "--batch-size", "32",
            "--optimizer", "adam", "--lr", "0.002", "--weight-decay", "0", "--no-progress",
            "--output-dir", str(out),
        ]
    )  # fmt: skip
    if code:
        raise SystemExit(code)
    scores = datadiet_hub.load_scores(str(out), "text-transformer-ep2")
    ds = load_dataset("csv", data_files=str(data), split="train")  # string labels: mapped through the card's names
    kept = datadiet_hub.prune(ds, scores, column="el2n", fraction=0.5)
    print(f"kept {len(kept)} of {len(ds)} fortunes (the hardest half by EL2N)")
    order = sorted(range(len(scores)), key=lambda i: -scores[i]["el2n"])[:3]
    for i in order:
        print(f"  hardest: [{ds[i]['language']}] {ds[i]['text'][:70]}")


if __name__ == "__main__":
    main()
