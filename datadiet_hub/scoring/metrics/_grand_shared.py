"""Per-example gradients of tensors shared by the batch: where they meet the examples, and back to their layers.

A layer that sees no example data (a positional embedding looked up with ``arange(T)``, a T5-style relative-position
bias looked up with a ``[T, T]`` bucket index, a learned latent array expanded to the batch) produces a tensor that
every example uses. Its per-example gradient is not a slice of the batch gradient, whatever its shape: it must be
split by example where the shared tensor first enters an op together with batch data (the *meeting*), and carried
back from there to the layer through the ops that only involve shared tensors.

At a meeting (:meth:`SharedFlow.meet`, called by the batch tracker):

- a broadcasting op (``+``, ``*``, ``where``, ``matmul``...) in which the shared operand is broadcast along the batch
  dim gets that operand expanded to one copy per example (same result); each copy's gradient is one example's;
- if the shared operand already has the batch size in the dim that broadcasting pairs with the examples, its row
  ``i`` is used by example ``i`` only (the op's semantics say so, not the shapes of the layer that made it);
- any other op is run on a detached copy of the shared operand, its output gradient is captured, and the
  per-example gradient is the op's vector-Jacobian product with that gradient restricted to one example's rows.

After the backward, :meth:`SharedFlow.resolve` carries the per-example gradients back to each shared layer output
with one vectorized ``torch.autograd.grad`` over the shared part of the graph (which the batch backward never
enters), exactly. Anything else (an op whose output has no batch dim, an in-place update of a shared tensor with
example data) is refused with a message naming the op and the layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from datadiet_hub.scoring.metrics._batch_tracking import is_inplace

logger = logging.getLogger(__name__)

_ELEMENTWISE = {
    "add", "sub", "mul", "div", "true_divide", "where", "maximum", "minimum", "subtract", "multiply",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "add_", "sub_", "mul_", "div_", "__iadd__", "__isub__", "__imul__", "__itruediv__",
}  # fmt: skip
_MATMUL = {"matmul", "__matmul__", "__rmatmul__"}


@dataclass
class Meeting:
    """One op where a shared tensor ``z`` met batch data; ``grads`` becomes its per-example gradient ``[n, *z]``."""

    z: torch.Tensor
    op: str
    kind: str  # "broadcast" | "rows" | "vjp"
    grad: torch.Tensor | None = None  # as captured: [n, *pad[1:]] (broadcast), [n, ...] (rows), output grad (vjp)
    pad: tuple[int, ...] = ()
    replay: Callable[[torch.Tensor], torch.Tensor] | None = None  # vjp: z -> the op's output


@dataclass
class SharedOutput:
    """A layer output shared by the batch whose per-example gradient ``[n, *y.shape]`` is wanted."""

    y: torch.Tensor
    label: str
    consume: Callable[[torch.Tensor | None, torch.Tensor | None], None]  # (dense [n, *y] or None, rows or None)
    rows_ok: bool = False  # the consumer can take row-wise gradients (row i of y is example i's)


@dataclass
class SharedFlow:
    n: int
    origin: Callable[[torch.Tensor], str]  # a label for the layer a shared tensor comes from (for messages)
    copied_from: Callable[[torch.Tensor], torch.Tensor | None]
    meetings: list[Meeting] = field(default_factory=list)
    leaves: list[torch.Tensor] = field(default_factory=list)  # detached stand-ins: the batch backward must reach them
    outputs: list[SharedOutput] = field(default_factory=list)
    refusal: str | None = None

    # ----------------------------------------------------------------------------------------------- the meeting

    def meet(self, func: Any, args: tuple, kwargs: dict, shared: list[torch.Tensor]) -> Any:
        name = getattr(func, "__name__", "")
        n = self.n
        flat, spec = tree_flatten((args, kwargs))
        tensors = [t for t in flat if isinstance(t, torch.Tensor)]
        shape = _broadcast_shape(name, tensors)
        inplace = is_inplace(func)
        if shape is not None and len(shape) >= 1 and shape[0] == n:
            rank = len(shape)
            subs: dict[int, torch.Tensor] = {}
            pending: list[tuple[Meeting, torch.Tensor]] = []
            ok = not (inplace and args and any(args[0] is z for z in shared))
            for z in shared if ok else ():
                if name in _MATMUL and z.dim() < 2:
                    ok = False
                    break
                pad = (1,) * (rank - z.dim()) + tuple(z.shape)
                leaf = z.detach().requires_grad_()
                if pad[0] == 1:
                    view = leaf.reshape(pad).expand(n, *pad[1:])
                    meeting = Meeting(z=z, op=name, kind="broadcast", pad=pad)
                elif pad[0] == n and z.dim() == rank:
                    view = leaf
                    meeting = Meeting(z=z, op=name, kind="rows", pad=pad)
                else:
                    ok = False
                    break
                self.leaves.append(leaf)
                subs[id(z)] = view
                pending.append((meeting, view))
            if ok:
                a, k = tree_unflatten([subs.get(id(t), t) if isinstance(t, torch.Tensor) else t for t in flat], spec)
                out = func(*a, **k)
                for meeting, view in pending:
                    view.register_hook(partial(_store, meeting))
                    self.meetings.append(meeting)
                return out
        return self._meet_vjp(func, name, flat, spec, shared, inplace)

    def _meet_vjp(self, func: Any, name: str, flat: list, spec: Any, shared: list[torch.Tensor], inplace: bool) -> Any:
        args, kwargs = tree_unflatten(flat, spec)
        if inplace or len(shared) != 1:
            return self._refuse(func, args, kwargs, shared, "it updates a tensor in place or mixes several of them")
        z = shared[0]
        frozen = [t.detach() if isinstance(t, torch.Tensor) and t is not z else t for t in flat]
        versions = [t._version if isinstance(t, torch.Tensor) else None for t in flat]

        def replay(leaf: torch.Tensor) -> torch.Tensor:
            if any(isinstance(t, torch.Tensor) and t._version != v for t, v in zip(flat, versions, strict=True)):
                raise RuntimeError(f"an input of {name} was modified in place after it ran")
            a, k = tree_unflatten([leaf if t is z else f for t, f in zip(flat, frozen, strict=True)], spec)
            return func(*a, **k)

        leaf = z.detach().requires_grad_()
        self.leaves.append(leaf)
        a, k = tree_unflatten([leaf if t is z else t for t in flat], spec)
        out = func(*a, **k)
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != self.n:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return self._refuse(func, args, kwargs, shared, f"its output {got} has no batch dim 0 of size {self.n}")
        meeting = Meeting(z=z, op=name, kind="vjp", replay=replay)
        hooked = out.clone()  # later in-place ops on the result must not move the captured gradient
        out.register_hook(partial(_store, meeting))
        self.meetings.append(meeting)
        return hooked

    def _refuse(self, func: Any, args: tuple, kwargs: dict, shared: list[torch.Tensor], why: str) -> Any:
        if self.refusal is None:
            origins = ", ".join(sorted({self.origin(z) for z in shared}))
            self.refusal = (
                f"The output of {origins}, shared by the whole batch (it does not depend on the examples), meets the "
                f"examples' data in {getattr(func, '__name__', func)!r}, where GraNd cannot split its gradient by "
                f"example: {why}."
            )
        return func(*args, **kwargs)

    # -------------------------------------------------------------------------------------------- after backward

    def resolve(self) -> None:
        """Per-example gradients of every shared output, handed to its consumer."""
        n = self.n
        dense_z: list[torch.Tensor] = []
        dense_g: list[torch.Tensor] = []
        rows: dict[int, torch.Tensor] = {}
        by_id = {id(o.y): o for o in self.outputs}
        for m in self.meetings:
            if m.grad is None:
                continue
            if m.kind == "broadcast":
                dense_z.append(m.z)
                dense_g.append(m.grad.reshape(n, *m.z.shape))
            elif m.kind == "rows":
                source = self.copied_from(m.z)
                if source is not None:  # z = source.expand(n, ...): example i used source through row i only
                    dense_z.append(source)
                    dense_g.append(_reduce_rows(m.grad, m.z.shape, source.shape))
                elif id(m.z) in by_id and by_id[id(m.z)].rows_ok:
                    rows[id(m.z)] = rows[id(m.z)] + m.grad if id(m.z) in rows else m.grad
                else:
                    dense_z.append(m.z)
                    dense_g.append(_diagonal(m.grad))
            else:
                assert m.replay is not None
                dense_z.append(m.z)
                dense_g.append(_vjp_per_example(m.replay, m.z, m.grad, n))
        ys = [o.y for o in self.outputs]
        dense: list[torch.Tensor | None] = [None] * len(ys)
        if dense_z and ys:
            dense = list(_batched_vjp(dense_z, dense_g, ys))
        for o, d in zip(self.outputs, dense, strict=True):
            r = rows.get(id(o.y))
            if r is not None and d is not None:
                d, r = d + _diagonal(r), None
            o.consume(d, r)
        self.meetings.clear()
        self.outputs.clear()
        self.leaves.clear()


def _store(meeting: Meeting, grad: torch.Tensor) -> None:
    g = grad.detach()
    meeting.grad = g if meeting.grad is None else meeting.grad + g


def _broadcast_shape(name: str, tensors: list[torch.Tensor]) -> tuple[int, ...] | None:
    """The output shape of a broadcasting op, or None if ``name`` is not one (or the shapes do not broadcast)."""
    try:
        if name in _ELEMENTWISE:
            return tuple(torch.broadcast_shapes(*(t.shape for t in tensors)))
        if name in _MATMUL and len(tensors) == 2 and min(t.dim() for t in tensors) >= 2:
            a, b = tensors
            return (*torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
    except RuntimeError:
        return None
    return None


def _reduce_rows(grad: torch.Tensor, z_shape: torch.Size, source_shape: torch.Size) -> torch.Tensor:
    """Row ``i`` of the gradient of ``source.expand(z_shape)``, summed back to ``source``'s shape: ``[n, *source]``."""
    n = grad.shape[0]
    pad = (1,) * (len(z_shape) - len(source_shape)) + tuple(source_shape)
    dims = tuple(d for d in range(1, len(z_shape)) if pad[d] == 1 and z_shape[d] != 1)
    g = grad.sum(dims, keepdim=True) if dims else grad
    return g.reshape(n, *source_shape)


