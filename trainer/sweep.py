"""Hyperparameter search: Ray Tune + ASHA over any option of a tinyhub recipe, one laptop or a whole cluster.

    plan = prepare_sweep(load_config(["model=opt6k", "hpo.num_samples=8"], config_name="sweep"))
    summary = run_sweep(plan)

`prepare_sweep` checks everything it can (search space, metric, validation split, scheduler, resources, sweep
folder) without Ray, so a bad sweep fails before a cluster is touched. `run_sweep` starts or joins Ray, runs one
Tune trial per sampled configuration -- each trial is `trainer.train(cfg, on_epoch_end=...)`, the same function
`tinyhub train` runs, reporting validation metrics per epoch so ASHA can stop weak trials -- and writes into
the sweep folder:

    results.md / results.csv / results.json   one row per trial: sampled values, best validation metric, epochs
                                              run, stopped early or not, status (ERROR rows for failed trials)
    best_recipe.yaml                          the best configuration as a recipe:
                                              tinyhub train --config-dir SWEEP --config-name best_recipe
    report.md                                 what was searched, how, and what won
    sweep_config.yaml                         the resolved configuration the sweep ran with
    trials/<trial id>/                        each trial's run directory (config.yaml, checkpoints, results.json)
    tune/                                     Ray Tune's own experiment folder (per-trial progress.csv, errors)

Selection uses the validation split carved from the training images (data.val_size) and nothing else; the test
split is not reported to Tune. Ray is imported only here and only when a sweep runs.
"""

from __future__ import annotations

import copy
import csv
import difflib
import importlib.util
import io
import json
import logging
import math
import numbers
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .config import compose_baseline, model_group
from .engine import ConfigError
from tinyhub.files import write_json_atomic

SWEEP_SCHEMA_VERSION = 1
logger = logging.getLogger(__name__)

