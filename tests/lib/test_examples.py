"""Look before you delete: which rows are shown (hardest, easiest, most likely mislabeled), the PNG grid of images,
the Markdown table of texts, ``datadiet show NAME --examples DATASET``, and the examples a score folder publishes."""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
from builders import make_image_dataset, make_provenance, make_score_table
from markdown_it import MarkdownIt
from PIL import Image

from datadiet_hub._examples_plot import THUMB_PX, grid_pixels, thumbnail
from datadiet_hub._examples_table import NEWLINE_MARK, escape_cell, markdown_table
from datadiet_hub._examples_write import render_examples
from datadiet_hub._plotting import pyplot
from datadiet_hub.cli import main
from datadiet_hub.columns import Columns, InputKind
from datadiet_hub.errors import InvalidArgumentError, MissingExtraError, ScoreMismatchError, UnsafeFileError
from datadiet_hub.examples import GROUPS, ExampleSet, collect_examples, pick_rows
from datadiet_hub.folder import ScoreFolder
from datadiet_hub.hashing import example_id
from datadiet_hub.sources import Source, load_source
from datadiet_hub.store import LocalStore
from datadiet_hub.writer import refresh_card, write_score_dataset

# -- which rows ------------------------------------------------------------------------------------------------------


def _oracle(values, labels, k):
    """The groups spelled out in plain Python: sort keys, per-class lists, rounds over the classes."""
    n = len(values)
    hardest = sorted(range(n), key=lambda i: (-float(values[i]), i))[:k]
    easiest = sorted(range(n), key=lambda i: (float(values[i]), i))[:k]
    per_class = defaultdict(list)
    for i in sorted(range(n), key=lambda i: (-float(values[i]), i)):
        per_class[int(labels[i])].append(i)
    rounds = []
    for r in range(k):
        rounds += sorted((rows[r] for rows in per_class.values() if len(rows) > r), key=lambda i: (-values[i], i))
    return {"hardest": hardest, "easiest": easiest, "mislabeled": rounds[:k]}


@pytest.mark.parametrize("seed", range(6))
def test_groups_match_a_plain_python_oracle_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    values = np.round(rng.random(n), 1).astype(np.float32)  # one decimal: many ties
    labels = rng.integers(0, int(rng.integers(1, 6)), n)
    k = int(rng.integers(1, 12))
    picked = pick_rows(values, labels, per_group=k)
    assert {g: picked[g].tolist() for g in GROUPS} == _oracle(values, labels, k)


def test_labels_that_are_not_small_class_ids_group_the_same_way():
    rng = np.random.default_rng(7)
    values = np.round(rng.random(50), 1)
    ids = rng.integers(0, 4, 50)
    odd = np.array([-3, 7, 10**9, 12])[ids]  # negative and huge labels take the np.unique path
    assert {g: r.tolist() for g, r in pick_rows(values, odd, per_group=9).items()} == _oracle(values, ids, 9)


def test_ties_go_to_the_lower_row_and_mislabeled_spreads_over_classes():
    values = np.array([0.5, 0.9, 0.9, 0.1, 0.1, 0.7, 0.2], dtype=np.float32)
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    picked = pick_rows(values, labels, per_group=4)
    assert picked["hardest"].tolist() == [1, 2, 5, 0]
    assert picked["easiest"].tolist() == [3, 4, 6, 0]
    # round 1: the top of each class (0: row 1, 1: row 5, 2: row 6), hardest first; round 2 starts with class 0
    assert picked["mislabeled"].tolist() == [1, 5, 6, 2]


def test_fewer_rows_than_asked_and_one_row_classes():
    values = np.array([0.3, 0.1, 0.2])
    picked = pick_rows(values, np.array([0, 1, 2]), per_group=8)
    assert picked["hardest"].tolist() == [0, 2, 1] and picked["easiest"].tolist() == [1, 2, 0]
    assert picked["mislabeled"].tolist() == [0, 2, 1]  # every class has one row: each is its class's top
    empty = pick_rows(np.array([]), np.array([], dtype=np.int64), per_group=2)
    assert all(len(rows) == 0 for rows in empty.values())


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_per_group_must_be_a_positive_whole_number(bad):
    with pytest.raises(InvalidArgumentError, match="per_group"):
        pick_rows(np.zeros(3), np.zeros(3), per_group=bad)


