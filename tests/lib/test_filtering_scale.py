"""prune / keep at the edges users meet: indices mappings, streaming, num_proc, content joins and fingerprints.

Every test uses a small real dataset (PNG images through ``datasets.Image``) and a score folder written by the real
writer and read back with ``load_scores``; the 10M-row timings live in ``benchmarks/filter.py``.
"""

from __future__ import annotations

import io
import logging

import datasets
import numpy as np
import pyarrow as pa
import pytest
from scale_builders import (
    ids_of,
    image_arrays,
    make_image_dataset,
    provenance,
    write_parquet_dataset,
    write_score_folder,
)

from datadiet_hub import keep, load_provenance, load_scores, prune, select_indices
from datadiet_hub._datasets_compat import fingerprint_of, select_rows
from datadiet_hub.align import IdIndex, dataset_example_ids
from datadiet_hub.errors import ScoreMismatchError
from datadiet_hub.hashing import fingerprint, id_keys

N = 60


@pytest.fixture(autouse=True)
def _quiet():
    datasets.disable_progress_bars()


@pytest.fixture
def env(tmp_path):
    ds = make_image_dataset(N)
    folder = write_score_folder(tmp_path / "scores", N)
    scores = load_scores(folder, cache_dir=str(tmp_path / "cache"))
    return ds, folder, scores


def ids(dataset) -> list[str]:
    return dataset_example_ids(dataset).to_pylist()


def expected_ids(scores, **kwargs) -> list[str]:
    kept = select_indices(scores, **kwargs)
    return [scores["example_id"][int(i)] for i in kept]


# -- the fast select path ------------------------------------------------------------------------------------------


def test_prune_is_an_indices_mapping_equal_to_select(env):
    ds, _, scores = env
    kept = select_indices(scores, fraction=0.4)
    pruned = prune(ds, scores, fraction=0.4)
    reference = ds.select(kept)
    assert pruned._indices is not None and pruned.data.num_rows == N  # no copy of the data
    assert pruned.with_format("arrow")[:].equals(reference.with_format("arrow")[:])
    assert pruned.features == ds.features and len(pruned) == len(kept)
    again = pruned.select([0, 2, 4])  # a later select composes mappings instead of flattening
    assert again._indices is not None and again.data.num_rows == N
    assert again["label"] == [reference["label"][i] for i in (0, 2, 4)]
    assert pruned.filter(lambda b: [x == 1 for x in b["label"]], batched=True)["label"] == [
        x for x in reference["label"] if x == 1
    ]


@pytest.mark.parametrize("rows", [[], [3], [0, 1, 2, 3], [5, 7, 8, 30, 59], list(range(0, N, 3))])
@pytest.mark.parametrize("base", ["plain", "mapped", "formatted"])
def test_select_rows_matches_dataset_select(rows, base):
    ds = make_image_dataset(N)
    if base == "mapped":
        ds = ds.select(np.random.default_rng(0).permutation(N)[:45])
    elif base == "formatted":
        ds = ds.with_format("numpy", columns=["label"], output_all_columns=True)
    rows = [r for r in rows if r < len(ds)]
    ours, theirs = select_rows(ds, np.asarray(rows, dtype=np.int64)), ds.select(rows)
    assert len(ours) == len(theirs) and ours.format == theirs.format
    assert ours.with_format("arrow")[:].equals(theirs.with_format("arrow")[:])
    if len(rows) > 1:
        assert fingerprint_of(ours) != fingerprint_of(ds)


# -- keep as a filter predicate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [dict(batch_size=7), dict(batch_size=1000), dict(batch_size=16, num_proc=2)])
def test_keep_filter_equals_prune(env, kwargs):
    ds, _, scores = env
    pruned = prune(ds, scores, fraction=0.5, strategy="offset", skip=0.1)
    filtered = ds.filter(
        keep(scores, fraction=0.5, strategy="offset", skip=0.1), with_indices=True, batched=True, **kwargs
    )
    assert ids(filtered) == ids(pruned)


def test_keep_unbatched_and_checked_against_dataset(env):
    ds, _, scores = env
    pred = keep(scores, fraction=0.3, dataset=ds)  # checked up front (length, sampled hashes)
    assert ids(ds.filter(pred, with_indices=True)) == expected_ids(scores, fraction=0.3)
    assert pred.stats["rows"] == N and pred.stats["kept"] == 18


