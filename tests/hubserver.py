"""An in-memory Hugging Face Hub that speaks the HTTP protocol of the installed `huggingface_hub` client.

Tests start it on 127.0.0.1 and point a client (normally in a subprocess) at it with
``HF_ENDPOINT=<server.url>`` and ``HF_HUB_DISABLE_XET=1`` set *before* `huggingface_hub` is imported
(see `HubServer.client_env`). It keeps real git-like history: content-addressed blobs (git blob sha1 for
regular files, sha256 for LFS objects), commits with parents, branches, tags and PR refs.

Only the standard library is used (plus PyYAML, if installed, to expose README front matter as cardData).

Typical use::

    with HubServer({"hf_test_token": "tester"}) as hub:
        env = hub.client_env(tmp_path / "hf_home")           # HF_ENDPOINT, HF_TOKEN, HF_HOME, ...
        hub.fail_next("POST", r"/commit/", status=500)       # next commit request fails once
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
        assert any(r.status == 500 for r in hub.find_requests("POST", r"/commit/"))
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import html
import json
import os
import posixpath
import re
import secrets
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs, quote, unquote, urlsplit

try:  # only used to expose README.md YAML front matter as `cardData`
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

__all__ = ["HubServer", "RequestRecord", "free_port", "git_blob_sha1"]

# The real Hub rejects regular (non-LFS) files above 10 MiB and binary files: they must go through LFS.
REGULAR_FILE_MAX_SIZE = 10 * 1024 * 1024
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
# What the Hub writes in the "initial commit" of every new repo (abridged to the model-relevant rules).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
        " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar"
        " *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)
API_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
REPO_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
SHA1_RE = re.compile(r"[0-9a-f]{40}")
SPACE_SDKS = ("gradio", "docker", "static")
COLLECTION_ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def git_blob_sha1(data: bytes) -> str:
    """`git hash-object` of `data`: the oid/ETag the Hub gives regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# ----------------------------------------------------------------------------------------------------------------
# Data model
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A file in a commit's tree."""

    size: int
    blob_id: str  # git oid: sha1 of the content (regular file) or of the LFS pointer file (LFS file)
    lfs_oid: str | None = None  # sha256 of the content, for LFS files

    @property
    def pointer_size(self) -> int:
        return len(LFS_POINTER.format(oid=self.lfs_oid, size=self.size))

    @property
    def etag(self) -> str:
        return self.lfs_oid or self.blob_id


@dataclass
class Commit:
    oid: str
    parents: tuple[str, ...]
    tree: dict[str, Entry]
    title: str
    message: str
    author: str
    timestamp: float


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: float
    gated: Any = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    lfs_oids: set[str] = field(default_factory=set)  # LFS objects uploaded to this repo
    sdk: str | None = None  # Spaces: gradio | docker | static

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]


@dataclass(frozen=True)
class RequestRecord:
    """One served request. Authorization values are never recorded, only the user they resolved to."""

    method: str
    path: str  # URL-decoded path, without the query string
    query: str
    status: int
    user: str | None
    injected: bool = False


@dataclass
class _Fault:
    method: str | None
    pattern: re.Pattern
    status: int
    remaining: int
    body: Any
    headers: dict[str, str]
    delay: float


