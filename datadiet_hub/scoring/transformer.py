"""Small transformer classifiers for the registry: ``text-transformer`` (token ids) and ``vit-tiny`` (images).

Both take keyword tensors the way ``transformers`` models do (``input_ids`` + ``attention_mask``, or
``pixel_values``), so the scoring code calls them like any Hub model, and both are built from ``torch.nn`` layers
GraNd scores exactly (``nn.TransformerEncoderLayer``, embeddings, LayerNorm, Linear, Conv2d).
"""

from __future__ import annotations

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError


def _model_dim(base: int, width: float, heads: int) -> int:
    """``base * width`` rounded to a multiple of ``heads`` (``width`` scales the model, as for the other models)."""
    if width <= 0:
        raise InvalidArgumentError(f"width must be a positive scale factor (1.0 = the default size), got {width}.")
    return max(heads, round(base * width / heads) * heads)


def _encoder(width: int, heads: int, depth: int, mlp_ratio: int = 4) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        width, heads, mlp_ratio * width, dropout=0.1, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class TextTransformer(nn.Module):
    """Token + learned positional embedding, pre-norm encoder layers with a key padding mask, masked mean pool.

    Padded positions (``attention_mask == 0``) are neither attended to nor pooled, so they do not change the
    logits or any gradient.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        max_length: int = 128,
        width: float = 1.0,
        depth: int = 2,
        heads: int = 4,
        pad_id: int = 0,
    ):
        super().__init__()
        width = _model_dim(128, width, heads)
        self.max_length = max_length
        self.tokens = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.positions = nn.Embedding(max_length, width)
        self.encoder = _encoder(width, heads, depth)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.max_length:
            raise InvalidArgumentError(f"input_ids has {length} tokens, more than max_length={self.max_length}.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keep = attention_mask.bool()
        h = self.tokens(input_ids) + self.positions(torch.arange(length, device=input_ids.device))
        h = self.norm(self.encoder(h, src_key_padding_mask=~keep))
        weights = keep.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.classifier(pooled)


class _ClsAndPositions(nn.Module):
    """Prepend the class token and add learned positions (a module of its own, so GraNd replays only this)."""

    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.randn(1, tokens + 1, width) * 0.02)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        cls = self.cls.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], dim=1) + self.positions


class ViTTiny(nn.Module):
    """A small Vision Transformer: patch embedding conv, class token, learned positions, encoder, linear head."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        width: float = 1.0,
        patch_size: int = 4,
        depth: int = 2,
        heads: int = 4,
    ):
        super().__init__()
        dim = _model_dim(64, width, heads)
        if image_size % patch_size:
            raise InvalidArgumentError(f"image_size={image_size} must be a multiple of patch_size={patch_size}.")
        self.patches = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.embed = _ClsAndPositions((image_size // patch_size) ** 2, dim)
        self.encoder = _encoder(dim, heads, depth)
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.patches(pixel_values).flatten(2).transpose(1, 2)
        h = self.norm(self.encoder(self.embed(h)))
        return self.classifier(h[:, 0])


def text_transformer(
    *,
    vocab_size: int,
    num_classes: int,
    max_length: int = 128,
    width: float = 1.0,
    pad_token_id: int | None = None,
    depth: int = 2,
    heads: int = 4,
) -> TextTransformer:
    """Registry factory ``text-transformer``: model width ``128 * width`` (rounded to the heads), 2 layers, 4 heads."""
    return TextTransformer(
        vocab_size=vocab_size,
        num_classes=num_classes,
        max_length=max_length,
        width=width,
        depth=depth,
        heads=heads,
        pad_id=0 if pad_token_id is None else pad_token_id,
    )


def vit_tiny(
    *,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    width: float = 1.0,
    patch_size: int = 4,
    depth: int = 2,
    heads: int = 4,
) -> ViTTiny:
    """Registry factory ``vit-tiny``: model width ``64 * width``, 4x4 patches, 2 layers, 4 heads."""
    return ViTTiny(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        width=width,
        patch_size=patch_size,
        depth=depth,
        heads=heads,
    )
