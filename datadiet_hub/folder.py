"""``ScoreFolder``: the one owner of a score dataset's layout, its card and its validation.

A score folder is a complete Hub dataset repo::

    README.md                              card: YAML (``configs:`` + ``datadiet:`` provenance) and body
    data/<config>/train-00000-of-00001.parquet
    plots/<config>-<metric>.png            score histogram
    plots/<config>-<column>-examples.png   hardest/easiest/mislabeled images (``.md``: a table, for texts)

The card is read and written only here, through ``huggingface_hub``'s ``DatasetCard`` (no hand-parsed YAML);
an unreadable card is always a ``CardError``. The local store and the Hub both publish exactly ``files()``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard

from .card import ScoreCard
from .errors import (
    CardError,
    ConfigNotFoundError,
    InvalidArgumentError,
    ScoresNotFoundError,
    ScoreTableError,
    UnsafeCardError,
    UnsafeFileError,
)
from .provenance import Provenance
from .schema import DATA_GLOB, validate_scores, validate_table

logger = logging.getLogger(__name__)

README = "README.md"
DATA_DIR = "data"
PLOTS_DIR = "plots"
DATA_FILE = "data/{config}/train-00000-of-00001.parquet"
PLOT_FILE = "plots/{config}-{metric}.png"
EXAMPLES_FILE = "plots/{config}-{column}-examples{suffix}"
EXAMPLES_TABLES = "*-examples.md"  # the only Markdown files a version's plots/ may hold
PUBLISHED_FILES = (README,)
PUBLISHED_DIRS = (DATA_DIR, PLOTS_DIR)


def is_examples_file(rel: str | os.PathLike) -> bool:
    """Whether a folder-relative path is an examples grid or table (not a score histogram)."""
    path = Path(rel)
    return path.parent.as_posix() == PLOTS_DIR and path.stem.endswith("-examples")


def load_card(readme: str | os.PathLike) -> ScoreCard:
    """Parse a card file (``ScoreCard.read``): every way it can fail is one ``CardError`` naming the file."""
    return ScoreCard.read(readme)


_MAGIC = {"png": (b"\x89PNG\r\n\x1a\n", b""), "parquet": (b"PAR1", b"PAR1")}


def _check_kind(path: Path, kind: str) -> None:
    """``UnsafeFileError`` unless ``path`` is a regular file of ``kind`` (``card`` or ``markdown``: UTF-8 text,
    ``parquet`` or ``png``)."""
    text_kind = kind in ("card", "markdown")
    if not path.is_file() or path.is_symlink():
        raise UnsafeFileError(f"{path} is not a regular file; a version holds only regular files.", path=path)
    with open(path, "rb") as handle:
        data = handle.read() if text_kind else b""
        if not text_kind:
            head, tail = _MAGIC[kind]
            start = handle.read(len(head))
            end = b""
            if tail:
                handle.seek(0, os.SEEK_END)
                if handle.tell() >= len(head) + len(tail):
                    handle.seek(-len(tail), os.SEEK_END)
                    end = handle.read(len(tail))
            if start != head or end != tail:
                raise UnsafeFileError(
                    f"{path.name} ({path}) is not a {kind.upper()} file (its bytes do not start"
                    f"{' and end' if tail else ''} like one); only real {kind} files are published. Rewrite it or "
                    "remove it.",
                    path=path,
                )
            return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        what = "README.md" if kind == "card" else "plots/*-examples.md"
        raise UnsafeFileError(f"{path} is not a UTF-8 text file; a version's {what} must be one.", path=path)


def _entry_paths(entry: Any) -> list[str]:
    """The path strings of one ``data_files`` value (a string, a list, or split dicts with ``path``)."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return _entry_paths(entry.get("path", []))
    if isinstance(entry, list):
        return [p for item in entry for p in _entry_paths(item)]
    return [str(entry)]


def check_data_files(metadata: dict[str, Any], *, where: str) -> None:
    """``UnsafeCardError`` unless every ``configs[].data_files`` path of a card stays inside its folder or repo."""
    from pathlib import PurePosixPath

    for entry in metadata.get("configs") or []:
        if not isinstance(entry, dict):
            continue
        for raw in _entry_paths(entry.get("data_files", [])):
            posix = PurePosixPath(raw.replace("\\", "/"))
            if "://" in raw or raw.startswith(("~", "/")) or posix.is_absolute() or ".." in posix.parts or ":" in raw:
                raise UnsafeCardError(
                    f"The card {where} points config {entry.get('config_name')!r} at {raw!r}, outside its own "
                    "folder or repo; a version may only read its own data/<config>/*.parquet files. Fix the "
                    "`data_files` path (e.g. data/<config>/train-*.parquet) or rewrite the folder with "
                    "`datadiet score`.",
                    path=where,
                    value=raw,
                )


