"""datadiet-hub: per-example difficulty scores as versioned Hugging Face datasets, and pruning by them.

The package root is lazy (as ``huggingface_hub``'s): ``import datadiet_hub`` loads nothing heavy, and each public
name imports its module on first use. The torch parts live in ``datadiet_hub.scoring`` (produce scores) and
``datadiet_hub.downstream`` (train on pruned data); they need the ``[torch]`` extra and load only when imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# public name -> the module that defines it (one table; tests/lib/test_import.py checks it against the modules)
_SUBMOD_ATTRS: dict[str, str] = {
    "LocalStore": "store",
    "Provenance": "provenance",
    "Selection": "selection",
    "keep": "keeping",
    "load_provenance": "loading",
    "load_scores": "loading",
    "prune": "pruning",
    "select_indices": "selection",
}

__all__ = [  # the table's names and the version (tests/lib/test_import.py checks they agree)
    "LocalStore",
    "Provenance",
    "Selection",
    "__version__",
    "keep",
    "load_provenance",
    "load_scores",
    "prune",
    "select_indices",
]


def __getattr__(name: str) -> Any:
    module = _SUBMOD_ATTRS.get(name)
    if module is None:
        raise AttributeError(f"module 'datadiet_hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMOD_ATTRS})


if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .keeping import keep
    from .loading import load_provenance, load_scores
    from .provenance import Provenance
    from .pruning import prune
    from .selection import Selection, select_indices
    from .store import LocalStore
