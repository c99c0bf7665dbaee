"""The training loop: Accelerate on a device-resident uint8 dataset, a run in named stages.

    set up (accelerator, data, models, step, resume) -> each epoch: train, evaluate, schedule, record, checkpoint
    -> finish (one run directory per model: weights, results.json, report)

data -> augment -> step -> eval -> run record. Cards, evaluation and push read the run directory this writes;
nothing here imports them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from omegaconf import OmegaConf
from safetensors.torch import save_file
from tqdm.auto import tqdm

from tinyhub import modeling
from tinyhub.errors import TinyhubError
from tinyhub.utils.files import atomic_path, full_disk_is_one_error, sha256_file, write_text_atomic
from tinyhub.utils.process import process_age

from . import checkpoint as ckpt
from . import cuda_graph, host_memory, seeding
from .augment import AugmentConfig
from .config import recipe_overrides
from .data import DataError, DatasetSplits, load_from_config, shard_batches
from .distill import load_teachers, teacher_specs
from .evaluation import predict
from .scores import classification_scores
from .inputs import model_input
from .logs import run_log
from .record import (ArchitectureSummary, DataRecord, DatasetIdentity, Distillation, EpochRecord, FinalMetrics,
                     RunRecord, RunTimes)
from .report import write_run_report
from .run_dir import member_run_dirs, member_seeds, resolve_run_dir
from .run_info import EXAMPLES_FILE, environment_info, git_state
from .schema import ConfigError, RecipeConfig, TrainConfig, config_dict, ignored_settings, validated
from .stack import ModelStack
from .step import AssembledStep, assemble_step

# Accelerate logs every checkpoint file at INFO; tinyhub logs its own one-line progress instead.
logging.getLogger("accelerate").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)
N_EXAMPLES = 8  # test images saved beside every run (EXAMPLES_FILE), so a card's snippet has real input


class TrainingDiverged(TinyhubError, RuntimeError):
    """The loss became NaN or infinite; nothing of the diverged epoch is saved."""


def check_model(cfg: TrainConfig) -> None:
    """The architecture's own arguments (dropout, width, ...), checked by building it once at its default input:
    a value it cannot take is a ConfigError here, not a traceback after the data have loaded."""
    kwargs = cfg.model_arguments
    try:
        modeling.check_model_arguments(cfg.model_name, kwargs)
    except modeling.ModelArgumentError as e:
        raise ConfigError(f"model.{e}" if e.argument else str(e)) from e
    try:
        built = modeling.get_model_class(cfg.model_name)(**kwargs).eval()
        with torch.no_grad():  # a layer of zero channels is only refused when it runs
            built(torch.zeros(1, *built.expected_input_shape))
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError) as e:
        shown = " ".join(f"model.{k}={v}" for k, v in kwargs.items())
        raise ConfigError(f"{shown}: {cfg.model_name} cannot be built with {'these' if len(kwargs) > 1 else 'this'} "
                          f"({str(e).splitlines()[0]}).") from e


def evaluate(model, images, labels, accelerator, batch_size: int, channels_last: bool = False) -> list[dict]:
    """Loss/accuracy/confusion over a whole split, sharded over processes, every image counted exactly once: one
    result per model (a stack's members each see the whole split)."""
    log_probs = predict(model, images, accelerator, batch_size, channels_last=channels_last)
    if log_probs.dim() == 2:  # one model
        log_probs = log_probs.unsqueeze(1)
    labels = labels[: len(log_probs)].to(log_probs.device)
    results = []
    for member in log_probs.unbind(1):
        pred = member.argmax(1)
        scores = classification_scores(pred, labels, member.shape[1], log_probs=member)
        results.append({"loss": scores.loss, "accuracy": scores.accuracy, "correct": scores.correct,
                        "total": scores.total, "confusion": scores.confusion, "predictions": pred})
    return results


def show_progress(setting) -> bool:
    """progress=auto (the default) draws tqdm bars only on a terminal, so redirected logs stay clean."""
    return sys.stderr.isatty() if isinstance(setting, str) else bool(setting)


# ---------------------------------------------------------------------------------------------------------
# A run once set up: what every stage reads
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    cfg: TrainConfig
    accelerator: Accelerator
    run_dir: Path
    resume_changes: list[dict]
    splits: DatasetSplits  # as loaded, with what describes them
    data: DatasetSplits  # the same on the device
    members: list[torch.nn.Module]  # one model per seed
    model: torch.nn.Module  # the one model, or the ModelStack of all
    teachers: list
    trainer: AssembledStep
    channels_last: bool
    steps_per_epoch: int
    started: float  # perf_counter at the start
    git_at_start: dict
    histories: list[list[EpochRecord]]  # one per model
    start_epoch: int = 1
    resumed_from: Path | None = None
    start_up: float | None = None  # seconds from the process's start to the engine's
    data_seconds: float = 0.0
    set_up_seconds: float = 0.0  # with the data's
    final_eval_seconds: float = 0.0  # a resumed run's evaluation after its last epoch, outside every epoch record

    @property
    def seeds(self) -> list[int]:
        return member_seeds(self.cfg)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def say(self, text: str) -> None:
        """The main process speaks for the group."""
        if self.main:
            logger.info(text)

    def evaluate(self, images, labels) -> list[dict]:
        return evaluate(self.trainer.eval_model, images, labels, self.accelerator, self.cfg.data.eval_batch_size,
                        self.channels_last)


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, on_epoch_end=None) -> Path:
    """Train one recipe and return its run directory (model/, results.json, config.yaml, checkpoints/, logs,
    train.log: every message the run logged). `cfg` is a TrainConfig: `tinyhub.trainer.load_config("model4",
    training={"epochs": 2})` builds one; it is checked here unless it was checked, unchanged, before.

    on_epoch_end(record): called on every process after each epoch with that epoch's EpochRecord (the sweep reports
    it to Ray Tune this way); it may raise to stop the run.
    """
    with contextlib.ExitStack() as run_scope:
        return _train(cfg, on_epoch_end, run_scope)


