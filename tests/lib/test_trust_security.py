"""Issue 13, security: publish sends exactly the layout's regular files, never what a symlink points to, and a
card cannot make loading read files outside its own folder or repo."""

from __future__ import annotations

from pathlib import Path

import pytest
from trust_cli import BAD_INPUT, assert_one_error, datadiet, snapshot, tiny_png

TOKEN = "hf_DoubleTestToken_9c1e5b7a"  # conftest.TOKEN: what the `hub` fixture's clients authenticate with


def _token_file(tmp_path: Path) -> Path:
    secret = tmp_path / "hf_home_secret" / "token"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(TOKEN)
    return secret


def _hub_blobs(hub) -> list[bytes]:
    return [blob for repo in hub.double.repos.values() for blob in repo.blobs.values()]


def test_symlinked_token_under_plots_is_never_published_to_the_hub(hub, score_folder, tmp_path):
    (score_folder / "plots").mkdir(exist_ok=True)
    (score_folder / "plots" / "leak.png").symlink_to(_token_file(tmp_path))
    run = hub.run(
        """
from datadiet_hub.hub import push_version
try:
    push_version(ARGS["folder"], "user/scores", "v1")
    result = "published"
except Exception as e:
    result = f"{type(e).__name__}: {e}"
""",
        args={"folder": str(score_folder)},
    )
    assert all(TOKEN.encode() not in blob for blob in _hub_blobs(hub)), "the token was uploaded"
    assert run.result != "published" and "leak.png" in run.result and "symlink" in run.result.lower()
    assert hub.double.find("POST", r"/commit/") == []  # refused before anything was sent
    assert TOKEN not in run.output


def test_symlinked_token_is_never_copied_into_the_local_store(score_folder, tmp_path):
    (score_folder / "plots").mkdir(exist_ok=True)
    (score_folder / "plots" / "leak.png").symlink_to(_token_file(tmp_path))
    store = tmp_path / "store"
    result = datadiet("publish", score_folder, "--name", "tiny", "--version", "v1", "--store", store, tmp=tmp_path)
    assert_one_error(result, BAD_INPUT, "leak.png")
    assert not any(TOKEN.encode() in data for data in snapshot(store).values())
    assert not (store / "tiny" / "v1").exists()


