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
    "score": "datadiet_hub.scoring.cli:main",
    "demo": "datadiet_hub.downstream.demo:main",
}
REQUIRED = ("torch", "accelerate", "safetensors")
_OUR_TORCH_PACKAGES = ("scoring", "downstream")


def _missing_extra(verb: str, err: ImportError) -> MissingExtraError | None:
    """A ``MissingExtraError`` when ``err`` is a torch dependency or one of our torch packages missing, else None
    (then it is a real bug and surfaces as is)."""
    missing = (getattr(err, "name", None) or "").split(".")[0]
    if missing in REQUIRED:
        return MissingExtraError(
            f"`datadiet {verb}` needs torch and accelerate ({err}). Install them with {EXTRA_HINT}.", value=missing
        )
    if missing in _OUR_TORCH_PACKAGES:
        return MissingExtraError(
            f"`datadiet {verb}` needs the `{missing}` package of datadiet-hub, which this installation lacks ({err}):"
            " reinstall it, e.g. `pip install -e '.[torch]'` in a checkout or pip install 'datadiet-hub[torch]'.",
            value=missing,
        )
    return None


def resolve_verb(verb: str) -> Callable[..., int]:
    """The function behind ``verb``; ``MissingExtraError`` when its torch dependencies are not installed."""
    module_name, _, function = VERBS[verb].partition(":")
    try:
        for required in REQUIRED:  # the verb needs them anyway; checked here because the packages import lazily
            importlib.import_module(required)
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise (_missing_extra(verb, err) or err) from err
    return getattr(module, function)


def run_verb(verb: str, argv: list[str]) -> int:
    """Run the torch verb ``verb`` with its own argument parser."""
    func = resolve_verb(verb)
    kwargs = {"prog": f"datadiet {verb}"} if "prog" in inspect.signature(func).parameters else {}
    try:
        return func(argv, **kwargs)
    except ImportError as err:  # the torch packages import torch lazily, inside the verb
        raise (_missing_extra(verb, err) or err) from err
