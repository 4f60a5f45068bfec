"""``fasttext``: the default text model, a bag of n-grams in the style of fastText (Joulin et al. 2017).

Each text is the set of its character 1-4-grams, words and word bigrams (``datadiet_hub.scoring.data.ngrams``); the
model averages one learned vector per feature (``nn.EmbeddingBag``, mean, padding ignored) and classifies the mean
with one linear layer. It trains in seconds on a CPU, is as strong as a linear model on n-grams for tasks that
n-grams decide (language, topic, spam), and GraNd is exact and cheap for it: the per-example gradient of a mean bag
is the output gradient times each feature's share of the bag.
"""

from __future__ import annotations

import torch
from torch import nn

from datadiet_hub.errors import InvalidArgumentError

BASE_DIM = 16
"""Vector size at ``width=1``: fastText's language-identification models use 16 and its paper 10 hidden units."""


class FastText(nn.Module):
    """Mean of the feature vectors of a text (ids 0 are padding), then a linear classifier.

    Takes ``input_ids`` ``[N, L]`` (padded with ``pad_token_id``); ``attention_mask`` is accepted for the engine's
    sake and not needed, since padded positions hold the padding id, which the bag skips.
    """

    def __init__(self, *, vocab_size: int, num_classes: int, width: float = 1.0, pad_token_id: int = 0):
        super().__init__()
        if width <= 0:
            raise InvalidArgumentError(f"width must be a positive scale factor (1.0 = the default size), got {width}.")
        dim = max(1, round(BASE_DIM * width))
        self.embedding = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=pad_token_id)
        nn.init.uniform_(self.embedding.weight, -1.0 / dim**0.5, 1.0 / dim**0.5)
        with torch.no_grad():
            self.embedding.weight[pad_token_id].zero_()
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(self.embedding(input_ids))


def fasttext(*, vocab_size: int, num_classes: int, width: float = 1.0, pad_token_id: int | None = None) -> FastText:
    """Registry factory ``fasttext``: ``64 * width``-dimensional feature vectors, mean-pooled, linear classifier."""
    return FastText(
        vocab_size=vocab_size,
        num_classes=num_classes,
        width=width,
        pad_token_id=0 if pad_token_id is None else pad_token_id,
    )
