"""What a careless user or a malicious uploader can hand tinyhub, kept as tests: output folders that are not
tinyhub's, and run folders whose files are links, hard links or lie outside the run. A dry run never deletes a
byte it did not write; a push never uploads a byte from outside the run folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, SAFETY_TIMEOUT, TINYHUB, hub_client, run_cli
from tinyhub.utils.files import OUTPUT_MARKER


def _listing(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes() if p.is_file() else None)
                  for p in folder.rglob("*"))


@pytest.fixture
def run(tiny_runs, tmp_path):
    """A copy of a finished run the test may tamper with."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_runs[0], copy)
    return copy


def _dry_run(hub, tmp_path, run_dir, *out):
    return hub_client(hub, tmp_path, "push", str(run_dir), "--repo-id", "tester/hostile", "--dry-run", *map(str, out))


# ---- output folders: only new, empty or tinyhub's own are written ----
def test_a_dry_run_never_replaces_a_folder_of_the_users(hub, run, tmp_path):
    mine = tmp_path / "my_documents"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    (tmp_path / "my_documents.partial").mkdir()  # a folder that merely has the name a temporary one could take
    (tmp_path / "my_documents.partial" / "notes.txt").write_text("mine too")
    r = _dry_run(hub, tmp_path, run, mine)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "already holds files that tinyhub did not write" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1
    assert _listing(mine) == [("thesis.txt", b"years of work")]
    assert (tmp_path / "my_documents.partial" / "notes.txt").read_text() == "mine too"


def test_a_dry_run_into_the_run_itself_is_refused_and_the_run_kept(hub, run, tmp_path):
    before = _listing(run)
    r = _dry_run(hub, tmp_path, run, run)
    assert r.returncode == 2 and "tinyhub did not write" in r.stderr, r.stderr[-2000:]
    assert _listing(run) == before


def test_a_dry_run_replaces_its_own_earlier_folder_and_a_push_leaves_the_marker_behind(hub, run, tmp_path):
    out = tmp_path / "staged"
    first = _dry_run(hub, tmp_path, run, out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / OUTPUT_MARKER).is_file() and (out / "model.safetensors").is_file()
    (out / "stale.txt").write_text("left by the first dry run's reader")
    second = _dry_run(hub, tmp_path, run, out)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not (out / "stale.txt").exists() and (out / "README.md").is_file()
    assert OUTPUT_MARKER not in second.stdout  # the listing is what would be uploaded
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".partial", ".old"))]  # no leftovers


def test_an_empty_folder_is_a_fine_target_and_a_file_is_not(hub, run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _dry_run(hub, tmp_path, run, empty).returncode == 0
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    r = _dry_run(hub, tmp_path, run, a_file)
    assert r.returncode == 2 and a_file.read_text() == "keep me"


@pytest.mark.e2e
def test_push_all_dry_run_refuses_a_folder_of_the_users(hub, tiny_runs, tmp_path):
    mine = tmp_path / "out"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    r = hub_client(hub, tmp_path, "push", "--all", str(tiny_runs[0].parent), "--namespace", "tester",
                   "--dry-run", str(mine))
    assert r.returncode == 2 and (mine / "keep.txt").read_text() == "x", r.stderr[-2000:]
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt"]


# ---- the files a push uploads: plain files of the run only ----
def _symlink(run, rel, target):
    (run / rel).unlink()
    (run / rel).symlink_to(target)


def _hardlink(run, rel, target):
    (run / rel).unlink()
    os.link(target, run / rel)


def _fifo(run, rel):  # a special file: opening it for reading would wait for a writer
    (run / rel).unlink()
    os.mkfifo(run / rel)


def _linked_images_folder(run, target):
    private = target.parent / "private_images"
    shutil.copytree(run / "images", private)
    shutil.rmtree(run / "images")
    (run / "images").symlink_to(private)


TAMPERINGS = {
    "image-symlink": lambda run, secret: _symlink(run, "images/confusion_matrix.png", secret),
    "examples-symlink": lambda run, secret: _symlink(run, "examples.safetensors", secret),
    "weights-symlink": lambda run, secret: _symlink(run, "model/model.safetensors", secret),
    "image-hardlink": lambda run, secret: _hardlink(run, "images/training_curves.png", secret),
    "images-folder-symlink": lambda run, secret: _linked_images_folder(run, secret),
    "image-fifo": lambda run, secret: _fifo(run, "images/confusion_matrix.png"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERINGS))
def test_staging_copies_no_linked_or_special_file(run, tmp_path, kind):
    from tinyhub.cards.publish import UnsafeRunFileError, stage_folder

    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    TAMPERINGS[kind](run, secret)
    out = tmp_path / "staged"
    with pytest.raises(UnsafeRunFileError, match="tinyhub uploads only the run's own files"):
        stage_folder(run, out, repo_id="tester/hostile", revision="main")
    assert not out.exists() and secret.read_text() == "PRIVATE KEY"


def test_a_dry_run_of_a_tampered_run_is_one_error_line(hub, run, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    TAMPERINGS["image-symlink"](run, secret)
    r = _dry_run(hub, tmp_path, run, tmp_path / "staged")
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stderr.startswith("error:") and "confusion_matrix.png" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "staged").exists()


@pytest.mark.e2e
def test_a_push_with_a_linked_log_uploads_nothing(hub, run, tmp_path):
    secret = tmp_path / "credentials"
    secret.write_text("PRIVATE TOKEN")
    logs = run / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "events.out.tfevents.0").symlink_to(secret)
    hub.clear_requests()
    r = hub_client(hub, tmp_path, "push", str(run), "--repo-id", "tester/leaky", "--include-logs")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "events.out.tfevents.0" in r.stderr and "tinyhub uploads only the run's own files" in r.stderr
    assert hub.requests == []  # refused before the first request: no repo, no commit, no byte