def _train(config, on_epoch_end, run_scope: contextlib.ExitStack) -> Path:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train() takes a TrainConfig, not a {type(config).__name__}: build one with "
                        'tinyhub.trainer.load_config("model4", training={"epochs": 2}) (or load_config([overrides]))')
    cfg = validated(config)  # values checked once: here, unless the command line already did
    check_model(cfg)
    if on_epoch_end is not None and cfg.seeds and len(cfg.seeds) > 1:
        raise ConfigError("seeds: a sweep trial reports one model's accuracy; set seed=N for the trials, not seeds.")
    if on_epoch_end is not None and cfg.training.eval_every != 1:
        raise ConfigError(f"training.eval_every={cfg.training.eval_every}: a sweep trial reports its validation "
                          "accuracy after every epoch; set training.eval_every=1 for sweeps.")
    run = _set_up(cfg, run_scope)
    test_results = None
    for epoch in range(run.start_epoch, cfg.training.epochs + 1):
        totals, train_seconds = _train_one_epoch(run, epoch)
        train_losses, evaluated = _train_losses(run, epoch, totals), time.perf_counter()
        vals = tests = None
        if _evaluates_after(cfg.training, epoch):
            vals = run.evaluate(run.data.val_images, run.data.val_labels) if run.data.val_labels is not None else None
            test_results = tests = run.evaluate(run.data.test_images, run.data.test_labels)
        records = _epoch_records(run, epoch, totals, train_losses, train_seconds,
                                 round(time.perf_counter() - evaluated, 3), vals, tests)
        _step_epoch_schedule(run, records[0], validated=vals is not None)
        _record_epoch(run, records, on_epoch_end)
        _save_checkpoint(run, epoch)
    if test_results is None:  # resumed a run whose last checkpoint was already the final epoch
        evaluated = time.perf_counter()
        test_results = run.evaluate(run.data.test_images, run.data.test_labels)
        run.final_eval_seconds = time.perf_counter() - evaluated
    _finish(run, test_results)
    return run.run_dir


