"""Preparing and running a sweep: the plan, Ray Tune's trials, the best trial (the package's docstring says what a
sweep writes)."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from tinyhub.utils.files import OUTPUT_MARKER, mark_output_folder, write_text_atomic

from ..config import compose_baseline, describe_value, differences, model_group, plain_value
from ..record import SweepBest, SweepSummary, SweepTrial, load_run
from ..schema import HpoConfig, SweepConfig, check_hpo, checked, plain_config, typed_config, with_values
from .report import console_text, write_outputs
from .space import Param, SweepConfigError, parse_space, tune_space

logger = logging.getLogger(__name__)

#: What each trial reports to Tune after every epoch. Test metrics never: they take no part in the choice.
REPORTED = ("epoch", "val_accuracy", "val_loss", "train_loss", "train_accuracy", "lr", "epoch_seconds")
#: Driver environment variables that reach every trial process (plus `hpo.env`).
FORWARDED_ENV_PREFIXES = ("TINYHUB_", "HF_", "HUGGINGFACE_", "WANDB_")
#: Secrets are never forwarded: Ray writes a runtime_env's variables into its session logs. Trials read them
#: from their own process environment (a local Ray's workers inherit the driver's; on a cluster, each node's
#: `ray start` environment) or from the credential files `hf auth login` / `wandb login` leave.
SECRET_ENV = re.compile(r"TOKEN|API_KEY|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
#: Of those, the ones holding paths: made absolute, because Ray runs each trial in its own working directory.
PATH_ENV_VARS = ("TINYHUB_DATA_DIR", "TINYHUB_CACHE", "TINYHUB_TEST_DATA", "HF_HOME", "HF_DATASETS_CACHE",
                 "HF_HUB_CACHE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")


@dataclass
class SweepPlan:
    """Everything a sweep needs, validated; `run_sweep` only adds Ray."""

    name: str
    dir: Path
    base: dict                    # the resolved training config every trial starts from (no hpo section)
    params: list[Param]
    hpo: HpoConfig                # the hpo section, checked, its names in lower case
    val_size: int
    scheduler: dict
    address: str | None
    env: dict[str, str]
    model_group: str | None       # trainer/recipes/model/<group>.yaml the best recipe builds on
    baseline: dict = field(default_factory=dict)  # train.yaml + that model recipe: what the best recipe overrides

    metric = property(lambda self: self.hpo.metric)
    mode = property(lambda self: self.hpo.mode)
    epochs = property(lambda self: typed_config(self.base, validate=False).training.epochs)
    num_samples = property(lambda self: self.hpo.num_samples)
    search = property(lambda self: self.hpo.search)
    resume = property(lambda self: self.hpo.resume)

    @property
    def local(self) -> bool:
        """A new Ray instance on this machine (not a cluster)."""
        return self.address in (None, "local")


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else path


def forwarded_env(extra: dict | None = None) -> dict[str, str]:
    """The environment trial processes get: TINYHUB_*/HF_*/HUGGINGFACE_*/WANDB_* from here (paths made
    absolute), then `extra` (hpo.env)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES) and not SECRET_ENV.search(k)}
    env.update({k: _absolute(env[k]) for k in PATH_ENV_VARS if env.get(k)})
    env.update({str(k): "" if v is None else str(v) for k, v in (extra or {}).items()})
    return env


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SweepConfigError(message)


