"""The scoring run: train M seeds briefly, score every checkpoint, aggregate, write the score dataset.

Runs unchanged on 1 or N processes (``accelerate launch -m scoring``, ``torchrun``, CPU or GPU):
phase 1 spreads the seeds over the processes; phase 2 shards the scoring pass of every (seed, time) checkpoint
over all processes by row and gathers by ``idx``; phase 3 (main process) aggregates and writes the dataset.
Every phase skips what a previous, interrupted run already finished, so rerunning the same command resumes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

import datadiet_hub
from datadiet_hub.hashing import fingerprint
from datadiet_hub.schema import config_name
from datadiet_hub.sources import load_source
from datadiet_hub.writer import atomic_write_bytes, write_score_dataset

from . import checkpoint as ckpt
from .aggregate import build_table
from .config import ScoringConfig
from .data import Preprocess, TensorData, channel_stats, load_tensors, resolve_augmentation
from .score import score_rows
from .train import Schedule, make_model, train_seed

logger = logging.getLogger(__name__)
STATE = ".datadiet"
T = TypeVar("T")


def _on_main(accelerator, func: Callable[[], T]) -> T | None:
    """Run ``func`` on the main process only and re-raise its error on *every* process, so that a failure there
    (bad config, missing dataset, full disk) stops the whole group instead of leaving the others at a barrier."""
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = func()
        except Exception as err:  # noqa: BLE001 -- re-raised below, on every process
            error = err
    if accelerator.num_processes > 1:
        shipped = _broadcast(accelerator, None if error is None else _portable(error))
        if shipped is not None and error is None:
            raise shipped
    if error is not None:
        raise error
    return result


def _portable(error: Exception) -> Exception:
    """The error itself if it survives pickling (to reach the other processes), else a RuntimeError naming it."""
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 -- any unpicklable exception
        return RuntimeError(f"{type(error).__name__} on the main process: {error}")


def _broadcast(accelerator, value: Any) -> Any:
    """The main process's ``value`` on every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _check_config(cfg: ScoringConfig, state_dir: Path) -> None:
    """Refuse to resume a run made with other settings (every process checks, so every process stops)."""
    path = state_dir / "config.json"
    if not path.exists():
        return
    previous = json.loads(path.read_text())
    current = json.loads(json.dumps(cfg.identity()))
    if previous != current:
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        details = "; ".join(f"{k}: was {previous.get(k)!r}, now {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"{state_dir.parent} holds a run with a different configuration ({details}). "
            "Rerun with the same settings to resume, or choose a new --output-dir."
        )


