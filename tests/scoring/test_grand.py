"""Fast GraNd against the per-example loop, in float64: total and per-layer, every layer rule and every refusal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from datadiet_hub.scoring.metrics import _grand_layers
from datadiet_hub.scoring.metrics.grand import (
    UnsupportedModuleError,
    per_example_grad_norms,
    per_example_layer_sq_norms,
)
from datadiet_hub.scoring.metrics.reference import naive_grad_norms, naive_layer_sq_norms, vmap_grad_norms
from datadiet_hub.scoring.models import build_model

RTOL = 1e-6


@pytest.fixture(autouse=True)
def _float64():
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _randomize_norm_layers(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so the BN rule is really exercised."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(module.weight)
            nn.init.normal_(module.bias)
    return model


def _assert_matches_oracle(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
    layers = per_example_layer_sq_norms(model, x, y, **kwargs)
    norms = per_example_grad_norms(model, x, y, **kwargs)
    expected_layers = naive_layer_sq_norms(model, x, y)
    expected = torch.stack(list(expected_layers.values())).sum(0).sqrt()
    assert norms.dtype == torch.float64 and norms.shape == (y.shape[0],)
    assert set(layers) == set(expected_layers)
    torch.testing.assert_close(norms, expected, rtol=RTOL, atol=0)
    floor = 1e-14 * float(expected.max()) ** 2  # only matters for a layer whose gradient is exactly 0 (dead ReLU)
    for name in expected_layers:
        torch.testing.assert_close(
            layers[name], expected_layers[name], rtol=RTOL, atol=floor, msg=lambda m, name=name: f"{name}: {m}"
        )
    return norms


# ----------------------------------------------------------------------------------------------- registry models

MODELS = {
    "cnn": {"in_channels": 1, "image_size": 12, "width": 0.5},
    "mlp": {"in_channels": 1, "image_size": 8, "width": 0.25},
    "resnet18": {"in_channels": 3, "image_size": 8, "width": 0.125},
}


def _force_conv_method(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """Make every convolution use ``method`` where it applies (the input Gram needs zero padding)."""
    applies = _grand_layers.input_gram_applies
    monkeypatch.setattr(
        _grand_layers,
        "conv_method",
        lambda module, *shapes: method if method != "input_gram" or applies(module) else "materialize",
    )


@pytest.mark.parametrize("method", ["auto", "ghost", "materialize", "input_gram"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_models_match_naive_loop(name, method, monkeypatch):
    if method != "auto":
        _force_conv_method(monkeypatch, method)
    kw = MODELS[name]
    model = _randomize_norm_layers(build_model(name, num_classes=5, **kw))
    x = torch.randn(5, kw["in_channels"], kw["image_size"], kw["image_size"])
    y = torch.randint(0, 5, (5,))
    _assert_matches_oracle(model, x, y)


def test_resnet18_at_init_batchnorm_defaults_and_chunking():
    model = build_model("resnet18", num_classes=10, in_channels=3, image_size=8, width=0.125)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 10, (6,))
    whole = _assert_matches_oracle(model, x, y)
    for chunk_size in (1, 4):
        torch.testing.assert_close(
            per_example_grad_norms(model, x, y, chunk_size=chunk_size), whole, rtol=1e-12, atol=0
        )


def test_tiny_workspace_slices_every_layer(monkeypatch):
    monkeypatch.setattr(_grand_layers, "WORKSPACE_BYTES", 1)
    model = _randomize_norm_layers(build_model("cnn", num_classes=3, in_channels=2, image_size=8, width=0.25))
    _assert_matches_oracle(model, torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 0]))


def test_vmap_oracle_agrees_with_naive_loop():
    model = _randomize_norm_layers(build_model("cnn", num_classes=4, in_channels=1, image_size=8, width=0.25))
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 4, (5,))
    torch.testing.assert_close(
        vmap_grad_norms(model, x, y, chunk_size=2), naive_grad_norms(model, x, y), rtol=RTOL, atol=0
    )


# ----------------------------------------------------------------------------------------------------- conv rules

CONVS = {
    "conv2d_plain_bias": lambda: nn.Conv2d(3, 4, 3),
    "conv2d_stride2_pad1": lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False),
    "conv2d_stride_asym": lambda: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0)),
    "conv2d_groups": lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2),
    "conv2d_depthwise": lambda: nn.Conv2d(4, 8, 3, groups=4),
    "conv2d_dilation": lambda: nn.Conv2d(3, 4, 3, dilation=2, padding=2),
    "conv2d_same": lambda: nn.Conv2d(3, 4, 4, padding="same"),
    "conv2d_reflect": lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
    "conv2d_circular_stride": lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode="circular"),
    "conv2d_1x1": lambda: nn.Conv2d(3, 5, 1, stride=2),
    "conv1d": lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2, groups=1),
    "conv1d_groups_same": lambda: nn.Conv1d(4, 4, 3, padding="same", groups=2),
    "conv3d": lambda: nn.Conv3d(3, 2, 2, stride=(1, 2, 1), padding=1, dilation=(1, 1, 2)),
}
SPATIAL = {"conv1d": (9,), "conv1d_groups_same": (9,), "conv3d": (4, 5, 5)}


ZERO_PADDED = sorted(kind for kind in CONVS if "reflect" not in kind and "circular" not in kind)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # asymmetric 'same' is the point
@pytest.mark.parametrize(
    ("kind", "method"),
    [(kind, m) for kind in sorted(CONVS) for m in ("ghost", "materialize", "materialize per example")]
    + [(k, "input_gram") for k in ZERO_PADDED],
)
def test_conv_variants_match_naive_loop(kind, method, monkeypatch):
    if method.startswith("materialize"):  # one weight-gradient call per example, or the batch as groups
        monkeypatch.setattr(_grand_layers, "per_example_calls", lambda a, g, macs: method.endswith("per example"))
        method = "materialize"
    monkeypatch.setattr(_grand_layers, "conv_method", lambda *args: method)
    conv = CONVS[kind]()
    x = torch.randn(4, conv.in_channels, *SPATIAL.get(kind, (7, 7)))
    features = conv(x).flatten(1).shape[1]
    model = nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(features, 3))
    _assert_matches_oracle(model, x, torch.tensor([0, 1, 2, 1]))


def test_input_gram_refuses_padding_it_cannot_express():
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
    a, g = torch.randn(2, 3, 6, 6), torch.randn(2, 4, 6, 6)
    assert "input_gram" not in _grand_layers.conv_costs(conv, (6, 6), (6, 6))
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        _grand_layers.conv_sq_norms(conv, a, g, method="input_gram")


def test_conv_method_picks_by_shape_on_the_cifar_resnet18():
    """The picks that benchmarks/results/grand_conv_methods_b32.txt timed as fastest (or within 1.2x of it)."""
    pick = _grand_layers.conv_method
    assert pick(nn.Conv2d(64, 64, 3, padding=1), (32, 32), (32, 32)) == "materialize"  # stage 1: many positions
    assert pick(nn.Conv2d(128, 128, 3, padding=1), (16, 16), (16, 16)) == "input_gram"  # stage 2
    assert pick(nn.Conv2d(256, 256, 3, padding=1), (8, 8), (8, 8)) == "input_gram"  # stage 3
    assert pick(nn.Conv2d(128, 256, 1, stride=2), (16, 16), (8, 8)) == "ghost"  # strided 1x1 shortcut
    assert pick(nn.Conv2d(64, 128, 1, stride=2), (32, 32), (16, 16)) == "materialize"
    # reflect padding adds copies of real positions, not zeros: the input Gram is never considered
    assert pick(nn.Conv2d(256, 256, 3, padding=1, padding_mode="reflect"), (8, 8), (8, 8)) == "ghost"


# ------------------------------------------------------------------------------------ sequences, norms, embedding


class TokenModel(nn.Module):
    def __init__(self, vocab: int = 7, dim: int = 4, length: int = 6):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.proj = nn.Linear(dim, 5)  # applied at every position: T = length
        self.norm = nn.LayerNorm(5)
        self.head = nn.Linear(5 * length, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.norm(self.proj(self.embed(ids)))).flatten(1))


@pytest.mark.parametrize("method", ["ghost", "materialize"])
def test_embedding_sequence_linear_and_layernorm(method, monkeypatch):
    monkeypatch.setattr(_grand_layers, "linear_use_ghost", lambda *shape: method == "ghost")
    ids = torch.tensor([[1, 2, 1, 1, 0, 3], [0, 0, 4, 5, 6, 4], [2, 2, 2, 2, 2, 2], [6, 5, 4, 3, 2, 1]])
    _assert_matches_oracle(TokenModel(), ids, torch.tensor([0, 2, 1, 1]))


def test_linear_on_non_contiguous_sequence_input():
    class Transposed(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix, self.head = nn.Linear(4, 3), nn.Linear(15, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.mix(x.transpose(1, 2)).flatten(1))  # [n, 5, 4] view, not contiguous

    _assert_matches_oracle(Transposed(), torch.randn(3, 4, 5), torch.tensor([0, 1, 1]))


def test_embedding_in_place_op_downstream_is_harmless():
    class Scaled(TokenModel):
        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.embed(ids)
            h.mul_(2.0)  # common in transformers; must not move the captured gradient
            return self.head(torch.tanh(self.norm(self.proj(h))).flatten(1))

    _assert_matches_oracle(Scaled(), torch.randint(0, 7, (3, 6)), torch.tensor([0, 1, 2]))


def test_groupnorm_batchnorm1d_and_frozen_parameters():
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 25, 6), nn.BatchNorm1d(6),
        nn.ReLU(inplace=True), nn.Linear(6, 3),
    )  # fmt: skip
    _randomize_norm_layers(model)
    model[0].weight.requires_grad_(False)  # frozen parameters are excluded from the norm (oracle does the same)
    model[5].bias.requires_grad_(False)
    _assert_matches_oracle(model, torch.randn(4, 2, 7, 7), torch.tensor([0, 1, 2, 0]))


# ------------------------------------------------------------------------------------------------------ refusals


class WithGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def test_layer_without_rule_is_exact_and_freezing_it_excludes_it():
    model, x, y = WithGRU(), torch.randn(3, 5, 3), torch.tensor([0, 1, 0])
    _assert_matches_oracle(model, x, y)
    model.rnn.requires_grad_(False)
    layers = per_example_layer_sq_norms(model, x, y)
    assert set(layers) == {"head"}
    _assert_matches_oracle(model, x, y)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.tanh(self.layer(x)))


class SharedReplayed(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.PReLU(3)  # no closed-form rule: replayed per call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.tanh(self.layer(x)))


class TiedEmbeddings(nn.Module):
    """Two Embedding modules holding one weight (an encoder's and a decoder's), and a Linear applied twice."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = nn.Embedding(7, 3, padding_idx=0), nn.Embedding(7, 3, padding_idx=0)
        self.decoder.weight = self.encoder.weight
        self.layer, self.norm, self.head = nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.layer(torch.tanh(self.layer(self.encoder(ids)))))
        h = self.norm(h + self.decoder(ids.flip(1)))
        return self.head(h.mean(1))


