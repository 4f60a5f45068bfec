"""Decide, from a look at the first rows, how a source is read: which data path (in memory or DataLoader), image
size and channels, and the training augmentation. Every decision comes with the reason the engine logs."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datadiet_hub.columns import InputKind
from datadiet_hub.errors import InvalidArgumentError

from .images import choose_channels, open_image

logger = logging.getLogger(__name__)

PROBE_ROWS = 256
DATA_PATHS = ("auto", "memory", "loader")
MEMORY_BUDGET_BYTES = 2 << 30
"""The in-memory path holds the whole split as uint8 (N x C x H x W): allowed up to 2 GiB and a quarter of RAM."""


@dataclass
class Probe:
    """What the first rows of a split say about it."""

    kind: InputKind
    rows: int  # rows looked at
    modes: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (width, height) -> count

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The one (width, height) of every probed image, or None if they differ."""
        return next(iter(self.sizes)) if len(self.sizes) == 1 else None

    @property
    def median_side(self) -> int:
        shorter = [min(w, h) for (w, h), n in self.sizes.items() for _ in range(n)]
        return int(np.median(shorter)) if shorter else 0


def probe(dataset: Any, column: str, kind: InputKind, rows: int = PROBE_ROWS) -> Probe:
    """Open (headers only) the images of the first ``rows`` rows: their modes and sizes."""
    result = Probe(kind=kind, rows=0)
    if kind != InputKind.IMAGE:
        return result
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        values = []
        for chunk in dataset.select_columns([column]).iter(batch_size=rows):
            values = chunk[column]
            break
    else:
        head = dataset.select(range(min(rows, len(dataset)))).select_columns([column])
        values = (
            head.cast_column(column, datasets.Image(decode=False))[column]
            if isinstance(head.features[column], datasets.Image)
            else head[column]
        )
    for value in values:
        image = open_image(value)
        result.modes[image.mode] += 1
        result.sizes[image.size] += 1
        result.rows += 1
    return result


def image_geometry(probed: Probe, *, image_size: int | None, channels: int | None) -> tuple[int, int, str]:
    """``(image_size, channels, reason)``: given values win; otherwise the images' own side when the probed rows
    share one square size, else the median shorter side; channels by majority mode."""
    reasons = []
    if channels is None:
        channels, why = choose_channels(probed.modes)
        reasons.append(why)
    else:
        reasons.append(f"{channels} channel(s) from --image-channels")
    if image_size is None:
        fixed = probed.fixed_size
        if fixed is not None and fixed[0] == fixed[1]:
            image_size = fixed[0]
            reasons.append(f"size {image_size} px: every probed image is {fixed[0]}x{fixed[1]}")
        else:
            image_size = max(probed.median_side, 1)
            reasons.append(
                f"size {image_size} px: the median shorter side of the first {probed.rows} rows (sizes vary; set "
                "--image-size to choose)"
            )
    else:
        reasons.append(f"size {image_size} px from --image-size")
    return image_size, channels, "; ".join(reasons)


def _available_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def choose_path(
    *,
    requested: str,
    kind: InputKind,
    streaming: bool,
    num_rows: int | None,
    probed: Probe,
    image_size: int,
    channels: int,
) -> tuple[str, str]:
    """``("memory" | "loader", reason)``.

    The in-memory path decodes the split once into one uint8 tensor and slices batches from it: fastest for small
    fixed-size images (Fashion-MNIST, CIFAR), and the one that produced the shipped scores. Everything else (text,
    streamed splits, images of varying size or needing a resize, splits larger than the memory budget) goes
    through the DataLoader.
    """
    if requested not in DATA_PATHS:
        raise InvalidArgumentError(f"Unknown data path {requested!r}. Choose between {', '.join(DATA_PATHS)}.")
    impossible = None
    if kind == InputKind.TEXT:
        impossible = "text is tokenized per batch"
    elif streaming:
        impossible = "--streaming reads the split lazily"
    elif probed.fixed_size is None:
        impossible = f"image sizes vary ({len(probed.sizes)} sizes in the first {probed.rows} rows)"
    elif probed.fixed_size != (image_size, image_size) or channels_differ(probed, channels):
        impossible = (
            f"images are {probed.fixed_size[0]}x{probed.fixed_size[1]} ({', '.join(probed.modes)}) but the model sees "
            f"{channels}x{image_size}x{image_size}: they need a resize/conversion per row"
        )
    if requested == "memory":
        if impossible:
            raise InvalidArgumentError(
                f"--data-path memory cannot hold this split: {impossible}. Use --data-path loader (or auto)."
            )
        return "memory", "--data-path memory"
    if requested == "loader":
        return "loader", "--data-path loader"
    if impossible:
        return "loader", impossible
    assert num_rows is not None
    needed = num_rows * channels * image_size * image_size
    budget = min(MEMORY_BUDGET_BYTES, _available_memory() // 4)
    if needed > budget:
        return (
            "loader",
            f"{num_rows} rows x {channels}x{image_size}x{image_size} = {needed / 2**20:.0f} MiB exceeds "
            f"the in-memory budget of {budget / 2**20:.0f} MiB",
        )
    return "memory", (
        f"small fixed-size images: {num_rows} rows x {channels}x{image_size}x{image_size} = {needed / 2**20:.0f} MiB "
        "fit in memory, which skips decoding per batch"
    )


def channels_differ(probed: Probe, channels: int) -> bool:
    """True if some probed image is not already in the target mode (L for 1 channel, RGB for 3)."""
    target = "L" if channels == 1 else "RGB"
    return any(mode != target for mode in probed.modes)


def resolve_train_augmentation(
    name: str, *, kind: InputKind, path: str, image_size: int, channels: int, varied: bool
) -> str:
    """The training view for ``--augmentation auto``: nothing for text; on the DataLoader path a random-resized
    crop + flip for colour images of side >= 32 whose sizes vary, else the in-memory rule (crop-flip for colour
    images of side >= 32, else none)."""
    if kind == InputKind.TEXT:
        if name not in ("auto", "none"):
            raise InvalidArgumentError(
                f"--augmentation {name} applies to images; text is never augmented (use auto or none)."
            )
        return "none"
    if name != "auto":
        return name
    if channels == 3 and image_size >= 32:
        return "resized-crop-flip" if (path == "loader" and varied) else "crop-flip"
    return "none"
