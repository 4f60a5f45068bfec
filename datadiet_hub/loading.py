"""``load_scores``: one call for a score dataset in the local store, in a folder, or on the Hub.

Whatever the location, the data is read by plain ``datasets.load_dataset`` from the repo layout; this module
only decides where to point it and gives clear errors when the name, config or version does not exist, or a data
file is corrupt.

The card's provenance (``datadiet:`` YAML block, with the source fingerprint) is not part of the arrow data, so
``load_provenance`` reads it from the README next to the data files, and ``load_scores`` remembers it for the table
it returns (``provenance_of``), so ``prune``/``keep`` can check the fingerprint without being told.
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import Any

from .errors import DatadietError, ScoresNotFoundError
from .store import LocalStore, validate_name

logger = logging.getLogger(__name__)

_PROVENANCE: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def provenance_of(scores: Any) -> dict[str, Any] | None:
    """The card provenance of a table returned by ``load_scores`` (None for other tables or derived copies)."""
    try:
        return _PROVENANCE.get(scores)
    except TypeError:  # unhashable (a dict of arrays)
        return None


def _remember(scores: Any, provenance: dict[str, Any] | None) -> None:
    if provenance:
        try:
            _PROVENANCE[scores] = provenance
        except TypeError:
            pass


def _configs_of(folder: Path) -> list[str]:
    from .cards import read_card_data

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


def resolve_folder(
    name_or_path: str | os.PathLike, version: str | None = None, store: LocalStore | None = None
) -> Path | None:
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
) -> datasets.Dataset:  # noqa: F821
    """Load one config of a score dataset as a ``datasets.Dataset``.

    Args:
        name_or_path: a folder (a ``datadiet score`` output or a store version folder), a name in the local store
            (``fashion-mnist-datadiet``), or a Hub dataset repo id (``user/name``).
        config: e.g. ``cnn-ep2``; may be omitted when there is only one.
        version: store version or Hub tag/branch (``v1``); the newest local version when omitted.
        store: the local store (default ``$DATADIET_HOME`` or ``~/.cache/datadiet``).
        token: Hub token (default: ``HF_TOKEN`` or the saved login).
    """
    store = store if isinstance(store, LocalStore) or store is None else LocalStore(store)
    folder = resolve_folder(name_or_path, version, store)
    if folder is not None:
        config = _pick_config(_configs_of(folder), config, str(folder))
        logger.info("Loading config %s from %s", config, folder)
        scores = _load_folder(folder, config, load_kwargs)
        _remember(scores, _folder_provenance(folder))
        return scores
    repo_id = _hub_repo_id(name_or_path, store)
    from .hub import load_from_hub

    scores = load_from_hub(repo_id, config, version, token=token, **load_kwargs)
    _remember(scores, _hub_provenance(repo_id, version, token=token, local_only=True))
    return scores


def _hub_repo_id(name_or_path: str | os.PathLike, store: LocalStore) -> str:
    repo_id = str(name_or_path)
    if "/" not in repo_id:
        raise ScoresNotFoundError(
            f"No score dataset {repo_id!r} in the local store {store.root} and it is not a Hub repo id "
            "('user/name'). See `datadiet versions` or publish one with `datadiet publish`."
        )
    return repo_id


def _load_folder(folder: Path, config: str, load_kwargs: dict[str, Any]) -> Any:
    """``load_dataset`` on a local folder; a corrupt or truncated data file becomes one clear error."""
    import datasets
    import pyarrow as pa

    try:
        return datasets.load_dataset(str(folder), config, split="train", **load_kwargs)
    except (datasets.exceptions.DatasetGenerationError, pa.ArrowException) as err:
        cause = err.__cause__ or err
        files = sorted(str(p) for p in (folder / "data" / config).glob("*.parquet"))
        raise ScoresNotFoundError(
            f"Config {config!r} in {folder} cannot be read: a data file is corrupt or truncated ({files}; "
            f"{type(cause).__name__}: {cause}). Re-publish the version from the original scores, or re-download it; "
            "nothing was pruned."
        ) from err


def _folder_provenance(folder: Path) -> dict[str, Any]:
    from .cards import read_card_data

    try:
        data = read_card_data(folder / "README.md").get("datadiet")
    except (ValueError, OSError, DatadietError) as err:
        logger.warning("Cannot read the provenance in %s/README.md: %s", folder, err)
        return {}
    return data if isinstance(data, dict) else {}


def _hub_provenance(repo_id: str, version: str | None, *, token: str | bool | None, local_only: bool) -> dict:
    """The card provenance of a Hub version; with ``local_only`` only from the local cache (no request)."""
    from huggingface_hub import hf_hub_download

    from .versions import read_card_metadata

    try:
        path = hf_hub_download(
            repo_id, "README.md", repo_type="dataset", revision=version, token=token, local_files_only=local_only
        )
        data = read_card_metadata(Path(path).read_text(encoding="utf-8"), source=f"{repo_id}@{version}/README.md")
    except Exception as err:
        if not local_only:
            raise ScoresNotFoundError(
                f"Cannot read the card of {repo_id!r} at version {version!r}: {err}. `datadiet versions {repo_id}` "
                "lists the published versions."
            ) from err
        return {}
    block = data.get("datadiet")
    return block if isinstance(block, dict) else {}


def load_provenance(
    name_or_path: str | os.PathLike,
    version: str | None = None,
    *,
    store: LocalStore | str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> dict[str, Any]:
    """The ``datadiet`` block of a score dataset's card: source (dataset, split, num_rows, fingerprint), model,
    seeds, ... ({} when the card has none). Pass it to ``prune(..., provenance=)`` for tables not loaded with
    ``load_scores``.

    Args:
        name_or_path, version, store, token: as for ``load_scores``.
    """
    store = store if isinstance(store, LocalStore) or store is None else LocalStore(store)
    folder = resolve_folder(name_or_path, version, store)
    if folder is not None:
        return _folder_provenance(folder)
    return _hub_provenance(_hub_repo_id(name_or_path, store), version, token=token, local_only=False)
