"""The one answer to "where does this score dataset live": a folder, a name in the local store, or a Hub repo.

``load_scores``, ``load_provenance`` and every CLI verb resolve names here, so a name means the same thing
everywhere:

1. an existing folder with a ``README.md`` is a score folder (no versions);
2. an existing folder whose subfolders hold cards is a store entry (its parent is the store);
3. a name the local store has is that store entry;
4. otherwise a name with a ``/`` is a Hub dataset repo id;
5. anything else is a store name that does not exist yet (listing it finds no versions; loading it fails).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError

from .errors import CardError, InvalidArgumentError, ScoresNotFoundError
from .folder import README, ScoreFolder
from .hub import download_card, list_versions
from .provenance import Provenance
from .store import LocalStore, validate_name
from .versions import VersionInfo

FOLDER, STORE, HUB = "folder", "store", "hub"


@dataclass(frozen=True)
class Place:
    """Where a score dataset lives.

    Attributes:
        kind: ``folder``, ``store`` or ``hub``.
        name: the folder path, the store name or the Hub repo id.
        store: the local store, for ``store``.
    """

    kind: str
    name: str
    store: LocalStore | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.kind == STORE and self.store is not None:
            return f"local store {self.store.root}"
        return "the Hub" if self.kind == HUB else f"folder {self.name}"

    def folder(self, version: str | None = None) -> ScoreFolder:
        """The local folder of ``version`` (newest when None); only for ``folder`` and ``store`` places."""
        if self.kind == FOLDER:
            if version is not None:
                raise InvalidArgumentError(
                    f"{self.name} is a single score dataset folder; version={version!r} only applies to store "
                    "names and Hub repos. Drop the version.",
                    path=self.name,
                    version=version,
                )
            return ScoreFolder(self.name)
        if self.kind == STORE and self.store is not None:
            if not self.store.has(self.name):
                raise ScoresNotFoundError(
                    f"No score dataset {self.name!r} in the local store {self.store.root} and it is not a Hub repo id"
                    " ('user/name'). See `datadiet versions` or publish one with `datadiet publish`.",
                    path=self.store.root,
                    value=self.name,
                )
            return ScoreFolder(self.store.path(self.name, version))
        raise InvalidArgumentError(f"{self.name!r} is a Hub repo, not a local folder.", repo_id=self.name)

    def versions(self, *, token: str | None = None) -> list[VersionInfo]:
        """The published versions (a plain folder has none)."""
        if self.kind == HUB:
            return list_versions(self.name, token=token)
        if self.kind == STORE and self.store is not None:
            return self.store.versions(self.name)
        return []

    def provenance(self, version: str | None = None, *, token: str | bool | None = None) -> Provenance:
        """The card provenance of ``version`` (downloads the card for a Hub repo)."""
        if self.kind != HUB:
            return self.folder(version).provenance()
        try:
            return download_card(self.name, version, token=token).provenance()
        except (HfHubHTTPError, OSError, CardError) as err:
            raise ScoresNotFoundError(
                f"Cannot read the card of {self.name!r} at version {version!r}: {err}. `datadiet versions "
                f"{self.name}` lists the published versions.",
                repo_id=self.name,
                version=version,
            ) from err


def resolve(
    name_or_path: str | os.PathLike, *, store: LocalStore | str | os.PathLike | None = None, local: bool = False
) -> Place:
    """Decide where ``name_or_path`` lives (see the module docstring); ``local`` never answers the Hub."""
    store = store if isinstance(store, LocalStore) else LocalStore(store)
    path = Path(name_or_path)
    if path.is_dir():
        if ScoreFolder(path).has_card():
            return Place(FOLDER, str(path))
        if any(ScoreFolder(sub).has_card() for sub in path.iterdir() if sub.is_dir()):
            return Place(STORE, path.name, LocalStore(path.parent))
        raise ScoresNotFoundError(f"{path} holds no score dataset (no {README}).", path=path)
    name = str(name_or_path)
    try:
        validate_name(name)
    except ValueError as err:
        raise ScoresNotFoundError(
            f"{name!r} is neither a folder nor a valid name: {err}", value=name, path=name
        ) from err
    if store.has(name) or local or "/" not in name:
        return Place(STORE, name, store)
    return Place(HUB, name)