def prepare_sweep(cfg: SweepConfig | DictConfig | dict) -> SweepPlan:
    """Validate a sweep configuration (sweep.yaml composed with overrides) and return the plan. Raises
    SweepConfigError (a ConfigError) with the offending option and the fix; never imports Ray."""
    if isinstance(cfg, SweepConfig):  # load_config(..., config_name="sweep")
        cfg = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # an interpolation that does not resolve
            raise SweepConfigError(f"the sweep configuration does not resolve: {e}") from e
    base = copy.deepcopy(cfg)
    base.pop("hydra", None)
    _require(isinstance(base.get("hpo"), dict), "the configuration has no hpo section: compose it with "
             "config_name='sweep' (tinyhub sweep ...), or give your recipe `defaults: [sweep, _self_]`.")
    typed_hpo = checked(HpoConfig, base.pop("hpo"), "hpo.", SweepConfigError)
    check_hpo(typed_hpo, SweepConfigError)  # every declared limit and choice of the hpo section
    hpo = dataclasses.replace(  # the names as Tune spells them, whatever case they were given in
        typed_hpo, metric=typed_hpo.metric.lower(), mode=typed_hpo.mode.lower(), search=typed_hpo.search.lower(),
        scheduler=dataclasses.replace(typed_hpo.scheduler, name=typed_hpo.scheduler.name.lower()))
    metric, mode, search = hpo.metric, hpo.mode, hpo.search
    recipe = typed_config(base, validate=False)  # read by attribute; values are checked once below
    epochs = recipe.training.epochs
    _require(mode == {"val_accuracy": "max", "val_loss": "min"}[metric],
             f"hpo.metric={metric} with hpo.mode={mode} would select the worst trial.")
    val_size = recipe.data.val_size or typed_hpo.val_size
    _require(val_size > 0, f"hpo.val_size={typed_hpo.val_size!r} (data.val_size={recipe.data.val_size!r}): a sweep "
             "needs a validation split carved from the training images to compare trials, and never chooses on the "
             "test split. Set hpo.val_size to a positive number of images, e.g. hpo.val_size=5000.")
    _require(not recipe.training.resume, "training.resume must be null for a sweep: every trial starts fresh "
             "(an interrupted sweep continues with hpo.resume=true).")
    _require(search != "optuna" or importlib.util.find_spec("optuna") is not None, "hpo.search=optuna needs the "
             "optuna package: pip install 'tinyhub[hpo]' (or pip install optuna), or use hpo.search=random.")

    sched = dataclasses.asdict(hpo.scheduler)
    if sched["name"] == "asha":
        grace = typed_hpo.scheduler.grace_period
        _require(grace <= epochs, f"hpo.scheduler.grace_period={grace} exceeds training.epochs={epochs}: ASHA could "
                 "never stop a trial. Lower it or use hpo.scheduler.name=none.")
        sched["max_t"] = epochs
    else:
        sched = {"name": "none"}
    secrets = sorted(k for k in hpo.env if SECRET_ENV.search(k))
    _require(not secrets, f"hpo.env.{secrets[0] if secrets else ''}: secrets are never passed through a sweep (Ray "
             "and sweep_config.yaml would write them to disk). Set them in the environment that starts the sweep "
             "(and `ray start` on every node of a cluster), or log in once with `hf auth login` / `wandb login`.")
    _require(not hpo.wandb or importlib.util.find_spec("wandb") is not None,
             "hpo.wandb=true needs the wandb package: pip install wandb.")

    # The trials' recipe: the validation split the sweep scores on, and every path a trial reads or writes made
    # absolute (Ray runs trials in their own working directories).
    data = recipe.data
    dataset = _absolute(data.dataset) if os.path.isdir(str(data.dataset)) else data.dataset
    recipe = dataclasses.replace(
        recipe, run=dataclasses.replace(recipe.run, root=_absolute(recipe.run.root)),
        data=dataclasses.replace(data, val_size=val_size, dir=_absolute(data.dir), dataset=dataset,
                                 cache_dir=_absolute(data.cache_dir)))
    base = plain_config(recipe)

    from ..engine import check_model

    typed = typed_config(base)  # what every trial would refuse, refused once before Ray starts
    check_model(typed)
    params = parse_space(hpo.space, base)
    grid = [p.key for p in params if p.type == "grid"]
    _require(search != "optuna" or not grid, f"hpo.space: grid parameters ({', '.join(grid)}) need "
             "hpo.search=random; with optuna use choice.")
    from tinyhub import modeling

    model_name = typed.model_name
    modeling.create_model(model_name, **typed.model_arguments, param_budget=typed.model["param_budget"])  # before Ray

    # Not under run.root by default: `tinyhub push --all runs/` publishes every finished run it finds there,
    # and trial runs (trained without their validation images, for few epochs) are not zoo models.
    name = hpo.name or (Path(hpo.dir).name if hpo.dir else
                           f"{model_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    sweep_dir = Path(hpo.dir or Path("sweeps") / name).expanduser().resolve()
    if hpo.resume:
        _check_resumable(sweep_dir, base, hpo)
    else:
        _require(not sweep_dir.exists() or (sweep_dir.is_dir() and not any(sweep_dir.iterdir())),
                 f"hpo.dir={str(sweep_dir)!r} already exists and is not empty; choose another hpo.dir (or "
                 "hpo.name), or continue the sweep in it with hpo.resume=true.")
    env = forwarded_env(hpo.env)
    if hpo.wandb:
        env.setdefault("WANDB_RUN_GROUP", name)
        env.setdefault("WANDB_JOB_TYPE", "sweep-trial")
    group = model_group(model_name)
    return SweepPlan(name=name, dir=sweep_dir, base=base, params=params, hpo=hpo, val_size=val_size,
                     scheduler=sched, address=hpo.address or os.environ.get("RAY_ADDRESS") or None, env=env,
                     model_group=group, baseline=compose_baseline(group))


def _check_resumable(sweep_dir: Path, base: dict, hpo: HpoConfig) -> None:
    """hpo.resume continues the sweep in hpo.dir with the configuration it started with, or nothing."""
    saved_file = sweep_dir / "sweep_config.yaml"
    _require(saved_file.is_file() and (sweep_dir / "tune").is_dir(), f"hpo.resume=true: {sweep_dir} holds no "
             "sweep to continue (no sweep_config.yaml and tune/); give hpo.dir of the interrupted sweep.")
    saved = OmegaConf.to_container(OmegaConf.load(saved_file), resolve=True)
    changed = differences(_as_saved(base, hpo), saved, ignore=("hpo.resume",))
    _require(not changed, f"hpo.resume=true: the sweep in {sweep_dir} ran with another configuration ("
             + "; ".join(f"{k}: then {describe_value(theirs)}, now {describe_value(ours)}" for k, ours, theirs
                         in changed) + "). Resume with the same command line plus hpo.resume=true.")


def _as_saved(base: dict, hpo: HpoConfig) -> dict:
    """The configuration a sweep runs with, as sweep_config.yaml keeps it (and hpo.resume compares it)."""
    return {**base, "hpo": dataclasses.asdict(hpo)}


# ---------------------------------------------------------------------------------------------------------
# The trial (runs in a Ray worker)
# ---------------------------------------------------------------------------------------------------------
def _trainable(config: dict, *, base: dict, env: dict, report_to: str, trials_dir: str, threads: int,
               project: str) -> None:
    """One Tune trial: trainer.train() on the sampled config, validation metrics reported after every epoch."""
    os.environ.update(env)  # also when Ray was started elsewhere and runtime_env did not carry them
    from ray import tune

    from ..engine import train

    run_dir = Path(trials_dir) / tune.get_context().get_trial_id()
    if (run_dir / "results.json").is_file():
        # Finished before a killed driver could record it: on resume its epochs are reported, not trained again.
        for epoch in load_run(run_dir).epochs:
            tune.report({k: v for k, v in epoch.as_dict().items() if k in REPORTED})
        return
    recipe = typed_config(base, validate=False)
    # Tune restarts an interrupted trial (no checkpoints); the best recipe trains afresh. The trial's configuration
    # is the recipe's, typed, with the sampled values and the trial's own place written over it.
    trial = dataclasses.replace(
        recipe, report_to=report_to, tracker_project=project, progress=False,
        run=dataclasses.replace(recipe.run, dir=str(run_dir), name=None),
        training=dataclasses.replace(recipe.training, checkpoint_every=0,
                                     threads=recipe.training.threads or threads))
    cfg = with_values(trial, {key: plain_value(value) for key, value in config.items()})
    epochs, final = recipe.training.epochs, []

    def on_epoch_end(record) -> None:
        report = {k: v for k, v in record.as_dict().items() if k in REPORTED}
        if record.epoch >= epochs:
            final.append(report)  # reported once train() has written the run (a stop now would cut that off)
        else:
            tune.report(report)  # ASHA may stop the trial here

    train(cfg, on_epoch_end=on_epoch_end)
    for report in final:
        tune.report(report)


# ---------------------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------------------
def _connect(plan: SweepPlan) -> bool:
    """Start a local Ray or join a cluster (hpo.address / RAY_ADDRESS). True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    kwargs = {"runtime_env": {"env_vars": plan.env}, "log_to_driver": True}
    if plan.local:
        kwargs.update(num_cpus=plan.hpo.num_cpus, include_dashboard=False)
    try:
        # "local" always starts a fresh instance; address=None would join whatever /tmp/ray/ray_current_cluster
        # names, even a cluster that has since died.
        ray.init(address="local" if plan.local else plan.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "a new local Ray instance" if plan.local else f"the Ray cluster at {plan.address!r}"
        hint = "" if plan.local else " Is it running (`ray start --head` on the head node)? Or use hpo.address=local."
        raise SweepConfigError(f"could not start or join {where}: {str(e).strip().rstrip('.')}.{hint}") from e
    return True


def _tuner(plan: SweepPlan):
    """A new Tuner for the plan, or the interrupted one restored (hpo.resume): finished trials stay as they are,
    unfinished ones run again, samples never started are drawn as before."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    trainable = tune.with_parameters(
        _trainable, base=plan.base, env=plan.env, report_to="wandb" if plan.hpo.wandb else "none",
        trials_dir=str(plan.dir / "trials"), project=plan.hpo.project,
        threads=max(1, int(plan.hpo.resources.cpu)))
    trainable = tune.with_resources(trainable, dataclasses.asdict(plan.hpo.resources))
    if plan.resume:
        return tune.Tuner.restore(str(plan.dir / "tune"), trainable=trainable, resume_unfinished=True)
    if plan.scheduler["name"] == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=plan.epochs,
                                  grace_period=plan.scheduler["grace_period"],
                                  reduction_factor=plan.scheduler["reduction_factor"])
    else:
        scheduler = FIFOScheduler()
    if plan.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg, max_concurrent = OptunaSearch(seed=plan.hpo.seed), plan.hpo.max_concurrent
    else:  # Tune's random/grid generator limits concurrency itself (max_concurrent_trials is for Searchers)
        from ray.tune.search.basic_variant import BasicVariantGenerator

        search_alg = BasicVariantGenerator(max_concurrent=plan.hpo.max_concurrent or 0,
                                           random_state=plan.hpo.seed)
        max_concurrent = None
    return tune.Tuner(
        trainable, param_space=tune_space(plan.params),
        tune_config=tune.TuneConfig(metric=plan.metric, mode=plan.mode, num_samples=plan.num_samples,
                                    scheduler=scheduler, search_alg=search_alg, max_concurrent_trials=max_concurrent,
                                    trial_dirname_creator=lambda trial: trial.trial_id),
        run_config=tune.RunConfig(name="tune", storage_path=str(plan.dir),
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)))


