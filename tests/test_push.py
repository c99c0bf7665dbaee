"""Publishing end to end against the local Hub-compatible server: push, verify, load by others, re-push,
tags, offline cache, retries, conflicts and errors."""

import json
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tinyhub import modeling
from tinyhub.trainer.record import SeedStats, load_run
from conftest import FAST, REPO, SAFETY_TIMEOUT, hub_client

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

LOGITS = """
import json, sys, torch
from tinyhub import modeling
torch.manual_seed(0)
x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
model = modeling.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else {repo!r}, revision={rev!r})
print(json.dumps(model(model.normalize(x)).tolist()))
"""


def _local_logits(run_dir):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    model = modeling.from_pretrained(run_dir / "model")
    with torch.no_grad():
        return model(model.normalize(x)).tolist()


@pytest.fixture(scope="module")
def pushed(hub, tiny_runs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("push")
    r = hub_client(hub, tmp, "push", str(tiny_runs[0]), "--repo-id", "tester/opt6k-mnist", "--tag", "v1")
    assert r.returncode == 0, r.stderr[-3000:]
    return {"tmp": tmp, "out": r.stdout, "run": tiny_runs[0], "repo": "tester/opt6k-mnist"}


def test_push_publishes_one_commit_with_everything(hub, pushed):
    repo = pushed["repo"]
    commits = hub.commits(repo, "main")
    files = hub.list_files(repo, "main")
    assert {"config.json", "model.safetensors", "README.md", "results.json", "images/training_curves.png",
            "images/confusion_matrix.png"} <= set(files)
    assert files["model.safetensors"].lfs_oid is not None  # weights went through Git LFS
    head = hub.head(repo, "main")
    assert f"commit {head}" in pushed["out"] and "Published tester/opt6k-mnist" in pushed["out"]
    # the one tinyhub commit holds every file (the repo's first commit is the server's initial one, if any)
    assert len([c for c in commits if "tinyhub" in c.title]) == 1
    assert hub.read_file(repo, "model.safetensors", "v1") == (pushed["run"] / "model" / "model.safetensors").read_bytes()
    # the token never appears in what the client printed
    assert "hf_test_token" not in pushed["out"]


def test_model_info_and_card_metadata_match_results(hub, pushed):
    code = f"""
import json
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
info = HfApi().model_info({pushed['repo']!r})
card = ModelCard.load({pushed['repo']!r})
_, evals = model_index_to_eval_results(card.data.to_dict()["model-index"])
print(json.dumps({{"files": sorted(s.rfilename for s in info.siblings), "acc": evals[0].metric_value,
                  "tags": card.data.tags, "library": card.data.library_name, "params": card.data.tinyhub["parameters"]}}))
"""
    r = hub_client(hub, pushed["tmp"], code=code)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    results = json.loads((pushed["run"] / "results.json").read_text())
    assert "model.safetensors" in got["files"] and "README.md" in got["files"]
    assert got["acc"] == round(results["final"]["test_accuracy"], 4)
    assert got["params"] == results["parameters"] == 6_132
    assert got["library"] == "tinyhub" and "image-classification" in got["tags"]


def test_fresh_process_loads_identical_model_by_repo_id_and_tag(hub, pushed):
    expected = _local_logits(pushed["run"])
    for rev in (None, "v1", hub.head(pushed["repo"], "main")):
        r = hub_client(hub, pushed["tmp"], code=LOGITS.format(repo=pushed["repo"], rev=rev))
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(r.stdout.strip().splitlines()[-1]) == expected
    # the class-level loader works too
    code = ("import json; from tinyhub.modeling.opt6k import Opt6k; "
            f"m = Opt6k.from_pretrained({pushed['repo']!r}, revision='v1'); print(m.num_parameters())")
    r = hub_client(hub, pushed["tmp"], code=code)
    assert r.stdout.strip().splitlines()[-1] == "6132", r.stderr[-2000:]


def test_offline_load_from_cache(hub, pushed):
    warm = hub_client(hub, pushed["tmp"], code=LOGITS.format(repo=pushed["repo"], rev="v1"))
    assert warm.returncode == 0
    hub.clear_requests()
    offline = hub_client(hub, pushed["tmp"], code=LOGITS.format(repo=pushed["repo"], rev="v1"), offline=True)
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert offline.stdout == warm.stdout
    assert hub.requests == []  # nothing reached the server


def test_card_snippet_runs_as_written(hub, pushed):
    readme = hub.read_file(pushed["repo"], "README.md", "main").decode()
    snippet = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert 'revision="v1"' in snippet
    r = hub_client(hub, pushed["tmp"], code=snippet)  # as printed: no placeholder to fill in
    assert r.returncode == 0, r.stderr[-2000:]
    predicted, true = r.stdout.strip().splitlines()[-2:]
    assert len(eval(predicted.split(":", 1)[1])) == len(eval(true.split(":", 1)[1])) == 8


def test_second_push_without_changes_makes_no_commit(hub, pushed):
    before = hub.head(pushed["repo"], "main")
    r = hub_client(hub, pushed["tmp"], "push", str(pushed["run"]), "--repo-id", pushed["repo"], "--tag", "v1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no new commit" in r.stdout
    assert hub.head(pushed["repo"], "main") == before


def test_hand_edited_readme_survives_a_repush(hub, tiny_runs, tmp_path):
    repo = "tester/edited"
    assert hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo).returncode == 0
    readme = hub.read_file(repo, "README.md", "main").decode()
    edited = readme.replace("<!-- tinyhub:begin", "## Notes from the author\n\nKept across pushes.\n\n<!-- tinyhub:begin")
    hub.commit_files(repo, {"README.md": edited}, "hand edit", "main")
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[1]), "--repo-id", repo)
    assert r.returncode == 0, r.stderr[-2000:]
    new = hub.read_file(repo, "README.md", "main").decode()
    assert "Kept across pushes." in new
    seed1 = json.loads((tiny_runs[1] / "results.json").read_text())["final"]["test_accuracy"]
    assert f"{seed1:.2f}%" in new


