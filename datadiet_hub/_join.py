"""What ``prune`` and ``keep`` share: the join options, the provenance to check against, the scored-id reader."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .align import validate_missing, validate_verify
from .errors import InvalidArgumentError
from .provenance import Provenance
from .score_table import column_names, score_ids
from .table_provenance import as_provenance, provenance_of

JOIN_KEYS = ("idx", "example_id")


def validate_join(on: str, missing: str, verify: str) -> tuple[str, str, str]:
    """``(on, missing, verify)`` after checking each against its choices."""
    if on not in JOIN_KEYS:
        raise InvalidArgumentError(f"on={on!r}; choose one of: {', '.join(JOIN_KEYS)}.", value=on)
    return on, validate_missing(missing), validate_verify(verify)


def provenance_for(scores: Any, provenance: Provenance | Mapping[str, Any] | None) -> Provenance | None:
    """The provenance given, else the one the score table carries (``load_scores``), else None."""
    if provenance is not None:
        return as_provenance(provenance)
    return provenance_of(scores)


def ids_reader(scores: Any) -> Callable[[np.ndarray | None], Any] | None:
    """For ``check_alignment``: reads the scored ids at the positions it checks (32 rows unless verify="full")."""
    if "example_id" not in column_names(scores):
        return None
    return lambda positions: score_ids(scores, positions)
