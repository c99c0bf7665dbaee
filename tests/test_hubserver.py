"""End-to-end tests of tests/hubserver.py with the real `huggingface_hub` client.

HF_ENDPOINT must be set before `huggingface_hub` is imported, and this pytest process may already have imported
it, so every client call runs in a fresh interpreter (subprocess) while the server runs here, in a thread.
Raw protocol checks (NDJSON commit, LFS batch/PUT) talk to the server directly with urllib.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import HubServer, free_port, git_blob_sha1  # noqa: E402
from conftest import SAFETY_TIMEOUT  # noqa: E402

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

TOKEN = "hf_test_token"
OTHER_TOKEN = "hf_other_token"

# Prepended to every client script: helpers to report results (last stdout line is JSON) and errors.
PRELUDE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import huggingface_hub
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    assert huggingface_hub.constants.ENDPOINT == os.environ["HF_ENDPOINT"], "HF_ENDPOINT not picked up"
    api = HfApi()
    WORK = Path(os.environ["WORKDIR"])

    def error_of(fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception as err:
            response = getattr(err, "response", None)
            return {
                "types": [cls.__name__ for cls in type(err).__mro__],
                "status": getattr(response, "status_code", None),
                "message": str(err),
            }
        return None

    def emit(obj):
        print(json.dumps(obj, default=str))
    """
)


@pytest.fixture
def hub():
    with HubServer({TOKEN: "tester", OTHER_TOKEN: "other"}, orgs={"tiny-org": ["tester"]}) as server:
        yield server


