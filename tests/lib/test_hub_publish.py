"""Publishing versions to the Hub, end to end over HTTP against the loopback Hub test double (tests/lib/hub_double).

Client code runs in subprocesses (see conftest.HubEnv.run); assertions on what the Hub received or holds are made on
the double in this process.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from builders import make_provenance

from datadiet_hub.provenance import Provenance

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_DoubleTestToken_9c1e5b7a"  # the token the `hub` fixture puts in HF_TOKEN (conftest.TOKEN)

REPO = "user/scores"


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _seed(hub, folder: Path, version: str, *, private: bool = False) -> str:
    """Put ``folder`` in the double as version ``version`` without HTTP (a starting state for failure tests)."""
    return hub.double.add_repo_with_files(REPO, _local_files(folder), private=private, tag=version)


def _tags(hub) -> dict[str, str]:
    return dict(hub.double.repo(REPO).tags)


# Loads a config at a revision with plain `datasets` (no datadiet code) and returns the rows.
_LOAD = """
def load_rows(config, revision, **kw):
    ds = datasets.load_dataset(ARGS.get("repo", "user/scores"), config, split="train", revision=revision, **kw)
    return ds.to_list()

def local_rows(folder, config):
    import pyarrow.parquet as pq
    return pq.read_table(f"{folder}/data/{config}/train-00000-of-00001.parquet").to_pylist()
"""


def test_publish_creates_repo_one_commit_and_tag_and_plain_load_dataset_reads_it(hub, version_folder):
    v1 = version_folder("v1")
    run = hub.run(
        _LOAD
        + """
from huggingface_hub import HfApi
from datadiet_hub.hub import push_version
res = push_version(ARGS["v1"], "user/scores", "v1")
refs = HfApi().list_repo_refs("user/scores", repo_type="dataset")
result = {
    "sha": res.commit_sha, "kind": res.kind, "replaced": res.replaced_sha, "uploaded": sorted(res.uploaded),
    "tags": {r.name: r.target_commit for r in refs.tags},
    "branches": {r.name: r.target_commit for r in refs.branches},
    "same_cnn": load_rows("cnn-ep2", "v1") == local_rows(ARGS["v1"], "cnn-ep2"),
    "same_mlp": load_rows("mlp-ep2", "v1") == local_rows(ARGS["v1"], "mlp-ep2"),
    "n": len(load_rows("cnn-ep2", "v1")),
}
""",
        args={"v1": str(v1)},
    )
    r = run.result
    d = hub.double
    local = _local_files(v1)

    # repo created, as a dataset, once
    creates = d.find("POST", r"^/api/repos/create$")
    assert len(creates) == 1 and creates[0].json()["type"] == "dataset"
    # exactly one commit, on main, containing every file of the folder byte for byte
    commits = d.find("POST", r"/commit/")
    assert len(commits) == 1 and commits[0].path == "/api/datasets/user/scores/commit/main"
    sent = {
        ln["value"]["path"]: base64.b64decode(ln["value"]["content"])
        for ln in commits[0].ndjson()
        if ln["key"] == "file"
    }
    assert sent == local
    assert r["uploaded"] == sorted(local)
    # tag v1 at that commit, main moved to it, refs listed by the client
    assert r["kind"] == "tag" and r["replaced"] is None
    assert r["tags"] == {"v1": r["sha"]} and r["branches"]["main"] == r["sha"]
    assert len(d.find("POST", r"/tag/")) == 1
    # the Hub tree at v1 is the folder (plus the Hub's own .gitattributes)
    files = d.repo(REPO).files_at("v1")
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == local
    # plain load_dataset through HF_ENDPOINT reads exactly the pushed rows
    assert r["same_cnn"] and r["same_mlp"] and r["n"] == 50
    # every request was one the double implements, and all writes were authenticated
    assert d.unhandled == []
    assert all(q.token == TOKEN for q in d.requests if q.method == "POST" and "paths-info" not in q.path)


def test_second_version_keeps_the_first_loadable_and_versions_are_listed(hub, version_folder):
    v1 = version_folder("v1")
    v2 = version_folder("v2", seed=1, configs=("cnn-ep2",), plots=False)  # drops a config and the plots
    hub.double.page_size = 2  # make the tree listings page
    run = hub.run(
        _LOAD
        + """
