"""The run record: what a finished run is, as one typed object. The engine writes it as results.json; the card,
the report, evaluation, distillation, reproduce, bench and publish read it through `load_run`, never as raw JSON.

    record = load_run("runs/model4-s0")      # a run directory or its results.json
    record.final.test_accuracy, record.epochs[-1].lr, record.dataset.name, record.hardware_text

`load_run` checks what it reads: a file from another tool, from an older tinyhub whose records cannot be read
honestly, or from a newer one is refused with what to do; a file of the previous schema is migrated in memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from tinyhub.errors import TinyhubError
from tinyhub.files import write_json_atomic

from .schema import ConfigError, TrainConfig, config_dict, typed_config

#: What every results.json tinyhub writes says it is, so that a file from another tool is never mistaken for one.
RECORD_KIND = "tinyhub-run"
#: Bump on any incompatible change and add a migration below; the docs' results.json reference is generated
#: from these classes.
#: 3: `kind`, typed throughout (teachers, data); 2: data.identity and target_dataset; 1: before datasets had names.
RESULTS_SCHEMA_VERSION = 3
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class DatasetIdentity:
    """What a run was trained on, as results.json records it and the card states it.

    `name` is None when nothing identifies the data (IDX files with data.verify=false and no data.name, a saved
    folder without metadata): the card then asks for a name at push time instead of guessing.
    """

    name: str | None  # the dataset's name as people know it
    source: str  # "idx" (local IDX files) | "hub" (a Hub dataset id) | "folder" (DatasetDict.save_to_disk)
    identified_by: str  # how `name` was decided, in words
    fingerprint: str  # content_fingerprint of the train and test splits
    hub_id: str | None = None  # a Hub dataset id, when the data is one
    revision: str | None = None
    canonical: str | None = None  # "mnist" when the content is canonical MNIST
    description: str | None = None  # from the dataset's own DatasetInfo, when it has one
    citation: str | None = None
    license: str | None = None
    homepage: str | None = None

    @property
    def key(self) -> str | None:
        """The name recipes use for this dataset (`recipe.target_dataset`): "mnist" for MNIST, else the Hub id or
        the name."""
        return self.canonical or self.hub_id or self.name

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetIdentity":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RunRecordError(TinyhubError, ValueError):
    """A results.json that is not a finished tinyhub run this version can read."""


def _fields(cls, d: dict, where: str, *, extra: str | None = None) -> dict:
    """The keyword arguments of dataclass `cls` from `d`: required keys must be there, unknown keys are refused
    (or kept under `extra`)."""
    names = {f.name for f in dataclasses.fields(cls)} - ({extra} if extra else set())
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(d))
    if missing:
        raise RunRecordError(f"{where} lacks {', '.join(missing)}")
    unknown = sorted(set(d) - names)
    if unknown and not extra:
        raise RunRecordError(f"{where} has fields this tinyhub does not know: {', '.join(unknown)}")
    out = {k: v for k, v in d.items() if k in names}
    if extra:
        out[extra] = {k: d[k] for k in unknown}
    return out


@dataclass
class EpochRecord:
    """One epoch: training metrics and the evaluation after it (validation only when a split was held out; neither
    after an epoch that `training.eval_every` skips -- the last epoch is always evaluated)."""

    epoch: int  # from 1
    lr: float  # the learning rate at the epoch's last step
    train_loss: float  # mean over the epoch's batches, as trained (augmented, with dropout)
    train_accuracy: float  # % of the epoch's augmented training images predicted right while training
    train_images: int
    epoch_seconds: float  # training alone, without the evaluation
    images_per_second: float  # training images per second
    eval_seconds: float  # evaluating the test (and validation) split; 0 when not evaluated
    test_loss: float | None = None  # None: this epoch was not evaluated
    test_accuracy: float | None = None  # %
    test_correct: int | None = None
    test_total: int | None = None
    val_loss: float | None = None  # only with a validation split
    val_accuracy: float | None = None

    @property
    def evaluated(self) -> bool:
        return self.test_accuracy is not None

    @classmethod
    def from_dict(cls, d: dict) -> EpochRecord:
        return cls(**_fields(cls, d, f"epoch {d.get('epoch')}"))

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items()
                if not ((k.startswith("val_") or k.startswith("test_")) and v is None)}


@dataclass
class FinalMetrics:
    """The final epoch's weights (the EMA weights when `ema`) evaluated on the test split: the run's result."""

    epoch: int
    test_accuracy: float  # %: the figure the card and the records report
    test_loss: float
    test_correct: int
    test_total: int
    train_accuracy: float
    train_loss: float
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted
    ema: bool = False  # the EMA weights were evaluated (and saved)
    val_accuracy: float | None = None

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["val_accuracy"] is None:
            del d["val_accuracy"]
        return d


@dataclass
class TeacherRecord:
    """A distillation teacher, exactly: repo id and commit on the Hub, or a local path and its weights' sha256."""

    kind: str  # run | folder | hub
    architecture: str
    parameters: int
    weights_sha256: str
    test_accuracy: float | None = None  # the teacher's own final test accuracy, when its record says it
    path: str | None = None  # a local run directory or saved model
    dataset: str | None = None  # the dataset the teacher was trained on
    repo_id: str | None = None  # on the Hub: the repo, the revision asked for and the commit it resolved to
    revision: str | None = None
    commit: str | None = None
    spec: str | None = None  # as the configuration named it

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @property
    def short_text(self) -> str:
        accuracy = f", {self.test_accuracy:.2f}%" if self.test_accuracy is not None else ""
        return f"{self.architecture} ({self.parameters:,} params{accuracy})"


