"""``load_scores``: one call for a score dataset in the local store, in a folder, or on the Hub.

Whatever the location (decided by ``resolve.resolve``), the data is read by plain ``datasets.load_dataset`` from
the repo layout; this module gives clear errors when the name, config or version does not exist, or a data file is
corrupt. The card's provenance is attached to the returned table (``table_provenance.attach``: it rides in
``Dataset.info``, so it survives ``select``/``filter``/``with_format``), so ``prune``/``keep`` check the source
fingerprint without being told.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import datasets
import pyarrow as pa
from huggingface_hub.errors import HfHubHTTPError

from .errors import CardError, ConfigNotFoundError, ScoreTableError
from .folder import ScoreFolder
from .hub import download_card, load_from_hub
from .provenance import Provenance
from .resolve import HUB, resolve
from .store import LocalStore
from .table_provenance import attach, provenance_of

logger = logging.getLogger(__name__)

__all__ = ["load_provenance", "load_scores", "provenance_of"]


def load_scores(
    name_or_path: str | os.PathLike,
    config: str | None = None,
    version: str | None = None,
    *,
    store: LocalStore | str | os.PathLike | None = None,
    token: str | bool | None = None,
    **load_kwargs: Any,
) -> datasets.Dataset:
    """Load one config of a score dataset as a ``datasets.Dataset`` carrying its card's provenance.

    Args:
        name_or_path: a folder (a ``datadiet score`` output or a store version folder), a name in the local store
            (``fashion-mnist-datadiet``), or a Hub dataset repo id (``user/name``).
        config: e.g. ``cnn-ep2``; may be omitted when there is only one.
        version: store version or Hub tag/branch (``v1``); the newest local version when omitted.
        store: the local store (default ``$DATADIET_HOME`` or ``~/.cache/datadiet``).
        token: Hub token (default: ``HF_TOKEN`` or the saved login).
    """
    place = resolve(name_or_path, store=store)
    if place.kind == HUB:
        scores = load_from_hub(place.name, config, version, token=token, **load_kwargs)
        return attach(scores, _cached_hub_provenance(place.name, version, token))
    folder = place.folder(version)
    config = folder.pick_config(config)
    logger.info("Loading config %s from %s", config, folder.path)
    scores = _load_folder(folder, config, load_kwargs)
    try:
        provenance: Provenance | None = folder.provenance()
    except CardError as err:
        logger.warning("Cannot read the provenance in %s: %s", folder.readme, err)
        provenance = None
    return attach(scores, provenance)


def _load_folder(folder: ScoreFolder, config: str, load_kwargs: dict[str, Any]) -> datasets.Dataset:
    """``load_dataset`` on a local folder's parquet files; a corrupt or truncated file becomes one clear error.

    Why not ``load_dataset(folder, config)``: ``datasets`` (5.2) caches a local folder by its *name* and the config,
    not by where it is or what it holds, so ``a/v1`` and then ``b/v1`` (every store version of that name) would
    silently return ``a``'s rows, and a rewritten folder its old rows. The ``parquet`` builder with absolute file
    paths keys its cache on each file's path and modification time."""
    folder.check_data_files()  # the card may only point at files inside the folder
    files = [str(p.resolve()) for p in folder.data_files(config)]
    if not files:
        raise ConfigNotFoundError(
            f"Config {config!r} of {folder.path} has no data file under data/{config}/; the folder is incomplete. "
            "Re-publish it from the original `datadiet score` output.",
            path=folder.path,
            config=config,
        )
    try:
        return datasets.load_dataset("parquet", data_files={"train": files}, split="train", **load_kwargs)
    except (datasets.exceptions.DatasetGenerationError, pa.ArrowException) as err:
        cause = err.__cause__ or err
        files = [str(p) for p in folder.data_files(config)]
        raise ScoreTableError(
            f"Config {config!r} in {folder.path} cannot be read: a data file is corrupt or truncated ({files}; "
            f"{type(cause).__name__}: {cause}). Re-publish the version from the original scores, or re-download it; "
            "nothing was pruned.",
            path=folder.path,
            config=config,
        ) from err


def _cached_hub_provenance(repo_id: str, version: str | None, token: str | bool | None) -> Provenance | None:
    """The card provenance of a Hub version from the local cache only (``load_dataset`` just fetched the card)."""
    try:
        return download_card(repo_id, version, token=token, local_only=True).provenance()
    except (HfHubHTTPError, OSError, CardError) as err:
        logger.info("No cached card for %s@%s (%s); the table carries no provenance.", repo_id, version, err)
        return None


def load_provenance(
    name_or_path: str | os.PathLike,
    version: str | None = None,
    *,
    store: LocalStore | str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> Provenance:
    """The ``datadiet`` block of a score dataset's card as a ``Provenance`` (source with fingerprint, model,
    seeds, ...). Pass it to ``prune(..., provenance=)`` for tables not loaded with ``load_scores``.

    Args:
        name_or_path, version, store, token: as for ``load_scores``.
    """
    return resolve(name_or_path, store=store).provenance(version, token=token)
