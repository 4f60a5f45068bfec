"""GraNd: exact per-example gradient norms ``||grad_w CE(f(w, x_i), y_i)||_2`` from one forward and one backward pass.

The obvious ways to get them are slow: a loop over examples re-runs the model N times, and ``torch.func.vmap(grad)``
materializes every per-example gradient (~45 MB/example for ResNet-18). But the backward pass of the batch-sum loss
already computes, at each layer, the gradient of every example's own loss with respect to that layer's output
(the model runs in eval mode, so examples do not interact); with the layer's input this determines the per-example
weight gradient and hence its norm.

How a pass works:

1. forward hooks keep each parametrized module's inputs and put tensor hooks on its outputs; a torch-function mode
   (:mod:`datadiet_hub.scoring.metrics._batch_tracking`) tells from data flow which inputs carry the examples and
   which are shared by the batch (positional ids ``arange(T)``, a ``[T, T]`` relative-position bucket index), never
   from a shape that happens to equal the batch size. A layer on a shared input has a shared output; its per-example
   gradient is split where it meets the examples and carried back to it exactly
   (:mod:`datadiet_hub.scoring.metrics._grand_shared`);
2. ``torch.autograd.grad`` is asked for gradients with respect to the graph's *inputs* only (the model input, or an
   embedding's output), never the weights: the batch weight gradients, a third of a plain backward, are skipped;
3. as each output gradient arrives, a closed-form rule (Linear, Conv, norms, Embedding:
   :mod:`datadiet_hub.scoring.metrics._grand_layers`) turns (input, output gradient) into per-example squared norms; any other
   module (attention, RNNs, ConvTranspose, custom layers) is replayed alone with ``torch.func`` on the captured
   arguments and output gradients (:mod:`datadiet_hub.scoring.metrics._grand_fallback`), exact as well.

Calls of plain Linear, Embedding and LayerNorm layers on the same parameters (tied encoder/decoder embeddings, a layer
reused across depth) are joined along positions, since the gradient sums over them. Guards turn what would be
silently wrong into a clear error naming the module, the reason and the fix: a parameter used outside its module's
calls (weight tying, ``F.linear(x, layer.weight)``, a module run under ``no_grad``), any other module whose
parameters take part in two calls, a shared tensor that meets the examples where its gradient cannot be split by
example, BatchNorm without running statistics, a layer whose output does not
keep the batch in its batch dim, global forward hooks; and a self-check on the first batch of every model compares
two examples with a single-example pass per layer (rows permuted or mixed inside the model, a sequence-first input
whose length equals the batch size).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring.forward import Inputs, batch_size, logits_of, map_inputs, select
from datadiet_hub.scoring.metrics import _grand_attention as attention
from datadiet_hub.scoring.metrics._batch_tracking import BatchTracker
from datadiet_hub.scoring.metrics._grand_fallback import Replay, capture, declared_dims, replay_sq_norms
from datadiet_hub.scoring.metrics._grand_layers import (
    Rule,
    UnsupportedModuleError,
    embedding_sq_norms,
    layernorm_sq_norms,
    linear_sq_norms,
    rule_for,
)
from datadiet_hub.scoring.metrics._grand_shared import SharedFlow, SharedOutput

ExampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(outputs, targets) -> [N]``: each example's own loss (see ``per_example_grad_norms``)."""

__all__ = ["UnsupportedModuleError", "per_example_grad_norms", "per_example_layer_sq_norms"]

logger = logging.getLogger(__name__)

_SLOW = "datadiet_hub.scoring.metrics.reference.vmap_grad_norms (or naive_grad_norms)"
_VERIFIED: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()
#: Rules that read every dim between the batch and the features as positions: a shared input works as one more
#: leading dim, and several calls of one layer join along the positions (the gradient sums over them).
_FLATTENING_RULES: tuple[Rule, ...] = (linear_sq_norms, embedding_sq_norms, layernorm_sq_norms)


@dataclass
class _Tap:
    """One module owning trainable parameters (directly, or through a parametrization)."""

    name: str
    module: nn.Module
    rule: Rule | None  # None: the torch.func replay
    own: dict[str, tuple[str, nn.Parameter]]  # parameters in its subtree: relative name -> (owner name, parameter)
    batch_dim: int  # 1 inside a sequence-first torch Transformer layer
    calls: int = 0
    owner: str = ""  # the module its direct parameters are counted under (the first to own them: tied weights)
    group: _Group | None = None  # rule layers holding the very same parameters (tied embeddings)

    @property
    def joins_calls(self) -> bool:
        return self.group is not None and self.group.calls > 1


@dataclass
class _Group:
    """Calls of rule layers on the same parameters (a tied embedding, a layer shared across depth): the gradient
    sums over the calls, so each call's (input, output gradient) over positions is kept and joined after the
    backward, as one call."""

    calls: int = 0
    pieces: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


@dataclass
class _Call:
    """What one call of a tap covers and saw."""

    tap: _Tap
    covered: dict[str, tuple[str, nn.Parameter]]
    uses: dict[int, int]  # id(parameter) -> references inside this call's own graph
    replay: Replay | None = None
    by_rule: bool = False