@dataclass
class Distillation:
    teachers: list[TeacherRecord]  # several: an ensemble, their softened probabilities averaged
    temperature: float
    weight: float  # share of the loss from the teachers' soft targets

    @classmethod
    def from_dict(cls, d: dict) -> Distillation:
        d = _fields(cls, d, "distillation")
        return cls(teachers=[TeacherRecord(**_fields(TeacherRecord, t, "a distillation teacher"))
                             for t in d["teachers"]], temperature=d["temperature"], weight=d["weight"])

    def as_dict(self) -> dict:
        return {"teachers": [t.as_dict() for t in self.teachers], "temperature": self.temperature,
                "weight": self.weight}

    @property
    def text(self) -> str:
        return " + ".join(t.short_text for t in self.teachers)


@dataclass
class DataRecord:
    """What the run loaded. Source-specific facts (IDX checksums, Hub revision and splits) stay in `details`."""

    identity: DatasetIdentity
    train_size: int  # training images (without the validation images carved from them)
    test_size: int
    val_size: int = 0
    validation: str | None = None  # where the validation images came from, when there are any
    label_names_from: str | None = None  # data.label_names | labels.txt | ClassLabel | indices
    mean: list[float] = field(default_factory=list)  # per channel, of the training split: the normalisation
    std: list[float] = field(default_factory=list)
    image_shape: list[int] = field(default_factory=list)  # channels, height, width
    kind: str = "local"  # local | hub
    details: dict = field(default_factory=dict)  # IDX files and their sha256, or Hub id, revision and splits

    @classmethod
    def from_dict(cls, d: dict) -> DataRecord:
        kwargs = _fields(cls, d, "data", extra="details")
        kwargs["identity"] = DatasetIdentity.from_dict(kwargs["identity"])
        return cls(**kwargs)

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "details"}
        d["identity"] = self.identity.as_dict()
        return {**self.details, **d}


@dataclass
class LayerRecord:
    name: str
    kind: str  # the layer's class
    output_shape: list[int]  # for one image
    params: int
    macs: int  # multiply-accumulates for one image


@dataclass
class ArchitectureSummary:
    """The model layer by layer, as `tinyhub.summary(model)` measured it when the run finished."""

    layers: list[LayerRecord]
    total_params: int
    trainable_params: int
    macs: int  # multiply-accumulates for one image
    input_shape: list[int]

    @classmethod
    def from_dict(cls, d: dict) -> ArchitectureSummary:
        kwargs = _fields(cls, d, "summary")
        kwargs["layers"] = [LayerRecord(**_fields(LayerRecord, r, "summary: layer")) for r in kwargs["layers"]]
        return cls(**kwargs)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Augmentation:
    """The exact augmentation a run applied: per image, on the device, drawn from the run's seeded generators."""

    enabled: bool
    per_sample: bool
    rotation: float  # degrees, uniform in [-rotation, rotation]
    translate: list[float]  # largest shift, as fractions of the width and of the height
    scale: list[float]  # the zoom range [low, high]
    shear: float  # degrees
    center_crop_size: int  # the seeds' RandomApply(CenterCrop(k), p) then resize back; 0 = off
    center_crop_p: float
    erase_p: float  # random erasing
    erase_area: list[float]
    erase_ratio: list[float]

    @classmethod
    def from_dict(cls, d: dict) -> Augmentation:
        return cls(**_fields(cls, d, "augmentation"))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def text(self) -> str:
        """One line: "rot ±10°, shift ±0.08/0.08, scale 0.92-1.08, shear ±5°", or "none"."""
        if not self.enabled:
            return "none"
        parts = []
        if self.rotation:
            parts.append(f"rot ±{self.rotation:g}°")
        if any(self.translate):
            parts.append("shift ±" + "/".join(f"{t:g}" for t in self.translate))
        if tuple(self.scale) != (1.0, 1.0):
            parts.append("scale " + "-".join(f"{v:g}" for v in self.scale))
        if self.shear:
            parts.append(f"shear ±{self.shear:g}°")
        if self.center_crop_size and self.center_crop_p:
            parts.append(f"crop {self.center_crop_size} p={self.center_crop_p:g}")
        if self.erase_p:
            parts.append(f"erase p={self.erase_p:g}")
        return ", ".join(parts)


