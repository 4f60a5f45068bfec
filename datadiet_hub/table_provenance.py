"""The provenance a score table carries: ``load_scores`` records it in ``Dataset.info.description`` behind
``DESCRIPTION_MARKER`` (``attach``/``provenance_of``). ``datasets.load_dataset`` drops custom parquet schema
metadata, but ``Dataset.info`` survives ``select``, ``filter``, ``with_format`` and ``save_to_disk``, so no global
state joins ``load_scores`` and ``prune``; a pyarrow table read from our parquet carries it in its schema."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .errors import ProvenanceError
from .provenance import Provenance

__all__ = ["DESCRIPTION_MARKER", "as_provenance", "attach", "provenance_of"]

logger = logging.getLogger(__name__)

DESCRIPTION_MARKER = "\n\n<!-- datadiet-provenance "
_DESCRIPTION_END = " -->"


def attach(dataset: Any, provenance: Provenance | None) -> Any:
    """Record ``provenance`` in ``dataset.info.description`` (behind ``DESCRIPTION_MARKER``) and return it.

    ``Dataset.info`` travels with ``select``, ``filter``, ``with_format``, ``shuffle`` and ``save_to_disk``;
    nothing is kept anywhere else.
    """
    if provenance is None:
        return dataset
    info = dataset.info
    text = info.description or ""
    if DESCRIPTION_MARKER in text:
        text = text[: text.index(DESCRIPTION_MARKER)]
    info.description = f"{text}{DESCRIPTION_MARKER}{provenance.to_json()}{_DESCRIPTION_END}"
    return dataset


def provenance_of(scores: Any) -> Provenance | None:
    """The provenance a score table carries: a ``Dataset`` from ``load_scores`` (and anything derived from it),
    or a pyarrow Table read from our parquet files; None for other tables (dicts, tables built by hand)."""
    schema = getattr(scores, "schema", None)
    if schema is not None and hasattr(schema, "metadata"):  # pyarrow.Table
        return Provenance.from_parquet_metadata(schema.metadata)
    info = getattr(scores, "info", None)
    text = getattr(info, "description", None) or ""
    if DESCRIPTION_MARKER not in text:
        return None
    body = text[text.rindex(DESCRIPTION_MARKER) + len(DESCRIPTION_MARKER) :]
    if body.endswith(_DESCRIPTION_END):
        body = body[: -len(_DESCRIPTION_END)]
    try:
        return Provenance.from_json(body)
    except ProvenanceError as err:
        logger.warning("Ignoring an unreadable provenance in the table's description: %s", err)
        return None


def as_provenance(value: Provenance | Mapping[str, Any] | None) -> Provenance | None:
    """Accept a ``Provenance`` or a ``datadiet:`` mapping (what older callers pass)."""
    if value is None or isinstance(value, Provenance):
        return value
    return Provenance.from_dict(value)
