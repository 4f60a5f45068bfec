"""Errors raised by datadiet_hub; each also subclasses the builtin a caller would naturally catch."""

from __future__ import annotations


class DatadietError(Exception):
    """Base class of every error datadiet_hub raises on purpose."""


class ScoresNotFoundError(DatadietError, FileNotFoundError):
    """The requested scores (repo, config, version or local folder) do not exist."""


class ScoreMismatchError(DatadietError, ValueError):
    """Scores do not line up with the data they are applied to or compared with."""


class VersionExistsError(DatadietError, FileExistsError):
    """A version with this name already exists and would be overwritten."""


class StoreError(DatadietError, OSError):
    """The local version store could not be read or written."""


class HubError(DatadietError):
    """A Hub request failed; the message says which step and what state the repo is left in."""