@dataclass
class RunTimes:
    """Where a run's time went, in seconds (`tinyhub bench --to --profile` prints it). `start_up` is from the
    process's start to the engine's (interpreter, imports, configuration), where the platform says when the process
    started (Linux); `save` is writing the model, examples and report."""

    start_up: float | None
    data: float  # the splits decoded, or read from the cache, and on the device
    set_up: float  # the rest of the set-up: accelerator, run directory, models, optimizer and step
    train: float  # the training epochs
    evaluate: float  # every evaluation of the validation and test splits
    save: float

    @classmethod
    def from_dict(cls, d: dict) -> RunTimes:
        return cls(**_fields(cls, d, "times"))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Hardware:
    """The machine a run trained on."""

    cpu: str | None = None
    cpu_count: int | None = None
    torch_threads: int | None = None
    gpu: str | None = None  # the GPU's name; null on the CPU
    platform: str | None = None
    details: dict = field(default_factory=dict)  # anything else an older or newer record says

    @classmethod
    def from_dict(cls, d: dict) -> Hardware:
        return cls(**_fields(cls, d, "hardware", extra="details"))

    def as_dict(self) -> dict:
        return {**self.details, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                   if f.name != "details"}}

    @property
    def text(self) -> str:
        """"CPU <name>, N threads", or the GPU's name."""
        threads = self.torch_threads
        return self.gpu or f"CPU {self.cpu or 'unknown'}, {threads} thread{'' if threads == 1 else 's'}"


@dataclass
class GitState:
    """The tinyhub checkout a run was trained from; all None outside one."""

    commit: str | None = None
    dirty: bool | None = None  # a change that could alter a run (not the generated results files)
    changed_files: list[str] | None = None

    @classmethod
    def from_dict(cls, d: dict) -> GitState:
        return cls(**_fields(cls, d, "git"))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def typed_recipe(recipe: dict | TrainConfig, where: str = RESULTS_FILE, *, model: str | None = None) -> TrainConfig:
    """A recorded recipe as the TrainConfig it ran with. Read as it was: what ran, ran (no value checks); a key
    this tinyhub does not know makes it unreadable, said as such. `model` names the architecture where the
    recorded recipe leaves it out (a hand-written seed record)."""
    if isinstance(recipe, TrainConfig):
        return recipe
    if model is not None:  # the recorded recipe's own name wins; the record's fills one left out
        from omegaconf import OmegaConf

        recipe = OmegaConf.to_container(OmegaConf.merge({"model": {"name": model}}, recipe))
    try:
        return typed_config(recipe, validate=False)
    except ConfigError as e:
        raise RunRecordError(f"{where}: its recipe cannot be read by this tinyhub ({e})") from e


