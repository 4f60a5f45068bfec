"""Score dataset format, card round trip, the local versioned store and plain ``load_dataset`` on a version."""

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import make_provenance, make_score_table

from datadiet_hub import LocalStore, load_scores
from datadiet_hub.errors import ScoresNotFoundError, VersionExistsError
from datadiet_hub.folder import ScoreFolder
from datadiet_hub.provenance import Provenance
from datadiet_hub.schema import score_schema, validate_table


def test_schema_has_the_documented_columns():
    schema = score_schema(["el2n", "grand", "forgetting"])
    assert schema.names[:3] == ["idx", "example_id", "label"]
    assert schema.field("el2n").type == pa.float32()
    assert schema.field("el2n_per_seed").type == pa.list_(pa.float32())
    assert schema.field("never_learned").type == pa.bool_()
    assert schema.field("idx").type == pa.int64()


def test_validate_table_names_the_problem(image_dataset):
    table = make_score_table(image_dataset)
    with pytest.raises(ValueError, match=r"lacks required column\(s\) \['example_id'\]"):
        validate_table(table.drop_columns(["example_id"]))
    with pytest.raises(ValueError, match="lacks column.*el2n_std"):
        validate_table(table.drop_columns(["el2n_std"]))
    bad_idx = table.set_column(0, "idx", pa.array([0] * len(table), pa.int64()))
    with pytest.raises(ValueError, match="each row position 0..N-1 exactly once"):
        validate_table(bad_idx)


def test_card_round_trip(score_folder, image_dataset):
    data = ScoreFolder(score_folder).metadata()
    assert [c["config_name"] for c in data["configs"]] == ["cnn-ep2", "cnn-ep0"]
    assert data["configs"][0]["data_files"] == [{"split": "train", "path": "data/cnn-ep2/train-*.parquet"}]
    assert data["datadiet"] == make_provenance(len(image_dataset))
    assert ScoreFolder(score_folder).provenance() == Provenance.from_dict(make_provenance(len(image_dataset)))
    assert "data-pruning" in data["tags"] and data["source_datasets"] == ["tiny"]
    text = (score_folder / "README.md").read_text()
    assert "load_dataset(" in text and ".filter(" in text  # the usage snippet
    assert "paul2021datadiet" in text  # the citation
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(score_folder / "README.md")  # the Hub's own parser accepts it
    assert card.data.configs[1]["config_name"] == "cnn-ep0"
    # the data round-trips exactly
    written = pq.read_table(score_folder / "data" / "cnn-ep2" / "train-00000-of-00001.parquet")
    assert written.equals(make_score_table(image_dataset, seed=1))


def test_plain_load_dataset_on_a_stored_version(score_folder, image_dataset, tmp_path):
    store = LocalStore(tmp_path / "store")
    info = store.publish(score_folder, "tiny-datadiet", "v1")
    assert info.name == "v1" and info.configs == ("cnn-ep2", "cnn-ep0")
    ds = datasets.load_dataset(info.location, "cnn-ep0", split="train")  # no project code involved
    assert len(ds) == len(image_dataset)
    assert ds.column_names == score_schema(["el2n", "forgetting"]).names
    assert (
        ds["example_id"]
        == make_score_table(image_dataset, seed=2, metrics=("el2n", "forgetting"))["example_id"].to_pylist()
    )
    # and through the library, by store name
    same = load_scores("tiny-datadiet", "cnn-ep0", store=store)
    assert same["el2n"] == ds["el2n"]