from datadiet_hub.hub import push_version, list_versions, load_from_hub
from datadiet_hub.errors import ScoresNotFoundError
push_version(ARGS["v1"], "user/scores", "v1")
p2 = push_version(ARGS["v2"], "user/scores", "v2")
try:
    load_from_hub("user/scores", "cnn-ep2", "v9")
    missing = None
except ScoresNotFoundError as e:
    missing = str(e)
try:
    load_from_hub("user/scores", "nope-ep9", "v1")
    no_config = None
except ScoresNotFoundError as e:
    no_config = str(e)
result = {
    "no_config": no_config,
    "deleted": list(p2.deleted),
    "v1_old": load_rows("cnn-ep2", "v1") == local_rows(ARGS["v1"], "cnn-ep2"),
    "v1_mlp": load_rows("mlp-ep2", "v1") == local_rows(ARGS["v1"], "mlp-ep2"),
    "v2_new": load_from_hub("user/scores", "cnn-ep2", "v2").to_list() == local_rows(ARGS["v2"], "cnn-ep2"),
    "versions": [(v.name, v.kind, v.commit_sha, v.configs, v.provenance.extra.get("note"), v.summary())
                 for v in list_versions("user/scores")],
    "missing": missing,
}
""",
        args={"v1": str(v1), "v2": str(v2)},
    )
    r = run.result
    repo = hub.double.repo(REPO)
    assert r["v1_old"] and r["v1_mlp"] and r["v2_new"]
    # v2's single commit removed what the folder no longer has, so the v2 tree equals the v2 folder
    assert sorted(r["deleted"]) == ["data/mlp-ep2/train-00000-of-00001.parquet", "plots/el2n_hist.png"]
    assert {k for k in repo.files_at("v2") if k != ".gitattributes"} == set(_local_files(v2))
    assert len(hub.double.find("POST", r"/commit/")) == 2
    assert [v[:2] for v in r["versions"]] == [["v1", "tag"], ["v2", "tag"]]
    assert [v[2] for v in r["versions"]] == [repo.tags["v1"], repo.tags["v2"]]
    assert r["versions"][0][3] == ["cnn-ep2", "mlp-ep2"] and r["versions"][1][3] == ["cnn-ep2"]
    assert [v[4] for v in r["versions"]] == ["v1", "v2"]
    assert "source_dataset=fashion_mnist" in r["versions"][0][5] and "model=cnn" in r["versions"][0][5]
    assert "'v9'" in r["missing"] and "datadiet versions user/scores" in r["missing"]
    assert "'nope-ep9'" in r["no_config"] and "cnn-ep2" in r["no_config"]  # names the available configs
    assert any("cursor" in q.query for q in hub.double.find("GET", r"/tree/"))
    assert hub.double.unhandled == []


def test_existing_version_is_refused_without_force_and_replaced_with_force(hub, version_folder):
    v1, v1b = version_folder("v1"), version_folder("v1b", seed=7)
    old_sha = _seed(hub, v1, "v1")
    run = hub.run(
        _LOAD
        + """
from datadiet_hub.hub import push_version
from datadiet_hub.errors import VersionExistsError
try:
    push_version(ARGS["v1b"], "user/scores", "v1")
    refused = None
except VersionExistsError as e:
    refused = str(e)
    assert isinstance(e, FileExistsError)
res = push_version(ARGS["v1b"], "user/scores", "v1", force=True)
result = {"refused": refused, "replaced": res.replaced_sha, "sha": res.commit_sha, "line": res.describe(),
          "new_rows": load_rows("cnn-ep2", "v1") == local_rows(ARGS["v1b"], "cnn-ep2")}
""",
        args={"v1b": str(v1b)},
    )
    r = run.result
    assert "'v1'" in r["refused"] and "--force" in r["refused"] and old_sha in r["refused"]
    assert len(hub.double.find("POST", r"/commit/")) == 1  # the refused attempt uploaded nothing
    assert r["replaced"] == old_sha and old_sha[:12] in r["line"]
    assert old_sha in run.stderr  # the warning log names what was replaced
    assert _tags(hub) == {"v1": r["sha"]} and r["sha"] != old_sha
    assert r["new_rows"]


def test_branch_mode_marks_the_version_with_a_branch(hub, version_folder):
    v1 = version_folder("v1")
    run = hub.run(
        _LOAD
        + """
