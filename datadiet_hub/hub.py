"""Publish score version folders to the Hugging Face Hub, list the versions there, load one back.

A *version folder* (``README.md`` with ``configs:`` + ``datadiet:`` YAML, ``data/<config>/*.parquet``,
``plots/*.png``) is the unit of publication, identical in the local store and on the Hub. Pushing it makes
exactly one commit on ``main`` whose tree equals the folder (files not in the folder are deleted in that same
commit), then points a tag (or a branch) named after the version at that commit. A commit either lands whole or
not at all, and refs are only created or moved after it landed, so a failure can never change what an existing
version points to (a forced move that fails is rolled back, and the error says so).

Auth is huggingface_hub's (``token=None`` -> ``HF_TOKEN`` or ``hf auth login``). The token is never logged and is
scrubbed from every error message this module builds.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import datasets
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from .errors import (
    CardError,
    ConfigNotFoundError,
    DatadietError,
    HubError,
    HubUnreachableError,
    ScoresNotFoundError,
    VersionExistsError,
    VersionNotFoundError,
    transport_errors,
)
from .folder import ScoreFolder, check_data_files
from .provenance import Provenance
from .versions import RESERVED_VERSIONS, VERSION_PATTERN, VersionInfo, validate_version, version_sort_key

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
# Repo plumbing the Hub creates itself; kept when the rest of the tree is replaced.
KEEP_REMOTE = frozenset({".gitattributes"})

_T = TypeVar("_T")


@dataclass(frozen=True)
class PushResult:
    """What ``push_version`` did.

    Attributes:
        repo_id: the dataset repo.
        version: the tag or branch name.
        kind: ``"tag"`` or ``"branch"``.
        commit_sha: the commit the version now points to.
        replaced_sha: the commit the version pointed to before a ``force`` push, else None.
        uploaded: paths sent in the commit (unchanged files are skipped by huggingface_hub).
        deleted: repo paths removed because the version folder no longer has them.
        url: browsable URL of the version.
    """

    repo_id: str
    version: str
    kind: str
    commit_sha: str
    replaced_sha: str | None
    uploaded: tuple[str, ...]
    deleted: tuple[str, ...]
    url: str

    def describe(self) -> str:
        """One line for the CLI."""
        what = f"Published {self.repo_id} {self.kind} {self.version!r} -> commit {self.commit_sha[:12]}"
        if self.replaced_sha:
            what += f" (replaced commit {self.replaced_sha[:12]})"
        return what


# -- validation ----------------------------------------------------------------------------------------------------


def _folder_files(folder: Path) -> list[str]:
    """Repo paths (posix) of the files a version folder publishes (``ScoreFolder.files``), after validating it."""
    version = ScoreFolder(folder)
    version.validate()  # a folder with a card declaring configs, each with valid score tables
    ignored = version.unpublished()
    if ignored:
        logger.warning("Not publishing %s from %s (only README.md, data/ and plots/ are published).", ignored, folder)
    return [p.as_posix() for p in version.files()]


# -- error handling ------------------------------------------------------------------------------------------------


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "<token>") if secret else text


def _reason(exc: BaseException, secret: str | None) -> str:
    """One-line cause of a failed Hub call, with auth hints, never containing the token."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
        text += (
            " -- check the repo id, and that you are logged in with a token that may write to it"
            " (set HF_TOKEN or run `hf auth login`)."
        )
    return _redact(f"{type(exc).__name__}: {text}", secret)


def _failures(*kinds: type[BaseException]) -> tuple[type[BaseException], ...]:
    """``kinds`` plus the transport errors: what a failed Hub request can raise."""
    return (*kinds, *transport_errors())


