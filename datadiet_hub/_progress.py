"""``--no-progress`` reaches ``datasets`` too: its own bars ("Generating train split", "Casting to class labels",
map/filter) and its info logging are switched off for the run and restored after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def datasets_progress(enabled: bool) -> Iterator[None]:
    """Within the block, ``datasets`` shows its progress bars only if ``enabled``; the previous state comes back."""
    if enabled:
        yield
        return
    import datasets
    from datasets.utils import logging as ds_logging

    was_enabled = datasets.is_progress_bar_enabled()
    verbosity = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(max(verbosity, ds_logging.ERROR))
    try:
        yield
    finally:
        ds_logging.set_verbosity(verbosity)
        if was_enabled:
            datasets.enable_progress_bars()
