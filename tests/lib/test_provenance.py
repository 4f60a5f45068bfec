"""``Provenance``: round trips through the card YAML and parquet metadata, tolerance of older cards, and the
carrier on a loaded table (no global state: it survives select / filter / with_format / save_to_disk)."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from builders import make_provenance, make_score_table

from datadiet_hub import load_scores, prune
from datadiet_hub.errors import ProvenanceError, ScoreMismatchError
from datadiet_hub.folder import ScoreFolder
from datadiet_hub.provenance import (
    ConfigInfo,
    EnvironmentInfo,
    Provenance,
    ScoringInfo,
    SourceInfo,
)
from datadiet_hub.table_provenance import attach, provenance_of
from datadiet_hub.writer import write_score_dataset

CARD = Path(__file__).resolve().parents[2] / "cards" / "fashion-mnist-datadiet"


def full_provenance() -> Provenance:
    return Provenance.from_scoring(
        source={"dataset": "tiny", "split": "train", "revision": "abc", "num_rows": 40, "fingerprint": "f" * 64},
        scoring={"model": "cnn", "seeds": [0, 1], "at": [0, 2], "optimizer": "sgd", "lr": 0.1, "augmentation": "crop"},
        configs={"cnn-ep2": {"step": 10, "epoch": 2.0, "metrics": ["el2n"]}},
        environment={"hardware": "1 process(es) on cpu", "deterministic_algorithms": True},
        wall_time_s=12.34,
        command="datadiet score --seeds 0,1",
        forgetting_convention="count",
    )


def test_typed_fields_and_dict_round_trip():
    prov = full_provenance()
    assert prov.source.num_rows == 40 and prov.scoring.seeds == (0, 1) and prov.configs["cnn-ep2"].step == 10
    assert prov.environment.hardware == "1 process(es) on cpu" and prov.environment.library_version
    assert prov.wall_time_s == 12.3 and prov.extra == {"forgetting_convention": "count"}
    data = prov.to_dict()
    assert data["hardware"] == "1 process(es) on cpu"  # environment fields stay flat, as in every card so far
    assert data["scoring"]["seeds"] == [0, 1] and data["forgetting_convention"] == "count"
    assert Provenance.from_dict(data) == prov
    assert Provenance.from_dict(yaml.safe_load(yaml.safe_dump(data))) == prov
    with pytest.raises(AttributeError):
        prov.command = "x"  # frozen


def test_unknown_keys_are_kept_and_missing_ones_are_none():
    data = {"source_dataset": "fashion_mnist", "seeds": [0, 1, 2], "scoring": {"model": "mlp", "new_knob": 3}}
    prov = Provenance.from_dict(data)
    assert prov.source.dataset is None and prov.scoring.lr is None and prov.wall_time_s is None
    assert prov.extra == {"source_dataset": "fashion_mnist", "seeds": [0, 1, 2]}
    assert prov.scoring.extra == {"new_knob": 3}
    again = prov.to_dict()
    assert again["scoring"] == {"model": "mlp", "new_knob": 3} and again["seeds"] == [0, 1, 2]
    with pytest.raises(ProvenanceError, match="must be a mapping"):
        Provenance.from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_the_shipped_card_loads_and_round_trips_exactly():
    folder = ScoreFolder(CARD)
    prov = folder.provenance()
    assert prov.source.fingerprint and prov.source.num_rows == 60000
    assert [r.scoring.model for r in prov.runs] == ["cnn", "mlp"]
    assert prov.runs[0].scoring.batch_size == 128 and prov.runs[0].environment.torch_version
    assert prov.configs["cnn-ep0"].at_init and not prov.configs["cnn-ep2"].at_init
    assert prov.to_dict() == folder.metadata()["datadiet"]  # nothing lost, nothing added


def test_parquet_metadata_round_trip(tmp_path, image_dataset):
    prov = full_provenance()
    write_score_dataset(tmp_path / "s", {"cnn-ep2": make_score_table(image_dataset)}, provenance=prov, plots=False)
    table = pq.read_table(tmp_path / "s" / "data" / "cnn-ep2" / "train-00000-of-00001.parquet")
    assert table.schema.metadata[b"datadiet_config"] == b"cnn-ep2"
    assert Provenance.from_parquet_metadata(table.schema.metadata) == prov
    assert provenance_of(table) == prov  # a table read straight from our parquet says where it came from
    assert ScoreFolder(tmp_path / "s").provenance() == prov  # and the card says the same
    assert Provenance.from_parquet_metadata({}) is None


def test_loaded_scores_carry_provenance_through_derived_tables(tmp_path, score_folder, image_dataset):
    scores = load_scores(score_folder, "cnn-ep2")
    expected = ScoreFolder(score_folder).provenance()
    assert provenance_of(scores) == expected
    derived = {
        "select": scores.select([3, 1, 2]),
        "filter": scores.filter(lambda row: row["idx"] % 2 == 0),
        "with_format": scores.with_format("numpy"),
        "shuffle": scores.shuffle(seed=0),
    }
    for name, table in derived.items():
        assert provenance_of(table) == expected, name
    scores.save_to_disk(str(tmp_path / "saved"))
    assert provenance_of(datasets.load_from_disk(str(tmp_path / "saved"))) == expected
    # a plain load_dataset of the same folder knows nothing (no global state links them)
    plain = datasets.load_dataset(str(score_folder), "cnn-ep2", split="train")
    assert provenance_of(plain) is None
    assert provenance_of({"idx": [0], "el2n": [0.1]}) is None


def test_prune_reads_the_fingerprint_from_a_derived_table(score_folder, image_dataset):
    scores = load_scores(score_folder, "cnn-ep2").with_format("numpy")
    assert len(prune(image_dataset, scores, fraction=0.5, verify="none")) == 20
    wrong = attach(scores, Provenance(source=SourceInfo(num_rows=len(image_dataset) + 1)))
    with pytest.raises(ScoreMismatchError, match="card says the source split has 41 rows"):
        prune(image_dataset, wrong, fraction=0.5)


def test_combine_keeps_shared_training_settings():
    a = Provenance(scoring=ScoringInfo(model="cnn", seeds=(0, 1), lr=0.1, batch_size=64), wall_time_s=1.0)
    b = Provenance(scoring=ScoringInfo(model="mlp", seeds=(0, 1), lr=0.1, batch_size=32), wall_time_s=2.5)
    both = Provenance.combine([a, b])
    assert both.scoring.model == "cnn, mlp" and both.scoring.lr == 0.1 and both.scoring.batch_size is None
    assert both.wall_time_s == 3.5 and [r.scoring.batch_size for r in both.runs] == [64, 32]


def test_config_info_time_and_init():
    assert ConfigInfo(step=0, epoch=0.0).at_init and ConfigInfo(step=0, epoch=0.0).time_text() == "epoch 0"
    assert ConfigInfo(step=150, epoch=0.32).time_text() == "step 150 (epoch 0.32)"
    assert not ConfigInfo(step=5).at_init


def test_environment_current_reads_installed_versions():
    env = EnvironmentInfo.current(hardware="x")
    assert env.datasets_version == datasets.__version__ and env.hardware == "x"


def test_writer_accepts_the_old_dict_form(tmp_path, image_dataset):
    folder = write_score_dataset(
        tmp_path / "s",
        {"cnn-ep2": make_score_table(image_dataset)},
        provenance=make_provenance(len(image_dataset)),
        plots=False,
    )
    assert ScoreFolder(folder).provenance() == Provenance.from_dict(make_provenance(len(image_dataset)))


def test_code_commit_is_the_checkout_head_or_none(tmp_path):
    import subprocess

    from datadiet_hub.provenance import code_commit

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CARD, capture_output=True, text=True, check=False)
    if head.returncode == 0:  # running from a git checkout (as in CI)
        assert EnvironmentInfo.current().code_commit == head.stdout.strip()
    package = tmp_path / "pkg"
    package.mkdir()
    assert code_commit(package) is None  # not a checkout: no commit rather than a wrong one
