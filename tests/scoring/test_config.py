"""ScoringConfig validation messages, the schedule, and the CLI's config sources: --config (YAML/JSON),
--preset, flags; precedence preset < file < flags."""

from __future__ import annotations

import json

import pytest

from datadiet_hub.scoring.cli import build_parser, config_from_args
from datadiet_hub.scoring.config import PRESETS, ScoringConfig, read_config_file
from datadiet_hub.scoring.train import Schedule


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scores": ["el2"]}, "Unknown score 'el2'. Choose between el2n, grand, forgetting, loss, num_tokens."),
        ({"scores": []}, "No scores requested; give --scores el2n,grand,forgetting"),
        ({"scores": ["el2n", "el2n"]}, "lists a score twice"),
        ({"unit": "epochs"}, "Unknown unit 'epochs'. Choose between epoch, step."),
        (
            {"augmentation": "flip"},
            "Unknown augmentation 'flip'. Choose between auto, none, crop-flip, resized-crop-flip.",
        ),
        ({"optimizer": "lamb"}, "Unknown optimizer 'lamb'. Choose between sgd, adam."),
        ({"seeds": [0, 0]}, "seeds=[0, 0] must be a non-empty list of distinct integers >= 0."),
        ({"seeds": [-1]}, "seeds=[-1] must be"),
        ({"seeds": []}, "seeds=[] must be"),
        ({"at": [-1]}, "at=[-1] must be a non-empty list of times >= 0 (in epochs)."),
        ({"at": [1, 1]}, "lists a score time twice"),
        ({"scores": ["forgetting"], "at": [0]}, "Forgetting need(s) training"),
        ({"batch_size": 0}, "batch_size=0 must be at least 1."),
        ({"checkpoint_every": 0}, "checkpoint_every=0 must be at least 1."),
        ({"epochs": -1}, "epochs=-1 must be >= 0."),
        ({"width": 0}, "width=0 must be positive."),
        ({"lr": 0}, "lr=0 must be positive."),
        ({"lr_milestones": [120, 60]}, "lr_milestones=[120, 60] must be increasing epochs >= 1"),
        ({"mean": [0.5]}, "Give both mean and std, or neither"),
        ({"mean": [0.5], "std": [0.2, 0.2]}, "one value per channel each"),
        ({"mean": [0.5], "std": [0.0]}, "std=[0.0] must be positive."),
        ({"batch_size": "x"}, "batch_size='x' must be an int."),
        ({"nesterov": "yes"}, "nesterov='yes' must be a bool."),
        ({"seeds": "a,b"}, "seeds=['a', 'b'] must be a list of ints (comma-separated on the command line: --seeds"),
        ({"epochs": 1.5}, "epochs=1.5 must be an int or null."),
        ({"data_files": []}, "data_files=[] is empty"),
    ],
)
def test_validation_messages(fields, message):
    with pytest.raises(ValueError) as info:
        ScoringConfig(**fields)
    assert message in str(info.value)


def test_natural_spellings_are_coerced():
    cfg = ScoringConfig(at=2, scores="el2n, grand", seeds="0,1", mean="0.5", std=(0.25,), data_files="x.parquet")
    assert (cfg.at, cfg.scores, cfg.seeds, cfg.mean, cfg.std, cfg.data_files) == (
        [2],
        ["el2n", "grand"],
        [0, 1],
        [0.5],
        [0.25],
        ["x.parquet"],
    )


def test_schedule_in_epochs_and_steps():
    s = Schedule.from_config(ScoringConfig(at=[0, 2, 1], batch_size=32), 203)
    assert (s.steps_per_epoch, s.total_steps, s.score_steps) == (7, 14, (0, 7, 14))
    s = Schedule.from_config(ScoringConfig(at=[9], unit="step", batch_size=32), 203)
    assert (s.total_steps, s.score_steps) == (14, (9,))  # training runs to the end of the epoch
    with pytest.raises(
        ValueError,
        match=r"Score time 3 epoch\(s\) is after the end of training \(2 epochs = 14 "
        r"steps\); raise --epochs or lower --at.",
    ):
        Schedule.from_config(ScoringConfig(at=[3], epochs=2, batch_size=32), 203)


def parse(argv):
    return config_from_args(build_parser().parse_args(argv))