@dataclass
class _Pass:
    """Per-chunk state shared by the hooks."""

    n: int = 0
    sq_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    roots: list[torch.Tensor] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    log: list[_Tap] = field(default_factory=list)  # taps in the order they were entered
    stack: list[tuple[int, int]] = field(default_factory=list)  # len(log), len(meetings) when each call was entered
    tracker: BatchTracker | None = None
    flow: SharedFlow | None = None
    replaying: bool = False

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        previous, self.replaying = self.replaying, True
        try:
            yield
        finally:
            self.replaying = previous


def per_example_grad_norms(
    model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    *,
    chunk_size: int | None = None,
    verify: bool = True,
    loss_fn: ExampleLoss | None = None,
) -> torch.Tensor:
    """Exact GraNd score of every example: the L2 norm of its own loss gradient over all trainable parameters.

    The per-example loss is the cross entropy of that single example (not divided by the batch size). The model
    runs in eval mode (BatchNorm uses its running statistics, as in the paper); its train/eval flags are restored
    afterwards and no hooks or ``.grad`` are left behind. Parameters with ``requires_grad=False`` are excluded from
    the norm, which is how to score with part of a model frozen.

    Args:
        model: Classifier returning logits ``[N, K]`` or an output with ``.logits`` (``transformers`` models). Any
            module may own parameters; the examples must not interact (no batch statistics).
        inputs: A batch tensor ``[N, ...]`` (called ``model(inputs)``) or a mapping of keyword tensors, each
            ``[N, ...]`` (called ``model(**inputs)``: ``pixel_values``, or ``input_ids`` + ``attention_mask``).
        targets: Integer class labels ``[N]``.
        chunk_size: Run forward and backward on at most this many examples at a time, to bound activation memory;
            ``None`` runs the whole batch at once. The result does not depend on it (up to rounding). Layer
            temporaries are bounded separately by ``datadiet_hub.scoring.metrics._grand_layers.WORKSPACE_BYTES``.
        verify: On the first call for a model object, check two examples against a single-example pass, per layer,
            and raise :class:`UnsupportedModuleError` naming the layers that disagree.
        loss_fn: ``loss_fn(outputs, targets) -> [N]``, each example's own loss, for models whose output is not
            ``[N, K]`` logits (a causal LM: ``[N, T, V]`` logits and ``[N, T]`` next-token targets); ``targets``
            then only needs the batch as dim 0. Default: the cross entropy of each example.

    Returns:
        Norms ``[N]`` in the dtype of the model's parameters.
    """
    layers = per_example_layer_sq_norms(model, inputs, targets, chunk_size=chunk_size, verify=verify, loss_fn=loss_fn)
    return torch.stack(list(layers.values())).sum(0).sqrt()


def per_example_layer_sq_norms(
    model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    *,
    chunk_size: int | None = None,
    verify: bool = True,
    loss_fn: ExampleLoss | None = None,
) -> dict[str, torch.Tensor]:
    """``{module name: per-example squared gradient norm [N]}`` over each module's own trainable parameters.

    Names are as in ``named_modules`` (``""`` for the root); the squared GraNd is the sum over modules. Arguments
    as in :func:`per_example_grad_norms`.
    """
    n, targets = _validate(model, inputs, targets, chunk_size, per_class=loss_fn is None)
    taps = _plan(model)
    _refuse_batch_coupling(model)
    first = next(iter(next(iter(taps)).own.values()))[1]
    dtype = first.dtype

    def prepare(t: torch.Tensor) -> torch.Tensor:
        if t.is_inference():  # inference tensors cannot enter autograd graphs
            with torch.inference_mode(False):
                t = t.clone()
        return t.detach()

    inputs = map_inputs(inputs, prepare)
    device = targets.device
    owners = {owner for tap in taps for owner, _ in tap.own.values()}
    sq_norms = {
        name: torch.zeros(n, dtype=dtype, device=device) for name, _ in model.named_modules() if name in owners
    }

    flags = [(module, module.training) for module in model.modules()]
    handles: list[torch.utils.hooks.RemovableHandle] = []
    state = _Pass()
    try:
        model.eval()
        for tap in taps:
            handles.append(tap.module.register_forward_pre_hook(partial(_pre_hook, state, tap), with_kwargs=True))
            handles.append(
                tap.module.register_forward_hook(partial(_forward_hook, state, tap), with_kwargs=True, prepend=True)
            )
        step = n if chunk_size is None else chunk_size
        for start in range(0, n, step):
            chunk = slice(start, min(n, start + step))
            state.n = chunk.stop - chunk.start
            state.sq_norms = {name: sq[chunk] for name, sq in sq_norms.items()}  # views: hooks write in place
            _run_pass(model, taps, state, select(inputs, chunk), targets[chunk], loss_fn)
    finally:
        for handle in handles:
            handle.remove()
        state.roots.clear()
        state.calls.clear()
        for module, training in flags:
            module.train(training)
    if verify and model not in _VERIFIED:
        _self_check(model, inputs, targets, sq_norms, loss_fn)
        _VERIFIED[model] = True
    return sq_norms


