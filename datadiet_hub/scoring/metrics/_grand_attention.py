"""``nn.MultiheadAttention`` as four Linear maps around the attention, so GraNd needs no per-example replay.

Its parameters are all linear maps: the packed input projection (``q = x_q W_q^T + b_q``, same for k and v, with
``W_q, W_k, W_v`` the three row blocks of ``in_proj_weight``) and ``out_proj``. A linear map's per-example squared
gradient norm follows from its input and its output gradient (the Linear rule), and the three row blocks of
``in_proj_weight`` are disjoint, so their squared norms add. The forward hook recomputes the module's output in
this decomposed form, with a gradient hook on each projection, and hands it downstream instead of the fused one
(same function; the fused output is dropped with its graph). Configurations outside the common one (separate
k/v dims, ``add_bias_kv``, ``add_zero_attn``, per-head masks, subclasses) keep the exact replay.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from datadiet_hub.scoring.metrics._grand_layers import _matmul_sq_norms, _slices, linear_use_ghost

_SIGNATURE = inspect.signature(nn.MultiheadAttention.forward)


def linear_parts_sq_norms(a: torch.Tensor, g: torch.Tensor, weight: bool, bias: bool) -> torch.Tensor:
    """Per-example squared norm of a linear map's weight (and bias) gradient from input [n, *, d] and output grad."""
    n = a.shape[0]
    a, g = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])
    positions, d, p = a.shape[1], a.shape[2], g.shape[2]
    out = a.new_zeros(n)
    if weight:
        ghost = linear_use_ghost(positions, d, p)
        per_example = (2 * positions * positions if ghost else d * p) * a.element_size()
        for s in _slices(n, per_example):
            out[s] += _matmul_sq_norms(a[s], g[s], ghost)
    if bias:
        out += g.sum(1).square().sum(1)
    return out


def bind(args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name, defaults filled in."""
    bound = _SIGNATURE.bind(None, *args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def decomposable(module: nn.Module, call: dict[str, Any], batched: Callable[[torch.Tensor], bool], n: int) -> bool:
    """Whether this call of ``module`` is the common configuration the decomposed form reproduces exactly."""
    if type(module) is not nn.MultiheadAttention or not module._qkv_same_embed_dim:
        return False
    if module.bias_k is not None or module.add_zero_attn:
        return False
    seq = 0 if module.batch_first else 1
    for name in ("query", "key", "value"):
        t = call[name]
        if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[seq] != n or not batched(t):
            return False
    mask, pad = call["attn_mask"], call["key_padding_mask"]
    if mask is not None and (mask.dim() != 2 or batched(mask)):
        return False
    if pad is not None and (pad.dim() != 2 or pad.shape[0] != n):
        return False
    return not (call["is_causal"] and mask is None)


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def decomposed_forward(
    module: nn.MultiheadAttention,
    call: dict[str, Any],
    hook: Callable[[torch.Tensor, torch.Tensor, str, bool, bool], None],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The module's ``(output, weights)``, computed with hooked projections; ``hook(output, input, owner, w, b)``.

    ``owner`` is ``""`` for the input projection and ``"out_proj"`` for the output projection; ``weight`` and
    ``bias`` say which of that map's parameters are trainable.
    """
    seq_first = not module.batch_first
    q_in, k_in, v_in = (call[name].transpose(0, 1) if seq_first else call[name] for name in ("query", "key", "value"))
    n, length, dim = q_in.shape
    heads = module.num_heads
    w, b = module.in_proj_weight, module.in_proj_bias
    w_parts = w.chunk(3)
    b_parts = b.chunk(3) if b is not None else (None, None, None)
    train_w, train_b = w.requires_grad, b is not None and b.requires_grad
    projected = []
    for x, w_part, b_part in zip((q_in, k_in, v_in), w_parts, b_parts, strict=True):
        y = F.linear(x, w_part, b_part)
        hook(y, x, "", train_w, train_b)
        projected.append(y.view(n, -1, heads, dim // heads).transpose(1, 2))
    # As F.multi_head_attention_forward does: ``is_causal`` declares ``attn_mask`` the causal mask, which SDPA then
    # applies itself (its fused kernels; a materialized -inf mask sends it down the slower math path).
    causal = bool(call["is_causal"]) and call["key_padding_mask"] is None and not call["need_weights"]
    mask = None
    if call["attn_mask"] is not None and not causal:
        mask = _additive(call["attn_mask"], q_in.dtype).view(1, 1, *call["attn_mask"].shape)
    if call["key_padding_mask"] is not None:
        pad = _additive(call["key_padding_mask"], q_in.dtype).view(n, 1, 1, -1)
        mask = pad if mask is None else mask + pad
    weights = None
    q, k, v = projected
    if call["need_weights"]:  # explicit softmax, as the module does when it returns the weights
        scores = (q * (1.0 / (dim // heads)) ** 0.5) @ k.transpose(-1, -2)
        probs = (scores if mask is None else scores + mask).softmax(-1)
        ctx = probs @ v
        weights = probs.mean(1) if call["average_attn_weights"] else probs
    else:
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    ctx = ctx.transpose(1, 2).reshape(n, length, dim)
    proj = module.out_proj
    out = F.linear(ctx, proj.weight, proj.bias)
    hook(out, ctx, "out_proj", proj.weight.requires_grad, proj.bias is not None and proj.bias.requires_grad)
    return (out.transpose(0, 1) if seq_first else out), weights