def as_hub_error(step: str, exc: BaseException, *, secret: str | None, state: str = "", **about: Any) -> HubError:
    """The ``HubError`` for a failed Hub request: ``HubUnreachableError`` when the Hub was not reached (exit 5 in
    the CLI), else a ``HubError`` carrying the HTTP status (exit 6). The message never contains the token."""
    from huggingface_hub import constants

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is None and isinstance(exc, transport_errors()):
        offline = constants.HF_HUB_OFFLINE
        hint = (
            "HF_HUB_OFFLINE=1 is set: only versions already in the local cache can be loaded; unset it to go online."
            if offline
            else f"Check your network connection, or HF_ENDPOINT (now {constants.ENDPOINT})."
        )
        cause = _redact(" ".join(str(exc).split()) or type(exc).__name__, secret)
        return HubUnreachableError(
            f"{step} failed: cannot reach the Hub at {constants.ENDPOINT} ({type(exc).__name__}: {cause}). {hint}"
            f" {state}".rstrip(),
            status=None,
            **about,
        )
    return HubError(f"{step} failed: {_reason(exc, secret)} {state}".rstrip(), status=status, **about)


def _call(step: str, fn: Callable[[], _T], *, secret: str | None, state: str, repo_id: str | None = None) -> _T:
    """Run one Hub request; on failure raise HubError naming the step, the cause and the repo state left behind."""
    try:
        return fn()
    except DatadietError:
        raise
    except _failures(HfHubHTTPError, OSError, ValueError, RuntimeError) as e:
        raise as_hub_error(step, e, secret=secret, state=state, repo_id=repo_id) from None


# -- push ----------------------------------------------------------------------------------------------------------


def push_version(
    folder: str | Path,
    repo_id: str,
    version: str,
    *,
    private: bool = False,
    as_branch: bool = False,
    force: bool = False,
    token: str | None = None,
) -> PushResult:
    """Publish a version folder to the Hub dataset repo ``repo_id`` as version ``version``.

    Creates the repo if needed, makes one commit on ``main`` whose files are exactly the folder's, then creates the
    tag (or branch, with ``as_branch``) ``version`` at that commit. ``load_dataset(repo_id, config,
    revision=version)`` then loads it with no datadiet code.

    Args:
        folder: the version folder (README.md, data/, plots/).
        repo_id: ``"user/name"``.
        version: tag or branch name, e.g. ``"v2"``.
        private: create the repo private (an existing repo's visibility is not changed).
        as_branch: mark the version with a branch instead of a tag.
        force: replace an existing version of that name; the result and log name the commit it pointed to.
        token: Hub token; None uses ``HF_TOKEN`` / the stored login. Never logged.

    Raises:
        ValueError: bad version name.
        ScoresNotFoundError: ``folder`` is not a version folder.
        VersionExistsError: the version exists and ``force`` is False.
        HubError: a Hub request failed; the message says which step and that previous versions are untouched.
    """
    validate_version(version)
    folder = Path(folder)
    files = _folder_files(folder)
    secret = token or get_token()
    api = HfApi(token=token)
    kind = "branch" if as_branch else "tag"
    nothing_changed = "Nothing was changed on the Hub; existing versions are untouched."

    repo_url = _call(
        f"Creating dataset repo {repo_id!r}",
        lambda: api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True),
        secret=secret,
        repo_id=repo_id,
        state=nothing_changed,
    )
    repo_id = getattr(repo_url, "repo_id", None) or repo_id
    refs = _call(
        f"Listing the refs of {repo_id!r}",
        lambda: api.list_repo_refs(repo_id, repo_type=REPO_TYPE),
        secret=secret,
        repo_id=repo_id,
        state=nothing_changed,
    )
    branches = {r.name: r.target_commit for r in refs.branches}
    tags = {r.name: r.target_commit for r in refs.tags}
    old_kind = "tag" if version in tags else "branch" if version in branches else None
    old_sha = tags.get(version) or branches.get(version)
    if old_kind and not force:
        raise VersionExistsError(
            f"Version {version!r} already exists in {repo_id!r} as a {old_kind} at commit {old_sha}. Publish under a"
            " new name, or pass force=True (`--force`) to move it to the new content.",
            repo_id=repo_id,
            version=version,
        )
    if private:
        info = _call(
            f"Reading {repo_id!r}",
            lambda: api.repo_info(repo_id, repo_type=REPO_TYPE),
            secret=secret,
            repo_id=repo_id,
            state=nothing_changed,
        )
        if not getattr(info, "private", True):
            logger.warning("Repo %s already exists and is public: --private does not change it.", repo_id)
    main_sha = branches.get("main")

    remote = (
        _call(
            f"Listing the files of {repo_id!r}",
            lambda: api.list_repo_files(repo_id, repo_type=REPO_TYPE, revision=main_sha or "main"),
            secret=secret,
            repo_id=repo_id,
            state=nothing_changed,
        )
        if main_sha
        else []
    )
    deletes = sorted(set(remote) - set(files) - KEEP_REMOTE)
    operations: list[Any] = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
    operations += [CommitOperationDelete(path_in_repo=f) for f in deletes]
    logger.info(
        "Publishing %s as %s %r: %d files, %d deletions, one commit on main.",
        folder,
        kind,
        version,
        len(files),
        len(deletes),
    )
    commit = _call(
        f"Committing version {version!r} to {repo_id!r}",
        lambda: api.create_commit(
            repo_id,
            operations,
            repo_type=REPO_TYPE,
            revision="main",
            parent_commit=main_sha,
            commit_message=f"datadiet: publish version {version}",
            commit_description=f"Version folder {folder.name}: {len(files)} files, {len(deletes)} removed.",
        ),
        secret=secret,
        repo_id=repo_id,
        state=f"The commit did not land (a commit lands whole or not at all). {nothing_changed}",
    )
    sha = commit.oid
    uploaded = tuple(op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd))

    if old_sha == sha and old_kind == kind:
        logger.info("Version %r of %s already points to commit %s; nothing to move.", version, repo_id, sha)
    else:
        _set_ref(api, repo_id, version, kind, sha, old_kind, old_sha, secret)
    if old_sha and old_sha != sha:
        logger.warning("Replaced version %r of %s: %s %s -> %s.", version, repo_id, old_kind, old_sha, sha)
    url = f"{api.endpoint}/datasets/{repo_id}/tree/{version}"
    return PushResult(repo_id, version, kind, sha, old_sha if old_sha != sha else None, uploaded, tuple(deletes), url)


