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
import platform
import sys
import time
from pathlib import Path

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


def _check_or_write_config(cfg: ScoringConfig, state_dir: Path) -> None:
    path = state_dir / "config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != cfg.identity():
            changed = sorted(k for k in set(previous) | set(cfg.identity()) if previous.get(k) != cfg.identity().get(k))
            raise ValueError(
                f"{state_dir.parent} holds a run with a different configuration (differs in: {', '.join(changed)}). "
                "Rerun with the same settings to resume, or choose a new --output-dir."
            )
        return
    atomic_write_bytes(path, json.dumps(cfg.identity(), indent=2, sort_keys=True).encode())


def _load_data(cfg: ScoringConfig, state_dir: Path, accelerator) -> TensorData:
    """Decode the split once (main process) into a cache the other processes and later resumes read."""
    cache = state_dir / "data.safetensors"
    if accelerator.is_main_process and not cache.exists():
        source = load_source(cfg.dataset, split=cfg.split, image_column=cfg.image_column,
                             label_column=cfg.label_column, revision=cfg.revision, data_files=cfg.data_files)
        data = load_tensors(source)
        meta = {"example_ids": data.example_ids, "num_classes": data.num_classes, "name": source.name,
                "revision": source.revision, "image_column": source.image_column,
                "label_column": source.label_column}
        ckpt.atomic_save({"images": data.images, "labels": data.labels}, cache, meta)
    accelerator.wait_for_everyone()
    tensors, meta = ckpt.load(cache)
    data = TensorData(tensors["images"], tensors["labels"], meta["example_ids"], meta["num_classes"])
    data.source_meta = meta  # type: ignore[attr-defined]
    return data


def _gather_rows(accelerator, rows: torch.Tensor, values: dict[str, torch.Tensor], n: int) -> dict[str, np.ndarray]:
    """Gather per-process ``(idx, value)`` pairs and place them by idx; padding rows (idx -1) are dropped."""
    width = math.ceil(n / accelerator.num_processes)
    idx = torch.full((width,), -1, dtype=torch.int64)
    idx[: len(rows)] = rows
    out = {}
    all_idx = accelerator.gather(idx.to(accelerator.device)).cpu().numpy()
    valid = all_idx >= 0
    if np.unique(all_idx[valid]).size != n or valid.sum() != n:
        raise RuntimeError(f"Sharded scoring covered {np.unique(all_idx[valid]).size} of {n} rows exactly once.")
    for name, tensor in values.items():
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


def run(cfg: ScoringConfig, *, progress: bool = True, command: str | None = None) -> Path:
    """Run (or resume) the scoring described by ``cfg``; returns the output folder."""
    from accelerate import Accelerator  # noqa: PLC0415

    started = time.perf_counter()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    out = Path(cfg.output_dir)
    state_dir = out / STATE
    show = progress and accelerator.is_local_main_process
    if accelerator.is_main_process:
        state_dir.mkdir(parents=True, exist_ok=True)
        _check_or_write_config(cfg, state_dir)
    accelerator.wait_for_everyone()
    data = _load_data(cfg, state_dir, accelerator)
    shape = data.shape
    mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else channel_stats(data.images)
    if len(mean) != shape[0]:
        raise ValueError(f"mean/std have {len(mean)} values but the images have {shape[0]} channel(s).")
    augmentation = resolve_augmentation(cfg.augmentation, shape)
    preprocess = Preprocess(mean, std, augmentation)
    schedule = Schedule.from_config(cfg, len(data))
    rank, world = accelerator.process_index, accelerator.num_processes
    logger.info("%d rows, %d steps/epoch, %d steps, score at steps %s, %d process(es)", len(data),
                schedule.steps_per_epoch, schedule.total_steps, list(schedule.score_steps), world)

    # Phase 1: train; seeds round-robin over processes.
    for seed in cfg.seeds[rank::world]:
        latest = ckpt.latest_checkpoint(state_dir, seed)
        if latest is not None and latest[0] >= schedule.total_steps:
            continue
        train_seed(cfg, data, preprocess, seed, schedule, state_dir, device, progress=show)
    accelerator.wait_for_everyone()

    # Phase 2: score every (seed, time) checkpoint; rows sharded over processes, gathered by idx.
    todo = [(s, t) for s in cfg.seeds for t in schedule.score_steps if not ckpt.shard_path(state_dir, s, t).exists()]
    accelerator.wait_for_everyone()
    rows = torch.arange(len(data))[rank::world]
    for seed, step in tqdm(todo, desc="Scoring checkpoints", unit="ckpt", disable=not show):
        tensors, _ = ckpt.load(ckpt.checkpoint_path(state_dir, seed, step))
        model = make_model(cfg, data, seed).to(device)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        values = score_rows(cfg, model, data, preprocess, rows, device)
        placed = _gather_rows(accelerator, rows, values, len(data))
        if accelerator.is_main_process:
            shard = {k: torch.from_numpy(v) for k, v in placed.items()}
            shard["forgetting"] = tensors["forgetting.counts"].to(torch.float32)
            shard["never_learned"] = (~tensors["forgetting.learned"].bool()).to(torch.uint8)
            ckpt.atomic_save(shard, ckpt.shard_path(state_dir, seed, step), {"seed": seed, "step": step})
    accelerator.wait_for_everyone()

    # Phase 3: aggregate over seeds and write the dataset (main process).
    if accelerator.is_main_process:
        _write_outputs(cfg, data, schedule, state_dir, out, mean, std, augmentation, started, command,
                       _hardware(accelerator))
    accelerator.wait_for_everyone()
    return out


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
    import accelerate  # noqa: PLC0415

    scoring = cfg.identity()
    scoring.update(mean=[round(v, 6) for v in mean], std=[round(v, 6) for v in std], augmentation=augmentation,
                   steps_per_epoch=schedule.steps_per_epoch, total_steps=schedule.total_steps)
    provenance = {
        "format_version": 1,
        "source": {"dataset": meta["name"], "split": cfg.split, "revision": meta["revision"],
                   "num_rows": len(data), "fingerprint": fingerprint(data.example_ids),
                   "image_column": meta["image_column"], "label_column": meta["label_column"]},
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
