"""``ScoreCard``: rendered from the template, read back, named sections that experiments fill and that a
re-render keeps (in place), marked blocks, the task category following the input kind."""

from __future__ import annotations

import pytest
from builders import make_image_dataset, make_score_table

from datadiet_hub.card import ConfigSummary, ScoreCard, build_card
from datadiet_hub.errors import CardError
from datadiet_hub.folder import ScoreFolder
from datadiet_hub.provenance import Provenance
from datadiet_hub.writer import refresh_card, write_score_dataset


def _prov(kind: str = "image") -> Provenance:
    return Provenance.from_scoring(
        source={"dataset": "tiny", "split": "train", "num_rows": 10, "fingerprint": "x", "input_kind": kind},
        scoring={"model": "cnn", "seeds": [0, 1]},
        configs={"cnn-ep2": {"model": "cnn", "step": 20, "epoch": 2.0, "metrics": ["el2n"]}},
    )


def _card(kind: str = "image") -> ScoreCard:
    return build_card(provenance=_prov(kind), configs=[ConfigSummary("cnn-ep2", "cnn", "epoch 2", ["el2n"])])


def headings(card: ScoreCard) -> list[str]:
    return [line for line in card.text.splitlines() if line.startswith("## ")]


def test_task_category_follows_the_input_kind():
    assert _card("image").data.task_categories == ["image-classification"]
    assert _card("text").data.task_categories == ["text-classification"]


def test_sections_fill_replace_and_insert(tmp_path):
    card = _card()
    generated = headings(card)
    assert generated[0] == "## Use it" and generated[-1] == "## Citation" and card.sections() == {}

    card.set_section("results", "## Results\n\nmeasured: 0.91")  # no such generated section: before Citation
    card.set_section("provenance", "## Provenance\n\nby hand")  # replaces the generated one in place
    card.set_section("note", "A paragraph without heading.", after="configs")
    assert headings(card) == [*generated[:-1], "## Results", "## Citation"]
    assert list(card.sections()) == ["note", "provenance", "results"]
    assert card.text.count("## Provenance") == 1 and "by hand" in card.text and "| seeds |" not in card.text
    configs_at, note_at = card.text.index("## Configs"), card.text.index("A paragraph without heading.")
    assert configs_at < note_at < card.text.index("## Provenance")

    card.set_section("results", "## Results\n\n<!-- table -->\nold\n<!-- /table -->\n")
    card.fill("table", "| a |\n|---|")
    card.save(tmp_path / "README.md")
    back = ScoreCard.read(tmp_path / "README.md")
    assert back.sections()["results"] == "## Results\n\n<!-- table -->\n| a |\n|---|\n<!-- /table -->"
    assert back.provenance().scoring.seeds == _prov().scoring.seeds
    with pytest.raises(CardError, match="no <!-- absent --> ... <!-- /absent --> block"):
        back.fill("absent", "x")
    with pytest.raises(CardError, match="Invalid section name"):
        back.set_section("Not A Slug", "x")


def test_refresh_keeps_filled_sections_where_they_were(tmp_path):
    ds = make_image_dataset()
    folder = write_score_dataset(
        tmp_path / "s", {"cnn-ep2": make_score_table(ds)}, provenance=_prov_for(len(ds)), plots=False
    )
    card = ScoreFolder(folder).card()
    card.set_section("measured", "## Measured\n\nkept", after="configs")
    card.set_section("provenance", "## Provenance\n\nhand-made table")
    card.save(ScoreFolder(folder).readme)
    before = (folder / "README.md").read_text()
    refresh_card(folder)
    assert (folder / "README.md").read_text() == before  # nothing changed: the same card, filled sections kept


def _prov_for(n: int) -> Provenance:
    prov = _prov()
    return Provenance.from_dict({**prov.to_dict(), "source": {**prov.to_dict()["source"], "num_rows": n}})


def test_an_unreadable_or_missing_card_is_a_card_error(tmp_path):
    with pytest.raises(CardError, match="does not exist"):
        ScoreCard.read(tmp_path / "README.md")
    (tmp_path / "README.md").write_text("---\nconfigs: [\n---\nbody\n")
    with pytest.raises(CardError, match="cannot be read"):
        ScoreCard.read(tmp_path / "README.md")
