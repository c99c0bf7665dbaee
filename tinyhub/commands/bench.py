"""tinyhub bench: whole training epochs of `tinyhub train` itself against the seeds' DataLoader pipeline, on the
same model and recipe, in one run; ratios printed side by side.

    tinyhub bench --model model4 --data-dir DIR                # 2 epochs each; the second is reported
    tinyhub bench --model opt6k --variants all --data-dir DIR  # + channels_last, compile, bf16, batch 256/512,
                                                             # glibc's default allocator
    tinyhub bench --time-to-target runs/model4-s0-... --data-dir DIR   # epochs/seconds until the recipe's target
    tinyhub bench --quick --data-dir DIR                       # smoke test: 2,048 images, same figures
    tinyhub bench --model model4 model.dropout=0 training.mixed_precision=bf16 --data-dir DIR   # a candidate recipe
    tinyhub bench --model gap5k --teacher runs/gap20k-s0 --data-dir DIR   # + the cost of distilling from a teacher
    tinyhub bench --model model4 --stack 1 2 4 8 16 --data-dir DIR   # K models trained together (seeds=[...]):
                                                                      # aggregate images/s for each K
    tinyhub bench --to 99.0 99.4 --data-dir DIR                 # instead: time to a target accuracy over many seeds,
                                                             # process start to saved model (time_to_target.py)

tinyhub's rows are `tinyhub.trainer.train` runs of the recipe (its optimizer, schedule, EMA, label smoothing,
precision, augmentation and per-epoch evaluation), read back from the run's own results.json. The seeds' pipeline:
torchvision MNIST (PIL images), RandomAffine with the recipe's parameters, ToTensor, Normalize, DataLoader(shuffle,
2 workers) for training and a test DataLoader for the per-epoch evaluation -- what the five seed projects ran --
driving the same model with the recipe's optimizer, schedule, label smoothing and precision. Each row runs in a
process of its own, so its peak memory is its own.
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from ._common import ArgumentParser, fail

VARIANTS = (("tinyhub + channels_last", ["training.channels_last=true"]),
            ("tinyhub + bf16", ["training.mixed_precision=bf16"]),
            ("tinyhub + torch.compile", ["training.compile=true"]),
            ("tinyhub, batch 256", ["data.batch_size=256"]),
            ("tinyhub, batch 512", ["data.batch_size=512"]),
            ("tinyhub, glibc's default allocator", ["training.keep_freed_memory=false"]))
QUICK_IMAGES = 2048


def _peak_memory_mb(device_type: str) -> float:
    if device_type == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _profile(cfg, threads: int, batches: int = 40) -> dict:
    """Where an epoch's time goes: the engine's own pieces timed alone on the recipe's batches, in seconds per
    training image: the input path (trainer/inputs.py: scale, augment, normalise, layout) and the step the engine
    assembles (trainer/step.py: the recipe's optimizer, per-batch schedule, EMA, clipping, precision, teachers)."""
    import dataclasses

    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from tinyhub import modeling
    from tinyhub.trainer import cuda_graph, seeding
    from tinyhub.trainer.augment import AugmentConfig
    from tinyhub.trainer.data import load_from_config
    from tinyhub.trainer.distill import load_teachers, teacher_specs
    from tinyhub.trainer.inputs import model_input
    from tinyhub.trainer.schema import typed_config
    from tinyhub.trainer.step import assemble_step

    c = typed_config(cfg)
    tr = c.training
    splits = load_from_config(c.data)
    model = modeling.create_model(c.model_name, **c.model_arguments, mean=splits.mean, std=splits.std)
    if tr.channels_last:
        model = model.to(memory_format=torch.channels_last)
    AcceleratorState._reset_state(reset_partial_state=True)  # the engine's run before this left its own state
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=tr.mixed_precision,
                              kwargs_handlers=cuda_graph.accelerator_kwargs(tr.cuda_graphs, torch.cuda.is_available()))
    teachers = load_teachers(teacher_specs(tr.distill.teacher), label_names=splits.label_names,
                             image_shape=splits.image_shape, device=accelerator.device)
    trainer = assemble_step(model, tr, accelerator, epochs=tr.epochs, steps_per_epoch=10**6, teachers=teachers)
    images, labels = splits.train_images.to(accelerator.device), splits.train_labels.to(accelerator.device)
    aug, bs = AugmentConfig(**dataclasses.asdict(c.augment)), c.data.batch_size
    gen = seeding.generator("augment", 0, 1, 0)
    batch_idx = [torch.randint(0, len(labels), (bs,), device=accelerator.device) for _ in range(batches)]
    model.train()
    synchronize = torch.cuda.synchronize if accelerator.device.type == "cuda" else (lambda: None)

    def timed(fn) -> float:
        for idx in batch_idx[:cuda_graph.WARMUP_STEPS + 1]:  # warm-up (on a GPU: up to the step's capture)
            fn(idx)
        synchronize()
        t0 = time.perf_counter()
        for idx in batch_idx:
            fn(idx)
        synchronize()  # a GPU runs behind the host: the time is the device's, not the launches'
        return (time.perf_counter() - t0) / (batches * bs)

    inputs = {}

    def prepare(idx):
        inputs[id(idx)] = model_input([images[idx]], model.normalize01, augment=aug, generators=[gen],
                                      channels_last=tr.channels_last)

    def step(idx):
        batch = inputs[id(idx)]
        trainer.step(batch.x, labels[idx].unsqueeze(1), batch.x01)

    return {"augment": timed(prepare), "step": timed(step)}


