"""``Dataset.filter`` with ``datadiet_hub.keep`` on a shuffled sample of Fashion-MNIST: the rows are matched to
their scores by content hash (``on="example_id"``), so the copy may be reordered or subsampled.

    python examples/keep_with_filter.py            # a sample of 2,000 rows
    DATADIET_EXAMPLE_ROWS=500 python examples/keep_with_filter.py

Of the sample, it keeps the rows that are in the hardest 50% of the whole split by EL2N: about half of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import datadiet_hub
from datadiet_hub.sources import fashion_mnist_dataset

CARD = Path(__file__).resolve().parents[1] / "cards" / "fashion-mnist-datadiet"


def main() -> None:
    rows = int(os.environ.get("DATADIET_EXAMPLE_ROWS", "2000"))
    sample = fashion_mnist_dataset("train").shuffle(seed=1).select(range(rows))  # reordered and subsampled
    scores = datadiet_hub.load_scores(str(CARD), "cnn-ep2")
    predicate = datadiet_hub.keep(scores, fraction=0.5, on="example_id")  # the hardest half of all 60,000 rows
    kept = sample.filter(predicate, with_indices=True, batched=True)
    print(f"kept {len(kept)} of {len(sample)} sampled rows (the sample's rows among the split's hardest 50% by EL2N)")


if __name__ == "__main__":
    main()
