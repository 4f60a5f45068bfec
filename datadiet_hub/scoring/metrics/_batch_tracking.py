"""Which tensors of a forward pass depend on the batch: a ``TorchFunctionMode`` that propagates marks.

GraNd's hooks need to know, for each layer call, whether its input carries the examples (one row per example) or
is shared by all of them, like positional ids ``arange(T)``, a ``[T, T]`` relative-position bucket index or a buffer
slice. Shapes cannot tell (``T`` may equal the batch size); data flow can: a tensor is *batched* if it was computed
from the model inputs. The mode marks the outputs of every torch op with a batched tensor argument (and the target
of in-place ops), so integer ops such as ``ids != pad`` are followed too, which autograd cannot do.

It also follows the *shared* tensors that carry gradient: the outputs of layers that saw no example data (a
positional or relative-position embedding) and everything computed from them alone. The op where such a tensor
first meets batch data is handed to ``meet`` (:mod:`datadiet_hub.scoring.metrics._grand_shared`), which splits its
gradient by example there. ``expand``-like ops on a shared tensor record their source, so a tensor that is only a
copy of its source along dim 0 can be traced back to it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

_INPLACE_DUNDERS = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ior__", "__iand__"}
_EXPANDS = {"expand", "expand_as", "broadcast_to"}
_IDENTITIES = {"contiguous", "clone"}

Meet = Callable[[Any, tuple, dict, list[torch.Tensor]], Any]


def is_inplace(func: Any) -> bool:
    name = getattr(func, "__name__", "")
    return name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("_"))


def _tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """The tensor arguments of an op: a direct loop for the usual flat or one-level (``cat``) arguments, which this
    mode sees for every op of the forward pass, and the general pytree walk for anything nested deeper."""
    found: list[torch.Tensor] = []
    for group in (args, kwargs.values()) if kwargs else (args,):
        for a in group:
            if isinstance(a, torch.Tensor):
                found.append(a)
            elif isinstance(a, (list, tuple)):
                for b in a:
                    if isinstance(b, torch.Tensor):
                        found.append(b)
                    elif isinstance(b, (list, tuple, dict)):
                        return [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            elif isinstance(a, dict):
                return [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    return found


class BatchTracker(TorchFunctionMode):
    """Marks tensors computed from the model inputs (``is_batched``) and shared tensors with gradient (``is_shared``)."""

    def __init__(self, meet: Meet | None = None) -> None:
        super().__init__()
        self._marked: dict[int, weakref.ref[torch.Tensor]] = {}
        self._shared: dict[int, tuple[weakref.ref[torch.Tensor], str]] = {}
        self._copies: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor]] = {}
        self.meet = meet

    def mark(self, tensor: torch.Tensor) -> None:
        self._marked[id(tensor)] = weakref.ref(tensor)

    def is_batched(self, tensor: torch.Tensor) -> bool:
        ref = self._marked.get(id(tensor))
        return ref is not None and ref() is tensor

    def mark_shared(self, tensor: torch.Tensor, origin: str) -> None:
        """``tensor`` is shared by the batch and carries gradient; ``origin`` names the layer it comes from."""
        self._shared[id(tensor)] = (weakref.ref(tensor), origin)

    def is_shared(self, tensor: torch.Tensor) -> bool:
        entry = self._shared.get(id(tensor))
        return entry is not None and entry[0]() is tensor

    def origin(self, tensor: torch.Tensor) -> str:
        entry = self._shared.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else "a layer shared by the batch"

    def copied_from(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """The shared tensor whose dim 0 ``tensor`` repeats (``s.expand(N, ...)``, then maybe ``.contiguous()``)."""
        entry = self._copies.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        batched = False
        shared: list[torch.Tensor] = []
        for t in _tensors(args, kwargs):
            if self.is_batched(t):
                batched = True
            elif self._shared and t.requires_grad and self.is_shared(t) and all(t is not s for s in shared):
                shared.append(t)
        if batched and shared and self.meet is not None:
            out = self.meet(func, args, kwargs, shared)
        else:
            out = func(*args, **kwargs)
        if batched:
            if isinstance(out, torch.Tensor):
                self.mark(out)
            else:
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        self.mark(t)
            if is_inplace(func) and args and isinstance(args[0], torch.Tensor):
                self.mark(args[0])
            if isinstance(kwargs.get("out"), torch.Tensor):
                self.mark(kwargs["out"])
        elif shared:
            origin = self.origin(shared[0])
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.requires_grad:
                    self.mark_shared(t, origin)
            self._note_copy(func, args, out)
        return out

    def _note_copy(self, func: Any, args: tuple, out: Any) -> None:
        name = getattr(func, "__name__", "")
        if not (isinstance(out, torch.Tensor) and args and isinstance(args[0], torch.Tensor)):
            return
        src = args[0]
        if name in _IDENTITIES and out.shape == src.shape:
            source = self.copied_from(src)
        elif name in _EXPANDS and out.dim() >= 1 and (src.dim() < out.dim() or src.shape[0] == 1):
            source = src
        else:
            return
        if source is not None:
            self._copies[id(out)] = (weakref.ref(out), source)
