"""The one door from the CLI into the torch packages (``scoring``, ``downstream``).

The library never imports them at module level (``import datadiet_hub`` must not import torch); the CLI verbs
that need them are looked up here by name, imported on use, and a missing torch becomes one ``MissingExtraError``
naming the extra to install.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from .errors import MissingExtraError

EXTRA_HINT = "pip install 'datadiet-hub[torch]' (CPU: `pip install torch==2.13.0` first)"

# verb -> "module:function"; each function takes argv (and ``prog=`` if it accepts it) and returns an exit code
VERBS: dict[str, str] = {
    "score": "scoring.cli:main",
    "demo": "downstream.demo:main",
}
_TORCH_MODULES = ("torch", "accelerate", "safetensors", "scoring", "downstream")


def resolve_verb(verb: str) -> Callable[..., int]:
    """The function behind ``verb``; ``MissingExtraError`` when its torch dependencies are not installed."""
    target = VERBS[verb]
    module_name, _, function = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        missing = getattr(err, "name", None) or ""
        if missing.split(".")[0] in _TORCH_MODULES:
            raise MissingExtraError(
                f"`datadiet {verb}` needs torch and accelerate ({err}). Install them with {EXTRA_HINT}.",
                value=missing,
            ) from err
        raise
    return getattr(module, function)  # type: ignore[no-any-return]


def run_verb(verb: str, argv: list[str]) -> int:
    """Run the torch verb ``verb`` with its own argument parser."""
    func = resolve_verb(verb)
    if "prog" in inspect.signature(func).parameters:
        return func(argv, prog=f"datadiet {verb}")
    return func(argv)