def _validate(
    model: nn.Module, inputs: Inputs, targets: torch.Tensor, chunk_size: int | None, per_class: bool = True
) -> tuple[int, torch.Tensor]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    n = batch_size(inputs)
    if n == 0:
        raise InvalidArgumentError("inputs must hold a batch of N >= 1 examples, got N = 0.")
    if not isinstance(targets, torch.Tensor) or (targets.shape != (n,) if per_class else targets.shape[:1] != (n,)):
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise InvalidArgumentError(f"targets must be a tensor of shape [{n}] (one label per input), got {shape}.")
    if targets.is_floating_point() or targets.is_complex():
        raise InvalidArgumentError(
            f"targets must hold integer class labels, got dtype {targets.dtype}; use targets.long()."
        )
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise InvalidArgumentError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    return n, targets.long()


def _seq_first(module: nn.Module) -> bool | None:
    """Whether a torch Transformer container runs sequence-first ([T, N, D]); None for other modules."""
    if isinstance(module, nn.Transformer):
        module = module.encoder
    if isinstance(module, (nn.TransformerEncoder, nn.TransformerDecoder)):
        module = module.layers[0]
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return not module.self_attn.batch_first
    return None


def _plan(model: nn.Module) -> list[_Tap]:
    """One tap per module owning trainable parameters; each parameter belongs to exactly one tap's subtree."""
    taps: list[_Tap] = []
    parametrized = [name for name, m in model.named_modules() if nn.utils.parametrize.is_parametrized(m)]
    for name, module in model.named_modules():
        if isinstance(module, nn.utils.parametrize.ParametrizationList):
            continue  # its parameters are the parametrized module's (one tap, replayed)
        direct = {p: param for p, param in module.named_parameters(recurse=False) if param.requires_grad}
        owned = {p: (name, param) for p, param in direct.items()}
        if name in parametrized:
            for sub, m in module.named_modules():
                if sub.startswith("parametrizations"):
                    full = f"{name}.{sub}" if name else sub
                    for p, param in m.named_parameters(recurse=False):
                        if param.requires_grad:
                            owned[f"{sub}.{p}"] = (full, param)
        if not owned:
            continue
        if any(isinstance(p, nn.parameter.UninitializedParameter) for _, p in owned.values()):
            raise InvalidArgumentError(
                f"Module {name!r} has uninitialized (lazy) parameters; run one forward pass first."
            )
        rule = rule_for(name, module, sorted(direct)) if name not in parametrized else None
        batch_dim = 0
        parts = name.split(".") if name else []
        for depth in range(len(parts) - 1, -1, -1):
            seq_first = _seq_first(model.get_submodule(".".join(parts[:depth])))
            if seq_first is not None:
                batch_dim = int(seq_first)
                break
        taps.append(_Tap(name=name, module=module, rule=rule, own=owned, batch_dim=batch_dim))
    _own_once(taps)
    if not taps:
        raise InvalidArgumentError(
            "model has no trainable parameters (all have requires_grad=False); GraNd would be 0."
        )
    # A tap's subtree parameters, for the replay: its own plus those of descendant taps, minus what they take
    # themselves when they run (decided per call).
    by_name = {tap.name: tap for tap in taps}
    for tap in taps:
        if tap.rule is None:
            prefix = f"{tap.name}." if tap.name else ""
            for other in taps:
                if other is not tap and other.name.startswith(prefix) and (tap.name or other.name):
                    for p, (owner, param) in other.own.items():
                        rel = f"{other.name[len(prefix) :]}.{p}"
                        tap.own.setdefault(rel, (owner, param))
    logger.debug(
        "GraNd taps: %s", ", ".join(f"{n or '<root>'}:{'rule' if t.rule else 'replay'}" for n, t in by_name.items())
    )
    return taps


def _own_once(taps: list[_Tap]) -> None:
    """A parameter held by several modules (tied weights) counts once, under the first (as ``named_parameters``)."""
    first: dict[int, str] = {}
    for tap in taps:
        for owner, param in tap.own.values():
            first.setdefault(id(param), owner)
    groups: dict[tuple, _Group] = {}
    for tap in taps:
        tap.own = {rel: (first[id(p)], p) for rel, (_, p) in tap.own.items()}
        owners = {owner for owner, _ in tap.own.values()}
        tap.owner = owners.pop() if len(owners) == 1 else tap.name
        if tap.rule is not None and owners:  # direct parameters counted under different modules: replay them
            tap.rule = None
        if tap.rule in _FLATTENING_RULES:
            key = (
                type(tap.module),
                frozenset(id(p) for _, p in tap.own.values()),
                getattr(tap.module, "padding_idx", 0),
            )
            tap.group = groups.setdefault(key, _Group())


