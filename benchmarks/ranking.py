"""Cost of the tie-break rules in ``select_indices``: the old lowest-row rule (``tie_break="index"``, the baseline)
against the seeded random rule (the default) and a secondary column, on score vectors with few and with many ties.

    PYTHONPATH=. python benchmarks/ranking.py                 # 10M rows
    PYTHONPATH=. python benchmarks/ranking.py --rows 1000000  # quicker

Every ratio is against the ``index`` rule measured in the same run (median of ``--repeat`` runs). All rules stay
O(n): one ``np.partition``, then only the rows tied at the boundary are ordered (O(t) for ``random``, a sort of the
tied rows for a secondary column).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from datadiet_hub import select_indices

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.5)
    args = parser.parse_args()
    n = args.rows
    rng = np.random.default_rng(0)
    tables = {
        "el2n-like (continuous, few ties)": {
            "idx": np.arange(n),
            "el2n": rng.random(n, dtype=np.float32),
            "grand": rng.random(n, dtype=np.float32),
        },
        "forgetting-like (21 values, huge ties)": {
            "idx": np.arange(n),
            "el2n": rng.integers(0, 21, n).astype(np.float32),
            "grand": rng.random(n, dtype=np.float32),
        },
    }
    print(
        f"ranking benchmark: {n:,} rows, keep {args.fraction}, median of {args.repeat}; python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )
    for name, table in tables.items():
        print(f"\n{name}:")
        base = None
        for strategy in ("hardest", "offset"):
            extra = {"skip": 0.1} if strategy == "offset" else {}
            for rule in ("index", "random", "grand"):
                seconds = timed(
                    lambda rule=rule: select_indices(
                        table, fraction=args.fraction, strategy=strategy, tie_break=rule, **extra
                    ),
                    args.repeat,
                )
                if rule == "index":
                    base = seconds
                ratio = "baseline" if rule == "index" else f"{seconds / base:.2f}x the index rule"
                print(
                    f"  {strategy:<8} tie_break={rule:<7} {seconds:8.3f} s  {n / seconds / 1e6:7.1f} M rows/s  {ratio}"
                )


if __name__ == "__main__":
    main()