def _engine_row(overrides: list[str], run_dir: str, threads: int, profile: bool = False) -> dict:
    """One `tinyhub train` run, in this (child) process; its figures come from the RunRecord it wrote."""
    import logging

    import torch

    from tinyhub import trainer

    logging.getLogger("tinyhub").setLevel(logging.WARNING)  # the table speaks for the run
    torch.set_num_threads(threads)
    cfg = trainer.load_config([*overrides, "report_to=none", "progress=false", "training.checkpoint_every=0",
                               f"training.threads={threads}", f"run.dir={run_dir}"])
    run = trainer.train(cfg)
    members = [run / f"seed_{s}" for s in cfg.seeds] if cfg.seeds else [run]  # K models trained together
    record = trainer.load_run(members[0])
    last = record.epochs[-1]
    return {"images_per_second": last.images_per_second * len(members), "train_seconds": last.epoch_seconds,
            "eval_seconds": last.eval_seconds, "images": last.train_images * len(members), "run_dir": run_dir,
            "test_accuracy": last.test_accuracy, "peak_mb": _peak_memory_mb(record.device.split(":")[0]),
            "macs": record.macs, "profile": _profile(cfg, threads) if profile else None}


def _seeds_row(overrides: list[str], data_dir: str, epochs: int, subset: int, workers: int, threads: int) -> dict:
    """The seeds' pipeline (seeds_pipeline.py) for whole epochs, each followed by an evaluation of the test split,
    with the recipe's model, optimizer, schedule, label smoothing and precision; the last epoch's figures."""
    from tinyhub import trainer
    from tinyhub.trainer.schema import typed_config

    from .seeds_pipeline import raw_mnist_root, spec_from_recipe, train

    cfg = typed_config(trainer.load_config(overrides))
    with tempfile.TemporaryDirectory() as tmp:
        root = raw_mnist_root(Path(data_dir), Path(tmp))
        row = train(spec_from_recipe(cfg, root, epochs, subset=subset, workers=workers, threads=threads))
    return {**row, "peak_mb": _peak_memory_mb("cpu")}


def _in_own_process(fn, *args) -> dict:
    """Run one row in a fresh process: its peak memory and its warm-up are its own, not the previous row's."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def epoch_of(row: dict) -> float:
    """A row's whole epoch: training, then evaluation of the test split."""
    return row["train_seconds"] + row["eval_seconds"]


