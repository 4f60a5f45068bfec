"""``load_scores``: one call for a score dataset in the local store, in a folder, or on the Hub.

Whatever the location, the data is read by plain ``datasets.load_dataset`` from the repo layout; this module
only decides where to point it and gives clear errors when the name, config or version does not exist.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .errors import ScoresNotFoundError
from .store import LocalStore, validate_name

logger = logging.getLogger(__name__)


def _configs_of(folder: Path) -> list[str]:
    from .cards import read_card_data  # noqa: PLC0415

    try:
        return [c["config_name"] for c in read_card_data(folder / "README.md").get("configs", [])]
    except (ValueError, OSError, KeyError):
        return []


def _pick_config(configs: list[str], config: str | None, where: str) -> str:
    if config is None:
        if len(configs) == 1:
            return configs[0]
        raise ValueError(f"{where} has several configs {configs}; choose one with config=.")
    if configs and config not in configs:
        raise ScoresNotFoundError(f"Config {config!r} not found in {where}; available: {configs}.")
    return config


def resolve_folder(name_or_path: str | os.PathLike, version: str | None = None,
                   store: LocalStore | None = None) -> Path | None:
    """The local folder holding the score dataset, or None when it must come from the Hub."""
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "README.md").is_file():
            if version is not None:
                raise ValueError(
                    f"{path} is a single score dataset folder; version={version!r} only applies to store names "
                    "and Hub repos."
                )
            return path
        versioned = LocalStore(path.parent).path(path.name, version) if any(path.glob("*/README.md")) else None
        if versioned is None:
            raise ScoresNotFoundError(f"{path} holds no score dataset (no README.md).")
        return versioned
    store = store or LocalStore()
    try:
        validate_name(str(name_or_path))
    except ValueError as err:
        raise ScoresNotFoundError(f"{str(name_or_path)!r} is neither a folder nor a valid name: {err}") from err
    if store.has(str(name_or_path)):
        return store.path(str(name_or_path), version)
    return None


def load_scores(
    name_or_path: str | os.PathLike,
    config: str | None = None,
    version: str | None = None,
    *,
    store: LocalStore | str | os.PathLike | None = None,
    token: str | bool | None = None,
    **load_kwargs: Any,
) -> "datasets.Dataset":  # noqa: F821
    """Load one config of a score dataset as a ``datasets.Dataset``.

    Args:
        name_or_path: a folder (a ``datadiet score`` output or a store version folder), a name in the local store
            (``fashion-mnist-datadiet``), or a Hub dataset repo id (``user/name``).
        config: e.g. ``cnn-ep2``; may be omitted when there is only one.
        version: store version or Hub tag/branch (``v1``); the newest local version when omitted.
        store: the local store (default ``$DATADIET_HOME`` or ``~/.cache/datadiet``).
        token: Hub token (default: ``HF_TOKEN`` or the saved login).
    """
    import datasets  # noqa: PLC0415

    store = store if isinstance(store, LocalStore) or store is None else LocalStore(store)
    folder = resolve_folder(name_or_path, version, store)
    if folder is not None:
        config = _pick_config(_configs_of(folder), config, str(folder))
        logger.info("Loading config %s from %s", config, folder)
        return datasets.load_dataset(str(folder), config, split="train", **load_kwargs)
    repo_id = str(name_or_path)
    if "/" not in repo_id:
        raise ScoresNotFoundError(
            f"No score dataset {repo_id!r} in the local store {store.root} and it is not a Hub repo id "
            "('user/name'). See `datadiet versions` or publish one with `datadiet publish`."
        )
    from .hub import load_from_hub  # noqa: PLC0415

    return load_from_hub(repo_id, config, version, token=token, **load_kwargs)