def _create_ref(api: HfApi, repo_id: str, name: str, kind: str, sha: str) -> None:
    if kind == "tag":
        api.create_tag(repo_id, tag=name, revision=sha, repo_type=REPO_TYPE, tag_message=f"datadiet version {name}")
    else:
        api.create_branch(repo_id, branch=name, revision=sha, repo_type=REPO_TYPE)


def _delete_ref(api: HfApi, repo_id: str, name: str, kind: str) -> None:
    if kind == "tag":
        api.delete_tag(repo_id, tag=name, repo_type=REPO_TYPE)
    else:
        api.delete_branch(repo_id, branch=name, repo_type=REPO_TYPE)


def _set_ref(
    api: HfApi,
    repo_id: str,
    version: str,
    kind: str,
    sha: str,
    old_kind: str | None,
    old_sha: str | None,
    secret: str | None,
) -> None:
    """Point ``version`` at ``sha``; when replacing, restore the old ref if the new one cannot be created.

    The Hub has no atomic "move tag", so a forced move is delete + create; the old target is restored on failure so
    that a failed publish never leaves a version pointing somewhere new (or nowhere).
    """
    marked = "tagged" if kind == "tag" else "branched"
    landed = f"The commit {sha} landed on main, but version {version!r} was not {marked}."
    retry = " Rerun the same publish command to finish (it will not re-upload unchanged files)."
    if old_kind is None:
        _call(
            f"Creating {kind} {version!r} in {repo_id!r}",
            lambda: _create_ref(api, repo_id, version, kind, sha),
            secret=secret,
            repo_id=repo_id,
            state=f"{landed} Previous versions are untouched.{retry}",
        )
        return
    _call(
        f"Removing the old {old_kind} {version!r} (commit {old_sha}) in {repo_id!r}",
        lambda: _delete_ref(api, repo_id, version, old_kind),
        secret=secret,
        repo_id=repo_id,
        state=f"{landed} Version {version!r} still points to commit {old_sha}; previous versions"
        f" are untouched.{retry}",
    )
    try:
        _create_ref(api, repo_id, version, kind, sha)
    except (HfHubHTTPError, OSError, ValueError, RuntimeError) as e:
        reason = _reason(e, secret)
        try:
            _create_ref(api, repo_id, version, old_kind, old_sha)  # type: ignore[arg-type]
        except (HfHubHTTPError, OSError, ValueError, RuntimeError) as e2:
            raise HubError(
                f"Creating {kind} {version!r} in {repo_id!r} failed: {reason} {landed} Restoring the old {old_kind}"
                f" also failed ({_reason(e2, secret)}): version {version!r} is now missing; recreate it at commit"
                f" {old_sha} (`hf repo tag create {repo_id} {version} -r {old_sha} --repo-type dataset`)."
                " Other versions are untouched.",
                repo_id=repo_id,
                version=version,
            ) from None
        raise HubError(
            f"Creating {kind} {version!r} in {repo_id!r} failed: {reason} {landed} Version {version!r} was restored"
            f" to commit {old_sha}; previous versions are untouched.{retry}",
            repo_id=repo_id,
            version=version,
        ) from None


