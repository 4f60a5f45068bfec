"""TEST DOUBLE of the Hugging Face Hub HTTP API -- for tests only, never a real Hub.

The Hub cannot be reached from CI machines, and mocking ``HfApi`` would only test our own guesses about it.
Instead this module serves, on a loopback port, just the endpoints that the datadiet publish/load path uses
(see ``/work/shared/HUB_API_NOTES.md``), so the *real* ``huggingface_hub`` and ``datasets`` clients talk real
HTTP to it and every request they make is checked end to end.

What it models (in memory, per repo): blobs -> commits (full file trees, parent) -> refs (branches, tags), with
git-like semantics: a commit lands on one branch or not at all, tags and branches point at commits, old commits
stay readable by sha. It records every request (``HubDouble.requests``) and can inject failures
(``HubDouble.fail_next``) so tests can check what happens when a push breaks half-way.

Deliberately not modelled: LFS / Xet uploads (preupload always answers ``"regular"``, so content is inlined in
the NDJSON commit), pull requests, file copies, gated repos, organisations' permissions beyond "token owner writes
to its own namespace".
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def git_blob_sha(content: bytes) -> str:
    """The git blob id of ``content``: what the real Hub sends as a regular file's ``oid`` / ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    """One commit: the complete file tree (path -> blob sha) after it, plus its parent and message."""

    sha: str
    parent: str | None
    message: str
    tree: dict[str, str]


@dataclass
class Repo:
    """One repo's state. ``branches`` / ``tags`` map a ref name to a commit sha."""

    repo_type: str
    repo_id: str
    private: bool
    blobs: dict[str, bytes] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        """Commit sha for a branch, tag, ``refs/...`` name or full sha; None if unknown."""
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags)):
            if rev.startswith(prefix):
                return refs.get(rev[len(prefix) :])
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        if rev in self.commits:
            return rev
        return None

    def files_at(self, rev: str) -> dict[str, bytes]:
        """Path -> content of every file at ``rev`` (for assertions in tests)."""
        sha = self.resolve(rev)
        if sha is None:
            raise KeyError(f"unknown revision {rev!r} in {self.repo_id}")
        return {path: self.blobs[oid] for path, oid in self.commits[sha].tree.items()}


