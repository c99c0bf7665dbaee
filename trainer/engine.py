"""The training loop: Accelerate on a device-resident uint8 dataset, one readable function from data to run dir.

data -> augment -> step -> eval -> run artifacts. Cards, evaluation and push read the run directory this
writes; nothing here imports them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import operator
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from tqdm.auto import tqdm

from tinyhub import modeling
from tinyhub.errors import TinyhubError
from tinyhub.files import atomic_path, full_disk_is_one_error

from . import checkpoint as ckpt
from . import host_memory, seeding
from .augment import AugmentConfig, augment_batch
from .config import RESUME_MAY_CHANGE, describe_value, differences, recipe_overrides
from .schema import (TRAIN_LIMITS, ConfigError, OptimizerConfig, RecipeConfig, SchedulerConfig, TrainConfig,
                     check_limits, config_dict, typed_config)
from .data import DataError, DatasetIdentity, load_from_config, shard_batches
from .distill import distillation_loss, load_teachers, soft_targets, teacher_specs
from .evaluation import predict
from .logs import run_log
from .report import write_run_report
from .record import DataRecord, Distillation, EpochRecord, FinalMetrics, RunRecord
from .run_info import EXAMPLES_FILE, environment_info, git_state
from .stack import ModelStack


# Accelerate logs every checkpoint file at INFO; tinyhub logs its own one-line progress instead.
logging.getLogger("accelerate").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)
N_EXAMPLES = 8  # test images saved beside every run (EXAMPLES_FILE), so a card's snippet has real input


class TrainingDiverged(TinyhubError, RuntimeError):
    """The loss became NaN or infinite; nothing of the diverged epoch is saved."""


# ---------------------------------------------------------------------------------------------------------
# Building blocks the loop uses
# ---------------------------------------------------------------------------------------------------------
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "onecycle", "cosine", "plateau")


def build_optimizer(params, opt: OptimizerConfig) -> torch.optim.Optimizer:
    name = opt.name.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                               weight_decay=opt.weight_decay)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay)
    raise ConfigError(f"training.optimizer.name={name!r}: choose sgd, adam or adamw.")


def build_scheduler(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    """Returns (scheduler or None, when it steps: 'step' | 'epoch' | 'plateau' | None)."""
    name = sch.name.lower()
    if name == "none":
        return None, None
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, sch.step_size, sch.gamma), "epoch"
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=sch.max_lr, total_steps=epochs * steps_per_epoch, pct_start=sch.pct_start), "step"
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch, eta_min=sch.min_lr), "step"
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=sch.gamma, patience=sch.patience, min_lr=sch.min_lr), "plateau"
    raise ConfigError(f"training.scheduler.name={name!r}: choose none, step, onecycle, cosine or plateau.")


@dataclasses.dataclass
class TrainStep:
    """One optimisation step of the recipe, for one model or a stack of K: the forward, each model's loss
    (cross-entropy, blended with the teachers' soft targets when distilling), backward, gradient clipping (each
    model by its own norm), the optimizer, a per-batch schedule and the EMA of weights. The training loop runs it;
    `tinyhub bench --profile` times this very function."""

    model: torch.nn.Module  # the bare model or ModelStack: clipping and the EMA read it
    train_model: torch.nn.Module  # what runs the forward: the model as Accelerate prepared (and maybe compiled) it
    optimizer: torch.optim.Optimizer
    accelerator: Accelerator
    criterion: torch.nn.Module
    n_models: int = 1
    grad_clip: float = 0.0
    scheduler: object = None  # stepped after every batch (None when it steps per epoch, or there is none)
    ema: object = None
    teachers: list = dataclasses.field(default_factory=list)
    temperature: float = 4.0
    distill_weight: float = 0.0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: the models' normalised input (model k's images in channels k*C..); y: (N, K) labels; x01: the same
        augmented images in [0, 1], for the teachers. Returns (each model's loss (K,), logits (N, K, classes))."""
        n, k_models = len(y), self.n_models
        logits = self.train_model(x).view(n, k_models, -1)
        losses = torch.stack([self.criterion(logits[:, k].float(), y[:, k]) for k in range(k_models)])
        if self.teachers:  # the same augmented images, each teacher with its own normalisation, in the run's precision
            with self.accelerator.autocast():  # every model's images as one batch: (K*N, C, H, W)
                images = x01.unflatten(1, (k_models, -1)).transpose(0, 1).flatten(0, 1)
                targets = soft_targets(self.teachers, images, self.temperature).view(k_models, n, -1)
            soft = torch.stack([distillation_loss(logits[:, k], targets[k], self.temperature)
                                for k in range(k_models)])
            losses = (1 - self.distill_weight) * losses + self.distill_weight * soft
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(losses.sum())  # model k's weights get exactly the gradient of its own loss
        if self.grad_clip:
            if k_models == 1:
                self.accelerator.clip_grad_norm_(self.train_model.parameters(), self.grad_clip)
            else:
                self.accelerator.unscale_gradients()
                self.model.clip_grad_norm_(self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return losses.detach(), logits


def evaluate(model, images, labels, accelerator, batch_size: int, channels_last: bool = False) -> list[dict]:
    """Loss/accuracy over a whole split, sharded over processes, every image counted exactly once: one result
    per model (a stack's members each see the whole split)."""
    log_probs = predict(model, images, accelerator, batch_size, channels_last=channels_last)
    if log_probs.dim() == 2:  # one model
        log_probs = log_probs.unsqueeze(1)
    labels = labels[: len(log_probs)].to(log_probs.device)
    results = []
    for member in log_probs.unbind(1):
        pred = member.argmax(1)
        correct = int((pred == labels).sum())
        n = len(labels)
        results.append({"loss": float(F.nll_loss(member, labels)), "accuracy": 100.0 * correct / n,
                        "correct": correct, "total": n, "predictions": pred})
    return results


def member_seeds(cfg: TrainConfig) -> list[int]:
    """The seeds this run trains: `seeds` when several are trained together in one stack, else `seed`."""
    return list(cfg.seeds) if cfg.seeds else [cfg.seed]


def member_run_dirs(run_dir: Path, cfg: TrainConfig) -> list[Path]:
    """Where each trained model's run directory goes: the run directory itself for one seed; <run.dir>/seed_<s>
    for each seed of a stack (the stack's own checkpoints, config and log stay in <run.dir>)."""
    return [run_dir / f"seed_{s}" for s in cfg.seeds] if cfg.seeds else [run_dir]


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[list[int]]:
    flat = target.cpu().long() * num_classes + pred.cpu().long()
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes).tolist()


