"""GraNd on a layer matrix (after Opacus ``tests/grad_samples`` and BackPACK's module list), in float64 against the
per-example loop: every layer a transformer, ViT, BERT-style or recurrent model uses, closed-form rule or replay."""

from __future__ import annotations

import pytest
import torch
from test_grand import _assert_matches_oracle
from torch import nn

from datadiet_hub.scoring.metrics.grand import (
    UnsupportedModuleError,
    per_example_grad_norms,
    per_example_layer_sq_norms,
)
from datadiet_hub.scoring.metrics.reference import naive_layer_sq_norms, vmap_grad_norms


@pytest.fixture(autouse=True)
def _float64():
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _labels(n: int, k: int = 3) -> torch.Tensor:
    return torch.arange(n) % k


def _randomize(model: nn.Module) -> nn.Module:
    """Non-default affine parameters (norm weights start at 1, biases at 0), so every term is exercised."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("bias", "weight")) and p.dim() == 1:
                p.normal_()
    return model


class Head(nn.Module):
    """Layer under test, then tanh, flatten and a linear classifier (lazy-free: the width is given)."""

    def __init__(self, layer: nn.Module, features: int, pick: int | None = None):
        super().__init__()
        self.layer, self.pick = layer, pick
        self.head = nn.Linear(features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        if self.pick is not None:
            out = out[self.pick]
        return self.head(torch.tanh(out).flatten(1))


def _head_model(layer: nn.Module, x: torch.Tensor, pick: int | None = None) -> nn.Module:
    with torch.no_grad():
        out = layer(x)
        out = out[pick] if pick is not None else out
    return _randomize(Head(layer, out[0].numel(), pick))


# --------------------------------------------------------------------------------------------------- single layers

LAYERS = {
    "conv_transpose1d": (lambda: nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1), (3, 6)),
    "conv_transpose1d_groups": (lambda: nn.ConvTranspose1d(4, 6, 2, groups=2, dilation=2), (4, 5)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), (2, 4, 4)),
    "conv_transpose2d_nobias_pad": (
        lambda: nn.ConvTranspose2d(2, 3, (3, 2), stride=(1, 2), padding=1, bias=False),
        (2, 4, 5),
    ),
    "instance_norm1d": (lambda: nn.InstanceNorm1d(3, affine=True), (3, 6)),
    "instance_norm2d": (lambda: nn.InstanceNorm2d(3, affine=True), (3, 4, 4)),
    "instance_norm2d_running": (lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (3, 4, 4)),
    "instance_norm3d": (lambda: nn.InstanceNorm3d(2, affine=True), (2, 3, 3, 3)),
    "group_norm": (lambda: nn.GroupNorm(2, 4), (4, 3, 3)),
    "layer_norm_2d_shape": (lambda: nn.LayerNorm((3, 4)), (5, 3, 4)),
    "layer_norm_no_bias": (lambda: nn.LayerNorm(4, bias=False), (5, 4)),
    "rms_norm": (lambda: nn.RMSNorm(4), (5, 4)),
    "rms_norm_2d_shape": (lambda: nn.RMSNorm((3, 4), eps=1e-3), (2, 3, 4)),
    "prelu_shared": (lambda: nn.PReLU(), (4, 3)),
    "prelu_per_channel": (lambda: nn.PReLU(3), (3, 5)),
    "linear_3d": (lambda: nn.Linear(4, 5), (3, 2, 4)),
    "linear_no_bias": (lambda: nn.Linear(4, 5, bias=False), (4,)),
    "bilinear": (lambda: _Bilinear(), (4,)),
    "sequence_bias": (lambda: _SequenceBias(4), (3, 4)),
}


class _Bilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.bilinear = nn.Bilinear(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bilinear(x, x.flip(-1))


class _SequenceBias(nn.Module):
    """A module with its own parameter and no rule (Opacus' SequenceBias): the replay computes it."""

    def __init__(self, dim: int):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.bias + self.bias.square()


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_single_layer_matches_naive_loop(kind):
    make, shape = LAYERS[kind]
    layer = make()
    x = torch.randn(4, *shape)
    if isinstance(layer, nn.InstanceNorm2d) and layer.track_running_stats:
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
    _assert_matches_oracle(_head_model(layer, x), x, _labels(4))


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_bag_2d_input(mode, padding_idx):
    bag = nn.EmbeddingBag(9, 4, mode=mode, padding_idx=padding_idx)
    ids = torch.tensor([[1, 2, 2, 0], [0, 0, 3, 4], [5, 6, 7, 8], [8, 8, 8, 8]])
    _assert_matches_oracle(_head_model(bag, ids), ids, _labels(4))


def test_embedding_bag_per_sample_weights():
    class Weighted(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = nn.EmbeddingBag(9, 4, mode="sum")
            self.head = nn.Linear(4, 3)

        def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
            return self.head(self.bag(ids, per_sample_weights=weights))

    ids, weights = torch.randint(0, 9, (4, 5)), torch.rand(4, 5)
    _assert_matches_oracle(Weighted(), {"ids": ids, "weights": weights}, _labels(4))


def test_embedding_bag_offsets_are_refused_clearly():
    class Offsets(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = nn.EmbeddingBag(9, 4)
            self.head = nn.Linear(4, 3)

        def forward(self, flat: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
            return self.head(self.bag(flat.flatten(), offsets[0]))

    flat = torch.randint(0, 9, (4, 3))  # 12 ids in 4 bags given by offsets: not one row per example
    offsets = torch.tensor([0, 3, 6, 9]).expand(4, 4)
    with pytest.raises(
        UnsupportedModuleError, match=r"'bag' \(EmbeddingBag\).*batch dim 0 has size 12, not the batch size 4"
    ):
        per_example_grad_norms(Offsets(), {"flat": flat, "offsets": offsets}, _labels(4))


@pytest.mark.parametrize("scale", [False, True])
def test_embedding_padding_idx_and_scale_grad_by_freq(scale):
    embed = nn.Embedding(7, 4, padding_idx=0, scale_grad_by_freq=scale)
    ids = torch.tensor([[1, 1, 1, 0, 2], [3, 0, 0, 4, 4], [5, 6, 5, 6, 5], [2, 2, 2, 2, 2]])
    _assert_matches_oracle(_head_model(embed, ids), ids, _labels(4))


# ------------------------------------------------------------------------------------------------- recurrent layers


class Recurrent(nn.Module):
    def __init__(self, cls: type[nn.RNNBase], batch_first: bool, **kwargs):
        super().__init__()
        self.batch_first = batch_first
        self.rnn = cls(3, 4, batch_first=batch_first, **kwargs)
        directions = 2 if kwargs.get("bidirectional") else 1
        self.head = nn.Linear(4 * directions, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, T, 3]
        out = self.rnn(x if self.batch_first else x.transpose(0, 1))[0]
        return self.head(out.mean(1 if self.batch_first else 0))


@pytest.mark.parametrize("options", [{}, {"num_layers": 2}, {"bidirectional": True}, {"bias": False}])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
def test_rnn_gru_lstm_match_naive_loop_with_length_equal_to_batch(cls, batch_first, options):
    _assert_matches_oracle(Recurrent(cls, batch_first, **options), torch.randn(4, 4, 3), _labels(4))


def test_lstm_with_projection_and_initial_state():
    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 4, proj_size=2, batch_first=True)
            self.head = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
            out = self.rnn(x, (h0.transpose(0, 1), c0.transpose(0, 1)))[0]
            return self.head(out[:, -1])

    inputs = {"x": torch.randn(4, 5, 3), "h0": torch.randn(4, 1, 2), "c0": torch.randn(4, 1, 4)}
    _assert_matches_oracle(WithState(), inputs, _labels(4))


def test_packed_sequence_is_refused_clearly():
    model = Recurrent(nn.GRU, True)
    model.forward = lambda x: model.head(  # type: ignore[method-assign]
        model.rnn(nn.utils.rnn.pack_padded_sequence(x, [4, 3, 2, 1], batch_first=True))[1][-1]
    )
    with pytest.raises(UnsupportedModuleError, match="PackedSequence"):
        per_example_grad_norms(model, torch.randn(4, 4, 3), _labels(4))


# ------------------------------------------------------------------------------------------------------- attention


class Attention(nn.Module):
    def __init__(self, batch_first: bool, **kwargs):
        super().__init__()
        self.batch_first = batch_first
        self.attn = nn.MultiheadAttention(4, 2, batch_first=batch_first, **kwargs)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x: [N, T, 4], mask: [N, T] 1 = token
        q = x if self.batch_first else x.transpose(0, 1)
        kv = q.flip(-1)  # key/value differ from query: the packed in_proj is used three ways
        out, _ = self.attn(q, kv, kv, key_padding_mask=mask == 0)
        out = out if self.batch_first else out.transpose(0, 1)
        return self.head(out[:, 0])


MHA_OPTIONS = {
    "plain": {},
    "no_bias": {"bias": False},
    "bias_kv": {"add_bias_kv": True},
    "zero_attn": {"add_zero_attn": True},
    "kdim_vdim": {"kdim": 4, "vdim": 4},
    "all": {"add_bias_kv": True, "add_zero_attn": True, "kdim": 4, "vdim": 4},
}


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("options", sorted(MHA_OPTIONS))
def test_multihead_attention_matches_naive_loop(options, batch_first):
    model = _randomize(Attention(batch_first, **MHA_OPTIONS[options]))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]])
    _assert_matches_oracle(model, {"x": torch.randn(4, 4, 4), "mask": mask}, _labels(4))  # T == N