@dataclass
class RunRecord:
    """results.json of a finished run, typed. `recipe` is the resolved training configuration it ran with."""

    model: str  # the architecture's registered name (tinyhub.list_models())
    # The architecture's arguments (dropout, width, ...) and param_budget: each architecture takes its own, so this
    # is a mapping of plain values, checked against the architecture when the model is built.
    model_kwargs: dict[str, int | float | bool | str | None]
    label_names: list[str]  # class names in label order
    parameters: int
    macs: int  # multiply-accumulates per image
    summary: ArchitectureSummary  # layers, shapes, parameters, MACs
    param_budget: int  # the family's parameter budget, or the recipe's model.param_budget
    target_accuracy: float | None  # the recipe's target in %; null when it is for another dataset
    target_dataset: str | None  # the dataset the target is for
    final: FinalMetrics  # the final epoch's evaluation: the run's result
    epochs: list[EpochRecord]  # every epoch, in order
    recipe: TrainConfig  # the resolved configuration it ran with (settings its optimizer and schedule ignore left out)
    overrides: list[str]  # `tinyhub train <these>` trains this recipe on any machine
    augmentation: Augmentation  # the exact augmentation parameters
    distillation: Distillation | None  # the teachers, temperature and weight; null without distillation
    data: DataRecord  # what the run loaded
    seed: int
    world_size: int  # processes
    mixed_precision: str  # no | fp16 | bf16
    batch_size_per_process: int
    global_batch_size: int
    compile: bool  # torch.compile
    channels_last: bool
    deterministic: bool  # torch.use_deterministic_algorithms
    resumed_from: str | None  # the checkpoint a resume started from
    resume_changes: list[dict]  # allowed settings that differ from the checkpoint's, both values
    wall_seconds: float  # from the engine's start to the end of its last epoch (set-up, epochs, evaluations)
    train_seconds: float  # the training epochs alone
    device: str  # cpu | cuda | ...
    hardware: Hardware  # CPU name and torch threads, GPU name
    versions: dict  # python, torch, accelerate, huggingface_hub, tinyhub, ...
    command: str  # the command line that ran it
    git: GitState  # commit, dirty flag and changed files of the tinyhub checkout, when there was one
    times: RunTimes | None = None  # where the time went; null in records written before it was kept
    cuda_graphs: bool = False  # the step's forward and backward were replayed from a CUDA graph
    optimizer_implementation: str | None = None  # forloop | foreach | fused; null in records made before it was kept
    schema_version: int = RESULTS_SCHEMA_VERSION
    kind: str = RECORD_KIND  # "tinyhub-run": never mistaken for another tool's file

    # ---- reading and writing ----
    @classmethod
    def from_dict(cls, d: dict, where: str = RESULTS_FILE) -> RunRecord:
        kwargs = _fields(cls, d, where)
        try:
            kwargs["final"] = FinalMetrics(**_fields(FinalMetrics, kwargs["final"], f"{where}: final"))
            kwargs["epochs"] = [EpochRecord.from_dict(e) for e in kwargs["epochs"]]
            kwargs["data"] = DataRecord.from_dict(kwargs["data"])
            if kwargs["distillation"] is not None:
                kwargs["distillation"] = Distillation.from_dict(kwargs["distillation"])
            kwargs["hardware"] = Hardware.from_dict(kwargs["hardware"] or {})
            kwargs["augmentation"] = Augmentation.from_dict(kwargs["augmentation"])
            kwargs["summary"] = ArchitectureSummary.from_dict(kwargs["summary"])
            kwargs["git"] = GitState.from_dict(kwargs["git"] or {})
            if kwargs.get("times") is not None:
                kwargs["times"] = RunTimes.from_dict(kwargs["times"])
            kwargs["recipe"] = typed_recipe(kwargs["recipe"], where, model=kwargs["model"])
        except TypeError as e:
            raise RunRecordError(f"{where} is malformed ({e})") from e
        return cls(**kwargs)

    def as_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "epochs":
                value = [e.as_dict() for e in value]
            elif f.name == "recipe":
                value = config_dict(value)
            elif hasattr(value, "as_dict"):
                value = value.as_dict()
            out[f.name] = value
        return out

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / RESULTS_FILE
        write_json_atomic(path, self.as_dict())
        return path

    # ---- what several readers need, said once ----
    @property
    def dataset(self) -> DatasetIdentity:
        return self.data.identity

    @property
    def has_validation(self) -> bool:
        return bool(self.epochs) and all(e.val_accuracy is not None for e in self.epochs if e.evaluated)

    @property
    def hardware_text(self) -> str:
        """"CPU <name>, N threads" or the GPU's name, with the process count when there were several."""
        return self.hardware.text + (f" × {self.world_size} processes" if self.world_size > 1 else "")

    @property
    def design(self) -> str:
        return self.recipe.recipe.design or self.model

    @property
    def images_per_second(self) -> float | None:
        """Training images per second over the whole run (every epoch's images over the training time)."""
        images = sum(e.train_images for e in self.epochs)
        return images / self.train_seconds if self.train_seconds else None

    @property
    def process_seconds(self) -> float | None:
        """The whole run as its user waited for it, process start to saved model; None without its start-up."""
        if self.times is None or self.times.start_up is None:
            return None
        return round(self.times.start_up + self.wall_seconds + self.times.save, 2)

    @property
    def training_time_text(self) -> str:
        """"<m> min (<s> s training at <rate> images/s on <hardware>, <s> s wall)": a time means little without
        the speed and the machine it ran at (a busy machine is slower)."""
        train_s, rate = self.train_seconds or 0, self.images_per_second
        speed = f" at {rate:,.0f} images/s" if rate else ""
        if train_s < 120:
            return f"{train_s:.1f} s training{speed} on {self.hardware_text} ({self.wall_seconds or 0:.1f} s wall)"
        return (f"{train_s / 60:.1f} min ({train_s:.0f} s training{speed} on {self.hardware_text}, "
                f"{self.wall_seconds or 0:.0f} s wall)")


