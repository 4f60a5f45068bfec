"""The one answer to "where does this score dataset live": a folder, a name in the local store, or a Hub repo.

``load_scores``, ``load_provenance`` and every CLI verb resolve names here, so a name means the same thing
everywhere:

1. an existing folder with a ``README.md`` is a score folder (no versions);
2. an existing folder that is a store entry (``store.is_store_entry``: every visible subfolder is a version with
   a card) is that name of the store it is in;
3. a name the local store has is that store entry;
4. otherwise a name with a ``/`` is a Hub dataset repo id;
5. anything else is a store name that does not exist yet (listing it finds no versions; loading it fails).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from huggingface_hub.errors import HfHubHTTPError

from .errors import CardError, InvalidArgumentError, ScoresNotFoundError
from .folder import README, ScoreFolder
from .hub import download_card, list_versions
from .provenance import Provenance
from .store import LocalStore, is_store_entry, validate_name
from .versions import VersionInfo

FOLDER, STORE, HUB = "folder", "store", "hub"


class Place(Protocol):
    """Where a score dataset lives: a folder, a name in the local store, or a Hub repo; one set of verbs.

    Attributes:
        kind: ``folder``, ``store`` or ``hub``.
        name: the folder path, the store name or the Hub repo id.
        store: the local store, for a store name (None otherwise).
    """

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> LocalStore | None: ...

    def describe(self) -> str:
        """Where it is, in words (for messages)."""
        ...

    def folder(self, version: str | None = None) -> ScoreFolder:
        """The local folder of ``version`` (newest when None); ``InvalidArgumentError`` for a Hub repo."""
        ...

    def versions(self, *, token: str | None = None) -> list[VersionInfo]:
        """The published versions (a plain folder has none)."""
        ...

    def provenance(self, version: str | None = None, *, token: str | bool | None = None) -> Provenance:
        """The card provenance of ``version`` (downloads only the card of a Hub repo)."""
        ...


@dataclass(frozen=True)
class FolderPlace:
    """A score folder (``datadiet score`` output or one store version): no versions."""

    name: str
    kind: str = field(default=FOLDER, init=False)
    store: LocalStore | None = field(default=None, init=False, compare=False)

    def describe(self) -> str:
        return f"folder {self.name}"

    def folder(self, version: str | None = None) -> ScoreFolder:
        if version is not None:
            raise InvalidArgumentError(
                f"{self.name} is a single score dataset folder; version={version!r} only applies to store "
                "names and Hub repos. Drop the version.",
                path=self.name,
                version=version,
            )
        return ScoreFolder(self.name)

    def versions(self, *, token: str | None = None) -> list[VersionInfo]:
        return []

    def provenance(self, version: str | None = None, *, token: str | bool | None = None) -> Provenance:
        return self.folder(version).provenance()


@dataclass(frozen=True)
class StorePlace:
    """A name in a local store (it may not be published yet: no versions, and loading it fails)."""

    name: str
    store: LocalStore = field(compare=False)
    kind: str = field(default=STORE, init=False)

    def describe(self) -> str:
        return f"local store {self.store.root}"

    def folder(self, version: str | None = None) -> ScoreFolder:
        if not self.store.has(self.name):
            raise ScoresNotFoundError(
                f"No score dataset {self.name!r} in the local store {self.store.root} and it is not a Hub repo id"
                " ('user/name'). See `datadiet versions` or publish one with `datadiet publish`.",
                path=self.store.root,
                value=self.name,
            )
        return ScoreFolder(self.store.path(self.name, version))

    def versions(self, *, token: str | None = None) -> list[VersionInfo]:
        return self.store.versions(self.name)

    def provenance(self, version: str | None = None, *, token: str | bool | None = None) -> Provenance:
        return self.folder(version).provenance()


@dataclass(frozen=True)
class HubPlace:
    """A dataset repo on the Hub: versions are its tags (and branches)."""

    name: str
    kind: str = field(default=HUB, init=False)
    store: LocalStore | None = field(default=None, init=False, compare=False)

    def describe(self) -> str:
        return "the Hub"

    def folder(self, version: str | None = None) -> ScoreFolder:
        raise InvalidArgumentError(f"{self.name!r} is a Hub repo, not a local folder.", repo_id=self.name)

    def versions(self, *, token: str | None = None) -> list[VersionInfo]:
        return list_versions(self.name, token=token)

    def provenance(self, version: str | None = None, *, token: str | bool | None = None) -> Provenance:
        try:
            return download_card(self.name, version, token=token).provenance()
        except (HfHubHTTPError, OSError, CardError) as err:
            raise ScoresNotFoundError(
                f"Cannot read the card of {self.name!r} at version {version!r}: {err}. `datadiet versions "
                f"{self.name}` lists the published versions.",
                repo_id=self.name,
                version=version,
            ) from err


__all__ = ["FOLDER", "HUB", "STORE", "FolderPlace", "HubPlace", "Place", "StorePlace", "is_store_entry", "resolve"]


def resolve(
    name_or_path: str | os.PathLike, *, store: LocalStore | str | os.PathLike | None = None, local: bool = False
) -> Place:
    """Decide where ``name_or_path`` lives (see the module docstring); ``local`` never answers the Hub."""
    store = store if isinstance(store, LocalStore) else LocalStore(store)
    path = Path(name_or_path)
    if path.is_dir():
        if ScoreFolder(path).has_card():
            return FolderPlace(str(path))
        if is_store_entry(path):
            return StorePlace(path.name, LocalStore(path.parent))
        raise ScoresNotFoundError(f"{path} holds no score dataset (no {README}).", path=path)
    name = str(name_or_path)
    try:
        validate_name(name)
    except ValueError as err:
        raise ScoresNotFoundError(
            f"{name!r} is neither a folder nor a valid name: {err}", value=name, path=name
        ) from err
    if store.has(name) or local or "/" not in name:
        return StorePlace(name, store)
    return HubPlace(name)
