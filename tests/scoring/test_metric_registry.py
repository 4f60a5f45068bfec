"""Adding a metric is one declaration (``datadiet_hub.metrics.declare``) and one registration
(``datadiet_hub.scoring.metrics.registry.register``): a toy metric declared and registered here flows through the
engine (config choices, per-seed scoring sharded and gathered by idx, aggregation, provenance, card) into a score
folder that ``load_scores`` reads and ``select_indices`` ranks, with nothing else touched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

import datadiet_hub
from datadiet_hub import metrics
from datadiet_hub.errors import InvalidArgumentError
from datadiet_hub.scoring.forward import logits_of
from datadiet_hub.scoring.loops import LABELS, model_inputs
from datadiet_hub.scoring.metrics import registry
from datadiet_hub.scoring.run import run


@pytest.fixture
def toy_metrics():
    """``confidence`` (softmax probability of the label; smaller is harder) and ``label_copy`` (the row's label as
    a float: no seed changes it, so it is computed once and has no spread), declared and registered for one test."""
    metrics.declare(
        metrics.Metric(
            "confidence",
            help="softmax probability of the true label",
            card="`confidence` = the softmax probability of the true label",
            higher_is_harder=False,
        )
    )
    metrics.declare(
        metrics.Metric("label_copy", help="the label", card="`label_copy` = the label as a float", over_seeds=False)
    )

    @registry.register("confidence")
    def confidence(model, batch):
        probs = torch.softmax(logits_of(model, model_inputs(batch)).float(), dim=1)
        return probs.gather(1, batch[LABELS][:, None]).squeeze(1)

    @registry.register("label_copy", batch_size="grand_batch_size")
    def label_copy(model, batch):
        return batch[LABELS].float()

    yield
    for name in ("confidence", "label_copy"):
        metrics.METRICS.pop(name)
        registry.COMPUTATIONS.pop(name)


def test_a_declared_and_registered_metric_flows_from_scoring_to_load(tmp_path, tiny_parquet, toy_metrics):
    out = tmp_path / "out"
    cfg = tiny_config(out, tiny_parquet, scores=["el2n", "confidence", "label_copy"], at=[1], seeds=[0, 1])
    run(cfg, progress=False, command="test")

    scores = datadiet_hub.load_scores(str(out), "cnn-ep1")
    assert scores.column_names == [
        "idx",
        "example_id",
        "label",
        "el2n",
        "el2n_std",
        "el2n_per_seed",
        "confidence",
        "confidence_std",
        "confidence_per_seed",
        "label_copy",
    ]
    table = scores.with_format("numpy")[:]
    conf = np.stack(table["confidence_per_seed"])  # [N, seeds]
    el2n = np.stack(table["el2n_per_seed"])
    assert conf.shape == (203, 2) and ((conf >= 0) & (conf <= 1)).all()
    # an independent relation between two metrics of the same checkpoint: EL2N >= 1 - p_label, row by row
    assert (el2n >= 1 - conf - 1e-5).all()
    np.testing.assert_allclose(table["confidence"], conf.mean(axis=1), rtol=1e-5)
    # computed once and gathered by idx: equal to each row's own label
    np.testing.assert_array_equal(table["label_copy"], table["label"].astype(np.float32))

    prov = datadiet_hub.load_provenance(str(out))
    assert list(prov.configs["cnn-ep1"].metrics) == ["el2n", "confidence", "label_copy"]
    card = " ".join((out / "README.md").read_text().split())  # the card wraps its paragraphs
    assert "`confidence` = the softmax probability of the true label" in card
    assert "except for `confidence` (smaller is harder)" in card

    # smaller is harder: "hardest" keeps the least confident rows
    kept = datadiet_hub.select_indices(scores, column="confidence", fraction=0.25, strategy="hardest")
    dropped = np.setdiff1d(np.arange(203), kept)
    assert table["confidence"][kept].max() <= table["confidence"][dropped].min()


def test_a_computation_needs_a_declaration_and_a_request_needs_a_computation(tmp_path, tiny_parquet):
    with pytest.raises(InvalidArgumentError, match="declare it first"):
        registry.register("undeclared")(lambda model, batch: batch[LABELS].float())
    metrics.declare(metrics.Metric("orphan", help="no computation", card="`orphan`"))
    try:
        cfg = tiny_config(tmp_path / "out", tiny_parquet, scores=["orphan"], at=[1])
        with pytest.raises(InvalidArgumentError, match="has no computation"):
            run(cfg, progress=False)
    finally:
        metrics.METRICS.pop("orphan")