def test_tied_and_reused_linear_embedding_and_layernorm_calls_are_joined_exactly():
    layers = per_example_layer_sq_norms(TiedEmbeddings(), torch.randint(0, 7, (4, 5)), torch.tensor([0, 1, 2, 1]))
    assert "decoder" not in layers  # the tied weight counts once, under its first module (as named_parameters)
    _assert_matches_oracle(TiedEmbeddings(), torch.randint(0, 7, (4, 5)), torch.tensor([0, 1, 2, 1]))
    _assert_matches_oracle(Shared(), torch.randn(4, 3), torch.tensor([0, 1, 2, 1]))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.mix = nn.Linear(3, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.mix(self.embed(ids)) @ self.embed.weight.T  # output projection tied to the embedding


@pytest.mark.parametrize(
    ("model", "x", "match"),
    [
        (nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2, track_running_stats=False)), torch.randn(2, 3), "batch"),
        (nn.Sequential(nn.Embedding(5, 2, max_norm=1.0), nn.Flatten()), torch.tensor([[1], [2]]), "max_norm"),
        (SharedReplayed(), torch.randn(2, 3), "'layer' .*called 2 times.*no closed-form rule"),
        (Tied(), torch.tensor([1, 2]), "'embed.weight' enters the graph 2 times but only 1"),
    ],
)
def test_silent_errors_are_refused(model, x, match):
    with pytest.raises(UnsupportedModuleError, match=match):
        per_example_grad_norms(model, x, torch.tensor([0, 1]))
    _assert_clean(model, training=True)