# -- images ----------------------------------------------------------------------------------------------------------


def _mode_images() -> list[Image.Image]:
    """One image per mode the grid must handle, of different sizes."""
    rng = np.random.default_rng(0)
    palette = Image.fromarray(rng.integers(0, 4, (20, 30), dtype=np.uint8), mode="L").convert("P")
    return [
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L"),
        Image.fromarray(np.full((300, 500, 3), (255, 0, 0), dtype=np.uint8), mode="RGB"),  # large, pure red
        Image.fromarray(rng.integers(0, 256, (9, 5, 4), dtype=np.uint8), mode="RGBA"),
        palette,
        Image.fromarray(rng.integers(0, 4096, (40, 33), dtype=np.uint16)),  # 12-bit values in a 16-bit image
        Image.fromarray(rng.integers(0, 256, (3, 2), dtype=np.uint8), mode="L").convert("1"),
        Image.fromarray(rng.integers(0, 256, (64, 64, 2), dtype=np.uint8), mode="LA"),
    ]


def _mode_dataset():
    images = _mode_images()
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["ab|c", "d"])})
    return datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(len(images))]}, features)


@pytest.mark.parametrize(
    "image",
    [*_mode_images(), Image.new("CMYK", (10, 7), (0, 255, 0, 0)), Image.new("F", (300, 12), 3.5)],
    ids=lambda im: f"{im.mode}-{im.size[0]}x{im.size[1]}",
)
def test_thumbnail_of_every_mode_is_8_bit_grey_or_rgb_and_small(image):
    pixels = thumbnail(image)
    assert pixels.dtype == np.uint8 and (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3))
    assert max(pixels.shape[:2]) <= THUMB_PX
    assert pixels.shape[:2] == (image.size[1], image.size[0]) or max(pixels.shape[:2]) == THUMB_PX


def test_thumbnail_stretches_16_bit_and_composites_transparency_on_white():
    deep = thumbnail(Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)))
    assert deep.min() == 0 and deep.max() == 255 and deep[0, 1] == round(1000 / 4000 * 255)
    clear = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    assert (thumbnail(Image.fromarray(clear, mode="RGBA")) == 255).all()
    assert thumbnail(np.zeros((3, 8, 8), dtype=np.float32)).shape == (8, 8, 3)  # channels first, from an array


def _source(dataset, kind="image", name="tiny"):
    columns = Columns(kind, InputKind(kind), "label")  # the builders' datasets: an `image` or `text` column
    return Source(dataset, columns, name=name, split="train")


def test_png_grid_has_the_expected_size_and_draws_the_images(tmp_path):
    ds = _mode_dataset()
    values = np.linspace(0, 1, len(ds)).astype(np.float32)
    values[1] = 9.0  # the red image is the hardest: its pixels must be in the grid
    table = make_score_table(ds, values=values)
    examples = collect_examples(table, _source(ds), per_group=3)
    assert [e.idx for e in examples.group("hardest")] == [1, 6, 5]
    target = render_examples(examples, tmp_path / "grid.png")
    with Image.open(target) as png:
        assert png.format == "PNG" and png.size == grid_pixels(len(GROUPS), 3)
        rgb = np.asarray(png.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 40) & (rgb[..., 2] < 40)
    assert red.sum() > 2 * 30 * 30  # the red thumbnail, in the hardest and the mislabeled rows
    assert not (tmp_path / "grid.png.tmp").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_forgetting_ranks_never_learned_rows_first_and_shows_their_count(image_dataset):
    table = make_score_table(image_dataset, metrics=("forgetting",))
    never = np.asarray(table.column("never_learned").to_pylist())
    stored = np.asarray(table.column("forgetting").to_pylist())
    assert 0 < never.sum() < 8
    examples = collect_examples(table, _source(image_dataset), column="forgetting", per_group=8)
    hardest = examples.group("hardest")
    assert [e.never_learned for e in hardest] == [True] * int(never.sum()) + [False] * (8 - int(never.sum()))
    assert all(e.score == pytest.approx(stored[e.idx]) for e in hardest)
    assert "(never learned)" in markdown_table(examples) and "(never learned)" not in hardest[-1].score_text