def test_keep_checks_sampled_rows_while_filtering(env):
    ds, _, scores = env
    with pytest.raises(ScoreMismatchError, match=r"Row \d+ differs.*on='example_id'.*verify='none'"):
        ds.shuffle(seed=1).filter(keep(scores, fraction=0.5), with_indices=True, batched=True)
    out = ds.shuffle(seed=1).filter(keep(scores, fraction=0.5, verify="none"), with_indices=True, batched=True)
    assert len(out) == N // 2  # the user asked for positions only


# -- content-hash join ---------------------------------------------------------------------------------------------


def reexported_copy(n=N, *, keep_rows=None, extra=0, seed=5):
    """The same examples re-encoded (other PNG bytes, same pixels), reordered, subsampled, plus unscored rows."""
    from PIL import Image

    images, labels = image_arrays(n)
    order = np.random.default_rng(seed).permutation(n)
    if keep_rows is not None:
        order = order[:keep_rows]
    new_images, new_labels = image_arrays(extra, seed=99) if extra else (np.empty((0, 4, 4), np.uint8), [])
    encoded, all_labels = [], []
    for array, label in [(images[i], labels[i]) for i in order] + list(zip(new_images, new_labels)):
        buffer = io.BytesIO()
        Image.fromarray(255 - (255 - array), mode="L").save(buffer, format="PNG", compress_level=9, optimize=True)
        encoded.append({"bytes": buffer.getvalue(), "path": None})
        all_labels.append(int(label))
    features = datasets.Features({"img": datasets.Image(), "target": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"img": encoded, "target": all_labels}, features=features), order


def test_content_join_on_reordered_subsampled_reexported_copy(env):
    _, _, scores = env
    copy, order = reexported_copy(keep_rows=40)
    pruned = prune(copy, scores, fraction=0.5, on="example_id", missing="error")
    wanted = set(expected_ids(scores, fraction=0.5)) & {ids_of(N)[i] for i in order}
    assert sorted(ids(pruned)) == sorted(wanted)
    assert ids(pruned) == [i for i in ids(copy) if i in wanted]  # the copy's own order is kept
    filtered = copy.filter(keep(scores, fraction=0.5, on="example_id"), batched=True, batch_size=9)
    assert ids(filtered) == ids(pruned)


def test_missing_policies_report_and_handle_unscored_rows(env, caplog):
    _, _, scores = env
    copy, _ = reexported_copy(extra=5)
    with pytest.raises(ScoreMismatchError, match=r"5 of 65 dataset rows have no score.*missing='drop'"):
        prune(copy, scores, fraction=0.5, on="example_id")
    with caplog.at_level(logging.WARNING, logger="datadiet_hub"):
        dropped = prune(copy, scores, fraction=0.5, on="example_id", missing="drop")
    assert "5 of 65 dataset rows have no score" in caplog.text
    kept = prune(copy, scores, fraction=0.5, on="example_id", missing="keep")
    assert len(dropped) == N // 2 and len(kept) == N // 2 + 5
    pred = keep(scores, fraction=0.5, on="example_id", missing="drop")
    assert len(copy.filter(pred, batched=True)) == N // 2 and pred.stats["missing"] == 5
    with pytest.raises(ScoreMismatchError, match="have no score"):
        copy.filter(keep(scores, fraction=0.5, on="example_id"), batched=True)


def test_id_index_duplicates_clashes_and_plain_strings():
    base = ids_of(50)
    dup = base + base[:5]  # duplicated content maps to the first scored copy
    assert IdIndex(dup).lookup([*base[:5], "f" * 32]).tolist() == [0, 1, 2, 3, 4, -1]
    # ids sharing their first 48 bits: the truncated keys clash and must still resolve exactly
    clash = [f"{'ab' * 6}{i:020x}" for i in range(20)]
    index = IdIndex(clash + base)
    assert index.lookup(clash[::-1]).tolist() == list(range(19, -1, -1))
    assert index.lookup([f"{'ab' * 6}{99:020x}"]).tolist() == [-1]
    plain = IdIndex(["a", "b", "a"])  # not hex hashes: the dict fallback
    assert plain.lookup(["a", "b", "c"]).tolist() == [0, 1, -1]
    assert IdIndex(base).lookup(["x", base[3].upper(), base[7]]).tolist() == [-1, -1, 7]


def test_id_index_agrees_with_a_dict_at_scale():
    rng = np.random.default_rng(0)
    n = 200_000
    values = [f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, size=(n, 2))]
    index = IdIndex(pa.array(values))
    query = rng.integers(0, n, size=5000)
    assert index.lookup([values[i] for i in query]).tolist() == query.tolist()
    assert (id_keys(pa.array(values[:10])) == id_keys(values[:10])).all()


