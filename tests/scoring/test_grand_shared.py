"""Layers whose input is shared by the whole batch (a T5-style relative-position bias looked up with a [T, T] bucket
index, a latent array expanded to the batch): exact per-example norms whatever T is, decided from data flow, never
from a shape that happens to equal the batch size. Float64 against the per-example loop."""

from __future__ import annotations

import pytest
import torch
from test_grand import _assert_matches_oracle
from torch import nn

from datadiet_hub.scoring.metrics.grand import UnsupportedModuleError, per_example_grad_norms


@pytest.fixture(autouse=True)
def _float64():
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


class RelativeBias(nn.Module):
    """Self-attention with a learned bias per (query, key) offset bucket, looked up once for the batch (T5, MPNet)."""

    def __init__(self, layout: str, heads: int = 2, dim: int = 4):
        super().__init__()
        self.layout, self.heads = layout, heads
        self.tokens = nn.Embedding(9, dim)
        self.bias = nn.Embedding(7, heads)  # 7 offset buckets x heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n, t = ids.shape
        pos = torch.arange(t)
        buckets = (pos[None, :] - pos[:, None]).clamp(-3, 3) + 3  # [T, T]: shared by every example
        bias = self.bias(buckets)  # [T, T, H]: dim 0 is T, equal to N when T == N
        h = self.tokens(ids)

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(n, t, self.heads, -1).transpose(1, 2)

        scores = split(self.q(h)) @ split(self.k(h)).transpose(-1, -2)  # [N, H, T, T]
        if self.layout == "t5":  # [1, H, T, T], broadcast over the batch
            scores = scores + bias.permute(2, 0, 1).unsqueeze(0)
        elif self.layout == "heads-first":  # [H, T, T]: no batch dim at all
            scores = scores + bias.permute(2, 0, 1)
        elif self.layout == "mpnet":  # expanded to [N, H, T, T] and made contiguous, then added in place
            scores += bias.permute(2, 0, 1).unsqueeze(0).expand(n, -1, t, t).contiguous()
        elif self.layout == "mask-first":  # T5's decoder: the bias first meets the (per-example) padding mask
            mask = (ids == 0).to(scores.dtype)[:, None, None, :] * -1e4
            scores = scores + (bias.permute(2, 0, 1).unsqueeze(0) + mask)
        ctx = (scores.softmax(-1) @ split(self.v(h))).transpose(1, 2).reshape(n, t, -1)
        return self.head(torch.tanh(ctx).mean(1))


LAYOUTS = ["t5", "heads-first", "mpnet", "mask-first"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("length", [4, 5])  # 4 == the batch size: the bias's first dim equals N
def test_relative_position_bias_is_exact(layout, length):
    ids = torch.randint(0, 9, (4, length))
    _assert_matches_oracle(RelativeBias(layout), ids, torch.tensor([0, 1, 2, 1]))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relative_position_bias_is_exact_on_a_later_batch_with_length_equal_to_batch(layout):
    """The self-check runs on the first batch only (T != N there); a later batch with T == N must still be exact."""
    model = RelativeBias(layout)
    per_example_grad_norms(model, torch.randint(0, 9, (4, 6)), torch.tensor([0, 1, 2, 1]))  # verified here
    for n in (3, 5):
        _assert_matches_oracle(model, torch.randint(0, 9, (n, n)), torch.randint(0, 3, (n,)), verify=False)


def test_latent_array_expanded_to_the_batch_is_exact():
    """A learned [L, D] array expanded to [N, L, D] (Perceiver), normalized and projected before it meets the data."""

    class Latents(nn.Module):
        def __init__(self):
            super().__init__()
            self.latents = nn.Parameter(torch.randn(3, 4))
            self.norm, self.q = nn.LayerNorm(4), nn.Linear(4, 4)
            self.embed, self.head = nn.Linear(2, 4), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.q(self.norm(self.latents.expand(x.shape[0], -1, -1)))  # [N, L, D], no example data
            k = self.embed(x)  # [N, T, D]
            ctx = (q @ k.transpose(1, 2)).softmax(-1) @ k  # [N, L, D]
            return self.head(ctx.mean(1))

    for length in (3, 4):
        _assert_matches_oracle(Latents(), torch.randn(4, length, 2), torch.tensor([0, 1, 2, 1]))


def test_shared_output_concatenated_with_the_examples_is_exact():
    """An op without broadcasting (cat) splits the shared operand's gradient by example through its own VJP."""

    class Prefix(nn.Module):
        def __init__(self):
            super().__init__()
            self.prefix, self.embed, self.head = nn.Embedding(5, 4), nn.Embedding(9, 4), nn.Linear(4, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            p = self.prefix(torch.arange(2)).expand(ids.shape[0], -1, -1).tanh()  # [N, 2, D], shared
            return self.head(torch.cat([p, self.embed(ids)], 1).tanh().mean(1))

    _assert_matches_oracle(Prefix(), torch.randint(0, 9, (4, 4)), torch.tensor([0, 1, 2, 1]))


def test_shared_output_meeting_examples_without_a_batch_dim_is_refused_naming_the_module():
    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos, self.embed, self.head = nn.Embedding(8, 4), nn.Embedding(9, 4), nn.Linear(4, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.embed(ids)  # [N, T, D]
            scale = (self.pos(torch.arange(ids.shape[1])) * h.mean(0)).sum()  # mixes the whole batch: no batch dim
            return self.head(h.mean(1) * scale)

    with pytest.raises(UnsupportedModuleError, match=r"Module 'pos' \(Embedding\), shared by the whole batch.*'mul'"):
        per_example_grad_norms(Pooled(), torch.randint(0, 9, (4, 5)), torch.tensor([0, 1, 2, 1]))