def _prepare_state(cfg: ScoringConfig, state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    removed = ckpt.remove_temporaries(state_dir) + _remove_output_temporaries(state_dir.parent)
    if removed:
        logger.info("removed %d temporary file(s) left by an interrupted run", removed)
    path = state_dir / "config.json"
    if not path.exists():
        atomic_write_bytes(path, json.dumps(cfg.identity(), indent=2, sort_keys=True).encode())


def _remove_output_temporaries(out: Path) -> int:
    """Delete the temporary files a run killed while writing its outputs left next to them (the writer's
    ``.<name>.<random>.tmp`` and plot temporaries); the rerun writes every output again."""
    stale = [p for p in out.glob(".*.tmp") if p.is_file()]
    for sub in ("data", "plots"):
        if (out / sub).is_dir():
            stale += [
                p
                for p in (out / sub).rglob("*")
                if p.is_file()
                and ((p.name.startswith(".") and p.name.endswith(".tmp")) or p.name.endswith(".tmp.png"))
            ]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _decode_source(cfg: ScoringConfig, cache: Path, progress: bool) -> None:
    if cache.exists():
        return
    source = load_source(
        cfg.dataset,
        split=cfg.split,
        image_column=cfg.image_column,
        label_column=cfg.label_column,
        revision=cfg.revision,
        data_files=cfg.data_files,
    )
    data = load_tensors(source, progress=progress)
    meta = {
        "example_ids": data.example_ids,
        "num_classes": data.num_classes,
        "name": source.name,
        "revision": source.revision,
        "image_column": source.image_column,
        "label_column": source.label_column,
    }
    ckpt.atomic_save({"images": data.images, "labels": data.labels}, cache, meta)


def _load_data(cfg: ScoringConfig, state_dir: Path, accelerator, progress: bool = True) -> TensorData:
    """Decode the split once (main process) into a cache the other processes and later resumes read."""
    cache = state_dir / "data.safetensors"
    _on_main(accelerator, lambda: _decode_source(cfg, cache, progress))
    tensors, meta = ckpt.load(cache)
    data = TensorData(tensors["images"], tensors["labels"], meta["example_ids"], meta["num_classes"])
    data.source_meta = meta  # type: ignore[attr-defined]
    return data


def _gather_rows(accelerator, rows: torch.Tensor, values: dict[str, torch.Tensor], n: int) -> dict[str, np.ndarray]:
    """Gather per-process ``(idx, value)`` pairs and place them by idx.

    Each process pads its rows to the same width with idx -1 (N need not divide by the number of processes);
    padding is dropped, and the gathered idx must cover 0..N-1 exactly once.
    """
    world = accelerator.num_processes
    width = math.ceil(n / world)
    if len(rows) > width:
        raise ValueError(f"A process holds {len(rows)} rows, more than ceil({n}/{world}) = {width}.")
    idx = torch.full((width,), -1, dtype=torch.int64)
    idx[: len(rows)] = rows.to(torch.int64)
    all_idx = accelerator.gather(idx.to(accelerator.device)).cpu().numpy()
    valid = all_idx >= 0
    covered = np.unique(all_idx[valid])
    if covered.size != n or valid.sum() != n or (n and covered[-1] != n - 1):
        raise RuntimeError(
            f"Sharded scoring covered {covered.size} distinct of {n} rows ({int(valid.sum())} "
            "gathered); every row must be scored exactly once."
        )
    out = {}
    for name in sorted(values):  # same order on every process: gather is a collective
        tensor = values[name]
        padded = torch.zeros(width, dtype=tensor.dtype)
        padded[: len(tensor)] = tensor
        gathered = accelerator.gather(padded.to(accelerator.device)).cpu().numpy()
        placed = np.empty(n, dtype=gathered.dtype)
        placed[all_idx[valid]] = gathered[valid]
        out[name] = placed
    return out


def _hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        device = torch.cuda.get_device_name(accelerator.device)
    else:
        device = f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    return f"{accelerator.num_processes} process(es) on {device}"


def _make_accelerator():
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    # Processes without a seed to train wait at a barrier while the others train: the default 30 min collective
    # timeout would kill long runs (10 seeds on 8 GPUs), so wait as long as a run may take.
    timeout = timedelta(seconds=float(os.environ.get("DATADIET_DIST_TIMEOUT_S", "604800")))
    return Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[InitProcessGroupKwargs(timeout=timeout)])


def run(cfg: ScoringConfig, *, progress: bool = True, command: str | None = None) -> Path:
    """Run (or resume) the scoring described by ``cfg``; returns the output folder.

    Args:
        cfg: the run's configuration; rerunning with the same one (and ``output_dir``) resumes.
        progress: show progress bars (main process only): decoding, one bar per seed with ETA, scoring.
        command: the command line to record in the card.
    """
    started = time.perf_counter()
    accelerator = _make_accelerator()
    device = accelerator.device
    out = Path(cfg.output_dir)
    state_dir = out / STATE
    show = progress and accelerator.is_local_main_process
    _on_main(accelerator, lambda: _prepare_state(cfg, state_dir))
    _check_config(cfg, state_dir)
    data = _load_data(cfg, state_dir, accelerator, progress=show)
    shape = data.shape
    mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else channel_stats(data.images)
    if len(mean) != shape[0]:
        raise ValueError(f"mean/std have {len(mean)} values but the images have {shape[0]} channel(s).")
    augmentation = resolve_augmentation(cfg.augmentation, shape)
    preprocess = Preprocess(mean, std, augmentation)
    schedule = Schedule.from_config(cfg, len(data))
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.is_main_process:
        logger.info(
            "%d rows of shape %s, %d classes, %d steps/epoch, %d steps, score at steps %s, "
            "augmentation %s, %d process(es) on %s",
            len(data),
            shape,
            data.num_classes,
            schedule.steps_per_epoch,
            schedule.total_steps,
            list(schedule.score_steps),
            augmentation,
            world,
            device,
        )

    # Phase 1: train; seeds round-robin over processes.
    for seed in cfg.seeds[rank::world]:
        latest = ckpt.latest_checkpoint(state_dir, seed)
        if latest is not None and latest[0] >= schedule.total_steps:
            continue
        started_seed = time.perf_counter()
        train_seed(cfg, data, preprocess, seed, schedule, state_dir, device, progress=show)
        logger.info("[rank %d] seed %d trained in %.1f s", rank, seed, time.perf_counter() - started_seed)
    accelerator.wait_for_everyone()

    # Phase 2: score every (seed, time) checkpoint; rows sharded over processes, gathered by idx.
    todo = _broadcast(
        accelerator,
        [(s, t) for s in cfg.seeds for t in schedule.score_steps if not ckpt.shard_path(state_dir, s, t).exists()],
    )
    rows = torch.arange(len(data))[rank::world]
    for seed, step in tqdm(todo, desc="Scoring checkpoints", unit="ckpt", disable=not show, dynamic_ncols=True):
        t0 = time.perf_counter()
        tensors, _ = ckpt.load(ckpt.checkpoint_path(state_dir, seed, step))
        model = make_model(cfg, data, seed).to(device)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        model.eval()
        values = score_rows(cfg, model, data, preprocess, rows, device)
        placed = _gather_rows(accelerator, rows, values, len(data))

        def save_shard(placed=placed, tensors=tensors, seed=seed, step=step) -> None:
            shard = {k: torch.from_numpy(v) for k, v in placed.items()}
            shard["forgetting"] = tensors["forgetting.counts"].to(torch.float32)
            shard["never_learned"] = (~tensors["forgetting.learned"].bool()).to(torch.uint8)
            ckpt.atomic_save(shard, ckpt.shard_path(state_dir, seed, step), {"seed": seed, "step": step})

        _on_main(accelerator, save_shard)
        if accelerator.is_main_process:
            logger.info(
                "scored seed %d step %d: %d rows in %.1f s (%.0f rows/s)",
                seed,
                step,
                len(data),
                time.perf_counter() - t0,
                len(data) / max(time.perf_counter() - t0, 1e-9),
            )

    # Phase 3: aggregate over seeds and write the dataset (main process).
    _on_main(
        accelerator,
        lambda: _write_outputs(
            cfg, data, schedule, state_dir, out, mean, std, augmentation, started, command, _hardware(accelerator)
        ),
    )
    accelerator.wait_for_everyone()
    return out


