"""Junk detection on a real corpus: how well each causal-LM score flags injected junk, next to a character-trigram
model (what a KenLM-style perplexity filter does), as AUROC with a 95% bootstrap interval per junk kind.

    PYTHONPATH=. nohup nice -n 19 python -m experiments.corpus_junk > experiments/.cache/corpus_junk.log 2>&1 &

Resumable: the corpus file is built once, and the scoring is the real CLI (``datadiet score --objective causal-lm``),
which resumes from its checkpoints when rerun; the analysis then takes seconds.

Corpus (``experiments/corpus_text.py``): N_CLEAN clean prose paragraphs of real English (Debian READMEs, the Python
documentation, the Debian Reference) and N_JUNK documents of every junk kind (shuffled words, random characters,
German, repeated boilerplate), shuffled together. Reference LMs: SEEDS seeds of the registry ``causal-transformer``
(width 0.5: 64-dim, 2 layers) with a 4000-token WordPiece vocabulary trained on the corpus and a 64-token context,
Adam, 32 windows a step, scored after 3 epochs, every score averaged over the seeds as the product writes it. The trigram model is
fit on the same corpus (add-one smoothing) and scores each document by its mean negative log-probability per
character. ``grand`` is computed afterwards from the same checkpoints (``grand_scores``; its bootstrap draws its own
random stream, so adding it left the other rows unchanged). ``loss_per_char`` is the product's ``loss * num_tokens / characters``: the document's total
negative log-likelihood per character, which does not depend on how the tokenizer cuts the text.
Writes docs/results/corpus_junk.csv.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from .corpus_text import JUNK_KINDS, build_corpus

ROOT = Path(__file__).resolve().parents[1]

WORK = Path("experiments") / ".cache" / "corpus_junk"  # relative to ROOT: commands are recorded as run
OUT = ROOT / "docs" / "results" / "corpus_junk.csv"
COMMAND = "PYTHONPATH=. nice -n 19 python -m experiments.corpus_junk"
N_CLEAN, N_JUNK, N_EVAL = 1800, 80, 300
SEEDS = "0,1,2"
SCORE_ARGS = [
    "--objective", "causal-lm",
    "--text-column", "text",
    "--seeds", SEEDS,
    "--unit", "epoch", "--at", "3",
    "--batch-size", "32",
    "--vocab-size", "4000",
    "--max-length", "64",
    "--width", "0.5",
    "--scores", "loss,el2n",
    "--no-progress",
]  # fmt: skip
LM_SCORES = ("loss", "el2n", "loss_per_char")


def corpus_files() -> tuple[Path, Path]:
    """The noisy corpus and the held-out clean paragraphs (built once; the downstream experiment reads both)."""
    corpus, held = WORK / "corpus.jsonl", WORK / "eval.jsonl"
    if not (ROOT / corpus).exists():
        docs, evaluation = build_corpus(N_CLEAN, N_JUNK, N_EVAL, seed=0)
        (ROOT / WORK).mkdir(parents=True, exist_ok=True)
        (ROOT / held).write_text("".join(json.dumps(d) + "\n" for d in evaluation))
        (ROOT / corpus).write_text("".join(json.dumps(d) + "\n" for d in docs))
    return corpus, held


def score_command(corpus: Path) -> list[str]:
    return ["datadiet", "score", "--dataset", str(corpus), *SCORE_ARGS, "--output-dir", str(WORK / "run")]


def run_scoring(corpus: Path) -> Path:
    """Run (or resume) the CLI as a user would, from the repository root, with relative paths."""
    argv = score_command(corpus)
    exe = shutil.which("datadiet") or str(Path(sys.executable).parent / "datadiet")
    print("running:", " ".join(argv), flush=True)
    subprocess.run([exe, *argv[1:]], cwd=ROOT, check=True)
    return ROOT / WORK / "run"


def grand_scores(run: Path, texts: list[str]) -> np.ndarray:
    """Per-document GraNd from the run's own checkpoints (mean over the seeds), computed by ``ReferenceModels``, the
    class the datatrove scoring step uses (the CLI run scored ``loss,el2n`` only, to fit the CPU time); cached."""
    import dataclasses

    from datadiet_hub.atomic import atomic_path
    from datadiet_hub.scoring.lm.reference import ReferenceModels

    cache = ROOT / WORK / "grand.npy"
    if not cache.exists():
        models = ReferenceModels(run)
        models.cfg = dataclasses.replace(models.cfg, scores=["grand"])
        values = np.asarray(models.score(texts)["grand"], dtype=np.float64)
        with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
            np.save(handle, values)
    return np.load(cache)


def trigram_scores(texts: list[str]) -> np.ndarray:
    """Mean negative log probability per character under an add-one character trigram model of the corpus."""
    tri: Counter[str] = Counter()
    bi: Counter[str] = Counter()
    alphabet: set[str] = set()
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
    """P(score of a junk document > score of a clean one), ties counted half (Mann-Whitney U / (n_pos n_neg))."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def bootstrap(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator, n: int = 1000) -> tuple[float, float]:
    """95% percentile interval, resampling the junk and the clean documents separately (n of each fixed)."""
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