# ---------------------------------------------------------------------------------------------------------
# Loading, with the schema checked
# ---------------------------------------------------------------------------------------------------------
def _migrate_2_to_3(d: dict) -> dict:
    """Schema 2 (tinyhub before the typed record) wrote the same fields without `kind`; runs from before
    distillation have no `distillation` entry."""
    return {**d, "kind": RECORD_KIND, "schema_version": 3, "distillation": d.get("distillation")}


_MIGRATIONS = {2: _migrate_2_to_3}


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_record(d: Any, where: str = RESULTS_FILE) -> RunRecord:
    """A RunRecord from parsed JSON, migrated from the previous schema, or RunRecordError saying why not."""
    if not isinstance(d, dict) or "schema_version" not in d or "model" not in d \
            or d.get("kind", RECORD_KIND) != RECORD_KIND:
        raise RunRecordError(f"{where} is not a tinyhub run record (it has no tinyhub schema_version and model); it "
                             "was written by another tool. Point at a run directory `tinyhub train` wrote.")
    version = d["schema_version"]
    if not isinstance(version, int) or version > RESULTS_SCHEMA_VERSION:
        raise RunRecordError(f"{where} has results schema {version!r}, newer than this tinyhub reads (up to "
                             f"{RESULTS_SCHEMA_VERSION}): upgrade tinyhub (pip install -U tinyhub).")
    if version < min(_MIGRATIONS):
        raise RunRecordError(
            f"{where} has results schema {version}, written by a tinyhub that did not record what data the run was "
            f"trained on; this tinyhub reads schema {min(_MIGRATIONS)} and later. Train the run again with this "
            "tinyhub (the recipe is in its config.yaml).")
    if not d.get("final") or not d.get("epochs"):
        raise RunRecordError(f"{where} has no final evaluation on the test split; the run did not finish.")
    while d["schema_version"] < RESULTS_SCHEMA_VERSION:
        d = _MIGRATIONS[d["schema_version"]](d)
    return RunRecord.from_dict(d, where)


def load_run(path: str | Path) -> RunRecord:
    """The RunRecord of a run directory (or of a results.json path). Raises RunRecordError naming the problem."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise RunRecordError(f"{path} is not a finished run: it has no {RESULTS_FILE} (train it to the end, or "
                             "resume it with training.resume=auto).")
    try:
        d = json.loads(file.read_text(), parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError, UnicodeDecodeError) as e:
        raise RunRecordError(f"{file} is not valid JSON ({e}).") from e
    return parse_record(d, str(file))


# ---------------------------------------------------------------------------------------------------------
# What `tinyhub evaluate` writes: eval/eval_<split>[_tta].json
# ---------------------------------------------------------------------------------------------------------
@dataclass
class EvaluationRecord:
    """One evaluation of a saved model on a whole split, in evaluate.save's layout (its `_` fields included), so
    that tools reading evaluate's files read these too."""

    model: str  # what was evaluated: a run directory, a model folder or a Hub repo id[@revision]
    architecture: str
    split: str  # train | validation | test
    tta: bool  # test-time augmentation (the image and its one-pixel shifts)
    num_processes: int
    labels: list[str]  # class names in label order
    loss: float
    accuracy: float  # a fraction, as evaluate's accuracy module gives it
    correct: int
    total: int
    per_class_accuracy: list[float | None]
    per_class_correct: list[int]
    per_class_total: list[int]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted
    timestamp: str | None = None
    evaluate_version: str | None = None
    python_version: str | None = None

    _UNDERSCORED = ("timestamp", "evaluate_version", "python_version")  # evaluate.save writes these with a `_`

    @classmethod
    def from_dict(cls, d: dict, where: str = "evaluation") -> EvaluationRecord:
        plain = {k.removeprefix("_") if k.removeprefix("_") in cls._UNDERSCORED else k: v for k, v in d.items()}
        return cls(**_fields(cls, plain, where))

    def as_dict(self) -> dict:
        return {f"_{k}" if k in self._UNDERSCORED else k: v for k, v in dataclasses.asdict(self).items()}

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.as_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> EvaluationRecord:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(), parse_constant=_refuse_constant), str(path))
        except (OSError, ValueError, TypeError) as e:
            raise RunRecordError(f"{path} cannot be read as a tinyhub evaluation ({e}).") from e


# ---------------------------------------------------------------------------------------------------------
# What `tinyhub sweep` writes: <sweep dir>/sweep.json
# ---------------------------------------------------------------------------------------------------------
SWEEP_SUMMARY_FILE = "sweep.json"
SWEEP_SCHEMA_VERSION = 1