def run_sweep(cfg_or_plan: DictConfig | dict | SweepPlan, *, echo: bool = True) -> SweepSummary:
    """Run (or, with hpo.resume, continue) the sweep and write its folder; returns the summary written to
    sweep.json (`best` is None when no trial finished an epoch). Invalid configurations raise SweepConfigError
    before Ray starts."""
    plan = cfg_or_plan if isinstance(cfg_or_plan, SweepPlan) else prepare_sweep(cfg_or_plan)
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.tune") is None:
        raise SweepConfigError("hyperparameter search needs Ray Tune: pip install 'tinyhub[hpo]' "
                               "(or pip install 'ray[tune]' optuna).")
    if plan.local:  # a wrong data.dir fails before any trial, and the tensor cache is warm when they start
        from ..data import load_from_config

        load_from_config(typed_config(plan.base, validate=False).data)
    import ray

    started_ray = _connect(plan)
    plan.dir.mkdir(parents=True, exist_ok=True)
    if not (plan.dir / OUTPUT_MARKER).is_file():  # so that globs of runs (compare, push --all) skip the sweep
        mark_output_folder(plan.dir, "sweep")
    if not plan.resume:
        write_text_atomic(plan.dir / "sweep_config.yaml", OmegaConf.to_yaml(_as_saved(plan.base, plan.hpo)))
    t0, started_at = time.time(), datetime.now().isoformat(timespec="seconds")
    try:
        summary = summarize(plan, _tuner(plan).fit(), started_at, time.time() - t0, ray.__version__)
    finally:
        if started_ray:
            ray.shutdown()
    write_outputs(summary, plan.base, plan.baseline, plan.model_group)
    if echo:
        logger.info(console_text(summary))
    return summary


