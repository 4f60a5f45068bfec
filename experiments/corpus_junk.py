"""Junk detection on a real corpus: how well each causal-LM score flags injected junk, next to a character-trigram
model (what a KenLM-style perplexity filter does), as AUROC with a 95% bootstrap interval per junk kind.

    PYTHONPATH=. nice python experiments/corpus_junk.py            # resumable: the scoring run resumes itself

Clean documents: paragraphs of the Debian packages' README files under /usr/share/doc (real English prose and
technical text). Junk, each kind made from held-out paragraphs or real text: ``shuffled`` (a real paragraph's words
in random order: same words, no syntax), ``random_chars`` (letters and spaces drawn at random, same length),
``german`` (German fortunes, /usr/share/games/fortunes/de), ``boilerplate`` (one real license line repeated). The
reference LMs (causal-transformer at width 0.5, context 64, a 1000-token WordPiece vocabulary, 150 Adam steps of 16
windows, one seed: sized for 2 shared CPU cores) are trained on the mixed corpus itself, as a user would;
the trigram model is fit on the same corpus (add-one smoothing), scoring each document by its mean negative log
probability per character. Writes docs/results/corpus_junk.csv.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORK = ROOT / "experiments" / ".cache" / "corpus_junk"
OUT = ROOT / "docs" / "results" / "corpus_junk.csv"
COMMAND = "PYTHONPATH=. nice python experiments/corpus_junk.py"
N_CLEAN, N_JUNK = 320, 40


def paragraphs() -> list[str]:
    found = []
    for path in sorted(glob.glob("/usr/share/doc/*/README*")):
        if path.endswith((".gz", ".html")):
            continue
        try:
            text = Path(path).read_text(errors="ignore")
        except OSError:
            continue
        for part in text.split("\n\n"):
            part = " ".join(part.split())
            if 200 <= len(part) <= 1500 and sum(c.isalpha() for c in part) > 0.6 * len(part) and part not in found:
                found.append(part)
    return found


def german() -> list[str]:
    texts = []
    for path in sorted(glob.glob("/usr/share/games/fortunes/de/*")):
        if path.endswith((".dat", ".u8")) or Path(path).is_dir():
            continue
        for part in Path(path).read_text(errors="ignore").split("\n%\n"):
            part = " ".join(part.split())
            if 150 <= len(part) <= 1500:
                texts.append(part)
    return texts


def build(rng: random.Random) -> list[dict]:
    clean = paragraphs()
    rng.shuffle(clean)
    docs = [{"text": t, "kind": "clean"} for t in clean[:N_CLEAN]]
    held = clean[N_CLEAN:]
    for t in held[:N_JUNK]:
        words = t.split()
        rng.shuffle(words)
        docs.append({"text": " ".join(words), "kind": "shuffled"})
    letters = "abcdefghijklmnopqrstuvwxyz      "
    for t in held[N_JUNK : 2 * N_JUNK]:
        docs.append({"text": "".join(rng.choice(letters) for _ in t), "kind": "random_chars"})
    for t in rng.sample(german(), N_JUNK):
        docs.append({"text": t, "kind": "german"})
    line = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software."
    for i in range(N_JUNK):
        docs.append({"text": " ".join([line] * (2 + i % 8)), "kind": "boilerplate"})
    rng.shuffle(docs)
    return docs


def trigram_scores(texts: list[str]) -> np.ndarray:
    """Mean negative log probability per character under an add-one character trigram model of the corpus."""
    tri, bi = Counter(), Counter()
    alphabet = set()
    for t in texts:
        s = "\x02\x02" + t + "\x03"
        alphabet.update(s)
        for i in range(2, len(s)):
            tri[s[i - 2 : i + 1]] += 1
            bi[s[i - 2 : i]] += 1
    v = len(alphabet)
    out = []
    for t in texts:
        s = "\x02\x02" + t + "\x03"
        nll = [-math.log((tri[s[i - 2 : i + 1]] + 1) / (bi[s[i - 2 : i]] + v)) for i in range(2, len(s))]
        out.append(sum(nll) / len(nll))
    return np.asarray(out)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a junk document > score of a clean one), ties counted half."""
    values = np.concatenate([pos, neg])
    ranks = np.empty(len(values))
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks_sorted = np.arange(1, len(values) + 1, dtype=np.float64)
    for v in np.unique(sorted_values):  # average ranks of ties
        where = sorted_values == v
        ranks_sorted[where] = ranks_sorted[where].mean()
    ranks[order] = ranks_sorted
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def bootstrap(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator, n: int = 1000) -> tuple[float, float]:
    stats = [auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(n)]
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def paired_difference(
    a: np.ndarray, b: np.ndarray, junk: np.ndarray, rng: np.random.Generator, n: int = 1000
) -> tuple[float, float, float]:
    """AUROC of score ``a`` minus AUROC of score ``b`` on the same documents, with a 95% bootstrap interval that
    resamples documents once for both (a paired comparison)."""
    pos, neg = np.flatnonzero(junk), np.flatnonzero(~junk)
    point = auroc(a[pos], a[neg]) - auroc(b[pos], b[neg])
    stats = []
    for _ in range(n):
        p, q = rng.choice(pos, len(pos)), rng.choice(neg, len(neg))
        stats.append(auroc(a[p], a[q]) - auroc(b[p], b[q]))
    return point, float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def main() -> None:
    import datasets

    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.run import run

    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / "corpus.jsonl"
    if not corpus.exists():
        docs = build(random.Random(0))
        corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    docs = [json.loads(line) for line in corpus.read_text().splitlines()]
    cfg = ScoringConfig(
        dataset=str(corpus),
        text_column="text",
        objective="causal-lm",
        output_dir=str(WORK / "run"),
        seeds=[0],
        unit="step",
        at=[150],
        batch_size=16,
        vocab_size=1000,
        max_length=64,
        width=0.5,
        scores=["loss", "el2n"],
    )
    out = run(cfg, progress=False, command=COMMAND)
    config = sorted(p.name for p in (out / "data").iterdir())[-1]
    files = sorted(str(p) for p in (out / "data" / config).glob("*.parquet"))
    table = datasets.load_dataset("parquet", data_files=files, split="train")
    kinds = np.array([d["kind"] for d in docs])
    scores = {
        "loss": np.asarray(table["loss"]),
        "el2n": np.asarray(table["el2n"]),
        "char_trigram": trigram_scores([d["text"] for d in docs]),
    }
    rng = np.random.default_rng(0)
    rows = []
    for kind in ("shuffled", "random_chars", "german", "boilerplate"):
        for name, values in scores.items():
            pos, neg = values[kinds == kind], values[kinds == "clean"]
            lo, hi = bootstrap(pos, neg, rng)
            rows.append(
                {
                    "junk_kind": kind,
                    "score": name,
                    "auroc": round(auroc(pos, neg), 4),
                    "ci95_low": round(lo, 4),
                    "ci95_high": round(hi, 4),
                    "n_junk": len(pos),
                    "n_clean": len(neg),
                    "config": config,
                    "command": COMMAND,
                }
            )
            print(rows[-1])
        for name in ("loss", "el2n"):
            mask = kinds[(kinds == kind) | (kinds == "clean")] == kind
            keep = (kinds == kind) | (kinds == "clean")
            point, lo, hi = paired_difference(scores[name][keep], scores["char_trigram"][keep], mask, rng)
            rows.append(
                {
                    "junk_kind": kind,
                    "score": f"{name}-minus-char_trigram",
                    "auroc": round(point, 4),
                    "ci95_low": round(lo, 4),
                    "ci95_high": round(hi, 4),
                    "n_junk": int(mask.sum()),
                    "n_clean": int((~mask).sum()),
                    "config": config,
                    "command": COMMAND,
                }
            )
            print(rows[-1])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