# ---------------------------------------------------------------------------------------------------------
# Run directory agreement
# ---------------------------------------------------------------------------------------------------------
def _resolve_run_dir(cfg: TrainConfig, recipe: dict, state: PartialState,
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
    changes = _check_resume_config(recipe, run_dir, checkpoint) if checkpoint is not None else []
    return [str(run_dir), str(checkpoint) if checkpoint else None, changes]


def _remove_if_only_lock(run_dir: Path) -> None:
    if run_dir.is_dir() and [p.name for p in run_dir.iterdir()] == [ckpt.LOCK_FILE]:
        shutil.rmtree(run_dir, ignore_errors=True)


def _check_resume_config(cfg: dict, run_dir: Path, checkpoint: Path) -> list[dict]:
    """Resume continues the run the checkpoint belongs to, or nothing: a different recipe is refused, naming
    every differing key, before the run directory is touched. Returns the allowed changes, to be recorded."""
    saved = ckpt.read_trainer_state(checkpoint).get("config")
    if saved is None and (run_dir / "config.yaml").is_file():  # checkpoints written before they recorded it
        saved = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    if saved is None:
        return []
    changed = differences(cfg, saved, ignore=RESUME_MAY_CHANGE)
    if changed:
        listed = "; ".join(f"{key}: checkpoint {describe_value(theirs)}, now {describe_value(ours)}"
                           for key, ours, theirs in changed)
        raise ConfigError(
            f"training.resume: {checkpoint} belongs to a run with another configuration ({listed}). Resume with "
            f"the run's own configuration (only {', '.join(RESUME_MAY_CHANGE)} may change), or start a new "
            "run.dir. Nothing was changed.")
    allowed = differences(cfg, saved, ignore=("run", "hydra", "training.resume"))
    return [{"key": key, "checkpoint": describe_value(theirs), "now": describe_value(ours)}
            for key, ours, theirs in allowed]


TRACKERS = {"none": None, "tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def _check_tracker(report_to: str) -> None:
    """Accelerate only warns when a tracker is missing; a user who asked for one should know it is not logging."""
    if report_to not in TRACKERS:
        raise ConfigError(f"report_to={report_to!r}: choose one of {', '.join(TRACKERS)}.")
    module = TRACKERS[report_to]
    if module is not None:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"report_to={report_to} needs the {module} package: pip install {module} "
                              "(or `pip install tinyhub[tracking]`), or choose report_to=tensorboard|none.")


def _choice(cfg: TrainConfig, dotted: str, choices: tuple[str, ...], meaning: str = "") -> None:
    value = operator.attrgetter(dotted)(cfg)
    if not (isinstance(value, str) and value.lower() in choices):
        listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
        raise ConfigError(f"{dotted}={value!r}: choose {listed}" + (f" ({meaning})" if meaning else "") + ".")


def _check_model(model: dict) -> None:
    """The architecture's own arguments (dropout, width, ...), checked by building it once at its default input:
    a value it cannot take is a ConfigError here, not a traceback after the data have loaded."""
    kwargs = {k: v for k, v in model.items() if k not in ("name", "param_budget")}
    try:
        modeling.check_model_arguments(model["name"], kwargs)
    except modeling.ModelArgumentError as e:
        raise ConfigError(f"model.{e}" if e.argument else str(e)) from e
    try:
        built = modeling.get_model_class(model["name"])(**kwargs).eval()
        with torch.no_grad():  # a layer of zero channels is only refused when it runs
            built(torch.zeros(1, *built.expected_input_shape))
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError) as e:
        shown = " ".join(f"model.{k}={v}" for k, v in kwargs.items())
        raise ConfigError(f"{shown}: {model['name']} cannot be built with {'these' if len(kwargs) > 1 else 'this'} "
                          f"({str(e).splitlines()[0]}).") from e


