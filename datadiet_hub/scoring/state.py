"""The resumable state folder of a scoring run, ``OUTPUT_DIR/.datadiet``: the configuration it was started with,
the decoded split (so later processes and resumes skip decoding), the example ids, per-seed checkpoints and score
shards (their file names: ``datadiet_hub.scoring.checkpoint``), and the wall time spent so far.

Layout::

    .datadiet/config.json          the run's identity (ScoringConfig.identity()); a resume must match it
    .datadiet/source.json          where the rows came from (SourceInfo)
    .datadiet/example_ids.npy      one fixed-width ASCII id per row, numpy format
    .datadiet/data.safetensors     images uint8 [N, C, H, W] and labels int64 [N]; written last: marks the cache done
    .datadiet/data.json, manifest.npz, tokenizer.json   the data plan and the DataLoader path (scoring.data.prepare)
    .datadiet/seed-S/ckpt-stepT.safetensors, .datadiet/scores/seed-S-stepT.safetensors
    .datadiet/timing.json          wall time of the finished runs

Every file is written to a temporary name and renamed, so a killed run leaves either the old file or the new one.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.provenance import SourceInfo
from datadiet_hub.sources import (
    FASHION_MNIST,
    FASHION_MNIST_APT,
    FASHION_MNIST_CLASSES,
    Source,
    fashion_mnist_arrays,
    is_fashion_mnist,
)
from datadiet_hub.writer import atomic_write_bytes

from . import checkpoint as ckpt
from .config import ScoringConfig
from .data import TensorData, load_tensors
from .data.tensors import tensors_from_arrays

logger = logging.getLogger(__name__)

STATE = ".datadiet"


RESOLVED_LATER = ("model", "optimizer", "lr", "weight_decay")
"""Configuration fields a run may leave to the data (the input kind chooses the model family and its defaults)."""


class RunState:
    """The ``.datadiet`` folder under a run's output folder."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / STATE

    @classmethod
    def at(cls, state_dir: str | Path) -> RunState:
        """The state whose folder is ``state_dir`` itself (callers that are handed the ``.datadiet`` folder)."""
        state = cls(Path(state_dir).parent)
        state.path = Path(state_dir)
        return state

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def data_path(self) -> Path:
        return self.path / "data.safetensors"

    @property
    def ids_path(self) -> Path:
        return self.path / "example_ids.npy"

    @property
    def source_path(self) -> Path:
        return self.path / "source.json"

    @property
    def timing_path(self) -> Path:
        return self.path / "timing.json"

    def prepare(self, cfg: ScoringConfig) -> None:
        """Create the folder, drop what a killed run left half-written, and record the configuration of a new run
        (main process only)."""
        self.path.mkdir(parents=True, exist_ok=True)
        removed = ckpt.remove_temporaries(self.path) + remove_output_temporaries(self.path.parent)
        if removed:
            logger.info("removed %d temporary file(s) left by an interrupted run", removed)
        if not self.config_path.exists():
            atomic_write_bytes(self.config_path, json.dumps(cfg.identity(), indent=2, sort_keys=True).encode())

    def check_config(self, cfg: ScoringConfig, *, resolved: bool = True) -> None:
        """Refuse to resume a run made with other settings (every process checks, so every process stops).

        ``resolved=False`` is the early check, before the data decide the model and its training defaults: those
        fields (``RESOLVED_LATER``) are compared only where both runs name them; the full check follows once they
        are filled in (``record_resolved``)."""
        if not self.config_path.exists():
            return
        previous = json.loads(self.config_path.read_text())
        previous.setdefault("deterministic", False)  # runs from before the field existed
        previous.setdefault("precision", "fp32")
        previous.setdefault("objective", cfg.objective)  # runs from before the field existed
        current = json.loads(json.dumps(cfg.identity()))
        if not resolved:
            for key in RESOLVED_LATER:
                if previous.get(key) is None or current.get(key) is None:
                    previous.pop(key, None)
                    current.pop(key, None)
        if previous != current:
            changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
            details = "; ".join(f"{k}: was {previous.get(k)!r}, now {current.get(k)!r}" for k in changed)
            raise InvalidArgumentError(
                f"{self.path.parent} holds a run with a different configuration ({details}). "
                "Rerun with the same settings to resume, or choose a new --output-dir."
            )

    def record_resolved(self, cfg: ScoringConfig) -> None:
        """Write the model and training settings the data chose into the recorded configuration where it left them
        to the defaults (main process), so a rerun that names them (``--model cnn``) and one that leaves them out
        resume the same run."""
        if not self.config_path.exists():
            return
        previous = json.loads(self.config_path.read_text())
        current = json.loads(json.dumps(cfg.identity()))
        filled = {k: current[k] for k in RESOLVED_LATER if previous.get(k) is None and current.get(k) is not None}
        if filled:
            previous.update(filled)
            atomic_write_bytes(self.config_path, json.dumps(previous, indent=2, sort_keys=True).encode())

    # -- the decoded split ------------------------------------------------------------------------------------------

    def has_data(self) -> bool:
        return self.data_path.exists() and self.ids_path.exists() and self.source_path.exists()

    def decode(self, cfg: ScoringConfig, *, load: Callable[[], Source], progress: bool = True) -> None:
        """Decode the source split once into the cache (main process); a finished cache is kept. ``load``: the
        run's one way to load its split (``datadiet_hub.scoring.data.prepare.load_run_source``, or the split the
        caller already holds), called only when the split must be read. Fashion-MNIST is read from its IDX arrays
        directly: no PNG round trip, no load."""
        if self.has_data():
            return
        if is_fashion_mnist(cfg.dataset, cfg.data_files):
            images, labels = fashion_mnist_arrays(cfg.split)
            data = tensors_from_arrays(images, labels, len(FASHION_MNIST_CLASSES))
            info: dict[str, str | None] = {
                "dataset": FASHION_MNIST,
                "revision": f"debian:{FASHION_MNIST_APT}",
                "input_column": "image",
                "label_column": "label",
            }
        else:
            source = load()
            data = load_tensors(source, progress=progress)
            info = {
                "dataset": source.name,
                "revision": source.revision,
                "input_column": source.input_column,
                "label_column": source.label_column,
            }
        atomic_write_bytes(self.ids_path, example_ids_npy(data.example_ids))
        atomic_write_bytes(self.source_path, json.dumps({**info, "num_classes": data.num_classes}).encode())
        ckpt.atomic_save({"images": data.images, "labels": data.labels}, self.data_path)

    def load_data(self) -> tuple[TensorData, SourceInfo]:
        """The cached split and where it came from."""
        tensors, _ = ckpt.load(self.data_path)
        meta = json.loads(self.source_path.read_text())
        num_classes = int(meta.pop("num_classes"))
        if "image_column" in meta:  # caches written before the input column had a neutral name
            meta["input_column"] = meta.pop("image_column")
        if "name" in meta:  # caches written before the source had one description (the provenance's)
            meta["dataset"] = meta.pop("name")
        ids = read_example_ids(self.ids_path)
        if len(ids) != len(tensors["labels"]):
            raise RuntimeError(
                f"{self.ids_path} holds {len(ids)} example ids for {len(tensors['labels'])} rows; the state folder "
                f"is damaged: delete {self.path} and rerun."
            )
        return TensorData(tensors["images"], tensors["labels"], ids, num_classes), SourceInfo.from_dict(meta)

    # -- wall time --------------------------------------------------------------------------------------------------

    def previous_wall_time(self) -> float:
        """Seconds spent by earlier (finished or interrupted-after-writing) runs of this folder."""
        if not self.timing_path.exists():
            return 0.0
        return float(json.loads(self.timing_path.read_text())["wall_time_s"])

    def record_wall_time(self, seconds: float) -> None:
        atomic_write_bytes(self.timing_path, json.dumps({"wall_time_s": seconds}).encode())


def example_ids_npy(ids: list[str]) -> bytes:
    """The bytes of an ``.npy`` file holding the example ids (hex strings) as a numpy ``S`` array: fixed-width ASCII,
    no pickle, 32 bytes a row (1.9 MB for 60,000 rows) instead of a JSON list in a safetensors header."""
    array = np.array([i.encode("ascii") for i in ids], dtype=np.bytes_)
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def read_example_ids(path: Path) -> list[str]:
    """The ids written by ``example_ids_npy``."""
    array = np.load(path, allow_pickle=False)
    return [value.decode("ascii") for value in array.tolist()]


def remove_output_temporaries(out: Path) -> int:
    """Delete the temporary files a run killed while writing its outputs left next to them (the writer's
    ``.<name>.<random>.tmp`` and ``<plot>.tmp.png``); the rerun writes every output again."""
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