def analyse(docs: list[dict], run: Path, command: str) -> list[dict]:
    import datadiet_hub

    kinds = np.array([d["kind"] for d in docs])
    chars = np.array([len(d["text"]) for d in docs], dtype=np.float64)
    trigram = trigram_scores([d["text"] for d in docs])
    configs = sorted(p.name for p in (run / "data").iterdir())
    rows = []
    for config in configs:
        table = datadiet_hub.load_scores(str(run), config)
        scores = {name: np.asarray(table[name], dtype=np.float64) for name in ("loss", "el2n")}
        scores["loss_per_char"] = scores["loss"] * np.asarray(table["num_tokens"], dtype=np.float64) / chars
        scores["char_trigram"] = trigram
        grand = grand_scores(run, [d["text"] for d in docs])
        rng, rng_grand = np.random.default_rng(0), np.random.default_rng(1)
        for kind in JUNK_KINDS:
            keep = (kinds == kind) | (kinds == "clean")
            mask = kinds[keep] == kind
            base = {"config": config, "junk_kind": kind, "n_junk": int(mask.sum()), "n_clean": int((~mask).sum())}
            for name, values in scores.items():
                pos, neg = values[kinds == kind], values[kinds == "clean"]
                lo, hi = bootstrap(pos, neg, rng)
                rows.append({**base, "score": name, "auroc": round(auroc(pos, neg), 4), "ci95_low": round(lo, 4),
                             "ci95_high": round(hi, 4), "command": command})  # fmt: skip
                print(rows[-1], flush=True)
            for name in LM_SCORES:
                point, lo, hi = paired_difference(scores[name][keep], trigram[keep], mask, rng)
                rows.append({**base, "score": f"{name}-minus-char_trigram", "auroc": round(point, 4),
                             "ci95_low": round(lo, 4), "ci95_high": round(hi, 4), "command": command})  # fmt: skip
                print(rows[-1], flush=True)
            lo, hi = bootstrap(grand[kinds == kind], grand[kinds == "clean"], rng_grand)
            point = auroc(grand[kinds == kind], grand[kinds == "clean"])
            rows.append({**base, "score": "grand", "auroc": round(point, 4), "ci95_low": round(lo, 4),
                         "ci95_high": round(hi, 4), "command": command})  # fmt: skip
            point, lo, hi = paired_difference(grand[keep], trigram[keep], mask, rng_grand)
            rows.append({**base, "score": "grand-minus-char_trigram", "auroc": round(point, 4),
                         "ci95_low": round(lo, 4), "ci95_high": round(hi, 4), "command": command})  # fmt: skip
    return rows


def main() -> None:
    from datadiet_hub.atomic import atomic_path

    corpus, _ = corpus_files()
    run = run_scoring(corpus)
    docs = [json.loads(line) for line in (ROOT / corpus).read_text().splitlines()]
    command = f"{COMMAND}  # runs: {' '.join(score_command(corpus))}"
    rows = analyse(docs, run, command)
    fields = ["config", "junk_kind", "score", "auroc", "ci95_low", "ci95_high", "n_junk", "n_clean", "command"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(OUT) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