@dataclass
class SweepTrial:
    """One trial of a sweep: its sampled values and what it reached on the validation split."""

    trial: str
    status: str  # TERMINATED | INTERRUPTED | ERROR | NOT RUN
    config: dict  # the sampled values, by dotted key
    best: float | None  # its best value of the metric over the epochs it ran
    best_epoch: int | None
    last: float | None
    epochs_run: int
    stopped_early: bool  # stopped by ASHA before the sweep's epochs
    error: str | None
    run_dir: str
    history: list[dict]  # [{"epoch": e, <metric>: value}, ...]
    rank: int | None = None  # 1 = the winner; None for a trial that reported nothing

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SweepBest:
    trial: str
    value: float
    epoch: int
    epochs_run: int
    config: dict
    run_dir: str
    recipe: str  # best_recipe.yaml: the winner as a recipe to train

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SweepSummary:
    """A finished (or interrupted) sweep: how it searched, every trial, and the winner chosen on validation."""

    name: str
    sweep_dir: str
    model: str
    metric: str  # val_accuracy | val_loss
    mode: str  # max | min
    selection: str  # how the winner was chosen, in words
    val_size: int
    epochs: int
    num_samples: int
    search: str
    seed: int | None
    scheduler: dict
    resources: dict
    space: dict
    ray: dict
    started: str
    resumed: bool
    wall_seconds: float
    trials: list[SweepTrial]
    best: SweepBest | None
    schema_version: int = SWEEP_SCHEMA_VERSION

    @classmethod
    def from_dict(cls, d: dict, where: str = SWEEP_SUMMARY_FILE) -> SweepSummary:
        kwargs = _fields(cls, d, where)
        try:
            kwargs["trials"] = [SweepTrial(**_fields(SweepTrial, t, f"{where}: trial")) for t in kwargs["trials"]]
            if kwargs["best"] is not None:
                kwargs["best"] = SweepBest(**_fields(SweepBest, kwargs["best"], f"{where}: best"))
        except TypeError as e:
            raise RunRecordError(f"{where} is malformed ({e})") from e
        return cls(**kwargs)

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["trials"] = [t.as_dict() for t in self.trials]
        d["best"] = self.best.as_dict() if self.best else None
        return d

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / SWEEP_SUMMARY_FILE
        write_json_atomic(path, self.as_dict())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> SweepSummary:
        """A sweep folder's summary: sweep.json, or results.json in folders written before it had its own name."""
        folder = Path(folder)
        path = folder / SWEEP_SUMMARY_FILE
        if not path.is_file() and (folder / RESULTS_FILE).is_file():
            path = folder / RESULTS_FILE
        try:
            return cls.from_dict(json.loads(path.read_text(), parse_constant=_refuse_constant), str(path))
        except (OSError, ValueError) as e:
            raise RunRecordError(f"{path} cannot be read as a sweep summary ({e}).") from e


# ---------------------------------------------------------------------------------------------------------
# The committed seed record: results/<label>/seed_<k>.json, written by `tinyhub reproduce`
# ---------------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)  # keyword-only, so that fields stand in groups whether or not older records have them
class SeedRecord:
    """One seed of a recipe as the repository keeps it: the numbers of its RunRecord that tables need, the recipe,
    and the per-epoch history, so that "final epoch, never the best" can be checked from the file alone."""

    # what was trained
    model: str
    label: str | None = None  # the results/ folder it is kept in; its model's name in older records
    seed: int
    parameters: int
    recipe: TrainConfig | None = None
    distilled_from: str | None = None
    # what it scored: the final epoch, and every epoch before it
    target_accuracy: float | None
    test_accuracy: float
    test_correct: int
    test_total: int
    train_accuracy: float | None = None
    epochs: int
    history: list[EpochRecord] | None = None  # None in records written before tinyhub kept it
    # how and where it ran
    hardware: str
    train_seconds: float | None
    wall_seconds: float | None = None
    world_size: int | None = None
    mixed_precision: str | None = None
    git: GitState | None = None
    run_dir: str | None = None

    @classmethod
    def from_run(cls, record: RunRecord, run_dir: str | Path, label: str | None = None) -> SeedRecord:
        return cls(model=record.model, label=label or record.model, seed=record.seed,
                   parameters=record.parameters,
                   distilled_from=record.distillation.text if record.distillation else None,
                   target_accuracy=record.target_accuracy, test_accuracy=record.final.test_accuracy,
                   test_correct=record.final.test_correct, test_total=record.final.test_total,
                   train_accuracy=record.final.train_accuracy, epochs=len(record.epochs),
                   train_seconds=record.train_seconds, wall_seconds=record.wall_seconds,
                   hardware=record.hardware_text, world_size=record.world_size,
                   mixed_precision=record.mixed_precision, git=record.git, run_dir=str(run_dir),
                   recipe=record.recipe, history=list(record.epochs))

    @classmethod
    def load(cls, path: str | Path) -> SeedRecord:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise RunRecordError(f"{path} cannot be read as a seed record ({e}).") from e
        kwargs = _fields(cls, d, str(path))
        if kwargs.get("history") is not None:
            kwargs["history"] = [EpochRecord.from_dict(e) for e in kwargs["history"]]
        if kwargs.get("recipe") is not None:
            kwargs["recipe"] = typed_recipe(kwargs["recipe"], str(path), model=kwargs["model"])
        if kwargs.get("git") is not None:
            kwargs["git"] = GitState.from_dict(kwargs["git"])
        return cls(**_labelled(kwargs))

    def save(self, path: str | Path) -> None:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["history"] = [e.as_dict() for e in self.history] if self.history is not None else None
        d["recipe"] = config_dict(self.recipe) if self.recipe is not None else None
        d["git"] = self.git.as_dict() if self.git is not None else None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, d)

    @property
    def final_is_last_epoch(self) -> bool | None:
        """Whether the recorded accuracy is the last epoch's (None when the history was not kept)."""
        if not self.history:
            return None
        last = self.history[-1]
        return last.epoch == self.epochs and last.test_correct == self.test_correct