def test_a_metric_whose_low_values_are_hard_is_shown_reversed(image_dataset):
    from datadiet_hub import metrics

    metrics.declare(metrics.Metric("margin", help="h", card="c", higher_is_harder=False, over_seeds=False))
    try:
        table = make_score_table(image_dataset).append_column("margin", pa.array(np.arange(40, dtype=np.float32)))
        examples = collect_examples(table, _source(image_dataset), column="margin", per_group=3)
    finally:
        metrics.METRICS.pop("margin")
    assert [e.idx for e in examples.group("hardest")] == [0, 1, 2]  # the smallest margins, as prune ranks them
    assert [e.idx for e in examples.group("easiest")] == [39, 38, 37]
    assert [e.idx for e in examples.group("mislabeled")] == [0, 1, 2]  # labels cycle 0..3: each class's lowest
    assert "Hardest (lowest margin)" in markdown_table(examples)


def test_label_names_with_dollars_are_drawn_as_text_and_wide_grids_are_refused(tmp_path):
    names = ["$\\undefinedcommand$", "a$b"]  # matplotlib would parse $...$ as math and fail on the command
    images = [Image.fromarray(np.full((6, 6), 40 * i, dtype=np.uint8)) for i in range(4)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 0, 1]}, features)
    examples = collect_examples(make_score_table(ds), _source(ds), per_group=4)
    assert {e.label_name for e in examples.examples} == set(names)
    with Image.open(render_examples(examples, tmp_path / "dollars.png")) as png:
        assert png.size == grid_pixels(3, 4)
    wide = collect_examples(
        make_score_table(make_image_dataset(n=80)), _source(make_image_dataset(n=80)), per_group=65
    )
    with pytest.raises(InvalidArgumentError, match="at most 64"):
        render_examples(wide, tmp_path / "wide.png")
    assert not (tmp_path / "wide.png").exists()


def test_label_names_come_from_the_class_label(tmp_path):
    ds = _mode_dataset()
    examples = collect_examples(make_score_table(ds), _source(ds), per_group=2)
    assert {e.label_name for e in examples.examples} <= {"ab|c", "d"}
    assert all(e.label_name == ["ab|c", "d"][e.label] for e in examples.examples)


# -- texts -----------------------------------------------------------------------------------------------------------

NASTY = [
    "plain words",
    "a | pipe || and \\| escaped",
    "line one\nline two\r\nline three\rfour",
    "x" * 5000,  # one very long line
    "`code` *stars* _under_ <b>html</b> [link](http://x) &amp; # ! ~~strike~~",
    "",
    "tab\there\x00nul\u2028sep",
    "ünïcødé 漢字 🙂",
]


def _text_dataset():
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a|b", "c"])})
    return datasets.Dataset.from_dict({"text": NASTY, "label": [i % 2 for i in range(len(NASTY))]}, features)


def _text_scores(ds, values=None):
    """A complete score table (the format's columns) for the text dataset ``ds``."""
    from datadiet_hub.schema import score_schema

    n = len(ds)
    values = np.arange(n, dtype=np.float32)[::-1].copy() if values is None else np.asarray(values, np.float32)
    columns = {
        "idx": np.arange(n),
        "example_id": [example_id(r["text"], r["label"]) for r in ds],
        "label": np.asarray(ds["label"]),
        "el2n": values,
        "el2n_std": np.zeros(n, np.float32),
        "el2n_per_seed": [[float(v)] for v in values],
    }
    return pa.table(columns, schema=score_schema(["el2n"]))


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every table of a Markdown document as rows of cell texts (header row first), by a CommonMark+GFM parser."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    tables, row, inside = [], None, False
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            tables[-1].append(row)
        elif token.type in ("th_open", "td_open"):
            inside = True
        elif token.type in ("th_close", "td_close"):
            inside = False
        elif token.type == "inline" and inside:
            row.append("".join(child.content for child in token.children if child.type == "text"))
    return tables


