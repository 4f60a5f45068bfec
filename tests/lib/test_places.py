"""Where a score dataset lives: the three places answer the same verbs, and "is this a store entry" has one
answer (``store.is_store_entry``) for ``resolve``, ``LocalStore.has`` and the output guard."""

from __future__ import annotations

import pytest
from builders import make_image_dataset, make_provenance, make_score_table

from datadiet_hub import LocalStore
from datadiet_hub.errors import InvalidArgumentError, ScoresNotFoundError
from datadiet_hub.resolve import FOLDER, HUB, STORE, FolderPlace, HubPlace, StorePlace, resolve
from datadiet_hub.store import is_store_entry
from datadiet_hub.writer import write_score_dataset


@pytest.fixture
def folder(tmp_path):
    ds = make_image_dataset()
    table = make_score_table(ds)
    return write_score_dataset(tmp_path / "s", {"cnn-ep2": table}, provenance=make_provenance(len(ds)), plots=False)


def test_one_answer_to_is_this_a_store_entry(tmp_path, folder):
    store = LocalStore(tmp_path / "store")
    store.publish(folder, "tiny", "v1")
    entry = tmp_path / "store" / "tiny"
    assert is_store_entry(entry) and store.has("tiny") and resolve(entry, store=store).kind == STORE
    (entry / ".publishing-v2").mkdir()  # a publish in progress does not count
    assert is_store_entry(entry)
    (entry / "notes").mkdir()  # a folder that is no version: not an entry, for everyone
    assert not is_store_entry(entry) and not store.has("tiny")
    with pytest.raises(ScoresNotFoundError, match="holds no score dataset"):
        resolve(entry, store=store)
    (tmp_path / "store" / "empty").mkdir()
    assert not is_store_entry(tmp_path / "store" / "empty") and not store.has("empty")


def test_every_place_answers_the_same_verbs(tmp_path, folder):
    store = LocalStore(tmp_path / "store")
    store.publish(folder, "tiny", "v1")
    places = [resolve(folder, store=store), resolve("tiny", store=store), resolve("user/tiny", store=store)]
    assert [type(p) for p in places] == [FolderPlace, StorePlace, HubPlace]
    assert [p.kind for p in places] == [FOLDER, STORE, HUB]
    for place in places:
        assert callable(place.describe) and callable(place.versions) and callable(place.provenance)
    assert places[0].versions() == [] and [v.name for v in places[1].versions()] == ["v1"]
    assert places[0].provenance().source.num_rows == places[1].provenance("v1").source.num_rows
    with pytest.raises(InvalidArgumentError, match="is a Hub repo, not a local folder"):
        places[2].folder()
    with pytest.raises(InvalidArgumentError, match="single score dataset folder"):
        places[0].folder("v1")
