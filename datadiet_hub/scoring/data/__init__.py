"""Turning a source split into batches that carry ``idx``.

Two paths, chosen per run by ``plan.choose_path`` (``--data-path auto|memory|loader``):

- ``tensors``: the in-memory path; the split decoded once into one uint8 tensor (small fixed-size images);
- ``loader``: a ``torch.utils.data.DataLoader`` over the ``datasets`` split (or stream), decoding, resizing
  (``images``), tokenizing (``text``) and augmenting in worker processes.
"""

from .tensors import (
    Preprocess,
    TensorData,
    channel_stats,
    crop_flip,
    load_tensors,
    resolve_augmentation,
    to_array,
)

__all__ = [
    "Preprocess",
    "TensorData",
    "channel_stats",
    "crop_flip",
    "load_tensors",
    "resolve_augmentation",
    "to_array",
]
