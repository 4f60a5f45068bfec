"""Appending a benchmark's measured rows to its results CSV, each stamped with when and by which command."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any


def append_rows(path: str | Path, command: str, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` to ``path`` under the columns ``when``, ``command`` and the first row's keys (the header is
    written when the file is new); ``command`` is recorded with relative paths, as the repository's results are."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    fields = ["when", "command", *rows[0]]
    if not new:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        if header != fields:
            raise ValueError(
                f"{path} has the columns {header}, these rows have {fields}: the rows would land under the wrong "
                "names. Append to a new file (--csv), or add the missing columns to the old rows first."
            )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({"when": stamp, "command": command, **row})
