"""Where a run writes, decided once for the whole process group: a new run directory, or the run a checkpoint
belongs to (resumed only with the same recipe), locked for the whole run. Nothing in a run directory is touched on
a refusal."""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import datetime
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from omegaconf import OmegaConf

from . import checkpoint as ckpt
from .config import RESUME_MAY_CHANGE, describe_value, differences
from .schema import ConfigError, TrainConfig, inert_settings


def member_seeds(cfg: TrainConfig) -> list[int]:
    """The seeds this run trains: `seeds` when several are trained together in one stack, else `seed`."""
    return list(cfg.seeds) if cfg.seeds else [cfg.seed]


def member_run_dirs(run_dir: Path, cfg: TrainConfig) -> list[Path]:
    """Where each trained model's run directory goes: the run directory itself for one seed; <run.dir>/seed_<s>
    for each seed of a stack (the stack's own checkpoints, config and log stay in <run.dir>)."""
    return [run_dir / f"seed_{s}" for s in cfg.seeds] if cfg.seeds else [run_dir]


def resolve_run_dir(cfg: TrainConfig, recipe: dict, state: PartialState,
                     run_scope: contextlib.ExitStack) -> tuple[Path, Path | None, list[dict]]:
    """(run_dir, checkpoint to resume from). The main process decides and holds the run directory's lock for the
    whole run; every rank receives the same answer (with the allowed changes a resume makes, to record them).
    Nothing in the run directory is touched on a refusal."""
    decided = [None, None, []]
    if state.is_main_process:
        try:
            decided = _decide_run_dir(cfg, recipe, run_scope)
        except (ConfigError, ckpt.RunDirBusy) as e:
            decided = ["error", str(e), []]
    broadcast_object_list(decided, from_process=0)
    if decided[0] == "error":
        raise ConfigError(decided[1])
    return Path(decided[0]), (Path(decided[1]) if decided[1] else None), decided[2]


def _decide_run_dir(cfg: TrainConfig, recipe: dict, run_scope: contextlib.ExitStack) -> list:
    resume, run_cfg = cfg.training.resume, cfg.run
    checkpoint = None
    if resume and resume != "auto":
        checkpoint = Path(resume).expanduser().resolve()
        if not (checkpoint / ckpt.STATE_FILE).is_file():
            raise ConfigError(f"training.resume={resume!r} is not a complete checkpoint directory "
                              f"(no {ckpt.STATE_FILE}); use training.resume=auto with run.dir=RUN_DIR.")
        run_dir = checkpoint.parent.parent
    elif run_cfg.dir:
        run_dir = Path(run_cfg.dir).expanduser().resolve()
    elif resume == "auto":
        raise ConfigError("training.resume=auto needs run.dir=PATH (the run to continue).")
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(run_cfg.root).expanduser().resolve()
        seeds = "-".join(str(s) for s in member_seeds(cfg))
        name = run_cfg.name or f"{cfg.model['name']}-s{seeds}-{stamp}"
        run_dir, k = base / name, 1
        while run_dir.exists():
            k += 1
            run_dir = base / f"{name}-{k}"
    created = not run_dir.exists()
    try:
        run_scope.callback(os.close, ckpt.lock_run_dir(run_dir))  # refused at once if another run holds it
    except OSError as e:
        raise ConfigError(f"run.dir={str(run_dir)!r} cannot be created ({e.strerror or e}); choose a folder you "
                          "can write to.") from e
    if created:  # a run that fails before writing anything leaves no empty folder behind
        run_scope.callback(_remove_if_only_lock, run_dir)
    if resume == "auto":
        checkpoint = ckpt.latest_checkpoint(run_dir)
    elif not resume:
        finished = [d for d in member_run_dirs(run_dir, cfg) if (d / "results.json").exists()]
        if finished:
            raise ConfigError(f"run.dir={str(finished[0])!r} already holds a finished run; choose another run.dir, or "
                              "continue it with training.resume=auto.")
        if ckpt.list_checkpoints(run_dir):
            raise ConfigError(f"run.dir={str(run_dir)!r} holds an unfinished run (its last checkpoint is "
                              f"{ckpt.latest_checkpoint(run_dir).name}); continue it with training.resume=auto, "
                              "or choose another run.dir. Nothing was changed.")
    changes = [] if checkpoint is None else _check_resume_config(recipe, run_dir, checkpoint, inert_settings(cfg))
    return [str(run_dir), str(checkpoint) if checkpoint else None, changes]


def _remove_if_only_lock(run_dir: Path) -> None:
    if run_dir.is_dir() and [p.name for p in run_dir.iterdir()] == [ckpt.LOCK_FILE]:
        shutil.rmtree(run_dir, ignore_errors=True)


def _check_resume_config(cfg: dict, run_dir: Path, checkpoint: Path, inert: list[str]) -> list[dict]:
    """Resume continues the run the checkpoint belongs to, or nothing: a different recipe is refused, naming
    every differing key, before the run directory is touched. Returns the allowed changes, to be recorded."""
    saved = ckpt.read_trainer_state(checkpoint).get("config")
    if saved is None and (run_dir / "config.yaml").is_file():  # checkpoints written before they recorded it
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    if saved is None:
        return []
    # A setting the schedule ignores (a checkpoint written before they were left out) changes nothing.
    changed = differences(cfg, saved, ignore=(*RESUME_MAY_CHANGE, *inert))
    if changed:
        listed = "; ".join(f"{key}: checkpoint {describe_value(theirs)}, now {describe_value(ours)}"
                           for key, ours, theirs in changed)
        raise ConfigError(
            f"training.resume: {checkpoint} belongs to a run with another configuration ({listed}). Resume with "
            f"the run's own configuration (only {', '.join(RESUME_MAY_CHANGE)} may change), or start a new "
            "run.dir. Nothing was changed.")
    allowed = differences(cfg, saved, ignore=("run", "hydra", "training.resume", *inert))
    return [{"key": key, "checkpoint": describe_value(theirs), "now": describe_value(ours)}
            for key, ours, theirs in allowed]
