"""``prepare_data``: from a ``ScoringConfig`` to ``RunData``, the one object the engine reads rows through, whichever
path (in memory or DataLoader) serves them.

The first run decides (and logs, with the reasons) the path, the image geometry, the channels and the training
augmentation, trains or loads the tokenizer, and makes the one pass over every row (labels, example ids, pixel
statistics); all of it goes into the run's state folder, so a resumed run, and every process of a distributed run,
reads the same decisions instead of re-deriving them.

State files: ``data.json`` (the plan), ``data.safetensors`` (in-memory path: the decoded split, as before),
``manifest.npz`` and ``tokenizer.json`` (DataLoader path).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datadiet_hub.sources import Source, load_source

from .loader import Inputs, Manifest, default_workers, epoch_batches, scan, to_device
from .plan import choose_path, image_geometry, probe, resolve_train_augmentation
from .tensors import Preprocess, TensorData, channel_stats, load_tensors, resolve_augmentation
from .text import TextEncoder, iter_texts, load_tokenizer, pad_id_of, train_tokenizer

logger = logging.getLogger(__name__)

PLAN_FILE = "data.json"
TENSORS_FILE = "data.safetensors"
MANIFEST_FILE = "manifest.npz"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class Plan:
    """How this run reads its rows; saved as ``data.json`` and reused on resume."""

    path: str
    reason: str
    kind: str
    input_column: str
    label_column: str
    name: str
    revision: str | None
    image_size: int = 0
    channels: int = 0
    geometry: str = ""
    augmentation: str = "none"
    label_names: list[str] | None = None
    class_count: int = 0  # from the ClassLabel feature (0: from the labels)


@dataclass
class RunData:
    """The rows of a scoring run, in memory or behind a DataLoader; batches are dicts carrying ``idx``,
    ``labels`` and the model's keyword inputs, already on the device and normalised.

    Attributes:
        plan: the decisions (path, geometry, augmentation) and their reasons.
        labels: int64 ``[N]`` (CPU), row i = source row i.
        example_ids: arrow string array of the ``N`` content hashes (no Python string per row).
        num_classes: classes of the label column.
        mean, std: per-channel normalisation (images), else None.
        model_kwargs: what the model factory is offered (``in_channels``/``image_size`` or ``vocab_size``/...).
    """

    plan: Plan
    labels: torch.Tensor
    example_ids: Any
    num_classes: int
    mean: list[float] | None
    std: list[float] | None
    model_kwargs: dict[str, Any]
    tensors: TensorData | None = None
    dataset: Any = None
    inputs: Inputs | None = None
    num_workers: int | None = None
    _device_images: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def path(self) -> str:
        return self.plan.path

    @property
    def source_meta(self) -> dict[str, Any]:
        """The facts about the source the card's provenance records."""
        meta = {"name": self.plan.name, "revision": self.plan.revision, "label_column": self.plan.label_column}
        meta["text_column" if self.plan.kind == "text" else "image_column"] = self.plan.input_column
        return meta

    def preprocess(self) -> Preprocess:
        assert self.mean is not None and self.std is not None
        return Preprocess(self.mean, self.std, self.plan.augmentation)

    def _images_on(self, device: torch.device) -> torch.Tensor:
        assert self.tensors is not None
        key = str(device)
        if key not in self._device_images:
            self._device_images = {key: self.tensors.images.to(device)}
        return self._device_images[key]

    def _normalise(self) -> dict[str, torch.Tensor | None]:
        if self.mean is None or self.std is None:
            return {"mean": None, "std": None}
        return {
            "mean": torch.tensor(self.mean, dtype=torch.float32),
            "std": torch.tensor(self.std, dtype=torch.float32),
        }

    def train_batches(
        self,
        *,
        seed: int,
        epoch: int,
        order: torch.Tensor,
        batch_size: int,
        start_batch: int,
        device: torch.device,
        step_generator: Callable[[int], torch.Generator],
        steps_per_epoch: int,
    ) -> Iterator[dict[str, torch.Tensor]]:
        """The training batches of ``epoch`` from ``start_batch`` on, in the fixed ``order``.

        In memory: the augmentation of step s draws from ``step_generator(s)`` (as it always has); on the
        DataLoader path it is seeded per row by (seed, epoch, idx).
        """
        if self.tensors is not None:
            images = self._images_on(device)
            labels = self.labels.to(device)
            order = order.to(device)
            pre = self.preprocess()
            for b in range(start_batch, steps_per_epoch):
                idx = order[b * batch_size : (b + 1) * batch_size]
                step = epoch * steps_per_epoch + b
                x = pre(images[idx], train=True, generator=step_generator(step))
                yield {"idx": idx, "labels": labels[idx], "pixel_values": x}
            return
        assert self.inputs is not None
        loader = epoch_batches(
            self.dataset,
            self.inputs,
            batch_size=batch_size,
            train=True,
            seed=seed,
            epoch=epoch,
            order=order.cpu().numpy(),
            start_batch=start_batch,
            shuffle_seed=_stream_shuffle_seed(seed, epoch) if self.plan_streaming else None,
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
        )
        norm = self._normalise()
        for batch in loader:
            yield to_device(batch, device, **norm)

    @property
    def plan_streaming(self) -> bool:
        import datasets

        return isinstance(self.dataset, datasets.IterableDataset)

    def eval_batches(
        self, *, batch_size: int, device: torch.device, rank: int = 0, world: int = 1
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Un-augmented batches over this process's share of the rows (whole batches dealt round-robin)."""
        if self.tensors is not None:
            images = self._images_on(device)
            pre = self.preprocess()
            n = len(self)
            starts = range(rank * batch_size, n, world * batch_size)
            for start in starts:
                idx = torch.arange(start, min(start + batch_size, n), device=device)
                yield {"idx": idx, "labels": self.labels.to(device)[idx], "pixel_values": pre(images[idx])}
            return
        assert self.inputs is not None
        loader = epoch_batches(
            self.dataset,
            self.inputs,
            batch_size=batch_size,
            train=False,
            keep=(rank, world),
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
        )
        norm = self._normalise()
        for batch in loader:
            yield to_device(batch, device, **norm)


def _stream_shuffle_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([0x5EED, seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def epoch_order(num_rows: int, generator: torch.Generator) -> torch.Tensor:
    """The permutation of an epoch (the in-memory path's ``torch.randperm``; int64, the only per-row state)."""
    return torch.randperm(num_rows, generator=generator)


def load_run_source(cfg: Any) -> Source:
    return load_source(
        cfg.dataset,
        split=cfg.split,
        image_column=cfg.image_column,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        revision=cfg.revision,
        data_files=cfg.data_files,
        streaming=cfg.streaming,
    )


def _num_rows(source: Source) -> int | None:
    if not source.streaming:
        return len(source.dataset)
    splits = getattr(source.dataset.info, "splits", None) or {}
    info = splits.get(source.split)
    return int(info.num_examples) if info is not None and info.num_examples else None


def _stream_label_names(source: Source) -> list[str] | None:
    """Sorted class names of a streamed string label column (one pass over that column only)."""
    features = source.dataset.features or {}
    feature = features.get(source.label_column)
    if feature is not None and hasattr(feature, "names"):
        return None
    names: set[str] = set()
    for chunk in source.dataset.select_columns([source.label_column]).iter(batch_size=10_000):
        values = chunk[source.label_column]
        if values and not isinstance(values[0], str):
            return None
        names.update(values)
    return sorted(names)


def make_plan(cfg: Any, source: Source) -> Plan:
    """Decide the path, geometry and augmentation of a run (logged with the reasons)."""
    class_names = source.class_names
    plan = Plan(
        path="loader",
        reason="",
        kind=source.kind,
        input_column=source.input_column,
        label_column=source.label_column,
        name=source.name,
        revision=source.revision,
        class_count=len(class_names) if class_names else 0,
    )
    probed = probe(source.dataset, source.input_column, source.kind)
    if source.kind == "image":
        plan.image_size, plan.channels, plan.geometry = image_geometry(
            probed, image_size=cfg.image_size, channels=cfg.image_channels
        )
    elif cfg.image_size is not None or cfg.image_channels is not None:
        raise ValueError("--image-size/--image-channels apply to images; this split's input is text.")
    plan.path, plan.reason = choose_path(
        requested=cfg.data_path,
        kind=source.kind,
        streaming=source.streaming,
        num_rows=_num_rows(source),
        probed=probed,
        image_size=plan.image_size,
        channels=plan.channels,
    )
    if plan.path == "memory":
        plan.augmentation = resolve_augmentation(cfg.augmentation, (plan.channels, plan.image_size, plan.image_size))
    else:
        plan.augmentation = resolve_train_augmentation(
            cfg.augmentation,
            kind=source.kind,
            path=plan.path,
            image_size=plan.image_size,
            channels=plan.channels,
            varied=probed.fixed_size is None,
        )
    if source.streaming:
        plan.label_names = _stream_label_names(source)
    logger.info("data path: %s (%s)", plan.path, plan.reason)
    if plan.geometry:
        logger.info("images: %s", plan.geometry)
    logger.info("training augmentation: %s", plan.augmentation)
    return plan


def _save_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _encoder(cfg: Any, source: Source, state_dir: Path) -> TextEncoder:
    saved = state_dir / TOKENIZER_FILE
    if saved.exists():
        tokenizer = load_tokenizer(saved)
    elif cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
        tokenizer.save(str(saved))
    else:
        logger.info("training a %s tokenizer (vocabulary %d) on %s", cfg.tokenizer_kind, cfg.vocab_size, source.name)
        tokenizer = train_tokenizer(
            iter_texts(source.dataset, source.input_column), vocab_size=cfg.vocab_size, kind=cfg.tokenizer_kind
        )
        tokenizer.save(str(saved))
    return TextEncoder(tokenizer, cfg.max_length)


def _inputs(cfg: Any, plan: Plan, source: Source, state_dir: Path) -> Inputs:
    if plan.kind == "text":
        return Inputs(
            "text",
            plan.input_column,
            plan.label_column,
            encoder=_encoder(cfg, source, state_dir),
            label_names=tuple(plan.label_names) if plan.label_names else None,
        )
    return Inputs(
        "image",
        plan.input_column,
        plan.label_column,
        image_size=plan.image_size,
        channels=plan.channels,
        augmentation=plan.augmentation,
        label_names=tuple(plan.label_names) if plan.label_names else None,
    )


def _prepare_on_main(cfg: Any, state_dir: Path, progress: bool) -> None:
    """Everything that reads the whole split, done once and saved: the plan, then the decoded tensors (memory
    path) or the tokenizer and the manifest (DataLoader path)."""
    plan_path = state_dir / PLAN_FILE
    source = load_run_source(cfg)
    if plan_path.exists():
        plan = Plan(**json.loads(plan_path.read_text()))
    else:
        plan = make_plan(cfg, source)
        _save_json(plan_path, asdict(plan))
    if plan.path == "memory":
        cache = state_dir / TENSORS_FILE
        if not cache.exists():
            from .. import checkpoint as ckpt

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
        return
    manifest_path = state_dir / MANIFEST_FILE
    inputs = _inputs(cfg, plan, source, state_dir)
    if not manifest_path.exists():
        manifest = scan(
            source.dataset,
            inputs,
            num_workers=cfg.num_workers,
            progress=progress,
            total=_num_rows(source),
        )
        manifest.save(manifest_path)


def prepare_data(
    cfg: Any,
    state_dir: str | os.PathLike,
    *,
    progress: bool = True,
    on_main: Callable[[Callable[[], None]], Any] | None = None,
) -> RunData:
    """The run's rows (see the module docstring). ``on_main`` runs the one-time preparation on the main process
    only (the engine passes its "run on main, re-raise everywhere" helper); every process then reads the state."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    work = lambda: _prepare_on_main(cfg, state_dir, progress)  # noqa: E731
    if on_main is None:
        work()
    else:
        on_main(work)
    plan = Plan(**json.loads((state_dir / PLAN_FILE).read_text()))
    if plan.path == "memory":
        from .. import checkpoint as ckpt

        tensors, meta = ckpt.load(state_dir / TENSORS_FILE)
        data = TensorData(tensors["images"], tensors["labels"], meta["example_ids"], meta["num_classes"])
        mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else channel_stats(data.images)
        _check_channels(mean, plan.channels)
        import pyarrow as pa

        return RunData(
            plan=plan,
            labels=data.labels,
            example_ids=pa.array(data.example_ids, type=pa.string()),
            num_classes=data.num_classes,
            mean=mean,
            std=std,
            model_kwargs={"in_channels": plan.channels, "image_size": plan.image_size},
            tensors=data,
        )
    import pyarrow as pa

    source = load_run_source(cfg)
    manifest = Manifest.load(state_dir / MANIFEST_FILE)
    inputs = _inputs(cfg, plan, source, state_dir)
    num_classes = max(plan.class_count, manifest.num_classes, len(plan.label_names or ()))
    if plan.kind == "image":
        mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else manifest.mean_std()
        _check_channels(mean, plan.channels)
        model_kwargs: dict[str, Any] = {"in_channels": plan.channels, "image_size": plan.image_size}
    else:
        mean = std = None
        assert inputs.encoder is not None
        model_kwargs = {
            "vocab_size": inputs.encoder.vocab_size,
            "max_length": cfg.max_length,
            "pad_token_id": inputs.encoder.pad_id,
        }
    workers = cfg.num_workers if cfg.num_workers is not None else default_workers()
    return RunData(
        plan=plan,
        labels=torch.from_numpy(manifest.labels),
        example_ids=pa.array(manifest.example_ids).cast(pa.string()),
        num_classes=num_classes,
        mean=mean,
        std=std,
        model_kwargs=model_kwargs,
        dataset=source.dataset,
        inputs=inputs,
        num_workers=workers,
    )


def _check_channels(mean: list[float], channels: int) -> None:
    if len(mean) != channels:
        raise ValueError(f"mean/std have {len(mean)} values but the images have {channels} channel(s).")


__all__ = ["Plan", "RunData", "epoch_order", "make_plan", "pad_id_of", "prepare_data"]