def _shown(text: str) -> str:
    """What a cell must show for a text: line breaks marked, control characters blanked."""
    text = NEWLINE_MARK.join(line.strip() for line in text.strip().splitlines())
    return "".join(" " if ch in "\t\x00\u2028" else ch for ch in text).strip()


def test_markdown_table_parses_with_one_row_per_example_and_the_text_intact():
    ds = _text_dataset()
    examples = collect_examples(_text_scores(ds), _source(ds, "text"), per_group=len(NASTY))
    markdown = markdown_table(examples, max_chars=300)
    tables = _tables(markdown)
    assert len(tables) == 3
    for table, group in zip(tables, GROUPS):
        assert table[0] == ["idx", "label", "el2n", "text"]
        rows = table[1:]
        assert len(rows) == len(examples.group(group)) == len(NASTY)
        for cells, example in zip(rows, examples.group(group)):
            assert len(cells) == 4 and cells[0] == str(example.idx)
            assert cells[1] == ["a|b", "c"][example.label]  # an escaped pipe, not a new cell
            original = _shown(NASTY[example.idx])
            if not original:
                assert cells[3] == "(empty)", cells  # "*(empty)*": emphasised, so no text can look like it
            elif len(original) > 300:
                assert cells[3] == original[:299] + "…"
            else:
                assert cells[3] == original
    assert sum(line.startswith("|") for line in markdown.splitlines()) == 3 * (2 + len(NASTY))  # one line a row


def test_escape_cell_cuts_before_escaping_and_keeps_one_line():
    cell = escape_cell("|" * 10 + "\n" + "y" * 50, max_chars=12)
    assert "\n" not in cell and cell.endswith("…") and cell.count("\\|") == 10
    assert escape_cell(None) == "*(empty)*" and escape_cell("  \n ") == "*(empty)*"


# -- the CLI ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def published(score_folder, tmp_path):
    """The conftest score folder (scores of ``image_dataset``) in a local store as ``tiny`` v1."""
    store = tmp_path / "store"
    LocalStore(store).publish(score_folder, "tiny", "v1")
    return store


def test_show_examples_of_a_store_entry_writes_the_png(published, image_dataset, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(data))
    out = tmp_path / "look.png"
    args = ["show", "tiny", "--config", "cnn-ep2", "--store", str(published), "--examples", str(data)]
    assert main([*args, "--per-group", "3", "--output", str(out)]) == 0
    assert "9 examples" in capsys.readouterr().out
    with Image.open(out) as png:
        assert png.size == grid_pixels(3, 3)
    monkeypatch.chdir(tmp_path)  # no --output: NAME-CONFIG-COLUMN-examples.png here
    assert main(args) == 0
    with Image.open(tmp_path / "tiny-cnn-ep2-el2n-examples.png") as png:
        assert png.size == grid_pixels(3, 8)
    assert main(args) == 4  # never over an existing file without --force
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force", "--column", "el2n_std", "--per-group", "2", "--output", str(out)]) == 0
    saved = tmp_path / "saved"  # a save_to_disk folder (what `datadiet prune` writes) works the same way
    image_dataset.save_to_disk(str(saved))
    args[-1] = str(saved)
    assert main([*args, "--per-group", "2", "--output", str(tmp_path / "saved.png")]) == 0


def test_show_examples_of_a_hub_repo(hub, score_folder, image_dataset, tmp_path):
    data = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(data))
    run = hub.run(
        """
from datadiet_hub.cli import main
published = main(["publish", ARGS["folder"], "--repo-id", "user/look", "--version", "v1"])
shown = main(["show", "user/look", "--version", "v1", "--config", "cnn-ep2", "--examples", ARGS["data"],
              "--per-group", "2", "--output", ARGS["out"]])
result = [published, shown]
""",
        args={"folder": str(score_folder), "data": str(data), "out": str(tmp_path / "hub.png")},
    )
    assert run.result == [0, 0]
    with Image.open(tmp_path / "hub.png") as png:
        assert png.size == grid_pixels(3, 2)


