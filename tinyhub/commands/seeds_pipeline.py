"""The seed projects' training pipeline, the baseline `tinyhub bench` measures tinyhub against: torchvision MNIST (PIL
images), RandomAffine with the recipe's parameters, ToTensor, Normalize, DataLoader(shuffle, workers) and a test
DataLoader, driving a tinyhub model with the recipe's optimizer, schedule, label smoothing and precision -- what the
five seed projects ran.

It imports torch, torchvision and the model zoo only, as the seed projects' scripts did: run as a process of its
own (`python -m tinyhub.commands.seeds_pipeline SPEC.json`, what `tinyhub bench --to` times), its start-up is theirs,
not tinyhub's configuration stack. The caller resolves the recipe and passes its values in the spec.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tinyhub.utils.process import process_age

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


@dataclass
class PipelineSpec:
    """One run of the seeds' pipeline: the recipe's values, the data, and what to do."""

    model: str
    model_arguments: dict
    root: str  # a folder holding MNIST/raw/<the four uncompressed IDX files> (raw_mnist_root)
    epochs: int
    batch_size: int
    eval_batch_size: int
    optimizer: dict  # name, lr, momentum, nesterov, weight_decay, betas
    scheduler: dict  # name, max_lr, pct_start, step_size, gamma
    augment: dict  # rotation, translate, scale, shear
    label_smoothing: float = 0.0
    bf16: bool = False
    channels_last: bool = False
    seed: int = 0
    subset: int = 0  # first N training images; 0 = all
    val_size: int = 0  # hold out tinyhub's validation images (data.val_size) and evaluate those, not the test split
    workers: int = 2
    threads: int = 0  # torch threads; 0 = torch's default
    eval_each_epoch: bool = True  # the seeds evaluated the test split after every epoch
    save_to: str | None = None  # a folder for model.safetensors and result.json


def spec_from_recipe(cfg, root: Path | str, epochs: int, **run) -> PipelineSpec:
    """The spec of a typed recipe (schema.TrainConfig) for `epochs` epochs; `run`: seed, subset, workers, threads,
    eval_each_epoch, save_to."""
    tr, opt, sch, aug = cfg.training, cfg.training.optimizer, cfg.training.scheduler, cfg.augment
    return PipelineSpec(
        model=cfg.model_name, model_arguments=dict(cfg.model_arguments), root=str(root), epochs=epochs,
        batch_size=cfg.data.batch_size, eval_batch_size=cfg.data.eval_batch_size,
        optimizer={"name": opt.name.lower(), "lr": opt.lr, "momentum": opt.momentum, "nesterov": opt.nesterov,
                   "weight_decay": opt.weight_decay, "betas": list(opt.betas)},
        scheduler={"name": sch.name.lower(), "max_lr": sch.max_lr, "pct_start": sch.pct_start,
                   "step_size": sch.step_size, "gamma": sch.gamma},
        augment={"rotation": aug.rotation, "translate": list(aug.translate), "scale": list(aug.scale),
                 "shear": aug.shear},
        label_smoothing=tr.label_smoothing, bf16=tr.mixed_precision == "bf16", channels_last=tr.channels_last,
        **run)


def raw_mnist_root(data_dir: Path, tmp: Path) -> Path:
    """torchvision's MNIST wants MNIST/raw/<name> (uncompressed); build that from the IDX files."""
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES:
        src = data_dir / (stem + ".gz")
        (raw / stem).write_bytes(gzip.decompress(src.read_bytes()) if src.exists() else (data_dir / stem).read_bytes())
    return tmp


def _optimizer(params, opt: dict):
    """The seeds built their optimizer and schedule with torch directly; so does this pipeline."""
    import torch

    if opt["name"] == "sgd":
        return torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"], nesterov=opt["nesterov"],
                               weight_decay=opt["weight_decay"])
    if opt["name"] in ("adam", "adamw"):
        cls = torch.optim.Adam if opt["name"] == "adam" else torch.optim.AdamW
        return cls(params, lr=opt["lr"], betas=tuple(opt["betas"]), weight_decay=opt["weight_decay"])
    raise ValueError(f"the seeds' pipeline runs sgd, adam or adamw, not {opt['name']!r}")


def _scheduler(optimizer, sch: dict, epochs: int, steps_per_epoch: int):
    """(scheduler or None, 'step' | 'epoch' | None): the schedules the seed projects used."""
    import torch

    if sch["name"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=sch["max_lr"],
                                                   total_steps=epochs * steps_per_epoch,
                                                   pct_start=sch["pct_start"]), "step"
    if sch["name"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, sch["step_size"], sch["gamma"]), "epoch"
    if sch["name"] == "none":
        return None, None
    raise ValueError(f"the seeds' pipeline runs onecycle, step or no schedule, not {sch['name']!r}")


