"""``ScoreFolder`` (layout, card, files, validation), the rendered card text, and the one resolver."""

from __future__ import annotations

import pytest
from builders import make_image_dataset, make_score_table

from datadiet_hub import LocalStore
from datadiet_hub.errors import CardError, InvalidArgumentError, ScoresNotFoundError
from datadiet_hub.folder import ScoreFolder, load_card
from datadiet_hub.provenance import Provenance
from datadiet_hub.resolve import FOLDER, HUB, STORE, resolve
from datadiet_hub.writer import write_score_dataset


def _prov(n: int, *, augmentation: str = "none", step: int = 0) -> Provenance:
    return Provenance.from_scoring(
        source={"dataset": "tiny", "split": "train", "num_rows": n, "fingerprint": "x"},
        scoring={"model": "cnn", "seeds": [0, 1, 2], "batch_size": 16, "lr": 0.05, "augmentation": augmentation},
        configs={
            "cnn-ep0": {"model": "cnn", "step": 0, "epoch": 0.0, "metrics": ["el2n"]},
            "cnn-ep2": {"model": "cnn", "step": step or 20, "epoch": 2.0, "metrics": ["el2n"]},
        },
        environment={"hardware": "1 process(es) on cpu"},
    )


def _write(path, *, augmentation="none", configs=("cnn-ep0", "cnn-ep2"), metrics=("el2n",)):
    ds = make_image_dataset()
    tables = {c: make_score_table(ds, seed=i + 1, metrics=metrics) for i, c in enumerate(configs)}
    return write_score_dataset(path, tables, provenance=_prov(len(ds), augmentation=augmentation), plots=False)


def test_files_are_exactly_the_publishable_ones(tmp_path):
    folder = ScoreFolder(_write(tmp_path / "s"))
    (folder.path / "plots").mkdir()
    (folder.path / "plots" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"rest")  # a PNG signature
    (folder.path / ".state").mkdir()
    (folder.path / ".state" / "x").write_text("engine state")
    (folder.path / "data" / ".tmp-part").write_text("partial")
    (folder.path / "notes.txt").write_text("local notes")
    files = [p.as_posix() for p in folder.files()]
    assert files == [
        "README.md",
        "data/cnn-ep0/train-00000-of-00001.parquet",
        "data/cnn-ep2/train-00000-of-00001.parquet",
        "plots/a.png",
    ]
    assert folder.unpublished() == ["notes.txt"]


def test_validate_and_card_readers(tmp_path):
    folder = ScoreFolder(_write(tmp_path / "s"))
    assert folder.validate() == folder.configs() == ["cnn-ep0", "cnn-ep2"]
    assert folder.pick_config("cnn-ep2") == "cnn-ep2"
    with pytest.raises(InvalidArgumentError, match="several configs"):
        folder.pick_config(None)
    with pytest.raises(ScoresNotFoundError, match="Config 'nope' not found"):
        folder.pick_config("nope")
    folder.data_file("cnn-ep2").unlink()
    with pytest.raises(ScoresNotFoundError, match="'cnn-ep2' has no data file"):
        folder.validate()
    with pytest.raises(ScoresNotFoundError, match="does not exist"):
        ScoreFolder(tmp_path / "missing").validate()


@pytest.mark.parametrize(
    "text, match",
    [
        ("---\nconfigs: [\n---\nbody\n", "cannot be read"),
        ("---\n- a list\n---\nbody\n", "cannot be read"),
        ("---\nconfigs: 3\n---\nbody\n", "is not a list of entries"),
        ("---\ndatadiet: [1]\n---\nbody\n", "is not a mapping"),
    ],
)
def test_an_unreadable_card_is_one_error_type(tmp_path, text, match):
    (tmp_path / "README.md").write_text(text)
    folder = ScoreFolder(tmp_path)
    with pytest.raises(CardError, match=match) as info:
        folder.configs()
        folder.provenance()
    assert info.value.path == folder.readme and isinstance(info.value, ValueError)


def test_missing_card_is_a_card_error_and_never_a_hub_lookup(tmp_path):
    with pytest.raises(CardError, match="does not exist"):
        load_card(tmp_path / "README.md")


def test_card_text_training_environment_and_init_warning(tmp_path):
    text = (_write(tmp_path / "plain") / "README.md").read_text()
    assert "| training | batch_size=16, lr=0.05, augmentation=none |" in text
    assert "| hardware | 1 process(es) on cpu |" in text and "| datasets |" in text
    assert "`el2n` = ‖softmax − one-hot‖₂" in text  # noqa: RUF001
    assert "`forgetting` =" not in text and "never_learned" not in text  # only the columns the folder has
    forgetting = " ".join((_write(tmp_path / "f", metrics=("forgetting",)) / "README.md").read_text().split())
    assert "counted on the minibatches as trained, without augmentation" in forgetting
    assert "augmented minibatches" not in forgetting and "`never_learned` is true when" in forgetting
    row0 = next(line for line in text.splitlines() if line.startswith("| `cnn-ep0`"))
    row2 = next(line for line in text.splitlines() if line.startswith("| `cnn-ep2`"))
    assert "noise control" in row0 and "noise control" not in row2
    assert "EL2N at initialisation is a noise control" in text
    augmented = (_write(tmp_path / "aug", augmentation="crop+flip", metrics=("forgetting",)) / "README.md").read_text()
    assert "counted on the augmented minibatches as trained" in " ".join(augmented.split())
    no_init = (_write(tmp_path / "late", configs=("cnn-ep2",)) / "README.md").read_text()
    assert "noise control" not in no_init


def test_resolver_decides_once_for_every_caller(tmp_path):
    folder = _write(tmp_path / "s")
    store = LocalStore(tmp_path / "store")
    store.publish(folder, "tiny", "v1")
    assert resolve(folder, store=store).kind == FOLDER
    assert resolve("tiny", store=store).kind == STORE
    assert resolve(tmp_path / "store" / "tiny", store=store).kind == STORE  # a store entry by path
    assert resolve("user/tiny", store=store).kind == HUB
    assert resolve("user/tiny", store=store, local=True).kind == STORE
    assert resolve("absent", store=store).kind == STORE  # a store name not published yet
    assert [v.name for v in resolve("tiny", store=store).versions()] == ["v1"]
    assert resolve("absent", store=store).versions() == []
    assert resolve("tiny", store=store).folder("v1").path == tmp_path / "store" / "tiny" / "v1"
    with pytest.raises(ScoresNotFoundError, match="No score dataset 'absent' in the local store"):
        resolve("absent", store=store).folder()
    with pytest.raises(InvalidArgumentError, match="single score dataset folder; version='v1'"):
        resolve(folder, store=store).folder("v1")
    with pytest.raises(ScoresNotFoundError, match="neither a folder nor a valid name"):
        resolve("../up", store=store)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScoresNotFoundError, match="holds no score dataset"):
        resolve(tmp_path / "empty", store=store)
