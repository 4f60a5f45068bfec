"""Version names, card metadata and the summary shown for each version: shared by the local store and the Hub."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import DatadietError

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_VERSIONS = frozenset({"main", "HEAD"})  # refs of the repo itself, not versions


def validate_version(version: str) -> str:
    """Return ``version`` if it is a usable tag, branch and folder name, else raise ``ValueError`` quoting it.

    Why so strict: the name becomes a git ref, a ``revision=`` argument and a folder, so anything that needs quoting
    or could be mistaken for a path or a commit sha is refused up front rather than failing half-way through.
    """
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version) or version in RESERVED_VERSIONS:
        raise ValueError(
            f"Invalid version name {version!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
            f" (e.g. 'v1', 'v2', '2024-05-01'); {sorted(RESERVED_VERSIONS)} are reserved."
        )
    if re.fullmatch(r"[0-9a-f]{40}", version):
        raise ValueError(f"Invalid version name {version!r}: it looks like a commit sha; use e.g. 'v1'.")
    return version


def version_sort_key(version: str) -> tuple:
    """Natural order: v2 before v10, numbers compared as numbers."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", version) if t)


def read_card_metadata(text: str, *, source: str = "README.md") -> dict[str, Any]:
    """The YAML front matter of a dataset card as a dict ({} when there is none)."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.DOTALL)
    if not match:
        return {}
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as e:
        raise DatadietError(f"The YAML front matter of {source!r} does not parse: {e}") from None
    if not isinstance(data, dict):
        raise DatadietError(f"The YAML front matter of {source!r} is not a mapping.")
    return data


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        if len(value) > 6:
            return f"[{_short(value[0])}..{_short(value[-1])}] ({len(value)})"
        return "[" + ",".join(_short(v) for v in value) + "]"
    return str(value)


_SUMMARY_KEYS = (
    "source_dataset",
    "source",
    "dataset",
    "model",
    "metrics",
    "epoch",
    "epochs",
    "steps",
    "num_runs",
    "seeds",
)


def provenance_summary(provenance: dict[str, Any], *, max_keys: int = 6) -> str:
    """One line for ``datadiet versions``: source, rows, model, seeds, wall time for cards written by
    ``datadiet score``; the most telling ``key=value`` pairs for any other ``datadiet:`` block."""
    source, scoring = provenance.get("source"), provenance.get("scoring")
    if isinstance(source, dict) and isinstance(scoring, dict):
        parts = [
            f"source={source.get('dataset', '?')}/{source.get('split', '?')} ({source.get('num_rows', '?')} rows)",
            f"model={scoring.get('model', '?')}",
            f"seeds={len(scoring.get('seeds') or [])}",
            f"epochs={scoring.get('epochs') if scoring.get('epochs') is not None else max(scoring.get('at') or [0])}",
        ]
        if "wall_time_s" in provenance:
            parts.append(f"wall={provenance['wall_time_s']}s")
        return "  ".join(parts)
    keys = [k for k in _SUMMARY_KEYS if k in provenance]
    keys += [k for k in provenance if k not in keys]
    return "  ".join(f"{k}={_short(provenance[k])}" for k in keys[:max_keys]) or "(no datadiet provenance in card)"


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
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def commit_sha(self) -> str:
        return self.location

    def summary(self) -> str:
        return provenance_summary(self.provenance)