def test_multihead_attention_need_weights_used_downstream():
    class UsesWeights(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
            self.head = nn.Linear(4 + 9, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, weights = self.attn(x, x, x, need_weights=True)
            return self.head(torch.cat([out[:, 0], weights.flatten(1)], 1))

    _assert_matches_oracle(UsesWeights(), torch.randn(4, 3, 4), _labels(4))


class LinearAttention(nn.Module):
    """Attention built from Linear layers (BERT style): the Linear rule applies at every position."""

    def __init__(self, dim: int = 8, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape

        def split(h: torch.Tensor) -> torch.Tensor:
            return h.view(n, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        bias = torch.zeros(n, 1, 1, t).masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        scores = (q @ k.transpose(-1, -2)) / (d // self.heads) ** 0.5 + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, d)
        return self.head(self.out(ctx)[:, 0])


def test_attention_built_from_linear_layers():
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    _assert_matches_oracle(LinearAttention(), {"x": torch.randn(4, 5, 8), "mask": mask}, _labels(4))


class Encoder(nn.Module):
    def __init__(self, batch_first: bool, norm_first: bool, decoder: bool = False):
        super().__init__()
        self.batch_first, self.decoder = batch_first, decoder
        self.embed = nn.Embedding(11, 8, padding_idx=0)
        self.positions = nn.Embedding(16, 8)
        kwargs = {"dropout": 0.1, "batch_first": batch_first, "norm_first": norm_first, "activation": "gelu"}
        if decoder:
            self.block = nn.TransformerDecoderLayer(8, 2, 16, **kwargs)
        else:
            self.block = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(8, 2, 16, **kwargs), 2, enable_nested_tensor=False
            )
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(input_ids) + self.positions(torch.arange(input_ids.shape[1]))
        h = h if self.batch_first else h.transpose(0, 1)
        pad = attention_mask == 0
        if self.decoder:
            h = self.block(h, h, tgt_key_padding_mask=pad, memory_key_padding_mask=pad)
        else:
            h = self.block(h, src_key_padding_mask=pad)
        h = h if self.batch_first else h.transpose(0, 1)
        keep = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1))


def _token_batch(n: int = 4, t: int = 4) -> dict[str, torch.Tensor]:
    mask = torch.ones(n, t, dtype=torch.long)
    for i in range(n):
        mask[i, t - i :] = 0 if i else 1
    ids = torch.randint(1, 11, (n, t)) * mask
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layers_match_naive_loop(batch_first, norm_first):
    model = _randomize(Encoder(batch_first, norm_first))
    _assert_matches_oracle(model, _token_batch(4, 4), _labels(4))  # sequence length == batch size


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_decoder_layer_matches_naive_loop(batch_first):
    _assert_matches_oracle(_randomize(Encoder(batch_first, False, decoder=True)), _token_batch(4, 5), _labels(4))


# ------------------------------------------------------------------------------------------------- our registry models


def test_registry_text_transformer_and_vit_tiny_match_naive_loop():
    from datadiet_hub.scoring.models import MODELS, build_model

    text = build_model("text-transformer", num_classes=3, vocab_size=11, max_length=8, width=0.125, pad_token_id=0)
    assert (text.tokens.padding_idx, text.tokens.embedding_dim, text.positions.num_embeddings) == (0, 16, 8)
    _assert_matches_oracle(_randomize(text), _token_batch(5, 6), _labels(5))
    vit = MODELS["vit-tiny"](num_classes=3, in_channels=3, image_size=8, width=0.25)
    _assert_matches_oracle(_randomize(vit), {"pixel_values": torch.randn(4, 3, 8, 8)}, _labels(4))


def test_padded_positions_contribute_nothing():
    """Tokens behind the attention mask may hold anything: the scores do not change (and stay exact)."""
    model = _randomize(_text_model())
    batch = _token_batch(4, 6)
    other = {k: v.clone() for k, v in batch.items()}
    other["input_ids"][batch["attention_mask"] == 0] = 7  # garbage where the mask is 0
    a = _assert_matches_oracle(model, batch, _labels(4))
    b = per_example_grad_norms(model, other, _labels(4))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def _text_model() -> nn.Module:
    from datadiet_hub.scoring.transformer import TextTransformer

    return TextTransformer(vocab_size=11, num_classes=3, max_length=8, width=0.125, pad_id=0)


def test_vmap_reference_takes_keyword_inputs():
    model, batch = _text_model(), _token_batch(4, 6)
    expected = torch.stack(list(naive_layer_sq_norms(model, batch, _labels(4)).values())).sum(0).sqrt()
    torch.testing.assert_close(vmap_grad_norms(model, batch, _labels(4), chunk_size=2), expected, rtol=1e-6, atol=0)


def test_chunking_keyword_inputs_gives_the_same_norms():
    model, batch = _text_model(), _token_batch(5, 6)
    whole = per_example_layer_sq_norms(model, batch, _labels(5))
    for chunk in (1, 2):
        part = per_example_layer_sq_norms(model, batch, _labels(5), chunk_size=chunk)
        for name in whole:
            torch.testing.assert_close(part[name], whole[name], rtol=1e-10, atol=1e-300)


# --------------------------------------------------------------------------------------------------- transformers


def test_transformers_bert_for_sequence_classification():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
        max_position_embeddings=16, num_labels=3,
    )  # fmt: skip
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    _assert_matches_oracle(_randomize(model), _token_batch(4, 4), _labels(4))


def test_transformers_vit_for_image_classification():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=3, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=16, num_labels=3,
    )  # fmt: skip
    model = transformers.AutoModelForImageClassification.from_config(config)
    _assert_matches_oracle(_randomize(model), {"pixel_values": torch.randn(4, 3, 8, 8)}, _labels(4))