# ---------------------------------------------------------------------------------------------------------
# results/reruns.json: recorded seeds trained again from scratch (`tinyhub reproduce --rerun`)
# ---------------------------------------------------------------------------------------------------------
RERUNS_FILE = "reruns.json"


@dataclass
class Rerun:
    model: str
    seed: int
    recorded_accuracy: float  # % on the test split, as the seed record says
    rerun_accuracy: float
    difference: float  # rerun minus recorded, in points
    recorded_commit: str | None
    rerun_commit: str | None
    run_dir: str
    date: str
    recorded_hardware: str | None = None
    rerun_hardware: str | None = None


def load_reruns(out_root: str | Path) -> list[Rerun]:
    """Every rerun logged under `out_root` (none when there is no log yet)."""
    path = Path(out_root) / RERUNS_FILE
    if not path.is_file():
        return []
    try:
        return [Rerun(**_fields(Rerun, e, str(path))) for e in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as e:
        raise RunRecordError(f"{path} cannot be read as tinyhub's rerun log ({e}).") from e


def log_rerun(out_root: str | Path, rerun: Rerun) -> None:
    """Add one rerun to the log, which is written whole or not at all."""
    entries = [*load_reruns(out_root), rerun]
    write_json_atomic(Path(out_root) / RERUNS_FILE, [dataclasses.asdict(e) for e in entries])


def _labelled(kwargs: dict) -> dict:
    """Records written before variants had labels are labelled by their model."""
    return {**kwargs, "label": kwargs.get("label") or kwargs["model"]}


# ---------------------------------------------------------------------------------------------------------
# Mean ± std over seeds: the one helper for every table and card
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedStats:
    """Test accuracy over runs of one recipe. `exact_mean` is computed from the correct/total counts, so a mean
    that sits exactly on a target (29,820 of 30,000 images = 99.40%) never misses it by a float rounding error."""

    values: tuple[float, ...]
    seeds: tuple[int | None, ...]
    exact_mean: Fraction

    @classmethod
    def of(cls, runs: list[tuple[int | None, int, int]]) -> SeedStats:
        """From (seed, test_correct, test_total) of each run."""
        if not runs:
            raise ValueError("no runs to average")
        fractions = [Fraction(100 * c, t) for _, c, t in runs]
        return cls(values=tuple(float(f) for f in fractions), seeds=tuple(s for s, _, _ in runs),
                   exact_mean=sum(fractions) / len(fractions))

    @classmethod
    def of_records(cls, records: list[RunRecord]) -> SeedStats:
        return cls.of([(r.seed, r.final.test_correct, r.final.test_total) for r in records])

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(self.exact_mean)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for one run."""
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def meets(self, target: float | None) -> bool | None:
        return None if target is None else self.exact_mean >= Fraction(str(target))

    def text(self) -> str:
        """`99.37% ± 0.06`; one run: `99.37%`."""
        return f"{self.mean:.2f}% ± {self.std:.2f}" if self.n > 1 else f"{self.mean:.2f}%"


def finite_metrics(record: RunRecord) -> bool:
    values = [record.final.test_accuracy, record.final.test_loss, record.final.train_accuracy,
              record.final.train_loss] + [v for e in record.epochs for v in (
                  (e.train_loss, e.test_loss, e.test_accuracy) if e.evaluated else (e.train_loss,))]
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# ---------------------------------------------------------------------------------------------------------
# What `tinyhub export` writes: exports.json beside the model it exported
# ---------------------------------------------------------------------------------------------------------
EXPORTS_FILE = "exports.json"
#: A few labelled test images beside the exports, for readers with numpy alone (the card's onnxruntime snippet).
EXPORT_EXAMPLES_FILE = "onnx/examples.npz"
EXPORTS_KIND = "tinyhub-exports"
EXPORTS_SCHEMA_VERSION = 1


@dataclass
class ExportedFormat:
    """One exported file and what onnxruntime measured of it on the whole test split."""

    format: str  # "onnx" (float32) | "int8" (static quantization, QDQ)
    file: str  # relative to the folder holding exports.json, e.g. "onnx/model.onnx"
    bytes: int
    sha256: str
    opset: int
    test_correct: int
    test_total: int
    agreement: float  # % of test images whose predicted class equals PyTorch's
    max_logit_difference: float  # largest |logit - PyTorch's logit| over the test split
    latency_ms: float  # one image at a time (batch 1), median
    images_per_second: float  # batches of 256, median
    passed: bool  # within the limits below; a failed export is never uploaded
    problem: str | None = None  # why it failed
    calibration: str | None = None  # int8: what it was calibrated on (training images, never test)

    @property
    def test_accuracy(self) -> float:
        return 100 * self.test_correct / self.test_total


@dataclass
class ExportsRecord:
    """Every export of one model's weights (identified by their SHA-256), measured on one machine."""

    architecture: str
    weights_sha256: str  # the model.safetensors these were exported from; a push refuses stale exports
    dataset: str
    pytorch_test_correct: int
    test_total: int
    max_disagreement: float  # % of test images a float export may predict differently from PyTorch
    max_int8_loss: float  # points of test accuracy an int8 export may lose against PyTorch
    hardware: Hardware
    threads: int  # onnxruntime's intra-op threads when timing
    versions: dict
    formats: list[ExportedFormat]
    kind: str = EXPORTS_KIND
    schema_version: int = EXPORTS_SCHEMA_VERSION

    @property
    def pytorch_test_accuracy(self) -> float:
        return 100 * self.pytorch_test_correct / self.test_total

    @property
    def passed(self) -> list[ExportedFormat]:
        return [f for f in self.formats if f.passed]

    @property
    def failed(self) -> list[ExportedFormat]:
        return [f for f in self.formats if not f.passed]

    @classmethod
    def from_dict(cls, d: dict, where: str = EXPORTS_FILE) -> ExportsRecord:
        if not isinstance(d, dict) or d.get("kind") != EXPORTS_KIND:
            raise RunRecordError(f"{where} is not a tinyhub exports file (no \"kind\": \"{EXPORTS_KIND}\").")
        if d.get("schema_version") != EXPORTS_SCHEMA_VERSION:
            raise RunRecordError(f"{where} has schema version {d.get('schema_version')!r}; this tinyhub reads "
                                 f"{EXPORTS_SCHEMA_VERSION}. Run `tinyhub export` again.")
        fields = _fields(cls, d, where)
        fields["hardware"] = Hardware.from_dict(fields["hardware"])
        fields["formats"] = [ExportedFormat(**_fields(ExportedFormat, f, f"{where}: formats"))
                             for f in fields["formats"]]
        return cls(**fields)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hardware"] = self.hardware.as_dict()
        return d

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / EXPORTS_FILE
        write_json_atomic(path, self.as_dict())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ExportsRecord:
        path = Path(folder) / EXPORTS_FILE
        try:
            data = json.loads(path.read_text(), parse_constant=_refuse_constant)
        except (OSError, ValueError) as e:
            raise RunRecordError(f"{path} cannot be read as tinyhub exports ({e}). Run `tinyhub export` again.") \
                from e
        try:
            return cls.from_dict(data, str(path))
        except TypeError as e:  # a field of the wrong kind
            raise RunRecordError(f"{path} is not a tinyhub exports file this version reads ({e}).") from e


# ---------------------------------------------------------------------------------------------------------
# The records' JSON Schemas, generated from their types
# ---------------------------------------------------------------------------------------------------------
#: Each file tinyhub writes, with the type it holds. Their JSON Schemas (the docs' reference publishes them) are
#: generated from these types by pydantic, so they cannot drift from what is written.
RECORD_FILES = {
    RESULTS_FILE: RunRecord,  # a run directory's
    "results/<recipe>/seed_<n>.json": SeedRecord,  # a seed kept in the repository
    f"results/{RERUNS_FILE}": list[Rerun],
    EXPORTS_FILE: ExportsRecord,
    "eval/eval_<split>.json": EvaluationRecord,
    SWEEP_SUMMARY_FILE: SweepSummary,
}


def json_schema(kind) -> dict:
    """The JSON Schema (draft 2020-12) of a record type of RECORD_FILES, as written to disk."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(kind).json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
