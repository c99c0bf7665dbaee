"""Hyperparameter search (scripts/sweep.py, trainer/sweep.py): validation before Ray, a small ASHA sweep end to end,
the best recipe training with scripts/train.py, W&B offline logging from trials."""

import csv
import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tinyhub import trainer
from tinyhub.trainer import sweep
from tinyhub.trainer.sweep import space as sweep_space
from tinyhub.trainer.config import trial_config
from conftest import REPO, SAFETY_TIMEOUT, run_cli

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray[tune] (tinyhub[hpo])")

# Tiny trials on 2 CPUs: a new local Ray whatever RAY_ADDRESS says, no progress bars, no network.
SMALL = ["model=opt6k", "progress=false", "training.optimizer.name=adam", "training.scheduler.name=none",
         "hpo.address=local", "hpo.num_cpus=2"]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
GOOD_LR, BAD_LR, FAILING_LR = 0.01, 1e-6, -1.0
SECRET = "hf_secret_value_that_must_never_reach_disk"
RAY_TMP: dict[str, str] = {}  # where the module's real sweep let Ray write its session files


def _plan(*overrides):
    return sweep.prepare_sweep(trainer.load_config(list(overrides), config_name="sweep"))


@pytest.fixture(scope="module")
def asha_sweep(mnist_dir, tmp_path_factory):
    """Three trials, one at a time, 2 epochs, ASHA rung at epoch 1: a learning rate that learns, one too small to
    learn anything (ASHA stops it after epoch 1) and an invalid one (the trial fails). Batch size and rotation are
    sampled."""
    out = tmp_path_factory.mktemp("sweeps") / "asha"
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit in 107 characters
    r = run_cli(
        "sweep", *SMALL, f"data.dir={mnist_dir}", "data.subset=1000", "hpo.val_size=500", "training.epochs=2",
        "hpo.num_samples=1", "hpo.seed=0",
        "hpo.max_concurrent=1", "hpo.scheduler.grace_period=1", "hpo.scheduler.reduction_factor=2", f"hpo.dir={out}",
        "hpo.space.lr=null", "hpo.space.data.batch_size.values=[32,64]",
        f"+hpo.space.training.optimizer.lr={{type:grid,values:[{GOOD_LR},{BAD_LR},{FAILING_LR}]}}",
        "+hpo.space.augment.rotation={type:uniform,low:0,high:5}",
        env_extra={**RAY_ENV, "RAY_TMPDIR": ray_tmp, "HF_TOKEN": SECRET, "WANDB_API_KEY": SECRET})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    RAY_TMP["dir"] = ray_tmp
    summary = json.loads((out / "sweep.json").read_text())
    by_lr = {t["config"]["training.optimizer.lr"]: t for t in summary["trials"]}
    yield out, r, summary, by_lr
    shutil.rmtree(ray_tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Validation: clear errors before Ray starts
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (["hpo.space=null"], "hpo.space is empty"),
    (["hpo.space.lr=null", "hpo.space.data.batch_size=null"], "every parameter is switched off"),
    (["hpo.space.lr.type=normal"], "unknown type 'normal'"),
    (["hpo.space.lr.low=0.1"], "low=0.1 must be less than high=0.01"),
    (["hpo.space.lr.low=0", "hpo.space.lr.type=loguniform"], "loguniform needs 0 < low"),
    (["hpo.space.data.batch_size.values=[]"], "choice needs a non-empty list"),
    (["+hpo.space.data.batch_size.hight=3"], "choice takes values, not hight"),
    (["+hpo.space.training.optimzer.lr={type:uniform,low:0,high:1}"], "Did you mean training.optimizer.lr"),
    (["+hpo.space.augment={type:choice,values:[1]}"], "is a config section"),
    (["+hpo.space.training.epochs={type:randint,low:1,high:3}"], "training.epochs is the sweep's epoch budget"),
    (["+hpo.space.data.val_size={type:choice,values:[10,20]}"], "same validation split"),
    (["+hpo.space.hpo.num_samples={type:choice,values:[1,2]}"], "cannot be searched"),
    (["+hpo.space.seed={type:randint,low:3,high:3}"], "low=3 must be less than high=3"),
    (["hpo.search=optuna", "+hpo.space.seed={type:grid,values:[0,1]}"], "need hpo.search=random"),
    (["model=minimobilenet", "+hpo.space.training.optimizer.lr={type:uniform,low:0.1,high:1}"],
     "has no effect with training.scheduler.name=onecycle"),
    (["hpo.scheduler.grace_period=99"], "ASHA could never stop a trial"),
    (["hpo.search=grid"], "choose random or optuna"),
    (["+hpo.num_sample=3"], "hpo.num_sample is not a setting (did you mean hpo.num_samples?)"),  # `+` too
])
def test_invalid_sweeps_fail_before_ray(overrides, message, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # any `import ray` during validation would raise ImportError
    with pytest.raises(sweep.SweepConfigError) as err:
        _plan(*overrides)
    assert message in str(err.value)


@pytest.mark.parametrize("override, key", [("hpo.num_sample=3", "hpo.num_sample"), ("hpo.num_samples=many",
                                                                                   "hpo.num_samples")])
def test_a_misspelt_or_mistyped_sweep_option_fails_when_composed(override, key, monkeypatch):
    from hydra.errors import HydraException

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(HydraException, match=key):
        _plan(override)


def test_selection_is_on_validation_never_test(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(sweep.SweepConfigError, match="never chooses on the test split"):
        _plan("hpo.val_size=0")
    with pytest.raises(sweep.SweepConfigError, match="never chooses on the test split"):
        _plan("data.val_size=0", "hpo.val_size=0")
    with pytest.raises(sweep.SweepConfigError, match="validation split only"):
        _plan("hpo.metric=test_accuracy")
    with pytest.raises(sweep.SweepConfigError, match="would select the worst trial"):
        _plan("hpo.metric=val_loss")
    plan = _plan("hpo.metric=val_loss", "hpo.mode=min", f"hpo.dir={tmp_path / 's'}")
    assert plan.metric == "val_loss" and plan.val_size == 5000 and plan.base["data"]["val_size"] == 5000
    assert _plan("data.val_size=700").val_size == 700


def test_cli_refuses_an_invalid_sweep_without_starting_anything(tmp_path):
    out = tmp_path / "never"
    r = run_cli("sweep", "hpo.space.lr.type=normal", f"hpo.dir={out}", env_extra=RAY_ENV, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "error: hpo.space.lr: unknown type 'normal'" in r.stderr
    assert "Started a local Ray instance" not in r.stdout + r.stderr and not out.exists()
    r = run_cli("sweep", "hpo.val_size=0", f"hpo.dir={out}", env_extra=RAY_ENV, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 2 and "never chooses on the test split" in r.stderr and not out.exists()


def test_space_aliases_and_trial_config(tmp_path):
    # `lr` is the learning rate that drives training: OneCycle's peak, else the optimizer's.
    onecycle = _plan("model=minimobilenet", f"hpo.dir={tmp_path / 'a'}")
    assert [p.key for p in onecycle.params] == ["training.scheduler.max_lr", "data.batch_size"]
    assert onecycle.params[0].alias == "lr" and onecycle.model_group == "minimobilenet"
    plain = _plan("model=opt6k", "training.scheduler.name=step", f"hpo.dir={tmp_path / 'b'}",
                  "+hpo.space.augment.rotation={type:uniform,low:0,high:15}",
                  "+hpo.space.model.dropout={type:uniform,low:0,high:0.2}",
                  "+hpo.space.training.label_smoothing={type:uniform,low:0,high:0.1}",
                  "+hpo.space.training.optimizer.weight_decay={type:loguniform,low:1e-6,high:1e-3}",
                  "+hpo.space.training.ema={type:choice,values:[0.0,0.99]}",
                  "+hpo.space.seed={type:randint,low:0,high:3}")
    assert [p.key for p in plain.params][:2] == ["training.optimizer.lr", "data.batch_size"]
    cfg = trial_config(plain.base, {"training.optimizer.lr": 0.003, "augment.rotation": 7.5, "seed": 2})
    assert cfg["training"]["optimizer"]["lr"] == 0.003 and cfg["augment"]["rotation"] == 7.5 and cfg["seed"] == 2
    assert plain.base["training"]["optimizer"]["lr"] == 0.01  # the plan itself is untouched
    # Paths a trial uses are absolute (Ray runs trials in their own working directories).
    assert plain.base["run"]["root"].startswith("/") and plain.dir.is_absolute()


def test_a_sweep_recipe_builds_on_sweep_yaml(tmp_path):
    (tmp_path / "my_sweep.yaml").write_text(
        "defaults:\n  - sweep\n  - override /model: net24k\n  - _self_\n"
        "training:\n  epochs: 4\n"
        "hpo:\n  num_samples: 4\n  space:\n    data:\n      batch_size: null\n"
        "    augment.rotation: {type: uniform, low: 0.0, high: 12}\n")
    cfg = trainer.load_config([f"hpo.dir={tmp_path / 'out'}"], config_name="my_sweep", config_dir=tmp_path)
    plan = sweep.prepare_sweep(cfg)
    assert [p.key for p in plan.params] == ["training.scheduler.max_lr", "augment.rotation"]  # net24k: onecycle
    assert plan.model_group == "net24k" and plan.epochs == 4 and plan.num_samples == 4
    assert plan.baseline["model"]["name"] == "net24k" and plan.baseline["training"]["epochs"] != 4


def test_a_sweep_without_a_winner_says_so_and_writes_no_recipe(tmp_path):
    """Every trial failed (e.g. a data.dir that a cluster's nodes lack): the folder says where the errors are, and
    no best_recipe.yaml appears that someone could train by mistake."""
    from tinyhub.trainer.sweep import report as sweep_report

    plan = _plan("model=opt6k", f"hpo.dir={tmp_path / 's'}", "hpo.seed=4")
    config = {"training.scheduler.max_lr": 0.01, "data.batch_size": 32}
    trials = [{"trial": f"t{i}", "status": "ERROR", "config": config,
               "best": None, "best_epoch": None, "last": None, "epochs_run": 0, "stopped_early": False,
               "error": "FileNotFoundError: no MNIST | here", "run_dir": str(plan.dir / f"t{i}"), "history": [],
               "rank": None} for i in range(2)]
    from tinyhub.trainer.record import SweepSummary

    summary = {"name": plan.name, "sweep_dir": str(plan.dir), "model": "opt6k", "metric": plan.metric,
               "mode": plan.mode,
               "selection": "best val_accuracy on the validation split", "val_size": plan.val_size,
               "epochs": plan.epochs, "num_samples": 2, "search": plan.search, "seed": 4, "scheduler": plan.scheduler,
               "resources": dataclasses.asdict(plan.hpo.resources), "ray": {"version": "x", "address": "local"},
               "space": {p.alias or p.key: {**p.as_dict(), "key": p.key} for p in plan.params},
               "started": "2026-12-01T10:00:00", "resumed": False, "wall_seconds": 3.0, "trials": trials,
               "best": None}
    summary = SweepSummary.from_dict(summary)
    sweep_report.write_outputs(summary, plan.base, plan.baseline, plan.model_group)
    report = (plan.dir / "report.md").read_text()
    assert "trials: 2 (0 stopped early, 2 failed)" in report and "seed 4" in report
    assert f"No trial reported a validation metric; the errors are in the table above and under `{plan.dir}/tune`" \
        in report and "## Best configuration" not in report
    assert "| `lr` | `training.scheduler.max_lr` | loguniform [0.0001, 0.01] |" in report
    assert r"ERROR: FileNotFoundError: no MNIST \| here" in (plan.dir / "results.md").read_text()
    assert not (plan.dir / "best_recipe.yaml").exists()
    assert json.loads((plan.dir / "sweep.json").read_text())["best"] is None
    assert f"see {plan.dir / 'results.md'}" in sweep_report.console_text(summary)


@needs_ray
def test_tune_space_matches_the_config(tmp_path):
    from ray import tune

    plan = _plan("model=opt6k", "training.scheduler.name=none", f"hpo.dir={tmp_path / 's'}",
                 "+hpo.space.seed={type:randint,low:0,high:2}")
    space = sweep_space.tune_space(plan.params)
    assert isinstance(space["training.optimizer.lr"], tune.search.sample.Float)
    assert space["data.batch_size"].categories == [32, 64, 128]
    assert (space["seed"].lower, space["seed"].upper) == (0, 3)  # both ends included


def test_importing_trainer_never_needs_ray():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import tinyhub.trainer, tinyhub.trainer.sweep\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------
# A real sweep
# ---------------------------------------------------------------------------------------------------------
@needs_ray
def test_sweep_writes_the_table_and_the_best_recipe(asha_sweep):
    out, r, summary, by_lr = asha_sweep
    for name in ("results.md", "results.csv", "sweep.json", "best_recipe.yaml", "report.md", "sweep_config.yaml"):
        assert (out / name).is_file(), name
    assert len(summary["trials"]) == 3 and summary["epochs"] == 2
    assert summary["metric"] == "val_accuracy" and summary["mode"] == "max"
    best = summary["best"]
    assert best["trial"] == by_lr[GOOD_LR]["trial"] and best["config"]["training.optimizer.lr"] == GOOD_LR
    from tinyhub.trainer.record import SweepSummary

    typed = SweepSummary.load(out)  # the file reads back as its record type, every field known
    assert typed.best.trial == best["trial"]
    assert [t.trial for t in typed.trials] == [t["trial"] for t in summary["trials"]]
    assert best["config"]["data.batch_size"] in (32, 64) and 0 <= best["config"]["augment.rotation"] <= 5
    # The table: printed, and as Markdown and CSV.
    assert "| rank | trial | data.batch_size | training.optimizer.lr | augment.rotation |" in r.stdout
    assert f"best recipe: {out / 'best_recipe.yaml'}" in r.stdout
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {row["trial"] for row in rows} == {t["trial"] for t in summary["trials"]}
    assert "best_val_accuracy" in rows[0] and "stopped_early" in rows[0]
    assert (out / "results.md").read_text().count("\n") == 2 + 3
    assert "## Best configuration" in (out / "report.md").read_text()
    # Every trial's run directory is under the sweep folder; a finished trial's is complete.
    winner = json.loads((out / "trials" / best["trial"] / "results.json").read_text())
    assert winner["data"]["val_size"] == 500 and winner["data"]["train_size"] == 1000
    assert winner["recipe"]["training"]["optimizer"]["lr"] == GOOD_LR
    assert max(e["val_accuracy"] for e in winner["epochs"]) == best["value"]
    assert set(winner["recipe"]["training"]["optimizer"]) >= {"lr", "name"}
    # The recipe: the packaged model recipe plus the sampled values and the sweep's own overrides.
    recipe = yaml.safe_load((out / "best_recipe.yaml").read_text())
    assert recipe["defaults"] == ["train", {"override /model": "opt6k"}, "_self_"]
    assert recipe["training"]["optimizer"] == {"name": "adam", "lr": GOOD_LR}
    assert recipe["training"]["epochs"] == 2 and recipe["data"]["subset"] == 1000
    assert "val_size" not in recipe["data"] and "run" not in recipe and "hpo" not in recipe


@needs_ray
def test_asha_stops_the_weak_trial_early(asha_sweep):
    _, _, summary, by_lr = asha_sweep
    good, weak = by_lr[GOOD_LR], by_lr[BAD_LR]
    assert summary["scheduler"] == {"name": "asha", "grace_period": 1, "reduction_factor": 2, "max_t": 2}
    assert weak["status"] == "TERMINATED" and weak["stopped_early"] is True and weak["epochs_run"] == 1
    assert good["status"] == "TERMINATED" and good["stopped_early"] is False and good["epochs_run"] == 2
    assert good["best"] > weak["best"]
    assert [h["epoch"] for h in good["history"]] == [1, 2]


@needs_ray
def test_a_failing_trial_is_a_table_row_not_the_end(asha_sweep):
    out, _, summary, by_lr = asha_sweep
    failed = by_lr[FAILING_LR]
    assert failed["status"] == "ERROR" and "training.optimizer.lr=-1.0: must be a number from 0" in failed["error"]
    assert failed["rank"] is None and failed["epochs_run"] == 0
    assert "ERROR: tinyhub.trainer.schema.ConfigError: training.optimizer.lr=-1.0" in (out / "results.md").read_text()


@needs_ray
def test_test_split_never_reaches_tune(asha_sweep):
    out, _, summary, _ = asha_sweep
    assert summary["metric"] == "val_accuracy" and "validation split" in summary["selection"]
    for progress in (out / "tune").glob("*/progress.csv"):
        header = progress.read_text().splitlines()[0].split(",")
        assert "val_accuracy" in header and not [h for h in header if h.startswith("test_")]


@needs_ray
def test_best_recipe_trains_with_train_py(asha_sweep, tmp_path):
    out = asha_sweep[0]
    run = tmp_path / "best"
    r = run_cli("train", "--config-dir", str(out), "--config-name", "best_recipe", "training.epochs=1",
                   "data.subset=300", "report_to=none", f"run.dir={run}")
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["model"] == "opt6k" and results["recipe"]["training"]["optimizer"]["lr"] == GOOD_LR
    assert results["data"]["val_size"] == 0  # the final run trains on the whole training split


@needs_ray
def test_wandb_offline_optuna_sweep_writes_a_run(mnist_dir, tmp_path):
    pytest.importorskip("wandb")
    pytest.importorskip("optuna")
    out = tmp_path / "wb"
    r = run_cli("sweep", *SMALL, f"data.dir={mnist_dir}", "data.subset=400", "hpo.val_size=300",
                   "training.epochs=1", "hpo.num_samples=1", "hpo.search=optuna", "hpo.seed=0", "hpo.wandb=true",
                   "hpo.scheduler.name=none", f"hpo.dir={out}",
                   env_extra={**RAY_ENV, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["search"] == "optuna" and summary["best"] is not None
    (trial,) = summary["trials"]
    assert 1e-4 <= trial["config"]["training.optimizer.lr"] <= 1e-2
    assert list((out / "trials" / trial["trial"] / "wandb").glob("offline-run-*/run-*.wandb"))


def test_secrets_are_never_forwarded_or_accepted_in_hpo_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    monkeypatch.setenv("HF_HOME", "/tmp/hf-home")
    env = sweep.forwarded_env()
    assert "HF_TOKEN" not in env and "WANDB_API_KEY" not in env and env["HF_HOME"] == "/tmp/hf-home"
    with pytest.raises(sweep.SweepConfigError, match=r"hpo.env.MY_API_KEY: secrets are never passed"):
        _plan("+hpo.env.MY_API_KEY=abc")


@needs_ray
def test_a_sweep_writes_no_secret_to_disk(asha_sweep):
    out = asha_sweep[0]
    leaks = []
    assert Path(RAY_TMP["dir"]).is_dir() and any(Path(RAY_TMP["dir"]).rglob("*.log"))  # Ray really wrote here
    for root in (out, Path(RAY_TMP["dir"])):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if SECRET.encode() in path.read_bytes():
                        leaks.append(str(path))
                except OSError:
                    continue
    assert not leaks, leaks


@needs_ray
def test_a_killed_sweep_resumes_and_finishes_only_the_missing_trials(mnist_dir, tmp_path, monkeypatch):
    import os
    import signal
    import time

    from conftest import TINYHUB

    out = tmp_path / "resumable"
    args = [*SMALL, f"data.dir={mnist_dir}", "data.subset=600", "hpo.val_size=300", "training.epochs=1",
            "hpo.num_samples=1", "hpo.scheduler.name=none", "hpo.max_concurrent=1", f"hpo.dir={out}",
            "hpo.space.lr=null", "hpo.space.data.batch_size=null",
            "+hpo.space.training.optimizer.lr={type:grid,values:[0.01,0.003,0.001]}"]
    env = {**os.environ, **RAY_ENV, "RAY_TMPDIR": tempfile.mkdtemp(prefix="rt", dir="/tmp")}
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen([TINYHUB, "sweep", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        deadline = time.time() + 1800  # a safety net for a hung sweep
        while not list(out.glob("trials/*/results.json")) and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        # The driver and its local Ray killed outright once the first trial has finished: Tune may not have
        # recorded that trial's end (Ctrl-C, the gentle case, saves Tune's state before it stops).
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=SAFETY_TIMEOUT)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("trials/*/results.json")}
    assert 1 <= len(finished) < 3, (tmp_path / "first.log").read_text()[-3000:]
    # Resuming with another configuration is refused before Ray starts.
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(sweep.SweepConfigError, match=r"ran with another configuration \(training.epochs"):
        _plan(*[a.replace("training.epochs=1", "training.epochs=2") for a in args], "hpo.resume=true")
    monkeypatch.delitem(sys.modules, "ray")
    r = run_cli("sweep", *args, "hpo.resume=true", env_extra={**RAY_ENV, "RAY_TMPDIR": env["RAY_TMPDIR"]},
                timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["resumed"] is True and len(summary["trials"]) == 3
    assert {t["status"] for t in summary["trials"]} == {"TERMINATED"}
    assert sorted(t["config"]["training.optimizer.lr"] for t in summary["trials"]) == [0.001, 0.003, 0.01]
    for trial, mtime in finished.items():  # the trials that had finished were not trained again
        assert (out / "trials" / trial / "results.json").stat().st_mtime_ns == mtime
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