def test_publishing_an_existing_version_is_refused_and_leaves_it_intact(score_folder, tmp_path):
    store = LocalStore(tmp_path / "store")
    first = store.publish(score_folder, "tiny-datadiet", "v1")
    before = {
        p.relative_to(first.location): p.read_bytes()
        for p in sorted(__import__("pathlib").Path(first.location).rglob("*"))
        if p.is_file()
    }
    # change the source, then try to publish it as the same version
    (score_folder / "README.md").write_text((score_folder / "README.md").read_text() + "\nchanged\n")
    with pytest.raises(VersionExistsError, match="'v1' of 'tiny-datadiet' already exists.*immutable"):
        store.publish(score_folder, "tiny-datadiet", "v1")
    after = {
        p.relative_to(first.location): p.read_bytes()
        for p in sorted(__import__("pathlib").Path(first.location).rglob("*"))
        if p.is_file()
    }
    assert after == before
    assert [v.name for v in store.versions("tiny-datadiet")] == ["v1"]
    assert not list((tmp_path / "store" / "tiny-datadiet").glob(".tmp-*"))  # no leftovers


def test_versions_sort_naturally_and_latest_is_default(score_folder, tmp_path):
    store = LocalStore(tmp_path / "store")
    for version in ("v2", "v10", "v1"):
        store.publish(score_folder, "tiny", version)
    assert [v.name for v in store.versions("tiny")] == ["v1", "v2", "v10"]
    assert store.path("tiny").name == "v10"
    assert "tiny/train (40 rows)" in store.versions("tiny")[0].summary()


def test_store_root_defaults_to_datadiet_home(isolated_store):
    assert LocalStore().root == isolated_store


def test_publish_refuses_a_folder_that_is_not_a_score_dataset(tmp_path, score_folder):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ScoresNotFoundError, match="has no README.md.*datadiet score"):
        store.publish(tmp_path, "x", "v1")
    (score_folder / "data" / "cnn-ep2" / "train-00000-of-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="train-00000-of-00001.parquet.*is not a PARQUET file"):  # bad input
        store.publish(score_folder, "x", "v1")
    assert store.versions("x") == []


@pytest.mark.parametrize("bad", ["", "../up", "v 1", "main", "-v1"])
def test_bad_version_names_are_quoted(bad, score_folder, tmp_path):
    with pytest.raises(ValueError, match="Invalid version name"):
        LocalStore(tmp_path).publish(score_folder, "x", bad)


def test_load_scores_errors(score_folder, tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ValueError, match=r"several configs \['cnn-ep2', 'cnn-ep0'\]; choose one"):
        load_scores(score_folder)
    with pytest.raises(ScoresNotFoundError, match="Config 'cnn-ep9' not found.*cnn-ep2"):
        load_scores(score_folder, "cnn-ep9")
    with pytest.raises(ScoresNotFoundError, match="No score dataset 'nothing' in the local store"):
        load_scores("nothing", store=store)
    store.publish(score_folder, "tiny", "v1")
    with pytest.raises(ScoresNotFoundError, match=r"Version 'v3' of 'tiny' not found.*\['v1'\]"):
        load_scores("tiny", "cnn-ep2", "v3", store=store)


def test_load_scores_never_serves_another_folders_rows(image_dataset, tmp_path):
    """``datasets`` caches ``load_dataset(folder, config)`` by the folder's *name*: two store versions both called
    ``v1`` (or a folder rewritten in place) must still each give their own rows through ``load_scores``."""
    from datadiet_hub.writer import write_score_dataset

    store = LocalStore(tmp_path / "store")
    n = len(image_dataset)
    for name, value in (("first-datadiet", 0.25), ("second-datadiet", 0.75)):
        table = make_score_table(image_dataset, values=[value] * n)
        folder = write_score_dataset(tmp_path / name, {"cnn-ep2": table}, provenance=make_provenance(n), plots=False)
        store.publish(folder, name, "v1")
    assert set(load_scores("first-datadiet", "cnn-ep2", version="v1", store=store)["el2n"]) == {0.25}
    assert set(load_scores("second-datadiet", "cnn-ep2", version="v1", store=store)["el2n"]) == {0.75}

    out = tmp_path / "rescored"  # a `datadiet score --output-dir` rerun writes the same folder again
    for value in (0.125, 0.5):
        write_score_dataset(
            out,
            {"cnn-ep2": make_score_table(image_dataset, values=[value] * n)},
            provenance=make_provenance(n),
            plots=False,
        )
        assert set(load_scores(out, "cnn-ep2")["el2n"]) == {value}
