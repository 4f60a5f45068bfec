"""Content hashes: ``example_id`` per example and a fingerprint per split.

The id hashes the *decoded* input (pixel values, shape, dtype) plus the label, so it survives re-encoding of an
image (PNG vs JPEG-lossless vs raw arrays), row reordering and subsampling; it changes when pixels or labels do.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np

ID_BYTES = 16  # 128-bit blake2b: collisions are not a practical concern for datasets of any size


def _input_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and ("bytes" in value or "path" in value):  # undecoded datasets Image
        from PIL import Image  # noqa: PLC0415

        import io  # noqa: PLC0415

        value = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"Cannot hash an input of type {type(value).__name__}; give an image, array, bytes or str.")
    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}|{array.shape}|".encode()
    return header + array.tobytes()


def example_id(value: Any, label: int | str) -> str:
    """Hex content hash of one example: decoded input bytes, their shape and dtype, and the label."""
    digest = hashlib.blake2b(_input_bytes(value), digest_size=ID_BYTES)
    digest.update(f"|label={label}".encode())
    return digest.hexdigest()


def example_ids_from_array(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """Ids for a stacked ``[N, ...]`` array of decoded inputs; equal to calling ``example_id`` row by row."""
    return [example_id(images[i], int(labels[i])) for i in range(len(labels))]


def fingerprint(ids: Iterable[str]) -> str:
    """Order-sensitive hash over all example ids of a split: identifies the exact source rows and their order."""
    digest = hashlib.sha256()
    for eid in ids:
        digest.update(eid.encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()
