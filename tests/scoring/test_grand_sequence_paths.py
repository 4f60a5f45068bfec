"""GraNd's choices for sequence models, exact on both sides: a Linear layer's per-example norm by the Gram form or by
materialized gradients (``linear_use_ghost`` picks by cost), and a causal ``nn.MultiheadAttention`` call (``attn_mask``
declared causal by ``is_causal``) recomputed with SDPA's own causal masking, against the one-example-at-a-time loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from datadiet_hub.scoring.metrics import _grand_attention as attention
from datadiet_hub.scoring.metrics import _grand_layers as layers
from datadiet_hub.scoring.metrics.grand import per_example_layer_sq_norms
from datadiet_hub.scoring.metrics.reference import naive_layer_sq_norms


def test_linear_choice_follows_the_measured_shapes():
    assert layers.linear_use_ghost(128, 128, 8000)  # an LM output layer at context 128: Gram form
    assert not layers.linear_use_ghost(512, 128, 8000)  # at context 512: materialized
    assert not layers.linear_use_ghost(512, 128, 512)  # a feed-forward layer over a long window
    assert layers.linear_use_ghost(1, 4, 4) and layers.linear_use_ghost(8, 1024, 1024)


@pytest.mark.parametrize("shape", [(128, 16, 700), (40, 16, 700), (3, 5, 7), (64, 8, 8)])
def test_linear_rule_is_exact_by_either_form(shape, monkeypatch):
    positions, d, p = shape
    g = torch.Generator().manual_seed(0)
    layer = nn.Linear(d, p).double()
    a = torch.randn(3, positions, d, generator=g, dtype=torch.float64)
    grad = torch.randn(3, positions, p, generator=g, dtype=torch.float64)
    expected = torch.stack(
        [(grad[i].T @ a[i]).square().sum() + grad[i].sum(0).square().sum() for i in range(3)]
    )  # the per-example weight and bias gradients, explicitly
    for ghost in (True, False):
        monkeypatch.setattr(layers, "linear_use_ghost", lambda *_, ghost=ghost: ghost)
        np.testing.assert_allclose(layers.linear_sq_norms(layer, a, grad).numpy(), expected.numpy(), rtol=1e-10)


class _CausalEncoder(nn.Module):
    """Token embedding, one pre-norm torch encoder layer run causally (``is_causal`` with its mask), a Linear head."""

    def __init__(self, vocab: int = 13, dim: int = 8) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 3)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.tokens(input_ids)
        mask = nn.Transformer.generate_square_subsequent_mask(input_ids.shape[1], dtype=h.dtype)
        return self.head(self.layers(h, mask=mask, is_causal=True)[:, -1])


def test_causal_attention_recomputed_with_sdpa_causal_masking_is_exact(monkeypatch):
    torch.manual_seed(0)
    model = _CausalEncoder().double().eval()
    ids = torch.randint(0, 13, (4, 6))
    labels = torch.tensor([0, 2, 1, 2])
    calls = []

    class Spy:  # torch.nn.functional as the decomposed attention sees it, its SDPA calls recorded
        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        def scaled_dot_product_attention(self, *args, **kwargs):
            calls.append((kwargs.get("attn_mask"), kwargs.get("is_causal")))
            return torch.nn.functional.scaled_dot_product_attention(*args, **kwargs)

    monkeypatch.setattr(attention, "F", Spy())
    fast = per_example_layer_sq_norms(model, {"input_ids": ids}, labels, verify=False)
    assert calls == [(None, True)]  # the recomputed attention masks causally itself, no -inf mask
    monkeypatch.undo()
    expected = naive_layer_sq_norms(model, {"input_ids": ids}, labels)
    for name, ref in expected.items():
        np.testing.assert_allclose(fast[name].detach().numpy(), ref.detach().numpy(), rtol=1e-9, err_msg=name)
