"""The causal-LM scoring run: tokenize the corpus, train M seeds of a reference LM briefly, score every checkpoint's
windows, fold them into documents, aggregate over seeds, write the score dataset.

The phases, the state folder, the process plumbing and the resume rule are the classification run's
(``datadiet_hub.scoring.run``): seeds round-robin over processes, windows sharded over processes and gathered by
number, every finished checkpoint and score shard skipped by a rerun.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from datadiet_hub.errors import DatadietError, InvalidArgumentError
from datadiet_hub.hashing import fingerprint
from datadiet_hub.provenance import Provenance
from datadiet_hub.schema import config_name, score_schema
from datadiet_hub.sources import open_split
from datadiet_hub.writer import write_score_dataset

from .. import checkpoint as ckpt
from .. import determinism
from ..aggregate import _per_seed_column
from ..config import ScoringConfig
from ..distributed import broadcast, describe_hardware, gather_rows, make_accelerator, run_on_main
from ..provenance import environment
from ..state import RunState
from ..train import Schedule
from .corpus import Corpus, Windows, detect_text_column, is_unlabeled_text, load_corpus, tokenize_corpus
from .engine import fold_windows, make_lm, score_windows, train_lm_seed
from .models import DEFAULT_LM

logger = logging.getLogger(__name__)


def lm_scores() -> tuple[str, ...]:
    """The scores a corpus run can compute: the causal-LM computations registered in
    ``datadiet_hub.scoring.metrics.registry`` (per token: loss, el2n; per window: grand)."""
    from ..metrics.registry import TOKEN_COMPUTATIONS, WINDOW_COMPUTATIONS

    return (*TOKEN_COMPUTATIONS, *WINDOW_COMPUTATIONS)


LM_DEFAULTS = {
    "model": DEFAULT_LM,
    "scores": ["loss", "el2n"],
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "eval_batch_size": 32,
    "grand_batch_size": 16,
}
"""What a corpus run uses where the configuration keeps the classification default (SGD at lr 0.1 and a CNN do
not train a language model); any value given explicitly is kept."""


def resolve_objective(cfg: ScoringConfig) -> str:
    """``classification`` or ``causal-lm``; ``auto`` looks at the split: a text column and no label column make it
    a corpus, and the log says so."""
    return objective_and_split(cfg)[0]


def objective_and_split(cfg: ScoringConfig) -> tuple[str, Any | None]:
    """``resolve_objective`` and what ``open_split`` answered when it opened the split to decide (None when the
    configuration alone decided): the run goes on with that split instead of opening it a second time."""
    if cfg.objective != "auto":
        return cfg.objective, None
    if (
        cfg.image_column is not None
        or cfg.label_column is not None
        or cfg.dataset in ("fashion_mnist", "fashion-mnist")
    ):
        return "classification", None
    from datasets.exceptions import DatasetGenerationError

    try:
        opened = open_split(
            cfg.dataset, split=cfg.split, revision=cfg.revision, data_files=cfg.data_files, streaming=cfg.streaming
        )
    except (DatadietError, DatasetGenerationError, OSError, ValueError):
        return "classification", None  # unreadable here: the classification path reports a bad dataset its own way
    dataset = opened[0]
    if is_unlabeled_text(dataset, (cfg.input_column or cfg.text_column), cfg.label_column):
        column = detect_text_column(dataset, (cfg.input_column or cfg.text_column))
        logger.warning(
            "%s has a text column (%r) and no label column: scoring it as a corpus with reference language models "
            "(--objective causal-lm); give --objective classification or --label-column to change that.",
            cfg.dataset,
            column,
        )
        return "causal-lm", opened
    return "classification", opened


def corpus_config(cfg: ScoringConfig) -> ScoringConfig:
    """``cfg`` with ``objective='causal-lm'`` and the corpus defaults where it keeps the classification ones."""
    changes: dict = {"objective": "causal-lm"}
    for name, value in LM_DEFAULTS.items():
        field = ScoringConfig.__dataclass_fields__[name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if getattr(cfg, name) == default:
            changes[name] = value
    resolved = dataclasses.replace(cfg, **changes)
    bad = [s for s in resolved.scores if s not in lm_scores()]
    if bad:
        raise InvalidArgumentError(
            f"Score(s) {bad} are not language-model scores. With --objective causal-lm choose among "
            f"{', '.join(lm_scores())}."
        )
    return resolved


def run_corpus(
    cfg: ScoringConfig, *, progress: bool = True, command: str | None = None, split: Any | None = None
) -> Path:
    """Run (or resume) the causal-LM scoring of ``cfg`` (already resolved by ``corpus_config``); returns the output
    folder. ``split``: ``open_split``'s answer for the corpus when the caller has opened it (``objective_and_split``),
    so it is opened once."""
    started = time.perf_counter()
    determinism.enable(cfg.deterministic)
    accelerator = make_accelerator()
    out = Path(cfg.output_dir)
    state = RunState(out)
    show = progress and accelerator.is_local_main_process
    run_on_main(accelerator, lambda: state.prepare(cfg))
    state.check_config(cfg)
    run_on_main(accelerator, lambda: _tokenize(cfg, state.path, show, split[0] if split else None))
    corpus = load_corpus(state.path)
    windows = corpus.windows(cfg.max_length)
    schedule = Schedule.from_config(cfg, len(windows))
    if accelerator.is_main_process:
        logger.info(
            "%d documents, %d tokens, %d windows of <= %d tokens; %d steps/epoch, %d steps, score at steps %s",
            len(corpus),
            int(corpus.offsets[-1]),
            len(windows),
            cfg.max_length,
            schedule.steps_per_epoch,
            schedule.total_steps,
            list(schedule.score_steps),
        )
    rank, world = accelerator.process_index, accelerator.num_processes
    for seed in cfg.seeds[rank::world]:
        latest = ckpt.latest_checkpoint(state.path, seed)
        if latest is None or latest[0] < schedule.total_steps:
            train_lm_seed(cfg, corpus, windows, seed, schedule, state.path, accelerator.device, progress=show)
    accelerator.wait_for_everyone()
    _score(cfg, corpus, windows, schedule, state, accelerator, show)
    hardware = describe_hardware(accelerator)
    run_on_main(
        accelerator, lambda: _write(cfg, corpus, schedule, state, out, started, command, hardware, accelerator.device)
    )
    accelerator.wait_for_everyone()
    return out


def _tokenize(cfg: ScoringConfig, state_dir: Path, progress: bool, dataset: Any | None = None) -> None:
    if (state_dir / "corpus" / "source.json").is_file():
        return
    if dataset is None:
        dataset, _ = open_split(
            cfg.dataset, split=cfg.split, revision=cfg.revision, data_files=cfg.data_files, streaming=cfg.streaming
        )
    column = detect_text_column(dataset, (cfg.input_column or cfg.text_column))
    tokenize_corpus(
        dataset,
        column,
        state_dir,
        tokenizer_path=cfg.tokenizer,
        vocab_size=cfg.vocab_size,
        tokenizer_kind=cfg.tokenizer_kind,
        source={"dataset": cfg.dataset, "split": cfg.split, "revision": cfg.revision, "text_column": column},
        progress=progress,
    )


def _score(
    cfg: ScoringConfig,
    corpus: Corpus,
    windows: Windows,
    schedule: Schedule,
    state: RunState,
    accelerator,
    show: bool,
) -> None:
    """Score every (seed, time) checkpoint; windows sharded over processes, folded into documents on main."""
    todo = broadcast(
        accelerator,
        [(s, t) for s in cfg.seeds for t in schedule.score_steps if not ckpt.shard_path(state.path, s, t).exists()],
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    metrics = [m for m in lm_scores() if m in cfg.scores]
    for seed, step in tqdm(todo, desc="Scoring checkpoints", unit="ckpt", disable=not show, dynamic_ncols=True):
        t0 = time.perf_counter()
        tensors, _ = ckpt.load(ckpt.checkpoint_path(state.path, seed, step))
        model = make_lm(cfg, corpus, seed).to(accelerator.device)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        rows, values = score_windows(cfg, model, corpus, windows, accelerator.device, rank, world)
        placed = gather_rows(accelerator, rows, values, len(windows))

        def save_shard(placed=placed, seed=seed, step=step) -> None:
            docs = fold_windows(windows, len(corpus), placed, metrics)
            shard = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in docs.items()}
            ckpt.atomic_save(shard, ckpt.shard_path(state.path, seed, step), {"seed": seed, "step": step})

        run_on_main(accelerator, save_shard)
        if accelerator.is_main_process:
            elapsed = time.perf_counter() - t0
            logger.info("scored seed %d step %d: %d windows in %.1f s", seed, step, len(windows), elapsed)


def build_corpus_table(step: int, cfg: ScoringConfig, metrics: list[str], state_dir: Path, ids: list[str]) -> pa.Table:
    """One row per document: ``idx``, ``example_id``, ``num_tokens`` and each metric's mean, std and per-seed
    values over the seeds."""
    shards = [ckpt.load(ckpt.shard_path(state_dir, seed, step))[0] for seed in cfg.seeds]
    n = len(ids)
    columns: dict[str, pa.Array] = {
        "idx": pa.array(np.arange(n, dtype=np.int64)),
        "example_id": pa.array(ids, type=pa.string()),
        "num_tokens": pa.array(shards[0]["num_tokens"].numpy().astype(np.int64)),  # the same for every seed
    }
    for metric in metrics:
        matrix = np.stack([shard[metric].numpy().astype(np.float32) for shard in shards], axis=1)
        columns[metric] = pa.array(matrix.mean(axis=1, dtype=np.float64).astype(np.float32))
        columns[f"{metric}_std"] = pa.array(matrix.std(axis=1, dtype=np.float64).astype(np.float32))
        columns[f"{metric}_per_seed"] = _per_seed_column(matrix)
    schema = score_schema([*metrics, "num_tokens"], label=False)
    return pa.table({name: columns[name] for name in schema.names}, schema=schema)


def _write(
    cfg: ScoringConfig,
    corpus: Corpus,
    schedule: Schedule,
    state: RunState,
    out: Path,
    started: float,
    command: str | None,
    hardware: str,
    device: torch.device,
) -> None:
    metrics = [m for m in lm_scores() if m in cfg.scores]
    ids = corpus.ids()
    tables, configs = {}, {}
    for step in schedule.score_steps:
        name = config_name(cfg.model or DEFAULT_LM, step, schedule.steps_per_epoch)
        tables[name] = build_corpus_table(step, cfg, metrics, state.path, ids)
        configs[name] = {
            "model": cfg.model,
            "step": step,
            "epoch": round(step / schedule.steps_per_epoch, 4),
            "metrics": metrics,
        }
    wall = state.previous_wall_time() + time.perf_counter() - started
    scoring = cfg.identity()
    scoring.update(
        steps_per_epoch=schedule.steps_per_epoch,
        total_steps=schedule.total_steps,
        windows="documents longer than max_length are cut into windows overlapping by one token; loss and el2n "
        "average over all predicted tokens of a document, grand is the token-weighted mean of its windows' norms",
        grand_loss="mean next-token cross entropy of the window",
    )
    source = corpus.source
    provenance = Provenance.from_scoring(
        source={
            "dataset": source["dataset"],
            "split": source["split"],
            "revision": source.get("revision"),
            "num_rows": len(corpus),
            "fingerprint": fingerprint(ids),
            "input_column": source["text_column"],
            "input_kind": "text",
            "num_tokens": source["num_tokens"],
        },
        scoring=scoring,
        configs=configs,
        environment=environment(hardware, device),
        wall_time_s=wall,
        command=command,
    )
    write_score_dataset(out, tables, provenance=provenance)
    state.record_wall_time(wall)
    logger.info("Wrote %s to %s in %.0f s", ", ".join(tables), out, wall)
