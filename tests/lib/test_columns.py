"""One rule for the input column, its kind and the label column (``datadiet_hub.columns``), and one definition of a
row's id whatever form its label takes (``hashing.LabelSpace``): the join of a score table to the dataset it came
from, loaded as a user loads it."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from datadiet_hub.align import dataset_example_ids
from datadiet_hub.columns import Columns, InputKind, detect_columns
from datadiet_hub.errors import InvalidArgumentError, ScoreMismatchError
from datadiet_hub.hashing import LabelSpace, example_id
from datadiet_hub.keeping import keep
from datadiet_hub.provenance import Provenance, SourceInfo
from datadiet_hub.pruning import prune

TEXT, IMAGE = InputKind.TEXT, InputKind.IMAGE


def images(n: int) -> list:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8), "L") for _ in range(n)]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"text": ["a"], "label": [0]}, ("text", TEXT, "label")),
        ({"Text": ["a"], "Label": ["x"], "chars": [1]}, ("Text", TEXT, "Label")),  # case-insensitive
        ({"id": ["r1"], "sentence": ["a"], "category": ["x"], "source": ["f"]}, ("sentence", TEXT, "category")),
        ({"id": ["r1"], "body": ["a"], "language": ["de"]}, ("body", TEXT, "language")),
        ({"uid": ["r1"], "post": ["a"], "target": [1], "url": ["u"]}, ("post", TEXT, "target")),  # metadata aside
        ({"text": ["a"], "label": [1], "language": ["de"], "score": [0.5]}, ("text", TEXT, "label")),
        ({"text": ["a"], "lang": ["de"]}, ("text", TEXT, "lang")),
    ],
)
def test_text_columns_are_detected(columns, expected):
    assert detect_columns(datasets.Dataset.from_dict(columns)) == Columns(*expected)


def test_typed_features_win_and_every_form_of_the_dataset_agrees():
    features = datasets.Features(
        {"id": datasets.Value("string"), "img": datasets.Image(), "digit": datasets.ClassLabel(names=["a", "b"])}
    )
    ds = datasets.Dataset.from_dict({"id": ["x", "y"], "img": images(2), "digit": [0, 1]}, features=features)
    expected = Columns("img", IMAGE, "digit")
    forms = [ds, ds.features, ds[:2], ds[0], ds.with_format("numpy")[:2], ds.to_iterable_dataset()]
    forms.append(ds.with_format("arrow")[:2])
    assert all(detect_columns(form) == expected for form in forms)


def test_a_streamed_file_without_features_is_typed_from_its_first_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"Sentence": "hallo welt", "label": "de", "n": 1}\n{"Sentence": "hola", "label": "es", "n": 2}\n')
    streamed = datasets.load_dataset("json", data_files=str(path), split="train", streaming=True)
    assert detect_columns(streamed) == Columns("Sentence", TEXT, "label")


@pytest.mark.parametrize(
    ("columns", "kwargs", "message"),
    [
        ({"a": ["x"], "b": ["y"], "label": [0]}, {}, r"Several text columns \['a', 'b'\].*--input-column"),
        ({"text": ["x"], "score": [0.1]}, {}, r"No label column found among the columns \['text', 'score'\]"),
        ({"text": ["x"], "label": [0]}, {"input_column": "body"}, r"'body' \(--input-column\) is not in"),
        ({"text": ["x"], "label": [0]}, {"label_column": "Label"}, r"'Label' \(--label-column\) is not in"),
        ({"text": ["x"], "score": [0.1]}, {"label_column": "score"}, r"holds float values"),
        ({"n": [1], "label": [0]}, {"input_column": "n"}, r"holds integer values, not images or texts"),
        ({"text": ["x"], "label": [0]}, {"image_column": "text"}, r"--image-column 'text' holds text"),
        ({"text": ["x"], "label": [0]}, {"input_column": "text", "text_column": "label"}, "Name one input"),
        ({"n": [1], "label": [0]}, {}, r"Cannot find the input column.*--input-column"),
    ],
)
def test_undecidable_or_wrong_columns_are_one_clear_error(columns, kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        detect_columns(datasets.Dataset.from_dict(columns), **kwargs)


def test_mixed_type_labels_are_named(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "a b", "label": "x"}\n{"text": "c d", "label": 7}\n')
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    with pytest.raises(InvalidArgumentError, match="'label' looks like the label but holds mixed-type values"):
        detect_columns(ds)


def test_label_space_maps_names_and_reordered_class_labels():
    space = LabelSpace(("de", "en", "es"))
    assert space.class_ids(["es", "de"]) == [2, 0]
    assert space.class_ids([0, 1, 2], own_names=["es", "de", "en"]) == [2, 0, 1]  # same classes, other order
    assert space.class_ids([1], own_names=["de", "en", "es"]) == [1]
    with pytest.raises(ScoreMismatchError, match=r"classes \['de', 'fr'\] are not the scored classes"):
        space.class_ids([0], own_names=["de", "fr"])
    with pytest.raises(ScoreMismatchError, match="Label 'fr' is not one of the scored classes"):
        space.class_ids(["fr"])
    with pytest.raises(ScoreMismatchError, match="record no class names"):
        LabelSpace().class_ids(["de"])
    assert LabelSpace().class_ids([3, np.int64(4)]) == [3, 4]  # integer labels without names: as they are


def _scored(texts: list[str], names: list[str], labels: list[str]) -> tuple[pa.Table, Provenance]:
    """A score table hashed as scoring hashes it (labels as class ids of the sorted names), and its provenance."""
    n = len(texts)
    ids = [example_id(t, names.index(lab)) for t, lab in zip(texts, labels)]
    el2n = np.linspace(0, 1, n, dtype=np.float32)[::-1].copy()
    table = pa.table({"idx": np.arange(n), "example_id": ids, "el2n": el2n})
    source = SourceInfo(num_rows=n, input_column="text", label_column="language", label_names=tuple(names))
    return table, Provenance(source=source)


def test_string_labels_join_to_scores_hashed_with_class_ids():
    texts = [f"satz nummer {i}" for i in range(40)]
    labels = ["de", "en", "es", "it"] * 10
    scores, provenance = _scored(texts, sorted(set(labels)), labels)
    ds = datasets.Dataset.from_dict({"text": texts, "language": labels, "source": ["f"] * 40})
    pruned = prune(ds, scores, fraction=0.5, provenance=provenance, verify="full")
    kept = ds.filter(keep(scores, fraction=0.5, provenance=provenance), with_indices=True, batched=True)
    assert pruned["text"] == kept["text"] == texts[:20]  # el2n falls with the row: the first half is hardest
    shuffled = ds.shuffle(seed=3)
    by_content = prune(shuffled, scores, fraction=0.5, on="example_id", provenance=provenance)
    assert sorted(by_content["text"]) == sorted(texts[:20])
    streamed = shuffled.to_iterable_dataset().filter(
        keep(scores, fraction=0.5, on="example_id", provenance=provenance), with_indices=True, batched=True
    )
    assert sorted(row["text"] for row in streamed) == sorted(texts[:20])
    encoded = ds.class_encode_column("language")  # a ClassLabel of the same names: the same ids
    assert dataset_example_ids(encoded, provenance=provenance).equals(dataset_example_ids(ds, provenance=provenance))
    reordered = ds.cast_column("language", datasets.ClassLabel(names=["it", "es", "en", "de"]))  # other class ids
    assert prune(reordered, scores, fraction=0.5, provenance=provenance, verify="full")["text"] == texts[:20]
    predicate = keep(scores, fraction=0.5, on="example_id", provenance=provenance, dataset=reordered)
    assert sorted(reordered.shuffle(seed=2).filter(predicate, with_indices=True, batched=True)["text"]) == sorted(
        texts[:20]
    )
    renamed = ds.map(lambda row: {"language": row["language"].upper()})
    with pytest.raises(ScoreMismatchError, match="Label 'DE' is not one of the scored classes"):
        prune(renamed, scores, fraction=0.5, provenance=provenance)


def test_a_score_folder_read_with_plain_load_dataset_keeps_its_class_names(tmp_path):
    """``load_dataset`` drops the card's provenance from the tables, so the writer also gives ``label`` its class
    names as a ``ClassLabel``: ``keep`` and ``prune`` then map a dataset's string labels without the card."""
    from datadiet_hub.writer import write_score_dataset

    texts = [f"frase numero {i}" for i in range(40)]
    labels = ["de", "en", "es", "it"] * 10
    names = sorted(set(labels))
    table, provenance = _scored(texts, names, labels)
    table = table.append_column("label", pa.array([names.index(lab) for lab in labels]))
    table = table.append_column("el2n_std", pa.array(np.zeros(40, dtype=np.float32)))
    per_seed = pa.array([[v] for v in table.column("el2n").to_pylist()], type=pa.list_(pa.float32()))
    table = table.append_column("el2n_per_seed", per_seed)
    write_score_dataset(tmp_path / "scores", {"model-ep1": table}, provenance=provenance, plots=False)
    scores = datasets.load_dataset(str(tmp_path / "scores"), "model-ep1", split="train")
    assert scores.features["label"] == datasets.ClassLabel(names=names)
    ds = datasets.Dataset.from_dict({"text": texts, "language": labels})
    kept = ds.filter(keep(scores, fraction=0.5), with_indices=True, batched=True)
    assert kept["text"] == prune(ds, scores, fraction=0.5, verify="full")["text"] == texts[:20]
    with pytest.raises(ScoreMismatchError, match="record no class names"):  # what it did before
        ds.filter(
            keep(scores.cast_column("label", datasets.Value("int64")), fraction=0.5), with_indices=True, batched=True
        )


def test_integer_class_ids_hash_as_before():
    """Published ids (Fashion-MNIST: integer ClassLabel ids, no names on the card) keep matching."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    ds = datasets.Dataset.from_dict({"image": images(6), "label": [0, 1, 2, 0, 1, 2]}, features=features)
    ids = dataset_example_ids(ds).to_pylist()
    assert ids == [example_id(np.asarray(img), lab) for img, lab in zip(ds["image"], ds["label"])]