def check_config(cfg: TrainConfig) -> None:
    """Refuse nonsense before anything runs or is written: every value the loop reads, with its meaning.
    (A run.dir that cannot be created is refused where it is created, with its lock.)"""
    tr = cfg.training
    check_limits(cfg, TRAIN_LIMITS, TrainConfig)
    _check_model(cfg.model)
    sched = tr.scheduler.name
    if cfg.seeds is not None:
        if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
            raise ConfigError(f"seeds={list(cfg.seeds)}: give distinct seeds, e.g. seeds=[0,1,2] (or seed=N for one "
                              "run).")
        if sched == "plateau":
            raise ConfigError("training.scheduler.name=plateau lowers the learning rate when one run's accuracy "
                              "stalls, and the seeds of a stack share one schedule; train them one at a time "
                              "(seed=N), or choose step, onecycle or cosine.")
    _choice(cfg, "training.device", ("auto", "cpu"), "auto: a GPU when there is one; several with accelerate launch")
    _choice(cfg, "data.source", ("auto", "local", "hub"))
    _choice(cfg, "training.optimizer.name", OPTIMIZERS)
    _choice(cfg, "training.scheduler.name", SCHEDULERS)
    _choice(cfg, "training.mixed_precision", ("no", "bf16", "fp16"))
    precision = tr.mixed_precision
    if precision == "fp16" and (tr.device == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("training.mixed_precision=fp16 needs a CUDA GPU (fp16 autocast with loss scaling); on "
                          "the CPU use training.mixed_precision=bf16, or no.")


def _target(recipe: RecipeConfig, dataset: DatasetIdentity) -> dict:
    """A recipe's accuracy target belongs to the dataset it names (`recipe.target_dataset`): on other data the run
    records no target, so a card never shows MNIST's target for a model of something else."""
    named = recipe.target_dataset
    applies = named is None or named == dataset.key
    return {"target_accuracy": recipe.target_accuracy if applies else None, "target_dataset": named}


def show_progress(setting) -> bool:
    """progress=auto (the default) draws tqdm bars only on a terminal, so redirected logs stay clean."""
    if isinstance(setting, str) and setting.lower() == "auto":
        return sys.stderr.isatty()
    if isinstance(setting, bool):
        return setting
    raise ConfigError(f"progress={setting!r}: choose auto, true or false.")


def _hparams(cfg: dict) -> dict:
    """Flat scalar config for trackers."""
    flat = {}

    def walk(prefix, node):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + ".", v)
            elif isinstance(v, (int, float, str, bool)):
                flat[key] = v
            elif v is not None:
                flat[key] = str(v)

    walk("", cfg)
    return flat


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------
def train(cfg: DictConfig | dict, on_epoch_end=None) -> Path:
    """Train one recipe and return its run directory (model/, results.json, config.yaml, checkpoints/, logs,
    train.log: every message the run logged).

    on_epoch_end(record): called on every process after each epoch with that epoch's EpochRecord (the sweep reports
    it to Ray Tune this way); it may raise to stop the run.
    """
    with contextlib.ExitStack() as run_scope:
        return _train(cfg, on_epoch_end, run_scope)