from datadiet_hub.hub import push_version, list_versions
res = push_version(ARGS["v1"], "user/scores", "v1", as_branch=True)
same = load_rows("cnn-ep2", "v1") == local_rows(ARGS["v1"], "cnn-ep2")
result = {"sha": res.commit_sha, "kind": res.kind, "rows": same,
          "versions": [(v.name, v.kind) for v in list_versions("user/scores")]}
""",
        args={"v1": str(v1)},
    )
    r = run.result
    repo = hub.double.repo(REPO)
    assert r["kind"] == "branch" and repo.branches["v1"] == r["sha"] and repo.tags == {}
    assert len(hub.double.find("POST", r"/branch/v1$")) == 1
    assert r["rows"] and r["versions"] == [["v1", "branch"]]


def test_commit_failure_leaves_previous_version_untouched_and_says_so(hub, version_folder):
    v1, v2 = version_folder("v1"), version_folder("v2", seed=3)
    old_sha = _seed(hub, v1, "v1")
    hub.double.fail_next("POST", r"/commit/", status=500, message="simulated storage outage")
    run = hub.run(
        _LOAD
        + """
from datadiet_hub.hub import push_version
from datadiet_hub.errors import HubError
try:
    push_version(ARGS["v2"], "user/scores", "v2")
    error = None
except HubError as e:
    error = str(e)
result = {"error": error, "v1": load_rows("cnn-ep2", "v1") == local_rows(ARGS["v1"], "cnn-ep2")}
""",
        args={"v1": str(v1), "v2": str(v2)},
    )
    r = run.result
    repo = hub.double.repo(REPO)
    assert r["error"] is not None
    assert "Committing version 'v2'" in r["error"] and "simulated storage outage" in r["error"]
    assert "did not land" in r["error"] and "untouched" in r["error"]
    assert repo.tags == {"v1": old_sha} and repo.branches == {"main": old_sha}
    assert r["v1"]


def test_tag_failure_reports_landed_commit_and_a_rerun_finishes(hub, version_folder):
    v1, v2 = version_folder("v1"), version_folder("v2", seed=3)
    old_sha = _seed(hub, v1, "v1")
    hub.double.fail_next("POST", r"/tag/", status=500)
    run = hub.run(
        """
from datadiet_hub.hub import push_version
from datadiet_hub.errors import HubError
try:
    push_version(ARGS["v2"], "user/scores", "v2")
    error = None
except HubError as e:
    error = str(e)
res = push_version(ARGS["v2"], "user/scores", "v2")  # rerun after the outage
result = {"error": error, "sha": res.commit_sha}
""",
        args={"v2": str(v2)},
    )
    r = run.result
    repo = hub.double.repo(REPO)
    landed = [c for c in repo.commits.values() if c.parent == old_sha]
    assert len(landed) == 1
    assert f"commit {landed[0].sha} landed on main" in r["error"] and "was not tagged" in r["error"]
    assert "Previous versions are untouched" in r["error"] and "Rerun" in r["error"]
    # the rerun uploads nothing new (no second commit) and tags the landed commit
    assert len(hub.double.find("POST", r"/commit/")) == 1
    assert repo.tags == {"v1": old_sha, "v2": landed[0].sha} and r["sha"] == landed[0].sha


def test_failed_forced_move_restores_the_old_tag(hub, version_folder):
    v1, v1b = version_folder("v1"), version_folder("v1b", seed=5)
    old_sha = _seed(hub, v1, "v1")
    hub.double.fail_next("POST", r"/tag/", status=503, times=1)  # new tag fails, restore succeeds
    run = hub.run(
        """
from datadiet_hub.hub import push_version
from datadiet_hub.errors import HubError
try:
    push_version(ARGS["v1b"], "user/scores", "v1", force=True)
    error = None
except HubError as e:
    error = str(e)
result = {"error": error}
""",
        args={"v1b": str(v1b)},
    )
    err = run.result["error"]
    assert err is not None and f"restored to commit {old_sha}" in err and "untouched" in err
    assert _tags(hub) == {"v1": old_sha}


def test_private_repo_needs_the_token(hub, version_folder):
    v1 = version_folder("v1")
    run = hub.run(
        _LOAD
        + """
from datadiet_hub.hub import push_version, list_versions, load_from_hub
from datadiet_hub.errors import HubError, ScoresNotFoundError
tok = ARGS["token"]
out = {}
try:
    push_version(ARGS["v1"], "user/scores", "v1", private=True)
