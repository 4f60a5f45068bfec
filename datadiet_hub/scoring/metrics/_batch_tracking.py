"""Which tensors of a forward pass depend on the batch: a ``TorchFunctionMode`` that propagates a mark.

GraNd's hooks need to know, for each layer call, whether its input carries the examples (one row per example) or
is shared by all of them, like positional ids ``arange(T)`` or a buffer slice. Shapes cannot tell (``T`` may equal
the batch size); data flow can: a tensor is *batched* if it was computed from the model inputs. The mode marks the
outputs of every torch op with a batched tensor argument (and the target of in-place ops), so integer ops such as
``ids != pad`` are followed too, which autograd cannot do.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

_INPLACE_DUNDERS = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ior__", "__iand__"}


class BatchTracker(TorchFunctionMode):
    """Marks tensors computed from the model inputs; ``is_batched(t)`` asks whether ``t`` is one of them."""

    def __init__(self) -> None:
        super().__init__()
        self._marked: dict[int, weakref.ref[torch.Tensor]] = {}

    def mark(self, tensor: torch.Tensor) -> None:
        self._marked[id(tensor)] = weakref.ref(tensor)

    def is_batched(self, tensor: torch.Tensor) -> bool:
        ref = self._marked.get(id(tensor))
        return ref is not None and ref() is tensor

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if any(isinstance(t, torch.Tensor) and self.is_batched(t) for t in tree_leaves((args, kwargs))):
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.mark(t)
            name = getattr(func, "__name__", "")
            inplace = name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("_"))
            if inplace and args and isinstance(args[0], torch.Tensor):
                self.mark(args[0])
            if isinstance(kwargs.get("out"), torch.Tensor):
                self.mark(kwargs["out"])
        return out
