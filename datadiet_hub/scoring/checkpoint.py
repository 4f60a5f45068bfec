"""Per-seed training checkpoints and raw score shards as safetensors, written atomically (temp + rename)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from datadiet_hub.atomic import atomic_path

_STEP_RE = re.compile(r"^ckpt-step(\d+)\.safetensors$")


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, Any] | None = None) -> None:
    meta = {"json": json.dumps(metadata or {})}
    out, seen = {}, set()
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
        if value.numel() and value.untyped_storage().data_ptr() in seen:  # tied weights: safetensors refuses shares
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        out[key] = value
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata=meta)


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = json.loads((handle.metadata() or {}).get("json", "{}"))
    return load_file(str(path)), metadata


def checkpoint_path(state_dir: Path, seed: int, step: int) -> Path:
    return state_dir / f"seed-{seed}" / f"ckpt-step{step:08d}.safetensors"


def shard_path(state_dir: Path, seed: int, step: int) -> Path:
    return state_dir / "scores" / f"seed-{seed}-step{step:08d}.safetensors"


def list_checkpoints(state_dir: Path, seed: int) -> list[tuple[int, Path]]:
    """The (step, path) of every finished checkpoint of ``seed``, by step."""
    folder = state_dir / f"seed-{seed}"
    return sorted((int(m.group(1)), p) for p in folder.glob("ckpt-step*.safetensors") if (m := _STEP_RE.match(p.name)))


def latest_checkpoint(state_dir: Path, seed: int) -> tuple[int, Path] | None:
    found = list_checkpoints(state_dir, seed)
    return found[-1] if found else None


def remove_temporaries(state_dir: Path) -> int:
    """Delete the temporary files a killed run left behind (``.name.PID.tmp``); returns how many."""
    stale = [p for p in state_dir.rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def pack_training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tracker_state: dict,
) -> dict[str, torch.Tensor]:
    """Model weights and buffers, optimizer per-parameter state, forgetting state: everything to resume."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for pid, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
    tensors.update({f"forgetting.{k}": v for k, v in tracker_state.items()})
    return tensors


def unpack_training_state(
    tensors: dict[str, torch.Tensor], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    """Restore model and optimizer in place; return the forgetting tracker state."""
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state = optimizer.state_dict()
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            per_param.setdefault(int(pid), {})[name] = value
    opt_state["state"] = per_param
    optimizer.load_state_dict(opt_state)
    return {k[len("forgetting.") :]: v for k, v in tensors.items() if k.startswith("forgetting.")}