except HubError as e:
    out["push_no_token"] = str(e)
push_version(ARGS["v1"], "user/scores", "v1", private=True, token=tok)
for name, fn in [("list", lambda: list_versions("user/scores")),
                 ("load", lambda: load_from_hub("user/scores", "cnn-ep2", "v1"))]:
    try:
        fn()
        out[name] = None
    except ScoresNotFoundError as e:
        out[name] = str(e)
out["list_tok"] = [v.name for v in list_versions("user/scores", token=tok)]
loaded = load_from_hub("user/scores", "cnn-ep2", "v1", token=tok).to_list()
out["load_tok"] = loaded == local_rows(ARGS["v1"], "cnn-ep2")
result = out
""",
        token=None,
        args={"v1": str(v1), "token": TOKEN},
    )
    r = run.result
    assert hub.double.repo(REPO).private
    assert "HF_TOKEN" in r["push_no_token"] and "login" in r["push_no_token"]
    assert r["list"] is not None and "'user/scores'" in r["list"] and "HF_TOKEN" in r["list"]
    assert r["load"] is not None and "user/scores" in r["load"]
    assert r["list_tok"] == ["v1"] and r["load_tok"]


def test_token_never_appears_in_errors_logs_or_files(hub, version_folder):
    v1 = version_folder("v1")
    hub.double.add_repo_with_files("other/theirs", {"README.md": b"x"})
    hub.double.fail_next("POST", r"/commit/", status=500, message="boom")
    run = hub.run(
        """
from datadiet_hub.hub import push_version
from datadiet_hub.errors import HubError
errors = []
for repo in ("user/scores", "other/theirs"):  # injected 500, then 403 on someone else's namespace
    try:
        push_version(ARGS["v1"], repo, "v1")
    except HubError as e:
        errors.append(str(e))
        errors.append(repr(e))
push_version(ARGS["v1"], "user/scores", "v1")
result = {"errors": errors}
""",
        args={"v1": str(v1)},
    )
    assert len(run.result["errors"]) == 4
    assert TOKEN in {q.token for q in hub.double.requests}  # the token was really used...
    assert TOKEN not in run.output  # ...but is in no message or log line (DEBUG logging is on)
    assert "HF_TOKEN" in run.result["errors"][2]  # the 403 names the fix without the secret
    for repo in hub.double.repos.values():
        for blob in repo.blobs.values():
            assert TOKEN.encode() not in blob
        for commit in repo.commits.values():
            assert TOKEN not in commit.message


@pytest.mark.parametrize("bad", ["", "v 1", "-v1", "v1/evil", "../v1", "main", "v1\n", "0" * 40])
def test_bad_version_name_is_refused_quoting_it(bad, tmp_path):
    from datadiet_hub.hub import push_version, validate_version

    with pytest.raises(ValueError, match="Invalid version name") as info:
        validate_version(bad)
    assert repr(bad) in str(info.value)
    with pytest.raises(ValueError):  # before any network access
        push_version(tmp_path, "user/scores", bad, token="x")


@pytest.mark.parametrize("good", ["v1", "v2", "2024-05-01", "v1.0.3", "cnn_ep2-final"])
def test_good_version_names(good):
    from datadiet_hub.hub import validate_version

    assert validate_version(good) == good


def test_not_a_version_folder_is_refused_before_any_request(tmp_path):
    from datadiet_hub.errors import ScoresNotFoundError
    from datadiet_hub.hub import push_version

    with pytest.raises(ScoresNotFoundError, match="does not exist"):
        push_version(tmp_path / "nope", "user/scores", "v1", token="x")
    (tmp_path / "README.md").write_text("---\nconfigs: []\n---\n")
    with pytest.raises(ScoresNotFoundError, match="no data/"):
        push_version(tmp_path, "user/scores", "v1", token="x")


def test_hub_and_compare_modules_import_without_torch():
    code = "import sys, datadiet_hub.hub, datadiet_hub.compare; assert 'torch' not in sys.modules, 'torch imported'"
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_double_http_contract_ranges_error_codes_and_auth(hub):
    """The double itself: Range answers, X-Error-Code on 404s, Content-Length everywhere, writes need a token."""
    import json
    import urllib.error
    import urllib.request

    hub.double.add_repo_with_files(REPO, {"data/a.bin": bytes(range(100))}, tag="v1")
    base = hub.double.endpoint

    def call(path, method="GET", headers=None, data=None):
        req = urllib.request.Request(base + path, method=method, headers=headers or {}, data=data)
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    status, headers, body = call("/datasets/user/scores/resolve/v1/data/a.bin", headers={"Range": "bytes=10-19"})
    assert status == 206 and body == bytes(range(10, 20)) and headers["Content-Range"] == "bytes 10-19/100"
    status, headers, body = call("/datasets/user/scores/resolve/v1/data/a.bin", "HEAD")
    assert status == 200 and headers["Content-Length"] == "100" and len(headers["X-Repo-Commit"]) == 40
    for path, code in [
        ("/datasets/user/scores/resolve/v1/nope.py", "EntryNotFound"),
        ("/datasets/user/scores/resolve/v9/data/a.bin", "RevisionNotFound"),
        ("/datasets/user/missing/resolve/main/README.md", "RepoNotFound"),
    ]:
        status, headers, _ = call(path, "HEAD")
        assert headers["X-Error-Code"] == code and "Content-Length" in headers and status in (401, 404)
    status, _, body = call(
        "/api/datasets/user/scores/tag/main",
        "POST",
        {"Content-Type": "application/json"},
        json.dumps({"tag": "v2"}).encode(),
    )
    assert status == 401 and "v2" not in hub.double.repo(REPO).tags
    status, _, _ = call(
        "/api/datasets/user/scores/tag/main",
        "POST",
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        json.dumps({"tag": "v1"}).encode(),
    )
    assert status == 409  # existing tag


def test_cli_publish_versions_and_load_scores_through_the_hub(hub, score_folder):
    """The real card writer's folder, pushed with `datadiet publish --repo-id`, listed with `datadiet versions`,
    loaded back with `datadiet_hub.load_scores(repo_id, config, version)`; a second publish is refused (exit 4)."""
    run = hub.run(
        """
