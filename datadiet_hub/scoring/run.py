"""The scoring run: train M seeds briefly, score every checkpoint, aggregate, write the score dataset.

Runs unchanged on 1 or N processes (``accelerate launch -m datadiet_hub.scoring``, ``torchrun``, CPU or GPU):
phase 1 spreads the seeds over the processes; phase 2 shards the scoring pass of every (seed, time) checkpoint
over all processes by row and gathers by ``idx``; phase 3 (main process) aggregates and writes the dataset.
Every phase skips what a previous, interrupted run already finished, so rerunning the same command resumes.

This module only orchestrates: the state folder is ``datadiet_hub.scoring.state``, the process plumbing ``datadiet_hub.scoring.distributed``,
training ``datadiet_hub.scoring.train``, scoring ``datadiet_hub.scoring.score``, the provenance ``datadiet_hub.scoring.provenance``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from datadiet_hub.columns import InputKind
from datadiet_hub.errors import DatadietError, InvalidArgumentError
from datadiet_hub.provenance import SourceInfo
from datadiet_hub.writer import write_score_dataset

from . import checkpoint as ckpt
from . import determinism, memory
from .aggregate import build_table
from .config import ScoringConfig
from .data.prepare import RunData, load_run_source, prepare_data
from .distributed import (
    broadcast,
    describe_hardware,
    gather_rows,
    make_accelerator,
    run_on_main,
    shutdown,
)
from .models import resolve_training
from .parallel import train_in_parallel
from .placement import channels_last_choice, place
from .provenance import build_provenance, config_entries, environment
from .score import score_rows, training_scores
from .state import STATE, RunState
from .train import Schedule, make_model, train_seed

__all__ = ["STATE", "run", "shutdown"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Setup:
    """What every phase needs: the rows (in memory or behind a DataLoader) and the schedule."""

    data: RunData
    schedule: Schedule

    @property
    def source(self) -> SourceInfo:
        return self.data.source_info


def run(cfg: ScoringConfig, *, progress: bool = True, command: str | None = None) -> Path:
    """Run (or resume) the scoring described by ``cfg``; returns the output folder.

    Args:
        cfg: the run's configuration; rerunning with the same one (and ``output_dir``) resumes.
        progress: show progress bars (main process only): decoding, one bar per seed with ETA, scoring.
        command: the command line to record in the card.
    """
    from .lm.run import corpus_config, objective_and_split, run_corpus

    objective, opened = objective_and_split(cfg)
    if objective == "causal-lm":  # a corpus without labels: reference language models
        return run_corpus(corpus_config(cfg), progress=progress, command=command, split=opened)
    if {"loss", "num_tokens"} & set(cfg.scores):
        raise InvalidArgumentError(
            f"loss and num_tokens are language-model scores, but {cfg.dataset!r} is scored as a classification set; "
            "give --objective causal-lm for a text corpus, or choose el2n, grand, forgetting."
        )
    started = time.perf_counter()
    determinism.enable(cfg.deterministic)
    accelerator = make_accelerator()
    out = Path(cfg.output_dir)
    state = RunState(out)
    show = progress and accelerator.is_local_main_process
    created = next((p for p in (out, state.path) if not p.exists()), None)  # what this call makes, outermost
    run_on_main(accelerator, lambda: state.prepare(cfg))
    state.check_config(cfg, resolved=False)  # the model and its training defaults are compared once chosen
    try:
        data = prepare_data(
            cfg, state.path, progress=show, on_main=lambda work: run_on_main(accelerator, work), split=opened
        )
        cfg, choice = resolve_training(cfg, data.plan.kind, data.plan.input_column)
        resolved = cfg
        run_on_main(accelerator, lambda: state.record_resolved(resolved))
        state.check_config(cfg)
        probe = make_model(cfg, data, cfg.seeds[0])  # a model spec that cannot be built fails now, before training
        schedule = Schedule.from_config(cfg, len(data))
        scoring_cfg = _fit_memory(cfg, data, probe, schedule, accelerator)  # too large to train fails now, too
    except DatadietError:  # bad input: leave no folder behind that would pin a rerun to this config
        if created is not None and accelerator.is_main_process:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        logger.info("%s", choice.message)
        channels_last, why = channels_last_choice(cfg, probe, accelerator.device)
        logger.info("memory layout %s (%s)", "channels-last" if channels_last else "as built", why)
    del probe  # placed on the device by _fit_memory: not held through training
    setup = _Setup(data, schedule)
    if accelerator.is_main_process:
        _log_setup(setup, accelerator)
    _train(cfg, setup, state, accelerator, show)
    _score(scoring_cfg, setup, state, accelerator, show)
    hardware = describe_hardware(accelerator)
    run_on_main(
        accelerator,
        lambda: _write(cfg, setup, state, out, started, command, hardware, accelerator.device, opened),
    )
    accelerator.wait_for_everyone()
    return out


def _fit_memory(cfg: ScoringConfig, data: RunData, probe: torch.nn.Module, schedule: Schedule, accelerator):
    """``cfg`` with scoring batches that fit in memory (``datadiet_hub.scoring.memory``); raises when training at
    ``--batch-size`` cannot fit."""
    device = accelerator.device
    first = next(iter(data.eval_batches(batch_size=1, device=device)))
    sizes = memory.activation_sizes(place(probe, cfg, device), first)
    available = memory.available_bytes(device)
    if available is None:
        return cfg
    what = f"{cfg.model} on {_input_shape(data)} inputs"
    if schedule.total_steps > 0:
        memory.check_training_fits(sizes, cfg.batch_size, available, what)
    fitted = {}
    for field, grad in (("eval_batch_size", False), ("grand_batch_size", True)):
        requested = getattr(cfg, field)
        fits = fitted[field] = memory.fitting_batch_size(sizes, requested, grad, available)
        if fits < requested and accelerator.is_main_process:
            logger.info(
                "--%s %d lowered to %d for %s: about %s of activations per example, %s available (the batch size "
                "of a scoring pass does not change the scores)",
                field.replace("_", "-"), requested, fits, what,
                memory.format_bytes(sizes.scoring(1, grad)), memory.format_bytes(available),
            )  # fmt: skip
    return dataclasses.replace(
        cfg, eval_batch_size=fitted["eval_batch_size"], grand_batch_size=fitted["grand_batch_size"]
    )


def _input_shape(data: RunData) -> str:
    plan = data.plan
    return f"{plan.channels}x{plan.image_size}x{plan.image_size}" if plan.kind == InputKind.IMAGE else "text"


def _log_setup(setup: _Setup, accelerator) -> None:
    schedule = setup.schedule
    data = setup.data
    shape = _input_shape(data)
    logger.info(
        "%d rows (%s, %s path), %d classes, %d steps/epoch, %d steps, score at steps %s, "
        "augmentation %s, %d process(es) on %s",
        len(data),
        shape,
        data.path,
        data.num_classes,
        schedule.steps_per_epoch,
        schedule.total_steps,
        list(schedule.score_steps),
        data.augmentation,
        accelerator.num_processes,
        accelerator.device,
    )


def _train(cfg: ScoringConfig, setup: _Setup, state: RunState, accelerator, show: bool) -> None:
    """Phase 1: train; seeds round-robin over processes."""
    rank, world = accelerator.process_index, accelerator.num_processes
    todo = {}  # seed -> the step it resumes from
    for seed in cfg.seeds[rank::world]:
        latest = ckpt.latest_checkpoint(state.path, seed)
        if latest is None or latest[0] < setup.schedule.total_steps:
            todo[seed] = 0 if latest is None else latest[0]
    if len(todo) > 1 or cfg.parallel_seeds:
        todo = train_in_parallel(cfg, setup.data, todo, setup.schedule, state.path, accelerator.device, show, rank)
    for seed in todo:
        started_seed = time.perf_counter()
        train_seed(cfg, setup.data, seed, setup.schedule, state.path, accelerator.device, progress=show)
        logger.info("[rank %d] seed %d trained in %.1f s", rank, seed, time.perf_counter() - started_seed)
    accelerator.wait_for_everyone()


def _score(cfg: ScoringConfig, setup: _Setup, state: RunState, accelerator, show: bool) -> None:
    """Phase 2: score every (seed, time) checkpoint; rows sharded over processes, gathered by idx."""
    data, device = setup.data, accelerator.device
    todo = broadcast(
        accelerator,
        [
            (s, t)
            for s in cfg.seeds
            for t in setup.schedule.score_steps
            if not ckpt.shard_path(state.path, s, t).exists()
        ],
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    for seed, step in tqdm(todo, desc="Scoring checkpoints", unit="ckpt", disable=not show, dynamic_ncols=True):
        t0 = time.perf_counter()
        tensors, _ = ckpt.load(ckpt.checkpoint_path(state.path, seed, step))
        model = place(make_model(cfg, data, seed), cfg, device)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        model.eval()
        placed = {}
        for name, (rows, values) in score_rows(cfg, model, data, device, rank, world, seed).items():
            placed.update(gather_rows(accelerator, rows, {name: values}, len(data)))

        def save_shard(placed=placed, tensors=tensors, seed=seed, step=step) -> None:
            shard = {k: torch.from_numpy(v) for k, v in placed.items()}
            shard.update(training_scores(cfg, tensors, seed))
            ckpt.atomic_save(shard, ckpt.shard_path(state.path, seed, step), {"seed": seed, "step": step})

        run_on_main(accelerator, save_shard)
        if accelerator.is_main_process:
            elapsed = time.perf_counter() - t0
            logger.info(
                "scored seed %d step %d: %d rows in %.1f s (%.0f rows/s)",
                seed,
                step,
                len(data),
                elapsed,
                len(data) / max(elapsed, 1e-9),
            )


def _write(
    cfg: ScoringConfig,
    setup: _Setup,
    state: RunState,
    out: Path,
    started: float,
    command: str | None,
    hardware: str,
    device: torch.device,
    opened=None,
) -> None:
    """Phase 3 (main process): aggregate over seeds and write the dataset (``opened``: the split as the objective
    detection opened it, for the card's examples)."""
    schedule, data = setup.schedule, setup.data
    labels = data.labels.numpy()
    configs = config_entries(cfg, schedule)
    tables, info = {}, {}
    for name, entry in configs.items():
        step = entry["step"]
        tables[name] = build_table(step, cfg.seeds, entry["metrics"], state.path, data.example_ids, labels)
        epoch = step / schedule.steps_per_epoch
        time_text = f"epoch {epoch:g}" if step % schedule.steps_per_epoch == 0 else f"step {step} (epoch {epoch:.2f})"
        info[name] = {"model": cfg.model, "time": time_text}
    wall = state.previous_wall_time() + time.perf_counter() - started
    provenance = build_provenance(
        cfg,
        data,
        setup.source,
        schedule,
        mean=data.mean,
        std=data.std,
        augmentation=data.augmentation,
        data_facts=data.facts(),
        input_kind=data.plan.kind,
        label_names=data.plan.scored_names,
        configs=configs,
        env=environment(hardware, device),
        wall_time_s=wall,
        command=command,
    )
    write_score_dataset(
        out, tables, provenance=provenance, config_info=info, examples_source=_examples_source(cfg, opened)
    )
    state.record_wall_time(wall)
    logger.info("Wrote %s configs to %s in %.0f s", ", ".join(tables), out, wall)


def _examples_source(cfg: ScoringConfig, opened=None):
    """The scored split, for the examples the card shows; None for a streamed run (that would be another pass)."""
    if cfg.streaming:
        logger.info("Streamed run: no example grid in the card; draw one with `datadiet show OUT --examples DATASET`.")
        return None
    return load_run_source(cfg, opened)
