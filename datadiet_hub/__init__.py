"""datadiet-hub: per-example difficulty scores as versioned Hugging Face datasets, and pruning by them.

Imports neither torch nor anything heavy at import time; the scoring engine lives in the ``scoring`` package.
"""

from ._version import __version__
from .keep import keep
from .loading import load_provenance, load_scores
from .provenance import Provenance
from .prune import prune
from .selection import Selection, select_indices
from .store import LocalStore

__all__ = [
    "LocalStore",
    "Provenance",
    "Selection",
    "__version__",
    "keep",
    "load_provenance",
    "load_scores",
    "prune",
    "select_indices",
]
