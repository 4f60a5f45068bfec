"""All errors the library raises; each also subclasses the builtin a caller would naturally catch."""


class DatadietError(Exception):
    """Base class for every error raised by datadiet_hub."""


class ScoresNotFoundError(DatadietError, FileNotFoundError):
    """A score dataset, config, version or column could not be found."""


class ScoreMismatchError(DatadietError, ValueError):
    """Scores and the dataset they are applied to do not describe the same examples."""


class VersionExistsError(DatadietError, FileExistsError):
    """A version is already published; versions are immutable."""


class StoreError(DatadietError, OSError):
    """The local store could not be read or written."""


class SourceNotFoundError(DatadietError, FileNotFoundError):
    """The source dataset to score or prune could not be found or read."""


class HubError(DatadietError):
    """A Hub request failed; the message says which step and what state the repo is left in."""
