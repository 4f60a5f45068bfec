"""Small pyarrow helpers shared by the readers of score tables and datasets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def take_rows(column: Any, rows: Any) -> Any:
    """``column.take(rows)``; a few rows of a chunked column are read one by one, because arrow's ``take`` on a
    chunked string column first concatenates every chunk (a 360 MB copy for 10M ids, to read 32 of them)."""
    if isinstance(column, pa.ChunkedArray) and len(rows) <= 4096 and column.num_chunks > 1:
        wanted = rows.to_pylist() if hasattr(rows, "to_pylist") else np.asarray(rows).tolist()
        return pa.array([column[int(r)].as_py() for r in wanted], type=column.type)
    return column.take(rows if isinstance(rows, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(rows)))
