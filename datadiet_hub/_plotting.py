"""matplotlib, the ``plot`` extra: imported only when a figure is drawn, headless, and saved atomically.

Every figure the library draws (score histograms, example grids) goes through here, so a missing matplotlib is
always the same ``MissingExtraError`` and a crash never leaves half a PNG in a score folder.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes
from .errors import MissingExtraError

PLOT_EXTRA = "pip install 'datadiet-hub[plot]'"


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend; ``MissingExtraError`` naming the extra if absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingExtraError(
            f"Drawing plots needs matplotlib, which is not installed ({err}). Install the plot extra: {PLOT_EXTRA}."
        ) from err
    return plt


def save_png(fig: Any, target: Path, *, dpi: int | None = None) -> None:
    """Render ``fig`` to PNG in memory, close it, and write the bytes atomically to ``target``."""
    plt = pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    atomic_write_bytes(Path(target), buffer.getvalue())