# -- list / load ---------------------------------------------------------------------------------------------------


def _repo_refs(api: HfApi, repo_id: str, *, step: str, secret: str | None, version: str | None = None) -> Any:
    """``list_repo_refs`` with its failures as ours: a missing (or invisible) repo is ``ScoresNotFoundError``, a
    network or HTTP failure a ``HubError`` naming ``step``."""
    try:
        return api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
    except RepositoryNotFoundError:
        raise ScoresNotFoundError(
            f"Dataset repo {repo_id!r} not found on {api.endpoint} (or it is private: set HF_TOKEN or run"
            " `hf auth login`).",
            repo_id=repo_id,
        ) from None
    except _failures(HfHubHTTPError, OSError) as e:
        raise as_hub_error(step, e, secret=secret, repo_id=repo_id, version=version) from None


def list_versions(repo_id: str, *, token: str | None = None) -> list[VersionInfo]:
    """The versions (tags and branches other than ``main``) of a score repo, with the provenance in each card.

    Args:
        repo_id: ``"user/name"``.
        token: Hub token for private repos; None uses ``HF_TOKEN`` / the stored login.

    Raises:
        ScoresNotFoundError: the repo does not exist or is not visible with this token.
        HubError: another Hub failure.
    """
    secret = token or get_token()
    refs = _repo_refs(HfApi(token=token), repo_id, step=f"Listing the versions of {repo_id!r}", secret=secret)
    candidates = [("tag", r) for r in refs.tags] + [("branch", r) for r in refs.branches]
    out = []
    for kind, ref in candidates:
        if ref.name in RESERVED_VERSIONS or not VERSION_PATTERN.fullmatch(ref.name):
            continue
        configs, provenance = _card_at(repo_id, ref.target_commit, token=token, secret=secret)
        out.append(VersionInfo(ref.name, kind, ref.target_commit, configs, provenance))
    return sorted(out, key=lambda v: (version_sort_key(v.name), v.kind))


def download_card(
    repo_id: str, revision: str | None, *, token: str | bool | None = None, local_only: bool = False
) -> ScoreFolder:
    """The card of a Hub version as a ``ScoreFolder`` (the snapshot folder holding just its README.md)."""
    path = hf_hub_download(
        repo_id, "README.md", repo_type=REPO_TYPE, revision=revision, token=token, local_files_only=local_only
    )
    return ScoreFolder(Path(path).parent)


