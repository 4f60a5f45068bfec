"""The default text model on real text: how fast ``datadiet score`` (no ``--model``) scores a language-identification
set and how well its scores find the flipped labels, next to a linear model on character n-grams (scikit-learn) and,
optionally, the ``text-transformer``.

The set: the fortunes of the Debian ``fortunes-min`` (English), ``fortunes-de``, ``fortunes-es`` and ``fortunes-it``
packages, split on the ``%`` lines and then into sentences, whitespace collapsed, 20-200 characters, deduplicated,
``--per-language`` of each language drawn with a fixed seed, shuffled, and ``--flip`` of the labels changed to
another language (fixed seed). Real text only; nothing is generated.

Rows of ``docs/results/text_default.csv`` (one per method, replaced on rerun; each written as soon as it is
measured, and a finished scoring run is reused, so an interrupted run resumes):

- ``datadiet score`` with the defaults (no ``--model``/``--optimizer``/``--lr``), ``--at EPOCHS``, EL2N and GraNd:
  the detection AUROC of each score for the flipped rows with a 95% bootstrap interval over rows, and the wall time;
- the baseline: TF-IDF of character 1-4-grams (``char_wb``, sublinear tf) + ``LogisticRegression``,
  scored by out-of-fold self-confidence (1 - the held-out probability of the given label, 5 folds);
- ``--transformer``: ``datadiet score --model text-transformer`` (as the issue ran it: Adam 1e-3, width 0.5,
  max length 64) with ``--transformer-seeds`` seeds.

    python -m experiments.text_default --per-language 1250 --flip 0.1 --seeds 0,1,2 --epochs 3
    python -m experiments.text_default --transformer --transformer-seeds 0   # adds the transformer rows

Rows already in the CSV for the same set are kept (``--redo`` measures them again).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.own_data import LANGUAGES, auroc, bootstrap_auroc, language_files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "text_default.csv"
FIELDS = [
    "method",
    "model",
    "rows",
    "flipped",
    "seeds",
    "epochs",
    "score",
    "auroc",
    "ci_low",
    "ci_high",
    "wall_s",
    "hardware",
    "command",
]


# -- the data ---------------------------------------------------------------------------------------------------------


def fortune_sentences(path: Path) -> list[str]:
    """Sentences of 20-200 characters from the fortunes of one file (blocks separated by ``%`` lines)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    out = []
    for block in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(block.split())):
            if 20 <= len(sentence) <= 200:
                out.append(sentence)
    return out


def make_set(root: Path, *, per_language: int, flip: float, seed: int = 0) -> tuple[Path, np.ndarray]:
    """``root/train.jsonl`` (``text``, ``language``) and ``root/flips.json``; returns the file and the flip mask."""
    data, flips = root / "train.jsonl", root / "flips.json"
    if not flips.exists():
        rng = np.random.default_rng(seed)
        rows: list[dict[str, str]] = []
        for language in sorted(LANGUAGES):
            texts = sorted({s for path in language_files(language) for s in fortune_sentences(path)})
            if len(texts) < per_language:
                raise SystemExit(f"only {len(texts)} {language} sentences; lower --per-language")
            chosen = rng.choice(len(texts), per_language, replace=False)
            rows += [{"text": texts[i], "language": language} for i in sorted(chosen)]
        rows = [rows[i] for i in rng.permutation(len(rows))]
        flipped = sorted(rng.choice(len(rows), round(flip * len(rows)), replace=False).tolist())
        languages = sorted(LANGUAGES)
        for i in flipped:
            others = [lang for lang in languages if lang != rows[i]["language"]]
            rows[i]["language"] = others[int(rng.integers(0, len(others)))]
        root.mkdir(parents=True, exist_ok=True)
        tmp = data.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, data)
        flips.write_text(json.dumps(flipped))
    n = sum(1 for _ in open(data, encoding="utf-8"))
    mask = np.zeros(n, dtype=bool)
    mask[json.loads(flips.read_text())] = True
    return data, mask


def read_set(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], [r["language"] for r in rows]


# -- the measures -----------------------------------------------------------------------------------------------------


def hardware() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU ({cores} cores shared, {platform.machine()})"


def relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def metric_rows(
    method: str, model: str, scores: dict[str, np.ndarray], flipped: np.ndarray, **common: Any
) -> list[dict[str, Any]]:
    out = []
    for name, values in scores.items():
        low, high = bootstrap_auroc(values, flipped)
        out.append(
            {
                "method": method,
                "model": model,
                "rows": len(values),
                "flipped": int(flipped.sum()),
                "score": name,
                "auroc": round(auroc(values, flipped), 4),
                "ci_low": round(low, 4),
                "ci_high": round(high, 4),
                **common,
            }
        )
    return out


def measured(path: Path, rows: int, flipped: int) -> set[str]:
    """The methods the CSV already holds for this set (same size and flip count): a rerun skips them."""
    if not path.exists():
        return set()
    with open(path, newline="") as handle:
        return {r["method"] for r in csv.DictReader(handle) if r["rows"] == str(rows) and r["flipped"] == str(flipped)}


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Replace the rows of the same method (or add them), atomically."""
    methods = {r["method"] for r in rows}
    kept = []
    if path.exists():
        with open(path, newline="") as handle:
            kept = [r for r in csv.DictReader(handle) if r["method"] not in methods]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(sorted(kept + [{k: r.get(k, "") for k in FIELDS} for r in rows], key=lambda r: r["method"]))
    os.replace(tmp, path)


# -- the methods ------------------------------------------------------------------------------------------------------


def linear_baseline(texts: list[str], labels: list[str], *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """1 - the out-of-fold probability of the given label, char 1-4-gram TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    y = np.unique(labels, return_inverse=True)[1]
    scores = np.zeros(len(texts))
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y):
        pipe = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True),
            LogisticRegression(C=10.0, max_iter=1000),
        )
        pipe.fit([texts[i] for i in fit], y[fit])
        proba = pipe.predict_proba([texts[i] for i in held])
        scores[held] = 1.0 - proba[np.arange(len(held)), y[held]]
    return scores


