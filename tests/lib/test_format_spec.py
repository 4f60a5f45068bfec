"""docs/format.md is a spec others can produce: a score folder written by hand from it (pyarrow and YAML, no
datadiet_hub writer) publishes, loads and prunes, and its ids follow the documented bytes."""

from __future__ import annotations

import hashlib

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import datadiet_hub
from datadiet_hub.hashing import example_id
from datadiet_hub.store import LocalStore


def spec_id(pixels: np.ndarray, label: int) -> str:
    """example_id exactly as docs/format.md writes it out."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{pixels.dtype.str}|{pixels.shape}|".encode() + np.ascontiguousarray(pixels).tobytes())
    digest.update(b"|label=" + str(label).encode())
    return digest.hexdigest()


def test_a_folder_written_from_the_spec_publishes_loads_and_prunes(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    images = rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 3, n)
    ids = [spec_id(images[i], int(labels[i])) for i in range(n)]
    assert ids[0] == example_id(images[0], int(labels[0]))
    fingerprint = hashlib.sha256("".join(i + "\n" for i in ids).encode()).hexdigest()
    el2n = rng.random(n)
    table = pa.table(
        {
            "idx": pa.array(range(n), pa.int64()),
            "example_id": ids,
            "label": pa.array(labels, pa.int64()),
            "el2n": pa.array(el2n, pa.float32()),
            "el2n_std": pa.array(np.zeros(n), pa.float32()),
            "el2n_per_seed": pa.array([[float(v)] for v in el2n], pa.list_(pa.float32())),
        }
    )
    folder = tmp_path / "mine"
    (folder / "data" / "m-ep1").mkdir(parents=True)
    pq.write_table(table, folder / "data" / "m-ep1" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: m-ep1\n  data_files:\n  - split: train\n    path: data/m-ep1/train-*.parquet\n"
        f"datadiet:\n  format_version: 1\n  source:\n    dataset: mine\n    split: train\n    num_rows: {n}\n"
        f"    fingerprint: {fingerprint}\n  configs:\n    m-ep1:\n      model: m\n      epoch: 1.0\n"
        "      metrics: [el2n]\n---\n# my scores\n"
    )
    store = LocalStore(tmp_path / "store")
    store.publish(folder, "mine", "v1")
    scores = datadiet_hub.load_scores("mine", "m-ep1", version="v1", store=store)
    from PIL import Image

    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im, mode="L") for im in images], "label": labels.tolist()},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])}),
    )
    kept = datadiet_hub.prune(ds, scores, column="el2n", fraction=0.25, verify="full")
    assert sorted(kept["label"]) == sorted(labels[np.argsort(-el2n)[:10]].tolist())