def test_show_examples_prints_markdown_for_texts_and_writes_md(tmp_path, capsys):
    ds = _text_dataset()
    data = tmp_path / "texts.parquet"
    ds.to_parquet(str(data))
    folder = write_score_dataset(
        tmp_path / "scores",
        {"tiny-ep1": _text_scores(ds)},
        provenance=make_provenance(len(ds)),
        plots=False,
    )
    assert main(["show", str(folder), "--examples", str(data), "--per-group", "2", "--max-chars", "40"]) == 0
    tables = _tables(capsys.readouterr().out)
    assert [len(t) - 1 for t in tables] == [2, 2, 2]
    assert main(["show", str(folder), "--examples", str(data), "--output", str(tmp_path / "t.png")]) == 2
    assert "ending in .md" in capsys.readouterr().err and not (tmp_path / "t.png").exists()
    assert main(["show", str(folder), "--examples", str(data), "--output", str(tmp_path / "t.md")]) == 0
    assert [len(t) - 1 for t in _tables((tmp_path / "t.md").read_text())] == [8, 8, 8]


def test_show_examples_of_a_jsonl_with_string_labels(tmp_path, capsys):
    """The file as a user has it (string labels); the scores as scoring writes them (class ids of the sorted
    names, recorded in the card)."""
    import json

    rows = [{"text": t, "language": lang} for t, lang in zip(NASTY, ["it", "de", "es", "de", "it", "es", "de", "it"])]
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = sorted({r["language"] for r in rows})
    scored = datasets.Dataset.from_dict(
        {"text": [r["text"] for r in rows], "label": [names.index(r["language"]) for r in rows]},
        datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}),
    )
    provenance = make_provenance(len(rows))
    provenance["source"].update(input_column="text", label_column="language", label_names=names)
    folder = write_score_dataset(
        tmp_path / "scores", {"tiny-ep1": _text_scores(scored)}, provenance=provenance, plots=False
    )
    assert main(["show", str(folder), "--examples", str(data), "--per-group", "3"]) == 0
    hardest = _tables(capsys.readouterr().out)[0][1:]
    assert [row[1] for row in hardest] == [rows[int(row[0])]["language"] for row in hardest]  # names, not ids
    assert [int(row[0]) for row in hardest] == [0, 1, 2]  # _text_scores: row 0 scores highest


def test_a_mismatched_dataset_is_one_clear_error_and_writes_nothing(published, image_dataset, tmp_path, capsys):
    shuffled = tmp_path / "shuffled.parquet"
    image_dataset.shuffle(seed=3).to_parquet(str(shuffled))
    out = tmp_path / "look.png"
    args = ["show", "tiny", "--config", "cnn-ep2", "--store", str(published), "--output", str(out)]
    assert main([*args, "--examples", str(shuffled)]) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert "differ from the scored examples" in err and "--on example_id" in err and "Traceback" not in err
    assert not out.exists()
    assert main([*args, "--examples", str(shuffled), "--on", "example_id"]) == 0  # by content: fine
    with Image.open(out) as png:
        assert png.size == grid_pixels(3, 8)
    out.unlink()
    other = tmp_path / "other.parquet"
    make_image_dataset(seed=9).to_parquet(str(other))  # same length and labels, other pixels
    assert main([*args, "--examples", str(other)]) == 2
    assert "differ from the scored examples" in capsys.readouterr().err and not out.exists()


def test_every_shown_row_is_checked_not_only_the_sample(image_dataset):
    """Swap two rows the 32-row sample does not visit: the sample passes, the shown rows must not."""
    ds = make_image_dataset(n=200)
    table = make_score_table(ds, values=np.arange(200, dtype=np.float32))  # row 199 is the hardest
    swapped = ds.select([*range(197), 198, 197, 199])  # 197 and 198 are not among the sampled positions
    with pytest.raises(ScoreMismatchError, match="rows to show differ"):
        collect_examples(table, _source(swapped), per_group=3)


