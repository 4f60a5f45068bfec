"""The streaming data path: a ``torch.utils.data.DataLoader`` over a ``datasets`` split, decoding, resizing,
augmenting and tokenizing in worker processes; every batch is a dict of tensors carrying ``idx`` (the source row),
``labels`` and the model's keyword inputs (``pixel_values`` uint8, or ``input_ids`` + ``attention_mask``).

Determinism (independent of the number of workers, and exact across kill -9 and resume):

- map-style splits: the caller gives the epoch's order (a permutation of row positions, int64) and the first
  batch to produce; the sampler yields ``order[b * B:(b + 1) * B]`` for the remaining batches ``b``, so a resumed
  epoch skips the done steps of the same fixed order;
- streamed splits (``datasets.IterableDataset``): rows get ``idx`` = their position in the stream; a training
  epoch shuffles them with a buffer whose generator is seeded by (seed, epoch); every worker reads the whole stream
  (cheap: no decoding) and decodes only the batches ``b`` with ``b % workers == worker``, which the DataLoader
  hands back round-robin, i.e. in stream order;
- augmentation draws from a generator seeded by (seed, epoch, idx): the same row in the same epoch gets the same
  crop whichever worker, batch or resume produced it.

Memory: rows are read from the memory-mapped arrow file (or the stream) one batch at a time; the only per-row
state is int64/fixed-width numpy arrays (order, labels, ids). ``Manifest`` is the one pass that reads every row:
labels, ``example_id`` and per-channel pixel sums for the normalisation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

from datadiet_hub.atomic import atomic_path
from datadiet_hub.columns import InputKind
from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.hashing import example_id

from .images import prepare_image
from .ngrams import NgramEncoder
from .text import TextEncoder

logger = logging.getLogger(__name__)

STREAM_SHUFFLE_BUFFER = 4096
"""Rows held by the shuffle buffer of a streamed training epoch (raw rows, not decoded images)."""
AUGMENT_TAG = 0xDA7A
TRAIN_AUGMENTATIONS = ("none", "crop-flip", "resized-crop-flip")


def row_rng(seed: int, epoch: int, idx: int) -> np.random.Generator:
    """The augmentation generator of one row in one epoch of one seed."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([AUGMENT_TAG, seed, epoch, idx])))


