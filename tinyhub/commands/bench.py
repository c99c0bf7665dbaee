"""tinyhub bench: training-step throughput of tinyhub's device-resident pipeline versus the seeds' DataLoader
pipeline. Same model, same batch size, same augmentation, same machine, one run; ratios printed side by side.

    tinyhub bench --model model4 --data-dir DIR                # default: 60 timed steps per variant
    tinyhub bench --model opt6k --variants all --data-dir DIR  # + channels_last, compile, bf16, batch 256/512
    tinyhub bench --time-to-target runs/model4-s0-... --data-dir DIR   # epochs/seconds until the recipe's target
    tinyhub bench --quick --data-dir DIR                       # smoke test: a few steps, same figures
    tinyhub bench --model model4 model.dropout=0 training.mixed_precision=bf16 --data-dir DIR   # a candidate recipe
    tinyhub bench --model gap5k --teacher runs/gap20k-s0 --data-dir DIR   # + the cost of distilling from a teacher

The seeds' pipeline: torchvision MNIST (PIL images), RandomAffine with the recipe's parameters, ToTensor,
Normalize, DataLoader(batch 128, shuffle, 2 workers) — what the five seed projects ran.
"""

import argparse
import gzip
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from tinyhub import modeling, trainer
from tinyhub.trainer.augment import AugmentConfig, augment_batch
from tinyhub.trainer.seeding import generator

from ._common import fail


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step_fn(model, optimizer, device, mixed_precision, teachers=()):
    from tinyhub.trainer.distill import distillation_loss, soft_targets

    def step(x, y, x01=None):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision == "bf16"):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            if teachers:  # the engine's own distillation functions, at its default temperature and weight
                loss = 0.5 * loss + 0.5 * distillation_loss(logits, soft_targets(teachers, x01, 4.0), 4.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss
    return step


def bench_tinyhub(name, model_kwargs, splits, aug_cfg, *, batch_size, steps, warmup, device, channels_last=False,
                  compile=False, mixed_precision="no", teachers=()):
    """images/s of tinyhub's training step: uint8 data on the device, batched per-sample augmentation."""
    torch.manual_seed(0)
    model = modeling.create_model(name, **model_kwargs).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    run_model = torch.compile(model) if compile else model
    step = _step_fn(run_model, optimizer, device, mixed_precision, teachers)
    images, labels = splits.train_images.to(device), splits.train_labels.to(device)
    mean = torch.tensor(model.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, -1, 1, 1)
    gen = generator("augment", 0, 1, 0, device=device)
    perm = torch.randperm(len(labels), device=device)
    model.train()
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        idx = perm[(i * batch_size) % (len(labels) - batch_size):][:batch_size]
        x01 = augment_batch(images[idx].float() / 255.0, aug_cfg, gen)
        x = (x01 - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step(x, labels[idx], x01)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t0)


def _raw_mnist_root(data_dir: Path, tmp: Path) -> Path:
    """torchvision's MNIST wants MNIST/raw/<name> (uncompressed); build that from the IDX files."""
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        src = data_dir / (stem + ".gz")
        (raw / stem).write_bytes(gzip.decompress(src.read_bytes()) if src.exists() else (data_dir / stem).read_bytes())
    return tmp


def bench_seed_pipeline(name, model_kwargs, data_dir, aug_cfg, *, batch_size, steps, warmup, device, workers):
    """images/s of the seeds' pipeline: torchvision dataset + PIL transforms + DataLoader workers."""
    from torchvision import datasets, transforms

    torch.manual_seed(0)
    model = modeling.create_model(name, **model_kwargs).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = _step_fn(model, optimizer, device, "no")
    tf = transforms.Compose([
        transforms.RandomAffine(degrees=aug_cfg.rotation, translate=aug_cfg.translate or None,
                                scale=aug_cfg.scale, shear=aug_cfg.shear or None),
        transforms.ToTensor(),
        transforms.Normalize(model.mean, model.std),
    ])
    with tempfile.TemporaryDirectory() as tmp:
        root = _raw_mnist_root(Path(data_dir), Path(tmp))
        ds = datasets.MNIST(root, train=True, download=False, transform=tf)
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                             persistent_workers=workers > 0, drop_last=True)
        model.train()
        t0, done = None, 0
        while done < warmup + steps:
            for x, y in loader:
                if done == warmup:
                    t0 = time.perf_counter()
                step(x.to(device), y.to(device))
                done += 1
                if done >= warmup + steps:
                    break
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch_size / (time.perf_counter() - t0)