def run_client(hub: HubServer, tmp_path: Path, script: str, *, token: str | None = TOKEN, offline=False) -> dict:
    """Run `script` in a fresh interpreter pointed at `hub`; returns the JSON it emitted last."""
    env = hub.client_env(tmp_path / "hf_home", token=token, offline=offline)
    env["WORKDIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=SAFETY_TIMEOUT,
    )
    assert proc.returncode == 0, f"client script failed:\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def http(method: str, url: str, body: bytes | None = None, token: str | None = TOKEN, headers=None):
    """Minimal raw HTTP client: (status, headers, parsed JSON or bytes)."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            status, resp_headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, raw = err.code, err.headers, err.read()
    try:
        return status, resp_headers, json.loads(raw) if raw else None
    except ValueError:
        return status, resp_headers, raw


def ndjson(*items: dict) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


# ----------------------------------------------------------------------------------------------------------------


def test_server_lifecycle_and_free_port():
    port = free_port()
    with HubServer(port=port) as server:
        assert server.port == port and server.url == f"http://127.0.0.1:{port}"
        status, _, body = http("GET", f"{server.url}/api/whoami-v2")
        assert (status, body["name"]) == (200, "tester")
    with pytest.raises(OSError):  # stopped: nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_whoami_and_invalid_tokens(hub, tmp_path):
    out = run_client(hub, tmp_path, """
        me = api.whoami()
        emit({
            "name": me["name"], "orgs": [o["name"] for o in me["orgs"]],
            "bad_whoami": error_of(api.whoami, token="hf_wrong"),
            "bad_create": error_of(api.create_repo, "tester/x", token="hf_wrong"),
            "anon_create": error_of(api.create_repo, "tester/x", token=False),
        })
    """)
    assert out["name"] == "tester" and out["orgs"] == ["tiny-org"]
    assert out["bad_whoami"]["status"] == 401 and "Invalid user token" in out["bad_whoami"]["message"]
    assert out["bad_create"]["status"] == 401 and "Invalid credentials" in out["bad_create"]["message"]
    assert out["anon_create"]["status"] == 401
    assert not hub.repo_exists("tester/x")
    whoamis = hub.find_requests("GET", r"^/api/whoami-v2$")
    assert [(r.status, r.user) for r in whoamis] == [(200, "tester"), (401, None)]
    assert "hf_wrong" not in repr(hub.requests) and TOKEN not in repr(hub.requests)


def test_create_repo_exist_ok_private_and_namespaces(hub, tmp_path):
    out = run_client(hub, tmp_path, """
        url = api.create_repo("tester/demo")
        emit({
            "repo_id": url.repo_id, "url": str(url),
            "duplicate": error_of(api.create_repo, "tester/demo"),
            "exist_ok": str(api.create_repo("tester/demo", exist_ok=True)),
            "private_url": str(api.create_repo("tester/secret", private=True)),
            "private_flag": api.model_info("tester/secret").private,
            "public_flag": api.model_info("tester/demo").private,
            "anon_private": error_of(api.model_info, "tester/secret", token=False),
            "other_private": error_of(api.model_info, "tester/secret", token=os.environ["OTHER"]),
            "other_public": api.model_info("tester/demo", token=os.environ["OTHER"]).id,
            "foreign_namespace": error_of(api.create_repo, "other/mine"),
            "org": api.create_repo("tiny-org/shared").repo_id,
            "other_commit": error_of(api.upload_file, path_or_fileobj=b"x", path_in_repo="x.txt",
                                     repo_id="tester/demo", token=os.environ["OTHER"]),
        })
    """.replace('os.environ["OTHER"]', repr(OTHER_TOKEN)))
    assert out["repo_id"] == "tester/demo" and out["url"] == f"{hub.url}/tester/demo"
    assert out["duplicate"]["status"] == 409
    assert out["exist_ok"] == f"{hub.url}/tester/demo"
    assert out["private_flag"] is True and out["public_flag"] is False
    assert "RepositoryNotFoundError" in out["anon_private"]["types"] and out["anon_private"]["status"] == 401
    assert "RepositoryNotFoundError" in out["other_private"]["types"] and out["other_private"]["status"] == 404
    assert out["other_public"] == "tester/demo"
    assert out["foreign_namespace"]["status"] == 403
    assert out["org"] == "tiny-org/shared" and hub.repo_exists("tiny-org/shared")
    assert out["other_commit"]["status"] == 403
    assert [c.title for c in hub.commits("tester/demo")] == ["initial commit"]


def test_upload_lfs_and_regular_files_then_download_by_branch_tag_and_sha(hub, tmp_path):
    weights = os.urandom(4096)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(weights)
    (model_dir / "config.json").write_text('{"hidden": 32}')
    (model_dir / "README.md").write_text("---\nlicense: mit\nlibrary_name: tinyhub\ntags: [mnist]\n---\n# Tiny\n")

    out = run_client(hub, tmp_path, """
        import hashlib
        api.create_repo("tester/tiny")
        first = api.upload_folder(repo_id="tester/tiny", folder_path=WORK / "model", commit_message="v1 weights")
        api.create_tag("tester/tiny", tag="v1")
        second = api.upload_file(path_or_fileobj=b'{"hidden": 64}', path_in_repo="config.json", repo_id="tester/tiny")
        # Same bytes under another name: the LFS object already exists, so nothing is re-uploaded.
        third = api.upload_file(path_or_fileobj=WORK / "model" / "model.safetensors",
                                path_in_repo="copy.safetensors", repo_id="tester/tiny")
        info = api.model_info("tester/tiny", files_metadata=True)
        weights = hf_hub_download("tester/tiny", "model.safetensors", revision="v1")
        meta = get_hf_file_metadata(hf_hub_url("tester/tiny", "model.safetensors"))
        meta_cfg = get_hf_file_metadata(hf_hub_url("tester/tiny", "config.json", revision="v1"))
        emit({
            "first": first.oid, "second": second.oid, "third": third.oid, "commit_url": first.commit_url,
            "sha": info.sha, "card": info.card_data.to_dict(), "tags": info.tags,
            "siblings": {s.rfilename: [s.size, s.blob_id, s.lfs.sha256 if s.lfs else None] for s in info.siblings},
            "files": api.list_repo_files("tester/tiny"),
            "configs": {rev: Path(hf_hub_download("tester/tiny", "config.json", revision=rev)).read_text()
                        for rev in ("main", "v1", first.oid)},
            "weights_sha256": hashlib.sha256(Path(weights).read_bytes()).hexdigest(),
            "meta": [meta.commit_hash, meta.etag, meta.size],
            "meta_cfg": [meta_cfg.commit_hash, meta_cfg.etag, meta_cfg.size],
        })
    """)
    sha = hashlib.sha256(weights).hexdigest()
    assert out["sha"] == out["third"] == hub.head("tester/tiny")
    assert out["commit_url"] == f"{hub.url}/tester/tiny/commit/{out['first']}"
    assert out["files"] == [".gitattributes", "README.md", "config.json", "copy.safetensors", "model.safetensors"]
    assert out["siblings"]["model.safetensors"][0] == 4096 and out["siblings"]["model.safetensors"][2] == sha
    assert out["siblings"]["config.json"] == [14, git_blob_sha1(b'{"hidden": 64}'), None]
    assert out["card"]["license"] == "mit" and "mnist" in out["tags"] and "license:mit" in out["tags"]
    assert out["configs"] == {"main": '{"hidden": 64}', "v1": '{"hidden": 32}', out["first"]: '{"hidden": 32}'}
    assert out["weights_sha256"] == sha
    assert out["meta"] == [out["third"], sha, 4096]
    assert out["meta_cfg"] == [out["first"], git_blob_sha1(b'{"hidden": 32}'), 14]

    # The safetensors file went through LFS (batch + signed PUT + verify), exactly once; text files did not.
    batches = hub.find_requests("POST", r"^/tester/tiny\.git/info/lfs/objects/batch$")
    puts = hub.find_requests("PUT", r"^/__lfs/upload/")
    assert [r.status for r in batches] == [200, 200]
    assert [(r.path, r.status) for r in puts] == [(f"/__lfs/upload/{sha}", 200)]
    assert [r.status for r in hub.find_requests("POST", r"lfs/objects/verify$")] == [200]
    tree = hub.list_files("tester/tiny")
    assert tree["model.safetensors"].lfs_oid == sha and tree["copy.safetensors"].lfs_oid == sha
    assert tree["config.json"].lfs_oid is None and tree["README.md"].lfs_oid is None
    assert hub.read_file("tester/tiny", "model.safetensors", revision="v1") == weights
    assert [c.title for c in hub.commits("tester/tiny")][-2:] == ["v1 weights", "initial commit"]


def test_not_found_errors_map_to_specific_exceptions(hub, tmp_path):
    hub.create_repo("tester/errs")
    head = hub.commit_files("tester/errs", {"a.txt": "a"})
    out = run_client(hub, tmp_path, """
        emit({
            "entry": error_of(hf_hub_download, "tester/errs", "missing.txt"),
            "revision": error_of(hf_hub_download, "tester/errs", "a.txt", revision="nope"),
            "repo": error_of(hf_hub_download, "tester/nope", "a.txt"),
            "repo_anon": error_of(hf_hub_download, "tester/nope", "a.txt", token=False),
            "info_revision": error_of(api.model_info, "tester/errs", revision="nope"),
            "tree_repo": error_of(api.list_repo_files, "tester/nope"),
            "exists": [api.file_exists("tester/errs", "a.txt"), api.file_exists("tester/errs", "zzz"),
                       api.repo_exists("tester/nope"), api.revision_exists("tester/errs", "nope")],
        })
    """)
    assert "EntryNotFoundError" in out["entry"]["types"] and out["entry"]["status"] == 404
    assert "RevisionNotFoundError" in out["revision"]["types"]
    assert "RepositoryNotFoundError" in out["repo"]["types"]
    assert "RepositoryNotFoundError" in out["repo_anon"]["types"]
    assert "RevisionNotFoundError" in out["info_revision"]["types"]
    assert "RepositoryNotFoundError" in out["tree_repo"]["types"]
    assert out["exists"] == [True, False, False, False]
    # The raw headers the client keys on.
    status, headers, _ = http("HEAD", f"{hub.url}/tester/errs/resolve/main/missing.txt")
    assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", head)
    status, headers, _ = http("HEAD", f"{hub.url}/tester/errs/resolve/nope/a.txt")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound") and headers["X-Error-Message"]
    status, headers, _ = http("GET", f"{hub.url}/tester/nope/resolve/main/a.txt", token=None)
    assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")


def test_stale_parent_commit_is_rejected(hub, tmp_path):
    out = run_client(hub, tmp_path, """
        from huggingface_hub import CommitOperationAdd
        api.create_repo("tester/race")
        a = api.upload_file(path_or_fileobj=b"1", path_in_repo="n.txt", repo_id="tester/race")
        b = api.upload_file(path_or_fileobj=b"2", path_in_repo="n.txt", repo_id="tester/race", parent_commit=a.oid)
        stale = error_of(api.create_commit, "tester/race", [CommitOperationAdd("n.txt", b"3")],
                         commit_message="stale", parent_commit=a.oid)
        emit({"a": a.oid, "b": b.oid, "stale": stale})
    """)
    assert out["stale"]["status"] == 412 and "A commit has happened since" in out["stale"]["message"]
    assert hub.head("tester/race") == out["b"]
    assert hub.read_file("tester/race", "n.txt") == b"2"
    assert hub.commits("tester/race")[1].oid == out["a"]


def test_raw_commit_and_lfs_protocol(hub):
    hub.create_repo("tester/raw")
    head = hub.head("tester/raw")
    commit_url = f"{hub.url}/api/models/tester/raw/commit/main"
    header = {"key": "header", "value": {"summary": "raw", "description": ""}}
    ndjson_headers = {"Content-Type": "application/x-ndjson"}
    data = b"never uploaded"
    oid = hashlib.sha256(data).hexdigest()
    lfs_line = {"key": "lfsFile", "value": {"path": "w.safetensors", "algo": "sha256", "oid": oid, "size": len(data)}}

    # An lfsFile line whose object was never uploaded is refused, and the branch does not move.
    status, headers, body = http("POST", commit_url, ndjson(header, lfs_line), headers=ndjson_headers)
    assert status == 400 and "LFS pointer pointed to a file that does not exist" in body["error"]
    assert "w.safetensors" in headers["X-Error-Message"] and hub.head("tester/raw") == head

    # Writes need a token of the namespace owner.
    assert http("POST", commit_url, ndjson(header), token=None)[0] == 401
    assert http("POST", commit_url, ndjson(header), token=OTHER_TOKEN)[0] == 403

    # LFS batch -> signed PUT (content checked against oid and size) -> verify -> commit.
    batch_url = f"{hub.url}/tester/raw.git/info/lfs/objects/batch"
    batch = json.dumps({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                        "objects": [{"oid": oid, "size": len(data)}]}).encode()
    lfs_headers = {"Content-Type": "application/vnd.git-lfs+json", "Accept": "application/vnd.git-lfs+json"}
    status, _, body = http("POST", batch_url, batch, headers=lfs_headers)
    actions = body["objects"][0]["actions"]
    assert status == 200 and set(actions) == {"upload", "verify"}
    assert http("PUT", actions["upload"]["href"], b"tampered bytes", token=None)[0] == 400
    assert http("PUT", actions["upload"]["href"].replace("sig=", "sig=0"), data, token=None)[0] == 403
    assert http("PUT", actions["upload"]["href"], data, token=None)[0] == 200
    verify = json.dumps({"oid": oid, "size": len(data)}).encode()
    assert http("POST", actions["verify"]["href"], verify, headers={"Content-Type": "application/json"})[0] == 200
    status, _, body = http("POST", batch_url, batch, headers=lfs_headers)
    assert status == 200 and "actions" not in body["objects"][0]  # already stored: nothing to do

    regular = {"key": "file", "value": {"path": "notes.md", "encoding": "base64",
                                        "content": base64.b64encode(b"# notes").decode()}}
    status, _, body = http("POST", commit_url, ndjson(header, lfs_line, regular), headers=ndjson_headers)
    assert status == 200 and body["commitOid"] == hub.head("tester/raw")
    assert body["commitUrl"] == f"{hub.url}/tester/raw/commit/{body['commitOid']}"
    assert hub.read_file("tester/raw", "w.safetensors") == data
    assert hub.list_files("tester/raw")["notes.md"].blob_id == git_blob_sha1(b"# notes")

    # Deleting a file that is not there is an EntryNotFound (the client relies on the message).
    gone = {"key": "deletedFile", "value": {"path": "nope.txt"}}
    status, headers, body = http("POST", commit_url, ndjson(header, gone), headers=ndjson_headers)
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert "A file with this name doesn't exist" in body["error"]


def test_injected_failures_are_logged_and_retried(hub, tmp_path):
    hub.create_repo("tester/flaky")
    hub.fail_next("POST", r"/preupload/", status=503)  # huggingface_hub retries this one itself (http_backoff)
    hub.fail_next("POST", r"/commit/main$", status=500)  # the commit POST is not retried: the caller must
    out = run_client(hub, tmp_path, """
        failures = []
        for attempt in range(3):
            try:
                info = api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id="tester/flaky")
                break
            except HfHubHTTPError as err:
                failures.append(err.response.status_code)
        emit({"failures": failures, "oid": info.oid})
    """)
    assert out["failures"] == [500] and out["oid"] == hub.head("tester/flaky")
    preuploads = hub.find_requests("POST", r"/preupload/main$")
    commits = hub.find_requests("POST", r"/commit/main$")
    assert [(r.status, r.injected) for r in preuploads] == [(503, True), (200, False), (200, False)]
    assert [(r.status, r.injected) for r in commits] == [(500, True), (200, False)]
    assert hub.pending_faults == 0
    assert hub.read_file("tester/flaky", "hello.txt") == b"hello"


def test_snapshot_download_then_offline_load_from_cache(hub, tmp_path):
    weights = os.urandom(2048)
    hub.create_repo("tester/snap")
    head = hub.commit_files("tester/snap", {"model.safetensors": weights, "config.json": "{}", "docs/notes.txt": "n"})
    assert hub.list_files("tester/snap")["model.safetensors"].lfs_oid == hashlib.sha256(weights).hexdigest()
    script = """
        folder = Path(snapshot_download("tester/snap"))
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        config = Path(hf_hub_download("tester/snap", "config.json")).read_text()
        emit({"folder": str(folder), "files": files, "config": config,
              "weights": (folder / "model.safetensors").read_bytes().hex(),
              "offline": huggingface_hub.constants.HF_HUB_OFFLINE,
              "missing": error_of(hf_hub_download, "tester/snap", "absent.txt")})
    """
    online = run_client(hub, tmp_path, script)
    assert online["offline"] is False and Path(online["folder"]).name == head
    assert online["files"] == [".gitattributes", "config.json", "docs/notes.txt", "model.safetensors"]
    assert bytes.fromhex(online["weights"]) == weights and online["config"] == "{}"

    served = len(hub.requests)
    offline = run_client(hub, tmp_path, script, offline=True)
    assert len(hub.requests) == served  # not a single request reached the server
    assert offline["offline"] is True
    assert {k: offline[k] for k in ("folder", "files", "config", "weights")} == \
           {k: online[k] for k in ("folder", "files", "config", "weights")}
    assert "LocalEntryNotFoundError" in offline["missing"]["types"]


def test_branches_tags_pull_requests_and_history(hub, tmp_path):
    out = run_client(hub, tmp_path, """
        repo = "tester/refs"
        api.create_repo(repo)
        c1 = api.upload_file(path_or_fileobj=b"main-1", path_in_repo="f.txt", repo_id=repo, commit_message="m1")
        api.create_branch(repo, branch="dev")
        dup_branch = error_of(api.create_branch, repo, branch="dev")
        c2 = api.upload_file(path_or_fileobj=b"dev-1", path_in_repo="f.txt", repo_id=repo, revision="dev",
                             commit_message="d1")
        api.create_branch(repo, branch="old", revision=c1.oid)
        api.create_tag(repo, tag="v0.1", revision=c1.oid)
        api.create_tag(repo, tag="dev-tag", revision="dev")
        dup_tag = error_of(api.create_tag, repo, tag="v0.1")
        api.create_tag(repo, tag="v0.1", exist_ok=True)
        pr = api.upload_file(path_or_fileobj=b"pr-1", path_in_repo="f.txt", repo_id=repo, create_pr=True)
        refs = api.list_repo_refs(repo, include_pull_requests=True)
        read = lambda rev: Path(hf_hub_download(repo, "f.txt", revision=rev)).read_text()
        contents = {rev: read(rev) for rev in ("main", "dev", "old", "v0.1", "dev-tag", pr.pr_revision, c2.oid)}
        history = [c.title for c in api.list_repo_commits(repo, revision="dev")]
        api.delete_tag(repo, tag="dev-tag")
        api.delete_branch(repo, branch="dev")
        refs_after = api.list_repo_refs(repo)
        api.delete_repo(repo)
        emit({
            "c1": c1.oid, "c2": c2.oid, "pr_url": pr.pr_url, "pr_revision": pr.pr_revision, "pr_num": pr.pr_num,
            "dup_branch": dup_branch, "dup_tag": dup_tag, "contents": contents, "history": history,
            "branches": {b.name: b.target_commit for b in refs.branches},
            "tags": {t.name: t.target_commit for t in refs.tags},
            "prs": {p.ref: p.target_commit for p in refs.pull_requests},
            "after": [sorted(b.name for b in refs_after.branches), sorted(t.name for t in refs_after.tags)],
            "exists_after_delete": api.repo_exists(repo),
            "delete_missing_ok": error_of(api.delete_repo, repo, missing_ok=True),
            "delete_missing": error_of(api.delete_repo, repo),
        })
    """)
    assert out["dup_branch"]["status"] == 409 and out["dup_tag"]["status"] == 409
    assert out["pr_url"] == f"{hub.url}/tester/refs/discussions/1"
    assert (out["pr_revision"], out["pr_num"]) == ("refs/pr/1", 1)
    assert out["branches"] == {"main": out["c1"], "dev": out["c2"], "old": out["c1"]}
    assert out["tags"] == {"v0.1": out["c1"], "dev-tag": out["c2"]}
    assert list(out["prs"]) == ["refs/pr/1"]
    assert out["contents"] == {"main": "main-1", "dev": "dev-1", "old": "main-1", "v0.1": "main-1",
                               "dev-tag": "dev-1", "refs/pr/1": "pr-1", out["c2"]: "dev-1"}
    assert out["history"] == ["d1", "m1", "initial commit"]
    assert out["after"] == [["main", "old"], ["v0.1"]]
    assert out["exists_after_delete"] is False and out["delete_missing_ok"] is None
    assert "RepositoryNotFoundError" in out["delete_missing"]["types"]


def test_spaces_need_an_sdk_and_list_the_models_they_use(hub, tmp_path):
    out = run_client(hub, tmp_path, """
        api.create_repo("tester/model")
        url = api.create_repo("tester/demo", repo_type="space", space_sdk="gradio")
        api.upload_file(path_or_fileobj=b"---\\nsdk: gradio\\nmodels:\\n- tester/model\\n---\\n# demo\\n",
                        path_in_repo="README.md", repo_id="tester/demo", repo_type="space")
        info = api.space_info("tester/demo")
        emit({
            "url": str(url), "sdk": info.sdk, "stage": info.runtime.stage, "models": info.models,
            "used_by": api.model_info("tester/model").spaces,
            "bad_sdk": error_of(api.create_repo, "tester/bad", repo_type="space", space_sdk="jupyter"),
            "files": sorted(api.list_repo_files("tester/demo", repo_type="space")),
        })
    """)
    assert out["url"] == f"{hub.url}/spaces/tester/demo" and out["sdk"] == "gradio" and out["stage"] == "BUILDING"
    assert out["models"] == ["tester/model"] and out["used_by"] == ["tester/demo"]
    assert out["bad_sdk"] is not None and out["files"] == [".gitattributes", "README.md"]
    status, _, body = http("POST", f"{hub.url}/api/repos/create", json.dumps({"name": "raw", "type": "space"}).encode(),
                           headers={"Content-Type": "application/json"})
    assert status == 400 and "sdk" in body["error"]  # the client checks first; the server too, like the Hub


def test_collections_as_the_client_sees_them(hub, tmp_path):
    out = run_client(hub, tmp_path, """
        api.create_repo("tester/a"); api.create_repo("tester/b"); api.create_repo("tester/secret", private=True)
        c = api.create_collection("My zoo", description="tiny models")
        same = api.create_collection("My zoo", exists_ok=True)
        api.add_collection_item(c.slug, "tester/a", "model", note="first")
        api.add_collection_item(c.slug, "tester/b", "model")
        before = [[i.item_id, i.position, i.note] for i in api.get_collection(c.slug).items]
        items = api.get_collection(c.slug).items
        api.update_collection_item(c.slug, items[1].item_object_id, position=0, note="now first")
        after = [[i.item_id, i.position, i.note] for i in api.get_collection(c.slug).items]
        api.delete_collection_item(c.slug, api.get_collection(c.slug).items[1].item_object_id)
        emit({
            "slug": c.slug, "url": c.url, "same": same.slug, "before": before, "after": after,
            "left": [i.item_id for i in api.get_collection(c.slug).items],
            "listed": [x.title for x in api.list_collections(owner="tester")],
            "duplicate": error_of(api.create_collection, "My zoo"),
            "twice": error_of(api.add_collection_item, c.slug, "tester/b", "model"),
            "missing_repo": error_of(api.add_collection_item, c.slug, "tester/none", "model"),
            "other_user": error_of(api.add_collection_item, c.slug, "tester/a", "model", token=OTHER),
            "anonymous_view": api.get_collection(c.slug, token=False).title,
            "private": error_of(api.get_collection,
                                api.create_collection("Hidden", private=True).slug, token=OTHER),
            "renamed": api.update_collection_metadata(c.slug, title="Renamed").title,
        })
    """.replace("OTHER)", f"{OTHER_TOKEN!r})"))
    assert out["slug"].startswith("tester/my-zoo-") and out["url"] == f"{hub.url}/collections/{out['slug']}"
    assert out["same"] == out["slug"]
    assert out["before"] == [["tester/a", 0, "first"], ["tester/b", 1, None]]
    assert out["after"] == [["tester/b", 0, "now first"], ["tester/a", 1, "first"]]
    assert out["left"] == ["tester/b"] and out["listed"] == ["My zoo"]
    assert out["duplicate"]["status"] == 409 and out["twice"]["status"] == 409
    assert out["missing_repo"]["status"] == 404 and out["other_user"]["status"] == 403
    assert out["anonymous_view"] == "My zoo" and out["private"]["status"] == 404 and out["renamed"] == "Renamed"