# -------------------------------------------------------------------------------------------------- side effects


def _assert_clean(model: nn.Module, *, training: bool | dict[str, bool]) -> None:
    for name, module in model.named_modules():
        expected = training if isinstance(training, bool) else training[name]
        assert module.training == expected, name
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks, name
    assert all(p.grad is None for p in model.parameters())


def test_flags_hooks_and_grads_are_restored_and_eval_mode_is_used():
    model = _randomize_norm_layers(build_model("cnn", num_classes=3, in_channels=1, image_size=8, width=0.25))
    model.train()
    model.features[1].eval()  # a mixed state must come back as it was
    flags = {name: m.training for name, m in model.named_modules()}
    stats = model.features[1].running_mean.clone()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    norms = per_example_grad_norms(model, x, y)
    _assert_clean(model, training=flags)
    torch.testing.assert_close(model.features[1].running_mean, stats)  # eval mode: running stats untouched
    model.eval()
    torch.testing.assert_close(norms, naive_grad_norms(model, x, y), rtol=RTOL, atol=0)


def test_works_under_no_grad_and_inference_mode_and_keeps_float32():
    model = build_model("mlp", num_classes=3, in_channels=1, image_size=4, width=0.1).float()
    x, y = torch.randn(3, 1, 4, 4, dtype=torch.float32), torch.tensor([0, 1, 2])
    with torch.inference_mode():
        x_inf = x.clone()
    with torch.no_grad():
        a = per_example_grad_norms(model, x_inf, y)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, naive_grad_norms(model, x, y), rtol=1e-5, atol=0)