def train(spec: PipelineSpec) -> dict:
    """Train, evaluate on the test split (after every epoch, or after the last), and save when asked. Returns the
    last epoch's figures and where the time went."""
    started = time.perf_counter()
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from tinyhub import modeling
    from tinyhub.trainer.scores import classification_scores

    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    model = modeling.create_model(spec.model, **spec.model_arguments)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    aug = spec.augment
    normalize = transforms.Normalize(model.mean, model.std)
    train_tf = transforms.Compose([
        transforms.RandomAffine(degrees=aug["rotation"], translate=tuple(aug["translate"]) if any(aug["translate"])
                                else None, scale=tuple(aug["scale"]), shear=aug["shear"] or None),
        transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    loading = time.perf_counter()
    train_ds = datasets.MNIST(spec.root, train=True, download=False, transform=train_tf)
    if spec.val_size:  # the very images tinyhub holds out for data.val_size, so both are chosen on the same ones
        from tinyhub.trainer.seeding import validation_permutation

        perm = validation_permutation(len(train_ds))
        val_idx, train_idx = perm[:spec.val_size].sort().values, perm[spec.val_size:].sort().values
        test_ds = Subset(datasets.MNIST(spec.root, train=True, download=False, transform=test_tf), val_idx.tolist())
        train_ds = Subset(train_ds, train_idx.tolist())
    else:
        test_ds = datasets.MNIST(spec.root, train=False, download=False, transform=test_tf)
    if spec.subset:
        train_ds = Subset(train_ds, range(spec.subset))
    loader = DataLoader(train_ds, batch_size=spec.batch_size, shuffle=True, num_workers=spec.workers,
                        persistent_workers=spec.workers > 0, drop_last=False)
    test_loader = DataLoader(test_ds, batch_size=spec.eval_batch_size, num_workers=spec.workers,
                             persistent_workers=spec.workers > 0)
    data_seconds = time.perf_counter() - loading
    optimizer = _optimizer(model.parameters(), spec.optimizer)
    scheduler, when = _scheduler(optimizer, spec.scheduler, spec.epochs, len(loader))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=spec.label_smoothing)
    times = {"data": data_seconds, "set_up": time.perf_counter() - started - data_seconds, "train": 0.0,
             "evaluate": 0.0, "save": 0.0}
    for epoch in range(1, spec.epochs + 1):
        model.train()
        t0, seen = time.perf_counter(), 0
        for x, y in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.bf16):
                loss = criterion(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if when == "step":
                scheduler.step()
            seen += len(y)
        t1 = time.perf_counter()
        if spec.eval_each_epoch or epoch == spec.epochs:
            model.eval()
            predicted, labels = [], []
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.bf16):
                for x, y in test_loader:
                    logits = model(x)
                    predicted.append(logits.argmax(1))
                    labels.append(y)
            correct = classification_scores(torch.cat(predicted), torch.cat(labels), logits.shape[1]).correct
        t2 = time.perf_counter()
        times["train"] += t1 - t0
        times["evaluate"] += t2 - t1
        if when == "epoch":
            scheduler.step()
    split = "val_accuracy" if spec.val_size else "test_accuracy"
    result = {"images_per_second": seen / (t1 - t0), "train_seconds": t1 - t0, "eval_seconds": t2 - t1,
              "images": seen, split: 100 * correct / len(test_ds)}
    if spec.save_to:
        from safetensors.torch import save_file

        saving = time.perf_counter()
        out = Path(spec.save_to)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
        times["save"] = time.perf_counter() - saving
    return {**result, "times": times}


def main(argv=None) -> int:
    """The seeds' pipeline as a process of its own: one run of the spec in SPEC.json; its figures, where its time
    went and the seconds from process start to the end of its imports go to <save_to>/result.json."""
    argv = sys.argv[1:] if argv is None else argv
    spec = PipelineSpec(**json.loads(Path(argv[0]).read_text()))
    import torch  # noqa: F401  the seeds' scripts imported these first: their start-up
    import torchvision  # noqa: F401

    start_up = process_age()
    result = train(spec)
    result["times"]["start_up"] = start_up
    out = Path(spec.save_to or ".") / "result.json"
    out.write_text(json.dumps({**result, "spec": asdict(spec)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