#: Parameter types of `hpo.space` and the fields each one takes.
SPACE_TYPES = {
    "loguniform": ("low", "high"),
    "uniform": ("low", "high"),
    "randint": ("low", "high"),
    "choice": ("values",),
    "grid": ("values",),
}
#: What a sweep may select on: the engine's per-epoch metrics on the validation split.
VALIDATION_METRICS = ("val_accuracy", "val_loss")
#: `lr` in the space means the learning rate that actually drives training (see `_resolve_alias`).
LR_ALIAS = "lr"
#: Options a sweep fixes for every trial; searching them would make trials incomparable or break the sweep.
NOT_SEARCHABLE = {
    "training.epochs": "training.epochs is the sweep's epoch budget (ASHA's max_t); set it, do not search it",
    "data.val_size": "every trial must be scored on the same validation split; set hpo.val_size instead",
    "training.resume": "trials always start fresh",
    "report_to": "use hpo.wandb to log trials to Weights & Biases",
    "progress": "trials never draw progress bars",
}
NOT_SEARCHABLE_SECTIONS = ("hpo", "run", "hydra")
#: Driver environment variables that reach every trial process (plus `hpo.env`).
FORWARDED_ENV_PREFIXES = ("TINYHUB_", "HF_", "HUGGINGFACE_", "WANDB_")
#: Secrets are never forwarded: Ray writes a runtime_env's variables into its session logs. Trials read them
#: from their own process environment (a local Ray's workers inherit the driver's; on a cluster, each node's
#: `ray start` environment) or from the credential files `hf auth login` / `wandb login` leave.
SECRET_ENV = re.compile(r"TOKEN|API_KEY|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
#: Of those, the ones holding paths: made absolute, because Ray runs each trial in its own working directory.
PATH_ENV_VARS = ("TINYHUB_DATA_DIR", "TINYHUB_CACHE", "TINYHUB_TEST_DATA", "HF_HOME", "HF_DATASETS_CACHE",
                 "HF_HUB_CACHE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")
#: Config keys left out of best_recipe.yaml: where runs are written and the sweep's validation hold-out.
RECIPE_EXCLUDE = ("run", "data.val_size")

#: hpo defaults, for recipes that write their own `hpo:` section instead of building on sweep.yaml.
HPO_DEFAULTS = {
    "name": None, "dir": None, "num_samples": 8, "metric": "val_accuracy", "mode": "max", "val_size": 5000,
    "seed": None, "space": None, "search": "random",
    "scheduler": {"name": "asha", "grace_period": 2, "reduction_factor": 2},
    "max_concurrent": None, "resources": {"cpu": 1, "gpu": 0}, "address": None, "num_cpus": None, "env": {},
    "wandb": False, "project": "tinyhub",
}


class SweepConfigError(ConfigError):
    """The sweep configuration (the `hpo` section or what it asks of the training config) is unusable."""


@dataclass
class Param:
    """One searched config key."""

    key: str                      # dotted config key the sampled value is written to
    type: str                     # loguniform | uniform | randint | choice | grid
    low: float | int | None = None
    high: float | int | None = None
    values: list | None = None
    alias: str | None = None      # "lr" when written as the alias

    def describe(self) -> str:
        if self.type in ("choice", "grid"):
            return f"{self.type} {self.values}"
        return f"{self.type} [{self.low}, {self.high}]"

    def as_dict(self) -> dict:
        out = {"type": self.type}
        if self.type in ("choice", "grid"):
            out["values"] = self.values
        else:
            out.update(low=self.low, high=self.high)
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass
class SweepPlan:
    """Everything a sweep needs, validated; `run_sweep` only adds Ray."""

    name: str
    dir: Path
    base: dict                    # the resolved training config every trial starts from (no hpo section)
    params: list[Param]
    hpo: dict                     # the hpo section with defaults filled in
    metric: str
    mode: str
    num_samples: int
    epochs: int
    val_size: int
    search: str
    seed: int | None
    scheduler: dict
    resources: dict
    max_concurrent: int | None
    address: str | None
    num_cpus: int | None
    env: dict[str, str]
    wandb: bool
    model_group: str | None       # trainer/recipes/model/<group>.yaml the best recipe builds on
    baseline: dict = field(default_factory=dict)  # train.yaml + that model recipe: what the best recipe overrides

    @property
    def local(self) -> bool:
        """A new Ray instance on this machine (not a cluster)."""
        return self.address in (None, "local")


# ---------------------------------------------------------------------------------------------------------
# Validation (no Ray)
# ---------------------------------------------------------------------------------------------------------
def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        if isinstance(v, dict):
            keys += _leaf_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


def _lookup(cfg: dict, key: str):
    """(found, value) of a dotted key in a nested dict."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _set_key(cfg: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _plain(value):
    """Sampled values as plain Python (Ray and numpy hand out numpy scalars; YAML and OmegaConf want builtins)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _flatten_space(space, prefix: str = "") -> list[tuple[str, dict]]:
    """hpo.space -> [(dotted key, spec)]. A spec is a mapping with `type`; null entries are switched off."""
    if not isinstance(space, dict):
        where = f"hpo.space.{prefix.rstrip('.')}" if prefix else "hpo.space"
        raise SweepConfigError(f"{where} must be a mapping of config keys to parameters like "
                               f"{{type: loguniform, low: 1e-4, high: 1e-2}}, not {space!r}.")
    out = []
    for k, v in space.items():
        key = f"{prefix}{k}"
        if v is None:
            continue
        if isinstance(v, dict) and "type" in v:
            out.append((key, v))
        elif isinstance(v, dict):
            out += _flatten_space(v, key + ".")
        else:
            raise SweepConfigError(f"hpo.space.{key}={v!r}: a searched parameter is a mapping such as "
                                   f"{{type: choice, values: [32, 64]}} (null switches it off).")
    return out


def _parse_param(key: str, spec: dict) -> Param:
    where = f"hpo.space.{key}"
    kind = spec.get("type")
    if kind not in SPACE_TYPES:
        raise SweepConfigError(f"{where}: unknown type {kind!r}; choose one of {', '.join(SPACE_TYPES)}.")
    allowed = set(SPACE_TYPES[kind]) | {"type"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise SweepConfigError(f"{where}: {kind} takes {', '.join(SPACE_TYPES[kind])}, not {', '.join(extra)}.")
    missing = [f for f in SPACE_TYPES[kind] if spec.get(f) is None]
    if missing:
        raise SweepConfigError(f"{where}: {kind} needs {', '.join(missing)}.")
    if kind in ("choice", "grid"):
        values = spec["values"]
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise SweepConfigError(f"{where}: {kind} needs a non-empty list of values, got {values!r}.")
        return Param(key, kind, values=[_plain(v) for v in values])
    low, high = spec["low"], spec["high"]
    check = _is_int if kind == "randint" else _is_number
    if not (check(low) and check(high)):
        what = "integers" if kind == "randint" else "numbers"
        raise SweepConfigError(f"{where}: low and high must be {what}, got low={low!r} high={high!r}.")
    if not low < high:
        raise SweepConfigError(f"{where}: low={low} must be less than high={high}.")
    if kind == "loguniform" and low <= 0:
        raise SweepConfigError(f"{where}: loguniform needs 0 < low (got low={low}); use uniform for ranges "
                               "that include zero.")
    return Param(key, kind, low=_plain(low), high=_plain(high))


def _resolve_alias(param: Param, base: dict) -> Param:
    """`lr` -> the learning rate that drives training; and refuse a learning rate that would have no effect."""
    scheduler = str((base.get("training", {}).get("scheduler") or {}).get("name") or "none").lower()
    if param.key == LR_ALIAS:
        param.alias = LR_ALIAS
        param.key = "training.scheduler.max_lr" if scheduler == "onecycle" else "training.optimizer.lr"
    elif param.key == "training.optimizer.lr" and scheduler == "onecycle":
        raise SweepConfigError(
            "hpo.space.training.optimizer.lr has no effect with training.scheduler.name=onecycle (OneCycleLR sets "
            "the learning rate from training.scheduler.max_lr). Search `lr` (the effective learning rate) or "
            "training.scheduler.max_lr instead, or choose another schedule.")
    return param


def _check_key(param: Param, base: dict) -> None:
    key = param.key
    where = f"hpo.space.{param.alias or key}"
    if key.split(".")[0] in NOT_SEARCHABLE_SECTIONS:
        raise SweepConfigError(f"{where}: the {key.split('.')[0]} section configures the sweep itself and "
                               "cannot be searched.")
    if key in NOT_SEARCHABLE:
        raise SweepConfigError(f"{where}: cannot be searched: {NOT_SEARCHABLE[key]}.")
    found, value = _lookup(base, key)
    if not found:
        close = difflib.get_close_matches(key, _leaf_keys(base), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise SweepConfigError(
            f"{where}: {key!r} is not a key of the training configuration (model={base['model']['name']}).{hint} "
            f"Keys the recipe lacks can be added first, e.g. +{key}=VALUE.")
    if isinstance(value, dict):
        raise SweepConfigError(f"{where}: {key!r} is a config section, not a value; search one of its keys "
                               f"({', '.join(list(value)[:6])}).")


def parse_space(space, base: dict) -> list[Param]:
    """Validate `hpo.space` against the composed training config; returns the parameters in order."""
    if space is None or (isinstance(space, dict) and not space):
        raise SweepConfigError(
            "hpo.space is empty: nothing to search. Add parameters, e.g. "
            "'+hpo.space.training.optimizer.lr={type:loguniform,low:1e-4,high:1e-2}'.")
    entries = _flatten_space(space)
    if not entries:
        raise SweepConfigError("hpo.space is empty: every parameter is switched off (null). Add at least one, "
                               "e.g. '+hpo.space.model.dropout={type:uniform,low:0,high:0.3}'.")
    params, seen = [], {}
    for key, spec in entries:
        param = _resolve_alias(_parse_param(key, spec), base)
        _check_key(param, base)
        if param.key in seen:
            raise SweepConfigError(f"hpo.space names {param.key!r} twice (as {seen[param.key]!r} and {key!r}).")
        seen[param.key] = key
        params.append(param)
    return params


def _merge_defaults(hpo: dict) -> dict:
    out = copy.deepcopy(HPO_DEFAULTS)
    for k, v in (hpo or {}).items():
        if isinstance(out.get(k), dict) and isinstance(v, dict) and k != "env":
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    unknown = sorted(set(out) - set(HPO_DEFAULTS))
    if unknown:
        close = {u: difflib.get_close_matches(u, HPO_DEFAULTS, n=1) for u in unknown}
        hints = ", ".join(f"hpo.{u}" + (f" (hpo.{c[0]}?)" if c else "") for u, c in close.items())
        raise SweepConfigError(f"unknown sweep option(s): {hints}.")
    return out


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else path


def forwarded_env(extra: dict | None = None) -> dict[str, str]:
    """The environment trial processes get: TINYHUB_*/HF_*/HUGGINGFACE_*/WANDB_* from here (paths made
    absolute), then `extra` (hpo.env)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES) and not SECRET_ENV.search(k)}
    for k in PATH_ENV_VARS:
        if env.get(k):
            env[k] = _absolute(env[k])
    for k, v in (extra or {}).items():
        env[str(k)] = "" if v is None else str(v)
    return env


def prepare_sweep(cfg: DictConfig | dict) -> SweepPlan:
    """Validate a sweep configuration (sweep.yaml composed with overrides) and return the plan. Raises
    SweepConfigError (a ConfigError) with the offending option and the fix; never imports Ray."""
    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # an interpolation that does not resolve
            raise SweepConfigError(f"the sweep configuration does not resolve: {e}") from e
    base = copy.deepcopy(cfg)
    base.pop("hydra", None)
    if not isinstance(base.get("hpo"), dict):
        raise SweepConfigError("the configuration has no hpo section: compose it with config_name='sweep' "
                               "(tinyhub sweep ...), or give your recipe `defaults: [sweep, _self_]`.")
    hpo = _merge_defaults(base.pop("hpo"))

    metric, mode = hpo["metric"], hpo["mode"]
    if metric not in VALIDATION_METRICS:
        raise SweepConfigError(
            f"hpo.metric={metric!r}: a sweep selects on the validation split only (val_accuracy or val_loss); the "
            "test split is never used to choose.")
    if mode not in ("max", "min"):
        raise SweepConfigError(f"hpo.mode={mode!r}: choose max or min.")
    if metric == "val_accuracy" and mode != "max" or metric == "val_loss" and mode != "min":
        raise SweepConfigError(f"hpo.metric={metric} with hpo.mode={mode} would select the worst trial.")

    data, training = base["data"], base["training"]
    val_size = data.get("val_size") or hpo["val_size"]
    if not _is_int(val_size) or val_size <= 0:
        raise SweepConfigError(
            f"hpo.val_size={hpo['val_size']!r} (data.val_size={data.get('val_size')!r}): a sweep needs a "
            "validation split carved from the training images to compare trials, and never chooses on the test "
            "split. Set hpo.val_size to a positive number of images, e.g. hpo.val_size=5000.")
    data["val_size"] = int(val_size)

    num_samples = hpo["num_samples"]
    if not _is_int(num_samples) or num_samples < 1:
        raise SweepConfigError(f"hpo.num_samples={num_samples!r}: need a positive integer.")
    epochs = training.get("epochs")
    if not _is_int(epochs) or epochs < 1:
        raise SweepConfigError(f"training.epochs={epochs!r}: need a positive integer.")
    if training.get("resume"):
        raise SweepConfigError("training.resume must be null for a sweep: every trial starts fresh.")

    search = str(hpo["search"]).lower()
    if search not in ("random", "optuna"):
        raise SweepConfigError(f"hpo.search={hpo['search']!r}: choose random or optuna.")
    if search == "optuna" and importlib.util.find_spec("optuna") is None:
        raise SweepConfigError("hpo.search=optuna needs the optuna package: pip install 'tinyhub[hpo]' "
                               "(or pip install optuna), or use hpo.search=random.")
    seed = hpo["seed"]
    if seed is not None and not _is_int(seed):
        raise SweepConfigError(f"hpo.seed={seed!r}: an integer or null.")

    sched = dict(hpo["scheduler"] or {})
    sched["name"] = str(sched.get("name") or "none").lower()
    if sched["name"] not in ("asha", "none"):
        raise SweepConfigError(f"hpo.scheduler.name={sched['name']!r}: choose asha or none.")
    if sched["name"] == "asha":
        grace, factor = sched.get("grace_period"), sched.get("reduction_factor")
        if not _is_int(grace) or grace < 1:
            raise SweepConfigError(f"hpo.scheduler.grace_period={grace!r}: a positive number of epochs.")
        if grace > epochs:
            raise SweepConfigError(f"hpo.scheduler.grace_period={grace} exceeds training.epochs={epochs}: ASHA "
                                   "could never stop a trial. Lower it or use hpo.scheduler.name=none.")
        if not _is_number(factor) or factor <= 1:
            raise SweepConfigError(f"hpo.scheduler.reduction_factor={factor!r}: a number greater than 1.")
        sched["max_t"] = epochs

    resources = dict(hpo["resources"] or {})
    unknown = sorted(set(resources) - {"cpu", "gpu"})
    if unknown:
        raise SweepConfigError(f"hpo.resources takes cpu and gpu, not {', '.join(unknown)}.")
    cpu, gpu = resources.get("cpu", 1), resources.get("gpu", 0) or 0
    if not _is_number(cpu) or cpu <= 0:
        raise SweepConfigError(f"hpo.resources.cpu={cpu!r}: a positive number of CPUs per trial.")
    if not _is_number(gpu) or gpu < 0:
        raise SweepConfigError(f"hpo.resources.gpu={gpu!r}: 0, a fraction of a GPU, or a number of GPUs.")
    resources = {"cpu": cpu, "gpu": gpu}
    for opt in ("max_concurrent", "num_cpus"):
        v = hpo[opt]
        if v is not None and (not _is_int(v) or v < 1):
            raise SweepConfigError(f"hpo.{opt}={v!r}: a positive integer or null.")

    address = hpo["address"] or os.environ.get("RAY_ADDRESS") or None
    if not isinstance(hpo["env"] or {}, dict):
        raise SweepConfigError("hpo.env must be a mapping of environment variable names to values.")
    secrets = sorted(str(k) for k in (hpo["env"] or {}) if SECRET_ENV.search(str(k)))
    if secrets:
        raise SweepConfigError(
            f"hpo.env.{secrets[0]}: secrets are never passed through a sweep (Ray and sweep_config.yaml would write "
            "them to disk). Set them in the environment that starts the sweep (and `ray start` on every node of a "
            "cluster), or log in once with `hf auth login` / `wandb login`.")
    if hpo["wandb"] not in (True, False):
        raise SweepConfigError(f"hpo.wandb={hpo['wandb']!r}: true or false.")
    if hpo["wandb"] and importlib.util.find_spec("wandb") is None:
        raise SweepConfigError("hpo.wandb=true needs the wandb package: pip install wandb.")

    # Every path a trial reads or writes is absolute: Ray runs trials in their own working directories.
    data["dir"] = _absolute(data.get("dir"))
    data["cache_dir"] = _absolute(data.get("cache_dir"))
    if data.get("dataset") and os.path.isdir(str(data["dataset"])):
        data["dataset"] = _absolute(data["dataset"])
    base["run"]["root"] = _absolute(base["run"].get("root") or "runs")

    params = parse_space(hpo["space"], base)
    if search == "optuna":
        grid = [p.key for p in params if p.type == "grid"]
        if grid:
            raise SweepConfigError(f"hpo.space: grid parameters ({', '.join(grid)}) need hpo.search=random; "
                                   "with optuna use choice.")

    model_name = base["model"]["name"]
    from tinyhub import modeling

    model_kwargs = {k: v for k, v in base["model"].items() if k != "name"}
    modeling.create_model(model_name, **model_kwargs)  # unknown model or over budget: fail before Ray

    name = hpo["name"] or f"{model_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    # Not under run.root by default: `tinyhub push --all runs/` publishes every finished run it finds there,
    # and trial runs (trained without their validation images, for few epochs) are not zoo models.
    sweep_dir = Path(hpo["dir"] or Path("sweeps") / name).expanduser().resolve()
    if sweep_dir.exists() and (not sweep_dir.is_dir() or any(sweep_dir.iterdir())):
        raise SweepConfigError(f"hpo.dir={str(sweep_dir)!r} already exists and is not empty; choose another "
                               "hpo.dir (or hpo.name).")

    env = forwarded_env(hpo["env"])
    if hpo["wandb"]:
        env.setdefault("WANDB_RUN_GROUP", name)
        env.setdefault("WANDB_JOB_TYPE", "sweep-trial")
    group = model_group(model_name)
    return SweepPlan(
        name=name, dir=sweep_dir, base=base, params=params, hpo=hpo, metric=metric, mode=mode,
        num_samples=int(num_samples), epochs=int(epochs), val_size=int(val_size), search=search, seed=seed,
        scheduler=sched, resources=resources, max_concurrent=hpo["max_concurrent"], address=address,
        num_cpus=hpo["num_cpus"], env=env, wandb=bool(hpo["wandb"]), model_group=group,
        baseline=compose_baseline(group),
    )


# ---------------------------------------------------------------------------------------------------------
# The trial (runs in a Ray worker)
# ---------------------------------------------------------------------------------------------------------
def trial_config(base: dict, sampled: dict) -> dict:
    """The training config of one trial: the sweep's config with the sampled values written over it."""
    cfg = copy.deepcopy(base)
    for key, value in sampled.items():
        _set_key(cfg, key, _plain(value))
    return cfg


def _better(a, b, mode: str) -> bool:
    return b is None or (a > b if mode == "max" else a < b)


def _trainable(config: dict, *, base: dict, metric: str, mode: str, env: dict, report_to: str,
               trials_dir: str, threads: int, project: str = "tinyhub") -> None:
    """One Tune trial: trainer.train() on the sampled config, validation metrics reported after every epoch."""
    os.environ.update(env)  # also when Ray was started elsewhere and runtime_env did not carry them
    from ray import tune

    from .engine import train

    trial_id = tune.get_context().get_trial_id()
    cfg = trial_config(base, config)
    cfg["report_to"] = report_to
    cfg["tracker_project"] = project
    cfg["progress"] = False
    cfg["run"]["dir"] = str(Path(trials_dir) / trial_id)
    cfg["run"]["name"] = None
    cfg["training"]["checkpoint_every"] = 0  # nothing resumes a trial; the best recipe is trained afresh
    if not cfg["training"].get("threads"):
        cfg["training"]["threads"] = threads
    best = {"value": None, "epoch": None}

    def on_epoch_end(record: dict) -> None:
        if metric not in record:
            raise ConfigError(f"hpo.metric={metric} is not among the epoch metrics "
                              f"({', '.join(k for k in record if k.startswith('val_'))}).")
        value = float(record[metric])
        if _better(value, best["value"], mode):
            best.update(value=value, epoch=record["epoch"])
        report = {k: record[k] for k in ("epoch", "val_accuracy", "val_loss", "train_loss", "train_accuracy", "lr",
                                         "epoch_seconds") if k in record}
        report.update({metric: value, f"best_{metric}": best["value"], "best_epoch": best["epoch"]})
        # Test metrics are deliberately not reported: they never take part in the choice.
        if record["epoch"] >= epochs:
            final.append(report)  # reported once train() has written the run (a stop now would cut that off)
        else:
            tune.report(report)  # ASHA may stop the trial here

    epochs, final = int(cfg["training"]["epochs"]), []
    train(cfg, on_epoch_end=on_epoch_end)
    for report in final:
        tune.report(report)


# ---------------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------------
def _require_ray():
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise SweepConfigError("hyperparameter search needs Ray Tune: pip install 'tinyhub[hpo]' "
                               "(or pip install 'ray[tune]' optuna).")


def _preflight_data(plan: SweepPlan) -> None:
    """Local sweeps: load the data once here, so a wrong data.dir fails before any trial and the per-node tensor
    cache is warm when the trials start (on a cluster every node loads and caches its own copy)."""
    from .data import load_from_config

    load_from_config(plan.base["data"], val_size=plan.val_size)


def _tune_space(params: list[Param]) -> dict:
    from ray import tune

    space = {}
    for p in params:
        if p.type == "loguniform":
            space[p.key] = tune.loguniform(p.low, p.high)
        elif p.type == "uniform":
            space[p.key] = tune.uniform(p.low, p.high)
        elif p.type == "randint":
            space[p.key] = tune.randint(p.low, p.high + 1)  # Ray's upper bound is exclusive; ours is not
        elif p.type == "choice":
            space[p.key] = tune.choice(list(p.values))
        else:
            space[p.key] = tune.grid_search(list(p.values))
    return space


def _connect(plan: SweepPlan) -> bool:
    """Start a local Ray or join a cluster (hpo.address / RAY_ADDRESS). True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"runtime_env": {"env_vars": plan.env}, "log_to_driver": True}
    if plan.local:
        kwargs.update(num_cpus=plan.num_cpus, include_dashboard=False)
    try:
        # "local" always starts a fresh instance; address=None would join whatever /tmp/ray/ray_current_cluster
        # names, even a cluster that has since died.
        ray.init(address="local" if plan.local else plan.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "a new local Ray instance" if plan.local else f"the Ray cluster at {plan.address!r}"
        hint = "" if plan.local else " Is it running (`ray start --head` on the head node)? Or use hpo.address=local."
        raise SweepConfigError(f"could not start or join {where}: {str(e).strip().rstrip('.')}.{hint}") from e
    return True


def run_sweep(cfg_or_plan: DictConfig | dict | SweepPlan, *, echo: bool = True) -> dict:
    """Run the sweep and write its folder; returns the summary written to results.json (`best` is None when no
    trial finished an epoch). Invalid configurations raise SweepConfigError before Ray starts."""
    plan = cfg_or_plan if isinstance(cfg_or_plan, SweepPlan) else prepare_sweep(cfg_or_plan)
    _require_ray()
    if plan.local:
        _preflight_data(plan)

    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    started_ray = _connect(plan)
    plan.dir.mkdir(parents=True, exist_ok=True)
    (plan.dir / "sweep_config.yaml").write_text(
        OmegaConf.to_yaml(OmegaConf.create({**plan.base, "hpo": plan.hpo})))
    t0 = time.time()
    started_at = datetime.now().isoformat(timespec="seconds")
    try:
        if plan.scheduler["name"] == "asha":
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=plan.epochs,
                                      grace_period=plan.scheduler["grace_period"],
                                      reduction_factor=plan.scheduler["reduction_factor"])
        else:
            scheduler = FIFOScheduler()
        if plan.search == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            search_alg, max_concurrent = OptunaSearch(seed=plan.seed), plan.max_concurrent
        else:  # Tune's random/grid generator limits concurrency itself (max_concurrent_trials is for Searchers)
            from ray.tune.search.basic_variant import BasicVariantGenerator

            search_alg = BasicVariantGenerator(max_concurrent=plan.max_concurrent or 0, random_state=plan.seed)
            max_concurrent = None
        trainable = tune.with_parameters(
            _trainable, base=plan.base, metric=plan.metric, mode=plan.mode, env=plan.env,
            report_to="wandb" if plan.wandb else "none", trials_dir=str(plan.dir / "trials"),
            project=str(plan.hpo.get("project") or "tinyhub"),
            threads=max(1, int(plan.resources["cpu"])))
        trainable = tune.with_resources(trainable, {"cpu": plan.resources["cpu"], "gpu": plan.resources["gpu"]})
        tuner = tune.Tuner(
            trainable,
            param_space=_tune_space(plan.params),
            tune_config=tune.TuneConfig(
                metric=plan.metric, mode=plan.mode, num_samples=plan.num_samples, scheduler=scheduler,
                search_alg=search_alg, max_concurrent_trials=max_concurrent,
                trial_dirname_creator=lambda trial: trial.trial_id,
            ),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(plan.dir),
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            ),
        )
        grid = tuner.fit()
        trials = _collect(plan, grid)
        ray_version = ray.__version__
    finally:
        if started_ray:
            ray.shutdown()
    summary = _summarize(plan, trials, started_at, time.time() - t0, ray_version)
    write_outputs(plan, summary)
    if echo:
        logger.info("\n" + markdown_table(summary))
        if summary["best"]:
            b = summary["best"]
            logger.info(f"\nBest: trial {b['trial']} | {plan.metric} {b['value']:.4g} at epoch {b['epoch']}\n"
                  f"  best recipe: {plan.dir / 'best_recipe.yaml'}\n"
                  f"  train it:    tinyhub train --config-dir {plan.dir} --config-name best_recipe\n"
                  f"  report:      {plan.dir / 'report.md'}")
        else:
            logger.info(f"\nNo trial reported {plan.metric}; see {plan.dir / 'results.md'} and the errors under "
                  f"{plan.dir / 'tune'}.")
    return summary


def _error_line(error) -> str:
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _collect(plan: SweepPlan, grid) -> list[dict]:
    trials = []
    for result in grid:
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or Path(str(result.path)).name
        history = []
        try:
            df = result.metrics_dataframe
            if df is not None and plan.metric in df:
                history = [{"epoch": int(e), plan.metric: float(v)}
                           for e, v in zip(df["epoch"], df[plan.metric]) if v == v]
        except Exception:
            history = []
        epochs_run = int(metrics.get("epoch") or 0)
        best = metrics.get(f"best_{plan.metric}")
        if result.error is not None:
            status = "ERROR"
        elif epochs_run == 0:
            status = "NOT RUN"  # the sweep was interrupted (Ctrl+C) before this trial reported an epoch
        elif plan.scheduler.get("name") == "none" and epochs_run < plan.epochs:
            status = "INTERRUPTED"  # nothing stops trials early without a scheduler
        else:
            status = "TERMINATED"
        trials.append({
            "trial": trial_id,
            "status": status,
            "config": {k: _plain(v) for k, v in (result.config or {}).items()},
            "best": None if best is None else float(best),
            "best_epoch": metrics.get("best_epoch"),
            "last": None if plan.metric not in metrics else float(metrics[plan.metric]),
            "epochs_run": epochs_run,
            "stopped_early": status == "TERMINATED" and epochs_run < plan.epochs,
            "error": None if result.error is None else _error_line(result.error),
            "run_dir": str(plan.dir / "trials" / trial_id),
            "history": history,
        })
    trials.sort(key=lambda t: t["trial"])
    return trials


def _rank_key(plan: SweepPlan):
    sign = -1.0 if plan.mode == "max" else 1.0

    def key(t):
        if t["best"] is None:
            return (1, 0.0, 0, t["trial"])
        return (0, sign * t["best"], -t["epochs_run"], t["trial"])

    return key


def _summarize(plan: SweepPlan, trials: list[dict], started_at: str, wall: float, ray_version: str) -> dict:
    ranked = sorted(trials, key=_rank_key(plan))
    for i, t in enumerate(ranked, 1):
        t["rank"] = i if t["best"] is not None else None
    winner = ranked[0] if ranked and ranked[0]["best"] is not None else None
    best = None
    if winner:
        best = {"trial": winner["trial"], "value": winner["best"], "epoch": winner["best_epoch"],
                "epochs_run": winner["epochs_run"], "config": winner["config"], "run_dir": winner["run_dir"],
                "recipe": str(plan.dir / "best_recipe.yaml")}
    return {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "name": plan.name,
        "sweep_dir": str(plan.dir),
        "model": plan.base["model"]["name"],
        "metric": plan.metric,
        "mode": plan.mode,
        "selection": f"best {plan.metric} on the validation split ({plan.val_size} training images held out); "
                     "the test split is not used",
        "val_size": plan.val_size,
        "epochs": plan.epochs,
        "num_samples": plan.num_samples,
        "search": plan.search,
        "seed": plan.seed,
        "scheduler": plan.scheduler,
        "resources": plan.resources,
        "space": {p.alias or p.key: {**p.as_dict(), "key": p.key} for p in plan.params},
        "ray": {"version": ray_version, "address": plan.address or "local"},
        "started": started_at,
        "wall_seconds": round(wall, 1),
        "trials": ranked,
        "best": best,
    }


# ---------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _columns(summary: dict) -> list[str]:
    return [spec["key"] for spec in summary["space"].values()]


def markdown_table(summary: dict) -> str:
    keys = _columns(summary)
    metric = summary["metric"]
    head = ["rank", "trial", *keys, f"best {metric}", "at epoch", "epochs run", "stopped early", "status"]
    rows = []
    for t in summary["trials"]:
        row = [_fmt(t["rank"]), t["trial"], *(_fmt(t["config"].get(k)) for k in keys), _fmt(t["best"]),
               _fmt(t["best_epoch"]), f"{t['epochs_run']}/{summary['epochs']}", _fmt(t["stopped_early"]),
               t["status"] + (f": {t['error']}" if t["error"] else "")]
        rows.append([c.replace("|", "\\|") for c in row])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _csv(summary: dict) -> str:
    keys = _columns(summary)
    metric = summary["metric"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "trial", *keys, f"best_{metric}", "best_epoch", "epochs_run", "stopped_early", "status",
                "error", "run_dir"])
    for t in summary["trials"]:
        values = [json.dumps(v) if isinstance(v, list) else v for v in (t["config"].get(k) for k in keys)]
        w.writerow([t["rank"] or "", t["trial"], *values, "" if t["best"] is None else t["best"],
                    t["best_epoch"] or "", t["epochs_run"], t["stopped_early"], t["status"], t["error"] or "",
                    t["run_dir"]])
    return buf.getvalue()


def _diff(base: dict, new: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in new.items():
        path = f"{prefix}{k}"
        if path in RECIPE_EXCLUDE or path in NOT_SEARCHABLE_SECTIONS:
            continue
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            sub = _diff(base[k], v, path + ".")
            if sub:
                out[k] = sub
        elif k not in base or base[k] != v:
            out[k] = v
    return out


def best_recipe_yaml(plan: SweepPlan, best: dict) -> str:
    """The winning trial as a recipe on top of train.yaml and its model recipe: the sampled values plus every
    other way the sweep's training config differed from them (CLI overrides such as training.epochs)."""
    import yaml

    final = trial_config(plan.base, best["config"])
    body = _diff(plan.baseline, final)
    for key, value in best["config"].items():
        _set_key(body, key, _plain(value))
    defaults = ["train", *([{"override /model": plan.model_group}] if plan.model_group else []), "_self_"]
    searched = ", ".join(f"{k}={_fmt(_plain(v))}" for k, v in best["config"].items())
    header = (
        f"# Best configuration of sweep {plan.name} ({plan.dir}).\n"
        f"# Trial {best['trial']}: best {plan.metric} {best['value']:.4g} at epoch {best['epoch']} "
        f"(validation split of {plan.val_size} training images).\n"
        f"# Searched: {searched}\n"
        f"# Train it:  tinyhub train --config-dir {plan.dir} --config-name best_recipe\n"
        f"# This recipe trains on the whole training split (data.val_size from train.yaml) and reports the test\n"
        f"# split; add data.val_size={plan.val_size} to repeat the trial exactly.\n"
    )
    text = yaml.safe_dump({"defaults": defaults}, sort_keys=False, default_flow_style=False)
    text += "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=None)
    return header + text


def _report(plan: SweepPlan, summary: dict) -> str:
    best = summary["best"]
    n = len(summary["trials"])
    errors = sum(t["status"] == "ERROR" for t in summary["trials"])
    stopped = sum(bool(t["stopped_early"]) for t in summary["trials"])
    sched = plan.scheduler
    if sched["name"] == "asha":
        sched_txt = (f"ASHA (grace period {sched['grace_period']} epochs, reduction factor "
                     f"{sched['reduction_factor']}, max_t {sched['max_t']} epochs)")
    else:
        sched_txt = "none (every trial runs all epochs)"
    lines = [
        f"# Sweep {plan.name}",
        "",
        f"- model: `{summary['model']}`, {plan.epochs} epochs per trial at most",
        f"- selection: {summary['selection']}",
        f"- search: {plan.search}, {plan.num_samples} sample(s){'' if plan.seed is None else f', seed {plan.seed}'}",
        f"- scheduler: {sched_txt}",
        f"- resources per trial: {plan.resources['cpu']} CPU, {plan.resources['gpu']} GPU; "
        f"Ray {summary['ray']['version']} ({summary['ray']['address']})",
        f"- trials: {n} ({stopped} stopped early, {errors} failed), {summary['wall_seconds']:.0f} s wall, started "
        f"{summary['started']}",
        "",
        "## Search space",
        "",
        "| parameter | config key | distribution |",
        "|---|---|---|",
        *(f"| `{name}` | `{p.key}` | {p.describe()} |" for name, p in ((p.alias or p.key, p) for p in plan.params)),
        "",
        "## Trials",
        "",
        markdown_table(summary),
        "",
    ]
    if best:
        lines += [
            "## Best configuration",
            "",
            f"Trial `{best['trial']}`: {plan.metric} **{best['value']:.4g}** at epoch {best['epoch']} "
            f"(ran {best['epochs_run']} of {plan.epochs} epochs).",
            "",
            *(f"- `{k}` = `{_fmt(_plain(v))}`" for k, v in best["config"].items()),
            "",
            "Train it on the whole training split and measure it on the test split:",
            "",
            "```bash",
            f"tinyhub train --config-dir {plan.dir} --config-name best_recipe",
            "```",
            "",
        ]
    else:
        lines += ["No trial reported a validation metric; the errors are in the table above and under "
                  f"`{plan.dir / 'tune'}`.", ""]
    lines += ["The test split was not reported to Tune and played no part in this choice.", ""]
    return "\n".join(lines)


def write_outputs(plan: SweepPlan, summary: dict) -> None:
    plan.dir.mkdir(parents=True, exist_ok=True)
    (plan.dir / "results.md").write_text(markdown_table(summary) + "\n")
    (plan.dir / "results.csv").write_text(_csv(summary))
    if summary["best"]:
        (plan.dir / "best_recipe.yaml").write_text(best_recipe_yaml(plan, summary["best"]))
    (plan.dir / "report.md").write_text(_report(plan, summary))
    write_json_atomic(plan.dir / "results.json", summary)