def test_a_reordered_copy_joins_by_content(published, image_dataset, score_folder, tmp_path):
    table = datasets.load_dataset(
        "parquet", data_files=str(score_folder / "data/cnn-ep2/*.parquet"), split="train"
    ).with_format(None)
    plain = collect_examples(table, _source(image_dataset), per_group=4)
    shuffled = image_dataset.shuffle(seed=5).flatten_indices()
    with pytest.raises(ScoreMismatchError):
        collect_examples(table, _source(shuffled), per_group=4)
    joined = collect_examples(table, _source(shuffled), per_group=4, on="example_id")
    assert [(e.group, e.idx, e.score) for e in joined.examples] == [(e.group, e.idx, e.score) for e in plain.examples]
    same = [np.array_equal(np.asarray(a.value), np.asarray(b.value)) for a, b in zip(joined.examples, plain.examples)]
    assert all(same)


# -- the score folder: plots/, the card, publishing ------------------------------------------------------------------


def test_scoring_output_holds_the_examples_and_the_card_shows_them(image_dataset, tmp_path):
    folder = write_score_dataset(
        tmp_path / "scores",
        {"cnn-ep2": make_score_table(image_dataset)},
        provenance=make_provenance(len(image_dataset)),
        examples_source=_source(image_dataset),
    )
    grid = folder / "plots" / "cnn-ep2-el2n-examples.png"
    with Image.open(grid) as png:
        assert png.size == grid_pixels(3, 8)
    card = (folder / "README.md").read_text()
    assert (
        "## Look before you prune" in card
        and "![plots/cnn-ep2-el2n-examples.png](plots/cnn-ep2-el2n-examples.png)" in card
    )
    assert "plots/cnn-ep2-el2n-examples.png" in {p.as_posix() for p in ScoreFolder(folder).files()}
    refresh_card(folder)  # a re-rendered card keeps the examples apart from the histograms
    card = (folder / "README.md").read_text()
    assert card.count("plots/cnn-ep2-el2n-examples.png)") == 1 and "![plots/cnn-ep2-el2n.png]" in card


def test_text_examples_are_published_and_other_markdown_is_not(tmp_path, caplog):
    ds = _text_dataset()
    folder = write_score_dataset(
        tmp_path / "scores",
        {"tiny-ep1": _text_scores(ds)},
        provenance=make_provenance(len(ds)),
        examples_source=_source(ds, "text"),
    )
    table = folder / "plots" / "tiny-ep1-el2n-examples.md"
    assert [len(t) - 1 for t in _tables(table.read_text())] == [8, 8, 8]
    assert "[plots/tiny-ep1-el2n-examples.md](plots/tiny-ep1-el2n-examples.md)" in (folder / "README.md").read_text()
    (folder / "plots" / "notes.md").write_text("private")
    with caplog.at_level(logging.WARNING):
        files = {p.as_posix() for p in ScoreFolder(folder).files()}
    assert "plots/tiny-ep1-el2n-examples.md" in files and "plots/notes.md" not in files and "notes.md" in caplog.text
    version = LocalStore(tmp_path / "store").publish(folder, "texts", "v1")
    assert (Path(version.location) / "plots" / "tiny-ep1-el2n-examples.md").read_bytes() == table.read_bytes()
    table.write_bytes(b"| a |\x00binary")
    with pytest.raises(UnsafeFileError, match="UTF-8"):
        ScoreFolder(folder).files()