@dataclass
class RecordedRequest:
    """A request as the double received it. ``token`` is the bearer token, kept apart from ``headers``."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    token: str | None
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


@dataclass
class _Failure:
    method: str
    path_pattern: str
    status: int
    times: int
    message: str


class HubError(Exception):
    """An HTTP error answer: status, Hub ``X-Error-Code`` (if any) and message."""

    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class HubDouble:
    """The loopback Hub test double. Use as a context manager, or ``start()`` / ``stop()``.

    Args:
        tokens: accepted bearer tokens -> user name (the namespace that token may write to).
        page_size: entries per page of tree listings (small values exercise the ``Link: rel="next"`` paging).
    """

    def __init__(self, tokens: dict[str, str] | None = None, *, page_size: int = 50):
        self.tokens = dict(tokens or {})
        self.page_size = page_size
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self._failures: list[_Failure] = []
        self._lock = threading.RLock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> HubDouble:
        handler = type("_BoundHandler", (_Handler,), {"double": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL to put in ``HF_ENDPOINT`` (no trailing slash)."""
        assert self._server is not None, "HubDouble not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test helpers ----------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        *,
        status: int = 500,
        times: int = 1,
        message: str = "Injected failure (HubDouble)",
    ) -> None:
        """Make the next ``times`` requests whose method matches and whose path matches the regex fail."""
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_pattern, status, times, message))

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def find(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path matches the regex."""
        return [r for r in self.requests if r.method == method.upper() and re.search(path_pattern, r.path)]

    def add_repo_with_files(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        private: bool = False,
        repo_type: str = "dataset",
        tag: str | None = None,
    ) -> str:
        """Seed a repo directly (no HTTP) and return the commit sha; for tests that need a pre-existing state."""
        with self._lock:
            repo = self._create_repo(repo_type, repo_id, private)
            sha = self._commit(repo, "main", "seed", dict(files.items()), [], [])
            if tag:
                repo.tags[tag] = sha
            return sha

    # -- state changes (called with the lock held) ----------------------------------------------------------

    def _new_sha(self, *parts: str) -> str:
        self._counter += 1
        return hashlib.sha1("\0".join((str(self._counter), *parts)).encode()).hexdigest()

    def _create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, private)
        self.repos[(repo_type, repo_id)] = repo
        oid = git_blob_sha(_GITATTRIBUTES)
        repo.blobs[oid] = _GITATTRIBUTES
        sha = self._new_sha(repo_id, "initial commit")
        repo.commits[sha] = Commit(sha, None, "initial commit", {".gitattributes": oid})
        repo.branches["main"] = sha
        return repo

    def _commit(
        self,
        repo: Repo,
        branch: str,
        message: str,
        adds: dict[str, bytes],
        deleted_files: list[str],
        deleted_folders: list[str],
        parent_commit: str | None = None,
    ) -> str:
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = repo.branches[branch]
        if parent_commit is not None and not head.startswith(parent_commit):
            raise HubError(412, f"A commit has happened since. Please refresh and try again. (head is {head})")
        tree = dict(repo.commits[head].tree)
        for path in deleted_files:
            if path not in tree:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del tree[path]
        for folder in deleted_folders:
            prefix = folder.rstrip("/") + "/"
            gone = [p for p in tree if p.startswith(prefix)]
            if not gone:
                raise HubError(404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound")
            for p in gone:
                del tree[p]
        for path, content in adds.items():
            oid = git_blob_sha(content)
            repo.blobs[oid] = content
            tree[path] = oid
        sha = self._new_sha(repo.repo_id, head, message, json.dumps(sorted(tree.items())))
        repo.commits[sha] = Commit(sha, head, message, tree)
        repo.branches[branch] = sha
        return sha


# -- HTTP layer --------------------------------------------------------------------------------------------------


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[0].lower() in ("1", "true", "yes")


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the double. HTTP/1.1 with Content-Length on every answer (clients pool connections)."""

    protocol_version = "HTTP/1.1"
    double: HubDouble  # set on the bound subclass

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass  # keep test output quiet; requests are recorded instead

    # entry points
    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        rec = RecordedRequest(method, split.path, parse_qs(split.query), headers, self._read_body(), token)
        self._rec = rec
        d = self.double
        with d._lock:
            d.requests.append(rec)
            failure = next(
                (f for f in d._failures if f.method == method and re.search(f.path_pattern, split.path)), None
            )
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    d._failures.remove(failure)
        try:
            if failure is not None:
                raise HubError(failure.status, failure.message)
            segments = [unquote(s) for s in split.path.split("/")[1:]]
            self._route(method, segments, split.path)
        except HubError as e:
            self._send_error(e)
        except Exception as e:  # noqa: BLE001 - a bug in the double must show up as a clear 500, not a hung client
            self._send_error(HubError(500, f"HubDouble internal error: {type(e).__name__}: {e}"))

    # responses
    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self._rec.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, e: HubError) -> None:
        headers = {"X-Error-Message": e.message.splitlines()[0][:200]}
        if e.code:
            headers["X-Error-Code"] = e.code
        self._json({"error": e.message, **e.extra}, e.status, headers)

    # auth
    def _user(self) -> str | None:
        tok = self._rec.token
        if tok is None:
            return None
        user = self.double.tokens.get(tok)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _require_write(self, repo_id: str) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to write to the Hub (no token sent)")
        if repo_id.split("/")[0] != user:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return user

    def _get_repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        repo = self.double.repos.get((repo_type, repo_id))
        user = self._user()
        visible = repo is not None and (not repo.private or (user is not None and repo_id.split("/")[0] == user))
        if not visible:
            status = 401 if user is None else 404
            raise HubError(status, f"Repository not found: {repo_id}", "RepoNotFound")
        if write:
            self._require_write(repo_id)
        assert repo is not None
        return repo

    def _rev(self, repo: Repo, rev: str) -> str:
        sha = repo.resolve(rev)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return sha

    # routing
    def _route(self, method: str, seg: list[str], raw_path: str) -> None:
        d = self.double
        with d._lock:
            if seg[:1] == ["api"]:
                return self._route_api(method, seg[1:])
            reading = method in ("GET", "HEAD")
            if len(seg) >= 5 and seg[0] in ("datasets", "spaces") and seg[3] == "resolve" and reading:
                return self._resolve(_REPO_TYPES[seg[0]], f"{seg[1]}/{seg[2]}", seg[4], "/".join(seg[5:]))
            if len(seg) >= 4 and seg[2] == "resolve" and reading:
                return self._resolve("model", f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
        d.unhandled.append(self._rec)
        raise HubError(404, f"HubDouble does not implement {method} {raw_path}")

    def _route_api(self, method: str, seg: list[str]) -> None:
        body = self._rec.body
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body))
        if seg == ["validate-yaml"] and method == "POST":
            return self._json({"errors": [], "warnings": []})
        if seg == ["whoami-v2"] and method == "GET":
            user = self._user()
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json({"type": "user", "name": user, "orgs": [], "auth": {"type": "access_token"}})
        if len(seg) < 3 or seg[0] not in _REPO_TYPES:
            self.double.unhandled.append(self._rec)
            raise HubError(404, f"HubDouble does not implement {method} /api/{'/'.join(seg)}")
        repo_type, repo_id, rest = _REPO_TYPES[seg[0]], f"{seg[1]}/{seg[2]}", seg[3:]
        write = method in ("POST", "DELETE", "PUT") and rest[:1] != ["paths-info"]
        repo = self._get_repo(repo_type, repo_id, write=write)
        if not rest and method == "GET":
            return self._info(repo, "main")
        op, args = rest[0], rest[1:]
        if op == "revision" and method == "GET" and args:
            return self._info(repo, "/".join(args))
        if op == "refs" and method == "GET":
            return self._refs(repo)
        if op == "preupload" and method == "POST" and args:
            return self._preupload(repo, args[0], json.loads(body))
        if op == "commit" and method == "POST" and args:
            return self._commit(repo, args[0])
        if op == "tag" and args and method in ("POST", "DELETE"):
            return self._tag(repo, method, args[0])
        if op == "branch" and args and method in ("POST", "DELETE"):
            return self._branch(repo, method, args[0])
        if op == "tree" and method == "GET" and args:
            return self._tree(repo, args[0], "/".join(args[1:]))
        if op == "paths-info" and method == "POST" and args:
            return self._paths_info(repo, args[0])
        self.double.unhandled.append(self._rec)
        raise HubError(404, f"HubDouble does not implement {method} /api/{'/'.join(seg)}")

    # endpoints
    def _create_repo(self, payload: dict[str, Any]) -> None:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to create a repo (no token sent)")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        url = f"{self.double.endpoint}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        self._require_write(repo_id)
        if (repo_type, repo_id) in self.double.repos:
            raise HubError(409, "You already created this repo", extra={"url": url})
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        self.double._create_repo(repo_type, repo_id, private)
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _info(self, repo: Repo, rev: str) -> None:
        sha = self._rev(repo, rev)
        tree = repo.commits[sha].tree
        self._json(
            {
                "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": sha,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": "2024-01-01T00:00:00.000Z",
                "createdAt": "2024-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(tree)],
            }
        )

    def _refs(self, repo: Repo) -> None:
        def refs(kind: str, items: dict[str, str]) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in sorted(items.items())]

        self._json({"branches": refs("heads", repo.branches), "converts": [], "tags": refs("tags", repo.tags)})

    def _preupload(self, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        head = repo.commits[self._rev(repo, rev)].tree
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": head.get(f["path"])}
            for f in payload["files"]
        ]
        self._json({"files": files, "commitOid": repo.resolve(rev)})

    def _commit(self, repo: Repo, rev: str) -> None:
        if self._rec.query.get("create_pr"):
            raise HubError(400, "HubDouble does not implement pull requests")
        lines = self._rec.ndjson()
        header = next((ln["value"] for ln in lines if ln.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "Commit payload must start with a header with a summary")
        adds: dict[str, bytes] = {}
        deleted_files, deleted_folders = [], []
        for ln in lines:
            key, value = ln.get("key"), ln.get("value", {})
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                adds[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deleted_files.append(value["path"])
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            elif key != "header":
                raise HubError(400, f"HubDouble does not implement commit operation {key!r} (LFS/Xet/copy)")
        if rev in repo.tags or (rev not in repo.branches and repo.resolve(rev) is not None):
            raise HubError(400, f"Can only commit to a branch, not to {rev!r}")
        message = header["summary"] + ("\n\n" + header["description"] if header.get("description") else "")
        sha = self.double._commit(repo, rev, message, adds, deleted_files, deleted_folders, header.get("parentCommit"))
        prefix = "" if repo.repo_type == "model" else repo.repo_type + "s/"
        self._json(
            {
                "commitOid": sha,
                "commitUrl": f"{self.double.endpoint}/{prefix}{repo.repo_id}/commit/{sha}",
                "hookOutput": "",
                "success": True,
                "pullRequestUrl": None,
            }
        )

    def _tag(self, repo: Repo, method: str, arg: str) -> None:
        if method == "DELETE":
            if arg not in repo.tags:
                raise HubError(404, f"Tag {arg!r} does not exist", "RevisionNotFound")
            del repo.tags[arg]
            return self._json({})
        payload = json.loads(self._rec.body or b"{}")
        sha = self._rev(repo, arg)
        tag = payload.get("tag") or ""
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Tag {tag!r} already exists")
        repo.tags[tag] = sha
        self._json({})

    def _branch(self, repo: Repo, method: str, branch: str) -> None:
        if method == "DELETE":
            if branch not in repo.branches or branch == "main":
                raise HubError(
                    404 if branch != "main" else 403,
                    f"Cannot delete branch {branch!r}",
                    "RevisionNotFound" if branch != "main" else None,
                )
            del repo.branches[branch]
            return self._json({})
        payload = json.loads(self._rec.body or b"{}")
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch!r} already exists")
        start = payload.get("startingPoint") or "main"
        repo.branches[branch] = self._rev(repo, start)
        self._json({})

    def _entries(self, repo: Repo, sha: str) -> dict[str, dict[str, Any]]:
        """Every file and directory at ``sha`` as tree-listing entries, keyed by path."""
        out: dict[str, dict[str, Any]] = {}
        for path, oid in repo.commits[sha].tree.items():
            out[path] = {"type": "file", "oid": oid, "size": len(repo.blobs[oid]), "path": path}
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                out.setdefault(
                    d, {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                )
        return out

    def _tree(self, repo: Repo, rev: str, path: str) -> None:
        sha = self._rev(repo, rev)
        entries = self._entries(repo, sha)
        path = path.strip("/")
        if path and (path not in entries or entries[path]["type"] != "directory"):
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        recursive = _truthy(self._rec.query.get("recursive"))
        prefix = path + "/" if path else ""
        selected = [
            e
            for p, e in sorted(entries.items())
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])
        ]
        start = int((self._rec.query.get("cursor") or ["0"])[0])
        page = selected[start : start + self.double.page_size]
        headers = {}
        if start + self.double.page_size < len(selected):
            query = {k: v[0] for k, v in self._rec.query.items()}
            query["cursor"] = str(start + self.double.page_size)
            headers["Link"] = f'<{self.double.endpoint}{urlsplit(self.path).path}?{urlencode(query)}>; rel="next"'
        self._json(page, headers=headers)

    def _paths_info(self, repo: Repo, rev: str) -> None:
        sha = self._rev(repo, rev)
        form = parse_qs(self._rec.body.decode())
        paths = form.get("paths", [])
        if not paths and self._rec.headers.get("content-type", "").startswith("application/json"):
            paths = json.loads(self._rec.body).get("paths", [])
        entries = self._entries(repo, sha)
        self._json([entries[p.strip("/")] for p in paths if p.strip("/") in entries])

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        sha = self._rev(repo, rev)
        oid = repo.commits[sha].tree.get(path)
        if oid is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        content = repo.blobs[oid]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{oid}"', "Accept-Ranges": "bytes"}
        range_header = self._rec.headers.get("range")
        if range_header:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            size = len(content)
            if m is None or (not m.group(1) and not m.group(2)):
                raise HubError(416, f"Bad range {range_header!r}")
            if m.group(1):
                first, last = int(m.group(1)), min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            else:
                first, last = max(size - int(m.group(2)), 0), size - 1
            if first >= size or first > last:
                self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"}, "application/octet-stream")
                return
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            self._send(206, content[first : last + 1], headers, "application/octet-stream")
            return
        self._send(200, content, headers, "application/octet-stream")