def time_to_target(run_dir: Path) -> str:
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
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="model4")
    p.add_argument("--data-dir", default=os.environ.get("TINYHUB_DATA_DIR"),
                   help="folder with the four MNIST IDX files (default: $TINYHUB_DATA_DIR)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the seeds' pipeline")
    p.add_argument("--variants", choices=["default", "all"], default="default")
    p.add_argument("--time-to-target", nargs="*", default=[], metavar="RUN_DIR")
    p.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    p.add_argument("--teacher", action="append", default=None, metavar="TEACHER",
                   help="add a row with distillation from this teacher (run dir, model folder or Hub repo id; "
                        "repeat for an ensemble): what a teacher costs per step")
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
    if args.quick:
        args.steps, args.warmup = 4, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.model not in modeling.list_models():
        print(f"error: unknown model {args.model!r}; choose from {modeling.list_models()}", file=sys.stderr)
        return 2
    # Checked before minutes of timing, not after.
    unfinished = [run for run in args.time_to_target if not (Path(run) / "results.json").is_file()]
    if unfinished:
        print(f"error: --time-to-target needs finished run directories (with results.json); not one: "
              f"{', '.join(unfinished)}. Point it at a folder written by `tinyhub train`.", file=sys.stderr)
        return 2
    try:
        recipe = trainer.load_config([f"model={args.model}", *args.overrides])
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: bad recipe override in {args.overrides}: {e}", file=sys.stderr)
        return 2
    aug = AugmentConfig(**{k: v for k, v in dict(recipe.augment).items()})
    # The recipe's model (its dropout, width, ...) on both sides: the comparison is of pipelines, not models.
    model_kwargs = {k: v for k, v in dict(recipe.model).items() if k != "name"}
    try:
        splits = trainer.load_dataset_splits(dir=args.data_dir)
    except trainer.DataError as e:
        return fail(e)
    hw = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    n_params = modeling.create_model(args.model, **model_kwargs).num_parameters()
    print(f"model {args.model} ({n_params:,} params, recipe {model_kwargs}), batch "
          f"{args.batch_size}, augmentation {aug.describe()['rotation']}° rotation + affine, {hw}, "
          f"{args.steps} timed steps after {args.warmup} warm-up")

    common = {"steps": args.steps, "warmup": args.warmup, "device": device}
    rows = []
    seeds_ips = bench_seed_pipeline(args.model, model_kwargs, args.data_dir, aug, batch_size=args.batch_size,
                                    workers=args.workers, **common)
    rows.append(("seeds' pipeline (DataLoader + PIL)", seeds_ips))
    variants = [("tinyhub", {})]
    # What the recipe itself trains with, when it differs from the plain fp32 batch-128 step.
    recipe_kw = {}
    if recipe.training.mixed_precision == "bf16":
        recipe_kw["mixed_precision"] = "bf16"
    for flag in ("channels_last", "compile"):
        if recipe.training[flag]:
            recipe_kw[flag] = True
    if recipe.data.batch_size != args.batch_size:
        recipe_kw["batch_size"] = recipe.data.batch_size
    if recipe_kw:
        variants.append((f"tinyhub as the recipe trains ({', '.join(f'{k}={v}' for k, v in recipe_kw.items())})",
                         recipe_kw))
    if args.variants == "all":
        variants += [("tinyhub + channels_last", {"channels_last": True}),
                     ("tinyhub + bf16", {"mixed_precision": "bf16"}),
                     ("tinyhub + torch.compile", {"compile": True}),
                     ("tinyhub, batch 256", {"batch_size": 256}),
                     ("tinyhub, batch 512", {"batch_size": 512})]
    if args.teacher:
        from tinyhub.trainer.distill import load_teachers, teacher_specs

        teachers = load_teachers(teacher_specs(args.teacher), label_names=splits.label_names,
                                 image_shape=splits.image_shape, device=device)
        names = " + ".join(f"{t.record.architecture} ({t.record.parameters:,})" for t in teachers)
        variants.append((f"tinyhub + distillation from {names}", {"teachers": teachers}))
    for label, kw in variants:
        kw = {"batch_size": args.batch_size, **kw}
        rows.append((label, bench_tinyhub(args.model, model_kwargs, splits, aug, **kw, **common)))
    n = len(splits.train_labels)
    width = max(38, *(len(label) + 2 for label, _ in rows))
    print(f"\n{'pipeline':<{width}}{'images/s':>12}{'s/epoch':>10}{'vs seeds':>10}")
    for label, ips in rows:
        print(f"{label:<{width}}{ips:>12,.0f}{n / ips:>10.1f}{ips / seeds_ips:>9.2f}x")
    mem = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB, " if device.type == "cuda" else ""
    print(f"\n{mem}peak process RSS {_peak_rss_mb():.0f} MiB (whole benchmark process)")
    for run in args.time_to_target:
        print(time_to_target(Path(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