class HubError(Exception):
    """Raised by route handlers; becomes an error response shaped like the Hub's (JSON + X-Error-* headers)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers=None, extra=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.extra = dict(headers or {}), dict(extra or {})


@dataclass
class _Request:
    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    user: str | None
    bad_token: bool

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name) or self.query.get(name + "[]")
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub: the client reuses connections
    hub: "HubServer"

    def log_message(self, format, *args):  # silence the default stderr access log
        pass

    def _read_body(self) -> bytes:
        # The LFS PUT streams a file object, which httpx may send with chunked transfer encoding.
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        body = self._read_body()
        status, headers, payload = self.hub._serve(self.command, self.path, self.headers, body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(payload))))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


# ----------------------------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------------------------


class HubServer:
    """In-memory Hub. `tokens` maps valid bearer tokens to user names; `orgs` maps org names to members."""

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        orgs: Mapping[str, Iterable[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.tokens = dict(tokens if tokens is not None else {"hf_test_token": "tester"})
        self.orgs = {org: set(members) for org, members in (orgs or {}).items()}
        self.host, self._requested_port = host, port
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._blobs: dict[str, bytes] = {}  # git blob sha1 -> content (regular files)
        self._lfs: dict[str, bytes] = {}  # sha256 -> content (LFS objects, shared storage)
        self._faults: list[_Fault] = []
        self._log: list[RequestRecord] = []
        self._secret = secrets.token_bytes(16)  # signs LFS upload URLs, like a presigned S3 URL
        self._seq = 0
        self._collections: dict[str, dict] = {}  # slug -> the collection as the Hub serves it
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._build_routes()

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> "HubServer":
        if self._httpd is not None:
            return self
        handler = type("HubHandler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer((self.host, self._requested_port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hubserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client_env(
        self,
        hf_home,
        token: str | None = "hf_test_token",
        offline: bool = False,
        base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Environment for a client subprocess: the current env minus any HF_* settings, pointed at this server."""
        proxies = ("http_proxy", "https_proxy", "all_proxy")
        env = {
            k: v
            for k, v in (os.environ if base is None else base).items()
            if not k.startswith(("HF_", "HUGGINGFACE_")) and k.lower() not in proxies
        }
        env.update(
            HF_ENDPOINT=self.url,
            HF_HUB_DISABLE_XET="1",
            HF_HOME=str(hf_home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        if token:
            env["HF_TOKEN"] = token
        if offline:
            env["HF_HUB_OFFLINE"] = "1"
        return env

    # -- fault injection and request log --------------------------------------------------------------------------

    def fail_next(
        self,
        method: str | None,
        path_pattern: str,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` requests whose method matches (None = any) and whose URL-decoded path matches
        the regex `path_pattern` (re.search) fail with `status`, before any routing or auth."""
        with self._lock:
            self._faults.append(
                _Fault(method and method.upper(), re.compile(path_pattern), status, times, body,
                       dict(headers or {}), delay)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._faults)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def find_requests(self, method: str | None = None, path_pattern: str | None = None) -> list[RequestRecord]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path_pattern is None or re.search(path_pattern, r.path))
        ]

    # -- direct (non-HTTP) seeding and inspection for tests -------------------------------------------------------

    def create_repo(self, repo_id: str, *, private: bool = False, repo_type: str = "model", author: str | None = None):
        """Create a repo (with its "initial commit") without going through HTTP."""
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} {repo_id} already exists")
            return self._new_repo(repo_type, repo_id, private, author or repo_id.split("/")[0])

    def commit_files(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str | None],
        message: str = "Seed commit",
        branch: str = "main",
        repo_type: str = "model",
    ) -> str:
        """Commit `files` (path -> content; None deletes) to `branch`, using the same LFS rules as uploads."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            base = repo.commits[repo.branches[branch]]
            attrs = self._text(base, ".gitattributes")
            ops = []
            for path, content in files.items():
                if content is None:
                    ops.append({"key": "deletedFile", "value": {"path": path}})
                    continue
                data = content.encode() if isinstance(content, str) else bytes(content)
                if _wants_lfs(path, len(data), data[:512], attrs):
                    oid = hashlib.sha256(data).hexdigest()
                    self._lfs[oid] = data
                    repo.lfs_oids.add(oid)
                    value = {"path": path, "algo": "sha256", "oid": oid, "size": len(data)}
                    ops.append({"key": "lfsFile", "value": value})
                else:
                    value = {"path": path, "encoding": "base64", "content": base64.b64encode(data).decode()}
                    ops.append({"key": "file", "value": value})
            commit = self._apply(repo, base, ops, message, "", repo.namespace)
            repo.branches[branch] = commit.oid
            return commit.oid

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str | None:
        with self._lock:
            return self._repos[(repo_type, repo_id)].branches.get(branch)

    def read_file(self, repo_id: str, path: str, revision: str = "main", repo_type: str = "model") -> bytes:
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            entry = self._resolve(repo, revision).tree[path]
            return self._content(entry)

    def list_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, Entry]:
        with self._lock:
            return dict(self._resolve(self._repos[(repo_type, repo_id)], revision).tree)

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[Commit]:
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return list(self._history(repo, self._resolve(repo, revision)))

    # -- request plumbing -----------------------------------------------------------------------------------------

    def _serve(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        user = self.tokens.get(token) if token else None
        req = _Request(
            method, split.path, unquote(split.path), parse_qs(split.query, keep_blank_values=True),
            headers, body, user, bad_token=bool(auth) and user is None,
        )
        injected = False
        fault = self._take_fault(req)
        if fault is not None:
            injected = True
            time.sleep(fault.delay)
            error = fault.body if fault.body is not None else {"error": f"Injected fault: HTTP {fault.status}"}
            status, out_headers, payload = self._json(fault.status, error)
            out_headers.update(fault.headers)
        else:
            try:
                status, out_headers, payload = self._dispatch(req)
            except HubError as err:
                out_headers = {"X-Error-Message": err.message, **err.headers}
                if err.code:
                    out_headers["X-Error-Code"] = err.code
                status, json_headers, payload = self._json(err.status, {"error": err.message, **err.extra})
                out_headers.update(json_headers)
            except Exception as err:  # a bug in this server: make it loud but keep serving
                traceback.print_exc()
                status, out_headers, payload = self._json(500, {"error": f"hubserver internal error: {err!r}"})
        # The Hub echoes a request id; the client includes it in error messages.
        trace_id = headers.get("X-Amzn-Trace-Id")
        if trace_id:
            out_headers.setdefault("X-Request-Id", trace_id)
        with self._lock:
            self._log.append(RequestRecord(method, req.path, split.query, status, user, injected))
        return status, out_headers, payload

    def _take_fault(self, req: _Request) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.method in (None, "*", req.method)) and fault.pattern.search(req.path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _dispatch(self, req: _Request):
        if req.bad_token:
            # What the Hub answers for an unknown/revoked token, whatever the route.
            raise HubError(401, "Invalid credentials in Authorization header")
        for method, regex, handler in self._routes:
            if method == req.method or (method == "GET" and req.method == "HEAD"):
                match = regex.fullmatch(req.raw_path)
                if match:
                    params = {k: (unquote(v) if v is not None else None) for k, v in match.groupdict().items()}
                    with self._lock:
                        return handler(req, **params)
        raise HubError(404, "Sorry, we can't find the page you are looking for.")

    def _build_routes(self) -> list[tuple[str, re.Pattern, Callable]]:
        # Matched against the raw (still percent-encoded) path: the client quotes revisions with safe="", so
        # "refs/pr/1" arrives as one segment "refs%2Fpr%2F1", while file paths keep their "/".
        api = r"/api/(?P<t>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
        git = r"/(?:(?P<t>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+?)"
        coll = r"/api/collections/(?P<slug>[^/]+/[^/]+-[0-9a-f]{24})"
        table = [
            ("GET", r"/api/whoami-v2", self._h_whoami),
            ("POST", r"/api/repos/create", self._h_create_repo),
            ("DELETE", r"/api/repos/delete", self._h_delete_repo),
            ("POST", r"/api/validate-yaml", self._h_validate_yaml),
            ("GET", api, self._h_repo_info),
            ("GET", api + r"/revision/(?P<rev>[^/]+)", self._h_repo_info),
            ("GET", api + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self._h_tree),
            ("POST", api + r"/paths-info/(?P<rev>[^/]+)", self._h_paths_info),
            ("GET", api + r"/refs", self._h_refs),
            ("GET", api + r"/commits/(?P<rev>[^/]+)", self._h_commits),
            ("POST", api + r"/preupload/(?P<rev>[^/]+)", self._h_preupload),
            ("POST", api + r"/commit/(?P<rev>[^/]+)", self._h_commit),
            ("POST", api + r"/branch/(?P<branch>[^/]+)", self._h_create_branch),
            ("DELETE", api + r"/branch/(?P<branch>[^/]+)", self._h_delete_branch),
            ("POST", api + r"/tag/(?P<rev>[^/]+)", self._h_create_tag),
            ("DELETE", api + r"/tag/(?P<tag>[^/]+)", self._h_delete_tag),
            ("PUT", api + r"/settings", self._h_settings),
            ("POST", git + r"\.git/info/lfs/objects/batch", self._h_lfs_batch),
            ("POST", git + r"\.git/info/lfs/objects/verify", self._h_lfs_verify),
            ("PUT", r"/__lfs/upload/(?P<oid>[0-9a-f]{64})", self._h_lfs_put),
            ("GET", r"/__lfs/objects/(?P<oid>[0-9a-f]{64})", self._h_lfs_get),
            ("GET", git + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._h_resolve),
            ("GET", r"/api/collections", self._h_list_collections),
            ("POST", r"/api/collections", self._h_create_collection),
            ("GET", coll, self._h_get_collection),
            ("PATCH", coll, self._h_update_collection),
            ("DELETE", coll, self._h_delete_collection),
            ("POST", coll + r"/items", self._h_add_collection_item),
            ("PATCH", coll + r"/items/(?P<item>[0-9a-f]{24})", self._h_update_collection_item),
            ("DELETE", coll + r"/items/(?P<item>[0-9a-f]{24})", self._h_delete_collection_item),
        ]
        return [(m, re.compile(p), h) for m, p, h in table]

    @staticmethod
    def _json(status: int, data: Any, content_type: str = "application/json; charset=utf-8"):
        return status, {"Content-Type": content_type}, json.dumps(data, default=str).encode()

    # -- helpers: access control, revisions, storage --------------------------------------------------------------

    def _may_write_namespace(self, user: str | None, namespace: str) -> bool:
        return user is not None and (user == namespace or user in self.orgs.get(namespace, ()))

    def _get_repo(self, t: str | None, repo_id: str, req: _Request, write: bool = False) -> Repo:
        repo = self._repos.get((API_TYPES.get(t or "", t) or "model", repo_id))
        if repo is None or (repo.private and not self._may_write_namespace(req.user, repo.namespace)):
            # Private repos are indistinguishable from missing ones; anonymous callers get a 401.
            raise HubError(401 if req.user is None else 404, "Repository not found", code="RepoNotFound")
        if write:
            self._check_write(req, repo)
        return repo

    def _check_write(self, req: _Request, repo: Repo) -> None:
        if req.user is None:
            raise HubError(401, "You must be authenticated to write to this repository")
        if not self._may_write_namespace(req.user, repo.namespace):
            raise HubError(403, f"You don't have the rights to write to {repo.repo_type} {repo.repo_id}")

    def _resolve(self, repo: Repo, rev: str) -> Commit:
        oid = repo.branches.get(rev) or repo.tags.get(rev)
        if oid is None:
            if rev.startswith("refs/heads/"):
                oid = repo.branches.get(rev[len("refs/heads/"):])
            elif rev.startswith("refs/tags/"):
                oid = repo.tags.get(rev[len("refs/tags/"):])
            elif (m := re.fullmatch(r"refs/pr/(\d+)", rev)) is not None:
                oid = repo.prs.get(int(m.group(1)))
            elif SHA1_RE.fullmatch(rev) and rev in repo.commits:
                oid = rev
        if oid is None:
            raise HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
        return repo.commits[oid]

    def _content(self, entry: Entry) -> bytes:
        return self._lfs[entry.lfs_oid] if entry.lfs_oid else self._blobs[entry.blob_id]

    def _text(self, commit: Commit, path: str) -> str | None:
        entry = commit.tree.get(path)
        return self._content(entry).decode("utf-8", "replace") if entry else None

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def _new_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> Repo:
        repo = Repo(repo_type, repo_id, private, time.time())
        self._repos[(repo_type, repo_id)] = repo
        # Like the Hub: every repo starts with an "initial commit" holding the default .gitattributes.
        initial_file = {"path": ".gitattributes", "encoding": "base64",
                        "content": base64.b64encode(DEFAULT_GITATTRIBUTES.encode()).decode()}
        commit = self._apply(repo, None, [{"key": "file", "value": initial_file}], "initial commit", "", author)
        repo.branches["main"] = commit.oid
        return repo

    def _apply(self, repo: Repo, base: Commit | None, ops: list[dict], title: str, message: str, author: str):
        """Build (and store) a new commit on top of `base` from NDJSON commit operations."""
        tree = dict(base.tree) if base else {}
        for op in ops:
            key, value = op.get("key"), op.get("value") or {}
            path = _check_path(value.get("path"))
            if key == "file":
                raw = value.get("content", "")
                data = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                if len(data) > REGULAR_FILE_MAX_SIZE:
                    raise HubError(400, "Your push was rejected because it contains files larger than 10 MiB. "
                                        f"Please use https://git-lfs.github.com/ to store large files. ({path})")
                if b"\x00" in data[:512]:
                    raise HubError(400, "Your push was rejected because it contains binary files. "
                                        f"Please use https://git-lfs.github.com/ to store binary files. ({path})")
                sha = git_blob_sha1(data)
                self._blobs[sha] = data
                tree[path] = Entry(len(data), sha)
            elif key == "lfsFile":
                oid = str(value.get("oid", ""))
                if oid not in repo.lfs_oids:
                    raise HubError(400, "Your push was rejected because an LFS pointer pointed to a file that does "
                                        f"not exist. For instance: {path} (oid sha256:{oid} was never uploaded)")
                size = len(self._lfs[oid])
                if value.get("size") is not None and int(value["size"]) != size:
                    raise HubError(400, f"LFS pointer for {path} has size {value['size']} but object {oid} has {size}")
                tree[path] = Entry(size, git_blob_sha1(LFS_POINTER.format(oid=oid, size=size).encode()), oid)
            elif key == "deletedFile":
                if path not in tree:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                del tree[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                doomed = [p for p in tree if p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
                for p in doomed:
                    del tree[p]
            else:
                raise HubError(400, f"Unknown commit operation key: {key!r}")
        self._seq += 1
        now = time.time()
        parents = (base.oid,) if base else ()
        manifest = json.dumps([parents, sorted((p, e.blob_id) for p, e in tree.items()), title, message, author, now,
                               self._seq])
        commit = Commit(hashlib.sha1(manifest.encode()).hexdigest(), parents, tree, title, message, author, now)
        repo.commits[commit.oid] = commit
        return commit

    def _history(self, repo: Repo, commit: Commit):
        while commit is not None:  # first-parent history, newest first
            yield commit
            commit = repo.commits[commit.parents[0]] if commit.parents else None

    def _last_commit(self, repo: Repo, commit: Commit, path: str, is_dir: bool) -> Commit:
        def state(c: Commit):
            if is_dir:
                return sorted((p, e.blob_id) for p, e in c.tree.items() if p.startswith(path + "/"))
            entry = c.tree.get(path)
            return entry.blob_id if entry else None

        current, last = state(commit), commit
        for older in self._history(repo, commit):
            if state(older) != current:
                break
            last = older
        return last

    def _tree_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        entry = commit.tree.get(path)
        if entry is not None:
            item = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
            if entry.lfs_oid:
                item["lfs"] = {"oid": entry.lfs_oid, "size": entry.size, "pointerSize": entry.pointer_size}
        else:
            children = sorted((p, e.blob_id) for p, e in commit.tree.items() if p.startswith(path + "/"))
            item = {"type": "directory", "oid": hashlib.sha1(json.dumps(children).encode()).hexdigest(), "size": 0,
                    "path": path}
        if expand:
            last = self._last_commit(repo, commit, path, is_dir=entry is None)
            item["lastCommit"] = {"id": last.oid, "title": last.title, "date": _iso(last.timestamp)}
            if entry is not None:
                item["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                                              "pickleImportScan": None}
        return item

    @staticmethod
    def _dirs(commit: Commit) -> set[str]:
        """Every folder of the tree ("a/b/c.txt" -> "a", "a/b"): git has no empty folders."""
        parents = (p.split("/")[:-1] for p in commit.tree)
        return {"/".join(parts[:i]) for parts in parents for i in range(1, len(parts) + 1)}

    def _card_data(self, commit: Commit) -> dict | None:
        readme = self._text(commit, "README.md")
        match = re.match(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", readme or "", re.DOTALL)
        if not match or yaml is None:
            return None
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return None
        return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None

    # -- route handlers -------------------------------------------------------------------------------------------

    def _h_whoami(self, req: _Request):
        if req.user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "write"}
                for org, members in sorted(self.orgs.items()) if req.user in members]
        return self._json(200, {
            "type": "user", "id": hashlib.sha1(req.user.encode()).hexdigest()[:24], "name": req.user,
            "fullname": req.user, "email": f"{req.user}@example.com", "emailVerified": True, "canPay": False,
            "isPro": False, "periodEnd": None, "avatarUrl": "", "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "hubserver", "role": "write",
                                                             "createdAt": _iso(0)}},
        })

    def _h_create_repo(self, req: _Request):
        payload = req.json()
        if req.user is None:
            raise HubError(401, "You must be authenticated to create a repository")
        name, namespace = payload.get("name"), payload.get("organization") or req.user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        if not isinstance(name, str) or not REPO_NAME_RE.fullmatch(name) or "--" in name or ".." in name \
                or name.endswith(".git"):
            raise HubError(400, f"Invalid repo name: {name!r}")
        if not self._may_write_namespace(req.user, namespace):
            raise HubError(403, f"You don't have the rights to create a {repo_type} under namespace {namespace!r}")
        repo_id = f"{namespace}/{name}"
        existing = self._repos.get((repo_type, repo_id))
        if existing is not None:
            # `create_repo(exist_ok=True)` swallows the 409 and then reads "url" from this very body.
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": self._repo_url(existing)})
        sdk = payload.get("sdk")
        if repo_type == "space" and sdk not in SPACE_SDKS:
            raise HubError(400, f"Invalid sdk for a Space: {sdk!r}; one of {', '.join(SPACE_SDKS)}")
        private = payload.get("visibility") == "private" or payload.get("private") is True
        repo = self._new_repo(repo_type, repo_id, private, req.user)
        repo.sdk = sdk if repo_type == "space" else None
        return self._json(200, {"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _h_delete_repo(self, req: _Request):
        payload = req.json()
        namespace = payload.get("organization") or req.user or ""
        repo = self._get_repo(payload.get("type") or "model", f"{namespace}/{payload.get('name')}", req, write=True)
        del self._repos[(repo.repo_type, repo.repo_id)]
        return self._json(200, {})

    def _h_validate_yaml(self, req: _Request):
        content = req.json().get("content") or ""
        match = re.match(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", content, re.DOTALL)
        if match and yaml is not None:
            try:
                yaml.safe_load(match.group(1))
            except yaml.YAMLError as err:
                return self._json(400, {"errors": [{"message": f"Invalid YAML in README.md: {err}"}], "warnings": []})
        return self._json(200, {"errors": [], "warnings": []})

    def _h_settings(self, req: _Request, t, repo):
        r = self._get_repo(t, repo, req, write=True)
        payload = req.json()
        if "private" in payload:
            r.private = bool(payload["private"])
        if "visibility" in payload:
            r.private = payload["visibility"] == "private"
        if "gated" in payload:
            r.gated = payload["gated"]
        return self._json(200, {})

    def _h_repo_info(self, req: _Request, t, repo, rev="main"):
        r = self._get_repo(t, repo, req)
        commit = self._resolve(r, rev)
        card = self._card_data(commit)
        meta = card or {}
        # Like the Hub: card tags, plus the library and license as tags, plus the storage region.
        tags = [x for x in meta.get("tags") or [] if isinstance(x, str)] if isinstance(meta.get("tags"), list) else []
        tags += [meta["library_name"]] if isinstance(meta.get("library_name"), str) else []
        tags += [f"license:{meta['license']}"] if isinstance(meta.get("license"), str) else []
        tags.append("region:us")
        blobs = req.flag("blobs")
        siblings = []
        for path in sorted(commit.tree):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                entry = commit.tree[path]
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs_oid:
                    sibling["lfs"] = {"sha256": entry.lfs_oid, "size": entry.size, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{r.repo_type}/{r.repo_id}".encode()).hexdigest()[:24], "id": r.repo_id,
            "author": r.namespace, "sha": commit.oid, "lastModified": _iso(commit.timestamp),
            "createdAt": _iso(r.created), "private": r.private, "gated": r.gated, "disabled": False,
            "downloads": 0, "likes": 0, "tags": list(dict.fromkeys(tags)), "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.tree.values()),
        }
        if r.repo_type == "model":
            info.update(modelId=r.repo_id, spaces=self._spaces_using(r.repo_id, req))
            info.update({k: meta[k] for k in ("library_name", "pipeline_tag") if isinstance(meta.get(k), str)})
        if r.repo_type == "space":  # this server builds nothing: a Space stays where a new one starts
            info.update(sdk=r.sdk, runtime={"stage": "BUILDING", "hardware": {"current": None,
                                                                             "requested": "cpu-basic"}})
            info["models"] = [m for m in meta.get("models") or [] if isinstance(m, str)]
        if card is not None:
            info["cardData"] = card
        expand = req.query.get("expand") or req.query.get("expand[]")
        if expand:  # only the requested properties (plus ids), like the Hub
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        return self._json(200, info)

    def _h_tree(self, req: _Request, t, repo, rev, path=None):
        r = self._get_repo(t, repo, req)
        commit = self._resolve(r, rev)
        base = (path or "").strip("/")
        dirs = self._dirs(commit)
        if base and base not in dirs:
            raise HubError(404, f"{base} does not exist on \"{rev}\" or is not a folder", code="EntryNotFound")
        prefix = base + "/" if base else ""
        recursive, expand = req.flag("recursive"), req.flag("expand")
        paths = [d for d in sorted(dirs) if d.startswith(prefix) and d != base] + \
                [p for p in sorted(commit.tree) if p.startswith(prefix)]
        if not recursive:
            paths = [p for p in paths if "/" not in p[len(prefix):]]
        # Everything fits in one page, so no `Link: <...>; rel="next"` header is needed.
        return self._json(200, [self._tree_entry(r, commit, p, expand) for p in paths])

    def _h_paths_info(self, req: _Request, t, repo, rev):
        r = self._get_repo(t, repo, req)
        commit = self._resolve(r, rev)
        if "json" in (req.headers.get("Content-Type") or ""):
            payload = req.json()
            paths, expand = payload.get("paths") or [], bool(payload.get("expand"))
        else:  # the client sends form data: paths=a&paths=b&expand=false
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), (form.get("expand") or ["false"])[0].lower() == "true"
        dirs = self._dirs(commit)
        found = [p.strip("/") for p in paths if p.strip("/") in commit.tree or p.strip("/") in dirs]
        return self._json(200, [self._tree_entry(r, commit, p, expand) for p in found])

    def _h_refs(self, req: _Request, t, repo):
        r = self._get_repo(t, repo, req)

        def refs(items, kind):
            return [{"name": str(n), "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(items)]

        data = {"branches": refs(r.branches.items(), "heads"), "converts": [], "tags": refs(r.tags.items(), "tags")}
        if req.flag("include_prs"):
            data["pullRequests"] = refs(r.prs.items(), "pr")
        return self._json(200, data)

    def _h_commits(self, req: _Request, t, repo, rev):
        r = self._get_repo(t, repo, req)
        formatted = "formatted" in (req.query.get("expand[]", []) + req.query.get("expand", []))
        items = []
        for c in self._history(r, self._resolve(r, rev)):
            item = {"id": c.oid, "title": c.title, "message": c.message, "date": _iso(c.timestamp),
                    "authors": [{"user": c.author, "avatar": ""}]}
            if formatted:
                item["formatted"] = {"title": html.escape(c.title), "message": html.escape(c.message)}
            items.append(item)
        return self._json(200, items)

    def _h_preupload(self, req: _Request, t, repo, rev):
        r = self._get_repo(t, repo, req, write=not req.flag("create_pr"))
        commit = self._resolve(r, rev)
        payload = req.json()
        attrs = self._text(commit, ".gitattributes")
        gitignore = payload.get("gitIgnore")
        if gitignore is None:
            gitignore = self._text(commit, ".gitignore")
        files = []
        for f in payload.get("files") or []:
            path = _check_path(f.get("path"))
            sample = base64.b64decode(f.get("sample") or "")
            existing = commit.tree.get(path)
            files.append({
                "path": path,
                "uploadMode": "lfs" if _wants_lfs(path, int(f.get("size") or 0), sample, attrs) else "regular",
                "shouldIgnore": _gitignored(path, gitignore),
                # The client skips files whose oid (sha256 for LFS, git sha1 otherwise) did not change.
                "oid": existing.etag if existing else None,
            })
        return self._json(200, {"files": files, "commitOid": commit.oid})

    def _h_commit(self, req: _Request, t, repo, rev):
        create_pr = req.flag("create_pr")
        r = self._get_repo(t, repo, req, write=not create_pr)
        if create_pr and req.user is None:
            raise HubError(401, "You must be authenticated to open a pull request")
        try:
            lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        except ValueError as err:
            raise HubError(400, f"Invalid NDJSON payload: {err}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of the commit payload must be the header")
        header = lines[0].get("value") or {}
        title = str(header.get("summary") or "").strip()
        if not title:
            raise HubError(400, "Commit summary is required")
        parent, pr, branch = header.get("parentCommit"), None, None
        if create_pr:
            base = self._resolve(r, parent) if parent else self._resolve(r, rev)
        else:
            branch = rev[len("refs/heads/"):] if rev.startswith("refs/heads/") else rev
            pr = re.fullmatch(r"refs/pr/(\d+)", rev)
            if branch not in r.branches and not (pr and int(pr.group(1)) in r.prs):
                self._resolve(r, rev)  # 404 RevisionNotFound if it does not exist at all
                raise HubError(400, f"Can only commit to a branch or a pull request ref, not {rev!r}")
            base = self._resolve(r, rev)
            if parent is not None and parent != base.oid:
                # The Hub refuses to commit on a branch whose head moved since `parent_commit`.
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
        commit = self._apply(r, base, lines[1:], title, str(header.get("description") or ""), req.user)
        out = {"success": True, "commitOid": commit.oid, "commitUrl": f"{self._repo_url(r)}/commit/{commit.oid}",
               "commitMessage": title, "hookOutput": ""}
        if create_pr:
            number = max([0, *r.prs]) + 1
            r.prs[number] = commit.oid
            out["pullRequestUrl"] = f"{self._repo_url(r)}/discussions/{number}"
        elif pr:
            r.prs[int(pr.group(1))] = commit.oid
        else:
            r.branches[branch] = commit.oid
        return self._json(200, out)

    def _h_create_branch(self, req: _Request, t, repo, branch):
        r = self._get_repo(t, repo, req, write=True)
        if branch.startswith("refs/") or not re.fullmatch(r"[A-Za-z0-9._/-]+", branch) or SHA1_RE.fullmatch(branch):
            raise HubError(400, f"Invalid reference for a branch: {branch}")
        if branch in r.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = req.json().get("startingPoint") or "main"
        r.branches[branch] = self._resolve(r, start).oid
        return self._json(200, {})

    def _h_delete_branch(self, req: _Request, t, repo, branch):
        r = self._get_repo(t, repo, req, write=True)
        if branch == "main":
            raise HubError(403, "Cannot delete the default branch")
        if branch not in r.branches:
            raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
        del r.branches[branch]
        return self._json(200, {})

    def _h_create_tag(self, req: _Request, t, repo, rev):
        r = self._get_repo(t, repo, req, write=True)
        tag = req.json().get("tag")
        if not isinstance(tag, str) or not re.fullmatch(r"[A-Za-z0-9._/-]+", tag) or tag.startswith("refs/"):
            raise HubError(400, f"Invalid tag name: {tag!r}")
        if tag in r.tags:
            raise HubError(409, f"Tag already exists: {tag}")
        r.tags[tag] = self._resolve(r, rev).oid
        return self._json(200, {})

    def _h_delete_tag(self, req: _Request, t, repo, tag):
        r = self._get_repo(t, repo, req, write=True)
        if tag not in r.tags:
            raise HubError(404, f"Invalid rev id: {tag}", code="RevisionNotFound")
        del r.tags[tag]
        return self._json(200, {})

    # -- Git LFS ----------------------------------------------------------------------------------------------------

    def _sign(self, repo: Repo, oid: str, size: int) -> str:
        msg = f"{repo.repo_type}:{repo.repo_id}:{oid}:{size}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def _h_lfs_batch(self, req: _Request, t, repo):
        payload = req.json()
        operation = payload.get("operation")
        r = self._get_repo(t, repo, req, write=operation == "upload")
        if operation not in ("upload", "download"):
            raise HubError(400, f"Unsupported LFS operation: {operation!r}")
        objects = []
        for obj in payload.get("objects") or []:
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not SHA256_RE.fullmatch(oid) or not isinstance(size, int) or size < 0:
                error = {"code": 422, "message": "Invalid object: expected a sha256 oid and a size"}
                objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0, "error": error})
            elif operation == "download":
                if oid in r.lfs_oids:
                    href = f"{self.url}/__lfs/objects/{oid}?{_query(r, oid, size, self._sign(r, oid, size))}"
                    objects.append({"oid": oid, "size": size, "actions": {"download": {"href": href}}})
                else:
                    error = {"code": 404, "message": "Object does not exist"}
                    objects.append({"oid": oid, "size": size, "error": error})
            elif oid in r.lfs_oids:
                objects.append({"oid": oid, "size": size})  # already stored: no actions => the client skips it
            else:
                href = f"{self.url}/__lfs/upload/{oid}?{_query(r, oid, size, self._sign(r, oid, size))}"
                verify = f"{self._repo_url(r)}.git/info/lfs/objects/verify"
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                    "upload": {"href": href, "expires_at": _iso(time.time() + 3600)},
                    "verify": {"href": verify},
                }})
        return self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                          content_type="application/vnd.git-lfs+json")

    def _signed_repo(self, req: _Request, oid: str) -> tuple[Repo, int]:
        rtype, repo_id, size, sig = (req.arg(k) for k in ("type", "repo", "size", "sig"))
        repo = self._repos.get((rtype or "", repo_id or ""))
        if repo is None or not size or not size.isdigit() or not hmac.compare_digest(
            sig or "", self._sign(repo, oid, int(size))
        ):
            raise HubError(403, "Invalid or expired signature")
        return repo, int(size)

    def _h_lfs_put(self, req: _Request, oid):
        repo, size = self._signed_repo(req, oid)
        if len(req.body) != size:
            raise HubError(400, f"Size mismatch: expected {size} bytes, received {len(req.body)}")
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise HubError(400, "Content does not match the sha256 oid")
        self._lfs[oid] = req.body
        repo.lfs_oids.add(oid)
        return 200, {"ETag": f'"{hashlib.md5(req.body).hexdigest()}"'}, b""

    def _h_lfs_get(self, req: _Request, oid):
        repo, _ = self._signed_repo(req, oid)
        if oid not in repo.lfs_oids:
            raise HubError(404, "Object does not exist")
        return 200, {"Content-Type": "application/octet-stream"}, self._lfs[oid]

    def _h_lfs_verify(self, req: _Request, t, repo):
        r = self._get_repo(t, repo, req, write=True)
        payload = req.json()
        oid, size = payload.get("oid"), payload.get("size")
        if oid not in r.lfs_oids or (size is not None and len(self._lfs[oid]) != size):
            raise HubError(404, f"LFS object {oid} (size {size}) was not uploaded")
        return self._json(200, {"success": True})

    # -- file downloads ---------------------------------------------------------------------------------------------

    def _h_resolve(self, req: _Request, t, repo, rev, path):
        r = self._get_repo(t, repo, req)
        commit = self._resolve(r, rev)
        entry = commit.tree.get(path)
        if entry is None:
            # X-Repo-Commit lets the client cache the file's absence for this commit (.no_exist).
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        data = self._content(entry)
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream" if entry.lfs_oid else "text/plain; charset=utf-8",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(posixpath.basename(path))}",
        }
        if entry.lfs_oid:
            # The Hub's LFS answers carry the sha256 and real size here (its 302 to the CDN has no body).
            headers.update({"X-Linked-Etag": f'"{entry.lfs_oid}"', "X-Linked-Size": str(entry.size)})
        status, body = 200, data
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", (req.headers.get("Range") or "").strip())
        if rng and (rng.group(1) or rng.group(2)) and data:
            start, end = rng.groups()
            first = int(start) if start else max(0, len(data) - int(end))
            last = min(int(end), len(data) - 1) if start and end else len(data) - 1
            if first >= len(data) or first > last:
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            status, body = 206, data[first : last + 1]
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return status, headers, body


# ----------------------------------------------------------------------------------------------------------------
# Small pure helpers
# ----------------------------------------------------------------------------------------------------------------

    # -- collections ----------------------------------------------------------------------------------------------

    def _spaces_using(self, model_id: str, req: _Request) -> list[str]:
        """The Spaces whose README metadata lists the model under `models`, as a model's info names them."""
        out = []
        for (repo_type, repo_id), repo in sorted(self._repos.items()):
            if repo_type != "space" or (repo.private and not self._may_write_namespace(req.user, repo.namespace)):
                continue
            card = self._card_data(repo.commits[repo.branches["main"]]) or {}
            if model_id in (card.get("models") or []):
                out.append(repo_id)
        return out

    def _collection(self, slug: str, req: _Request, write: bool = False) -> dict:
        c = self._collections.get(slug)
        owner = c["owner"]["name"] if c else ""
        if c is None or (c["private"] and not self._may_write_namespace(req.user, owner)):
            raise HubError(404, "Collection not found")
        if write and req.user is None:
            raise HubError(401, "You must be authenticated to change a collection")
        if write and not self._may_write_namespace(req.user, owner):
            raise HubError(403, f"You don't have the rights to change collections of {owner!r}")
        return c

    def _touch(self, c: dict) -> dict:
        c["lastUpdated"] = _iso(time.time())
        for position, item in enumerate(c["items"]):
            item["position"] = position
        return c

    @staticmethod
    def _note(text: Any) -> dict | None:
        if text is None:
            return None
        if not isinstance(text, str) or len(text) > 500:
            raise HubError(400, "A note must be a string of at most 500 characters")
        return {"html": html.escape(text), "text": text}

    def _h_list_collections(self, req: _Request):
        owners = req.query.get("owner") or req.query.get("owner[]") or []
        items = req.query.get("item") or req.query.get("item[]") or []
        out = []
        for c in self._collections.values():
            if c["private"] and not self._may_write_namespace(req.user, c["owner"]["name"]):
                continue
            if owners and c["owner"]["name"] not in owners:
                continue
            if items and not {f"{i['type']}s/{i['id']}" for i in c["items"]} & set(items):
                continue
            # Like the Hub: at most 4 items per collection here, and no `position` (the client numbers the list).
            out.append({**{k: v for k, v in c.items() if k != "position"}, "items": c["items"][:4]})
        return self._json(200, out)

    def _h_create_collection(self, req: _Request):
        payload = req.json()
        if req.user is None:
            raise HubError(401, "You must be authenticated to create a collection")
        title, namespace = payload.get("title"), payload.get("namespace") or req.user
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 60:
            raise HubError(400, "A collection needs a title of 1 to 60 characters")
        description = payload.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 150):
            raise HubError(400, "A collection's description is at most 150 characters")
        if not self._may_write_namespace(req.user, namespace):
            raise HubError(403, f"You don't have the rights to create a collection under {namespace!r}")
        stem = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "collection"
        for slug, c in self._collections.items():
            if c["owner"]["name"] == namespace and c["title"] == title:
                raise HubError(409, "Collection already exists", extra={"slug": slug})
        slug = f"{namespace}/{stem}-{hashlib.sha1(f'{namespace}/{title}/{self._seq}'.encode()).hexdigest()[:24]}"
        self._seq += 1
        kind = "org" if namespace in self.orgs else "user"
        collection = {"slug": slug, "title": title, "description": description, "private": bool(payload.get("private")),
                      "owner": {"name": namespace, "type": kind}, "items": [], "theme": "blue", "upvotes": 0,
                      "isUpvotedByUser": False, "position": sum(c["owner"]["name"] == namespace
                                                                for c in self._collections.values())}
        self._collections[slug] = self._touch(collection)
        return self._json(200, collection)

    def _h_get_collection(self, req: _Request, slug):
        return self._json(200, self._collection(slug, req))

    def _h_update_collection(self, req: _Request, slug):
        c = self._collection(slug, req, write=True)
        payload = req.json()
        for key in ("title", "description", "private", "theme", "position"):
            if payload.get(key) is not None:
                c[key] = payload[key]
        return self._json(200, {"success": True, "data": self._touch(c)})

    def _h_delete_collection(self, req: _Request, slug):
        self._collection(slug, req, write=True)
        del self._collections[slug]
        return self._json(200, {"success": True})

    def _h_add_collection_item(self, req: _Request, slug):
        c = self._collection(slug, req, write=True)
        payload = req.json()
        item = payload.get("item") or {}
        item_id, item_type = item.get("id"), item.get("type")
        if item_type not in COLLECTION_ITEM_TYPES or not isinstance(item_id, str):
            raise HubError(400, f"Invalid item: {item!r}")
        if item_type in ("model", "dataset", "space"):
            self._get_repo(item_type + "s", item_id, req)  # 404 for a repo that does not exist (or is hidden)
        if any(i["id"] == item_id and i["type"] == item_type for i in c["items"]):
            raise HubError(409, "Item already in the collection")
        object_id = hashlib.sha1(f"{slug}/{item_type}/{item_id}/{self._seq}".encode()).hexdigest()[:24]
        self._seq += 1
        entry = {"_id": object_id, "id": item_id, "type": item_type, "position": len(c["items"]),
                 "author": item_id.split("/")[0] if "/" in item_id else None}
        note = self._note(payload.get("note"))
        if note is not None:
            entry["note"] = note
        c["items"].append(entry)
        return self._json(200, self._touch(c))

    def _item(self, c: dict, item: str) -> dict:
        for entry in c["items"]:
            if entry["_id"] == item:
                return entry
        raise HubError(404, "Item not found in the collection")

    def _h_update_collection_item(self, req: _Request, slug, item):
        c = self._collection(slug, req, write=True)
        entry = self._item(c, item)
        payload = req.json()
        if "note" in payload and payload["note"] is not None:
            entry["note"] = self._note(payload["note"])
        position = payload.get("position")
        if position is not None:
            if not isinstance(position, int) or position < 0:
                raise HubError(400, f"Invalid position: {position!r}")
            c["items"].remove(entry)
            c["items"].insert(min(position, len(c["items"])), entry)
        self._touch(c)
        return self._json(200, {"success": True})

    def _h_delete_collection_item(self, req: _Request, slug, item):
        c = self._collection(slug, req, write=True)
        c["items"].remove(self._item(c, item))
        self._touch(c)
        return self._json(200, {"success": True})



def _query(repo: Repo, oid: str, size: int, sig: str) -> str:
    return f"type={repo.repo_type}&repo={quote(repo.repo_id, safe='')}&size={size}&sig={sig}"


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        raise HubError(400, f"Invalid path in repo: {path!r}")
    parts = path.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _wants_lfs(path: str, size: int, sample: bytes, gitattributes: str | None) -> bool:
    """The Hub's upload-mode rule: LFS for large files, binary-looking files and .gitattributes `filter=lfs` rules."""
    if size > REGULAR_FILE_MAX_SIZE or b"\x00" in sample:
        return True
    for line in (gitattributes or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            pattern = fields[0].lstrip("/")
            target = path if "/" in pattern else posixpath.basename(path)
            if fnmatch.fnmatchcase(target, pattern):
                return True
    return False


def _gitignored(path: str, gitignore: str | None) -> bool:
    """A small subset of .gitignore semantics (globs on basename or full path, directory prefixes)."""
    ignored = False
    for raw in (gitignore or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").lstrip("/")
        hit = (
            fnmatch.fnmatchcase(path, pattern)
            or fnmatch.fnmatchcase(posixpath.basename(path), pattern)
            or path.startswith(pattern.rstrip("/") + "/")
        )
        if hit:
            ignored = not negate
    return ignored
