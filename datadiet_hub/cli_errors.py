"""Turn known errors into one clear line and an exit code; tracebacks only with ``DATADIET_DEBUG=1``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from .errors import DatadietError

EXIT_USER_ERROR = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
KNOWN = (DatadietError, ValueError, FileNotFoundError, FileExistsError, PermissionError, ImportError, KeyError)


def exit_code(err: BaseException) -> int:
    if isinstance(err, FileExistsError):
        return EXIT_CONFLICT
    if isinstance(err, FileNotFoundError):
        return EXIT_NOT_FOUND
    return EXIT_USER_ERROR


def run_guarded(func: Callable[[], int]) -> int:
    """Run ``func``; a known error prints ``error: <message>`` on stderr and returns its exit code."""
    try:
        return func()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except KNOWN as err:
        if os.environ.get("DATADIET_DEBUG") == "1":
            raise
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"error: {message}", file=sys.stderr)
        print("(set DATADIET_DEBUG=1 for the full traceback)", file=sys.stderr)
        logging.getLogger(__name__).debug("user error", exc_info=True)
        return exit_code(err)
