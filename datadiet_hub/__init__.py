"""datadiet-hub: per-example difficulty scores as versioned Hugging Face datasets, and pruning by them.

Imports neither torch nor anything heavy at import time; the scoring engine lives in the ``scoring`` package.
"""

__version__ = "0.1.0"

from .filtering import keep, prune, select_indices  # noqa: E402
from .loading import load_provenance, load_scores  # noqa: E402
from .store import LocalStore  # noqa: E402

__all__ = ["__version__", "keep", "load_provenance", "load_scores", "prune", "select_indices", "LocalStore"]