import contextlib, io
from datadiet_hub.cli import main
import datadiet_hub
out = io.StringIO()
with contextlib.redirect_stdout(out):
    first = main(["publish", ARGS["folder"], "--repo-id", "user/cli-scores", "--version", "v1"])
    listed = main(["versions", "user/cli-scores"])
again = main(["publish", ARGS["folder"], "--repo-id", "user/cli-scores", "--version", "v1"])
scores = datadiet_hub.load_scores("user/cli-scores", "cnn-ep2", version="v1")
from datadiet_hub.table_provenance import provenance_of
carried = provenance_of(scores.select(range(5)))
card = datadiet_hub.load_provenance("user/cli-scores", "v1")
result = {"codes": [first, listed, again], "out": out.getvalue(), "n": len(scores), "cols": scores.column_names,
          "carried": carried.to_dict() if carried else None, "card": card.to_dict()}
""",
        args={"folder": str(score_folder)},
    )
    r = run.result
    assert r["codes"] == [0, 0, 4]
    assert "Published user/cli-scores tag 'v1'" in r["out"]
    assert "v1" in r["out"] and "configs=cnn-ep2,cnn-ep0" in r["out"] and "source=tiny/train (40 rows)" in r["out"]
    assert r["n"] == 40 and r["cols"][:4] == ["idx", "example_id", "label", "el2n"]
    assert "already exists" in run.stderr and "--force" in run.stderr
    expected = Provenance.from_dict(make_provenance(40)).to_dict()
    assert r["card"] == expected and r["carried"] == expected  # the Hub card's provenance rides on the table


def test_push_version_refuses_an_invalid_score_table_before_any_request(hub, score_folder):
    """The library call validates the folder itself (not only the CLI): nothing reaches the Hub."""
    (score_folder / "data" / "cnn-ep2" / "train-00000-of-00001.parquet").write_bytes(b"not parquet")
    run = hub.run(
        """
from datadiet_hub.errors import DatadietError
from datadiet_hub.hub import push_version
try:
    push_version(ARGS["folder"], "user/bad", "v1")
    result = None
except DatadietError as e:
    result = str(e)
""",
        args={"folder": str(score_folder)},
    )
    assert run.result and "train-00000-of-00001.parquet" in run.result and "not a PARQUET file" in run.result
    assert hub.double.find("POST", r"^/api/repos/create$") == []
