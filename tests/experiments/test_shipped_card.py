"""The shipped card is what ``ScoreCard`` renders: re-rendering it from its own provenance and tables
(``refresh_card``) gives the same file, its hand-written parts living in named sections."""

from __future__ import annotations

import shutil
from pathlib import Path

from datadiet_hub.card import ScoreCard
from datadiet_hub.writer import refresh_card

CARD = Path(__file__).resolve().parents[2] / "cards" / "fashion-mnist-datadiet"


def test_refreshing_the_shipped_card_changes_nothing(tmp_path):
    copy = Path(shutil.copytree(CARD, tmp_path / "card"))
    refresh_card(copy, repo_hint="datadiet-hub/fashion-mnist-datadiet")
    assert (copy / "README.md").read_text() == (CARD / "README.md").read_text()
    sections = ScoreCard.read(CARD / "README.md").sections()
    assert list(sections) == [
        "initialisation",
        "recommended-subsets",
        "provenance",
        "reproducibility-across-devices",
        "not-yet-in-this-card",
    ]