def _train(config: DictConfig | dict, on_epoch_end, run_scope: contextlib.ExitStack) -> Path:
    c = typed_config(config)  # read by attribute, with the schema's types and defaults
    cfg = config_dict(c)  # the same, as the plain dict that config.yaml, checkpoints and results.json record
    check_config(c)
    if on_epoch_end is not None and c.seeds and len(c.seeds) > 1:
        raise ConfigError("seeds: a sweep trial reports one model's accuracy; set seed=N for the trials, not seeds.")
    t_start = time.perf_counter()
    git_at_start = git_state()  # the code that trains is the code checked out now, not at the end
    tr, seeds = c.training, member_seeds(c)
    seed = seeds[0]
    if tr.threads:
        torch.set_num_threads(tr.threads)
    device_choice = tr.device
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # Accelerate keeps its state in process-wide singletons; a second train() in one process (tests, notebooks,
        # sweeps) may ask for another precision or device, so start from a clean state when not launched as a group.
        AcceleratorState._reset_state(reset_partial_state=True)
    state = PartialState(cpu=device_choice == "cpu")
    report_to = c.report_to
    _check_tracker(report_to)
    run_dir, resume_from, resume_changes = _resolve_run_dir(c, cfg, state, run_scope)
    accelerator = Accelerator(
        cpu=device_choice == "cpu",
        mixed_precision=tr.mixed_precision,
        log_with=None if report_to == "none" else report_to,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if tr.keep_freed_memory and accelerator.device.type == "cpu":
        host_memory.keep_freed_memory()  # speed only: where memory comes from, never a value (host_memory.py)
    set_seed(seed, deterministic=tr.deterministic)
    main = accelerator.is_main_process
    progress = show_progress(c.progress)
    say = logger.info if main else (lambda *_: None)  # the main process speaks for the group

    # ---- data: the whole split on the device as uint8 ----
    # The main process decodes and caches first, then tells the others whether it worked: a data error then
    # reaches every rank as the same clear message instead of a lost connection on the ranks that waited.
    failure = [None]
    if main:
        try:
            splits = load_from_config(cfg["data"])
        except DataError as e:
            failure = [str(e)]
    broadcast_object_list(failure, from_process=0)
    if failure[0] is not None:
        error = DataError(failure[0])
        error.reported_by_main = not main  # one message for the group: the main process prints it
        raise error
    if not main:
        splits = load_from_config(cfg["data"])
    data = splits.to(accelerator.device)
    aug = AugmentConfig(**cfg["augment"])

    # ---- model(s), optimizer, schedule ----
    model_cfg = dict(c.model)
    name = model_cfg.pop("name")
    chans, size, _ = splits.image_shape

    def build_model(member_seed: int):
        set_seed(member_seed, deterministic=tr.deterministic)  # initialised exactly as its own run would be
        return modeling.create_model(
            name, **model_cfg, num_classes=splits.num_classes, in_chans=chans, input_size=size, mean=splits.mean,
            std=splits.std, id2label={str(i): n for i, n in enumerate(splits.label_names)})

    members = [build_model(s) for s in seeds]
    model = members[0] if len(members) == 1 else ModelStack(members)  # K models, one forward: trainer/stack.py
    # Teachers are loaded and checked against the data before the run directory gets anything.
    teachers = load_teachers(teacher_specs(tr.distill.teacher), label_names=splits.label_names,
                             image_shape=splits.image_shape, device=accelerator.device)
    temperature, distill_weight = tr.distill.temperature, tr.distill.weight
    if main:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    run_scope.enter_context(run_log(run_dir / "train.log" if main else None))
    # A stack always computes in channels_last: the CPU's grouped convolutions are up to twice as fast there.
    # Only rounding differs from each model's own run; its dropout masks keep its own run's layout (stack.py).
    channels_last = tr.channels_last or len(members) > 1
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    batch_size = c.data.batch_size
    world, rank = accelerator.num_processes, accelerator.process_index
    steps_per_epoch = math.ceil((len(data.train_labels) // world) / batch_size)
    if steps_per_epoch == 0:
        raise ConfigError(f"{len(data.train_labels)} training image(s) cannot be shared by {world} processes; use "
                          "more data (data.subset) or fewer processes.")
    epochs = tr.epochs
    optimizer = build_optimizer(model.parameters(), tr.optimizer)
    scheduler, sched_when = build_scheduler(optimizer, tr.scheduler, epochs, steps_per_epoch)
    ema = None
    if tr.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tr.ema), use_buffers=True)
        ema.to(accelerator.device)
    train_model = torch.compile(model) if tr.compile else model
    train_model, optimizer = accelerator.prepare(train_model, optimizer)
    # The scheduler and the EMA weights are checkpointed by tinyhub itself (JSON and safetensors), not through
    # Accelerate's custom-object pickles, which load with full unpickling: a checkpoint must never run code.
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=tr.label_smoothing)
    train_step = TrainStep(model, train_model, optimizer, accelerator, criterion, n_models=len(members),
                           grad_clip=tr.grad_clip, scheduler=scheduler if sched_when == "step" else None, ema=ema,
                           teachers=teachers, temperature=temperature, distill_weight=distill_weight)

    histories: list[list[EpochRecord]] = [[] for _ in seeds]  # one per model
    start_epoch = 1
    if resume_from is not None:
        # With resume=auto, an unreadable newest checkpoint (truncated by a full disk, a bad copy) falls back to
        # the one before; an explicitly named checkpoint is used or refused.
        candidates = ckpt.older_or_equal(run_dir, resume_from) if tr.resume == "auto" else [resume_from]
        unreadable = []
        for candidate in candidates:
            try:
                ckpt.refuse_unsafe_files(candidate)
                ckpt.check_readable(candidate)
                accelerator.load_state(str(candidate))
                saved = ckpt.read_trainer_state(candidate)
                ckpt.restore_extra_state(candidate, saved, scheduler=scheduler, ema=ema)
            except ckpt.UnsafeCheckpoint:
                raise
            except Exception as e:  # noqa: BLE001 - whatever made it unreadable, the next one may load
                unreadable.append(f"{candidate.name}: {type(e).__name__}: {str(e)[:200]}")
                say(f"Checkpoint {candidate} cannot be read ({type(e).__name__}: {str(e)[:200]}); trying an older one")
                continue
            resume_from = candidate
            break
        else:
            raise ckpt.CheckpointError(f"no checkpoint in {run_dir / 'checkpoints'} can be read "
                                       f"({'; '.join(unreadable)}); start a new run.dir.")
        histories = [[EpochRecord.from_dict(e) for e in h] for h in saved.get("histories", [saved["history"]])]
        start_epoch = saved["epoch"] + 1
        say(f"Resuming from {resume_from} (epoch {saved['epoch']} of {epochs})")

    if report_to != "none":
        accelerator.init_trackers(c.tracker_project, config=_hparams(cfg),
                                  init_kwargs={"wandb": {"dir": str(run_dir), "name": run_dir.name}})
    summary = modeling.summary(members[0])
    say(f"{name}: {summary.total_params:,} parameters, {summary.macs:,} MACs/image | "
        f"{len(data.train_labels):,} train / {len(data.test_labels):,} test images on {accelerator.device} | "
        f"{world} process(es), mixed precision {accelerator.mixed_precision} | run dir {run_dir}"
        + (f" | {len(seeds)} seeds trained together: {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""))

    for t in teachers:
        say(f"distilling from {t.record.spec} ({t.record.architecture}, {t.record.parameters:,} params) at "
            f"temperature {temperature}, weight {distill_weight}")
    eval_bs = c.data.eval_batch_size
    eval_model = ema.module if ema is not None else train_model
    n_models, n_train = len(seeds), len(data.train_labels)
    test_results = None
    for epoch in range(start_epoch, epochs + 1):
        # Every source of randomness is a function of (seed, epoch, rank): resuming at an epoch boundary replays
        # exactly what an uninterrupted run would have done, and each model of a stack draws what it would alone.
        seeding.seed_epoch(seeds[0], epoch, rank)
        if n_models > 1:
            model.seed_dropout([seeding.generator("torch", s, epoch, rank, device=accelerator.device) for s in seeds],
                               channels_last=tr.channels_last)
        gens = [seeding.generator("augment", s, epoch, rank, device=accelerator.device) for s in seeds]
        batches = zip(*[shard_batches(seeding.epoch_permutation(n_train, s, epoch).to(accelerator.device),
                                      batch_size, rank, world) for s in seeds])
        train_model.train()
        loss_sum = torch.zeros(n_models, device=accelerator.device)
        correct = torch.zeros(n_models, device=accelerator.device, dtype=torch.long)
        seen = 0
        t0 = time.perf_counter()
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}", disable=not (main and progress),
                   leave=False, dynamic_ncols=True)
        for step, idxs in enumerate(bar):
            # Model k's batch: its own images, its own augmentation draws, side by side along the channels.
            parts = [augment_batch(data.train_images[idx].float() / 255.0, aug, g) for idx, g in zip(idxs, gens)]
            x01 = parts[0] if n_models == 1 else torch.cat(parts, 1)  # one model: no copy
            x = model.normalize01(x01)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            labels = [data.train_labels[idx] for idx in idxs]
            y = labels[0].unsqueeze(1) if n_models == 1 else torch.stack(labels, 1)  # (N, K)
            losses, logits = train_step(x, y, x01)
            loss_sum += losses * len(y)
            correct += (logits.argmax(2) == y).sum(0)
            seen += len(y)
            if step % 25 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss_sum.mean().item() / seen:.4f}",
                                acc=f"{100 * correct.float().mean().item() / seen:.2f}%",
                                img_s=f"{seen * world * n_models / (time.perf_counter() - t0):,.0f}")
        bar.close()
        totals = accelerator.reduce(torch.cat([loss_sum, correct.float(),
                                               torch.tensor([float(seen)], device=accelerator.device)]), "sum")
        train_time = time.perf_counter() - t0
        train_losses = [float(v) for v in totals[:n_models] / totals[-1]]
        diverged = [s for s, v in zip(seeds, train_losses) if not math.isfinite(v)]
        if diverged:  # checked once per epoch: no host sync inside the epoch
            last = ckpt.latest_checkpoint(run_dir)
            raise TrainingDiverged(
                f"epoch {epoch}: the training loss is {train_losses[seeds.index(diverged[0])]} "
                f"{'' if n_models == 1 else f'for seed {diverged[0]} '}(the run diverged); it stopped before "
                f"saving anything from this epoch"
                + (f", and the last good checkpoint is {last}" if last else "")
                + ". Lower the learning rate (training.optimizer.lr, or training.scheduler.max_lr with onecycle) "
                "or clip gradients (training.grad_clip=1.0).")
        vals = None
        if data.val_labels is not None:
            vals = evaluate(eval_model, data.val_images, data.val_labels, accelerator, eval_bs, channels_last)
        test_results = evaluate(eval_model, data.test_images, data.test_labels, accelerator, eval_bs, channels_last)
        eval_time = round(time.perf_counter() - t0 - train_time, 3)
        images = int(totals[-1])
        records = [EpochRecord(
            epoch=epoch, lr=optimizer.param_groups[0]["lr"], train_loss=train_losses[k],
            train_accuracy=float(100 * totals[n_models + k] / totals[-1]), train_images=images,
            epoch_seconds=round(train_time, 3), images_per_second=round(images / train_time, 1),
            test_loss=test["loss"], test_accuracy=test["accuracy"], test_correct=test["correct"],
            test_total=test["total"], eval_seconds=eval_time,
            val_loss=vals[k]["loss"] if vals else None, val_accuracy=vals[k]["accuracy"] if vals else None)
            for k, test in enumerate(test_results)]
        if sched_when == "epoch":
            scheduler.step()
        elif sched_when == "plateau":  # one model (check_config): never the test split
            scheduler.step(records[0].val_accuracy if vals else records[0].train_accuracy)
        for history, record in zip(histories, records):
            history.append(record)
        if on_epoch_end is not None:
            on_epoch_end(dataclasses.replace(records[0]))
        if report_to != "none":
            accelerator.log({k: v for k, v in records[0].as_dict().items() if k != "epoch"}, step=epoch)
        for member_seed, record in zip(seeds, records):
            val_txt = f" | val {record.val_accuracy:.2f}%" if vals else ""
            say(f"{'' if n_models == 1 else f'[seed {member_seed}] '}"
                f"epoch {epoch:>3}/{epochs} | loss {record.train_loss:.4f} | train {record.train_accuracy:.2f}%"
                f"{val_txt} | test {record.test_accuracy:.2f}% ({record.test_correct}/{record.test_total}) | "
                f"lr {record.lr:.2e} | {record.epoch_seconds:.1f}s, {record.images_per_second:,.0f} img/s")
        every = tr.checkpoint_every
        if every and (epoch % every == 0 or epoch == epochs):
            trainer_state = {"epoch": epoch, "history": [e.as_dict() for e in histories[0]], "config": cfg}
            if n_models > 1:
                trainer_state["histories"] = [[e.as_dict() for e in h] for h in histories]
            ckpt.save_checkpoint(accelerator, run_dir, epoch, trainer_state,
                                 keep=tr.keep_checkpoints, scheduler=scheduler, ema=ema)

    if test_results is None:  # resumed a run whose last checkpoint was already the final epoch
        test_results = evaluate(eval_model, data.test_images, data.test_labels, accelerator, eval_bs, channels_last)

    # ---- run artifacts (main process only): one ordinary run directory per model ----
    accelerator.wait_for_everyone()
    final = modeling.unwrap_model(ema.module if ema is not None else accelerator.unwrap_model(train_model))
    final_models = [final] if n_models == 1 else final.unstack(members)
    wall = time.perf_counter() - t_start
    run_dirs = member_run_dirs(run_dir, c)
    if main:
        for member_seed, member_dir, final_model, history, test_result in zip(
                seeds, run_dirs, final_models, histories, test_results):
            member_cfg = {**cfg, "seed": member_seed}
            if member_dir != run_dir:
                member_dir.mkdir(parents=True, exist_ok=True)
                (member_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(member_cfg)))
            tmp = member_dir / ".model.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                with full_disk_is_one_error(member_dir, "the trained model", 4 * final_model.num_parameters(),
                                            "the run's last checkpoint is kept: resume it with training.resume=auto"):
                    final_model.save_pretrained(tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            shutil.rmtree(member_dir / "model", ignore_errors=True)
            os.replace(tmp, member_dir / "model")
            last = history[-1]
            data_record = DataRecord.from_dict(splits.source)
            results = RunRecord(
                model=name,
                model_kwargs=model_cfg,
                label_names=splits.label_names,
                parameters=summary.total_params,
                macs=summary.macs,
                summary=summary.as_dict(),
                param_budget=model_cfg["param_budget"] or modeling.model_info(name)["param_budget"],
                **_target(c.recipe, data_record.identity),
                final=FinalMetrics(
                    epoch=last.epoch, test_accuracy=test_result["accuracy"], test_loss=test_result["loss"],
                    test_correct=test_result["correct"], test_total=test_result["total"],
                    train_accuracy=last.train_accuracy, train_loss=last.train_loss, val_accuracy=last.val_accuracy,
                    confusion_matrix=confusion_matrix(test_result["predictions"], data.test_labels,
                                                      splits.num_classes),
                    ema=ema is not None),
                epochs=history,
                recipe=member_cfg,
                overrides=recipe_overrides(member_cfg),
                augmentation=aug.describe(),
                distillation=(Distillation([t.record for t in teachers], temperature, distill_weight)
                              if teachers else None),
                data=data_record,
                seed=member_seed,
                world_size=world,
                mixed_precision=accelerator.mixed_precision,
                batch_size_per_process=batch_size,
                global_batch_size=batch_size * world,
                compile=tr.compile,
                channels_last=channels_last,
                deterministic=tr.deterministic,
                resumed_from=str(resume_from) if resume_from else None,
                resume_changes=resume_changes,
                wall_seconds=round(wall, 2),
                train_seconds=round(sum(e.epoch_seconds for e in history), 2),
                **environment_info(accelerator.device),
                git=git_at_start,
            )
            with full_disk_is_one_error(member_dir, "the run's results (examples, images, report.html, results.json)",
                                        then="the model is saved and its last checkpoint kept: training.resume=auto "
                                             "writes the results without training again"):
                with atomic_path(member_dir / EXAMPLES_FILE) as tmp:
                    save_file({"images": data.test_images[:N_EXAMPLES].cpu().contiguous(),
                               "labels": data.test_labels[:N_EXAMPLES].cpu().contiguous()}, str(tmp))
                write_run_report(member_dir, results)  # PNGs for the card and report.html, before results.json
                results.save(member_dir)
    if report_to != "none":
        accelerator.end_training()
    for member_seed, member_dir, history, test_result in zip(seeds, run_dirs, histories, test_results):
        say(f"\nDone: {name} ({summary.total_params:,} params"
            f"{'' if n_models == 1 else f', seed {member_seed}'}) | final test accuracy "
            f"{test_result['accuracy']:.2f}% ({test_result['correct']}/{test_result['total']}) after "
            f"{history[-1].epoch} epoch{'' if history[-1].epoch == 1 else 's'} | {wall:.1f}s wall\n"
            f"  model:   {member_dir / 'model'}\n  metrics: {member_dir / 'results.json'}")
    return run_dir
