"""Downstream evidence for corpus pruning: small LMs trained from scratch on the half of a noisy real corpus that each
selection keeps, at matched tokens, evaluated by perplexity on held-out clean paragraphs.

    PYTHONPATH=. nohup nice -n 19 python -m experiments.corpus_downstream \
        > experiments/.cache/corpus_downstream.log 2>&1 &

Run ``python -m experiments.corpus_junk`` first: its corpus (clean real paragraphs plus 15% injected junk of four kinds),
its held-out clean paragraphs (never in the corpus, never seen by the reference LMs) and its scoring run (3 seeds of
the reference LM, ``loss`` and ``el2n`` averaged over them) are the input here.

Arms: the half kept by ``datadiet_hub.keep(scores, column=C, fraction=0.5, strategy=S)`` for C in loss, el2n and S in
easiest (low), middle, hardest (high), and a random half (``strategy="random"``, a new half per seed). Every arm
trains the registry ``causal-transformer`` (width 0.5, Adam at lr LR) from scratch with the engine's own trainer
(``datadiet_hub.scoring.lm.engine.train_lm_seed``: Adam, the engine's data order and checkpoints) on the kept
documents tokenized with the reference run's tokenizer and packed into one stream cut into full windows of CONTEXT
tokens: every optimizer step is BATCH full windows, so every arm and seed trains on exactly STEPS * BATCH *
(CONTEXT - 1) predicted tokens (matched tokens; a half with fewer tokens is repeated more often). Evaluation: mean
next-token loss over all predicted tokens of the held-out clean paragraphs (each its own document, the engine's
``score_windows``), reported as perplexity. The training seed sets the init and the batch order and is shared by
all arms (paired by seed).

Several processes can share the work (``--seeds 0``, ``--seeds 1``, ... with ``--threads 1``); each appends its
rows, and a last run with every row present writes the summary. A longer ``--steps`` (150 after 100, ...)
continues each run from its latest checkpoint (the engine replays the same batches, so this is the longer run) and
adds rows for that length; the summary compares arms at each length. Resumable: every finished (arm, seed, steps) is
one row of docs/results/corpus_downstream.csv, skipped on rerun, and a killed training resumes from its checkpoint. The summary (mean perplexity per arm with a 95% t-interval over the
seeds, and each arm's paired difference to random) is rewritten at the end to
docs/results/corpus_downstream_summary.csv and plotted to docs/results/corpus_downstream.png, and what each kept half
holds (clean documents and each junk kind) to docs/results/corpus_downstream_kept.csv.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .common import ResultsCSV
from .stats import paired, t_interval

ROOT = Path(__file__).resolve().parents[1]

WORK = ROOT / "experiments" / ".cache" / "corpus_junk"
STATE = ROOT / "experiments" / ".cache" / "corpus_downstream"
OUT = ROOT / "docs" / "results" / "corpus_downstream.csv"
SUMMARY = ROOT / "docs" / "results" / "corpus_downstream_summary.csv"
PLOT = ROOT / "docs" / "results" / "corpus_downstream.png"
KEPT = ROOT / "docs" / "results" / "corpus_downstream_kept.csv"
COMMAND = "PYTHONPATH=. nice -n 19 python -m experiments.corpus_downstream"
SEEDS = (0, 1, 2)
STEPS, BATCH, CONTEXT, WIDTH, LR = 100, 16, 64, 0.5, 2e-3
ARMS = [("loss", "random")] + [(c, s) for c in ("loss", "el2n") for s in ("easiest", "middle", "hardest")]
ARM_ORDER = ["random"] + [f"{c}-{s}" for c, s in ARMS[1:]]
FIELDS = [
    "arm", "column", "strategy", "seed", "kept_docs", "kept_junk_docs", "kept_tokens", "train_steps",
    "train_tokens", "eval_docs", "eval_tokens", "eval_loss", "eval_ppl", "wall_s", "score_config", "command",
]  # fmt: skip


def arm_name(column: str, strategy: str) -> str:
    return "random" if strategy == "random" else f"{column}-{strategy}"


def packed_windows(docs: list[np.ndarray], context: int, batch: int, pad_id: int, vocab_size: int):
    """``(corpus, windows)``: the documents' token ids back to back as one stream, cut into windows of exactly
    ``context`` tokens (one token of overlap, so every token but the first is predicted once per epoch); the partial
    last window is dropped and the count rounded down to a multiple of ``batch``, so every batch holds
    ``batch * (context - 1)`` predicted tokens and an epoch has no partial batch."""
    from datadiet_hub.scoring.lm.corpus import Corpus, Windows

    tokens = np.concatenate(docs).astype(np.int32)
    corpus = Corpus(tokens, np.array([0, len(tokens)], dtype=np.int64), np.array([b"packed"]), pad_id, vocab_size, {})
    cut = corpus.windows(context)
    full = np.flatnonzero(cut.length == context)
    full = full[: len(full) // batch * batch]
    if len(full) == 0:
        raise ValueError(f"{len(tokens)} tokens make fewer than {batch} full windows of {context} tokens")
    return corpus, Windows(cut.doc[full], cut.start[full], cut.length[full])


def documents(texts: list[str], tokenizer, pad_id: int, vocab_size: int):
    """Each text its own document, as the scoring run tokenizes it (``[CLS] ... [SEP]``)."""
    from datadiet_hub.scoring.lm.corpus import Corpus, text_id

    ids = [np.asarray(e.ids, dtype=np.int32) for e in tokenizer.encode_batch(texts)]
    offsets = np.concatenate([[0], np.cumsum([len(i) for i in ids])]).astype(np.int64)
    return ids, Corpus(
        np.concatenate(ids), offsets, np.array([text_id(t) for t in texts], "S32"), pad_id, vocab_size, {}
    )


def train_and_evaluate(train_ids: list[np.ndarray], evaluation, seed: int, state_dir: Path, pad_id: int, vocab: int):
    """Train one small LM from scratch on the packed documents for STEPS steps; mean loss on ``evaluation``."""
    import torch

    from datadiet_hub.scoring import checkpoint as ckpt
    from datadiet_hub.scoring.config import ScoringConfig
    from datadiet_hub.scoring.lm.engine import make_lm, score_windows, train_lm_seed
    from datadiet_hub.scoring.train import Schedule

    corpus, windows = packed_windows(train_ids, CONTEXT, BATCH, pad_id, vocab)
    cfg = ScoringConfig(
        output_dir=str(state_dir), dataset="packed", objective="causal-lm", model="causal-transformer", width=WIDTH,
        max_length=CONTEXT, batch_size=BATCH, eval_batch_size=64, seeds=[seed], scores=["loss"], unit="step",
        at=[STEPS], optimizer="adam", lr=LR, weight_decay=0.0, checkpoint_every=10**6,
    )  # fmt: skip
    schedule = Schedule(len(windows) // BATCH, STEPS, (STEPS,))
    device = torch.device("cpu")
    train_lm_seed(cfg, corpus, windows, seed, schedule, state_dir, device, progress=False)
    model = make_lm(cfg, corpus, seed)
    tensors, _ = ckpt.load(ckpt.checkpoint_path(state_dir, seed, STEPS))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    model.eval()
    _, values = score_windows(cfg, model, evaluation, evaluation.windows(CONTEXT), device)
    tokens, loss = float(values["tokens"].sum()), float(values["loss"].double().sum())
    return {"eval_tokens": int(tokens), "eval_loss": loss / tokens, "kept_tokens": int(sum(len(i) for i in train_ids))}


def kept_half(corpus_ds, scores, column: str, strategy: str, seed: int):
    """The rows ``datadiet_hub.keep`` keeps, as a user filters a dataset with it."""
    import datadiet_hub

    extra = {"seed": seed} if strategy == "random" else {}
    predicate = datadiet_hub.keep(scores, column=column, fraction=0.5, strategy=strategy, **extra)
    return corpus_ds.filter(predicate, with_indices=True, batched=True)


def summarize(results: ResultsCSV) -> list[dict]:
    """Per training length and arm: mean perplexity with its 95% t-interval over seeds, and the paired (by seed)
    difference to random at the same length, in perplexity and in loss."""
    groups: dict[tuple[int, str], dict[int, dict]] = {}
    for row in results.rows:
        groups.setdefault((int(row["train_steps"]), row["arm"]), {})[int(row["seed"])] = row
    out = []
    for (steps, arm), runs in sorted(groups.items(), key=lambda item: (item[0][0], ARM_ORDER.index(item[0][1]))):
        base = groups.get((steps, "random"), {})
        ppl = {s: float(r["eval_ppl"]) for s, r in runs.items()}
        loss = {s: float(r["eval_loss"]) for s, r in runs.items()}
        est = t_interval(ppl.values())
        row = {"train_steps": steps, "train_tokens": runs[min(runs)]["train_tokens"], "arm": arm, "n_seeds": est.n,
               "ppl_mean": est.mean, "ppl_ci95_low": est.lo, "ppl_ci95_high": est.hi,
               "kept_junk_share": np.mean([int(r["kept_junk_docs"]) / int(r["kept_docs"]) for r in runs.values()])}  # fmt: skip
        if arm != "random" and base:
            d_ppl = t_interval(paired(ppl, {s: float(r["eval_ppl"]) for s, r in base.items()}))
            d_loss = t_interval(paired(loss, {s: float(r["eval_loss"]) for s, r in base.items()}))
            row.update(diff_ppl_vs_random=d_ppl.mean, diff_ppl_ci95_low=d_ppl.lo, diff_ppl_ci95_high=d_ppl.hi,
                       diff_loss_vs_random=d_loss.mean, diff_loss_ci95_low=d_loss.lo, diff_loss_ci95_high=d_loss.hi,
                       n_pairs=d_ppl.n)  # fmt: skip
        out.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return out


def kept_by_kind(corpus_ds, scores) -> list[dict]:
    """Per arm and document kind (clean or a junk kind): how many documents the kept half holds (mean over the
    seeds; only ``random`` changes with the seed)."""
    kinds = np.asarray(corpus_ds["kind"])
    rows = []
    for column, strategy in ARMS:
        counts = [
            dict(zip(*np.unique(kept["kind"], return_counts=True), strict=True))
            for kept in (kept_half(corpus_ds, scores, column, strategy, seed) for seed in SEEDS)
        ]
        for kind in sorted(set(kinds.tolist())):
            rows.append({"arm": arm_name(column, strategy), "kind": kind, "in_corpus": int((kinds == kind).sum()),
                         "kept_mean": round(float(np.mean([c.get(kind, 0) for c in counts])), 2), "command": COMMAND})  # fmt: skip
    return rows


def write_rows(path: Path, rows: list[dict]) -> None:
    import csv

    from datadiet_hub.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_summary(rows: list[dict]) -> None:
    import csv

    from datadiet_hub.atomic import atomic_path

    fields = ["train_steps", "train_tokens", "arm", "n_seeds", "ppl_mean", "ppl_ci95_low", "ppl_ci95_high", "kept_junk_share", "diff_ppl_vs_random",
              "diff_ppl_ci95_low", "diff_ppl_ci95_high", "diff_loss_vs_random", "diff_loss_ci95_low",
              "diff_loss_ci95_high", "n_pairs", "command"]  # fmt: skip
    with atomic_path(SUMMARY) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**r, "command": COMMAND} for r in rows)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    lengths = sorted({r["train_steps"] for r in rows})
    for k, steps in enumerate(lengths):
        part = [r for r in rows if r["train_steps"] == steps]
        x = np.array([ARM_ORDER.index(r["arm"]) for r in part]) + 0.15 * (k - (len(lengths) - 1) / 2)
        means = np.array([r["ppl_mean"] for r in part])
        err = np.array([[r["ppl_mean"] - r["ppl_ci95_low"], r["ppl_ci95_high"] - r["ppl_mean"]] for r in part]).T
        label = f"{steps} steps ({part[0]['train_tokens']} tokens)"
        ax.errorbar(x, means, yerr=np.nan_to_num(err), fmt="o", capsize=4, label=label)
    ax.set_xticks(range(len(ARM_ORDER)), ARM_ORDER, rotation=30, ha="right")
    ax.legend(fontsize=8)
    ax.set_ylabel("held-out perplexity")
    seeds = min(r["n_seeds"] for r in rows)
    ax.set_title(f"Kept half by selection, matched tokens: mean and 95% t-interval over {seeds} seeds")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main(argv: list[str] | None = None) -> None:
    global STEPS
    import argparse

    import datasets
    import torch

    import datadiet_hub
    from datadiet_hub.scoring.data.text import load_tokenizer, pad_id_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="training seeds to run here (default: all)")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimizer steps per run (default {STEPS})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_seeds = [int(s) for s in args.seeds.split(",")]
    STEPS = args.steps
    run = WORK / "run"
    configs = sorted(p.name for p in (run / "data").iterdir())
    config = configs[-1]  # the reference run's last score time
    scores = datadiet_hub.load_scores(str(run), config)
    corpus_ds = datasets.load_dataset("json", data_files=str(WORK / "corpus.jsonl"), split="train")
    tokenizer = load_tokenizer(run / ".datadiet" / "tokenizer.json")
    tokenizer.no_truncation()
    tokenizer.no_padding()
    pad_id, vocab = pad_id_of(tokenizer), int(tokenizer.get_vocab_size())
    held = [json.loads(line)["text"] for line in (WORK / "eval.jsonl").read_text().splitlines()]
    _, evaluation = documents(held, tokenizer, pad_id, vocab)
    results = ResultsCSV(OUT, FIELDS, key=["arm", "seed", "train_steps"])
    for seed in run_seeds:
        for column, strategy in ARMS:
            arm = arm_name(column, strategy)
            if results.done(arm=arm, seed=seed, train_steps=STEPS):
                continue
            started = time.perf_counter()
            kept = kept_half(corpus_ds, scores, column, strategy, seed)
            ids, _ = documents(list(kept["text"]), tokenizer, pad_id, vocab)
            measured = train_and_evaluate(ids, evaluation, seed, STATE / arm / f"seed{seed}", pad_id, vocab)
            results.append(
                {
                    "arm": arm, "column": column, "strategy": strategy, "seed": seed, "kept_docs": len(kept),
                    "kept_junk_docs": sum(k != "clean" for k in kept["kind"]), "train_steps": STEPS,
                    "train_tokens": STEPS * BATCH * (CONTEXT - 1), "eval_docs": len(held),
                    "eval_ppl": round(math.exp(measured["eval_loss"]), 4), "eval_loss": round(measured["eval_loss"], 5),
                    "eval_tokens": measured["eval_tokens"], "kept_tokens": measured["kept_tokens"],
                    "wall_s": round(time.perf_counter() - started, 1), "score_config": config,
                    "command": f"{COMMAND} --steps {STEPS}",
                }
            )  # fmt: skip
            print(results.rows[-1], flush=True)
    results = ResultsCSV(
        OUT, FIELDS, key=["arm", "seed", "train_steps"]
    )  # reread: other processes may have added seeds
    rows = summarize(results)
    write_summary(rows)
    plot(rows)
    write_rows(KEPT, kept_by_kind(corpus_ds, scores))
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