@dataclass
class Inputs:
    """How rows become model inputs; fixed for a run.

    Args:
        kind: an ``InputKind`` (image or text).
        column: the input column (image or text).
        label_column: the label column.
        image_size: side in pixels of the square images the model sees.
        channels: 1 (grey) or 3 (RGB).
        augmentation: the training view (``none``, ``crop-flip``, ``resized-crop-flip``); scoring never augments.
        encoder: the text encoder (text only): a tokenizer, or the split's saved n-grams read by row position.
        label_names: class names by id when the stream holds labels as strings.
    """

    kind: InputKind
    column: str
    label_column: str
    image_size: int = 0
    channels: int = 0
    augmentation: str = "none"
    encoder: TextEncoder | NgramEncoder | None = None
    label_names: tuple[str, ...] | None = None
    _label_ids: dict[str, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in tuple(InputKind):
            raise InvalidArgumentError(f"Unknown input kind {self.kind!r}. Choose between image, text.")
        if self.kind == InputKind.TEXT and self.encoder is None:
            raise InvalidArgumentError("Text inputs need an encoder (a tokenizer and --max-length).")
        if self.kind == InputKind.IMAGE and (self.image_size < 1 or self.channels not in (1, 3)):
            raise InvalidArgumentError(
                f"image_size={self.image_size!r} must be >= 1 and channels={self.channels!r} 1 or 3."
            )
        if self.augmentation not in TRAIN_AUGMENTATIONS:
            raise InvalidArgumentError(
                f"Unknown augmentation {self.augmentation!r}. Choose between {', '.join(TRAIN_AUGMENTATIONS)}."
            )
        if self.label_names is not None:
            self._label_ids = {name: i for i, name in enumerate(self.label_names)}

    @property
    def columns(self) -> list[str]:
        return [self.column, self.label_column]

    def labels(self, values: list[Any]) -> np.ndarray:
        if any(v is None for v in values):
            raise InvalidArgumentError(
                f"A row has no label (null) in column {self.label_column!r}; drop such rows first "
                f"(ds.filter(lambda row: row[{self.label_column!r}] is not None))."
            )
        if self._label_ids is not None and values and isinstance(values[0], str):
            try:
                return np.array([self._label_ids[v] for v in values], dtype=np.int64)
            except KeyError as err:
                raise InvalidArgumentError(
                    f"Label {err.args[0]!r} is not one of the classes {list(self.label_names or ())}."
                ) from err
        return np.asarray(values, dtype=np.int64)

    def batch(
        self, rows: dict[str, list[Any]], idx: np.ndarray, *, train: bool, seed: int = 0, epoch: int = 0
    ) -> dict[str, torch.Tensor]:
        """Model inputs of a batch of raw rows (``rows[column]`` as ``datasets`` returns them)."""
        out = {
            "idx": torch.from_numpy(np.asarray(idx, dtype=np.int64)),
            "labels": torch.from_numpy(self.labels(rows[self.label_column])),
        }
        if self.kind == InputKind.TEXT:
            assert self.encoder is not None
            encoded = self.encoder(rows[self.column], idx)
            out.update({k: torch.from_numpy(v) for k, v in encoded.items()})
            return out
        augment = self.augmentation if train else "none"
        images = np.empty((len(idx), self.channels, self.image_size, self.image_size), dtype=np.uint8)
        for j, (value, i) in enumerate(zip(rows[self.column], idx)):
            rng = row_rng(seed, epoch, int(i)) if augment != "none" else None
            images[j] = prepare_image(
                value, size=self.image_size, channels=self.channels, augmentation=augment, rng=rng
            )
        out["pixel_values"] = torch.from_numpy(images)
        return out


class RowBatches(Dataset):
    """Map-style: ``__getitems__`` reads a batch of rows in one arrow take and turns it into model inputs."""

    def __init__(self, dataset: Any, inputs: Inputs, *, train: bool, seed: int = 0, epoch: int = 0):
        self.dataset = dataset.select_columns(inputs.columns)
        if getattr(self.dataset, "format", {}).get("type") is not None:
            self.dataset = self.dataset.with_format(None)
        self.inputs, self.train, self.seed, self.epoch = inputs, train, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: int | list[int]) -> dict[str, torch.Tensor]:
        """A whole batch: the sampler yields lists of rows (``OrderBatches``)."""
        return self.__getitems__([indices] if isinstance(indices, int) else indices)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = self.dataset[indices]
        return self.inputs.batch(rows, np.asarray(indices), train=self.train, seed=self.seed, epoch=self.epoch)