def test_fingerprint_fast_path_equals_definition():
    values = ids_of(40)
    arrow = pa.chunked_array([pa.array(values[:13]), pa.array(values[13:])])
    assert fingerprint(arrow) == fingerprint(values) == fingerprint(pa.array(values, pa.large_string()))
    assert fingerprint(pa.array(values).slice(7, 20)) == fingerprint(values[7:27])
    ragged = ["x", "", "yz", "abc"]
    assert fingerprint(pa.array(ragged).slice(1)) == fingerprint(ragged[1:])


# -- streaming -----------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_torch_in_streaming(monkeypatch):
    """``datasets`` makes every IterableDataset a torch IterableDataset when torch is installed, importing torch
    (~10 s here). Nothing in these tests depends on that, so it is switched off for them (USE_TORCH=0 does the
    same for users who stream without torch)."""
    monkeypatch.setattr(datasets.config, "TORCH_AVAILABLE", False)


def streamed(tmp_path, ds, name="train"):
    path = write_parquet_dataset(tmp_path / name / "train.parquet", ds)
    return lambda: datasets.load_dataset(
        "parquet", data_files=str(path), split="train", streaming=True, cache_dir=str(tmp_path / "cache")
    )


def stream_ids(rows) -> list[str]:
    from datadiet_hub.hashing import example_id

    return [example_id(r["image"], r["label"]) for r in rows]


def test_streaming_by_idx_and_by_content(env, tmp_path):
    ds, _, scores = env
    stream = streamed(tmp_path, ds)
    assert isinstance(stream(), datasets.IterableDataset)
    wanted = expected_ids(scores, fraction=0.5)
    assert stream_ids(prune(stream(), scores, fraction=0.5)) == wanted
    assert stream_ids(stream().filter(keep(scores, fraction=0.5), with_indices=True, batched=True)) == wanted
    # a reordered copy, streamed (written shuffled: IterableDataset.shuffle sleeps 5 s when abandoned early)
    shuffled = streamed(tmp_path, ds.shuffle(seed=3).flatten_indices(), name="shuffled")
    by_content = stream_ids(prune(shuffled(), scores, fraction=0.5, on="example_id"))
    assert sorted(by_content) == sorted(wanted) and by_content != wanted
    with pytest.raises(ScoreMismatchError, match="differs from the scored example"):
        list(prune(shuffled(), scores, fraction=0.5))


def test_streaming_longer_than_the_scores_fails_by_idx(env, tmp_path):
    ds, _, scores = env
    longer = datasets.concatenate_datasets([ds, ds.select(range(5))])
    with pytest.raises(ScoreMismatchError, match=f"Row {N} is beyond the {N} scored rows"):
        list(prune(streamed(tmp_path, longer)(), scores, fraction=0.5, verify="none"))


# -- provenance and the source fingerprint -------------------------------------------------------------------------


def test_fingerprint_in_the_card_is_checked(env, tmp_path):
    ds, folder, scores = env
    assert load_provenance(folder).source.fingerprint == fingerprint(ids_of(N))
    assert len(prune(ds, scores, fraction=0.5, verify="full")) == N // 2  # provenance found via load_scores
    bad = write_score_folder(
        tmp_path / "bad", N, prov=dict(provenance(N), source=dict(provenance(N)["source"], fingerprint="0" * 64))
    )
    bad_scores = load_scores(bad, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ScoreMismatchError, match=r"fingerprint.*differs.*verify='none' \(CLI: --verify none\)"):
        prune(ds, bad_scores, fraction=0.5, verify="full")
    with pytest.raises(ScoreMismatchError, match="fingerprint"):
        keep(bad_scores, fraction=0.5, on="example_id", verify="full")
    assert len(prune(ds, bad_scores, fraction=0.5, verify="none")) == N // 2  # the documented override
    assert len(prune(ds, bad_scores, fraction=0.5)) == N // 2  # sample mode checks rows, not the fingerprint
    # a table not loaded by load_scores: provenance passed explicitly
    table = scores.with_format("arrow")[:]
    with pytest.raises(ScoreMismatchError, match="fingerprint"):
        prune(ds, table, fraction=0.5, verify="full", provenance=load_provenance(bad))


def test_card_row_count_is_checked(env, tmp_path):
    ds, _, scores = env
    wrong = dict(provenance(N), source=dict(provenance(N)["source"], num_rows=N + 1))
    with pytest.raises(ScoreMismatchError, match=f"card says the source split has {N + 1} rows"):
        prune(ds, scores, fraction=0.5, provenance=wrong)
