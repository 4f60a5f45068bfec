"""Version names (valid git refs and folder names), their natural order, and ``VersionInfo``: shared by the local
store and the Hub."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidNameError
from .provenance import Provenance

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_VERSIONS = frozenset({"main", "HEAD"})  # refs of the repo itself, not versions


def validate_version(version: str) -> str:
    """Return ``version`` if it is a usable tag, branch and folder name, else raise ``ValueError`` quoting it.

    Why so strict: the name becomes a git ref, a ``revision=`` argument and a folder, so anything that needs quoting
    or could be mistaken for a path or a commit sha is refused up front rather than failing half-way through.
    """
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version) or version in RESERVED_VERSIONS:
        raise InvalidNameError(
            f"Invalid version name {version!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
            f" (e.g. 'v1', 'v2', '2024-05-01'); {sorted(RESERVED_VERSIONS)} are reserved.",
            value=version,
        )
    # git check-ref-format: the Hub would refuse the tag after the commit landed
    if ".." in version or version.endswith((".", ".lock")):
        raise InvalidNameError(
            f"Invalid version name {version!r}: git refuses ref names containing '..' or ending in '.' or '.lock' "
            "(`git check-ref-format`), so the Hub could not tag it; use e.g. 'v1' or 'v1.0'.",
            value=version,
        )
    if re.fullmatch(r"[0-9a-f]{40}", version):
        raise InvalidNameError(
            f"Invalid version name {version!r}: it looks like a commit sha; use e.g. 'v1'.", value=version
        )
    return version


def version_sort_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order: v2 before v10, numbers compared as numbers."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", version) if t)


@dataclass(frozen=True)
class VersionInfo:
    """One published version: its name, where it lives and the provenance in its card.

    ``kind`` is ``tag`` or ``branch`` on the Hub (``location`` is then the commit sha) and ``folder`` in the local
    store (``location`` is the folder path).
    """

    name: str
    kind: str
    location: str
    configs: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def commit_sha(self) -> str:
        return self.location

    def summary(self) -> str:
        return self.provenance.summary()