def _refuse_batch_coupling(model: nn.Module) -> None:
    """Batch statistics couple the examples: no per-example gradient exists, whether or not BN is trainable."""
    bad = [
        f"{name or '<root>'!r} ({type(m).__name__})"
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.running_mean is None or m.running_var is None)
    ]
    if bad:
        raise UnsupportedModuleError(
            f"Module {', '.join(bad)} has track_running_stats=False: even in eval mode it normalizes with the "
            "statistics of the batch, so each example's loss depends on the others and the batch's gradient is not a "
            "sum of per-example gradients. Freezing or removing its affine parameters does not change that. Fix: "
            "build it with track_running_stats=True (running statistics, as the paper's models), or use GroupNorm / "
            "LayerNorm."
        )
    if torch.nn.modules.module._global_forward_hooks:
        raise UnsupportedModuleError(
            "Global forward hooks are registered (torch.nn.modules.module.register_module_forward_hook); they may "
            "change layer outputs before GraNd's hooks see them. Remove them while scoring."
        )


def _label(tap: _Tap) -> str:
    return f"Module {tap.name or '<root>'!r} ({type(tap.module).__name__})"


_F = TypeVar("_F", bound=Callable[..., Any])


def _untracked(fn: _F) -> _F:
    """Run a hook's own work with torch-function dispatch off: its tensor queries and copies need no tracking (it
    marks what it makes itself), and each would cost a trip through the tracker. The recomputed attention runs ops on
    the examples' data, so it stays tracked."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch._C.DisableTorchFunction():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _pre_hook(state: _Pass, tap: _Tap, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """Open a call; make floating arguments not yet in the graph graph roots, so the backward reaches this layer."""
    if state.replaying:
        return None
    return _open_call(state, tap, args, kwargs)


def _rule_on_fresh_input(state: _Pass, tap: _Tap, args: tuple, kwargs: dict) -> bool:
    """A rule layer called on one floating tensor of the examples that is not in the graph yet (the first layer, on
    the inputs). Its rule needs only the input's values and the output's gradient, so the backward may stop at the
    output: a gradient for the input (a whole input-gradient convolution for a model's first layer) is not needed."""
    if tap.rule is None or kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor):
        return False
    x = args[0]
    return x.is_floating_point() and not x.requires_grad and state.tracker is not None and state.tracker.is_batched(x)


