"""Writing the examples of ``examples.collect_examples``: a PNG grid for images, a Markdown table for texts, each
written atomically; and the scoring run's hook that puts them in a score folder's ``plots/``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa

from ._examples_plot import draw_grid
from ._examples_table import markdown_table
from ._plotting import PLOT_EXTRA
from .atomic import atomic_write_bytes
from .errors import DatadietError, InvalidArgumentError, MissingExtraError
from .examples import DEFAULT_MAX_CHARS, ExampleSet, collect_examples
from .folder import ScoreFolder
from .provenance import Provenance
from .sources import Source

logger = logging.getLogger(__name__)


def render_examples(examples: ExampleSet, target: str | os.PathLike, *, max_chars: int = DEFAULT_MAX_CHARS) -> Path:
    """Write ``examples`` to ``target`` atomically: a PNG grid (images; needs matplotlib) or a Markdown table (texts).

    ``target`` must end in ``.png`` for images and ``.md`` for texts.
    """
    target = Path(target)
    if target.suffix.lower() != examples.suffix:
        raise InvalidArgumentError(
            f"{str(target)!r}: the examples of {'an image' if examples.kind == 'image' else 'a text'} dataset are "
            f"written as {examples.suffix} "
            f"({'a grid of thumbnails' if examples.kind == 'image' else 'a Markdown table'}); give a path ending "
            f"in {examples.suffix}.",
            path=target,
            value=str(target),
        )
    if examples.kind == "image":
        draw_grid(examples, target)
    else:
        atomic_write_bytes(target, markdown_table(examples, max_chars=max_chars).encode("utf-8"))
    return target


def write_folder_examples(
    folder: ScoreFolder, config: str, table: pa.Table, source: Source, *, provenance: Provenance | None = None
) -> list[str]:
    """At the end of scoring: the examples of one config into the score folder's ``plots/`` (so the Hub shows
    them), by ``el2n`` (else the first metric). Returns the written paths relative to the folder.

    The examples are an extra of the card, never a reason to lose the scores: without matplotlib an image grid is
    skipped (logged, naming the extra); any other failure (an unreadable image, a full disk, a bug) is logged as a
    warning, with its traceback when it is not a known error, and nothing is written.
    """
    try:
        examples = collect_examples(table, source, provenance=provenance, title=f"config {config}")
        target = folder.examples_file(config, examples.column, examples.suffix)
        render_examples(examples, target)
    except MissingExtraError:
        logger.info("matplotlib not installed: skipped the example grid of %s (%s).", config, PLOT_EXTRA)
        return []
    except Exception as err:
        logger.warning(
            "Could not draw the examples of config %s (the scores are fine; draw them later with `datadiet show "
            "OUT --examples DATASET`): %s",
            config,
            err,
            exc_info=not isinstance(err, DatadietError),  # a bug: keep its traceback in the log
        )
        return []
    logger.info("Wrote the hardest/easiest/mislabeled examples of %s to %s", config, target)
    return [target.relative_to(folder.path).as_posix()]
