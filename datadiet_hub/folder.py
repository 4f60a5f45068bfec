"""``ScoreFolder``: the one owner of a score dataset's layout, its card and its validation.

A score folder is a complete Hub dataset repo::

    README.md                              card: YAML (``configs:`` + ``datadiet:`` provenance) and body
    data/<config>/train-00000-of-00001.parquet
    plots/<config>-<metric>.png

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
import yaml
from huggingface_hub import DatasetCard

from ._atomic import atomic_write_bytes
from .errors import CardError, ConfigNotFoundError, InvalidArgumentError, ScoresNotFoundError
from .provenance import Provenance
from .schema import validate_table

logger = logging.getLogger(__name__)

README = "README.md"
DATA_DIR = "data"
PLOTS_DIR = "plots"
DATA_FILE = "data/{config}/train-00000-of-00001.parquet"
DATA_GLOB = "data/{config}/train-*.parquet"
PLOT_FILE = "plots/{config}-{metric}.png"
PUBLISHED_FILES = (README,)
PUBLISHED_DIRS = (DATA_DIR, PLOTS_DIR)


def yaml_configs(config_names: list[str]) -> list[dict[str, Any]]:
    """The ``configs:`` YAML entries that let plain ``load_dataset(folder, config)`` find each parquet file."""
    return [
        {"config_name": name, "data_files": [{"split": "train", "path": DATA_GLOB.format(config=name)}]}
        for name in config_names
    ]


def load_card(readme: str | os.PathLike) -> DatasetCard:
    """Parse a card file with ``huggingface_hub``; every way it can fail is one ``CardError`` naming the file."""
    readme = Path(readme)
    if not readme.is_file():  # DatasetCard.load would take a missing path for a Hub repo id
        raise CardError(
            f"{str(readme)!r} does not exist: a score dataset needs its card (README.md with the `configs:` YAML). "
            "Point at the folder `datadiet score` wrote.",
            path=readme,
        )
    try:
        return DatasetCard.load(readme)
    except (ValueError, yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        raise CardError(
            f"The card {str(readme)!r} cannot be read: {' '.join(str(err).split())}. Fix its YAML header "
            "(between the two '---' lines) or rewrite the folder with `datadiet score`.",
            path=readme,
        ) from err


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

    def files(self) -> list[Path]:
        """The files that make up a version, as relative paths: the card, ``data/`` and ``plots/``.

        Hidden files and folders (temporary files, engine state) are left out, as ``datasets`` ignores them too;
        the local store copies and the Hub uploads exactly these.
        """
        files = [Path(f) for f in PUBLISHED_FILES if (self.path / f).is_file()]
        for sub in PUBLISHED_DIRS:
            if (self.path / sub).is_dir():
                files += sorted(
                    p.relative_to(self.path)
                    for p in (self.path / sub).rglob("*")
                    if p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.path).parts)
                )
        return files

    def unpublished(self) -> list[str]:
        """Top-level entries that ``files()`` leaves out (other than hidden ones), to warn about."""
        if not self.path.is_dir():
            return []
        keep = set(PUBLISHED_FILES + PUBLISHED_DIRS)
        return sorted(p.name for p in self.path.iterdir() if p.name not in keep and not p.name.startswith("."))

    # -- the card ----------------------------------------------------------------------------------------------

    def card(self) -> DatasetCard:
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
        atomic_write_bytes(self.readme, str(card).encode("utf-8"))

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
        for config in configs:
            files = self.data_files(config)
            if not files:
                raise ScoresNotFoundError(
                    f"Config {config!r} has no data file under {self.path / DATA_DIR / config}.",
                    path=self.path,
                    config=config,
                )
            for path in files:
                try:
                    validate_table(pq.read_table(path))
                except (ValueError, OSError, pa.ArrowException) as err:
                    raise ScoresNotFoundError(
                        f"{path} is not a valid score table: {err}. Rewrite it with `datadiet score`.",
                        path=path,
                        config=config,
                    ) from err
        return configs