def _print_profile(row: dict, seeds_row: dict) -> None:
    """tinyhub's epoch split into the engine's pieces, per training image; `rest` is what the loop itself costs
    (indexing, the scheduler, metric accumulation, Python). The step's FLOP rate counts forward + backward as
    3 x 2 x MACs per image. The bound: the seeds' epoch against tinyhub's step alone, what no work on the pipeline
    around the step (the same step in both) could beat."""
    n, prof = row["images"], row["profile"]
    per_image = row["train_seconds"] / n
    parts = {"input path (scale, augment, normalise, layout)": prof["augment"],
             "forward + backward + optimizer step": prof["step"],
             "the rest of the loop (indexing, schedule, metrics, Python)": max(0.0, per_image - sum(prof.values()))}
    epoch = epoch_of(row)
    print(f"\nwhere tinyhub's epoch goes ({epoch:.1f} s: {row['train_seconds']:.1f} s training "
          f"{n:,} images, {row['eval_seconds']:.2f} s evaluating 10,000)")
    for name, secs in parts.items():
        print(f"  {name:<60}{secs * 1e6:>8.1f} us/image {100 * secs * n / epoch:>6.1f}%")
    print(f"  {'evaluation (per-epoch, test split)':<60}{'':>17}{100 * row['eval_seconds'] / epoch:>6.1f}%")
    step_epoch, seeds_epoch = prof["step"] * n, epoch_of(seeds_row)
    print(f"  bound: the step alone takes {step_epoch:.2f} s an epoch and the seeds' epoch {seeds_epoch:.2f} s, "
          f"so with the same step no pipeline gets past {seeds_epoch / step_epoch:.2f}x")
    flops = 6 * row["macs"]
    print(f"  step: {flops / 1e6:.1f} MFLOP per training image; {flops / prof['step'] / 1e9:.1f} GFLOP/s in the step "
          f"alone, {flops * row['images_per_second'] / 1e9:.1f} GFLOP/s over the whole training epoch")


def _stack_rows(args, recipe_overrides: list[str], threads: int) -> int:
    """K models trained together in one process (trainer/stack.py), each K in a process of its own."""
    from tinyhub.errors import TinyhubError

    rows = []
    with tempfile.TemporaryDirectory(prefix="tinyhub-bench-") as tmp:
        runs_root = Path(args.keep_runs or tmp)
        for k in args.stack:
            extra = [f"seeds=[{','.join(str(s) for s in range(k))}]"] if k > 1 else []
            run_dir = runs_root / f"bench-{args.model}-stack{k}-{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                rows.append((k, _in_own_process(_engine_row, [*recipe_overrides, *extra], str(run_dir), threads)))
            except TinyhubError as e:  # an architecture that cannot be stacked
                return fail(e)
    base = next((r for k, r in rows if k == 1), None)
    print(f"\n{'models together':<17}{'images/s (all)':>15}{'per model':>11}{'train s':>9}{'eval s':>8}"
          f"{'vs K=1':>8}{'peak MiB':>10}")
    for k, r in rows:
        ratio = f"{r['images_per_second'] / base['images_per_second']:>7.2f}x" if base else f"{'-':>8}"
        print(f"{k:<17}{r['images_per_second']:>15,.0f}{r['images_per_second'] / k:>11,.0f}{r['train_seconds']:>9.1f}"
              f"{r['eval_seconds']:>8.2f}{ratio}{r['peak_mb']:>10,.0f}")
    print("\nimages/s (all): training images per second summed over the K models (the last epoch's training "
          "time); vs K=1: that against one model trained alone by the same recipe")
    if args.keep_runs:
        print(f"tinyhub's run directories (results.json written by the engine): {runs_root}")
    return 0