def _diagonal(grad: torch.Tensor) -> torch.Tensor:
    """Row-wise gradient ``[n, ...]`` as per-example gradients ``[n, n, ...]`` (example i: zero except row i)."""
    n = grad.shape[0]
    out = grad.new_zeros(n, *grad.shape)
    idx = torch.arange(n, device=grad.device)
    out[idx, idx] = grad
    return out


def _vjp_per_example(
    replay: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, grad: torch.Tensor | None, n: int
) -> torch.Tensor:
    """``[n, *z]``: the op's vector-Jacobian product with the output gradient restricted to each example's rows."""
    assert grad is not None
    leaf = z.detach().requires_grad_()
    with torch.enable_grad():
        out = replay(leaf)
    eye = torch.eye(n, dtype=grad.dtype, device=grad.device).reshape(n, n, *([1] * (grad.dim() - 1)))
    masked = eye * grad.unsqueeze(0)
    try:
        (g,) = torch.autograd.grad(out, leaf, masked, is_grads_batched=True)
    except (RuntimeError, NotImplementedError) as err:
        logger.debug("batched vjp failed (%s); looping over examples", err)
        g = torch.stack([torch.autograd.grad(out, leaf, masked[i], retain_graph=True)[0] for i in range(n)])
    return g


def _batched_vjp(zs: list[torch.Tensor], gs: list[torch.Tensor], ys: list[torch.Tensor]) -> tuple:
    """Per-example gradients ``[n, *y]`` of each ``y`` (None if unused) from per-example gradients of the ``zs``."""
    with torch.enable_grad():
        try:
            return torch.autograd.grad(zs, ys, gs, retain_graph=True, allow_unused=True, is_grads_batched=True)
        except (RuntimeError, NotImplementedError) as err:
            logger.debug("batched vjp failed (%s); looping over examples", err)
        n = gs[0].shape[0]
        per = [torch.autograd.grad(zs, ys, [g[i] for g in gs], retain_graph=True, allow_unused=True) for i in range(n)]
    return tuple(None if per[0][j] is None else torch.stack([p[j] for p in per]) for j in range(len(ys)))