# ---------------------------------------------------------------------------------------------------------
# What Tune's ResultGrid says, as tinyhub's summary
# ---------------------------------------------------------------------------------------------------------
def _error_line(error) -> str:
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def summarize(plan: SweepPlan, grid, started_at: str, wall: float, ray_version: str) -> SweepSummary:
    """The summary (sweep.json) from the ResultGrid: each trial's best validation value and its epoch from
    `get_dataframe(filter_metric=...)`, its last epoch from `get_dataframe()`, the winner from
    `get_best_result(scope="all")` (the best of every epoch each trial reported)."""
    metric = plan.metric
    frame = grid.get_dataframe()
    last = {} if frame.empty else frame.set_index("trial_id").to_dict("index")
    frame = grid.get_dataframe(filter_metric=metric, filter_mode=plan.mode) if last else frame
    best_rows = {} if frame.empty else frame.set_index("trial_id").to_dict("index")
    trials = []
    for result in grid:
        trial_id = Path(str(result.path)).name
        row, top = last.get(trial_id, {}), best_rows.get(trial_id, {})
        epochs_run = int(row.get("epoch") or 0) if row.get("epoch") == row.get("epoch") else 0
        history = result.metrics_dataframe
        status = ("ERROR" if result.error is not None else "NOT RUN" if epochs_run == 0 else  # interrupted first
                  "INTERRUPTED" if plan.scheduler["name"] == "none" and epochs_run < plan.epochs else "TERMINATED")
        trials.append(SweepTrial(
            trial=trial_id, status=status,
            config={k: plain_value(v) for k, v in (result.config or {}).items()},
            best=float(top[metric]) if top.get(metric) == top.get(metric) and metric in top else None,
            best_epoch=int(top["epoch"]) if metric in top else None,
            last=float(row[metric]) if metric in row else None,
            epochs_run=epochs_run,
            stopped_early=status == "TERMINATED" and epochs_run < plan.epochs,
            error=None if result.error is None else _error_line(result.error),
            run_dir=str(plan.dir / "trials" / trial_id),
            history=[] if history is None or metric not in history else
                    [{"epoch": int(e), metric: float(v)} for e, v in zip(history["epoch"], history[metric])],
        ))
    winner = None
    if any(t.best is not None for t in trials):
        winner = Path(str(grid.get_best_result(metric=metric, mode=plan.mode, scope="all").path)).name
    sign = -1.0 if plan.mode == "max" else 1.0
    trials.sort(key=lambda t: (t.best is None, t.trial != winner, sign * (t.best or 0), -t.epochs_run, t.trial))
    for i, t in enumerate(trials, 1):
        t.rank = i if t.best is not None else None
    w = trials[0] if winner else None
    return SweepSummary(
        name=plan.name, sweep_dir=str(plan.dir), model=typed_config(plan.base, validate=False).model_name,
        metric=metric, mode=plan.mode,
        selection=f"best {metric} on the validation split ({plan.val_size} training images held out); "
                  "the test split is not used",
        val_size=plan.val_size, epochs=plan.epochs, num_samples=plan.num_samples, search=plan.search,
        seed=plan.hpo.seed, scheduler=plan.scheduler, resources=dataclasses.asdict(plan.hpo.resources),
        space={p.alias or p.key: {**p.as_dict(), "key": p.key} for p in plan.params},
        ray={"version": ray_version, "address": plan.address or "local"}, started=started_at,
        resumed=plan.resume, wall_seconds=round(wall, 1), trials=trials,
        best=w and SweepBest(trial=w.trial, value=w.best, epoch=w.best_epoch, epochs_run=w.epochs_run,
                             config=w.config, run_dir=w.run_dir, recipe=str(plan.dir / "best_recipe.yaml")))