@_untracked
def _open_call(state: _Pass, tap: _Tap, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    state.stack.append((len(state.log), len(state.flow.meetings) if state.flow is not None else 0))
    state.log.append(tap)
    changed = False

    def root(leaf: Any) -> Any:
        nonlocal changed
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and not leaf.requires_grad:
            changed = True
            new = leaf.detach().requires_grad_()
            if state.tracker is not None and state.tracker.is_batched(leaf):
                state.tracker.mark(new)
            state.roots.append(new)
            return new
        return leaf

    if not kwargs and all(
        isinstance(a, torch.Tensor) and (a.requires_grad or not a.is_floating_point()) for a in args
    ):
        return None  # the usual call: nothing to make a root
    if _rule_on_fresh_input(state, tap, args, kwargs):
        return None  # its output becomes the root instead (_rule_call): no gradient for the input is computed
    flat, spec = tree_flatten((args, kwargs))
    flat = [root(leaf) for leaf in flat]
    if not changed:
        return None
    new_args, new_kwargs = tree_unflatten(flat, spec)
    return tuple(new_args), dict(new_kwargs)


def _forward_hook(state: _Pass, tap: _Tap, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    if state.replaying:
        return None
    started, met = state.stack.pop()
    called_inside = {t.name for t in state.log[started + 1 :]}
    tap.calls += 1
    if tap.group is not None:
        tap.group.calls += 1
    covered = dict(tap.own)
    if tap.rule is None:
        prefix = f"{tap.name}." if tap.name else ""
        for t in called_inside:
            if t != tap.name and t.startswith(prefix):
                rel = t[len(prefix) :] + "."
                covered = {k: v for k, v in covered.items() if not k.startswith(rel)}
    tracker = state.tracker
    assert tracker is not None
    use_rule = tap.rule is not None and len(args) == 1 and isinstance(args[0], torch.Tensor) and not kwargs
    attention = _attention_args(state, tap, args, kwargs, covered)
    if use_rule and isinstance(output, torch.Tensor):
        new_output, call = _rule_call(state, tap, args[0], output, covered)
    elif attention is not None:
        new_output, call = _attention_call(state, tap, attention, covered)
    else:
        inner = [m.z for m in state.flow.meetings[met:]] if state.flow is not None else []
        new_output, call = _replay_call(state, tap, args, kwargs, output, covered, inner)
    state.calls.append(call)
    return new_output


def _internal_uses(
    outputs: list[torch.Tensor], stops: list[torch.Tensor], params: dict[int, nn.Parameter]
) -> dict[int, int]:
    """References to ``params`` in the graph between this call's outputs and its inputs (its own ops)."""
    stop = {t.grad_fn for t in stops if t.grad_fn is not None}
    uses: dict[int, int] = {}
    seen: set[Any] = set()
    stack = [o.grad_fn for o in outputs if o.grad_fn is not None]
    seen.update(stack)
    while stack:
        node = stack.pop()
        if node in stop:
            continue
        for child, _ in node.next_functions:
            if child is None:
                continue
            variable = getattr(child, "variable", None)
            if variable is not None and id(variable) in params:
                uses[id(variable)] = uses.get(id(variable), 0) + 1
            if child not in seen and child not in stop:
                seen.add(child)
                stack.append(child)
    return uses


def _no_batch_dim(tap: _Tap, what: str, shape: tuple, n: int, dim: int) -> UnsupportedModuleError:
    return UnsupportedModuleError(
        f"{_label(tap)}: its {what} of shape {shape} depends on the examples but its batch dim {dim} has size "
        f"{shape[dim] if len(shape) > dim else 'none'}, not the batch size {n}: the examples' rows were merged "
        "(e.g. reshaped to [N*T, D]), or the batch is in another dim (sequence-first input). Per-example gradients "
        "need one slice per example in the batch dim. Fix: keep the batch as dim 0 through the model (batch_first=True,"
        f" x.view(N, T, D) rather than x.view(-1, D)), or use {_SLOW}."
    )


@_untracked
def _rule_call(
    state: _Pass, tap: _Tap, x: torch.Tensor, output: torch.Tensor, covered: dict[str, tuple[str, nn.Parameter]]
) -> tuple[torch.Tensor | None, _Call]:
    tracker, n, bd = state.tracker, state.n, tap.batch_dim
    assert tracker is not None and tap.rule is not None
    params = {id(p): p for _, p in covered.values()}
    call = _Call(tap=tap, covered=covered, uses=_internal_uses([output], [x], params), by_rule=True)
    if not output.requires_grad:
        return None, call  # run under no_grad: contributes nothing (a later use of its weights is refused)
    new_output: torch.Tensor | None = None
    a = x.detach()
    hooked = output
    if not tracker.is_batched(x):
        if bd:
            raise UnsupportedModuleError(
                f"{_label(tap)} runs inside a sequence-first Transformer layer on an input shared by the batch; "
                f"GraNd cannot place its batch dim. Use batch_first=True, or {_SLOW}."
            )
        _share_rule_output(state, tap, x, output, covered)
        return None, call
    for what, t in (("input", x), ("output", output)):
        if t.dim() <= bd or t.shape[bd] != n:
            raise _no_batch_dim(tap, what, tuple(t.shape), n, bd)
    if bd:
        a = a.movedim(bd, 0)
    if not x.is_floating_point() or not x.requires_grad:  # token ids, or a fresh input (_rule_on_fresh_input)
        state.roots.append(output)
        new_output = hooked = output.clone()
        tracker.mark(new_output)
    version = x._version
    hooked.register_hook(partial(_grad_hook, state, tap, a, x, version, bd))
    return new_output, call


def _share_rule_output(
    state: _Pass, tap: _Tap, x: torch.Tensor, output: torch.Tensor, covered: dict[str, tuple[str, nn.Parameter]]
) -> None:
    """A rule layer on an input that does not depend on the examples: its output is shared by the batch.

    Its per-example output gradients come from where the output meets the examples (:mod:`._grand_shared`): dense
    ``[n, *output]``, or row ``i`` for example ``i`` when the meeting op pairs the output's dim 0 with the batch.
    """
    tracker, flow, n = state.tracker, state.flow, state.n
    assert tracker is not None and flow is not None and tap.rule is not None
    rule = tap.rule
    a = x.detach()
    label = _label(tap)
    tracker.mark_shared(output, label)

    def consume(dense: torch.Tensor | None, rows: torch.Tensor | None) -> None:
        target = state.sq_norms[tap.owner]
        if rows is not None:
            _add_rule(state, tap, a, rows)
        elif dense is not None and rule in _FLATTENING_RULES:
            _add_rule(state, tap, a.unsqueeze(0).expand(n, *a.shape), dense)
        elif dense is not None:
            leaves, specs, keys = capture(tap.module, (x,), {})
            replay = Replay(
                module=tap.module, params=covered, leaves=leaves, in_dims=[None], specs=specs, keys=keys,
                out_index=[0], out_unsqueeze=[None], grads={0: dense},
            )  # fmt: skip
            for owner, sq in replay_sq_norms(replay, n, state.replay).items():
                state.sq_norms[owner] += sq.to(target.dtype)

    # Row-wise gradients (row i is example i's) can be used directly only if no shared layer upstream needs them too.
    rows_ok = not tracker.is_shared(x) and a.dim() >= 1 and a.shape[0] == n and output.dim() >= 1
    rows_ok = rows_ok and output.shape[0] == n
    flow.outputs.append(SharedOutput(y=output, label=label, consume=consume, rows_ok=rows_ok))


def _grad_hook(
    state: _Pass, tap: _Tap, a: torch.Tensor, x: torch.Tensor, version: int, bd: int, grad: torch.Tensor
) -> None:
    if x._version != version:
        raise RuntimeError(
            f"The input of {_label(tap)} was modified in place after the module ran, so its per-example gradients "
            "cannot be recovered; make that op out of place."
        )
    g = grad.detach()
    if bd:
        g = g.movedim(bd, 0)
    _add_rule(state, tap, a, g)


def _add_rule(state: _Pass, tap: _Tap, a: torch.Tensor, g: torch.Tensor) -> None:
    """Per-example squared norms of one call of a rule layer, or its positions kept to be joined with other calls."""
    assert tap.rule is not None
    if tap.joins_calls:
        assert tap.group is not None
        tap.group.pieces.append(_as_positions(tap, a, g))
        return
    target = state.sq_norms[tap.owner]
    target += tap.rule(tap.module, a, g).to(target.dtype)


def _as_positions(tap: _Tap, a: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, g)`` with every dim between the batch and the features flattened into one positions dim."""
    n = a.shape[0]
    if tap.rule is embedding_sq_norms:
        idx = a.reshape(n, -1)
        return idx, g.reshape(n, idx.shape[1], -1)
    if tap.rule is layernorm_sq_norms:
        assert isinstance(tap.module, nn.LayerNorm)
        shape = tuple(tap.module.normalized_shape)
        return a.reshape(n, -1, *shape), g.reshape(n, -1, *shape)
    return a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])


def _join_calls(state: _Pass, taps: list[_Tap]) -> None:
    """Squared norms of rule layers called several times: their positions from every call, as one call."""
    for tap in taps:
        if tap.group is not None and tap.group.pieces:
            assert tap.rule is not None
            a = torch.cat([a for a, _ in tap.group.pieces], 1)
            g = torch.cat([g for _, g in tap.group.pieces], 1)
            tap.group.pieces.clear()
            target = state.sq_norms[tap.owner]
            target += tap.rule(tap.module, a, g).to(target.dtype)


@_untracked
def _replay_call(
    state: _Pass,
    tap: _Tap,
    args: tuple,
    kwargs: dict,
    output: Any,
    covered: dict[str, tuple[str, nn.Parameter]],
    inner: list[torch.Tensor],
) -> tuple[Any, _Call]:
    tracker, n = state.tracker, state.n
    assert tracker is not None
    label = _label(tap)
    in_dims, out_dim = declared_dims(label, tap.module, args, kwargs, tracker.is_batched, tap.batch_dim)
    leaves, specs, keys = capture(tap.module, args, kwargs)
    flat = [leaf for value in (*args, *kwargs.values()) for leaf in tree_flatten(value)[0]]
    tensors = [t for t in flat if isinstance(t, torch.Tensor)]
    for t, d in zip(flat, in_dims, strict=True):
        if d is not None and isinstance(t, torch.Tensor) and (t.dim() <= d or t.shape[d] != n):
            raise _no_batch_dim(tap, "input", tuple(t.shape), n, d)
    out_leaves, out_spec = tree_flatten(output)
    out_tensors = [o for o in out_leaves if isinstance(o, torch.Tensor)]
    params = {id(p): p for _, p in covered.values()}
    # Shared tensors that met the examples inside this call hang off the batch graph: their ops are this call's too.
    call = _Call(tap=tap, covered=covered, uses=_internal_uses(out_tensors + inner, tensors, params))
    has_float_input = any(isinstance(t, torch.Tensor) and t.is_floating_point() for t in tensors)
    any_batched_input = any(d is not None for d in in_dims)
    any_shared_input = any(tracker.is_shared(t) for t in tensors)
    replay = Replay(module=tap.module, params=covered, leaves=leaves, in_dims=in_dims, specs=specs, keys=keys)
    new_leaves, changed = list(out_leaves), False
    for j, o in enumerate(out_leaves):
        if not isinstance(o, torch.Tensor) or not o.requires_grad:
            continue
        k = len(replay.out_index)
        replay.out_index.append(j)
        if not tracker.is_batched(o):  # computed without example data: shared by the batch
            replay.out_unsqueeze.append(None)
            tracker.mark_shared(o, label)
            assert state.flow is not None
            rows_ok = any_batched_input and not any_shared_input and o.dim() >= 1 and o.shape[0] == n
            state.flow.outputs.append(
                SharedOutput(y=o, label=label, consume=partial(_shared_replay_grad, replay, k), rows_ok=rows_ok)
            )
            continue
        hooked = o
        dim = out_dim(j, len(out_leaves))
        if o.dim() <= dim or o.shape[dim] != n:
            raise _no_batch_dim(tap, f"output {j}", tuple(o.shape), n, dim)
        if not has_float_input:
            state.roots.append(o)
            hooked = o.clone()
            tracker.mark(hooked)
            new_leaves[j], changed = hooked, True
        replay.out_unsqueeze.append(dim)
        hooked.register_hook(partial(_store_grad, replay, k, dim))
    call.replay = replay
    return (tree_unflatten(new_leaves, out_spec) if changed else None), call


_ATTENTION_PARAMS = {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}


def _attention_args(
    state: _Pass, tap: _Tap, args: tuple, kwargs: dict, covered: dict[str, tuple[str, nn.Parameter]]
) -> dict[str, Any] | None:
    """The call's arguments if it is an ``nn.MultiheadAttention`` call the decomposed form reproduces, else None."""
    if not isinstance(tap.module, nn.MultiheadAttention) or not set(covered) <= _ATTENTION_PARAMS:
        return None
    assert state.tracker is not None
    call = attention.bind(args, kwargs)
    return call if attention.decomposable(tap.module, call, state.tracker.is_batched, state.n) else None


def _attention_call(
    state: _Pass, tap: _Tap, call_args: dict[str, Any], covered: dict[str, tuple[str, nn.Parameter]]
) -> tuple[Any, _Call]:
    """Recompute the attention with hooked projections (:mod:`datadiet_hub.scoring.metrics._grand_attention`)."""
    assert isinstance(tap.module, nn.MultiheadAttention)
    owners = {"": tap.name, "out_proj": f"{tap.name}.out_proj" if tap.name else "out_proj"}

    def hook(y: torch.Tensor, x: torch.Tensor, part: str, weight: bool, bias: bool) -> None:
        if not (weight or bias) or not y.requires_grad:
            return
        a, owner = x.detach(), owners[part]

        def on_grad(g: torch.Tensor) -> None:
            target = state.sq_norms[owner]
            target += attention.linear_parts_sq_norms(a, g.detach(), weight, bias).to(target.dtype)

        y.register_hook(on_grad)

    out, weights = attention.decomposed_forward(tap.module, call_args, hook)
    params = {id(p): p for _, p in covered.values()}
    inputs = [t for t in call_args.values() if isinstance(t, torch.Tensor)]
    outputs = [t for t in (out, weights) if t is not None]
    return (out, weights), _Call(tap=tap, covered=covered, uses=_internal_uses(outputs, inputs, params))


def _shared_replay_grad(replay: Replay, k: int, dense: torch.Tensor | None, rows: torch.Tensor | None) -> None:
    """Per-example gradients of a shared replay output: dense ``[n, *out]``, or row-wise (row i is example i's)."""
    if rows is not None:
        replay.grads[k], replay.out_unsqueeze[k] = rows, 0
    elif dense is not None:
        replay.grads[k], replay.out_unsqueeze[k] = dense, None


def _store_grad(replay: Replay, k: int, dim: int, grad: torch.Tensor) -> None:
    g = grad.detach()
    replay.grads[k] = g.movedim(dim, 0) if dim else g


def _run_pass(
    model: nn.Module, taps: list[_Tap], state: _Pass, x: Inputs, y: torch.Tensor, loss_fn: ExampleLoss | None = None
) -> None:
    """One forward and one backward of the batch-sum loss over one chunk; hooks add into ``state.sq_norms``."""
    state.roots.clear()
    state.calls.clear()
    state.log.clear()
    state.stack.clear()
    for tap in taps:
        tap.calls = 0
        if tap.group is not None:
            tap.group.calls = 0
            tap.group.pieces.clear()
    with torch.enable_grad():
        flow = SharedFlow(n=state.n, origin=lambda t: "a layer", copied_from=lambda t: None)
        tracker = BatchTracker(meet=flow.meet)
        flow.origin, flow.copied_from = tracker.origin, tracker.copied_from
        state.tracker, state.flow = tracker, flow
        with tracker:
            for t in tree_flatten(x)[0]:
                tracker.mark(t)
            logits = logits_of(model, x)
        state.tracker = None
        if loss_fn is not None:
            loss = loss_fn(logits, y).sum()  # each example's own loss, summed: its rows of the gradients are its own
        elif logits.dim() != 2 or logits.shape[0] != state.n:
            raise InvalidArgumentError(
                f"model must return logits of shape [N={state.n}, K], got {tuple(logits.shape)}."
            )
        else:
            # Sum, not mean: each example's rows of the output gradients are then that example's own loss gradient.
            loss = F.cross_entropy(logits, y, reduction="sum")
        if not loss.requires_grad:
            return
        _check_param_uses(loss, taps, state.calls, [m.z for m in flow.meetings])
        if flow.refusal is not None:
            raise UnsupportedModuleError(
                f"{flow.refusal} Keep what is shared by the batch broadcast against the examples (e.g. add a "
                f"[1, T, D] or [T, D] tensor to [N, T, D]), or use {_SLOW}."
            )
        shared = [o.y for o in flow.outputs]
        inputs = [*state.roots, *flow.leaves, *shared]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True) if inputs else ()
        leaked = [
            o.label for o, g in zip(flow.outputs, grads[len(inputs) - len(shared) :], strict=True) if g is not None
        ]
        if leaked:
            raise UnsupportedModuleError(
                f"The output of {', '.join(leaked)}, shared by the whole batch, reaches the loss through an op GraNd "
                f"could not follow (a custom autograd Function or an op outside torch's function dispatch), so its "
                f"gradient cannot be split by example. Use {_SLOW}."
            )
        del grads
        flow.resolve()
        _join_calls(state, taps)
    state.roots.clear()
    state.flow = None
    with state.replay():
        for call in state.calls:
            if call.replay is not None and call.replay.grads:
                for owner, sq in replay_sq_norms(call.replay, state.n, state.replay).items():
                    target = state.sq_norms[owner]
                    target += sq.to(target.dtype)
    state.calls.clear()


def _check_param_uses(
    loss: torch.Tensor, taps: list[_Tap], calls: list[_Call], shared: list[torch.Tensor] | None = None
) -> None:
    """Every reference to a trainable parameter in the graph must lie inside one call of the module that owns it.

    A reference elsewhere means the parameter also contributes through ops no call saw: weight tying, a functional
    use (``F.linear(x, layer.weight)``), or a module called under ``no_grad`` whose weights are used afterwards.
    References inside two calls mean shared weights: the per-example gradient is a sum over calls, whose norm the
    per-call computations do not give.
    """
    uses: dict[int, int] = {}
    assert loss.grad_fn is not None
    # The shared part of the graph (cut from the batch graph where it meets the examples) is walked too.
    starts = {loss.grad_fn, *(t.grad_fn for t in shared or () if t.grad_fn is not None)}
    seen, stack = set(starts), list(starts)
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            variable = getattr(child, "variable", None)
            if variable is not None:
                uses[id(variable)] = uses.get(id(variable), 0) + 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    inside: dict[int, list[_Call]] = {}
    counted: dict[int, int] = {}
    for call in calls:
        for pid, count in call.uses.items():
            counted[pid] = counted.get(pid, 0) + count
            inside.setdefault(pid, []).append(call)
    for tap in taps:
        for rel, (owner, param) in tap.own.items():
            full = f"{tap.name}.{rel}" if tap.name else rel
            total, within = uses.get(id(param), 0), counted.get(id(param), 0)
            callers = inside.get(id(param), [])
            joined = all(c.by_rule and c.tap.joins_calls and c.tap.group is tap.group for c in callers)
            if len(callers) > 1 and not joined:
                where = callers[0].tap
                raise UnsupportedModuleError(
                    f"{_label(where)} was called {len(callers)} times in one forward pass with parameter {full!r} "
                    "(shared weights, e.g. an encoder's and a decoder's tied token embeddings, or one layer applied "
                    "at several depths): its per-example gradient is a sum over the calls. GraNd joins the calls of "
                    "plain Linear, Embedding and LayerNorm layers, but "
                    + (
                        "this one has no closed-form rule (another layer type, or a subclass with its own forward)"
                        if where.rule is None
                        else "these calls are not all plain calls of such layers"
                    )
                    + f", so each call would be computed apart. Use a separate module per call, or {_SLOW}."
                )
            if total > within:
                raise UnsupportedModuleError(
                    f"Parameter {full!r} enters the graph {total} times but only {within} of them inside a call of "
                    f"its module {owner or '<root>'!r}: it is also used outside that module's forward (weight tying, "
                    "the weight read directly as `module.weight` or passed to a functional call such as "
                    "F.linear(x, layer.weight), or the module was run under no_grad and its weights used afterwards), which GraNd's hooks cannot see. Fix: call the module itself for "
                    f"every use, or use {_SLOW}."
                )


def _self_check(
    model: nn.Module,
    inputs: Inputs,
    targets: torch.Tensor,
    ours: dict[str, torch.Tensor],
    loss_fn: ExampleLoss | None = None,
) -> None:
    """Compare two examples' per-layer squared norms with a single-example pass (rows permuted or mixed, T == N)."""
    from datadiet_hub.scoring.metrics.reference import naive_layer_sq_norms

    n = targets.shape[0]
    rows = sorted({0, n - 1})
    picked = select(inputs, slice(0, 1)) if rows == [0] else map_inputs(inputs, lambda t: t[rows])
    try:
        expected = naive_layer_sq_norms(model, picked, targets[rows], loss_fn=loss_fn)
    except Exception as err:
        raise UnsupportedModuleError(
            f"GraNd's self-check could not run the model on single examples ({type(err).__name__}: {err}). "
            "Pass verify=False to skip it if the model cannot take a batch of one."
        ) from err
    dtype = next(iter(ours.values())).dtype
    eps = torch.finfo(dtype).eps
    rtol = min(5e-2, max(1e-10, 5000 * eps))
    total = sum(v for v in expected.values())
    bad = []
    for name, ref in expected.items():
        got = ours[name][rows].to(ref.dtype)
        if bool(((got - ref).abs() > rtol * (ref + 1e-3 * total)).any()):
            bad.append(f"{name or '<root>'!r} (in batch {got.tolist()}, alone {ref.tolist()})")
    if bad:
        raise UnsupportedModuleError(
            f"GraNd's self-check failed: examples {rows} computed in the batch differ from the same examples run "
            f"alone at module {', '.join(bad)}. Their per-example gradient is not one slice of the batch dim: rows "
            "are permuted or mixed across examples inside the model, or a sequence-first input ([T, N, D]) has "
            "T == N. Fix: keep dim 0 the batch, one row per example, through the model (batch_first=True), or use "
            f"{_SLOW}."
        )
