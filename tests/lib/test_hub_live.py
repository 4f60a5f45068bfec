"""Live round trip against the real Hub; runs only with HF_TOKEN and DATADIET_TEST_REPO set (and ``-m hub``).

DATADIET_TEST_REPO must be a *dataset* repo id you can write to and don't mind being rewritten, e.g.
``you/datadiet-test``. The test publishes a unique version, loads it back with plain ``load_dataset``, checks that it
is listed, then deletes the tag it created. Uses the real endpoint, so it runs in-process (no HF_ENDPOINT games).
"""

from __future__ import annotations

import os
import uuid

import pytest

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(
        not (os.environ.get("HF_TOKEN") and os.environ.get("DATADIET_TEST_REPO")),
        reason="live Hub test: set HF_TOKEN and DATADIET_TEST_REPO (a dataset repo you may overwrite)",
    ),
]


def test_publish_list_load_on_the_real_hub(version_folder, caplog):
    import datasets
    import pyarrow.parquet as pq
    from huggingface_hub import HfApi

    from datadiet_hub.errors import VersionExistsError
    from datadiet_hub.hub import list_versions, push_version

    repo_id = os.environ["DATADIET_TEST_REPO"]
    token = os.environ["HF_TOKEN"]
    version = f"test-{uuid.uuid4().hex[:10]}"
    folder = version_folder(version)
    caplog.set_level("DEBUG")
    try:
        res = push_version(folder, repo_id, version, private=True)
        assert res.kind == "tag"
        with pytest.raises(VersionExistsError):
            push_version(folder, repo_id, version)
        assert version in {v.name for v in list_versions(repo_id)}
        ds = datasets.load_dataset(repo_id, "cnn-ep2", split="train", revision=version, token=token)
        local = pq.read_table(folder / "data" / "cnn-ep2" / "train-00000-of-00001.parquet").to_pylist()
        assert ds.to_list() == local
        assert token not in caplog.text
    finally:
        HfApi(token=token).delete_tag(repo_id, tag=version, repo_type="dataset")
