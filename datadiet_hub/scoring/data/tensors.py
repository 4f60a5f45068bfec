"""Turn a source split into in-memory tensors that keep ``idx`` (row position), with normalisation and the
training augmentation; scoring always sees the un-augmented, normalised images."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.hashing import example_id, example_ids_from_array
from datadiet_hub.sources import Source

logger = logging.getLogger(__name__)


@dataclass
class TensorData:
    """A split as tensors: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``, row i = source row i."""

    images: torch.Tensor
    labels: torch.Tensor
    example_ids: list[str]
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        channels, height, width = self.images.shape[1:]
        return int(channels), int(height), int(width)

    @property
    def model_kwargs(self) -> dict[str, int]:
        """What the model factory is offered about these images (``datadiet_hub.scoring.train.make_model``)."""
        channels, height, _ = self.shape
        return {"in_channels": channels, "image_size": height}


def to_array(image) -> np.ndarray:
    """A decoded image as a uint8 ``[H, W, C]`` array (grey images get C=1)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        if array.dtype.kind == "f" and array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InvalidArgumentError(f"Expected a 2-D or 3-D image, got shape {array.shape}.")
    return array


def load_tensors(source: Source, *, batch: int = 2000, progress: bool = True) -> TensorData:
    """Decode every row once (with a progress bar); ids hash the decoded image and label (``hashing.example_id``)."""
    ds = source.dataset
    n = len(ds)
    images, labels, ids = None, np.empty(n, dtype=np.int64), []
    bar = tqdm(total=n, desc=f"Decoding {source.name}/{source.split}", unit="ex", disable=not progress)
    for start in range(0, n, batch):
        rows = ds[start : start + batch]
        for offset, (img, lab) in enumerate(zip(rows[source.input_column], rows[source.label_column])):
            array = np.asarray(img)
            ids.append(example_id(array, int(lab)))
            array = to_array(array)
            if images is None:
                images = np.empty((n, *array.shape), dtype=np.uint8)
            if array.shape != images.shape[1:]:
                raise InvalidArgumentError(
                    f"Row {start + offset} has image shape {array.shape}, others {images.shape[1:]}; resize the "
                    "dataset to one size first (e.g. ds.cast_column or a map with PIL resize)."
                )
            images[start + offset] = array
            labels[start + offset] = int(lab)
        bar.update(len(rows[source.label_column]))
    bar.close()
    if images is None:
        raise InvalidArgumentError(f"The split {source.name}/{source.split} is empty; nothing to score.")
    if labels.min() < 0:
        bad = int(np.flatnonzero(labels < 0)[0])
        raise InvalidArgumentError(
            f"Row {bad} of {source.name}/{source.split} has label {int(labels[bad])}: scoring needs every row "
            "labelled with a class 0..K-1 (unlabelled test splits use -1); choose a labelled split."
        )
    num_classes = max(source.num_classes, int(labels.max()) + 1)
    return TensorData(
        torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels), ids, num_classes
    )


def tensors_from_arrays(images: np.ndarray, labels: np.ndarray, num_classes: int) -> TensorData:
    """A split held as arrays (uint8 ``[N, H, W]`` or ``[N, H, W, C]``, labels ``[N]``): the same tensors and
    ids as decoding it image by image (an id hashes the decoded array as ``np.asarray`` of the image gives it)."""
    ids = example_ids_from_array(images, labels)
    pixels = images[:, :, :, None] if images.ndim == 3 else images
    return TensorData(
        torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        ids,
        max(num_classes, int(labels.max()) + 1 if len(labels) else 0),
    )


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std of uint8 images, on the 0..1 scale.

    Exact from a 256-bin histogram per channel: no float copy of the split (a float64 copy of 60,000 28x28
    images is 376 MB)."""
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        values = torch.arange(256, dtype=torch.float64) / 255.0
        n = counts.sum()
        mean = (counts * values).sum() / n
        var = (counts * (values - mean) ** 2).sum() / max(float(n) - 1, 1.0)
        means.append(float(mean))
        stds.append(max(float(var.sqrt()), 1e-8))
    return means, stds


class Preprocess:
    """uint8 -> normalised float, with the optional training augmentation driven by an explicit generator."""

    def __init__(self, mean: list[float], std: list[float], augmentation: str):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augmentation = augmentation

    def __call__(self, images: torch.Tensor, *, train: bool = False, generator: torch.Generator | None = None):
        x = images.to(torch.float32) / 255.0
        if train and self.augmentation == "crop-flip":
            x = crop_flip(x, generator)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def crop_flip(x: torch.Tensor, generator: torch.Generator | None, pad: int = 4) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back at a random offset and flip half the images horizontally (per example)."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + dy[:, None]  # [B, H]
    cols = torch.arange(w, device=x.device)[None, :].expand(b, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]  # [B, W]
    batch_index = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def resolve_augmentation(name: str, shape: tuple[int, int, int]) -> str:
    if name != "auto":
        return name
    channels, height, _ = shape
    return "crop-flip" if channels == 3 and height >= 32 else "none"