class ScoreFolder:
    """A score dataset on local disk (a ``datadiet score`` output, a store version or a Hub snapshot).

    Cheap to create; every method reads the files when called, so it always reflects what is on disk.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ScoreFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- layout ------------------------------------------------------------------------------------------------

    @property
    def readme(self) -> Path:
        return self.path / README

    def has_card(self) -> bool:
        return self.readme.is_file()

    def data_file(self, config: str) -> Path:
        """Where the writer puts the (single) parquet file of ``config``."""
        return self.path / DATA_FILE.format(config=config)

    def data_files(self, config: str) -> list[Path]:
        """The parquet files of ``config``, sorted."""
        return sorted(self.path.glob(DATA_GLOB.format(config=config)))

    def plot_file(self, config: str, metric: str) -> Path:
        return self.path / PLOT_FILE.format(config=config, metric=metric)

    def examples_file(self, config: str, column: str, suffix: str) -> Path:
        """Where the examples of ``config`` by ``column`` go: ``.png`` (images) or ``.md`` (texts)."""
        return self.path / EXAMPLES_FILE.format(config=config, column=column, suffix=suffix)

    def files(self) -> list[Path]:
        """The files that make up a version, as relative paths: exactly the layout, ``README.md``,
        ``data/<config>/*.parquet`` of the configs the card declares, ``plots/*.png`` and ``plots/*-examples.md``.

        The local store copies and the Hub uploads exactly these, so each is checked first: a symlink anywhere in
        the layout is refused (publishing must never upload what a link points to, such as a token file), and each
        file must be what its name says (parquet magic, PNG signature, UTF-8 card and tables), else
        ``UnsafeFileError``.
        Anything else in ``data/`` or ``plots/`` is left out with a warning; hidden files (temporaries, engine
        state) silently, as ``datasets`` ignores them too.
        """
        self._refuse_symlinks()
        files: list[Path] = []
        if self.readme.is_file():
            _check_kind(self.readme, "card")
            files.append(Path(README))
        configs = self.configs() if self.readme.is_file() else []
        for config in configs:
            for path in sorted((self.path / DATA_DIR / config).glob("*.parquet")):
                if not path.name.startswith("."):
                    _check_kind(path, "parquet")
                    files.append(path.relative_to(self.path))
        plots = self.path / PLOTS_DIR
        for path in sorted(plots.glob("*.png")) if plots.is_dir() else []:
            if not path.name.startswith("."):
                _check_kind(path, "png")
                files.append(path.relative_to(self.path))
        for path in sorted(plots.glob(EXAMPLES_TABLES)) if plots.is_dir() else []:
            if not path.name.startswith("."):
                _check_kind(path, "markdown")
                files.append(path.relative_to(self.path))
        chosen = set(files)
        left_out = sorted(
            rel
            for sub in PUBLISHED_DIRS
            if (self.path / sub).is_dir()
            for rel in (p.relative_to(self.path) for p in (self.path / sub).rglob("*") if p.is_file())
            if rel not in chosen and not any(part.startswith(".") for part in rel.parts)
        )
        if left_out:
            logger.warning(
                "Not publishing %s from %s: only README.md, data/<config>/*.parquet of the card's configs and "
                "plots/*.png and plots/*-examples.md are part of a version.",
                [p.as_posix() for p in left_out],
                self.path,
            )
        return files

    def _refuse_symlinks(self) -> None:
        """``UnsafeFileError`` if the card, ``data/``, ``plots/`` or anything under them is a symlink."""
        for top in (README, *PUBLISHED_DIRS):
            start = self.path / top
            candidates = [start]
            if start.is_dir() and not start.is_symlink():
                for root, dirs, names in os.walk(start, followlinks=False):
                    candidates += [Path(root) / n for n in dirs + names]
            for path in candidates:
                if path.is_symlink():
                    rel = path.relative_to(self.path).as_posix()
                    raise UnsafeFileError(
                        f"{rel} in {self.path} is a symlink (to {os.readlink(path)!r}); a version holds only "
                        "regular files and publishing never follows links. Replace it with the file itself, or "
                        "remove it.",
                        path=path,
                    )

    def check_data_files(self) -> None:
        """Every ``data_files`` entry of the card must be a relative path inside this folder (no absolute path, no
        ``..``, no URL): otherwise a version could serve a file from outside itself (``UnsafeCardError``)."""
        check_data_files(self.metadata(), where=str(self.readme))

    def unpublished(self) -> list[str]:
        """Top-level entries that ``files()`` leaves out (other than hidden ones), to warn about."""
        if not self.path.is_dir():
            return []
        keep = set(PUBLISHED_FILES + PUBLISHED_DIRS)
        return sorted(p.name for p in self.path.iterdir() if p.name not in keep and not p.name.startswith("."))

    # -- the card ----------------------------------------------------------------------------------------------

    def card(self) -> ScoreCard:
        """The parsed card (``CardError`` if missing or unreadable)."""
        return load_card(self.readme)

    def metadata(self) -> dict[str, Any]:
        """The card's YAML header as a dict (``{}`` when it has none)."""
        return self.card().data.to_dict()

    def configs(self) -> list[str]:
        """The config names the card declares, in card order."""
        entries = self.metadata().get("configs") or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "config_name" in e for e in entries):
            raise CardError(
                f"The `configs:` of {str(self.readme)!r} is not a list of entries with a `config_name` "
                f"({entries!r}); rewrite the folder with `datadiet score`.",
                path=self.readme,
            )
        return [str(e["config_name"]) for e in entries]

    def provenance(self) -> Provenance:
        """The card's ``datadiet:`` block (an empty ``Provenance`` when the card has none)."""
        block = self.metadata().get("datadiet")
        if block is not None and not isinstance(block, dict):
            raise CardError(
                f"The `datadiet:` block of {str(self.readme)!r} is not a mapping ({block!r}).", path=self.readme
            )
        return Provenance.from_dict(block)

    def write_card(self, card: DatasetCard) -> None:
        """Atomically replace the card."""
        ScoreCard(str(card)).save(self.readme)

    # -- data --------------------------------------------------------------------------------------------------

    def pick_config(self, config: str | None) -> str:
        """``config`` if the card declares it; the only config when ``config`` is None."""
        configs = self.configs()
        if config is None:
            if len(configs) == 1:
                return configs[0]
            raise InvalidArgumentError(
                f"{self.path} has several configs {configs}; choose one with config= (CLI: --config).",
                path=self.path,
                value=configs,
            )
        if config not in configs:
            raise ConfigNotFoundError(
                f"Config {config!r} not found in {self.path}; available: {configs}.",
                path=self.path,
                config=config,
            )
        return config

    def read_table(self, config: str) -> pa.Table:
        """One config's score table, straight from its parquet files (with the provenance in its schema)."""
        files = self.data_files(config)
        if not files:
            raise ScoresNotFoundError(
                f"Config {config!r} has no data file under {self.path / DATA_DIR / config}.",
                path=self.path,
                config=config,
            )
        return pa.concat_tables([pq.read_table(f) for f in files])

    def validate(self) -> list[str]:
        """Check the folder is a loadable score dataset (card, configs, valid tables); return its configs.

        Raises ``ScoresNotFoundError`` (no folder, no card, a config without data, a data file that is not a valid
        score table); a card that does not parse is a ``CardError``.
        """
        if not self.path.is_dir():
            raise ScoresNotFoundError(
                f"Score folder {str(self.path)!r} does not exist or is not a directory.", path=self.path
            )
        if not self.has_card():
            raise ScoresNotFoundError(
                f"{self.path} is not a score dataset: it has no README.md. Run `datadiet score ... --output-dir "
                f"{self.path}` first, or point at the folder it wrote.",
                path=self.path,
            )
        if not any(self.path.glob("data/**/*.parquet")):
            raise ScoresNotFoundError(
                f"Score folder {str(self.path)!r} has no data/**/*.parquet files to publish; write the scores with "
                "`datadiet score` first.",
                path=self.path,
            )
        configs = self.configs()
        if not configs:
            raise ScoresNotFoundError(f"{self.readme} declares no `configs:`; nothing to publish.", path=self.readme)
        self.check_data_files()
        self.files()  # no symlink, every layout file what it claims to be
        card_rows = self.provenance().source.num_rows
        for config in configs:
            files = self.data_files(config)
            if not files:
                raise ScoresNotFoundError(
                    f"Config {config!r} has no data file under {self.path / DATA_DIR / config}.",
                    path=self.path,
                    config=config,
                )
            rows = 0
            for path in files:
                try:
                    table = pq.read_table(path)
                    validate_table(table)
                    validate_scores(table)
                except (ValueError, OSError, pa.ArrowException) as err:
                    raise ScoreTableError(
                        f"{path} is not a valid score table: {' '.join(str(err).split())}. Rewrite it with "
                        "`datadiet score`; nothing was published.",
                        path=path,
                        config=config,
                    ) from err
                rows += table.num_rows
            if card_rows is not None and rows != int(card_rows):
                raise ScoreTableError(
                    f"Config {config!r} in {self.path} has {rows} rows but its card says the source has {card_rows}"
                    " (datadiet.source.num_rows): the table is incomplete or belongs to another split. Rewrite it"
                    " with `datadiet score`; nothing was published.",
                    path=self.path,
                    config=config,
                    value=rows,
                )
        return configs