def test_transient_500_is_retried_and_repo_is_consistent(hub, tiny_runs, tmp_path):
    repo = "tester/flaky"
    hub.fail_next("POST", rf"/api/models/{repo}/commit/", status=500, times=1)
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo)
    assert r.returncode == 0, r.stderr[-2000:]
    assert any(x.injected and x.status == 500 for x in hub.find_requests("POST", "/commit/"))
    assert len([c for c in hub.commits(repo, "main") if "tinyhub" in c.title]) == 1
    weights = hub.read_file(repo, "model.safetensors", "main")
    assert weights == (tiny_runs[0] / "model" / "model.safetensors").read_bytes()


def test_persistent_failure_publishes_nothing(hub, tiny_runs, tmp_path):
    repo = "tester/down"
    hub.create_repo(repo)
    before = hub.head(repo, "main")
    files_before = set(hub.list_files(repo, "main"))
    hub.fail_next("POST", rf"/api/models/{repo}/commit/", status=503, times=20)
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo)
    hub.clear_faults()
    assert r.returncode == 1 and "503" in r.stderr  # a run-time failure, not a usage error
    assert hub.head(repo, "main") == before and set(hub.list_files(repo, "main")) == files_before


def test_concurrent_change_is_not_overwritten(hub, tiny_runs, tmp_path):
    repo = "tester/busy"
    assert hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo).returncode == 0
    # Our next commit attempt is held for a moment (then fails with 503); meanwhile someone else commits.
    hub.fail_next("POST", rf"/api/models/{repo}/commit/", status=503, times=1, delay=1.5)
    env = hub.client_env(tmp_path / "hf_home")
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "push.py"), str(tiny_runs[1]), "--repo-id", repo],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 1800  # a safety net
    while hub.pending_faults and time.time() < deadline:
        time.sleep(0.05)
    theirs = hub.commit_files(repo, {"NOTES.md": "their change"}, "someone else", "main")
    out, err = proc.communicate(timeout=SAFETY_TIMEOUT)
    assert proc.returncode == 1, out + err
    assert "changed while pushing" in err
    assert hub.head(repo, "main") == theirs  # their commit stays on top, untouched
    assert hub.read_file(repo, "NOTES.md", "main") == b"their change"


def test_bad_token_is_a_clear_error(hub, tiny_runs, tmp_path):
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", "tester/nope", token="hf_wrong")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "401" in r.stderr and "HF_TOKEN" in r.stderr and "hf_wrong" not in r.stderr + r.stdout
    assert not hub.repo_exists("tester/nope")


def test_branch_and_pull_request(hub, tiny_runs, tmp_path):
    repo = "tester/branches"
    assert hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo).returncode == 0
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[1]), "--repo-id", repo, "--branch", "seed1",
                   "--commit-message", "seed 1 weights")
    assert r.returncode == 0, r.stderr[-2000:]
    assert hub.read_file(repo, "model.safetensors", "seed1") == \
        (tiny_runs[1] / "model" / "model.safetensors").read_bytes()
    assert hub.commits(repo, "seed1")[0].title.startswith("seed 1 weights")
    main_weights = hub.read_file(repo, "model.safetensors", "main")
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[1]), "--repo-id", repo, "--create-pr")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "pull request" in r.stdout
    assert hub.read_file(repo, "model.safetensors", "main") == main_weights  # main untouched until merged