def datadiet_score(args: list[str], out: Path) -> float:
    """``datadiet score ARGS --output-dir OUT`` in a subprocess (resumes a killed run); wall time in seconds, 0 if
    ``OUT`` already held a finished run."""
    if (out / "README.md").exists():
        return 0.0
    command = [sys.executable, "-m", "datadiet_hub.scoring", *args, "--output-dir", str(out), "--no-progress", "-v"]
    print("$", shlex.join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    return time.perf_counter() - started


def read_scores(out: Path, names: list[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The last config's score columns (aggregated over seeds) and the card's provenance."""
    import datasets
    import yaml

    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    config = sorted(c["config_name"] for c in card["configs"])[-1]
    table = datasets.load_dataset(str(out), config, split="train").with_format("numpy")
    return {name: np.asarray(table[name], dtype=np.float64) for name in names}, card.get("datadiet", {})


def run_datadiet(
    method: str, data: Path, flipped: np.ndarray, out: Path, args: list[str], *, seeds: str, epochs: int
) -> list[dict[str, Any]]:
    wall_file = out.parent / f"{out.name}.wall_s"
    wall = datadiet_score(args, out)
    if wall:
        wall_file.write_text(f"{wall:.1f}")
    wall = float(wall_file.read_text()) if wall_file.exists() else float("nan")
    scores, provenance = read_scores(out, ["el2n", "grand"])
    model = provenance.get("scoring", {}).get("model") or method
    shown = [relative(Path(a)) if a == str(data) else a for a in args]
    command = "datadiet score " + shlex.join(shown) + f" --output-dir {relative(out)}"
    return metric_rows(
        method,
        str(model),
        scores,
        flipped,
        seeds=seeds,
        epochs=epochs,
        wall_s=round(wall, 1),
        hardware=hardware(),
        command=command,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-language", type=int, default=1250, help="texts per language (default 1250: 5,000)")
    parser.add_argument("--flip", type=float, default=0.1, help="fraction of labels flipped (default 0.1)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--transformer", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--transformer-seeds", default="0")
    parser.add_argument("--redo", action="store_true", help="measure again what the CSV already holds")
    parser.add_argument("--work", default=str(ROOT / "runs" / "text_default"), help="where the data and scores go")
    parser.add_argument("--results", default=str(RESULTS), help="CSV to write the rows to")
    ns = parser.parse_args(argv)
    work, results = Path(ns.work), Path(ns.results)
    data, flipped = make_set(work / "data", per_language=ns.per_language, flip=ns.flip)
    texts, labels = read_set(data)
    print(f"{len(texts)} texts, {int(flipped.sum())} labels flipped", flush=True)

    done = measured(results, len(texts), int(flipped.sum()))
    if "baseline-char-ngrams-logreg" not in done or ns.redo:
        started = time.perf_counter()
        baseline = linear_baseline(texts, labels)
        wall = time.perf_counter() - started
        cmd = f"python -m experiments.text_default --per-language {ns.per_language} --flip {ns.flip} (linear_baseline)"
        write_rows(
            metric_rows(
                "baseline-char-ngrams-logreg",
                "TfidfVectorizer char_wb 1-4 (sublinear tf) + LogisticRegression(C=10), out-of-fold (5 folds)",
                {"self_confidence": baseline},
                flipped,
                seeds="",
                epochs="",
                wall_s=round(wall, 1),
                hardware=hardware(),
                command=cmd,
            ),
            results,
        )

    default_args = ["--dataset", str(data), "--seeds", ns.seeds, "--at", str(ns.epochs), "--scores", "el2n,grand"]
    if "datadiet-default" not in done or ns.redo:
        rows = run_datadiet(
            "datadiet-default", data, flipped, work / "default-scores", default_args, seeds=ns.seeds, epochs=ns.epochs
        )
        write_rows(rows, results)
    if ns.transformer and ("datadiet-text-transformer" not in done or ns.redo):
        transformer_args = [
            "--dataset", str(data), "--model", "text-transformer", "--width", "0.5", "--max-length", "64",
            "--vocab-size", "4000", "--batch-size", "64", "--optimizer", "adam", "--lr", "0.001", "--weight-decay", "0",
            "--seeds", ns.transformer_seeds, "--at", str(ns.epochs), "--scores", "el2n,grand",
        ]  # fmt: skip
        out = work / "transformer-scores"
        write_rows(
            run_datadiet(
                "datadiet-text-transformer",
                data,
                flipped,
                out,
                transformer_args,
                seeds=ns.transformer_seeds,
                epochs=ns.epochs,
            ),
            results,
        )
    with open(results, newline="") as handle:
        for row in csv.DictReader(handle):
            print(row["method"], row["score"], row["auroc"], f"[{row['ci_low']}, {row['ci_high']}]", row["wall_s"])


if __name__ == "__main__":
    main()