def _card_at(repo_id: str, sha: str, *, token: str | None, secret: str | None) -> tuple[tuple[str, ...], Provenance]:
    """(configs, provenance) of the card at commit ``sha``; empty when the version has no card."""
    try:
        folder = download_card(repo_id, sha, token=token)
    except HfHubHTTPError as e:
        if getattr(getattr(e, "response", None), "status_code", None) == 404:
            return (), Provenance()
        raise as_hub_error(
            f"Reading the card of {repo_id!r} at {sha}", e, secret=secret, repo_id=repo_id, version=sha
        ) from None
    except _failures(OSError) as e:
        raise as_hub_error(
            f"Reading the card of {repo_id!r} at {sha}", e, secret=secret, repo_id=repo_id, version=sha
        ) from None
    try:
        return tuple(folder.configs()), folder.provenance()
    except CardError as e:
        logger.warning("%s", e)
        return (), Provenance()


def _preflight(repo_id: str, version: str | None, *, token: Any, secret: str | None) -> None:
    """One request before ``load_dataset``: an unreachable Hub fails here at once (``load_dataset`` would retry for
    ~25 s first), a missing repo or version gets its own error, and the card is checked before any data file is
    read (its ``data_files`` must stay inside the repo)."""
    api = HfApi(token=token if isinstance(token, str) else None)
    refs = _repo_refs(api, repo_id, step=f"Reaching {repo_id!r}", secret=secret, version=version)
    names = {r.name for r in refs.tags} | {r.name for r in refs.branches}
    if version is not None and version not in names and not re.fullmatch(r"[0-9a-f]{40}", version):
        raise VersionNotFoundError(
            f"Version {version!r} not found in {repo_id!r} (published: {sorted(names - {'main'}) or 'none'}); "
            f"`datadiet versions {repo_id}` lists them.",
            repo_id=repo_id,
            version=version,
        )
    try:
        card = download_card(repo_id, version, token=token)
    except _failures(HfHubHTTPError, OSError) as e:
        if getattr(getattr(e, "response", None), "status_code", None) == 404:
            return  # no card: load_dataset reads the repo's files by its own rules
        raise as_hub_error(f"Reading the card of {repo_id!r}", e, secret=secret, repo_id=repo_id) from None
    check_data_files(card.metadata(), where=f"{repo_id}@{version or 'main'}/README.md")


def load_from_hub(repo_id: str, config: str | None, version: str | None, **kwargs: Any) -> Any:
    """Load one config of one published version with plain ``datasets.load_dataset`` (split ``train``).

    Args:
        repo_id: ``"user/name"``.
        config: config name, e.g. ``"cnn-ep2"``.
        version: tag, branch or commit sha.
        **kwargs: passed to ``load_dataset`` (e.g. ``token``, ``cache_dir``, ``split``).

    Raises:
        ScoresNotFoundError: the repo, version or config does not exist.
    """
    from huggingface_hub import constants

    split = kwargs.pop("split", "train")
    token = kwargs.get("token")
    secret = token if isinstance(token, str) else get_token()
    if not constants.HF_HUB_OFFLINE:
        _preflight(repo_id, version, token=token, secret=secret)
    try:
        return datasets.load_dataset(repo_id, config, split=split, revision=version, **kwargs)
    except _failures(HfHubHTTPError) as e:  # ConnectionError: datasets' "Couldn't reach ..."
        raise as_hub_error(
            f"Loading {repo_id!r} at version {version!r}", e, secret=secret, repo_id=repo_id, version=version
        ) from None
    except RevisionNotFoundError:
        raise VersionNotFoundError(
            f"Version {version!r} not found in {repo_id!r}; `datadiet versions {repo_id}` lists the published ones.",
            repo_id=repo_id,
            version=version,
        ) from None
    except datasets.exceptions.DatasetNotFoundError as e:
        raise ScoresNotFoundError(
            f"Could not load {repo_id!r} at version {version!r}: {' '.join(str(e).split())} -- `datadiet versions"
            f" {repo_id}` lists the published versions; private repos need HF_TOKEN or `hf auth login`.",
            repo_id=repo_id,
            version=version,
        ) from None
    except ValueError as e:
        if "config" in str(e).lower():
            raise ConfigNotFoundError(
                f"Config {config!r} not found in {repo_id!r} at version {version!r}: {' '.join(str(e).split())}",
                repo_id=repo_id,
                version=version,
                config=config,
            ) from None
        raise