def test_push_all_publishes_the_zoo(hub, tiny_runs, tmp_path):
    runs_dir = tiny_runs[0].parent
    zoo = tmp_path / "ZOO.md"
    r = hub_client(hub, tmp_path, "push", "--all", str(runs_dir), "--namespace", "tester", "--zoo-out", str(zoo))
    assert r.returncode == 0, r.stderr[-2000:]
    table = zoo.read_text()
    assert "| opt6k | 6,132 |" in table and "tester/tinyhub-opt6k-mnist" in table and "| 2 |" in table
    readme = hub.read_file("tester/tinyhub-opt6k-mnist", "README.md", "main").decode()
    assert "(mean ± std, n=2)" in readme
    # The model-index entry says what its value is: the mean of 2 seeds, with their spread.
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    _, (result,) = model_index_to_eval_results(ModelCard(readme).data.to_dict()["model-index"])
    stats = SeedStats.of_records([load_run(run) for run in tiny_runs])
    assert result.metric_value == round(stats.mean, 4)
    assert result.metric_name == f"Test accuracy (%), mean of 2 seeds (± {stats.std:.2f} std)"
    assert result.metric_args == {"seeds": 2, "std": round(stats.std, 4)}


def _collection(hub, tmp_path, title="tinyhub zoo"):
    code = (f"import json\nfrom huggingface_hub import HfApi\napi = HfApi()\n"
            f"(c,) = [c for c in api.list_collections(owner='tester') if c.title == {title!r}]\n"
            "c = api.get_collection(c.slug)\n"
            "print(json.dumps([[i.item_id, i.item_type, i.position, i.note] for i in c.items]))\n")
    r = hub_client(hub, tmp_path, code=code)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_push_all_keeps_a_collection_smallest_first_and_a_rerun_changes_nothing(hub, mnist_dir, tiny_runs,
                                                                              tmp_path):
    from tinyhub import trainer

    runs_dir = tmp_path / "runs"
    for run in tiny_runs:
        shutil.copytree(run, runs_dir / run.name, ignore=shutil.ignore_patterns("checkpoints"))
    cfg = trainer.load_config([*FAST, "model=gap2k", "training.epochs=1", "data.subset=500", f"data.dir={mnist_dir}",
                               f"run.dir={runs_dir / 'gap2k-s0'}"])
    trainer.train(cfg)
    title = "tiny zoo for the collection test"
    r = hub_client(hub, tmp_path, "push", "--all", str(runs_dir), "--namespace", "tester", "--collection", title)
    assert r.returncode == 0, r.stderr[-2000:]
    items = _collection(hub, tmp_path, title)
    opt6k = SeedStats.of_records([load_run(run) for run in tiny_runs])
    gap2k = load_run(runs_dir / "gap2k-s0")
    assert [i[:3] for i in items] == [["tester/tinyhub-gap2k-mnist", "model", 0],  # 1,956 parameters first
                                      ["tester/tinyhub-opt6k-mnist", "model", 1]]
    assert items[0][3] == f"1,956 parameters · {gap2k.final.test_accuracy:.2f}% test accuracy on MNIST (final epoch)."
    assert items[1][3] == (f"6,132 parameters · {opt6k.text()} test accuracy on MNIST, mean ± std of 2 seeds "
                           "(final epoch).")
    assert title in (runs_dir / "ZOO.md").read_text()
    # Someone reorders the collection and edits a note: the next push puts back what tinyhub says, and only that.
    fix = (f"from huggingface_hub import HfApi\napi = HfApi()\n"
           f"(c,) = [c for c in api.list_collections(owner='tester') if c.title == {title!r}]\n"
           "c = api.get_collection(c.slug)\n"
           "api.update_collection_item(c.slug, c.items[1].item_object_id, position=0, note='hand-edited')\n")
    assert hub_client(hub, tmp_path, code=fix).returncode == 0
    assert hub_client(hub, tmp_path, "push", "--all", str(runs_dir), "--namespace", "tester",
                      "--collection", title).returncode == 0
    assert _collection(hub, tmp_path, title) == items
    # Nothing changed: a third push writes nothing (a repo creation answered "exists" is all it sends).
    hub.clear_requests()
    assert hub_client(hub, tmp_path, "push", "--all", str(runs_dir), "--namespace", "tester",
                      "--collection", title).returncode == 0
    writes = [(q.method, q.path, q.status) for q in hub.requests if q.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert writes and all(path == "/api/repos/create" and status == 409 for _, path, status in writes), writes
    assert _collection(hub, tmp_path, title) == items


def test_pickle_only_repo_is_refused(hub, tmp_path):
    buf = __import__("io").BytesIO()
    torch.save(modeling.create_model("opt6k").state_dict(), buf)
    cfg = modeling.create_model("opt6k")
    cfg.save_pretrained(tmp_path / "m")
    hub.create_repo("tester/pickled")
    hub.commit_files("tester/pickled", {"config.json": (tmp_path / "m" / "config.json").read_text(),
                                        "pytorch_model.bin": buf.getvalue()}, "pickle only", "main")
    code = ("from tinyhub import modeling\ntry:\n    modeling.from_pretrained('tester/pickled')\n"
            "except modeling.PickleRefusedError as e:\n    print('REFUSED', e)\n")
    r = hub_client(hub, tmp_path, code=code)
    assert "REFUSED" in r.stdout and "pytorch_model.bin" in r.stdout, r.stderr[-2000:]


def test_pushed_weights_match_the_run(hub, pushed, tmp_path):
    served = tmp_path / "served.safetensors"
    served.write_bytes(hub.read_file(pushed["repo"], "model.safetensors", "v1"))
    a, b = load_file(served), load_file(pushed["run"] / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_dry_run_of_all_runs_never_contacts_the_hub(hub, tiny_runs, tmp_path):
    hub.clear_requests()
    out = tmp_path / "staged"
    r = hub_client(hub, tmp_path, "push", "--all", str(tiny_runs[0].parent), "--namespace", "tester",
                   "--dry-run", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing was uploaded" in r.stdout
    staged = out / "tinyhub-opt6k-mnist"
    assert (staged / "README.md").is_file() and (staged / "model.safetensors").is_file()
    assert hub.requests == []  # not one request, let alone a write


def test_failed_verification_says_what_was_published(hub, tiny_runs, tmp_path):
    repo = "tester/verify-fails"
    hub.fail_next(None, rf"/{repo}/resolve/[^/]+/model\.safetensors", status=500, times=50)
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo)
    hub.clear_faults()
    head = hub.head(repo, "main")
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"published {repo} at commit {head}" in r.stderr and "could not be verified" in r.stderr
    assert "Nothing was published" not in r.stderr and "Traceback" not in r.stderr
    assert "model.safetensors" in hub.list_files(repo, "main")


def test_a_tag_that_names_other_weights_is_refused_or_moved_on_request(hub, tiny_runs, tmp_path):
    """Another model pushed to the same repo with the same --tag: refused before anything is committed (the
    card would send readers to the tag, and find other weights); with --move-tag the tag follows the push and
    serves exactly the weights the card describes."""
    repo = "tester/opt6k-tags"
    first = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo, "--tag", "v1")
    assert first.returncode == 0, first.stderr[-3000:]
    v1 = hub.head(repo, "main")
    again = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo, "--tag", "v1")
    assert again.returncode == 0 and hub.head(repo, "main") == v1  # the same run again: nothing to refuse
    other = hub_client(hub, tmp_path, "push", str(tiny_runs[1]), "--repo-id", repo, "--tag", "v1")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert f"already names commit {v1}" in other.stderr and "--move-tag" in other.stderr
    assert hub.head(repo, "main") == v1  # nothing committed
    moved = hub_client(hub, tmp_path, "push", str(tiny_runs[1]), "--repo-id", repo, "--tag", "v1", "--move-tag")
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert hub.head(repo, "main") != v1
    weights = (tiny_runs[1] / "model" / "model.safetensors").read_bytes()
    assert hub.read_file(repo, "model.safetensors", "v1") == weights
    assert 'revision="v1"' in hub.read_file(repo, "README.md", "main").decode()


def test_an_answer_whose_etag_is_not_a_hash_writes_nothing(hub, pushed, tmp_path):
    """A hostile or intercepted endpoint answering a file with an ETag such as `../../x`: huggingface_hub would make
    a cache path of it. tinyhub's client refuses the answer first: one line, nothing written outside the cache."""
    cache = tmp_path / "hf_home"
    hub.fail_next(None, r"/resolve/", status=200, times=20,
                  headers={"ETag": '"../../../escaped"', "X-Linked-Etag": '"../../../escaped"',
                           "X-Repo-Commit": "0" * 40})
    try:
        r = hub_client(hub, tmp_path, "evaluate", f"{pushed['repo']}@v1", "--cpu")
    finally:
        hub.clear_faults()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "ETag header that is not a plain hash" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("escaped")) and not list(cache.parent.rglob("escaped"))
