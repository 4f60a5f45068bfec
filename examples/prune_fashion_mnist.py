"""Prune Fashion-MNIST by the shipped scores: keep the hardest half by EL2N (at epoch 2 of the small CNN) and, for
comparison, a random half; print how many rows each keeps per class.

    python examples/prune_fashion_mnist.py

Needs the Debian package dataset-fashion-mnist (scripts/setup.sh installs it); no torch, nothing downloaded.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datadiet_hub
from datadiet_hub.sources import fashion_mnist_dataset

CARD = Path(__file__).resolve().parents[1] / "cards" / "fashion-mnist-datadiet"


def main() -> None:
    ds = fashion_mnist_dataset("train")  # 60,000 rows, in the order the card's rows describe
    scores = datadiet_hub.load_scores(str(CARD), "cnn-ep2")
    hardest = datadiet_hub.prune(ds, scores, column="el2n", fraction=0.5)  # checks the join, then Dataset.select
    random = datadiet_hub.prune(ds, scores, fraction=0.5, strategy="random", seed=0)
    names = ds.features["label"].names
    for title, kept in (("hardest 50% by EL2N", hardest), ("random 50%", random)):
        counts = Counter(kept["label"])
        print(f"{title}: {len(kept)} rows")
        print("  " + ", ".join(f"{names[c]} {counts[c]}" for c in sorted(counts)))


if __name__ == "__main__":
    main()
