"""Combining score folders of the same split (one per architecture) into one dataset; the shipped card loads."""

from pathlib import Path

import datasets
import pytest
from builders import make_image_dataset, make_provenance, make_score_table

from datadiet_hub.folder import ScoreFolder
from datadiet_hub.writer import combine_score_folders, write_score_dataset

CARD = Path(__file__).resolve().parents[2] / "cards" / "fashion-mnist-datadiet"


def _folder(path, dataset, model, seed):
    prov = make_provenance(len(dataset))
    prov["scoring"]["model"] = model
    prov["configs"] = {f"{model}-ep2": {"step": 2, "epoch": 2, "metrics": ["el2n"]}}
    prov["source"]["fingerprint"] = "same-split"
    return write_score_dataset(
        path, {f"{model}-ep2": make_score_table(dataset, seed=seed)}, provenance=prov, plots=False
    )


def test_combine_keeps_every_config_and_each_runs_provenance(tmp_path, image_dataset):
    a = _folder(tmp_path / "a", image_dataset, "cnn", 1)
    b = _folder(tmp_path / "b", image_dataset, "mlp", 2)
    out = combine_score_folders(tmp_path / "both", [a, b], plots=False)
    card = ScoreFolder(out).metadata()
    assert [c["config_name"] for c in card["configs"]] == ["cnn-ep2", "mlp-ep2"]
    assert card["datadiet"]["scoring"]["model"] == "cnn, mlp"
    assert [r["scoring"]["model"] for r in card["datadiet"]["runs"]] == ["cnn", "mlp"]
    assert card["datadiet"]["wall_time_s"] == 2.0  # summed over runs
    mlp = datasets.load_dataset(str(out), "mlp-ep2", split="train")
    assert mlp["el2n"] == datasets.load_dataset(str(b), "mlp-ep2", split="train")["el2n"]
    assert ScoreFolder(out).validate() == ["cnn-ep2", "mlp-ep2"]


def test_combine_refuses_different_sources_and_clashing_configs(tmp_path, image_dataset):
    a = _folder(tmp_path / "a", image_dataset, "cnn", 1)
    other = _folder(tmp_path / "o", make_image_dataset(seed=5), "mlp", 2)
    card = (other / "README.md").read_text().replace("fingerprint: same-split", "fingerprint: other-split")
    (other / "README.md").write_text(card)
    with pytest.raises(ValueError, match="scores a different source"):
        combine_score_folders(tmp_path / "x", [a, other])
    with pytest.raises(ValueError, match="Config 'cnn-ep2' appears in more than one folder"):
        combine_score_folders(tmp_path / "y", [a, a])


def test_shipped_fashion_mnist_card_is_a_valid_score_dataset():
    configs = ScoreFolder(CARD).validate()
    assert {"cnn-ep0", "cnn-ep2", "cnn-ep10", "mlp-ep0", "mlp-ep2", "mlp-ep10"} <= set(configs)
    prov = ScoreFolder(CARD).provenance()
    assert prov.source.num_rows == 60000 and len(prov.runs) == 2
    assert all(len(r.scoring.seeds) >= 5 for r in prov.runs)
    scores = datasets.load_dataset(str(CARD), "cnn-ep2", split="train")
    assert len(scores) == 60000
    assert {"el2n", "grand", "forgetting", "never_learned"} <= set(scores.column_names)