def test_example_independence_matches_single_example_calls():
    model = _randomize_norm_layers(build_model("cnn", num_classes=3, in_channels=1, image_size=8, width=0.25))
    x, y = torch.randn(3, 1, 8, 8), torch.tensor([2, 0, 1])
    batch = per_example_grad_norms(model, x, y)
    singles = torch.cat([per_example_grad_norms(model, x[i : i + 1], y[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"targets": torch.tensor([0, 1])}, r"targets must be a tensor of shape \[3\]"),
        ({"targets": torch.tensor([0.0, 1.0, 1.0])}, "integer class labels"),
        ({"chunk_size": 0}, "chunk_size must be a positive int or None, got 0"),
        ({"inputs": torch.randn(0, 1, 4, 4), "targets": torch.zeros(0, dtype=torch.long)}, "N >= 1"),
        ({"inputs": {"a": torch.randn(3, 2), "b": torch.randn(2, 2)}}, r"same batch size in dim 0"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    model = build_model("mlp", num_classes=3, in_channels=1, image_size=4, width=0.1)
    args = {"inputs": torch.randn(3, 1, 4, 4), "targets": torch.tensor([0, 1, 2])} | kwargs
    with pytest.raises(ValueError, match=match):
        per_example_grad_norms(model, args.pop("inputs"), args.pop("targets"), **args)


def test_non_logit_output_and_frozen_model_are_rejected():
    with pytest.raises(ValueError, match=r"logits of shape \[N=2, K\], got \(2, 3, 1\)"):
        per_example_grad_norms(
            nn.Sequential(nn.Linear(4, 3), nn.Unflatten(1, (3, 1))), torch.randn(2, 4), torch.tensor([0, 1])
        )
    with pytest.raises(ValueError, match="no trainable parameters"):
        per_example_grad_norms(nn.Linear(4, 3).requires_grad_(False), torch.randn(2, 4), torch.tensor([0, 1]))


# -------------------------------------------------------------------------------------------- optional BackPACK


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # BackPACK's own hooks
def test_matches_backpack_batch_l2_grad_when_installed():
    backpack = pytest.importorskip("backpack")
    from backpack.extensions import BatchL2Grad

    model = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 9, 4))
    x, y = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    model = backpack.extend(model)
    loss_fn = backpack.extend(nn.CrossEntropyLoss(reduction="sum"))
    with backpack.backpack(BatchL2Grad()):
        loss_fn(model(x), y).backward()
    expected = sum(p.batch_l2 for p in model.parameters()).sqrt()
    model.zero_grad(set_to_none=True)
    torch.testing.assert_close(per_example_grad_norms(model, x, y), expected, rtol=RTOL, atol=0)
