"""The local versioned store: immutable version folders, each a complete Hub-layout dataset repo.

Layout: ``<root>/<name>/<version>/{README.md, data/<config>/*.parquet, plots/*.png}``. The root is
``$DATADIET_HOME`` if set, else ``~/.cache/datadiet``. A version is copied into a temporary sibling folder and
renamed into place in one step, so readers never see a partial version and two concurrent publishes of the same
version cannot both win (the loser's ``rename`` fails with ENOTEMPTY and it raises ``VersionExistsError``).

A publish killed midway (SIGKILL, power loss) leaves only a ``.tmp-<version>-<pid>-<random>`` folder, which
``versions`` never lists; the next publish of that name removes the ones whose process is gone.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from .errors import CardError, InvalidNameError, StoreError, VersionExistsError, VersionNotFoundError
from .folder import ScoreFolder
from .provenance import Provenance
from .versions import VersionInfo, validate_version, version_sort_key

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_TMP_PREFIX = ".tmp-"
_STALE_AFTER_S = 24 * 3600  # a temp folder this old is stale even if its pid was reused


def default_root() -> Path:
    return Path(os.environ.get("DATADIET_HOME") or Path.home() / ".cache" / "datadiet")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidNameError(
            f"Invalid score dataset name {name!r}: use letters, digits, '.', '_' or '-', optionally 'owner/name' "
            "(e.g. 'fashion-mnist-datadiet').",
            value=name,
        )
    return name


def is_store_entry(folder: str | os.PathLike) -> bool:
    """The one answer to "is this folder a store entry" (the versions of one name): it holds at least one
    version, and every visible subfolder is a version (a score folder with its card). Hidden folders (a publish
    in progress) do not count."""
    try:
        children = [p for p in Path(folder).iterdir() if not p.name.startswith(".")]
    except OSError:
        return False
    return bool(children) and all(p.is_dir() and ScoreFolder(p).has_card() for p in children)


class LocalStore:
    """Immutable, versioned score datasets on local disk."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path(self, name: str, version: str | None = None) -> Path:
        """Folder of ``name`` at ``version`` (the newest version when None)."""
        validate_name(name)
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise VersionNotFoundError(
                    f"No versions of {name!r} in {self.root}; publish one with `datadiet publish`.",
                    path=self.root,
                    value=name,
                )
            return Path(versions[-1].location)
        folder = self.root / name / validate_version(version)
        if not folder.is_dir():
            known = [v.name for v in self.versions(name)]
            raise VersionNotFoundError(
                f"Version {version!r} of {name!r} not found in {self.root}; available: {known or 'none'}.",
                path=self.root,
                version=version,
            )
        return folder

    def has(self, name: str) -> bool:
        """Whether ``name`` has at least one published version here."""
        return bool(validate_name(name)) and is_store_entry(self.root / name)

    def versions(self, name: str) -> list[VersionInfo]:
        """Published versions of ``name``, oldest name first in natural order (v2 before v10)."""
        base = self.root / validate_name(name)
        if not base.is_dir():
            return []
        infos = []
        for folder in base.iterdir():
            version = ScoreFolder(folder)
            if folder.name.startswith(".") or not version.has_card():
                continue
            try:
                configs, provenance = tuple(version.configs()), version.provenance()
            except CardError as err:
                logger.warning("Listing %s without its card: %s", folder, err)
                configs, provenance = (), Provenance()
            infos.append(VersionInfo(folder.name, "folder", str(folder), configs, provenance))
        return sorted(infos, key=lambda info: version_sort_key(info.name))

    def publish(self, source: str | os.PathLike, name: str, version: str) -> VersionInfo:
        """Copy the score dataset in ``source`` into the store as ``name``/``version``, atomically.

        Raises ``VersionExistsError`` if that version exists (it is left untouched) and ``StoreError`` if the
        store cannot be written.
        """
        source, name, version = Path(source), validate_name(name), validate_version(version)
        configs = ScoreFolder(source).validate()
        target = self.root / name / version
        self._refuse_nesting(name, version)
        if target.exists():
            raise VersionExistsError(
                f"Version {version!r} of {name!r} already exists at {target}; versions are immutable. "
                "Publish under a new version (e.g. the next number)."
            )
        try:
            self.clean_stale(name)
        except OSError as err:  # cleaning is a courtesy; the publish itself reports real write errors
            logger.debug("Could not clean stale temporary folders of %s: %s", name, err)
        tmp = self.root / name / f"{_TMP_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            for rel in ScoreFolder(source).files():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / rel, tmp / rel)
            _fsync_tree(tmp)
            os.rename(tmp, target)  # atomic; fails if another publish created the version meanwhile
            _fsync_dir(target.parent)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY) or target.exists():
                raise VersionExistsError(
                    f"Version {version!r} of {name!r} was published by another process meanwhile; it was kept "
                    "as that process wrote it. Publish under a new version."
                ) from err
            where = f" ({err.filename})" if err.filename else ""
            raise StoreError(
                f"Cannot write to the store at {self.root}: {err.strerror or err}{where}. Nothing was published. "
                "Set DATADIET_HOME (or --store) to a writable folder."
            ) from err
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("Published %s %s to %s", name, version, target)
        return VersionInfo(version, "folder", str(target), tuple(configs))

    def _refuse_nesting(self, name: str, version: str) -> None:
        """Names and versions share one folder tree: ``tiny/v1`` as a name would write inside version ``v1`` of
        ``tiny``, and name ``a`` version ``b`` would land on name ``a/b``. Refuse both (``VersionExistsError``)."""
        parts = name.split("/")
        for i in range(1, len(parts)):
            if (self.root.joinpath(*parts[: i + 1]) / "README.md").is_file():
                inside = "/".join(parts[: i + 1])
                raise VersionExistsError(
                    f"Cannot publish {name!r}: {inside!r} is version {parts[i]!r} of {'/'.join(parts[:i])!r} in "
                    f"{self.root}, and a name cannot live inside a version. Choose another name.",
                    path=self.root / inside,
                    value=name,
                )
        target = self.root / name / version
        if target.is_dir() and not (target / "README.md").is_file() and any(target.glob("*/README.md")):
            raise VersionExistsError(
                f"Cannot publish version {version!r} of {name!r}: {name}/{version} is already a name in {self.root} "
                "(with its own versions). Choose another version name.",
                path=target,
                value=version,
            )

    def clean_stale(self, name: str, *, max_age_s: float = _STALE_AFTER_S) -> int:
        """Remove temporary folders left by killed publishes; returns how many were removed.

        A folder is stale when the process named in it no longer runs on this machine, or it is older than
        ``max_age_s``; a publish in progress in another process is left alone.
        """
        base = self.root / validate_name(name)
        if not base.is_dir():
            return 0
        removed = 0
        for path in base.glob(f"{_TMP_PREFIX}*"):
            if path.is_dir() and _is_stale(path, max_age_s):
                shutil.rmtree(path, ignore_errors=True)
                removed += not path.exists()
        if removed:
            logger.info("Removed %d temporary folder(s) left by interrupted publishes of %s", removed, name)
        return removed


def _is_stale(path: Path, max_age_s: float) -> bool:
    try:
        if time.time() - path.stat().st_mtime > max_age_s:
            return True
    except FileNotFoundError:
        return False
    parts = path.name[len(_TMP_PREFIX) :].rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False  # an old-style name without a pid: only its age can tell
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file so the rename publishes complete data even after a power loss."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