def _evaluates_after(training, epoch: int) -> bool:
    """Every `eval_every` epochs, and always after the last: its accuracy is the run's result."""
    every = training.eval_every
    return epoch == training.epochs or (every > 0 and epoch % every == 0)


# ---------------------------------------------------------------------------------------------------------
# Set up
# ---------------------------------------------------------------------------------------------------------
def _set_up(cfg: TrainConfig, run_scope: contextlib.ExitStack) -> Run:
    start_up, started = process_age(), time.perf_counter()
    git_at_start = git_state()  # the code that trains is the code checked out now
    tr = cfg.training
    if tr.threads:
        torch.set_num_threads(tr.threads)
    accelerator, run_dir, resume_from, resume_changes = _start_accelerator(cfg, run_scope)
    loading = time.perf_counter()
    splits = _load_data(cfg, accelerator)
    data = splits.to(accelerator.device)
    data_seconds = time.perf_counter() - loading
    members = [_build_model(cfg, splits, s) for s in member_seeds(cfg)]
    model = members[0] if len(members) == 1 else ModelStack(members)  # K models, one forward: trainer/stack.py
    # Teachers are loaded and checked against the data before the run directory gets anything.
    teachers = load_teachers(teacher_specs(tr.distill.teacher), label_names=splits.label_names,
                             image_shape=splits.image_shape, device=accelerator.device)
    if accelerator.is_main_process:
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config_dict(cfg))))
    run_scope.enter_context(run_log(run_dir / "train.log" if accelerator.is_main_process else None))
    # A stack always computes in channels_last: the CPU's grouped convolutions are up to twice as fast there.
    # Only rounding differs from each model's own run; its dropout masks keep its own run's layout (stack.py).
    channels_last = tr.channels_last or len(members) > 1
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    world = accelerator.num_processes
    steps_per_epoch = math.ceil((len(data.train_labels) // world) / cfg.data.batch_size)
    if steps_per_epoch == 0:
        raise ConfigError(f"{len(data.train_labels)} training image(s) cannot be shared by {world} processes; use "
                          "more data (data.subset) or fewer processes.")
    trainer = assemble_step(model, tr, accelerator, epochs=tr.epochs, steps_per_epoch=steps_per_epoch,
                            n_models=len(members), teachers=teachers)
    run = Run(cfg, accelerator, run_dir, resume_changes, splits, data, members, model, teachers, trainer,
              channels_last, steps_per_epoch, started, git_at_start, histories=[[] for _ in members],
              start_up=start_up, data_seconds=data_seconds)
    if resume_from is not None:
        _resume(run, resume_from)
    if cfg.report_to != "none":
        accelerator.init_trackers(cfg.tracker_project, config=_hparams(config_dict(cfg)),
                                  init_kwargs={"wandb": {"dir": str(run_dir), "name": run_dir.name}})
    _announce(run)
    run.set_up_seconds = time.perf_counter() - started
    return run


def _start_accelerator(cfg: TrainConfig, run_scope: contextlib.ExitStack):
    """The Accelerator, the run directory every process agreed on (locked), and what to resume from."""
    tr = cfg.training
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # Accelerate keeps its state in process-wide singletons; a second train() in one process (tests, notebooks,
        # sweeps) may ask for another precision or device, so start from a clean state when not launched as a group.
        AcceleratorState._reset_state(reset_partial_state=True)
    state = PartialState(cpu=tr.device == "cpu")
    run_dir, resume_from, resume_changes = resolve_run_dir(cfg, config_dict(cfg), state, run_scope)
    accelerator = Accelerator(
        cpu=tr.device == "cpu",
        mixed_precision=tr.mixed_precision,
        kwargs_handlers=cuda_graph.accelerator_kwargs(tr.cuda_graphs, tr.device != "cpu" and torch.cuda.is_available()),
        log_with=_tracker(cfg, run_dir),
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
    )
    if tr.keep_freed_memory and accelerator.device.type == "cpu":
        host_memory.keep_freed_memory()  # speed only: where memory comes from, never a value (host_memory.py)
    set_seed(member_seeds(cfg)[0], deterministic=tr.deterministic)
    return accelerator, run_dir, resume_from, resume_changes


def _tracker(cfg: TrainConfig, run_dir: Path):
    """What Accelerate logs to: a built-in tracker by its name; a plugin's (tinyhub.registry.TRACKERS) as the
    accelerate.tracking.GeneralTracker its entry point names, built with the project name and log folder."""
    from tinyhub.registry import TRACKERS

    if cfg.report_to == "none":
        return None
    entry = TRACKERS.entries()[cfg.report_to]
    if entry.origin == "tinyhub":
        return cfg.report_to
    return TRACKERS.get(cfg.report_to)(run_name=cfg.tracker_project, logging_dir=str(run_dir / "logs"))


def _load_data(cfg: TrainConfig, accelerator: Accelerator) -> DatasetSplits:
    """The whole splits as uint8. The main process decodes and caches first, then tells the others whether it
    worked: a data error then reaches every rank as the same clear message instead of a lost connection on the
    ranks that waited."""
    main, failure = accelerator.is_main_process, [None]
    if main:
        try:
            splits = load_from_config(cfg.data)
        except DataError as e:
            failure = [str(e)]
    broadcast_object_list(failure, from_process=0)
    if failure[0] is not None:
        error = DataError(failure[0])
        error.reported_by_main = not main  # one message for the group: the main process prints it
        raise error
    return splits if main else load_from_config(cfg.data)


def _build_model(cfg: TrainConfig, splits: DatasetSplits, member_seed: int) -> torch.nn.Module:
    """One model of the run, initialised exactly as its own run of `member_seed` would be."""
    set_seed(member_seed, deterministic=cfg.training.deterministic)
    chans, size, _ = splits.image_shape
    return modeling.create_model(
        cfg.model_name, **cfg.model_arguments, param_budget=cfg.model["param_budget"], num_classes=splits.num_classes,
        in_chans=chans, input_size=size, mean=splits.mean, std=splits.std,
        id2label={str(i): n for i, n in enumerate(splits.label_names)})


def _resume(run: Run, resume_from: Path) -> None:
    """Load the newest readable checkpoint into the run. With resume=auto, an unreadable newest checkpoint
    (truncated by a full disk, a bad copy) falls back to the one before; an explicitly named one is used or
    refused."""
    auto = run.cfg.training.resume == "auto"
    candidates = ckpt.older_or_equal(run.run_dir, resume_from) if auto else [resume_from]
    unreadable = []
    for candidate in candidates:
        try:
            ckpt.refuse_unsafe_files(candidate)
            ckpt.check_readable(candidate)
            run.accelerator.load_state(str(candidate))
            saved = ckpt.read_trainer_state(candidate)
            ckpt.restore_extra_state(candidate, saved, scheduler=run.trainer.scheduler, ema=run.trainer.ema)
        except ckpt.UnsafeCheckpoint:
            raise
        except Exception as e:  # noqa: BLE001 - whatever made it unreadable, the next one may load
            unreadable.append(f"{candidate.name}: {type(e).__name__}: {str(e)[:200]}")
            run.say(f"Checkpoint {candidate} cannot be read ({type(e).__name__}: {str(e)[:200]}); trying an older one")
            continue
        break
    else:
        raise ckpt.CheckpointError(f"no checkpoint in {run.run_dir / 'checkpoints'} can be read "
                                   f"({'; '.join(unreadable)}); start a new run.dir.")
    run.histories = [[EpochRecord.from_dict(e) for e in h] for h in saved.get("histories", [saved["history"]])]
    run.start_epoch, run.resumed_from = saved["epoch"] + 1, candidate
    run.say(f"Resuming from {candidate} (epoch {saved['epoch']} of {run.cfg.training.epochs})")


def _announce(run: Run) -> None:
    summary, world, seeds = modeling.summary(run.members[0]), run.accelerator.num_processes, run.seeds
    run.say(f"{run.cfg.model_name}: {summary.total_params:,} parameters, {summary.macs:,} MACs/image | "
            f"{len(run.data.train_labels):,} train / {len(run.data.test_labels):,} test images on "
            f"{run.accelerator.device} | {world} process(es), mixed precision {run.accelerator.mixed_precision} | "
            f"run dir {run.run_dir}"
            + (f" | {len(seeds)} seeds trained together: {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""))
    for note in ignored_settings(run.cfg).values():
        run.say(f"note: {note}; it is left out of the run's record.")
    trainer, wanted = run.trainer, cuda_graph.setting(run.cfg.training.cuda_graphs)
    if isinstance(trainer.step, cuda_graph.GraphedStep):
        run.say(f"step: forward and backward replayed from a CUDA graph after {cuda_graph.WARMUP_STEPS} eager steps; "
                f"{trainer.optimizer_implementation} optimizer")
    elif trainer.not_captured and (wanted == "true" or run.accelerator.device.type == "cuda"):
        why = "; ".join(trainer.not_captured)
        run.say(f"{'warning' if wanted == 'true' else 'note'}: training.cuda_graphs={wanted}: the step is not "
                f"captured ({why}); it runs eagerly.")
    distill = run.cfg.training.distill
    for t in run.teachers:
        run.say(f"distilling from {t.record.spec} ({t.record.architecture}, {t.record.parameters:,} params) at "
                f"temperature {distill.temperature}, weight {distill.weight}")


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
# One epoch
# ---------------------------------------------------------------------------------------------------------
def _train_one_epoch(run: Run, epoch: int) -> tuple[torch.Tensor, float]:
    """Every model's batches of the epoch through the step. Returns the summed (losses (K), correct (K), images)
    over all processes, and the seconds it took. No host synchronisation inside the epoch but the progress bar's."""
    cfg, acc, seeds, data = run.cfg, run.accelerator, run.seeds, run.data
    world, rank, device, n_models = acc.num_processes, acc.process_index, acc.device, len(seeds)
    # Every source of randomness is a function of (seed, epoch, rank): resuming at an epoch boundary replays exactly
    # what an uninterrupted run would have done, and each model of a stack draws what it would alone.
    seeding.seed_epoch(seeds[0], epoch, rank)
    if n_models > 1:
        run.model.seed_dropout([seeding.generator("torch", s, epoch, rank, device=device) for s in seeds],
                               channels_last=cfg.training.channels_last)
    gens = [seeding.generator("augment", s, epoch, rank, device=device) for s in seeds]
    batches = zip(*[shard_batches(seeding.epoch_permutation(len(data.train_labels), s, epoch).to(device),
                                  cfg.data.batch_size, rank, world) for s in seeds])
    aug = AugmentConfig(**dataclasses.asdict(cfg.augment))
    normalize01 = run.model.normalize01
    run.trainer.train_model.train()
    loss_sum = torch.zeros(n_models, device=device)
    correct = torch.zeros(n_models, device=device, dtype=torch.long)
    seen, t0 = 0, time.perf_counter()
    bar = tqdm(batches, total=run.steps_per_epoch, desc=f"epoch {epoch}/{cfg.training.epochs}",
               disable=not (run.main and show_progress(cfg.progress)), leave=False, dynamic_ncols=True)
    for step, idxs in enumerate(bar):
        # Model k's batch: its own images, its own augmentation draws, side by side along the channels.
        inputs = model_input([data.train_images[idx] for idx in idxs], normalize01, augment=aug, generators=gens,
                             channels_last=run.channels_last)
        labels = [data.train_labels[idx] for idx in idxs]
        y = labels[0].unsqueeze(1) if n_models == 1 else torch.stack(labels, 1)  # (N, K)
        losses, logits = run.trainer.step(inputs.x, y, inputs.x01)
        loss_sum += losses * len(y)
        correct += (logits.argmax(2) == y).sum(0)
        seen += len(y)
        if step % 25 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{loss_sum.mean().item() / seen:.4f}",
                            acc=f"{100 * correct.float().mean().item() / seen:.2f}%",
                            img_s=f"{seen * world * n_models / (time.perf_counter() - t0):,.0f}")
    bar.close()
    totals = acc.reduce(torch.cat([loss_sum, correct.float(), torch.tensor([float(seen)], device=device)]), "sum")
    totals = totals.cpu()  # the epoch's one wait for the device, before the clock stops: a GPU runs behind the host
    return totals, time.perf_counter() - t0


def _train_losses(run: Run, epoch: int, totals: torch.Tensor) -> list[float]:
    """Each model's mean training loss; a NaN or infinite one stops the run before anything of the epoch is saved
    (checked once per epoch: no host sync inside the epoch)."""
    n_models = len(run.seeds)
    losses = [float(v) for v in totals[:n_models] / totals[-1]]
    diverged = [s for s, v in zip(run.seeds, losses) if not math.isfinite(v)]
    if diverged:
        last = ckpt.latest_checkpoint(run.run_dir)
        raise TrainingDiverged(
            f"epoch {epoch}: the training loss is {losses[run.seeds.index(diverged[0])]} "
            f"{'' if n_models == 1 else f'for seed {diverged[0]} '}(the run diverged); it stopped before "
            f"saving anything from this epoch"
            + (f", and the last good checkpoint is {last}" if last else "")
            + ". Lower the learning rate (training.optimizer.lr, or training.scheduler.max_lr with onecycle) "
            "or clip gradients (training.grad_clip=1.0).")
    return losses


def _epoch_records(run: Run, epoch: int, totals, train_losses, train_seconds, eval_seconds, vals,
                   tests) -> list[EpochRecord]:
    """Each model's record of the epoch; `tests` (and `vals`) is None after an epoch that was not evaluated."""
    n_models, images = len(run.seeds), int(totals[-1])
    tests = tests or [{} for _ in range(n_models)]
    return [EpochRecord(
        epoch=epoch, lr=run.trainer.optimizer.param_groups[0]["lr"], train_loss=train_losses[k],
        train_accuracy=float(100 * totals[n_models + k] / totals[-1]), train_images=images,
        epoch_seconds=round(train_seconds, 3), images_per_second=round(images / train_seconds, 1),
        test_loss=test.get("loss"), test_accuracy=test.get("accuracy"), test_correct=test.get("correct"),
        test_total=test.get("total"), eval_seconds=eval_seconds if test else 0.0,
        val_loss=vals[k]["loss"] if vals else None, val_accuracy=vals[k]["accuracy"] if vals else None)
        for k, test in enumerate(tests)]


def _step_epoch_schedule(run: Run, record: EpochRecord, *, validated: bool) -> None:
    when, scheduler = run.trainer.scheduler_steps, run.trainer.scheduler
    if when == "epoch":
        scheduler.step()
    elif when == "plateau":  # one model (check_values): never the test split
        scheduler.step(record.val_accuracy if validated else record.train_accuracy)


def _record_epoch(run: Run, records: list[EpochRecord], on_epoch_end: Callable | None) -> None:
    """The epoch into each model's history, the caller's hook, the tracker and the log."""
    for history, record in zip(run.histories, records):
        history.append(record)
    if on_epoch_end is not None:
        on_epoch_end(dataclasses.replace(records[0]))
    if run.cfg.report_to != "none":
        run.accelerator.log({k: v for k, v in records[0].as_dict().items() if k != "epoch"}, step=records[0].epoch)
    several, epochs = len(records) > 1, run.cfg.training.epochs
    for member_seed, r in zip(run.seeds, records):
        val_txt = f" | val {r.val_accuracy:.2f}%" if r.val_accuracy is not None else ""
        test_txt = f" | test {r.test_accuracy:.2f}% ({r.test_correct}/{r.test_total})" if r.evaluated else ""
        run.say(f"{f'[seed {member_seed}] ' if several else ''}"
                f"epoch {r.epoch:>3}/{epochs} | loss {r.train_loss:.4f} | train {r.train_accuracy:.2f}%"
                f"{val_txt}{test_txt} | lr {r.lr:.2e} | {r.epoch_seconds:.1f}s, {r.images_per_second:,.0f} img/s")


def _save_checkpoint(run: Run, epoch: int) -> None:
    tr = run.cfg.training
    every = tr.checkpoint_every
    if not every or (epoch % every and epoch != tr.epochs):
        return
    trainer_state = {"epoch": epoch, "history": [e.as_dict() for e in run.histories[0]],
                     "config": config_dict(run.cfg)}
    if len(run.histories) > 1:
        trainer_state["histories"] = [[e.as_dict() for e in h] for h in run.histories]
    ckpt.save_checkpoint(run.accelerator, run.run_dir, epoch, trainer_state, keep=tr.keep_checkpoints,
                         scheduler=run.trainer.scheduler, ema=run.trainer.ema)


# ---------------------------------------------------------------------------------------------------------
# Finish: one ordinary run directory per model
# ---------------------------------------------------------------------------------------------------------
def _finish(run: Run, test_results: list[dict]) -> None:
    acc = run.accelerator
    acc.wait_for_everyone()
    final = modeling.unwrap_model(run.trainer.ema.module if run.trainer.ema is not None
                                  else acc.unwrap_model(run.trainer.train_model))
    final_models = [final] if len(run.members) == 1 else final.unstack(run.members)
    wall = time.perf_counter() - run.started
    run_dirs = member_run_dirs(run.run_dir, run.cfg)
    if run.main:
        for member_seed, member_dir, model, history, test in zip(
                run.seeds, run_dirs, final_models, run.histories, test_results):
            _write_member(run, member_seed, member_dir, model, history, test, wall)
    if run.cfg.report_to != "none":
        acc.end_training()
    for member_seed, member_dir, history, test in zip(run.seeds, run_dirs, run.histories, test_results):
        run.say(f"\nDone: {run.cfg.model_name} ({run.members[0].num_parameters():,} params"
                f"{'' if len(run.seeds) == 1 else f', seed {member_seed}'}) | final test accuracy "
                f"{test['accuracy']:.2f}% ({test['correct']}/{test['total']}) after "
                f"{history[-1].epoch} epoch{'' if history[-1].epoch == 1 else 's'} | {wall:.1f}s wall\n"
                f"  model:   {member_dir / 'model'}\n  metrics: {member_dir / 'results.json'}")


def _write_member(run: Run, member_seed: int, member_dir: Path, model, history: list[EpochRecord], test: dict,
                  wall: float) -> None:
    """A model's run directory: its config (a stack's member), weights, examples, report and results.json, each
    written whole or not at all."""
    member_cfg, saving = dataclasses.replace(run.cfg, seed=member_seed), time.perf_counter()
    if member_dir != run.run_dir:
        member_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(member_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config_dict(member_cfg))))
    tmp = member_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with full_disk_is_one_error(member_dir, "the trained model", 4 * model.num_parameters(),
                                    "the run's last checkpoint is kept: resume it with training.resume=auto"):
            model.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(member_dir / "model", ignore_errors=True)
    os.replace(tmp, member_dir / "model")
    results = _run_record(run, member_cfg, history, test, wall)
    results.weights_sha256 = sha256_file(member_dir / "model" / "model.safetensors")  # the weights `test` measured
    with full_disk_is_one_error(member_dir, "the run's results (examples, images, report.html, results.json)",
                                then="the model is saved and its last checkpoint kept: training.resume=auto "
                                     "writes the results without training again"):
        with atomic_path(member_dir / EXAMPLES_FILE) as tmp_file:
            save_file({"images": run.data.test_images[:N_EXAMPLES].cpu().contiguous(),
                       "labels": run.data.test_labels[:N_EXAMPLES].cpu().contiguous()}, str(tmp_file))
        write_run_report(member_dir, results)  # PNGs for the card and report.html, before results.json
        results.times = RunTimes(
            start_up=run.start_up, data=round(run.data_seconds, 3),
            set_up=round(run.set_up_seconds - run.data_seconds, 3), train=results.train_seconds,
            evaluate=round(sum(e.eval_seconds for e in history) + run.final_eval_seconds, 3),
            save=round(time.perf_counter() - saving, 3))
        results.save(member_dir)


def _run_record(run: Run, member_cfg: TrainConfig, history: list[EpochRecord], test: dict, wall: float) -> RunRecord:
    acc, cfg, splits, last = run.accelerator, run.cfg, run.splits, history[-1]
    summary = modeling.summary(run.members[0])
    data_record = DataRecord.from_dict(splits.source)
    distill = cfg.training.distill
    world, batch_size = acc.num_processes, cfg.data.batch_size
    return RunRecord(
        model=cfg.model_name,
        model_kwargs={k: v for k, v in cfg.model.items() if k != "name"},
        label_names=splits.label_names,
        parameters=summary.total_params,
        macs=summary.macs,
        summary=ArchitectureSummary.from_dict(summary.as_dict()),
        param_budget=cfg.model["param_budget"] or modeling.model_info(cfg.model_name)["param_budget"],
        **_target(cfg.recipe, data_record.identity),
        final=FinalMetrics(
            epoch=last.epoch, test_accuracy=test["accuracy"], test_loss=test["loss"],
            test_correct=test["correct"], test_total=test["total"],
            train_accuracy=last.train_accuracy, train_loss=last.train_loss, val_accuracy=last.val_accuracy,
            confusion_matrix=test["confusion"],
            ema=run.trainer.ema is not None),
        epochs=history,
        recipe=member_cfg,
        overrides=recipe_overrides(config_dict(member_cfg)),
        augmentation=AugmentConfig(**dataclasses.asdict(cfg.augment)).describe(),
        distillation=(Distillation([t.record for t in run.teachers], distill.temperature, distill.weight)
                      if run.teachers else None),
        data=data_record,
        seed=member_cfg.seed,
        world_size=world,
        mixed_precision=acc.mixed_precision,
        batch_size_per_process=batch_size,
        global_batch_size=batch_size * world,
        compile=cfg.training.compile,
        cuda_graphs=run.trainer.cuda_graphs,
        optimizer_implementation=run.trainer.optimizer_implementation,
        channels_last=run.channels_last,
        deterministic=cfg.training.deterministic,
        resumed_from=str(run.resumed_from) if run.resumed_from else None,
        resume_changes=run.resume_changes,
        wall_seconds=round(wall, 2),
        train_seconds=round(sum(e.epoch_seconds for e in history), 2),
        **environment_info(acc.device),
        git=run.git_at_start,
    )


def _target(recipe: RecipeConfig, dataset: DatasetIdentity) -> dict:
    """A recipe's accuracy target belongs to the dataset it names (`recipe.target_dataset`): on other data the run
    records no target, so a card never shows MNIST's target for a model of something else."""
    named = recipe.target_dataset
    applies = named is None or named == dataset.key
    return {"target_accuracy": recipe.target_accuracy if applies else None, "target_dataset": named}