def test_without_matplotlib_scoring_still_writes_and_says_it_skipped(
    image_dataset, tmp_path, monkeypatch, caplog, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'datadiet-hub\[plot\]'"):
        pyplot()
    with caplog.at_level(logging.INFO):
        folder = write_score_dataset(
            tmp_path / "scores",
            {"cnn-ep2": make_score_table(image_dataset)},
            provenance=make_provenance(len(image_dataset)),
            examples_source=_source(image_dataset),
        )
    assert "skipped the example grid" in caplog.text and "datadiet-hub[plot]" in caplog.text
    assert not (folder / "plots").exists() and "Look before you prune" not in (folder / "README.md").read_text()
    assert len(datasets.load_dataset(str(folder), "cnn-ep2", split="train")) == len(image_dataset)
    data = tmp_path / "data.parquet"
    image_dataset.to_parquet(str(data))
    assert main(["show", str(folder), "--examples", str(data), "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "pip install 'datadiet-hub[plot]'" in err and not (tmp_path / "x.png").exists()


def test_an_unreadable_image_costs_the_examples_never_the_card(image_dataset, tmp_path, caplog, capsys):
    broken = image_dataset.cast_column("image", datasets.Image(decode=False)).map(
        lambda row, i: {"image": {"bytes": b"not an image" if i == 0 else row["image"]["bytes"], "path": None}},
        with_indices=True,
    )
    table = make_score_table(image_dataset, values=np.arange(40, 0, -1, dtype=np.float32))  # row 0: the hardest
    with caplog.at_level(logging.WARNING):
        folder = write_score_dataset(
            tmp_path / "scores",
            {"cnn-ep2": table},
            provenance=make_provenance(len(image_dataset)),
            examples_source=_source(broken.cast_column("image", datasets.Image())),
        )
    assert "Could not draw the examples of config cnn-ep2" in caplog.text
    assert not list((folder / "plots").glob("*-examples.*"))  # the histogram only
    assert ScoreFolder(folder).validate() == ["cnn-ep2"]
    data = tmp_path / "broken.parquet"
    broken.to_parquet(str(data))
    for verify in ("sample", "none"):  # found while matching rows, or while drawing
        out = tmp_path / f"{verify}.png"
        args = ["show", str(folder), "--examples", str(data), "--verify", verify, "--output", str(out)]
        assert main(args) == 2 and not out.exists()
        err = capsys.readouterr().err
        assert "cannot identify image file" in err and "Traceback" not in err


def test_an_image_over_the_pixel_limit_is_one_error_line(tmp_path, monkeypatch, capsys):
    images = [Image.fromarray(np.full((8, 8), i, dtype=np.uint8)) for i in range(10)]
    images[3] = Image.fromarray(np.zeros((20, 20), dtype=np.uint8))  # 400 pixels: over twice the limit below
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict({"image": images, "label": [i % 2 for i in range(10)]}, features)
    folder = write_score_dataset(
        tmp_path / "scores", {"cnn-ep2": make_score_table(ds)}, provenance=make_provenance(10), plots=False
    )
    data = tmp_path / "data.parquet"
    ds.to_parquet(str(data))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL's decompression-bomb guard, scaled down
    assert main(["show", str(folder), "--examples", str(data), "--output", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "exceeds limit" in err and "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_the_image_dataset_of_a_real_loader_round_trips(image_dataset, tmp_path):
    """Through ``load_source`` (the path `datadiet show --examples` takes): an imagefolder of PNG files."""
    root = tmp_path / "imagefolder"
    for i, row in enumerate(image_dataset):
        target = root / f"c{row['label']}" / f"{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        row["image"].save(target)
    source = load_source(str(root))
    assert source.kind == "image"
    ids = [example_id(r[source.input_column], r[source.label_column]) for r in source.dataset]
    n = len(source.dataset)
    table = pa.table(
        {
            "idx": np.arange(n),
            "example_id": ids,
            "label": np.asarray(source.dataset[source.label_column]),
            "el2n": np.linspace(0, 1, n, dtype=np.float32),
        }
    )
    examples = collect_examples(table, source, per_group=2)
    assert isinstance(examples, ExampleSet) and [e.idx for e in examples.group("hardest")] == [n - 1, n - 2]
    assert render_examples(examples, tmp_path / "g.png").stat().st_size > 0
    with pytest.raises(InvalidArgumentError, match="ending in .png"):
        render_examples(examples, tmp_path / "g.md")
