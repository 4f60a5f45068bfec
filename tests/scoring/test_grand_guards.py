"""Every case issue 12 lists as silently wrong for hook-based per-example norms: exact now, or a clear refusal that
names the module, the reason and the fix. Float64 against the per-example loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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


Y = torch.tensor([0, 1, 2, 1])


# ------------------------------------------------------------------------------------ shared by the batch: exact


class Positions(nn.Module):
    """Token embedding plus a positional embedding looked up once for the whole batch."""

    def __init__(self, lookup: str):
        super().__init__()
        self.lookup = lookup
        self.tokens, self.positions = nn.Embedding(9, 4), nn.Embedding(8, 4)
        self.mix, self.head = nn.Linear(4, 4), nn.Linear(4, 3)
        self.register_buffer("position_ids", torch.arange(8)[None])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if self.lookup == "arange[None]":
            pos = self.positions(torch.arange(t)[None])  # [1, T, D], broadcast over the batch
        elif self.lookup == "arange":
            pos = self.positions(torch.arange(t))  # [T, D]: no batch dim at all
        else:
            pos = self.positions(self.position_ids[:, :t])  # a buffer slice, as BERT does
        return self.head(torch.tanh(self.mix(self.tokens(ids) + pos)).mean(1))


@pytest.mark.parametrize("length", [3, 4])  # 4 == batch size: shapes alone cannot tell [T, D] from [N, D]
@pytest.mark.parametrize("lookup", ["arange[None]", "arange", "buffer"])
def test_positional_embedding_shared_by_the_batch_is_exact(lookup, length):
    _assert_matches_oracle(Positions(lookup), torch.randint(0, 9, (4, length)), Y)


def test_learned_parameter_broadcast_over_the_batch_is_exact():
    class ClassToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls = nn.Parameter(torch.randn(1, 1, 4))
            self.proj, self.head = nn.Linear(3, 4), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.proj(x)], 1)
            return self.head(torch.tanh(h).mean(1))

    _assert_matches_oracle(ClassToken(), torch.randn(4, 5, 3), Y)


# ------------------------------------------------------------------------------------------------ sequence first


class SeqFirstLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.head = nn.Linear(3, 3), nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, T, 3] turned into [T, N, 3]
        return self.head(torch.tanh(self.a(x.transpose(0, 1))).mean(0))


def test_sequence_first_with_length_equal_to_batch_is_refused_by_the_self_check():
    with pytest.raises(UnsupportedModuleError, match=r"self-check failed.*'a'.*sequence-first.*Fix: keep dim 0"):
        per_example_grad_norms(SeqFirstLinear(), torch.randn(4, 4, 3), Y)


def test_sequence_first_with_other_length_is_refused_naming_the_module():
    with pytest.raises(UnsupportedModuleError, match=r"'a' \(Linear\).*batch dim 0 has size 5, not the batch size 4"):
        per_example_grad_norms(SeqFirstLinear(), torch.randn(4, 5, 3), Y)


def test_sequence_first_torch_transformer_layer_with_length_equal_to_batch_is_exact():
    class SeqFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(4, 2, 8, batch_first=False)
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.layer(x.transpose(0, 1))[0])

    _assert_matches_oracle(SeqFirst(), torch.randn(4, 4, 4), Y)


def test_rows_merged_across_examples_are_refused():
    class Merged(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.head = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.tanh(self.a(x.reshape(-1, 3))).view(x.shape[0], -1, 3).mean(1))

    with pytest.raises(UnsupportedModuleError, match=r"'a' \(Linear\).*size 20, not the batch size 4.*Fix"):
        per_example_grad_norms(Merged(), torch.randn(4, 5, 3), Y)


@pytest.mark.parametrize("permute", ["flip", "roll", "randperm"])
def test_rows_permuted_inside_the_model_are_refused(permute):
    class Permuted(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            order = {
                "flip": torch.arange(n).flip(0),
                "roll": torch.arange(n).roll(1),
                "randperm": torch.tensor([2, 0, 3, 1]),
            }
            perm = order[permute][:n] if n > 1 else torch.zeros(1, dtype=torch.long)
            h = torch.tanh(self.a(x))[perm]
            return self.b(h)[perm.argsort()]

    with pytest.raises(UnsupportedModuleError, match=r"self-check failed.*'b'.*rows are permuted.*Fix"):
        per_example_grad_norms(Permuted(), torch.randn(4, 3), Y)


# ------------------------------------------------------------------------------------------------ batch statistics


@pytest.mark.parametrize("variant", ["frozen_affine", "no_affine", "trainable"])
def test_batchnorm_without_running_stats_is_refused_whatever_its_parameters(variant):
    bn = nn.BatchNorm1d(4, affine=variant != "no_affine", track_running_stats=False)
    if variant == "frozen_affine":
        bn.requires_grad_(False)
    model = nn.Sequential(nn.Linear(3, 4), bn, nn.Linear(4, 3))
    with pytest.raises(UnsupportedModuleError, match=r"'1' \(BatchNorm1d\) has track_running_stats=False") as info:
        per_example_grad_norms(model, torch.randn(4, 3), Y)
    message = str(info.value)
    assert "track_running_stats=True" in message and "requires_grad_(False)" not in message


# --------------------------------------------------------------------------------------- overrides, hooks, no_grad


class ScaledConv(nn.Conv2d):
    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return super()._conv_forward(x, weight * weight.abs(), bias)


class StandardizedConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        return self._conv_forward(x, w, self.bias)


@pytest.mark.parametrize("cls", [ScaledConv, StandardizedConv])
def test_conv_subclass_overriding_conv_forward_or_forward_is_exact(cls):
    model = nn.Sequential(cls(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 9, 3))
    _assert_matches_oracle(model, torch.randn(4, 2, 5, 5), Y)


@pytest.mark.parametrize("edit", ["replace", "in_place", "pre_hook"])
def test_user_hooks_that_edit_a_layer_are_exact(edit):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    if edit == "replace":
        model[0].register_forward_hook(lambda m, args, out: out * 3.0 + 1.0)
    elif edit == "in_place":
        model[2].register_forward_hook(lambda m, args, out: out.mul_(2.0))
    else:
        model[2].register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))
    _assert_matches_oracle(model, torch.randn(4, 3), Y)


def test_global_forward_hooks_are_refused():
    handle = nn.modules.module.register_module_forward_hook(lambda m, args, out: None)
    try:
        with pytest.raises(UnsupportedModuleError, match="Global forward hooks.*Remove them"):
            per_example_grad_norms(nn.Linear(3, 3), torch.randn(4, 3), Y)
    finally:
        handle.remove()


def test_module_run_under_no_grad_then_used_through_f_linear_is_refused():
    class NoGrad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                self.a(x)  # e.g. a statistics pass
            return self.b(torch.tanh(F.linear(x, self.a.weight, self.a.bias)))

    with pytest.raises(UnsupportedModuleError, match=r"'a.weight' enters the graph 1 times but only 0.*no_grad.*Fix"):
        per_example_grad_norms(NoGrad(), torch.randn(4, 3), Y)


def test_module_run_under_no_grad_and_again_with_grad_is_exact():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                teacher = self.a(x)
            return self.b(torch.tanh(self.a(x)) + teacher)

    _assert_matches_oracle(Twice(), torch.randn(4, 3), Y)


def test_self_check_runs_once_per_model_and_can_be_skipped():
    class Flip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.tanh(self.a(x)).flip(0)).flip(0)

    x = torch.randn(4, 3)
    per_example_grad_norms(Flip(), x, Y, verify=False)  # skipped: no error (and no guarantee)
    model = Flip()
    with pytest.raises(UnsupportedModuleError, match="self-check"):
        per_example_grad_norms(model, x, Y)