def shutdown() -> None:
    """Tear the process group down before the interpreter exits: with gloo, a process leaving while its peer still
    holds the connection can abort (SIGABRT) at exit. The command line calls this after ``run``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _write_outputs(cfg, data, schedule, state_dir, out, mean, std, augmentation, started, command, hardware):
    labels = data.labels.numpy()
    tables, info, configs = {}, {}, {}
    for step in schedule.score_steps:
        metrics = [m for m in ("el2n", "grand") if m in cfg.scores]
        if "forgetting" in cfg.scores and step > 0:
            metrics.append("forgetting")
        if not metrics:
            continue
        name = config_name(cfg.model, step, schedule.steps_per_epoch)
        tables[name] = build_table(step, cfg.seeds, metrics, state_dir, data.example_ids, labels)
        epoch = step / schedule.steps_per_epoch
        time_text = f"epoch {epoch:g}" if step % schedule.steps_per_epoch == 0 else f"step {step} (epoch {epoch:.2f})"
        info[name] = {"model": cfg.model, "time": time_text}
        configs[name] = {"step": step, "epoch": round(epoch, 4), "metrics": metrics}
    timing_path = state_dir / "timing.json"
    previous = json.loads(timing_path.read_text())["wall_time_s"] if timing_path.exists() else 0.0
    wall = previous + time.perf_counter() - started
    meta = data.source_meta
    import accelerate

    scoring = cfg.identity()
    scoring.update(
        mean=[round(v, 6) for v in mean],
        std=[round(v, 6) for v in std],
        augmentation=augmentation,
        steps_per_epoch=schedule.steps_per_epoch,
        total_steps=schedule.total_steps,
    )
    provenance = {
        "format_version": 1,
        "source": {
            "dataset": meta["name"],
            "split": cfg.split,
            "revision": meta["revision"],
            "num_rows": len(data),
            "fingerprint": fingerprint(data.example_ids),
            "image_column": meta["image_column"],
            "label_column": meta["label_column"],
        },
        "scoring": scoring,
        "configs": configs,
        "library_version": datadiet_hub.__version__,
        "torch_version": str(torch.__version__),
        "accelerate_version": str(accelerate.__version__),
        "python_version": sys.version.split()[0],
        "hardware": hardware,
        "wall_time_s": round(wall, 1),
        "command": command,
        "forgetting_convention": "count of correct->incorrect transitions on the trained minibatches; never_learned "
        "rows count 0 per seed and are flagged (data_diet ranks them as infinite)",
    }
    write_score_dataset(out, tables, provenance=provenance, config_info=info)
    atomic_write_bytes(timing_path, json.dumps({"wall_time_s": wall}).encode())
    logger.info("Wrote %s configs to %s in %.0f s", ", ".join(tables), out, wall)