class OrderBatches(Sampler[list[int]]):
    """Batches ``start_batch, start_batch + 1, ...`` of a fixed order (the last one may be short)."""

    def __init__(self, order: np.ndarray | torch.Tensor, batch_size: int, start_batch: int = 0):
        self.order = np.asarray(order, dtype=np.int64)
        self.batch_size, self.start_batch = batch_size, start_batch

    def __len__(self) -> int:
        return max(0, -(-len(self.order) // self.batch_size) - self.start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.start_batch, self.start_batch + len(self)):
            yield self.order[b * self.batch_size : (b + 1) * self.batch_size].tolist()


class StreamBatches(IterableDataset):
    """Streamed: rows numbered in stream order, optionally buffer-shuffled by (seed, epoch), cut into batches;
    worker ``k`` of ``W`` decodes batches ``k, k + W, ...`` (the DataLoader returns them in order)."""

    def __init__(
        self,
        dataset: Any,
        inputs: Inputs,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        epoch: int = 0,
        start_batch: int = 0,
        shuffle_seed: int | None = None,
        keep: tuple[int, int] = (0, 1),
        buffer_size: int = STREAM_SHUFFLE_BUFFER,
    ):
        self.dataset = dataset.select_columns(inputs.columns)
        self.inputs, self.batch_size, self.train = inputs, batch_size, train
        self.seed, self.epoch, self.start_batch = seed, epoch, start_batch
        self.shuffle_seed, self.keep, self.buffer_size = shuffle_seed, keep, buffer_size

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        position = 0
        for chunk in self.dataset.iter(batch_size=1000):
            names = list(chunk)
            for values in zip(*(chunk[n] for n in names)):
                yield position, dict(zip(names, values))
                position += 1

    def _shuffled(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self.shuffle_seed is None:
            yield from self._rows()
            return
        rng = np.random.default_rng(self.shuffle_seed)
        buffer: list[tuple[int, dict[str, Any]]] = []
        for item in self._rows():
            if len(buffer) < self.buffer_size:
                buffer.append(item)
                continue
            j = int(rng.integers(0, self.buffer_size))
            yield buffer[j]
            buffer[j] = item
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self.keep
        batch: list[tuple[int, dict[str, Any]]] = []
        number = 0  # batch number in the epoch (before the rank split)
        mine = 0  # batches kept by this process, dealt round-robin to the workers

        def emit(items):
            rows = {c: [row[c] for _, row in items] for c in self.inputs.columns}
            idx = np.array([i for i, _ in items], dtype=np.int64)
            return self.inputs.batch(rows, idx, train=self.train, seed=self.seed, epoch=self.epoch)

        for item in self._shuffled():
            batch.append(item)
            if len(batch) < self.batch_size:
                continue
            if number >= self.start_batch and number % world == rank:
                if mine % workers == worker:
                    yield emit(batch)
                mine += 1
            number += 1
            batch = []
        if batch and number >= self.start_batch and number % world == rank and mine % workers == worker:
            yield emit(batch)


def _identity(batch: Any) -> Any:
    return batch


def default_workers() -> int:
    """Worker processes for decoding: one per spare core, at most 4 (``DATADIET_NUM_WORKERS`` overrides)."""
    if "DATADIET_NUM_WORKERS" in os.environ:
        return int(os.environ["DATADIET_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cores - 1))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # decoding is per process; torch ops in workers must not oversubscribe the cores
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def make_loader(
    dataset: Dataset | IterableDataset,
    *,
    sampler: Sampler | None = None,
    num_workers: int | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over ``RowBatches`` (with an ``OrderBatches`` sampler) or ``StreamBatches``."""
    workers = default_workers() if num_workers is None else num_workers
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(prefetch_factor=4, worker_init_fn=_worker_init, persistent_workers=False)
    return DataLoader(
        dataset,
        sampler=sampler,  # yields whole batches (lists of rows); no automatic batching
        batch_size=None,
        collate_fn=_identity,
        num_workers=workers,
        pin_memory=pin_memory,
        **kwargs,
    )


def epoch_batches(
    dataset: Any,
    inputs: Inputs,
    *,
    batch_size: int,
    train: bool,
    seed: int = 0,
    epoch: int = 0,
    order: np.ndarray | torch.Tensor | None = None,
    start_batch: int = 0,
    shuffle_seed: int | None = None,
    keep: tuple[int, int] = (0, 1),
    num_workers: int | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """The batches of one pass over ``dataset`` (a ``datasets.Dataset`` or ``IterableDataset``).

    Map-style: ``order`` (default: row order) is cut into batches from ``start_batch`` on. Streamed: rows in
    stream order, buffer-shuffled when ``shuffle_seed`` is given, batches from ``start_batch`` on. ``keep=(rank,
    world)`` keeps every ``world``-th batch (sharded scoring); ``train`` turns the augmentation on.
    """
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        stream = StreamBatches(
            dataset,
            inputs,
            batch_size,
            train=train,
            seed=seed,
            epoch=epoch,
            start_batch=start_batch,
            shuffle_seed=shuffle_seed,
            keep=keep,
        )
        return make_loader(stream, num_workers=num_workers, pin_memory=pin_memory)
    if order is None:
        order = np.arange(len(dataset), dtype=np.int64)
    order = np.asarray(order, dtype=np.int64)
    rank, world = keep
    if world > 1:  # whole batches per process, as the streamed path does
        n_batches = -(-len(order) // batch_size)
        mine = [order[b * batch_size : (b + 1) * batch_size] for b in range(rank, n_batches, world)]
        order = np.concatenate(mine) if mine else np.empty(0, np.int64)
        if start_batch:
            raise ValueError("start_batch with keep=(rank, world) is not supported: resume applies to training.")
    rows = RowBatches(dataset, inputs, train=train, seed=seed, epoch=epoch)
    return make_loader(
        rows, sampler=OrderBatches(order, batch_size, start_batch), num_workers=num_workers, pin_memory=pin_memory
    )


def to_device(
    batch: dict[str, torch.Tensor],
    device: torch.device,
    *,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Move a batch (non-blocking from pinned memory) and normalise ``pixel_values`` there: uint8 travels, 4x
    smaller than float. ``mean``/``std`` are ``[C]`` on the 0..1 scale; the result is what ``Preprocess`` gives."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if "pixel_values" in out:
        x = out["pixel_values"].to(torch.float32) / 255.0
        if mean is not None and std is not None:
            x = (x - mean.to(x.device).view(1, -1, 1, 1)) / std.to(x.device).view(1, -1, 1, 1)
        out["pixel_values"] = x
    return out


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword inputs of the model: everything but ``idx`` and ``labels``."""
    return {k: v for k, v in batch.items() if k not in ("idx", "labels")}


@dataclass
class Manifest:
    """What one pass over every row yields: labels, example ids, and for images the per-channel mean/std of the
    scoring view. Arrays only (no per-row Python objects); saved with the run's state."""

    labels: np.ndarray  # int64 [N]
    example_ids: np.ndarray  # bytes S32 [N] (hex)
    pixel_sum: np.ndarray  # float64 [C] (images; empty for text)
    pixel_sq_sum: np.ndarray  # float64 [C]
    pixels_per_channel: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def mean_std(self) -> tuple[list[float], list[float]]:
        count = max(self.pixels_per_channel, 1)
        mean = self.pixel_sum / count
        var = np.maximum(self.pixel_sq_sum / count - mean**2, 0.0) * count / max(count - 1, 1)
        return mean.tolist(), np.maximum(np.sqrt(var), 1e-8).tolist()

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                labels=self.labels,
                example_ids=self.example_ids,
                pixel_sum=self.pixel_sum,
                pixel_sq_sum=self.pixel_sq_sum,
                pixels_per_channel=np.int64(self.pixels_per_channel),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        with np.load(path) as f:
            return cls(f["labels"], f["example_ids"], f["pixel_sum"], f["pixel_sq_sum"], int(f["pixels_per_channel"]))


class _ManifestRows(RowBatches):
    """Rows -> (idx, labels, ids, pixel sums): ids hash the *decoded, unresized* input and the label."""

    def __getitem__(self, indices: int | list[int]) -> dict[str, Any]:
        return self.__getitems__([indices] if isinstance(indices, int) else indices)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        return manifest_batch(self.inputs, self.dataset[indices], np.asarray(indices, dtype=np.int64))


class _ManifestStream(StreamBatches):
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        batch: list[tuple[int, dict[str, Any]]] = []
        number = 0
        for item in self._rows():
            batch.append(item)
            if len(batch) == self.batch_size:
                if number % workers == worker:
                    yield self._emit(batch)
                number += 1
                batch = []
        if batch and number % workers == worker:
            yield self._emit(batch)

    def _emit(self, items):
        rows = {c: [row[c] for _, row in items] for c in self.inputs.columns}
        return manifest_batch(self.inputs, rows, np.array([i for i, _ in items], dtype=np.int64))


def manifest_batch(inputs: Inputs, rows: dict[str, list[Any]], idx: np.ndarray) -> dict[str, Any]:
    from .images import open_image

    labels = inputs.labels(rows[inputs.label_column])
    values = rows[inputs.column]
    if inputs.kind == InputKind.TEXT:
        blank = next((i for i, v in zip(idx.tolist(), values) if not isinstance(v, str) or not v.strip()), None)
        if blank is not None:
            raise InvalidArgumentError(
                f"Row {blank} has a null or empty text in column {inputs.column!r}; drop such rows first "
                f"(ds.filter(lambda row: bool(row[{inputs.column!r}] and row[{inputs.column!r}].strip())))."
            )
        ids = [example_id(v, int(lab)) for v, lab in zip(values, labels)]
        return {"idx": idx, "labels": labels, "ids": np.array(ids, dtype="S32")}
    ids = []
    sums = np.zeros(inputs.channels, np.float64)
    squares = np.zeros(inputs.channels, np.float64)
    for value, label in zip(values, labels):
        image = open_image(value)
        ids.append(example_id(np.asarray(image), int(label)))
        view = prepare_image(image, size=inputs.image_size, channels=inputs.channels).astype(np.float64) / 255.0
        sums += view.sum(axis=(1, 2))
        squares += (view**2).sum(axis=(1, 2))
    return {"idx": idx, "labels": labels, "ids": np.array(ids, dtype="S32"), "sum": sums, "sq": squares}


def scan(
    dataset: Any,
    inputs: Inputs,
    *,
    batch_size: int = 256,
    num_workers: int | None = None,
    progress: bool = True,
    total: int | None = None,
) -> Manifest:
    """One pass over every row (in workers): labels, example ids and pixel statistics."""
    import datasets
    from tqdm.auto import tqdm

    if isinstance(dataset, datasets.IterableDataset):
        source: Any = _ManifestStream(dataset, inputs, batch_size, train=False)
        loader = make_loader(source, num_workers=num_workers)
    else:
        source = _ManifestRows(dataset, inputs, train=False)
        total = len(dataset)
        loader = make_loader(source, sampler=OrderBatches(np.arange(total), batch_size), num_workers=num_workers)
    labels: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    expected = 0
    sums = np.zeros(max(inputs.channels, 0) if inputs.kind == InputKind.IMAGE else 0, np.float64)
    squares = np.zeros_like(sums)
    bar = tqdm(total=total, desc="Reading rows (labels, ids, pixel statistics)", unit="ex", disable=not progress)
    for batch in loader:
        if batch["idx"][0] != expected:
            raise RuntimeError(f"Manifest pass out of order: got row {int(batch['idx'][0])}, expected {expected}.")
        expected += len(batch["idx"])
        labels.append(batch["labels"])
        ids.append(batch["ids"])
        if inputs.kind == InputKind.IMAGE:
            sums += batch["sum"]
            squares += batch["sq"]
        bar.update(len(batch["idx"]))
    bar.close()
    if expected == 0:
        raise InvalidArgumentError("The split is empty; nothing to score.")
    all_labels = np.concatenate(labels)
    if all_labels.min() < 0:
        bad = int(np.flatnonzero(all_labels < 0)[0])
        raise InvalidArgumentError(
            f"Row {bad} has label {int(all_labels[bad])}: scoring needs every row labelled with a class 0..K-1 "
            "(unlabelled test splits use -1); choose a labelled split."
        )
    side = inputs.image_size
    return Manifest(all_labels, np.concatenate(ids), sums, squares, expected * side * side)
