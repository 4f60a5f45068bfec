"""datadiet_hub.scoring.forward: one call convention for tensor-input models and keyword-input (transformers-style) models."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from datadiet_hub.scoring.forward import batch_size, logits_of, select


@dataclass
class Output:
    logits: torch.Tensor


class Keyword(nn.Module):
    def __init__(self, wrap: str):
        super().__init__()
        self.wrap = wrap
        self.embed, self.head = nn.Embedding(5, 3), nn.Linear(3, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        h = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        logits = self.head(h.sum(1))
        return {"object": Output(logits), "dict": {"logits": logits}, "tensor": logits}[self.wrap]


@pytest.mark.parametrize("wrap", ["object", "dict", "tensor"])
def test_keyword_inputs_and_output_kinds(wrap):
    model = Keyword(wrap)
    batch = {"input_ids": torch.tensor([[1, 2, 0], [3, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])}
    logits = logits_of(model, batch)
    expected = model.head((model.embed(batch["input_ids"]) * batch["attention_mask"].unsqueeze(-1)).sum(1))
    torch.testing.assert_close(logits, expected)
    assert batch_size(batch) == 2
    assert select(batch, slice(1, 2))["input_ids"].tolist() == [[3, 0, 0]]


def test_tensor_inputs_and_bad_outputs():
    linear = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    torch.testing.assert_close(logits_of(linear, x), linear(x))
    with pytest.raises(TypeError, match=r"model returned tuple, expected a logits tensor or an output with"):
        logits_of(nn.GRU(3, 2), x.unsqueeze(1))


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"a": torch.zeros(2, 1), "b": torch.zeros(3, 1)}, r"same batch size in dim 0, got \{'a': 2, 'b': 3\}"),
        ({"a": torch.zeros(2), "b": 3}, r"inputs\['b'\] must be a tensor with the batch as dim 0, got int"),
        ({}, "non-empty mapping"),
        (torch.tensor(1.0), "0-dim tensor"),
    ],
)
def test_bad_batches_are_named(inputs, match):
    with pytest.raises(ValueError, match=match):
        batch_size(inputs)
