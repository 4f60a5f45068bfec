"""Images of any size and mode to fixed-size uint8 ``[C, S, S]`` arrays, with PIL only.

Channels: a run uses one channel count for every row, 1 (grey) or 3 (RGB). It is ``--image-channels`` when
given, else decided by the majority of the modes of the first rows (``choose_channels``): grey-like modes
(``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``) vote 1, everything else 3. Each row is then converted:

- alpha (``RGBA``, ``LA``, ``PA``, palette with a transparent index) is composited over white, not dropped: the
  colour under a transparent pixel is arbitrary, white is what a viewer shows;
- palette (``P``) images go through their palette (``RGB``/``RGBA``), never as raw indices;
- 16/32-bit integer and float images (``I;16``, ``I``, ``F``) are scaled from their own min..max to 0..255;
- grey to RGB repeats the channel; RGB to grey uses PIL's ITU-R 601-2 luma.

Geometry: scoring resizes the shorter side to ``size`` (bilinear, antialiased) and crops the centre square;
training can instead take a random-resized crop (area 25-100% of the image, aspect 3/4-4/3) plus a horizontal
flip, drawn from a generator the caller seeds per (seed, epoch, idx).
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
from PIL import Image

from datadiet_hub.errors import InvalidArgumentError

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"})
RESAMPLE = Image.Resampling.BILINEAR
RRC_SCALE = (0.25, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)


def open_image(value: Any) -> Image.Image:
    """A PIL image from what a ``datasets`` row holds: a PIL image, ``{"bytes", "path"}``, an array, or a path.

    Encoded images are decoded here in full, so an empty, truncated or non-image file is one clear error naming
    the file (``InvalidArgumentError``), not a PIL traceback later."""
    if isinstance(value, Image.Image):
        return value
    if value is None:
        raise InvalidArgumentError(
            "A row has no image (null); drop it first (ds.filter(lambda row: row[...] is not None))."
        )
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        where = value.get("path") or "an image stored in the dataset"
        return _decoded(lambda: Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]), where)
    if isinstance(value, (bytes, bytearray)):
        return _decoded(lambda: Image.open(io.BytesIO(value)), "an image stored in the dataset")
    if isinstance(value, str):
        return _decoded(lambda: Image.open(value), value)
    array = np.asarray(value)
    if array.dtype != np.uint8:
        if array.dtype.kind == "f" and array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def _decoded(opener: Any, where: str) -> Image.Image:
    try:
        image = opener()
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as err:  # PIL's errors for bad files
        raise InvalidArgumentError(
            f"Cannot decode {where!r} as an image ({type(err).__name__}: {err}); it is empty, damaged or not an "
            "image. Remove or replace it and rerun.",
            value=where,
        ) from err
    return image


def channels_of_mode(mode: str) -> int:
    """The channel count a mode votes for: 1 for grey-like modes, 3 otherwise."""
    return 1 if mode in GREY_MODES else 3


def choose_channels(modes: Iterable[str]) -> tuple[int, str]:
    """``(channels, reason)`` by majority of ``modes`` (ties go to RGB: colour is not thrown away)."""
    counts = Counter(modes)
    if not counts:
        raise InvalidArgumentError("No image modes to choose the channel count from (the split is empty).")
    grey = sum(n for mode, n in counts.items() if channels_of_mode(mode) == 1)
    colour = sum(counts.values()) - grey
    channels = 1 if grey > colour else 3
    listing = ", ".join(f"{mode} x{n}" for mode, n in counts.most_common())
    return (
        channels,
        f"{channels} channel(s) by majority of the modes of the first {sum(counts.values())} rows ({listing})",
    )


def _over_white(image: Image.Image) -> Image.Image:
    """Composite an image with alpha over white; returns RGB."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _wide_to_uint8(image: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float image scaled from its own range to 8-bit grey."""
    array = np.asarray(image, dtype=np.float64)
    if array.size == 0:
        return Image.fromarray(np.zeros(array.shape, np.uint8), mode="L")
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def convert_channels(image: Image.Image, channels: int) -> Image.Image:
    """``image`` as mode ``L`` (channels=1) or ``RGB`` (channels=3), whatever its mode (see the module docstring)."""
    if channels not in (1, 3):
        raise InvalidArgumentError(f"channels={channels!r}: images are converted to 1 (grey) or 3 (RGB) channels.")
    mode = image.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        image, mode = _wide_to_uint8(image), "L"
    if mode == "P":
        has_alpha = "transparency" in image.info or (image.palette is not None and image.palette.mode == "RGBA")
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image, mode = _over_white(image), "RGB"
    target = "L" if channels == 1 else "RGB"
    return image if mode == target else image.convert(target)


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image if new == image.size else image.resize(new, RESAMPLE)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size``, then the centre ``size x size`` square (the scoring view)."""
    image = resize_shorter(image, size)
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def random_resized_crop(
    image: Image.Image,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
) -> Image.Image:
    """A crop of random area (``scale`` of the image) and aspect (``ratio``) resized to ``size x size``; after 10
    failed draws, the centre crop (as torchvision does)."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return image.resize((size, size), RESAMPLE, box=(left, top, left + w, top + h))
    return resize_center_crop(image, size)


def to_uint8_chw(image: Image.Image, channels: int) -> np.ndarray:
    """An ``L``/``RGB`` image as a uint8 ``[C, H, W]`` array."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] != channels:
        raise InvalidArgumentError(f"Expected a {channels}-channel image, got shape {array.shape}.")
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def prepare_image(
    value: Any,
    *,
    size: int,
    channels: int,
    augmentation: str = "none",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One row's image as uint8 ``[channels, size, size]``: the scoring view, or with ``augmentation`` and ``rng``
    the training view (``resized-crop-flip``: random-resized crop + flip; ``crop-flip``: the scoring view, then
    pad 4 / random crop / flip as the in-memory path does; ``none``: the scoring view)."""
    image = convert_channels(open_image(value), channels)
    if augmentation == "resized-crop-flip" and rng is not None:
        image = random_resized_crop(image, size, rng)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_uint8_chw(image, channels)
    array = to_uint8_chw(resize_center_crop(image, size), channels)
    if augmentation == "crop-flip" and rng is not None:
        array = pad_crop_flip(array, rng)
    return array


def pad_crop_flip(array: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Zero-pad by ``pad``, crop back at a random offset, flip horizontally with probability 1/2 (``[C, H, W]``)."""
    _, height, width = array.shape
    padded = np.pad(array, ((0, 0), (pad, pad), (pad, pad)))
    dy, dx = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
    out = padded[:, dy : dy + height, dx : dx + width]
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)