def time_to_target(run_dir: Path) -> str:
    from tinyhub import trainer

    results = trainer.load_run(run_dir)
    target, final = results.target_accuracy, results.final.test_accuracy
    elapsed = 0.0
    for e in results.epochs:
        elapsed += e.epoch_seconds + e.eval_seconds
        if target is not None and e.test_accuracy >= target:
            return (f"{results.model}: reached {target}% at epoch {e.epoch} after {elapsed:.0f} s "
                    f"(final {final:.2f}% after {len(results.epochs)} epochs)")
    return (f"{results.model}: target {target}% not reached in {len(results.epochs)} epochs "
            f"({elapsed:.0f} s; final {final:.2f}%)")


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("--model", default="model4")
    p.add_argument("--data-dir", default=os.environ.get("TINYHUB_DATA_DIR"),
                   help="folder with the four MNIST IDX files (default: $TINYHUB_DATA_DIR)")
    p.add_argument("--epochs", type=int, default=2,
                   help="epochs per row; the last one is reported (the first includes start-up costs)")
    p.add_argument("--subset", type=int, default=0, help="train on the first N images only (0 = all 60,000)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the seeds' pipeline")
    p.add_argument("--threads", type=int, default=0, help="torch threads per row (0 = one per core)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the rows this many times, in turn, and report the round with the median ratio "
                        "(each round's figures are listed too): a virtual machine's speed drifts between runs")
    p.add_argument("--variants", choices=["default", "all"], default="default")
    p.add_argument("--time-to-target", nargs="*", default=[], metavar="RUN_DIR")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES:,} training images (smoke test)")
    p.add_argument("--profile", action="store_true",
                   help="also say where tinyhub's epoch goes: augmentation, forward+backward+step, evaluation, "
                        "the rest (the loop's own overhead), and the FLOP rate of the step")
    p.add_argument("--keep-runs", default=None, metavar="DIR",
                   help="keep tinyhub's run directories here (default: a temporary folder, removed)")
    p.add_argument("--teacher", action="append", default=None, metavar="TEACHER",
                   help="add a row with distillation from this teacher (run dir, model folder or Hub repo id; "
                        "repeat for an ensemble): what a teacher costs per epoch")
    p.add_argument("--stack", nargs="+", type=int, default=None, metavar="K",
                   help="instead: train K models of the recipe together (seeds=[0..K-1]) for each K given, and "
                        "report their aggregate images/s against K=1")
    to = p.add_argument_group("time to a target accuracy (tinyhub bench --to 99.0 99.4)")
    to.add_argument("--to", nargs="+", type=float, default=None, metavar="ACCURACY",
                    help="instead: the time until a model of this mean test accuracy is saved, for the speed recipe "
                         "(fast99, fast994) and the seeds' pipeline, N seeds each, each run a process of its own")
    to.add_argument("--recipe", default=None, help="with --to: the recipe to time (default: the target's speed recipe)")
    to.add_argument("--seeds", type=int, default=None, metavar="N",
                    help="with --to: seeds per pipeline (default: 10 below 99.4%%, else 5)")
    to.add_argument("--seeds-epochs", type=int, default=None, metavar="E",
                    help="with --to: epochs of the seeds' pipeline (default: the fewest that reached the target on "
                         "validation, measured for 99.0 and 99.4)")
    to.add_argument("--record", default=None, metavar="DIR",
                    help="with --to: write each tinyhub run's record to DIR/<recipe>/seed_<k>.json (results/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="recipe overrides, as for `tinyhub train` (model.dropout=0, "
                        "training.mixed_precision=bf16, ...)")
    return p


def main(argv=None, prog: str = "tinyhub bench") -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    if not args.data_dir:
        p.error("--data-dir is required (the seeds' pipeline reads the MNIST IDX files): "
                "--data-dir /path/to/mnist, or set TINYHUB_DATA_DIR")
    if args.to:
        if (args.seeds is not None and args.seeds < 1) or (args.seeds_epochs is not None and args.seeds_epochs < 1):
            p.error("--seeds and --seeds-epochs must be at least 1")
        bad = [t for t in args.to if not 0 < t < 100]
        if bad:
            p.error(f"--to {bad[0]:g}: give a test accuracy in %, above 0 and below 100 (e.g. --to 99.0)")
        from . import time_to_target as to_target

        return to_target.main(args)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    import torch
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tinyhub import modeling, trainer
    from tinyhub.errors import TinyhubError

    if args.model not in modeling.list_models():
        print(f"error: unknown model {args.model!r}; choose from {modeling.list_models()}", file=sys.stderr)
        return 2
    # Checked before minutes of timing, not after.
    unfinished = [run for run in args.time_to_target if not (Path(run) / "results.json").is_file()]
    if unfinished:
        print(f"error: --time-to-target needs finished run directories (with results.json); not one: "
              f"{', '.join(unfinished)}. Point it at a folder written by `tinyhub train`.", file=sys.stderr)
        return 2
    subset = QUICK_IMAGES if args.quick else args.subset
    recipe_overrides = [f"model={args.model}", *args.overrides, f"training.epochs={args.epochs}",
                        "data.source=local", f"data.dir={Path(args.data_dir).resolve()}", f"data.subset={subset}"]
    try:
        recipe = trainer.load_config(recipe_overrides)
    except trainer.ConfigError as e:
        return fail(e)
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: bad recipe override in {args.overrides}: {e}", file=sys.stderr)
        return 2
    try:  # the data is checked (and cached) once here, before any row starts
        trainer.load_dataset_splits(dir=args.data_dir)
    except trainer.DataError as e:
        return fail(e)
    threads = args.threads or os.cpu_count() or 1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hw = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {threads} torch threads"
    model_kwargs = {k: v for k, v in dict(recipe.model).items() if k != "name"}
    n_params = modeling.create_model(args.model, **model_kwargs).num_parameters()
    tr = recipe.training
    print(f"model {args.model} ({n_params:,} params, recipe {model_kwargs}); recipe: batch {recipe.data.batch_size}, "
          f"{tr.optimizer.name} + {tr.scheduler.name}, precision {tr.mixed_precision}, EMA {tr.ema or 'off'}, "
          f"channels_last {tr.channels_last}; {hw}; {args.epochs} epoch(s) of "
          f"{subset or 60_000:,} images per row, the last reported (training + evaluation of 10,000 test images)")

    if args.stack:
        return _stack_rows(args, recipe_overrides, threads)
    variants = [("tinyhub (tinyhub.trainer.train)", [])]
    if args.variants == "all":
        variants += list(VARIANTS)
    if args.teacher:
        value = args.teacher[0] if len(args.teacher) == 1 else "[" + ",".join(args.teacher) + "]"
        variants.append((f"tinyhub + distillation from {' + '.join(Path(t).name for t in args.teacher)}",
                         [f"training.distill.teacher={value}"]))
    rounds = []
    with tempfile.TemporaryDirectory(prefix="tinyhub-bench-") as tmp:
        runs_root = Path(args.keep_runs or tmp)
        try:
            for r in range(args.rounds):  # in turn, so that a drift of the machine's speed touches every row
                rows = [("seeds' pipeline (DataLoader + PIL)", _in_own_process(
                    _seeds_row, recipe_overrides, args.data_dir, args.epochs, subset, args.workers, threads))]
                for k, (label, extra) in enumerate(variants):
                    run_dir = runs_root / f"bench-{args.model}-{k}-{time.strftime('%Y%m%d-%H%M%S')}"
                    rows.append((label, _in_own_process(_engine_row, [*recipe_overrides, *extra], str(run_dir),
                                                        threads, args.profile and not extra and r == 0)))
                rounds.append(rows)
        except TinyhubError as e:  # a teacher that cannot be loaded, a recipe the engine refuses
            return fail(e)

    ratios = [epoch_of(rows[0][1]) / epoch_of(rows[1][1]) for rows in rounds]
    median = sorted(range(len(rounds)), key=ratios.__getitem__)[(len(rounds) - 1) // 2]
    rows = rounds[median]
    if len(rounds) > 1:
        print(f"\n{len(rounds)} rounds, tinyhub's epoch against the seeds' (s): " + ", ".join(
            f"{epoch_of(r[1][1]):.1f} / {epoch_of(r[0][1]):.1f} = {ratio:.2f}x" for r, ratio in zip(rounds, ratios))
            + f"; the table is round {median + 1}, the median ratio")
    seeds_epoch = epoch_of(rows[0][1])
    width = max(38, *(len(label) + 2 for label, _ in rows))
    print(f"\n{'pipeline':<{width}}{'images/s':>10}{'train s':>9}{'eval s':>8}{'epoch s':>9}{'vs seeds':>10}"
          f"{'peak MiB':>10}")
    for label, r in rows:
        epoch = epoch_of(r)
        print(f"{label:<{width}}{r['images_per_second']:>10,.0f}{r['train_seconds']:>9.1f}{r['eval_seconds']:>8.2f}"
              f"{epoch:>9.1f}{seeds_epoch / epoch:>9.2f}x{r['peak_mb']:>10,.0f}")
    print("\nvs seeds: the seeds' whole epoch (training + evaluation) divided by this row's; peak MiB: the row's "
          "process" + (" (GPU memory)" if device == "cuda" else " (resident memory)"))
    profiled = rounds[0][1][1]
    if profiled["profile"]:
        _print_profile(profiled, rounds[0][0][1])
    if args.keep_runs:
        print(f"tinyhub's run directories (results.json written by the engine): {runs_root}")
    for run in args.time_to_target:
        print(time_to_target(Path(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
