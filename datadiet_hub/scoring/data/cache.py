"""The prepared split, kept across runs: a run whose source and data settings match an earlier run's links that
run's decoded tensors, example ids and plan into its own state folder instead of loading, decoding and hashing
every row again.

Key: a hash of the source's fingerprint (the content hash of the Fashion-MNIST IDX files, else the ``datasets``
fingerprint of the loaded split, which changes when its data files do), the split, the columns and the settings
that shape the plan (data path, image size and channels, augmentation), plus ``CACHE_FORMAT``. A source without a
fingerprint (a stream) is not cached. A changed source gives a new key; old entries stay until deleted.

Folder: ``$DATADIET_DECODED_CACHE`` if set (``off`` turns the cache off), else ``.decoded`` under the local store
(``$DATADIET_HOME`` or ``~/.cache/datadiet``). An entry is written into a private temporary folder and renamed
into place in one step, so a reader sees a complete entry or none, concurrent runs that both miss each write their
own and the first rename wins, and a killed run leaves only a temporary folder (swept after a day). Files reach a
state folder as hard links (a copy across file systems); nothing ever writes into them in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bump when what an entry holds, or how rows are decoded or hashed, changes: old entries are then ignored."""
ENV = "DATADIET_DECODED_CACHE"
_STALE_SECONDS = 24 * 3600
_PLAN_FIELDS = ("data_path", "image_size", "image_channels", "augmentation", "streaming")
_SOURCE_FIELDS = (
    "dataset",
    "split",
    "input_column",
    "image_column",
    "text_column",
    "label_column",
    "revision",
    "data_files",
)


def cache_root() -> Path | None:
    """The cache folder, or None when ``$DATADIET_DECODED_CACHE`` is ``off`` (or ``0``)."""
    configured = os.environ.get(ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("off", "0", "false", "no", "") else Path(configured)
    from datadiet_hub.store import default_root

    return default_root() / ".decoded"


def file_digest(paths: list[Path]) -> str:
    """blake2b over the bytes of ``paths`` (names and sizes included): a content fingerprint of raw source files."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(f"{path.name}|{path.stat().st_size}|".encode())
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def cache_key(cfg: Any, source_fingerprint: str) -> str:
    """The entry name of ``cfg``'s prepared split, given its source's fingerprint."""
    identity = {
        "format": CACHE_FORMAT,
        "source": source_fingerprint,
        **{name: getattr(cfg, name, None) for name in _SOURCE_FIELDS + _PLAN_FIELDS},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:40]


class PreparedCache:
    """Entries ``<root>/<key>/`` holding the state files of a prepared split (``FILES`` of the data path)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> Path:
        return self.root / key

    def restore(self, key: str, state_dir: Path, *, last: str) -> bool:
        """Link every file of entry ``key`` into ``state_dir``, ``last`` (the file that marks the preparation
        done) after the others; False when there is no entry. An entry is complete once its folder exists."""
        entry = self.entry(key)
        if not (entry / last).is_file():
            return False
        names = sorted(path.name for path in entry.iterdir() if path.name != last)
        for name in (*names, last):
            _link_or_copy(entry / name, state_dir / name)
        os.utime(entry)  # recently used: a clean-up can drop the least recently used entries first
        logger.info("prepared split restored from the cache (%s)", entry)
        return True

    def store(self, key: str, state_dir: Path, names: tuple[str, ...]) -> None:
        """Add ``state_dir``'s files ``names`` as entry ``key`` (no-op when it exists; never raises for a cache
        that cannot be written: the run itself has what it needs)."""
        entry = self.entry(key)
        if entry.is_dir():
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep()
            tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}.", suffix=".tmp"))
            try:
                for name in names:
                    _link_or_copy(state_dir / name, tmp / name)
                os.chmod(tmp, 0o755)
                os.rename(tmp, entry)  # atomic; fails if another run renamed its entry first
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not entry.is_dir():
                    raise
                return
            logger.info("prepared split cached for later runs (%s)", entry)
        except OSError as err:
            logger.warning(
                "could not cache the prepared split in %s (%s); later runs will prepare it again", entry, err
            )

    def _sweep(self) -> None:
        """Remove temporary folders that killed runs left more than a day ago."""
        now = time.time()
        for path in self.root.glob(".*.tmp"):
            try:
                if now - path.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue


def _link_or_copy(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a hard link (no copy) or, across file systems, a copy."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
