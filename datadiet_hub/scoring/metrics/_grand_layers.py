"""Per-layer rules for exact per-example squared gradient norms from a layer's input and its output gradient.

Each rule gets the layer input ``a`` (as seen by the layer's forward) and the gradient ``g`` of the *batch-sum* loss
with respect to the layer output. Because the model runs in eval mode (no coupling between examples), row ``i`` of
``g`` is exactly the gradient of example ``i``'s own loss, so the per-example weight gradient is a function of
``a[i]`` and ``g[i]`` alone.

For a linear map applied at ``T`` positions (a conv's output pixels, a sequence's tokens) with input patches
``A`` (T x d) and output gradients ``G`` (T x p), the per-example weight gradient is ``A^T G`` and its squared norm
can be computed two ways:

- *materialize*: form ``A^T G`` (d x p per example) and square it; cost ~ T*d*p, memory d*p;
- *ghost*: ``sum_{t,t'} (A A^T)_{tt'} (G G^T)_{tt'}``; cost ~ T^2*(d+p), memory 2*T^2.

A convolution with zero padding has a third way, the *input Gram*: the patch Gram ``A A^T`` is a sum, over the
kernel offsets, of shifted windows of the input's own position Gram ``X X^T`` (S x S over the S input positions, C
channels), so ``sum_k <shift_k(X X^T), G G^T>`` needs neither an im2col copy nor the ``d = C * prod(kernel)``-wide
product; cost ~ S^2*C + T^2*p. It is the cheapest for late, small-image stages (ResNet-18 stages 2-4 at CIFAR size).

:func:`linear_use_ghost` picks between the first two for a linear map, :func:`conv_method` among all three for a
convolution, from the shapes alone. Work is done over slices of the batch so that the temporaries (unfolded patches,
Gram matrices or materialized gradients) stay under :data:`WORKSPACE_BYTES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

#: Upper bound, in bytes, on the temporaries a rule allocates at once (patches + Gram or per-example gradients).
#: One example is always processed even if it alone exceeds the bound. Slices that stay in the CPU caches run faster:
#: lowering it from 48 MiB to 8 MiB cut GraNd's cost on the CIFAR ResNet-18 (docs/performance.md, issue 22).
WORKSPACE_BYTES = 8 * 2**20


class UnsupportedModuleError(TypeError):
    """A module owns trainable parameters whose per-example gradients the fast GraNd path cannot compute exactly."""


ELEMENT_COST = 64
"""Multiply-adds one element of a temporary is costed as when it is written and then squared and summed
(memory-bound work next to a matrix product's)."""


def linear_use_ghost(positions: int, in_features: int, out_features: int) -> bool:
    """Whether the ghost form is cheaper for a Linear layer applied at ``positions`` tokens (ghost ~ T^2*(d+p)
    multiply-adds per example against T*d*p materialized), counting the temporaries too: the
    materialized gradients (``d*p`` per example) are squared and summed after their product, the Gram matrices
    (``T^2`` each) multiplied and summed. Near ``T*(d+p) = d*p`` this decides: a language model's output layer at
    T=128 (d=128, p=8000) takes the Gram form, which made GraNd's cost there drop from 1.30x to 1.05x of a forward +
    backward together with the causal attention change (benchmarks/results/lm_scoring_cpu_before.txt, then
    lm_scoring_cpu_clock.txt: CPU time, one thread); at T=512 it
    stays materialized."""
    t, d, p = positions, in_features, out_features
    return t * t * (d + p) + ELEMENT_COST * t * t <= t * d * p + ELEMENT_COST * d * p


def _slices(n: int, bytes_per_example: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` whose temporaries fit in :data:`WORKSPACE_BYTES`."""
    step = max(1, WORKSPACE_BYTES // max(1, bytes_per_example))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _matmul_sq_norms(a: torch.Tensor, g: torch.Tensor, ghost: bool) -> torch.Tensor:
    """Squared Frobenius norm of ``a[i]^T g[i]`` summed over every leading dim but the first.

    ``a`` is [n, ..., T, d] and ``g`` is [n, ..., T, p] (the ``...`` dims are conv groups).
    """
    if ghost:
        gram_a = a @ a.transpose(-1, -2)
        gram_g = g @ g.transpose(-1, -2)
        return (gram_a * gram_g).flatten(1).sum(1)
    grads = a.transpose(-1, -2) @ g
    return grads.flatten(1).square().sum(1)


# --------------------------------------------------------------------------------------------------------- linear


def linear_sq_norms(module: nn.Linear, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``nn.Linear`` on input [n, *, d]: weight gradient is sum over the ``*`` positions of ``g_t a_t^T``."""
    n = a.shape[0]
    a = a.reshape(n, -1, a.shape[-1])
    g = g.reshape(n, -1, g.shape[-1])
    positions, d, p = a.shape[1], a.shape[2], g.shape[2]
    out = a.new_zeros(n)
    if module.weight.requires_grad:
        if positions == 1:
            # ||a g^T||^2 = ||a||^2 ||g||^2: the ghost identity with T = 1, no temporaries.
            out += a.square().sum((1, 2)) * g.square().sum((1, 2))
        else:
            ghost = linear_use_ghost(positions, d, p)
            per_example = (2 * positions * positions if ghost else d * p) * a.element_size()
            for s in _slices(n, per_example):
                out[s] += _matmul_sq_norms(a[s], g[s], ghost)
    if module.bias is not None and module.bias.requires_grad:
        out += g.sum(1).square().sum(1)
    return out


# ----------------------------------------------------------------------------------------------------------- conv


def _patches(module: nn.modules.conv._ConvNd, a: torch.Tensor) -> torch.Tensor:
    """im2col: input [n, C, *spatial] -> patches [n, C * prod(kernel), T], in the layout of ``weight.flatten(1)``."""
    nd = a.dim() - 2
    zero_pad = module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if zero_pad and nd in (1, 2):
        if nd == 1:  # as a 2-D conv of height 1, so the fast F.unfold applies
            return F.unfold(
                a.unsqueeze(2),
                (1, module.kernel_size[0]),
                dilation=(1, module.dilation[0]),
                padding=(0, int(module.padding[0])),
                stride=(1, module.stride[0]),
            )
        padding = tuple(int(p) for p in module.padding)
        return F.unfold(a, module.kernel_size, dilation=module.dilation, padding=padding, stride=module.stride)
    # Generic path (3-D, 'same' padding, reflect/replicate/circular): pad as the module does, then strided windows.
    # ``_reversed_padding_repeated_twice`` is what ConvNd itself uses to pad (it also encodes asymmetric 'same').
    a = _pad_like_module(module, a)
    for i in range(nd):
        span = module.dilation[i] * (module.kernel_size[i] - 1) + 1
        a = a.unfold(2 + i, span, module.stride[i])
    # a: [n, C, O_1..O_nd, span_1..span_nd]; keep every dilation-th tap of each window.
    taps: tuple[Any, ...] = (Ellipsis, *(slice(None, None, module.dilation[i]) for i in range(nd)))
    a = a[taps]
    n, c = a.shape[:2]
    out_dims = list(range(2, 2 + nd))
    k_dims = list(range(2 + nd, 2 + 2 * nd))
    return a.permute(0, 1, *k_dims, *out_dims).reshape(n, c * math.prod(module.kernel_size), -1)


PER_EXAMPLE_CALL_MACS = 4_000_000
"""Per-example weight-gradient work (``T*d*p`` multiply-adds) above which one weight-gradient convolution per
example beats a single call with the batch folded into the groups on the CPU: by up to 10% on the ResNet-18's stage-1
layers when contiguous, by 25-50% when channels-last (``benchmarks/results/grand_conv_methods_*.txt``, one thread);
below it the per-call overhead dominates."""


COPY_ELEMENTS = 32_768
"""Elements per example of a channels-last layer's input and output gradient above which copying them to fold the
batch into the channels costs more than one call per example (the CIFAR ResNet-18's first convolution and strided
shortcut, a depthwise layer; the small CNN's 16-channel layers stay below)."""


def per_example_calls(a: torch.Tensor, g: torch.Tensor, macs: int) -> bool:
    """Whether to form the per-example weight gradients of a layer (input ``a``, output gradient ``g``, ``macs``
    multiply-adds per example) with one call per example rather than one call with the batch as groups."""
    if a.device.type != "cpu":
        return False
    if macs >= PER_EXAMPLE_CALL_MACS:
        return True
    copied = not (a.is_contiguous() and g.is_contiguous())
    return copied and a[0].numel() + g[0].numel() >= COPY_ELEMENTS


def _materialized_sq_norms(module: nn.modules.conv._ConvNd, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Squared norms of the per-example weight gradients, each formed by the backend's weight-gradient convolution.

    Two ways, both without an im2col copy: one call per example, or one call with the batch folded into the channel
    dim (``[1, m*C, ...]`` with ``groups = m * module.groups``). On the CPU the per-example calls win for large
    layers, and for channels-last tensors of many elements: folding the batch into the channels of a channels-last
    tensor needs a copy of both the input and the gradient. On a GPU, where each call is a kernel launch, one call
    does (not measured).
    """
    m, nd = a.shape[0], a.dim() - 2
    padding = list(module.padding) if not isinstance(module.padding, str) else [0] * nd
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        a = _pad_like_module(module, a)
        padding = [0] * nd
    weight = module.weight
    geometry = (list(module.stride), padding, list(module.dilation), False, [0] * nd)
    macs = g[0, 0].numel() * weight[0].numel() * weight.shape[0] // module.groups
    if per_example_calls(a, g, macs):
        out = a.new_empty(m)
        for i in range(m):
            grad = torch.ops.aten.convolution_backward(
                g[i : i + 1], a[i : i + 1], weight, None, *geometry, module.groups, [False, True, False]
            )[1].flatten()
            out[i] = torch.linalg.vecdot(grad, grad)
        return out
    grads = torch.ops.aten.convolution_backward(
        g.reshape(1, m * g.shape[1], *g.shape[2:]),
        a.reshape(1, m * a.shape[1], *a.shape[2:]),
        weight.new_zeros(()).expand(m * weight.shape[0], *weight.shape[1:]),  # only its shape is read
        None,
        *geometry,
        m * module.groups,
        [False, True, False],
    )[1].reshape(m, -1)
    return torch.linalg.vecdot(grads, grads)


def _pad_like_module(module: nn.modules.conv._ConvNd, a: torch.Tensor) -> torch.Tensor:
    """Pad as the module's forward does; ``_reversed_padding_repeated_twice`` also encodes asymmetric 'same'."""
    pad = list(module._reversed_padding_repeated_twice)
    if not any(pad):
        return a
    return F.pad(a, pad, mode="constant" if module.padding_mode == "zeros" else module.padding_mode)


ConvMethod = Literal["materialize", "ghost", "input_gram"]

CONV_ELEMENT_COST = 8
"""Multiply-adds one element of a convolution rule's memory-bound temporaries (im2col copies, padded and shifted
Gram windows) is costed as; fitted to per-layer timings of the three methods on one CPU thread
(``benchmarks/grand_conv_methods.py``)."""

IM2COL_ELEMENT_COST = 24
"""The same for one element of an im2col copy: a strided gather, dearer than a contiguous pass."""


def input_gram_applies(module: nn.modules.conv._ConvNd) -> bool:
    """The input-Gram method needs zero padding: padded positions then add zero rows and columns to ``X X^T``."""
    return module.padding_mode == "zeros" and not module.transposed


def conv_costs(
    module: nn.modules.conv._ConvNd, in_spatial: tuple[int, ...], out_spatial: tuple[int, ...]
) -> dict[ConvMethod, int]:
    """Estimated multiply-adds per example of each applicable method for one convolution call (see the module doc)."""
    groups = module.groups
    c_group = module.in_channels // groups
    p_group = module.out_channels // groups
    d_group = c_group * math.prod(module.kernel_size)
    t = math.prod(out_spatial)
    e = CONV_ELEMENT_COST
    costs: dict[ConvMethod, int] = {
        "materialize": groups * (t * d_group * p_group + e * d_group * p_group),
        "ghost": groups * (t * t * (d_group + p_group) + IM2COL_ELEMENT_COST * d_group * t + e * t * t),
    }
    if input_gram_applies(module):
        costs["input_gram"] = groups * (_input_gram_cost(module, in_spatial, out_spatial, c_group, p_group))
    return costs


def _input_gram_cost(
    module: nn.modules.conv._ConvNd, in_spatial: tuple[int, ...], out_spatial: tuple[int, ...], c: int, p: int
) -> int:
    s, t = math.prod(in_spatial), math.prod(out_spatial)
    padded = _padded(module, in_spatial)
    elements = math.prod(padded) ** 2  # the padded Gram
    dims = list(padded)
    for i, k in enumerate(module.kernel_size):  # one windowed sum per spatial dim: k adds over the shrinking array
        dims[i] = out_spatial[i]
        elements += k * math.prod(dims) ** 2
    return s * s * c + t * t * p + CONV_ELEMENT_COST * (elements + t * t)


def _padded(module: nn.modules.conv._ConvNd, in_spatial: tuple[int, ...]) -> list[int]:
    """Input spatial sizes after the module's padding (``_reversed_padding_repeated_twice`` lists the last dim first)."""
    pad = module._reversed_padding_repeated_twice
    nd = len(in_spatial)
    return [size + pad[2 * (nd - 1 - i)] + pad[2 * (nd - 1 - i) + 1] for i, size in enumerate(in_spatial)]


def conv_method(
    module: nn.modules.conv._ConvNd, in_spatial: tuple[int, ...], out_spatial: tuple[int, ...]
) -> ConvMethod:
    """The cheapest exact method for one convolution call, by :func:`conv_costs`."""
    costs = conv_costs(module, in_spatial, out_spatial)
    return min(costs, key=costs.__getitem__)


def _input_gram_sq_norms(module: nn.modules.conv._ConvNd, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum_k <shift_k(X X^T), G G^T>`` per example, for an input slice ``a`` [m, C, *S] and ``g`` [m, P, *T].

    The padded input Gram over position pairs is summed over each spatial dim's kernel taps in turn (a window of
    stride ``stride`` starting at ``tap * dilation``, taken on both positions of the pair at once), which leaves the
    patch Gram ``A A^T`` of the im2col form without building the patches.
    """
    m, nd, groups = a.shape[0], a.dim() - 2, module.groups
    in_spatial, out_spatial = tuple(a.shape[2:]), tuple(g.shape[2:])
    x = a.reshape(m, groups, a.shape[1] // groups, -1)
    y = g.reshape(m, groups, g.shape[1] // groups, -1)
    gram = (x.transpose(-1, -2) @ x).view(m * groups, *in_spatial, *in_spatial)
    pad = list(module._reversed_padding_repeated_twice)
    if any(pad):
        gram = F.pad(gram, pad + pad)
    for i in range(nd):
        taps = []
        for k in range(module.kernel_size[i]):
            start = k * module.dilation[i]
            window = slice(start, start + module.stride[i] * (out_spatial[i] - 1) + 1, module.stride[i])
            index: list[Any] = [slice(None)] * gram.dim()
            index[1 + i] = index[1 + nd + i] = window
            taps.append(gram[tuple(index)])
        gram = taps[0].clone() if len(taps) > 1 else taps[0]
        for tap in taps[1:]:
            gram += tap
    gram_out = y.transpose(-1, -2) @ y
    return torch.linalg.vecdot(gram.reshape(m, -1), gram_out.reshape(m, -1))


def conv_sq_norms(
    module: nn.modules.conv._ConvNd, a: torch.Tensor, g: torch.Tensor, method: ConvMethod | None = None
) -> torch.Tensor:
    """``nn.Conv{1,2,3}d`` with any stride, padding (and padding mode), dilation and groups, per batch slice.

    ``method`` forces one method (tests, benchmarks). By default :func:`conv_method` picks from the shapes: the
    input Gram (:func:`_input_gram_sq_norms`) for few input positions with zero padding, the ghost form on im2col
    patches for few output positions otherwise, and per-example weight gradients from
    :func:`_materialized_sq_norms` for early, large-image layers.
    """
    n, groups = a.shape[0], module.groups
    out_channels = g.shape[1]
    in_spatial, out_spatial = tuple(a.shape[2:]), tuple(g.shape[2:])
    positions = math.prod(out_spatial)
    out = a.new_zeros(n)
    if module.weight.requires_grad:
        d_group = module.weight[0].numel()  # (C / groups) * prod(kernel)
        p_group = out_channels // groups
        method = method or conv_method(module, in_spatial, out_spatial)
        if method == "input_gram" and not input_gram_applies(module):
            raise ValueError(f"the input-Gram method needs zero padding, got padding_mode={module.padding_mode!r}")
        if method == "input_gram":
            per_example = groups * (2 * math.prod(_padded(module, in_spatial)) ** 2 + 2 * positions * positions)
        elif method == "ghost":
            per_example = groups * (2 * positions * positions + d_group * positions)
        else:
            per_example = groups * d_group * p_group
        for s in _slices(n, per_example * a.element_size()):
            m = s.stop - s.start
            if method == "input_gram":
                out[s] += _input_gram_sq_norms(module, a[s], g[s])
            elif method == "ghost":
                patches = _patches(module, a[s]).reshape(m, groups, d_group, positions).transpose(-1, -2)
                grads = g[s].reshape(m, groups, p_group, positions).transpose(-1, -2)  # [m, G, T, pg]
                out[s] += _matmul_sq_norms(patches, grads, ghost=True)
            else:
                out[s] += _materialized_sq_norms(module, a[s], g[s])
    if module.bias is not None and module.bias.requires_grad:
        out += g.reshape(n, out_channels, -1).sum(2).square().sum(1)
    return out


# ----------------------------------------------------------------------------------------------- normalizations


def _affine_sq_norms(module: nn.Module, x_hat: torch.Tensor, g: torch.Tensor, param_dim: int) -> torch.Tensor:
    """Affine ``y = x_hat * w + b`` with ``w``, ``b`` indexed by dims ``1..param_dim``; sums over the other dims."""
    n = g.shape[0]
    out = g.new_zeros(n)
    if module.weight is not None and module.weight.requires_grad:
        out += _sum_to_param(x_hat * g, param_dim).square().flatten(1).sum(1)
    if module.bias is not None and module.bias.requires_grad:
        out += _sum_to_param(g, param_dim).square().flatten(1).sum(1)
    return out


def _sum_to_param(t: torch.Tensor, param_dim: int) -> torch.Tensor:
    dims = tuple(range(1 + param_dim, t.dim()))
    return t.sum(dims) if dims else t


def batchnorm_sq_norms(module: nn.modules.batchnorm._BatchNorm, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """BatchNorm in eval mode: ``x_hat = (x - running_mean) / sqrt(running_var + eps)`` is per-example."""
    n, c = a.shape[:2]
    a, g = a.reshape(n, c, -1), g.reshape(n, c, -1)
    assert module.running_mean is not None and module.running_var is not None  # refused earlier otherwise
    inv_std = torch.rsqrt(module.running_var.to(a.dtype) + module.eps)
    out = a.new_zeros(n)
    g_sum = g.sum(2)
    if module.weight is not None and module.weight.requires_grad:
        # sum_t x_hat_t g_t = inv_std * (sum_t x_t g_t - mean * sum_t g_t): one pass over the activations.
        xg = torch.linalg.vecdot(a, g)  # one fused pass; einsum goes through bmm here, ~2x slower on CPU
        out += ((xg - module.running_mean.to(a.dtype) * g_sum) * inv_std).square().sum(1)
    if module.bias is not None and module.bias.requires_grad:
        out += g_sum.square().sum(1)
    return out


def layernorm_sq_norms(module: nn.LayerNorm, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """LayerNorm normalizes within each example, so ``x_hat`` is recomputed from the input alone."""
    shape = module.normalized_shape
    x_hat = F.layer_norm(a, shape, eps=module.eps)
    n = a.shape[0]
    lead = a.shape[1 : a.dim() - len(shape)]
    x_hat = x_hat.reshape(n, math.prod(lead), -1).transpose(1, 2)  # [n, prod(shape), positions]
    g = g.reshape(n, math.prod(lead), -1).transpose(1, 2)
    return _affine_sq_norms(module, x_hat, g, 1)


def groupnorm_sq_norms(module: nn.GroupNorm, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """GroupNorm normalizes within each example; weight and bias are per channel."""
    x_hat = F.group_norm(a, module.num_groups, eps=module.eps)
    n, c = a.shape[:2]
    return _affine_sq_norms(module, x_hat.reshape(n, c, -1), g.reshape(n, c, -1), 1)


# ----------------------------------------------------------------------------------------------------- embedding


def embedding_sq_norms(module: nn.Embedding, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``nn.Embedding``: rows hit by several tokens add up, so use the ghost form with an index-equality Gram."""
    n = a.shape[0]
    idx = a.reshape(n, -1)
    g = g.reshape(n, idx.shape[1], -1)
    if module.padding_idx is not None:  # the padding row never receives gradient
        g = g * (idx != module.padding_idx).unsqueeze(-1).to(g.dtype)
    positions = idx.shape[1]
    out = g.new_zeros(n)
    if not module.weight.requires_grad:
        return out
    for s in _slices(n, 3 * positions * positions * g.element_size()):
        same = (idx[s].unsqueeze(2) == idx[s].unsqueeze(1)).to(g.dtype)
        out[s] += ((g[s] @ g[s].transpose(1, 2)) * same).flatten(1).sum(1)
    return out


def embedding_bag_sq_norms(module: nn.EmbeddingBag, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``nn.EmbeddingBag`` (``sum`` or ``mean``) called on ``[N, L]`` ids alone: example n's output is
    ``sum_j c_nj W[a_nj]`` (``c = 1``, or ``1 / its non-padding count`` for ``mean``; 0 at ``padding_idx``), so row u
    of its weight gradient is ``(sum of c_nj over the positions holding u) * g_n`` and the squared norm is
    ``||g_n||^2 * sum_u (that sum)^2``: one sort of the ids, no per-example gradient."""
    n = a.shape[0]
    out = g.new_zeros(n)
    if not module.weight.requires_grad or n == 0:
        return out
    if a.dim() != 2:
        raise UnsupportedModuleError(
            f"EmbeddingBag got input of shape {tuple(a.shape)}; GraNd's rule reads one bag per row of a 2-D [N, L] "
            "input (offsets and per_sample_weights are replayed instead)."
        )
    idx = a.reshape(n, -1)
    real = idx != module.padding_idx if module.padding_idx is not None else torch.ones_like(idx, dtype=torch.bool)
    counts = real.sum(1)
    rows = torch.arange(n, device=idx.device).unsqueeze(1).expand_as(idx)[real]
    keys = rows * module.num_embeddings + idx[real]
    unique, hits = torch.unique(keys, return_counts=True)
    per_row = torch.zeros(n, dtype=torch.int64, device=idx.device)
    per_row.index_add_(0, unique // module.num_embeddings, hits * hits)  # sum over rows u of (count of u)^2
    share = per_row.to(g.dtype)
    if module.mode == "mean":
        share = share / counts.clamp_min(1).to(g.dtype) ** 2
    return (g.reshape(n, -1) ** 2).sum(1) * share


# ------------------------------------------------------------------------------------------------------ registry

Rule = Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]

#: (module class, parameter names it may own, methods a subclass must not override, rule). A subclass that overrides
#: one of them (weight standardization in ``forward``, a custom ``_conv_forward``) computes something else, so it
#: gets the exact general fallback instead of the rule.
RULES: tuple[tuple[type[nn.Module], frozenset[str], tuple[str, ...], Rule], ...] = (
    (nn.Linear, frozenset({"weight", "bias"}), ("forward",), linear_sq_norms),
    (nn.Conv1d, frozenset({"weight", "bias"}), ("forward", "_conv_forward"), conv_sq_norms),
    (nn.Conv2d, frozenset({"weight", "bias"}), ("forward", "_conv_forward"), conv_sq_norms),
    (nn.Conv3d, frozenset({"weight", "bias"}), ("forward", "_conv_forward"), conv_sq_norms),
    (nn.modules.batchnorm._BatchNorm, frozenset({"weight", "bias"}), ("forward",), batchnorm_sq_norms),
    (nn.LayerNorm, frozenset({"weight", "bias"}), ("forward",), layernorm_sq_norms),
    (nn.GroupNorm, frozenset({"weight", "bias"}), ("forward",), groupnorm_sq_norms),
    (nn.Embedding, frozenset({"weight"}), ("forward",), embedding_sq_norms),
    (nn.EmbeddingBag, frozenset({"weight"}), ("forward",), embedding_bag_sq_norms),
)

SUPPORTED_NAMES = ", ".join(cls.__name__ for cls, *_ in RULES)


def rule_for(name: str, module: nn.Module, trainable: list[str]) -> Rule | None:
    """The closed-form rule for a module owning the trainable parameters ``trainable``, or ``None`` for the fallback.

    Raises :class:`UnsupportedModuleError` for the few modules no method can score exactly.
    """
    label = f"Module {name or '<root>'!r} of type {type(module).__name__}"
    if isinstance(module, nn.Embedding) and module.max_norm is not None:
        raise UnsupportedModuleError(
            f"{label} has max_norm={module.max_norm}: its forward renormalizes the weight in place, so the weight "
            "depends on the batch. Build it without max_norm, or exclude it with `.requires_grad_(False)`."
        )
    if isinstance(module, nn.EmbeddingBag) and module.max_norm is not None:
        raise UnsupportedModuleError(
            f"{label} has max_norm={module.max_norm}: its forward renormalizes the weight in place, so the weight "
            "depends on the batch. Build it without max_norm, or exclude it with `.requires_grad_(False)`."
        )
    if nn.utils.parametrize.is_parametrized(module):
        return None
    for cls, params, methods, rule in RULES:
        if isinstance(module, cls):
            if any(getattr(type(module), m) is not getattr(cls, m) for m in methods):
                return None
            if set(trainable) - params:
                return None
            if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and module.scale_grad_by_freq:
                return None  # the gradient scale depends on token counts: the per-example replay gets them right
            if isinstance(module, nn.EmbeddingBag) and module.mode not in ("sum", "mean"):
                return None  # max: each output dim comes from one row, chosen by the values; replayed
            return rule
    return None