def test_a_symlinked_data_folder_is_refused(score_folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (score_folder / "data" / "cnn-ep0").rename(elsewhere)
    (score_folder / "data" / "cnn-ep0").symlink_to(elsewhere, target_is_directory=True)
    store = tmp_path / "store"
    result = datadiet("publish", score_folder, "--name", "tiny", "--version", "v1", "--store", store, tmp=tmp_path)
    assert_one_error(result, BAD_INPUT, "symlink")
    assert not (store / "tiny" / "v1").exists()


def test_publish_sends_exactly_the_layout_files(hub, score_folder, tmp_path):
    """Stray files next to the layout (notes, a CSV in a config folder, a nested plot, a key) stay local."""
    (score_folder / "plots").mkdir(exist_ok=True)
    (score_folder / "plots" / "el2n.png").write_bytes(_png())
    strays = {
        "data/notes.txt": b"private notes",
        "data/cnn-ep2/extra.csv": b"a,b\n1,2\n",
        "plots/sub/deep.png": _png(),
        "plots/id_rsa": b"-----BEGIN OPENSSH PRIVATE KEY-----",
        "secrets.env": b"HF_TOKEN=x",
    }
    for rel, data in strays.items():
        (score_folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (score_folder / rel).write_bytes(data)
    hub.run(
        "from datadiet_hub.hub import push_version\nresult = push_version(ARGS['folder'], 'user/s', 'v1').uploaded",
        args={"folder": str(score_folder)},
    )
    published = set(hub.double.repo("user/s").files_at("v1")) - {".gitattributes"}
    assert published == {
        "README.md",
        "data/cnn-ep2/train-00000-of-00001.parquet",
        "data/cnn-ep0/train-00000-of-00001.parquet",
        "plots/el2n.png",
    }
    store = tmp_path / "store"
    assert (
        datadiet("publish", score_folder, "--name", "s", "--version", "v1", "--store", store, tmp=tmp_path).returncode
        == 0
    )
    assert set(snapshot(store / "s" / "v1")) == published


@pytest.mark.parametrize(
    ("rel", "data"),
    [("plots/el2n.png", b"this is not a png"), ("data/cnn-ep2/train-00001-of-00002.parquet", b"PAR1 not parquet")],
)
def test_a_layout_file_must_be_what_its_name_says(score_folder, tmp_path, rel, data):
    (score_folder / rel).parent.mkdir(parents=True, exist_ok=True)
    (score_folder / rel).write_bytes(data)
    store = tmp_path / "store"
    result = datadiet("publish", score_folder, "--name", "s", "--version", "v1", "--store", store, tmp=tmp_path)
    assert_one_error(result, BAD_INPUT, Path(rel).name)
    assert not (store / "s" / "v1").exists()


def _png() -> bytes:
    return tiny_png()


def _point_card_at(folder: Path, target: str) -> None:
    """Rewrite the card so config ``cnn-ep2`` reads ``target`` instead of its own data file."""
    readme = folder / "README.md"
    text = readme.read_text()
    assert "path: data/cnn-ep2/train-*.parquet" in text
    readme.write_text(text.replace("path: data/cnn-ep2/train-*.parquet", f"path: {target}", 1))


def _outside_parquet(tmp_path: Path, score_folder: Path) -> Path:
    """A valid score table outside the folder (a mutable file a card must not be able to serve)."""
    outside = tmp_path / "outside" / "scores.parquet"
    outside.parent.mkdir()
    outside.write_bytes((score_folder / "data" / "cnn-ep0" / "train-00000-of-00001.parquet").read_bytes())
    return outside


def _escapes(tmp_path: Path, folder: Path, outside: Path) -> dict[str, str]:
    return {
        "absolute": str(outside),
        "dotdot": "../" * len(folder.parts) + str(outside).lstrip("/"),
        "relative-dotdot": "../outside/scores.parquet",
        "file-url": outside.as_uri(),
    }


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "relative-dotdot", "file-url"])
def test_card_data_files_outside_the_folder_are_refused_on_load(score_folder, tmp_path, kind):
    from datadiet_hub import load_scores

    outside = _outside_parquet(tmp_path, score_folder)
    target = _escapes(tmp_path, score_folder, outside)[kind]
    _point_card_at(score_folder, target)
    with pytest.raises(ValueError, match="outside"):
        load_scores(score_folder, "cnn-ep2")
    assert_one_error(datadiet("show", score_folder, "--config", "cnn-ep2", tmp=tmp_path), BAD_INPUT, "outside")


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "file-url"])
def test_card_data_files_outside_the_folder_are_refused_on_publish(hub, score_folder, tmp_path, kind):
    outside = _outside_parquet(tmp_path, score_folder)
    _point_card_at(score_folder, _escapes(tmp_path, score_folder, outside)[kind])
    store = tmp_path / "store"
    result = datadiet("publish", score_folder, "--name", "s", "--version", "v1", "--store", store, tmp=tmp_path)
    assert_one_error(result, BAD_INPUT, "outside")
    assert not (store / "s").exists() or not (store / "s" / "v1").exists()
    run = hub.run(
        """
from datadiet_hub.hub import push_version
try:
    push_version(ARGS["folder"], "user/s", "v1")
    result = "published"
except ValueError as e:
    result = str(e)
""",
        args={"folder": str(score_folder)},
    )
    assert run.result != "published" and "outside" in run.result
    assert hub.double.find("POST", r"/commit/") == []


def test_a_hub_card_pointing_outside_its_repo_is_refused_on_load(hub, score_folder, tmp_path):
    """A repo published by someone else (seeded in the double without our checks) whose card reads a local file."""
    outside = _outside_parquet(tmp_path, score_folder)
    _point_card_at(score_folder, str(outside))
    files = snapshot(score_folder)
    hub.double.add_repo_with_files("other/evil", files, tag="v1")
    run = hub.run(
        """
from datadiet_hub import load_scores
try:
    load_scores("other/evil", "cnn-ep2", version="v1")
    result = "loaded"
except Exception as e:
    result = f"{type(e).__name__}: {e}"
""",
    )
    assert run.result != "loaded" and "outside" in run.result and "not found" not in run.result


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["quiet", "verbose"])
def test_token_echoed_in_a_hub_error_message_is_redacted(hub, score_folder, tmp_path, verbose):
    """A server (or proxy) that echoes the Authorization header into its error body: publish and show print one
    line naming the failure, and the token appears nowhere in the output."""
    hub.double.fail_next("POST", r"/commit/", status=500, message=f"bad header Authorization: Bearer {TOKEN}", times=9)
    publish = datadiet(
        *verbose, "publish", score_folder, "--repo-id", "user/s", "--version", "v1",
        tmp=tmp_path, endpoint=hub.double.endpoint, HF_TOKEN=TOKEN,
    )  # fmt: skip
    assert TOKEN not in publish.stdout + publish.stderr
    assert_one_error(publish, 6, "500")
    hub.double.add_repo_with_files("user/t", snapshot(score_folder), tag="v1")
    hub.double.fail_next(
        "GET", r"/resolve/|/tree/|/paths-info/|/revision/", status=500, message=f"echo {TOKEN}", times=50
    )
    show = datadiet(
        *verbose, "show", "user/t", "--config", "cnn-ep2", "--version", "v1",
        tmp=tmp_path, endpoint=hub.double.endpoint, HF_TOKEN=TOKEN,
    )  # fmt: skip
    assert TOKEN not in show.stdout + show.stderr
    assert_one_error(show, 6, "500")
