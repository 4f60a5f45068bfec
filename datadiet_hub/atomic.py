"""Crash-safe file writes, the one way every module, experiment and benchmark writes a file: a temporary file in
the same folder (hidden, so never published if left behind), written, flushed and ``fsync``ed, given the permissions
the umask allows, then ``os.replace``d into place. A reader sees the old file or the new one, never a part; an error
leaves the old file and no temporary behind.

``atomic_path`` hands a temporary path to writers that want a file name (``savefig``, ``save_file``,
``np.savez``, ``to_parquet``); ``atomic_write_bytes``/``atomic_write_text`` write data in memory;
``write_parquet`` one parquet file. (Whole folders are published by a directory rename instead, in ``store.py``
and ``_output.py``: a rename that must fail when the target exists, which ``os.replace`` cannot give.)"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _umask() -> int:
    """The process umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; when the block ends without error it is made durable and
    replaces ``path``, otherwise it is removed. ``suffix`` lets writers that insist on one (``np.savez``: ``.npz``)
    write exactly there."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a shared store must be readable
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, newline: str | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; ``newline`` as ``open`` takes it (``""`` for csv)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline=newline) as handle:
        handle.write(text)


def write_parquet(path: str | os.PathLike, table: pa.Table) -> None:
    """Atomically write one parquet file (zstd)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