@pytest.mark.parametrize("average", [True, False])
def test_multihead_attention_takes_the_decomposed_path_without_replay(average, monkeypatch):
    """The common configuration is computed from its four projections' inputs and output gradients, no replay."""
    import datadiet_hub.scoring.metrics.grand as grand

    def no_replay(*args, **kwargs):
        raise AssertionError("the decomposed attention path should not replay the module")

    class Weights(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=False)
            self.head = nn.Linear(4 + (9 if average else 18), 3)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            q = x.transpose(0, 1)
            causal = torch.triu(torch.ones(3, 3, dtype=torch.bool), 1)
            out, w = self.attn(q, q, q, key_padding_mask=mask == 0, attn_mask=causal, average_attn_weights=average)
            return self.head(torch.cat([out[0], w.flatten(1)], 1))

    monkeypatch.setattr(grand, "replay_sq_norms", no_replay)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]])
    _assert_matches_oracle(_randomize(Weights()), {"x": torch.randn(4, 3, 4), "mask": mask}, _labels(4))
    _assert_matches_oracle(_randomize(_text_model()), _token_batch(4, 6), _labels(4))


def test_weight_norm_parametrized_layer_is_replayed_exactly():
    layer = nn.utils.parametrizations.weight_norm(nn.Linear(3, 4))
    model = nn.Sequential(layer, nn.Tanh(), nn.Linear(4, 3))
    layers = per_example_layer_sq_norms(model, torch.randn(4, 3), _labels(4))
    assert "0.parametrizations.weight" in layers  # keyed by the modules that own the parameters, as the oracle
    _assert_matches_oracle(model, torch.randn(4, 3), _labels(4))


def test_layer_called_with_keyword_input_is_exact():
    class Keyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(input=torch.tanh(self.a(input=x)))

    _assert_matches_oracle(Keyword(), torch.randn(4, 3), _labels(4))
