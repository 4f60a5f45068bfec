"""Every error datadiet_hub raises: one hierarchy, each class also a subclass of the builtin a caller would catch.

As in ``huggingface_hub.errors``, an error carries what it is about as attributes (``path``, ``repo_id``,
``version``, ``config``, ``column``, ``value``), so callers can react without parsing the message; the message
quotes the bad value and names the fix. ``cli_errors`` maps these types to one line and an exit code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class DatadietError(Exception):
    """Base class for every error raised by datadiet_hub.

    Attributes:
        path: the file or folder concerned, if any.
        repo_id: the Hub repo concerned, if any.
        version: the version (store version, Hub tag or branch) concerned, if any.
        config: the score config concerned, if any.
        column: the column concerned, if any.
        value: the offending value, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Any = None,
        repo_id: str | None = None,
        version: str | None = None,
        config: str | None = None,
        column: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.repo_id = repo_id
        self.version = version
        self.config = config
        self.column = column
        self.value = value

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# -- not found (FileNotFoundError) -----------------------------------------------------------------------------------


class ScoresNotFoundError(DatadietError, FileNotFoundError):
    """A score dataset, config, version or column could not be found."""


class ConfigNotFoundError(ScoresNotFoundError):
    """The score dataset has no config of that name (``config``)."""


class VersionNotFoundError(ScoresNotFoundError):
    """No version of that name (``version``) in the local store or the Hub repo."""


class ColumnNotFoundError(ScoresNotFoundError):
    """The score table has no column of that name (``column``)."""


class InputNotFoundError(DatadietError, FileNotFoundError):
    """A file named by the user (a config file, an input path) does not exist (``path``)."""


class SourceNotFoundError(DatadietError, FileNotFoundError):
    """The source dataset to score or prune could not be found or read."""


# -- bad values (ValueError) -----------------------------------------------------------------------------------------


class InvalidArgumentError(DatadietError, ValueError):
    """An argument has a value the library cannot use (``value``); the message lists the valid choices."""


class InvalidTypeError(InvalidArgumentError, TypeError):
    """A value of the wrong type where the user chose it (e.g. a model factory that returns no module)."""


class InvalidNameError(InvalidArgumentError):
    """A version, store name or config name that cannot be a folder, git ref or config (``value``)."""


class ScoreMismatchError(DatadietError, ValueError):
    """Scores and the dataset they are applied to do not describe the same examples."""


class ScoreTableError(DatadietError, ValueError):
    """A table does not follow the score format (columns, types, ``idx``)."""


class CardError(DatadietError, ValueError):
    """A score dataset's card (``README.md``) is missing, unreadable or lacks what it must declare (``path``)."""


class ProvenanceError(DatadietError, ValueError):
    """A ``datadiet:`` provenance block that cannot be read."""


# -- conflicts and I/O -----------------------------------------------------------------------------------------------


class VersionExistsError(DatadietError, FileExistsError):
    """A version is already published; versions are immutable."""


class StoreError(DatadietError, OSError):
    """The local store could not be read or written."""


class HubError(DatadietError, ConnectionError):
    """A Hub request failed; the message says which step and what state the repo is left in.

    Attributes (besides the base ones):
        status: the HTTP status the Hub answered with, if it answered.
    """

    def __init__(self, message: str, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class HubUnreachableError(HubError):
    """The Hub could not be reached at all (no network, wrong ``HF_ENDPOINT``, ``HF_HUB_OFFLINE=1``)."""


class UnsafeFileError(DatadietError, ValueError):
    """A file to publish or read is not what the layout allows: a symlink, or not what its name says (``path``)."""


class UnsafeCardError(CardError):
    """A card's ``data_files`` point outside its own folder or repo (``path``, ``value``: the entry)."""


class OutputExistsError(DatadietError, FileExistsError):
    """An output would overwrite the input, a non-empty folder, a file or a store version (``path``)."""


class WriteError(DatadietError, OSError):
    """An output could not be written (disk full, not writable, a file where a folder must be); nothing was left
    behind (``path``)."""


class MissingExtraError(DatadietError, ImportError):
    """A feature needs an optional dependency; the message names the ``pip install 'datadiet-hub[...]'`` extra."""


def transport_errors() -> tuple[type[BaseException], ...]:
    """Errors meaning "the server was not reached" (refused, DNS, timeout, offline mode): the builtins plus the
    transport errors of the HTTP clients huggingface_hub and datasets use, looked up lazily."""
    import importlib

    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx", "requests"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in ("TransportError", "ConnectionError", "Timeout", "TimeoutException"):
            kind = getattr(module, name, None)
            if isinstance(kind, type) and issubclass(kind, BaseException):
                found.append(kind)
    return tuple(found)


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """`` Did you mean 'el2n'?`` when ``value`` (a name the user typed: a column, a flag's value) is close to some
    of ``choices`` (``difflib``; a different case counts as close), else ``""``: the one way every "unknown column"
    error suggests the intended name."""
    if not isinstance(value, str):
        return ""
    names = [str(c) for c in choices]
    same_case = [c for c in names if c.lower() == value.lower() and c != value]
    matches = list(dict.fromkeys(same_case + difflib.get_close_matches(value, names, n=3, cutoff=0.6)))[:3]
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
