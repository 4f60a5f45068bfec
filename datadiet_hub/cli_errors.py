"""The one error -> exit code mapping of the CLI: a known user or environment error prints one ``error:`` line
(with the fix) and exits with its own code; anything else is a bug and shows its traceback.

The codes and their meanings are ``EXIT_CODES`` below, the one table that ``--help`` and ``docs/cli.md`` print.

``DATADIET_DEBUG=1`` re-raises, so the traceback of the same error is shown.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable

from .errors import (
    DatadietError,
    HubError,
    HubUnreachableError,
    MissingExtraError,
    StoreError,
    WriteError,
    transport_errors,
)

EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_EXISTS = 4
EXIT_NETWORK = 5
EXIT_HTTP = 6
EXIT_DISK = 7
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader closed the pipe (`| head`)

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "done"),
    (EXIT_BUG, "a bug: the traceback is shown (please report it)"),
    (EXIT_BAD_INPUT, "bad input: a value, option, file content or card that cannot be used"),
    (EXIT_NOT_FOUND, "not found: a score dataset, version, config, column or source dataset"),
    (EXIT_EXISTS, "already exists: a version, or an output that --force would overwrite"),
    (EXIT_NETWORK, "network: the Hub cannot be reached (no network, HF_ENDPOINT, HF_HUB_OFFLINE=1)"),
    (EXIT_HTTP, "HTTP: the Hub answered with an error status (auth, permissions, server error)"),
    (EXIT_DISK, "disk: cannot write (disk full, not writable, a file where a folder must be)"),
)

EXIT_CODES_HELP = (
    "exit codes:\n"
    + "\n".join(f"  {code} {meaning}" for code, meaning in EXIT_CODES)
    + "\n  DATADIET_DEBUG=1 shows the traceback of any error."
)

# OS errors that describe the machine, not the program: full disk, permissions, a file where a folder must be.
_ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
     errno.EEXIST, errno.ENOTEMPTY}
)  # fmt: skip


def exit_code(err: BaseException) -> int | None:
    """The exit code of a known error, or None for a bug."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(err, HubUnreachableError | OfflineModeIsEnabled):
        return EXIT_NETWORK
    if isinstance(err, HubError | HfHubHTTPError):
        return EXIT_HTTP
    if isinstance(err, WriteError | StoreError):
        return EXIT_DISK
    if isinstance(err, DatadietError):
        if isinstance(err, FileExistsError):
            return EXIT_EXISTS
        if isinstance(err, FileNotFoundError):
            return EXIT_NOT_FOUND
        if isinstance(err, ValueError | MissingExtraError):
            return EXIT_BAD_INPUT
        if isinstance(err, OSError):
            return EXIT_DISK
        return EXIT_BAD_INPUT
    if isinstance(err, transport_errors()):
        return EXIT_NETWORK
    if isinstance(err, FileNotFoundError) and err.filename:
        return EXIT_NOT_FOUND
    if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
        return EXIT_DISK
    return None


def one_line(err: BaseException) -> str:
    """The error as one line, the token (if any) replaced by ``<token>``."""
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, DatadietError):
        text = f"{type(err).__name__}: {text}" if isinstance(err, ConnectionError | TimeoutError) else text
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:  # noqa: BLE001 -- no token source must never hide the real error
        token = None
    for secret in {token, os.environ.get("HF_TOKEN")} - {None, ""}:
        text = text.replace(secret, "<token>")  # type: ignore[arg-type]
    return text


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing left to flush
        pass


def run_guarded(func: Callable[[], int]) -> int:
    """Run ``func``; a known error prints ``error: <message>`` on stderr and returns its exit code; a bug (any other
    exception) propagates with its traceback."""
    try:
        return func()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`datadiet show ... | head`): not an error, and not the network
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE
    except Exception as err:
        code = exit_code(err)
        if code is None or os.environ.get("DATADIET_DEBUG") == "1":
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        print("(set DATADIET_DEBUG=1 for the full traceback)", file=sys.stderr)
        logging.getLogger(__name__).debug("known error", exc_info=True)
        return code
