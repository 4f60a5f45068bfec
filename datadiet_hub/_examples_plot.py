"""The examples of an image dataset as one PNG: a row per group, a thumbnail per example titled with its label
name, score and row ``idx``. Needs matplotlib (the ``plot`` extra).

Images come in every size and mode; each becomes an 8-bit grey or RGB thumbnail first: palette and transparent
images are composited on white, 16-bit and float images are stretched from their own minimum to maximum (their
absolute range varies by source, 12-bit scans in 16-bit files are common), other modes convert to RGB, and large
images shrink to ``THUMB_PX`` on their longer side.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._plotting import pyplot, save_png
from .errors import InvalidArgumentError
from .examples import UNREADABLE, ExampleSet

if TYPE_CHECKING:
    from PIL import Image as PILImage

THUMB_PX = 128
MAX_COLUMNS = 64  # a wider grid is unreadable, and its canvas (CELL_PX wide per column) grows without bound
DPI = 100
CELL_PX = (150, 170)  # width, height of one example: the thumbnail and a two-line title
LABEL_PX = 50  # left margin holding the group names
TITLE_PX = 40  # top margin holding the figure title
ROW_LABELS = {
    "hardest": "hardest\n({hard} {column})",
    "easiest": "easiest\n({easy} {column})",
    "mislabeled": "likely mislabeled\n({hard} {column} per class)",
}


def grid_pixels(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG of a ``rows`` x ``cols`` grid."""
    return LABEL_PX + cols * CELL_PX[0], TITLE_PX + rows * CELL_PX[1]


def _open(value: Any) -> PILImage.Image | np.ndarray:
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and ("bytes" in value or "path" in value):  # an undecoded datasets Image
        return Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
    if isinstance(value, bytes | bytearray):
        return Image.open(io.BytesIO(value))
    if isinstance(value, str | Path):
        return Image.open(value)
    return np.asarray(value)


def _stretch(array: np.ndarray) -> np.ndarray:
    """Any numeric array to uint8: unchanged if already uint8, floats in [0, 1] scaled, else min..max to 0..255."""
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    finite = array[np.isfinite(array)]
    if array.dtype.kind == "f" and finite.size and finite.min() >= 0 and finite.max() <= 1:
        low, high = 0.0, 1.0
    else:
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (np.nan_to_num(array, nan=low) - low) / ((high - low) or 1.0)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def _array_image(array: np.ndarray) -> PILImage.Image:
    from PIL import Image

    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # channels first (C, H, W)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"cannot show an input of shape {array.shape} as an image")
    return Image.fromarray(_stretch(array))


def thumbnail(value: Any) -> np.ndarray:
    """An 8-bit thumbnail of one input: ``(H, W)`` grey or ``(H, W, 3)`` RGB, at most ``THUMB_PX`` per side."""
    from PIL import Image

    image = _open(value)
    if isinstance(image, np.ndarray):
        image = _array_image(image)
    image.load()
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        image = Image.fromarray(_stretch(np.asarray(image)))
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode in ("P", "PA", "LA", "La", "RGBA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _short(text: str, limit: int = 18) -> str:
    """User text for a figure label: one line, cut to ``limit`` characters, and ``$`` escaped (matplotlib would
    read ``$...$`` as math, and fail on an unknown command such as ``$\\foo$``)."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def draw_grid(examples: ExampleSet, target: Path) -> Path:
    """Draw ``examples`` (rows: hardest, easiest, mislabeled) and write the PNG atomically to ``target``."""
    cols = max([len(examples.group(g)) for g in examples.groups] + [1])
    if cols > MAX_COLUMNS:
        raise InvalidArgumentError(
            f"{cols} examples per group do not fit one readable grid; show at most {MAX_COLUMNS} (--per-group).",
            value=cols,
        )
    plt = pyplot()
    width, height = grid_pixels(len(examples.groups), cols)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    if examples.title:
        fig.suptitle(_short(examples.title, 120), fontsize=10, y=1 - 12 / height)
    for r, group in enumerate(examples.groups):
        shown = examples.group(group)
        bottom = 1 - (TITLE_PX + (r + 1) * CELL_PX[1]) / height
        fig.text(
            LABEL_PX / 2 / width,
            bottom + CELL_PX[1] / 2 / height,
            ROW_LABELS[group].format(
                column=_short(examples.column, 14),
                hard="highest" if examples.higher_is_harder else "lowest",
                easy="lowest" if examples.higher_is_harder else "highest",
            ),
            rotation=90,
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold",
        )
        for c in range(cols):
            left = (LABEL_PX + c * CELL_PX[0] + 6) / width
            ax = fig.add_axes((left, bottom + 6 / height, (CELL_PX[0] - 12) / width, (CELL_PX[1] - 42) / height))
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(shown):
                ax.axis("off")
                continue
            example = shown[c]
            try:
                pixels = thumbnail(example.value)
            except UNREADABLE as err:
                plt.close(fig)
                raise InvalidArgumentError(
                    f"Row idx {example.idx} cannot be drawn as an image ({err}); nothing was written.",
                    value=example.idx,
                ) from err
            small = max(pixels.shape[:2]) < THUMB_PX // 2
            ax.imshow(
                pixels,
                cmap="gray" if pixels.ndim == 2 else None,
                vmin=0,
                vmax=255,
                interpolation="nearest" if small else "antialiased",
            )
            ax.set_title(f"{_short(example.label_name)}\n{example.score_text} · idx {example.idx}", fontsize=7, pad=3)
    save_png(fig, target, dpi=DPI)
    return target