def test_yaml_file_and_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: my/ds\nseeds: [4, 5]\nat: [0, 3]\nbatch-size: 64\nscores: el2n,grand\nlr: 0.2\n")
    cfg = parse(["--config", str(path), "--lr", "0.3", "--output-dir", "o"])
    assert (cfg.dataset, cfg.seeds, cfg.at, cfg.batch_size, cfg.scores, cfg.lr, cfg.output_dir) == (
        "my/ds",
        [4, 5],
        [0, 3],
        64,
        ["el2n", "grand"],
        0.3,
        "o",
    )
    assert parse(["--config", str(path), "--num-seeds", "2"]).seeds == [0, 1]


def test_json_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": "mlp", "nesterov": False, "mean": [0.1], "std": [0.2]}))
    cfg = parse(["--config", str(path)])
    assert (cfg.model, cfg.nesterov, cfg.mean, cfg.std) == ("mlp", False, [0.1], [0.2])
    assert ScoringConfig.from_file(path, model="cnn").model == "cnn"


def test_precedence_preset_then_file_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\nlr: 0.01\n")
    cfg = parse(["--preset", "cifar10-paper", "--config", str(path), "--lr", "0.05"])
    assert cfg.model == "resnet18" and cfg.lr_milestones == [60, 120, 160]  # from the preset
    assert cfg.epochs == 3  # the file beats the preset
    assert cfg.lr == 0.05  # the flag beats both


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("epochz: 3\n", ".yaml", "unknown field(s) ['epochz']. Known fields:"),
        ("- 1\n- 2\n", ".yaml", "must hold a mapping of config fields, got list"),
        ("a: [1\n", ".yml", "Cannot parse config file"),
        ("{not json", ".json", "Cannot parse config file"),
        ("batch_size: many\n", ".yaml", "batch_size='many' must be an int."),
    ],
)
def test_bad_config_files(tmp_path, text, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        parse(["--config", str(path)])
    assert message in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_config_file(tmp_path / "nope.yaml")


def test_seeds_and_num_seeds_conflict():
    with pytest.raises(ValueError, match="Give --seeds or --num-seeds, not both."):
        parse(["--seeds", "0,1", "--num-seeds", "3"])


def test_cli_reports_config_errors_in_one_line(capsys, monkeypatch):
    from datadiet_hub.scoring.cli import main

    monkeypatch.delenv("DATADIET_DEBUG", raising=False)
    assert main(["--scores", "el2", "--output-dir", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown score 'el2'. Choose between el2n, grand, forgetting, loss, num_tokens.")
    with pytest.raises(SystemExit):
        main(["--seeds", "0,x"])
    assert "expected comma-separated ints, got '0,x'" in capsys.readouterr().err


def test_every_field_has_a_flag_and_the_preset_is_valid():
    import dataclasses

    flags = {a.dest for a in build_parser()._actions}
    assert {f.name for f in dataclasses.fields(ScoringConfig)} <= flags
    cfg = ScoringConfig(**PRESETS["cifar10-paper"])
    assert (
        cfg.model,
        cfg.lr,
        cfg.momentum,
        cfg.nesterov,
        cfg.weight_decay,
        cfg.batch_size,
        cfg.epochs,
        cfg.lr_gamma,
        cfg.augmentation,
        len(cfg.seeds),
    ) == ("resnet18", 0.1, 0.9, True, 5e-4, 128, 200, 0.2, "crop-flip", 10)


def test_boolean_options_are_switches_and_config_files_still_set_them(tmp_path):
    """``--streaming`` / ``--no-streaming`` (argparse's BooleanOptionalAction); unset, the file or default wins."""
    from datadiet_hub.scoring.config import field_kinds

    switches = [name for name, (kind, is_list, _) in field_kinds().items() if kind is bool and not is_list]
    assert {"streaming", "nesterov", "deterministic"} <= set(switches)
    for name in switches:
        flag = name.replace("_", "-")
        assert getattr(parse([f"--{flag}"]), name) is True
        assert getattr(parse([f"--no-{flag}"]), name) is False
    path = tmp_path / "run.yaml"
    path.write_text("streaming: true\nnesterov: false\ndata_path: loader\n")
    cfg = parse(["--config", str(path)])
    assert (cfg.streaming, cfg.nesterov) == (True, False)
    cfg = parse(["--config", str(path), "--no-streaming", "--nesterov"])
    assert (cfg.streaming, cfg.nesterov) == (False, True)
    with pytest.raises(SystemExit):
        parse(["--streaming", "true"])  # a switch takes no value