@pytest.mark.e2e
def test_a_push_of_the_honest_run_still_works_after_a_dry_run(hub, run, tmp_path):
    assert _dry_run(hub, tmp_path, run, tmp_path / "staged").returncode == 0
    r = hub_client(hub, tmp_path, "push", str(run), "--repo-id", "tester/honest")
    assert r.returncode == 0, r.stderr[-2000:]
    files = hub.list_files("tester/honest", "main")
    assert "model.safetensors" in files and OUTPUT_MARKER not in files


def test_damaged_weights_are_one_error_line_not_a_traceback(hub, run, tmp_path):
    (run / "model" / "model.safetensors").write_bytes(b"\xff" * 64)
    r = _dry_run(hub, tmp_path, run, tmp_path / "staged")
    assert r.returncode == 1 and "cannot be read as safetensors" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and not (tmp_path / "staged").exists()


# ---- a Hub that accepts connections and never answers ----
class SilentHub:
    """A TCP server that accepts every connection and never says a word; it counts the connections."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections, self._held = 0, []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)
            self._answer(conn)

    def _answer(self, conn):
        """Says nothing."""

    def close(self):
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_hub():
    server = SilentHub()
    yield server
    server.close()


def _against(silent_hub, tmp_path, *args):
    env = {**os.environ, "HF_ENDPOINT": silent_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_TOKEN": "hf_test_token", "TINYHUB_HUB_TIMEOUT": "2", "HF_HUB_DISABLE_TELEMETRY": "1"}
    # The timeout is a safety net: a command that hangs fails the test here instead of waiting for ever.
    return subprocess.run([TINYHUB, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=SAFETY_TIMEOUT)


@pytest.mark.e2e
@pytest.mark.parametrize("what", ["evaluate", "push", "train"])
def test_a_silent_hub_ends_each_command_with_one_line(silent_hub, tiny_runs, mnist_dir, tmp_path, what):
    args = {"evaluate": ["evaluate", "tester/model4-mnist", "--data-dir", str(mnist_dir)],
            "push": ["push", str(tiny_runs[0]), "--repo-id", "tester/silent"],
            "train": ["train", "data.source=hub", "data.dataset=tester/digits", "training.epochs=1",
                      f"run.dir={tmp_path / 'run'}"]}[what]
    r = _against(silent_hub, tmp_path, *args)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    if what != "train":  # `datasets` words its own failure; the others name the silent Hub and the fix
        assert "cannot be reached" in lines[0] and "TINYHUB_HUB_TIMEOUT" in lines[0]
    # asked once per request kind, not again and again: huggingface_hub alone retried each request five times
    assert silent_hub.connections <= 3, silent_hub.connections


# ---- a push ends consistent, or says exactly what is live ----
@pytest.mark.e2e
def test_a_tag_that_fails_after_the_commit_is_named_and_a_rerun_finishes(hub, tiny_runs, tmp_path):
    repo = "tester/tag-fails"
    hub.fail_next("POST", rf"/api/models/{repo}/tag/", status=500, times=20)
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo, "--tag", "v1")
    hub.clear_faults()
    head = hub.head(repo, "main")
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"published {repo} at commit {head}" in r.stderr and "tag 'v1'" in r.stderr
    assert "Run the same command again" in r.stderr and "Traceback" not in r.stderr
    again = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo, "--tag", "v1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert hub.head(repo, "main") == head  # no second commit: the tag was added to the published one
    assert hub.read_file(repo, "model.safetensors", "v1") == hub.read_file(repo, "model.safetensors", head)


@pytest.mark.e2e
def test_sigterm_during_the_commit_cleans_up_and_says_what_the_repo_holds(hub, tiny_runs, tmp_path):
    repo = "tester/killed"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # the commit's answer is held back for a few seconds (under the Hub timeout), then refused
    hub.fail_next("POST", rf"/api/models/{repo}/commit/", status=500, times=1, delay=8)
    env = {**hub.client_env(tmp_path / "hf_home", token="hf_test_token"), "TMPDIR": str(scratch)}
    proc = subprocess.Popen([TINYHUB, "push", str(tiny_runs[0]), "--repo-id", repo], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while hub.pending_faults:  # the server holds the commit request: the push is committing now
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=SAFETY_TIMEOUT)
    finally:
        proc.kill()
        hub.clear_faults()
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted while committing to {repo}@main" in err and "Run the same command again" in err
    assert "Traceback" not in err
    assert not list(scratch.glob("tinyhub-push-*"))  # its temporary folder is gone


# ---- a full disk and odd data end in one line ----
def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_at_a_checkpoint_keeps_the_last_good_one_and_says_so(monkeypatch, mnist_dir, tmp_path):
    from tinyhub import trainer
    from tinyhub.utils.files import DiskFullError
    from tinyhub.trainer import checkpoint

    calls = {"n": 0}
    real = checkpoint._fsync_tree

    def second_fails(folder):
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2's checkpoint: the disk fills up half-way through writing it
            _enospc()
        real(folder)

    monkeypatch.setattr(checkpoint, "_fsync_tree", second_fails)
    run = tmp_path / "run"
    cfg = trainer.load_config([*FAST, "model=opt6k", "training.epochs=3", "data.subset=500", f"data.dir={mnist_dir}",
                               f"run.dir={run}", "training.keep_checkpoints=5"])
    with pytest.raises(DiskFullError) as caught:
        trainer.train(cfg)
    message = str(caught.value)
    assert "the disk is full" in message and "checkpoint of epoch 2" in message and str(run / "checkpoints") in message
    assert "training.resume=auto" in message
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert left == ["epoch_1"], left  # no half-written .epoch_2.tmp, and the good one kept
    assert checkpoint.read_trainer_state(run / "checkpoints" / "epoch_1")["epoch"] == 1


def test_a_full_disk_while_saving_the_model_leaves_no_partial_model(monkeypatch, mnist_dir, tmp_path):
    from tinyhub import trainer
    from tinyhub.utils.files import DiskFullError
    from tinyhub.modeling import TinyClassifier

    def torch_writer_fails(self, folder, **kwargs):  # torch's C++ writer reports ENOSPC like this
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(TinyClassifier, "save_pretrained", torch_writer_fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    run = tmp_path / "run"
    cfg = trainer.load_config([*FAST, "model=opt6k", "training.epochs=1", "data.subset=300", f"data.dir={mnist_dir}",
                               f"run.dir={run}"])
    with pytest.raises(DiskFullError, match=r"writing the trained model .* 4,096 bytes free; it needs about"):
        trainer.train(cfg)
    assert not (run / ".model.tmp").exists() and not (run / "model").exists()
    assert (run / "checkpoints" / "epoch_1").is_dir()


def test_any_command_reports_a_full_disk_in_one_line(capsys):
    from tinyhub.commands._common import run_reporting

    def body():
        raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                           "\"No space left on device\" })")  # safetensors' Rust writer

    assert run_reporting(body) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the disk is full") and err.count("\n") == 1


def test_an_idx_split_without_images_is_refused_by_name(tmp_path):
    from conftest import _write_idx
    from tinyhub.trainer import DataError, load_dataset_splits

    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((0, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((0,)))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, (20,)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz holds no images"):
        load_dataset_splits(source="local", dir=str(tmp_path), name="empty", cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("kind, message", [
    ("nan-0-255", r"image 1 has 1 pixel\(s\) that are not finite"),
    ("nan-0-1", r"image 1 has 1 pixel\(s\) that are not finite"),
    ("inf-0-255", r"image 1 has 1 pixel\(s\) that are not finite"),
    ("0-1", r"floats in \[0, 1\]; tinyhub reads 8-bit pixels"),
])
def test_float_images_that_a_cast_would_change_are_refused(tmp_path, kind, message):
    datasets = pytest.importorskip("datasets")
    from tinyhub.trainer import DataError, load_dataset_splits

    rng = np.random.default_rng(0)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})

    def part(n):
        images = rng.uniform(0, 255, (n, 16, 16)).astype(np.float32)
        if kind.endswith("0-1"):
            images /= 255
        if kind.startswith(("nan", "inf")):
            images[1, 3, 4] = np.nan if kind.startswith("nan") else np.inf
        return datasets.Dataset.from_dict({"image": list(images), "label": (np.arange(n) % 2).tolist()},
                                          features=features)

    datasets.DatasetDict({"train": part(30), "test": part(10)}).save_to_disk(tmp_path / "floats")
    with pytest.raises(DataError, match=message):
        load_dataset_splits(source="hub", dataset=str(tmp_path / "floats"), name="floats",
                            cache_dir=str(tmp_path / "cache"))


def test_float_images_of_0_to_255_still_train_as_their_pixels(tmp_path):
    datasets = pytest.importorskip("datasets")
    from tinyhub.trainer import load_dataset_splits

    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16)).astype(np.float32)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    part = datasets.Dataset.from_dict({"image": list(images), "label": [0, 1] * 6}, features=features)
    datasets.DatasetDict({"train": part, "test": part}).save_to_disk(tmp_path / "floats")
    splits = load_dataset_splits(source="hub", dataset=str(tmp_path / "floats"), name="floats",
                                 cache_dir=str(tmp_path / "cache"))
    assert splits.train_images.dtype == torch.uint8
    assert torch.equal(splits.train_images[:, 0], torch.from_numpy(images.astype(np.uint8)))


@pytest.mark.e2e
def test_a_damaged_random_state_file_makes_resume_name_it(mnist_dir, tmp_path):
    run = tmp_path / "run"
    args = [*FAST, f"data.dir={mnist_dir}", "data.subset=300", "training.epochs=2", f"run.dir={run}"]
    assert run_cli("train", "model=opt6k", *args).returncode == 0
    (run / "results.json").unlink()  # as if killed after its last checkpoint
    states = run / "checkpoints" / "epoch_2" / "random_states_0.pkl"
    states.write_bytes(b"not a pickle at all")
    r = run_cli("train", "model=opt6k", *args, f"training.resume={run / 'checkpoints' / 'epoch_2'}")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "random_states_0.pkl cannot be read" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["compare", "evaluate"])
def test_compare_and_evaluate_never_write_into_a_folder_of_the_users(tiny_runs, mnist_dir, tmp_path, command):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "comparison.html").write_text("my own page")
    (mine / "notes.txt").write_text("keep")
    args = {"compare": ["compare", str(tiny_runs[0]), str(tiny_runs[1]), "--out", str(mine)],
            "evaluate": ["evaluate", str(tiny_runs[0]), "--output-dir", str(mine), "--data-dir", str(mnist_dir)]}
    r = run_cli(*args[command])
    assert r.returncode == 2 and "tinyhub did not write" in r.stderr, r.stderr[-2000:]
    assert (mine / "comparison.html").read_text() == "my own page" and sorted(os.listdir(mine)) == [
        "comparison.html", "notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    again = run_cli(*[str(empty) if a == str(mine) else a for a in args[command]])
    assert again.returncode == 0, again.stderr[-2000:]
    assert (empty / OUTPUT_MARKER).is_file()  # tinyhub's from now on: a later run may write there again


def test_a_full_disk_while_writing_the_results_keeps_the_model_and_says_how_to_finish(monkeypatch, mnist_dir,
                                                                                     tmp_path):
    from tinyhub import trainer
    from tinyhub.utils.files import DiskFullError
    from tinyhub.trainer import engine

    monkeypatch.setattr(engine, "write_run_report", _enospc)
    run = tmp_path / "run"
    cfg = trainer.load_config([*FAST, "model=opt6k", "training.epochs=1", "data.subset=300", f"data.dir={mnist_dir}",
                               f"run.dir={run}"])
    with pytest.raises(DiskFullError, match=r"writing the run's results .* training.resume=auto"):
        trainer.train(cfg)
    assert (run / "model" / "model.safetensors").is_file() and not (run / "results.json").exists()
    assert not list(run.glob("*.tmp")) and (run / "checkpoints" / "epoch_1").is_dir()


def test_a_full_disk_for_the_dataset_cache_only_costs_the_cache(monkeypatch, mnist_dir, tmp_path, caplog):
    from tinyhub.trainer import load_dataset_splits
    from tinyhub.trainer.data import common as data_common

    monkeypatch.setattr(data_common, "save_file", _enospc)
    cache = tmp_path / "cache"
    splits = load_dataset_splits(source="local", dir=str(mnist_dir), cache_dir=str(cache), subset=100)
    assert len(splits.train_images) == 100
    assert "the disk is full" in caplog.text and "Training goes on without the cache" in caplog.text
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no half-written cache or temporary file


@pytest.mark.e2e
def test_a_strangers_config_that_implies_a_huge_input_stays_small(tmp_path):
    """config.json saying input_size 32,000: the README's first snippet (from_pretrained, then summary) is one
    error, and the process grows by far less than 1 GB (the model would need ~29 GB)."""
    import subprocess
    import sys

    model = tmp_path / "model"
    from tinyhub import modeling

    modeling.create_model("model4").save_pretrained(model)  # its budget-scaled limit on sizes is 32,000
    config = json.loads((model / "config.json").read_text())
    config["input_size"] = 32_000
    (model / "config.json").write_text(json.dumps(config))
    code = ("import resource, sys, tinyhub\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n"
            f"    print(tinyhub.summary(tinyhub.from_pretrained({str(model)!r})))\n"
            "except Exception as e:\n"
            "    print('ERROR', type(e).__name__, str(e))\n"
            "print('GROWTH_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("ERROR") and "input_size=32,000" in lines[0] and len(lines[0]) <= 300, r.stdout
    assert int(lines[-1].split()[1]) < 1_000_000, lines[-1]  # KB: under 1 GB above the interpreter with tinyhub


class DripHub(SilentHub):
    """A server that answers every request one byte per second, for ever: each read gets a byte in time."""

    def _answer(self, conn):
        threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        try:
            for byte in iter(lambda: b"H", None):
                conn.sendall(byte)
                time.sleep(1.0)
        except OSError:
            return


@pytest.mark.e2e
def test_a_hub_that_drips_one_byte_at_a_time_ends_within_the_deadline(tiny_runs, tmp_path):
    """One byte a second never lets a 2-second read timeout fire; the request's deadline (6 x 2 s) ends it, in
    one line, and the host is not asked again and again."""
    drip = DripHub()
    try:
        r = _against(drip, tmp_path, "evaluate", "tester/model4-mnist")
    finally:
        drip.close()
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr[-2000:]
    assert "TINYHUB_HUB_TIMEOUT" in lines[0] and drip.connections <= 3


def test_json_nested_a_hundred_thousand_deep_is_one_line(tmp_path):
    """config.json and results.json nested 100,000 deep: Python's JSON reader recurses out; tinyhub says so in one
    line instead of a 44-line RecursionError."""
    from tinyhub import modeling
    from tinyhub.trainer.record import RunRecordError, load_run

    deep = "[" * 100_000 + "]" * 100_000
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(deep)
    with pytest.raises(modeling.ModelConfigError) as refused:
        modeling.from_pretrained(model)
    assert "nests deeper" in str(refused.value) and len(str(refused.value)) <= 300
    (tmp_path / "results.json").write_text(deep)
    with pytest.raises(RunRecordError, match="nests deeper"):
        load_run(tmp_path)


def test_a_weights_header_naming_a_million_tensors_is_one_short_line(tmp_path):
    from safetensors.torch import save_file

    from tinyhub import modeling

    model = tmp_path / "model"
    modeling.create_model("gap2k").save_pretrained(model)
    import torch

    save_file({f"t{i}": torch.zeros(1) for i in range(200_000)}, str(model / "model.safetensors"))
    with pytest.raises(modeling.WeightsMismatchError) as refused:
        modeling.from_pretrained(model)
    message = str(refused.value)
    assert "\n" not in message and len(message) <= 1000 and "199,997 more" in message
