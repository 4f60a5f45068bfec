"""``datadiet score --help`` says what every flag does (not only its default), and the data flags reach the
config; a dataset without a label column fails with the columns quoted and the flag named."""

from __future__ import annotations

import datasets
import pytest

from datadiet_hub.scoring.cli import build_parser, config_from_args
from datadiet_hub.scoring.config import FLAG_HELP, ScoringConfig


def test_every_flag_says_what_it_does():
    parser = build_parser()
    for action in parser._actions:
        if action.dest in ("help",):
            continue
        text = action.help or ""
        assert not text.startswith("(default"), f"{action.option_strings} shows only a default"
        assert len(text.split()) >= 3, f"{action.option_strings}: {text!r}"
    assert set(FLAG_HELP) == set(ScoringConfig.__dataclass_fields__)


def test_data_flags_map_to_the_config():
    ns = build_parser().parse_args(
        "--dataset x.csv --text-column body --label-column lang --max-length 64 --vocab-size 500 "
        "--tokenizer-kind bpe --streaming --data-path loader --num-workers 0 --image-size 48".split()
    )
    cfg = config_from_args(ns)
    assert (cfg.text_column, cfg.label_column, cfg.max_length, cfg.vocab_size) == ("body", "lang", 64, 500)
    assert (cfg.tokenizer_kind, cfg.streaming, cfg.data_path, cfg.num_workers, cfg.image_size) == (
        "bpe",
        True,
        "loader",
        0,
        48,
    )
    assert "num_workers" not in cfg.identity()  # does not change results: a rerun may change it and resume


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_channels": 2}, "image_channels=2 must be 1 .grey. or 3 .RGB."),
        ({"data_path": "disk"}, "Unknown data path 'disk'. Choose between auto, memory, loader."),
        ({"streaming": True, "data_path": "memory"}, "--streaming reads rows lazily"),
        ({"image_column": "a", "text_column": "b"}, "Name the input column once"),
        ({"input_column": "a", "image_column": "b"}, "Name the input column once"),
        ({"max_length": 1}, "max_length=1 must be at least 2"),
    ],
)
def test_data_field_validation(fields, message):
    with pytest.raises(ValueError, match=message):
        ScoringConfig(**fields)


def test_no_label_column_through_the_cli(tmp_path, capsys):
    from datadiet_hub.cli import main

    path = tmp_path / "nolabel.csv"
    datasets.Dataset.from_dict({"text": ["a b", "c d"], "score": [0.5, 0.7]}).to_csv(str(path), index=False)
    # without --objective a text file with no label column is scored as a corpus (language models); asking for
    # classification makes the missing label an error
    args = ["score", "--dataset", str(path), "--objective", "classification", "--output-dir", str(tmp_path / "out")]
    code = main([*args, "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "No label column found among the columns ['text', 'score']" in err and "--label-column" in err
