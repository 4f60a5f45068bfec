"""Version names and the summary shown for each version (shared by the local store and the Hub)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_version(version: str) -> str:
    """Return ``version`` if it is a usable tag/folder name, else raise ``ValueError`` quoting it."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ValueError(
            f"Invalid version {version!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(e.g. 'v1', 'v2.1', '2026-11-28')."
        )
    return version


def version_sort_key(version: str) -> tuple:
    """Natural order: v2 before v10, numbers compared as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version))


@dataclass
class VersionInfo:
    """One published version: where it is and what made it."""

    name: str
    version: str
    location: str
    configs: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        source = self.provenance.get("source", {})
        scoring = self.provenance.get("scoring", {})
        seeds = scoring.get("seeds", [])
        parts = [
            f"{source.get('dataset', '?')}/{source.get('split', '?')} ({source.get('num_rows', '?')} rows)",
            f"model={scoring.get('model', '?')}",
            f"seeds={len(seeds)}",
            f"configs={','.join(self.configs) or '?'}",
        ]
        return " ".join(parts)
