"""Corpus selection: ``strategy="middle"`` keeps the central ranks, ``by=`` selects within groups so the mix of
sources is kept, the same through ``prune``, ``keep`` and ``datadiet prune``."""

from __future__ import annotations

from collections import Counter

import datasets
import numpy as np
import pyarrow as pa
import pytest

import datadiet_hub
from datadiet_hub.errors import DatadietError
from datadiet_hub.hashing import example_id
from datadiet_hub.selection import select_indices


def corpus_and_scores(n: int = 300, seed: int = 0):
    """Documents from three sources of unequal size whose losses differ by source (so a global cut shifts the mix)."""
    rng = np.random.default_rng(seed)
    domain = rng.choice(["web", "code", "books"], size=n, p=[0.6, 0.3, 0.1])
    shift = {"web": 0.0, "code": 1.0, "books": 2.0}
    loss = np.array([shift[d] for d in domain]) + rng.random(n)
    texts = [f"document {i} from {d}" for i, d in enumerate(domain)]
    corpus = datasets.Dataset.from_dict({"text": texts, "domain": domain.tolist()})
    scores = pa.table(
        {
            "idx": np.arange(n, dtype=np.int64),
            "example_id": [example_id(t, None) for t in texts],
            "loss": loss.astype(np.float32),
        }
    )
    return corpus, scores, domain, loss


def test_middle_keeps_the_central_quantiles():
    _, scores, _, loss = corpus_and_scores()
    kept = select_indices(scores, column="loss", fraction=0.5, strategy="middle")
    order = np.argsort(-loss, kind="stable")  # hardest first
    n, k = len(loss), len(kept)
    assert k == 150
    assert set(kept.tolist()) == set(order[(n - k) // 2 : (n - k) // 2 + k].tolist())
    inside = loss[kept]
    assert (loss < inside.min()).sum() == (loss > inside.max()).sum() == (n - k) // 2 == 75


def test_by_group_keeps_the_mix_of_sources():
    corpus, scores, domain, loss = corpus_and_scores()
    mix = Counter(domain.tolist())
    for strategy in ("easiest", "middle", "hardest"):
        globally = select_indices(scores, column="loss", fraction=0.4, strategy=strategy)
        grouped = datadiet_hub.prune(
            corpus, scores, column="loss", fraction=0.4, strategy=strategy, by="domain", verify="none"
        )
        kept = Counter(grouped["domain"])
        assert sum(kept.values()) == 120
        for name, size in mix.items():  # proportional quotas: within one row of 40% of each source
            assert abs(kept[name] - 0.4 * size) <= 1
        if strategy != "middle":  # a global cut by loss shifts the mix (books have the highest losses)
            assert Counter(domain[globally].tolist()) != kept
    # within each source, the strategy picks by score: easiest keeps each source's lowest losses
    grouped = select_indices(scores, column="loss", fraction=0.4, strategy="easiest", groups=domain, by="domain")
    for name in mix:
        rows = np.flatnonzero(domain == name)
        chosen = np.intersect1d(grouped, rows)
        assert loss[chosen].max() <= np.sort(loss[rows])[len(chosen) - 1] + 1e-6


def test_by_reads_the_score_table_and_keep_reads_the_dataset():
    corpus, scores, domain, _ = corpus_and_scores()
    with_column = scores.append_column("domain", pa.array(domain.tolist()))
    from_table = select_indices(with_column, column="loss", fraction=0.3, strategy="middle", by="domain")
    predicate = datadiet_hub.keep(
        scores, dataset=corpus, column="loss", fraction=0.3, strategy="middle", by="domain", verify="none"
    )
    filtered = corpus.filter(predicate, with_indices=True, batched=True)
    assert sorted(filtered["text"]) == sorted(corpus.select(from_table)["text"])
    with pytest.raises(DatadietError, match="by='domain' is not a column of the score table"):
        select_indices(scores, column="loss", fraction=0.3, by="domain")
    with pytest.raises(DatadietError, match="neither of the score table .* nor of the dataset.*Did you mean 'domain'"):
        datadiet_hub.keep(scores, dataset=corpus, column="loss", fraction=0.3, by="domian", verify="none")
    with pytest.raises(DatadietError, match="not both"):
        select_indices(scores, column="loss", fraction=0.3, by="domain", class_balanced=True)
