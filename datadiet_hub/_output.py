"""Writing a pruned dataset: never over its input, a score dataset or a store, never over anything without
``--force``, and always temp + rename, so a failure (a full disk) leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .errors import OutputExistsError, WriteError
from .store import is_store_entry

FORMATS = ("arrow", "parquet")


def output_format(out: str | os.PathLike, fmt: str | None) -> str:
    """``fmt`` when given, else ``parquet`` for a ``.parquet`` path and ``arrow`` (a ``save_to_disk`` folder)."""
    return fmt or ("parquet" if Path(out).suffix.lower() == ".parquet" else "arrow")


def _score_dataset_root(path: Path) -> Path | None:
    """The score dataset folder or store entry ``path`` is in (or is), if any."""
    for folder in (path, *path.parents):
        if (folder / "README.md").is_file() and (folder / "data").is_dir():
            return folder  # a score folder or a store version
        if is_store_entry(folder):
            return folder  # a store entry: every subfolder is a version
    return None


def check_output(
    out: str | os.PathLike, *, inputs: list[str | os.PathLike], stores: tuple[Path, ...] | list[Path] = (), force: bool
) -> Path:
    """Refuse an output that would overwrite an input or land in a score dataset or store (even with ``force``),
    or overwrite an existing file or non-empty folder (without ``force``). Returns the output path."""
    out = Path(out)
    target = out.resolve()
    for raw in inputs:
        inp = Path(raw)
        if not inp.exists():
            continue
        inp = inp.resolve()
        if target == inp or inp in target.parents or target in inp.parents:
            raise OutputExistsError(
                f"--output {str(out)!r} would overwrite the input {str(raw)!r}; write the pruned rows elsewhere.",
                path=out,
            )
    for store in stores:
        root = Path(store).resolve()
        if target == root or root in target.parents:
            raise OutputExistsError(
                f"--output {str(out)!r} is inside the local store {str(store)!r}, which holds only published "
                "versions. Write the pruned rows elsewhere.",
                path=out,
            )
    if target.exists() or target.parent.exists():
        inside = _score_dataset_root(target if target.exists() else target.parent)
        if inside is not None:
            raise OutputExistsError(
                f"--output {str(out)!r} is inside the score dataset or store {str(inside)!r}; versions are immutable "
                "and a store holds only published versions. Write the pruned rows elsewhere.",
                path=out,
            )
    if (target.is_dir() and any(target.iterdir())) or (target.exists() and not target.is_dir()):
        if not force:
            what = "a non-empty folder" if target.is_dir() else "a file"
            raise OutputExistsError(
                f"--output {str(out)!r} exists and is {what}; pass --force to replace it, or choose another path.",
                path=out,
            )
    return out


def write_dataset(dataset: Any, out: str | os.PathLike, fmt: str) -> None:
    """Write ``dataset`` (parquet file or ``save_to_disk`` folder) to a temporary sibling, then rename it over
    ``out``; on any failure the temporary is removed and ``out`` is as it was."""
    out = Path(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            dataset.to_parquet(str(tmp))
        else:
            dataset.save_to_disk(str(tmp))
        _replace(tmp, out)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            raise WriteError(
                f"Cannot write {str(out)!r}: {err.strerror or err}{where}. Nothing was written; free some space or "
                "choose another --output.",
                path=out,
            ) from err
        raise


def _replace(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
    elif out.is_dir():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
