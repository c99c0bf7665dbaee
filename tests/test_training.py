"""The training engine end to end on small subsets: learning, run directory, CLI, multi-process, resume."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from safetensors.torch import load_file

from tinyhub import modeling
from tinyhub import trainer
from tinyhub.trainer.schema import typed_config
from tinyhub.trainer import checkpoint as ckpt
from conftest import FAST, REPO, TINYHUB, run_cli, run_cli_many, run_script


def _train(mnist_dir, tmp_path, *overrides, name="run"):
    cfg = trainer.load_config([*FAST, f"data.dir={mnist_dir}", f"run.dir={tmp_path / name}", *overrides])
    return trainer.train(cfg)


def _reevaluate(model_dir, mnist_dir):
    """Independent accuracy of a saved model on the test split (no engine code involved)."""
    model = modeling.from_pretrained(model_dir)
    splits = trainer.load_dataset_splits(dir=str(mnist_dir))
    with torch.no_grad():
        pred = torch.cat([model(model.normalize(x)).argmax(1) for x in splits.test_images.split(1000)])
    return int((pred == splits.test_labels).sum())


@pytest.fixture(scope="module")
def small_run(mnist_dir, tmp_path_factory):
    return _train(mnist_dir, tmp_path_factory.mktemp("runs"), "training.epochs=3", "model=opt6k",
                  "report_to=tensorboard")


def test_loss_falls_and_accuracy_rises(small_run):
    epochs = json.loads((small_run / "results.json").read_text())["epochs"]
    assert len(epochs) == 3
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[-1]["test_accuracy"] > epochs[0]["test_accuracy"]
    assert epochs[-1]["test_accuracy"] > 80.0


def test_run_directory_is_complete_and_loadable(small_run, mnist_dir):
    results = json.loads((small_run / "results.json").read_text())
    assert results["schema_version"] == 3 and results["kind"] == "tinyhub-run"
    record = trainer.load_run(small_run)  # what every consumer reads: the same numbers, typed
    assert record.final.test_correct == results["final"]["test_correct"] and len(record.epochs) == 3
    assert record.as_dict() == results
    assert results["model"] == "opt6k" and results["parameters"] == 6_132
    assert results["macs"] == modeling.summary(modeling.create_model("opt6k")).macs
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "epoch_seconds",
                "images_per_second"):
        assert key in results["epochs"][0]
    final = results["final"]
    assert final["test_total"] == 10_000 and final["test_accuracy"] == results["epochs"][-1]["test_accuracy"]
    assert sum(map(sum, final["confusion_matrix"])) == 10_000
    assert sum(final["confusion_matrix"][i][i] for i in range(10)) == final["test_correct"]
    assert results["augmentation"]["per_sample"] is True
    for key in ("seed", "world_size", "mixed_precision", "device", "hardware", "versions", "git", "wall_seconds",
                "recipe", "data"):
        assert key in results
    assert results["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]  # "+cpu" wheels too
    assert results["world_size"] == 1 and results["data"]["train_size"] == 2000
    # On the CPU: torch's own for-loop optimizer (what every CPU record ran), and no CUDA graph.
    assert results["optimizer_implementation"] == "forloop" and results["cuda_graphs"] is False
    assert yaml.safe_load((small_run / "config.yaml").read_text())["model"]["name"] == "opt6k"
    assert list((small_run / "logs").rglob("events.out.tfevents*")), "TensorBoard logs are written"
    # The saved model reproduces the recorded accuracy exactly.
    assert _reevaluate(small_run / "model", mnist_dir) == final["test_correct"]
    weights = load_file(small_run / "model" / "model.safetensors")
    assert all(t.dtype == torch.float32 for k, t in weights.items() if "num_batches" not in k)


def test_checkpoints_are_rotated(small_run):
    assert [e for e, _ in ckpt.list_checkpoints(small_run)] == [2, 3]  # keep_checkpoints=2
    assert not list((small_run / "checkpoints").glob(".*tmp"))


def test_a_half_written_checkpoint_never_becomes_latest(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "epoch_2").mkdir(parents=True)
    (root / "epoch_2" / ckpt.STATE_FILE).write_text('{"epoch": 2, "history": []}')
    (root / ".epoch_3.tmp").mkdir()  # killed while writing
    (root / ".epoch_3.tmp" / "model.safetensors").write_bytes(b"partial")
    (root / "epoch_4").mkdir()  # no trainer_state.json: not complete
    assert ckpt.latest_checkpoint(tmp_path) == root / "epoch_2"


@pytest.mark.e2e
def test_hydra_overrides_and_custom_recipe(mnist_dir, tmp_path):
    run = _train(mnist_dir, tmp_path, "model=opt6k", "training.epochs=1", "model.dropout=0.1",
                 "data.batch_size=256")
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["architecture"] == "opt6k" and config["dropout"] == 0.1
    assert json.loads((run / "results.json").read_text())["global_batch_size"] == 256
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "my_recipe.yaml").write_text(
        "defaults:\n  - train\n  - override /model: net24k\n  - _self_\ntraining:\n  epochs: 1\n")
    cfg = trainer.load_config(["data.batch_size=32"], config_name="my_recipe", config_dir=recipes)
    assert cfg.model_name == "net24k" and cfg.training.epochs == 1 and cfg.data.batch_size == 32
    assert cfg.recipe.target_accuracy == 98.5  # the packaged net24k recipe underneath
    r = run_cli("train", "--config-dir", str(recipes), "--config-name", "my_recipe", *FAST,
                   f"data.dir={mnist_dir}", "data.subset=300", f"run.dir={tmp_path / 'cli'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "cli" / "results.json").read_text())["model"] == "net24k"


def test_validation_split_feeds_plateau_scheduler(mnist_dir, tmp_path):
    run = _train(mnist_dir, tmp_path, "training.epochs=2", "data.val_size=500",
                 "training.scheduler.name=plateau", "training.scheduler.patience=0")
    results = json.loads((run / "results.json").read_text())
    assert "val_accuracy" in results["epochs"][0] and results["data"]["val_size"] == 500
    assert results["data"]["train_size"] == 2000


def test_eval_every_skips_evaluations_but_never_the_last_epoch(mnist_dir, tmp_path):
    # A speed recipe evaluates once, after its last epoch: the skipped epochs record no test figures (not zeros),
    # the last one is the run's result, and every reader of the record (report, card table) takes the gaps.
    run = _train(mnist_dir, tmp_path, "training.epochs=3", "training.eval_every=2", "data.val_size=500")
    record = trainer.load_run(run)
    assert [e.evaluated for e in record.epochs] == [False, True, True]
    first = json.loads((run / "results.json").read_text())["epochs"][0]
    assert "test_accuracy" not in first and "val_accuracy" not in first and first["eval_seconds"] == 0.0
    assert record.epochs[-1].test_correct == record.final.test_correct and record.final.val_accuracy is not None
    assert (run / "images" / "training_curves.png").is_file() and "–" in (run / "report.html").read_text()
    log = (run / "train.log").read_text()
    assert re.search(r"epoch   1/3 \| loss [\d.]+ \| train [\d.]+% \| lr", log)  # no test figures after epoch 1
    with pytest.raises(trainer.ConfigError, match=r"training.eval_every=0: the plateau schedule reads the accuracy"):
        trainer.load_config([*FAST, "model=opt6k", f"run.dir={tmp_path / 'plateau'}", "training.eval_every=0",
                             "training.scheduler.name=plateau", "data.val_size=500"])
    with pytest.raises(trainer.ConfigError, match=r"set training.eval_every=1 for sweeps"):
        trainer.train(trainer.load_config([*FAST, "model=opt6k", f"run.dir={tmp_path / 'trial'}",
                                           "training.eval_every=0"]), on_epoch_end=lambda record: None)


def test_a_run_records_where_its_time_went(small_run):
    times = trainer.load_run(small_run).times
    record = trainer.load_run(small_run)
    assert times.train == record.train_seconds
    assert times.evaluate == pytest.approx(sum(e.eval_seconds for e in record.epochs), abs=1e-3)
    assert times.set_up > 0 and times.save > 0
    if sys.platform == "linux":  # /proc says when the process started
        assert times.start_up is not None and times.start_up > 0
        assert record.process_seconds > record.wall_seconds


def test_bf16_on_cpu_saves_fp32(mnist_dir, tmp_path):
    run = _train(mnist_dir, tmp_path, "training.epochs=1", "training.mixed_precision=bf16",
                 "training.optimizer.name=sgd", "training.optimizer.lr=0.05", "training.ema=0.9",
                 "training.grad_clip=1.0", "training.label_smoothing=0.1", "training.channels_last=true")
    results = json.loads((run / "results.json").read_text())
    assert results["mixed_precision"] == "bf16" and results["final"]["ema"] is True
    weights = load_file(run / "model" / "model.safetensors")
    assert {t.dtype for t in weights.values()} <= {torch.float32, torch.int64}
    # The recorded accuracy is that of the saved fp32 weights, evaluated in full precision as users will.
    assert _reevaluate(run / "model", mnist_dir) == results["final"]["test_correct"]


def test_bf16_without_ema_records_the_saved_weights_accuracy(mnist_dir, tmp_path):
    # Without EMA the engine evaluates the Accelerate-prepared model, whose forward Accelerate wraps in bf16
    # autocast. The recorded test loss must still be the fp32 loss of the saved weights (bf16 moves it by ~1e-3).
    run = _train(mnist_dir, tmp_path, "training.epochs=1", "training.mixed_precision=bf16")
    results = json.loads((run / "results.json").read_text())
    model = modeling.from_pretrained(run / "model")
    splits = trainer.load_dataset_splits(dir=str(mnist_dir))
    with torch.no_grad():
        logits = torch.cat([model(model.normalize(x)) for x in splits.test_images.split(1000)])
    loss = torch.nn.functional.cross_entropy(logits, splits.test_labels).item()
    assert results["final"]["test_loss"] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    assert int((logits.argmax(1) == splits.test_labels).sum()) == results["final"]["test_correct"]


def test_predict_builds_no_autograd_graph():
    # Evaluation runs every epoch; tracking gradients there would cost time and memory for nothing.
    from accelerate import Accelerator

    from tinyhub.trainer.evaluation import predict

    model = modeling.create_model("opt6k")
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    log_probs = predict(model, images, Accelerator(cpu=True), 4)
    assert log_probs.shape == (8, 10) and not log_probs.requires_grad
    # the one normalisation: evaluation feeds the model exactly what `model.normalize` gives anyone
    model.eval()
    assert torch.allclose(log_probs, torch.log_softmax(model(model.normalize(images)), 1), atol=1e-6)


def test_over_budget_model_is_refused(mnist_dir, tmp_path):
    with pytest.raises(modeling.ParameterBudgetError):
        _train(mnist_dir, tmp_path, "model=minimobilenet", "model.width=2.5", "training.epochs=1")


@pytest.mark.e2e
def test_cli_bad_data_dir_exits_cleanly_without_run_dir(tmp_path):
    r = run_cli("train", "--data-dir", str(tmp_path / "nope"), f"run.dir={tmp_path / 'run'}", *FAST)
    assert r.returncode == 1, r.stderr  # a run-time failure (missing files), not a usage error
    assert "is not a directory" in r.stderr and "--data-dir /path/to/mnist" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_two_processes_agree(mnist_dir, tmp_path):
    run = tmp_path / "ddp"
    r = run_script("train.py", *FAST, f"data.dir={mnist_dir}", f"run.dir={run}", "training.epochs=1",
                   "training.device=cpu",
                   launcher=[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29517"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("Done:") == 1  # only the main process prints
    results = json.loads((run / "results.json").read_text())
    assert results["world_size"] == 2 and results["global_batch_size"] == 128
    assert results["epochs"][0]["train_images"] == 2000  # each training image once across both ranks
    assert results["final"]["test_total"] == 10_000
    # The weights written by rank 0 reproduce the accuracy both ranks measured together.
    assert _reevaluate(run / "model", mnist_dir) == results["final"]["test_correct"]


@pytest.mark.e2e
def test_accelerate_launch_works(mnist_dir, tmp_path):
    run = tmp_path / "acc"
    r = run_script("train.py", *FAST, f"data.dir={mnist_dir}", f"run.dir={run}", "training.epochs=1",
                   "data.subset=500", launcher=[sys.executable, "-m", "accelerate.commands.launch",
                                                "--num_processes", "1", "--cpu"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run / "results.json").read_text())["final"]["test_total"] == 10_000


@pytest.mark.e2e
def test_sigkill_mid_epoch_then_resume_is_bit_identical(mnist_dir, tmp_path):
    args = [*FAST, f"data.dir={mnist_dir}", "training.epochs=3", "training.deterministic=true",
            "data.subset=1500", "training.threads=1", "training.keep_checkpoints=5"]
    full = run_cli("train", *args, f"run.dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args, f"run.dir={killed_dir}"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 1800  # a safety net for a hung run, never reached by a slow one
    while not (killed_dir / "checkpoints" / "epoch_1").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"  # killed after epoch 1, before 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "results.json").exists()
    assert [e for e, _ in ckpt.list_checkpoints(killed_dir)][-1] < 3

    resumed = run_script("train.py", *args, f"run.dir={killed_dir}", "training.resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stdout
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(killed_dir / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    ra = json.loads((tmp_path / "full" / "results.json").read_text())
    rb = json.loads((killed_dir / "results.json").read_text())
    assert [e["test_accuracy"] for e in ra["epochs"]] == [e["test_accuracy"] for e in rb["epochs"]]


def test_wandb_offline_writes_a_run(mnist_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _train(mnist_dir, tmp_path, "training.epochs=1", "data.subset=300", "report_to=wandb")
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))


def test_tracker_choice_is_checked(mnist_dir, tmp_path, monkeypatch):
    with pytest.raises(trainer.ConfigError, match="report_to=.mlflow.: choose none, tensorboard, wandb or trackio"):
        _train(mnist_dir, tmp_path, "report_to=mlflow")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    with pytest.raises(trainer.ConfigError, match="needs the trackio package"):
        _train(mnist_dir, tmp_path, "report_to=trackio")
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_git_state_ignores_only_the_generated_results_files(monkeypatch):
    from tinyhub.trainer import run_info

    checkout = str(REPO)

    def fake_run(args, **kw):
        if "--show-toplevel" in args:
            out = checkout + "\n"
        else:
            out = "abc123\n" if "rev-parse" in args else porcelain
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(run_info.subprocess, "run", fake_run)
    porcelain = " M README.md\n M RESULTS.md\n M results/model4/seed_0.json\n"
    state = run_info.git_state()
    assert state.as_dict() == {"commit": "abc123", "dirty": False,
                     "changed_files": ["README.md", "RESULTS.md", "results/model4/seed_0.json"]}
    porcelain = " M RESULTS.md\n M trainer/recipes/model/model4.yaml\n"
    assert run_info.git_state().dirty is True  # a recipe edit changes what a run does
    porcelain = "M  results_extra.py\n"
    assert run_info.git_state().dirty is True
    # an installed copy inside some other repository does not report that repository's commit
    checkout = "/somewhere/else"
    assert run_info.git_state() == run_info.GitState()


@pytest.mark.e2e
def test_a_diverging_run_stops_with_a_clear_error_and_saves_nothing(mnist_dir, tmp_path):
    run = tmp_path / "diverged"
    r = run_cli("train", "model=opt6k", *FAST, "--data-dir", str(mnist_dir), f"run.dir={run}", "data.subset=500",
                "training.epochs=2", "training.optimizer.name=sgd", "training.optimizer.lr=1e30")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "epoch 1: the training loss is nan" in r.stderr and "Lower the learning rate" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (run / "results.json").exists() and not (run / "model").exists()
    assert not (run / "checkpoints" / "epoch_1").exists()  # nothing of the diverged epoch


def test_results_json_is_always_valid_json(tmp_path):
    from tinyhub.utils.files import write_json_atomic

    write_json_atomic(tmp_path / "r.json", {"loss": float("nan"), "rows": [1.0, float("inf")], "ok": 2.5})
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == \
        {"loss": None, "rows": [1.0, None], "ok": 2.5}


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=0", r"data.batch_size=0: must be a whole number from 1"),
    ("data.eval_batch_size=0", r"data.eval_batch_size=0"),
    ("data.subset=-1", r"data.subset=-1"),
    ("training.epochs=0", r"training.epochs=0: must be a whole number from 1"),
    ("training.eval_every=-1", r"training.eval_every=-1: must be a whole number from 0"),
    ("recipe.purpose=fast", r"recipe.purpose='fast': choose accuracy or speed"),
    ("training.grad_clip=-1", r"training.grad_clip=-1.0: must be a number from 0"),  # a float, as the schema says
    ("training.label_smoothing=2", r"training.label_smoothing=2.0: must be a number from 0 below 1"),
    ("training.threads=-1", r"training.threads=-1"),
    ("training.keep_checkpoints=-1", r"training.keep_checkpoints=-1"),
    ("training.checkpoint_every=-2", r"training.checkpoint_every=-2"),
    ("training.optimizer.lr=inf", r"training.optimizer.lr=inf"),
    ("training.mixed_precision=fp16", r"fp16 needs a CUDA GPU"),
    ("training.cuda_graphs=sometimes", r"training.cuda_graphs='sometimes': choose auto, true or false"),
    ("training.optimizer.implementation=turbo", r"implementation='turbo': choose auto, forloop, foreach or fused"),
])
def test_nonsense_values_are_refused_before_anything_runs(tmp_path, override, message):
    if override.endswith("fp16") and torch.cuda.is_available():
        pytest.skip("fp16 is valid where a GPU exists")
    with pytest.raises(trainer.ConfigError, match=message):
        trainer.load_config([*FAST, "model=opt6k", f"run.dir={tmp_path / 'run'}", override])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, key", [
    ("data.batch_size=1.5", "data.batch_size"),
    ("training.epochs=ten", "training.epochs"),
    ("augment.translate=0.1", "augment.translate"),
    ("training.epochz=3", "training.epochz"),  # a misspelt key
])
def test_a_wrong_type_or_unknown_key_fails_when_the_config_is_composed(override, key, tmp_path):
    from hydra.errors import HydraException

    with pytest.raises(HydraException, match=re.escape(key)):
        trainer.load_config(["model=opt6k", override])
    # a recipe file is checked against the same schema
    (tmp_path / "mine.yaml").write_text("defaults:\n  - train\n  - _self_\ntraining:\n  epochz: 3\n")
    with pytest.raises(HydraException, match="epochz"):
        trainer.load_config([], config_name="mine", config_dir=tmp_path)
    # and so is a plain dict typed in Python (a record's, a notebook's); train() itself takes only a TrainConfig
    cfg = OmegaConf.to_container(trainer.compose(["model=opt6k", f"run.dir={tmp_path / 'run'}"]))
    cfg["training"]["epochs"] = "ten"
    with pytest.raises(trainer.ConfigError, match="training.epochs"):
        typed_config(cfg)
    with pytest.raises(TypeError, match=r"train\(\) takes a TrainConfig, not a dict: build one with "
                                        r"tinyhub.trainer.load_config"):
        trainer.train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_the_cli_names_a_mistyped_key_and_exits_2(tmp_path):
    r = run_cli("train", "model=opt6k", "training.epochs=ten", f"run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "training.epochs" in r.stderr and not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_step_schedule_and_run_dir_mistakes_are_usage_errors(tmp_path):
    (tmp_path / "a-file").write_text("")
    step, a_file, unwritable = run_cli_many(
        ["train", "model=opt6k", *FAST, "training.scheduler.name=step", "training.scheduler.step_size=0"],
        ["train", "model=opt6k", *FAST, f"run.dir={tmp_path / 'a-file'}"],
        ["train", "model=opt6k", *FAST, "run.dir=/proc/tinyhub-cannot-create/run"])
    for r in (step, a_file, unwritable):
        assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert "cannot be" in unwritable.stderr and "run.dir" in unwritable.stderr


@pytest.mark.e2e
def test_resume_falls_back_from_a_truncated_latest_checkpoint(mnist_dir, tmp_path):
    run = tmp_path / "run"
    args = [*FAST, f"data.dir={mnist_dir}", "data.subset=600", "training.epochs=3", "training.keep_checkpoints=5",
            f"run.dir={run}"]
    assert run_cli("train", "model=opt6k", *args).returncode == 0
    (run / "results.json").unlink()  # as if killed after its last checkpoint
    weights = run / "checkpoints" / "epoch_3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a truncated copy
    r = run_cli("train", "model=opt6k", *args, "training.resume=auto")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch_3 cannot be read" in r.stdout and "Resuming from" in r.stdout and "epoch_2" in r.stdout
    results = json.loads((run / "results.json").read_text())
    assert [e["epoch"] for e in results["epochs"]] == [1, 2, 3] and results["resumed_from"].endswith("epoch_2")


def test_checkpoint_files_reach_the_disk_before_the_rename(monkeypatch, tmp_path, mnist_dir):
    from tinyhub.trainer import checkpoint

    synced, renamed = [], []
    real_fsync, real_replace = checkpoint.os.fsync, checkpoint.os.replace
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                            real_fsync(fd))[1])
    monkeypatch.setattr(checkpoint.os, "replace", lambda a, b: (renamed.append((str(a), len(synced))),
                                                                real_replace(a, b))[1])
    trainer.train(trainer.load_config([*FAST, "model=opt6k", "training.epochs=1", "data.subset=300",
                                       f"data.dir={mnist_dir}", f"run.dir={tmp_path / 'run'}"]))
    (tmp, synced_before), = [r for r in renamed if ".epoch_1.tmp" in r[0]]
    files = {str(p).replace("/epoch_1/", "/.epoch_1.tmp/")
             for p in (tmp_path / "run" / "checkpoints" / "epoch_1").rglob("*") if p.is_file()}
    assert files and files <= set(synced[:synced_before])


@pytest.mark.e2e
def test_a_live_run_dir_has_one_owner(mnist_dir, tmp_path):
    run = tmp_path / "run"
    args = ["model=opt6k", *FAST, f"data.dir={mnist_dir}", "data.subset=2000", "training.epochs=30",
            f"run.dir={run}", "training.threads=1"]
    first = subprocess.Popen([TINYHUB, "train", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "epoch_1").exists():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.1)
        second = run_cli("train", *args, "seed=1")
        assert second.returncode == 2 and "is being trained right now" in second.stderr, second.stderr[-2000:]
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        resumed = run_cli("train", *args, "training.resume=auto")  # not even resume takes a live run
        assert resumed.returncode == 2 and "is being trained right now" in resumed.stderr
    finally:
        first.kill()
        first.wait()
    # The kill released the lock (the kernel drops it with the process): the run can be continued at once.
    assert (run / ".tinyhub.lock").exists()
    os.close(ckpt.lock_run_dir(run))


@pytest.mark.e2e
def test_unfinished_run_dir_is_not_reused_and_resume_must_match(mnist_dir, tmp_path):
    run = tmp_path / "run"
    args = ["model=opt6k", *FAST, f"data.dir={mnist_dir}", "data.subset=400", "training.epochs=2",
            f"run.dir={run}"]
    assert run_cli("train", *args).returncode == 0
    (run / "results.json").unlink()  # killed after its last checkpoint
    config_before = (run / "config.yaml").read_text()
    checkpoints_before = sorted(p.name for p in (run / "checkpoints").iterdir())

    fresh = run_cli("train", *args, "seed=1")  # a new run must not take over the unfinished one
    assert fresh.returncode == 2 and "holds an unfinished run" in fresh.stderr and "resume=auto" in fresh.stderr
    other = run_cli("train", *args, "seed=1", "augment.rotation=3.0", "training.resume=auto")
    assert other.returncode == 2 and "another configuration" in other.stderr, other.stderr[-2000:]
    assert "seed: checkpoint 0, now 1" in other.stderr and "augment.rotation" in other.stderr
    assert (run / "config.yaml").read_text() == config_before  # nothing was touched
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == checkpoints_before

    same = run_cli("train", *args, "training.resume=auto", "training.threads=1", "report_to=none")  # may change
    assert same.returncode == 0, same.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert results["seed"] == 0
    # the allowed changes are recorded with both values
    assert {"key": "training.threads", "checkpoint": "0", "now": "1"} in results["resume_changes"]


@pytest.mark.e2e
def test_a_data_error_under_torchrun_is_shown_once_not_buried(tmp_path):
    r = run_script("train.py", "model=opt6k", *FAST, "--data-dir", str(tmp_path / "missing"), "training.device=cpu",
                   f"run.dir={tmp_path / 'run'}",
                   launcher=[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29519"])
    assert r.returncode != 0
    assert r.stderr.count("error: The data folder") == 1, r.stderr[-3000:]
    for buried_under in ("DistBackendError", "Connection reset", "ConnectionError", "Broken pipe"):
        assert buried_under not in r.stderr, r.stderr[-3000:]


def _weights(run):
    return load_file(run / "model" / "model.safetensors")


@pytest.mark.e2e
def test_resume_restores_scheduler_and_ema_from_safe_files_bit_identically(mnist_dir, tmp_path):
    args = ["model=opt6k", *FAST, f"data.dir={mnist_dir}", "data.subset=600", "training.epochs=2",
            "training.scheduler.name=onecycle", "training.scheduler.max_lr=0.05", "training.ema=0.9",
            "training.deterministic=true", "training.threads=1", "training.keep_checkpoints=5"]
    assert run_cli("train", *args, f"run.dir={tmp_path / 'full'}").returncode == 0
    cut = tmp_path / "cut"
    assert run_cli("train", *args, f"run.dir={cut}").returncode == 0
    epoch_1 = cut / "checkpoints" / "epoch_1"
    assert sorted(p.name for p in epoch_1.iterdir()) == [
        "ema.safetensors", "model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state.json"]
    assert "scheduler" in json.loads((epoch_1 / "trainer_state.json").read_text())
    for leftover in ("results.json", "model", "checkpoints/epoch_2"):  # as if killed after epoch 1
        shutil.rmtree(cut / leftover) if (cut / leftover).is_dir() else (cut / leftover).unlink()
    resumed = run_cli("train", *args, f"run.dir={cut}", "training.resume=auto")
    assert resumed.returncode == 0 and "Resuming from" in resumed.stdout, resumed.stderr[-2000:]
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.e2e
def test_a_checkpoint_with_a_pickle_tinyhub_never_writes_is_refused_unloaded(mnist_dir, tmp_path):
    run = tmp_path / "run"
    # with a scheduler: Accelerate would unpickle its custom-object file, where this payload sits
    args = ["model=opt6k", *FAST, f"data.dir={mnist_dir}", "data.subset=300", "training.epochs=1",
            "training.scheduler.name=step", f"run.dir={run}"]
    assert run_cli("train", *args).returncode == 0
    (run / "results.json").unlink()
    marker = tmp_path / "code-ran"
    payload = ("import os, pickle\nclass P:\n    def __reduce__(self):\n"
               f"        return (os.system, ('touch {marker}',))\n"
               f"pickle.dump(P(), open({str(run / 'checkpoints' / 'epoch_1' / 'custom_checkpoint_0.pkl')!r}, 'wb'))")
    subprocess.run([sys.executable, "-c", payload], check=True)
    r = run_cli("train", *args, "training.resume=auto")
    assert r.returncode == 1 and "custom_checkpoint_0.pkl" in r.stderr and "could run code" in r.stderr, r.stderr
    assert not marker.exists()  # refused before anything was unpickled


@pytest.mark.e2e
def test_too_little_data_for_the_processes_is_a_clear_error(mnist_dir, tmp_path):
    r = run_script("train.py", "model=opt6k", *FAST, f"data.dir={mnist_dir}", "data.subset=1", "data.batch_size=1", "training.device=cpu",
                   "training.scheduler.name=onecycle", f"run.dir={tmp_path / 'run'}",
                   launcher=[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29523"])
    assert r.returncode != 0
    assert "1 training image(s) cannot be shared by 2 processes" in r.stderr, r.stderr[-3000:]
    assert "total_steps" not in r.stderr and "ZeroDivisionError" not in r.stderr  # not a scheduler traceback
