"""A finished run's record, results.json, typed: the epochs, the final evaluation, the architecture, the data and
the recipe. Every reader (card, report, evaluation, distillation, compare, bench, push, reproduce) reads it
through `load_run`, never as raw JSON; a file of the previous schema is migrated in memory, a newer one refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from tinyhub.utils.files import write_json_atomic

from ..schema import ConfigError, TrainConfig, config_dict, typed_config
from pydantic import BeforeValidator, ConfigDict, PlainSerializer, WrapSerializer

from .common import (OMIT_NONE, RECORD_KIND, RESULTS_FILE, RESULTS_SCHEMA_VERSION, DatasetIdentity, Record,
                     RunRecordError, _refuse_constant, empty_if_none, gather_details, spread_details)


@dataclass
class EpochRecord(Record):
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
    test_loss: Annotated[float | None, OMIT_NONE] = None  # None: this epoch was not evaluated
    test_accuracy: Annotated[float | None, OMIT_NONE] = None  # %
    test_correct: Annotated[int | None, OMIT_NONE] = None
    test_total: Annotated[int | None, OMIT_NONE] = None
    val_loss: Annotated[float | None, OMIT_NONE] = None  # only with a validation split
    val_accuracy: Annotated[float | None, OMIT_NONE] = None

    @property
    def evaluated(self) -> bool:
        return self.test_accuracy is not None

@dataclass
class FinalMetrics(Record):
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
    val_accuracy: Annotated[float | None, OMIT_NONE] = None

@dataclass
class TeacherRecord(Record):
    """A distillation teacher, exactly: repo id and commit on the Hub, or a local path and its weights' sha256."""

    kind: str  # run | folder | hub
    architecture: str
    parameters: int
    weights_sha256: str
    # the teacher's own final test accuracy, when its record says it
    test_accuracy: Annotated[float | None, OMIT_NONE] = None
    path: Annotated[str | None, OMIT_NONE] = None  # a local run directory or saved model
    dataset: Annotated[str | None, OMIT_NONE] = None  # the dataset the teacher was trained on
    # on the Hub: the repo, the revision asked for and the commit it resolved to
    repo_id: Annotated[str | None, OMIT_NONE] = None
    revision: Annotated[str | None, OMIT_NONE] = None
    commit: Annotated[str | None, OMIT_NONE] = None
    spec: Annotated[str | None, OMIT_NONE] = None  # as the configuration named it

    @property
    def short_text(self) -> str:
        accuracy = f", {self.test_accuracy:.2f}%" if self.test_accuracy is not None else ""
        return f"{self.architecture} ({self.parameters:,} params{accuracy})"


@dataclass
class Distillation(Record):
    teachers: list[TeacherRecord]  # several: an ensemble, their softened probabilities averaged
    temperature: float
    weight: float  # share of the loss from the teachers' soft targets

    @property
    def text(self) -> str:
        return " + ".join(t.short_text for t in self.teachers)


@dataclass
class CarvedSplit(Record):
    """A split carved from the training images: how many, how, and the SHA-256 of its (image, label) pairs in
    any order (the same images give the same hash, whatever order they were read in)."""

    images: int
    of: int  # the training images it was carved from
    sha256: str
    stratified: bool  # the same share of every class
    seed: Annotated[int | None, OMIT_NONE] = None  # data.split_seed; None: tinyhub's fixed validation seed


@dataclass
class DataRecord(Record):
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
    kind: str = "local"  # the data source: local | hub | folder | csv | npz | a plugin's
    # images per class, in label order, of each split (train, test, val)
    class_counts: Annotated[dict[str, list[int]] | None, OMIT_NONE] = None
    decoding: Annotated[str | None, OMIT_NONE] = None  # what was done to the pixels: "area, to 28x28", ...
    carved_test: Annotated[CarvedSplit | None, OMIT_NONE] = None  # the data had no test split
    carved_val: Annotated[CarvedSplit | None, OMIT_NONE] = None  # data.val_size
    skipped: int = 0  # bad files or CSV rows left out (data.skip_bad)
    details: dict = field(default_factory=dict)  # IDX files and their sha256, or Hub id, revision and splits

    __pydantic_config__ = ConfigDict(extra="ignore")  # what it does not declare is gathered into details

@dataclass
class LayerRecord(Record):
    name: str
    kind: str  # the layer's class
    output_shape: list[int]  # for one image
    params: int
    macs: int  # multiply-accumulates for one image


@dataclass
class ArchitectureSummary(Record):
    """The model layer by layer, as `tinyhub.summary(model)` measured it when the run finished."""

    layers: list[LayerRecord]
    total_params: int
    trainable_params: int
    macs: int  # multiply-accumulates for one image
    input_shape: list[int]

@dataclass
class Augmentation(Record):
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
class RunTimes(Record):
    """Where a run's time went, in seconds (`tinyhub bench --to --profile` prints it). `start_up` is from the
    process's start to the engine's (interpreter, imports, configuration), where the platform says when the process
    started (Linux); `save` is writing the model, examples and report."""

    start_up: float | None
    data: float  # the splits decoded, or read from the cache, and on the device
    set_up: float  # the rest of the set-up: accelerator, run directory, models, optimizer and step
    train: float  # the training epochs
    evaluate: float  # every evaluation of the validation and test splits
    save: float

@dataclass
class Hardware(Record):
    """The machine a run trained on."""

    cpu: str | None = None
    cpu_count: int | None = None
    torch_threads: int | None = None
    gpu: str | None = None  # the GPU's name; null on the CPU
    platform: str | None = None
    details: dict = field(default_factory=dict)  # anything else an older or newer record says

    __pydantic_config__ = ConfigDict(extra="ignore")  # what it does not declare is gathered into details

    @property
    def text(self) -> str:
        """"CPU <name>, N threads", or the GPU's name."""
        threads = self.torch_threads
        return self.gpu or f"CPU {self.cpu or 'unknown'}, {threads} thread{'' if threads == 1 else 's'}"


@dataclass
class GitState(Record):
    """The tinyhub checkout a run was trained from; all None outside one."""

    commit: str | None = None
    dirty: bool | None = None  # a change that could alter a run (not the generated results files)
    changed_files: list[str] | None = None

def recipe_dict(recipe: TrainConfig | None) -> dict | None:
    """A recipe as a record writes it: the settings that acted (config_dict)."""
    return None if recipe is None else config_dict(recipe)


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


#: A class under this share of the images (%), or this many points below the classes' mean test accuracy, is
#: named among a card's limitations.
RARE_SHARE = 1.0
WEAK_GAP = 10.0


@dataclass
class ClassFigures:
    """One class of a finished run: its images and its final test accuracy."""

    label: str
    train: int | None  # training images (None in records made before they were counted)
    test: int
    correct: int
    accuracy: float | None  # %; None without test images of the class
    share: float | None  # % of all the images (train, test and validation)
    flagged: str | None  # why the card names it among its limitations


@dataclass
class RunRecord(Record):
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
    # the resolved configuration it ran with (settings its optimizer and schedule ignore left out)
    recipe: Annotated[TrainConfig, PlainSerializer(recipe_dict)]
    overrides: list[str]  # `tinyhub train <these>` trains this recipe on any machine
    augmentation: Augmentation  # the exact augmentation parameters
    distillation: Distillation | None  # the teachers, temperature and weight; null without distillation
    data: Annotated[DataRecord, BeforeValidator(gather_details(DataRecord)),
                    WrapSerializer(spread_details)]  # what the run loaded
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
    hardware: Annotated[Hardware, BeforeValidator(gather_details(Hardware)),
                        WrapSerializer(spread_details)]  # CPU name and torch threads, GPU name
    versions: dict  # python, torch, accelerate, huggingface_hub, tinyhub, ...
    command: str  # the command line that ran it
    # commit, dirty flag and changed files of the tinyhub checkout, when there was one
    git: Annotated[GitState, BeforeValidator(empty_if_none)]
    times: RunTimes | None = None  # where the time went; null in records written before it was kept
    cuda_graphs: bool = False  # the step's forward and backward were replayed from a CUDA graph
    optimizer_implementation: str | None = None  # forloop | foreach | fused; null in records made before it was kept
    # SHA-256 of model/model.safetensors when its accuracy was measured: a card never describes other weights.
    # Null in records made before it was kept (a push measures those weights again and adds it).
    weights_sha256: Annotated[str | None, OMIT_NONE] = None
    schema_version: int = RESULTS_SCHEMA_VERSION
    kind: str = RECORD_KIND  # "tinyhub-run": never mistaken for another tool's file

    # ---- reading and writing ----
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

    def changed_weights(self, run_dir: str | Path) -> str | None:
        """Why `run_dir`'s model/model.safetensors is not the file this record measured, in one sentence; None
        when it is (or when the record is older than the hash, see `weights_sha256`)."""
        from tinyhub.utils.files import sha256_file

        weights = Path(run_dir) / "model" / "model.safetensors"
        if self.weights_sha256 is None or not weights.is_file():
            return None
        now = sha256_file(weights)
        if now == self.weights_sha256:
            return None
        return (f"{weights} is not the model whose accuracy results.json records (SHA-256 {now[:12]}… now, "
                f"{self.weights_sha256[:12]}… when it was measured): the weights changed after training. Restore "
                "the original file, or train the model again")

    def per_class(self) -> list[ClassFigures]:
        """Each class's images and final test accuracy (from the confusion matrix), with the reason it is named
        among the card's limitations, if any: under RARE_SHARE % of the images, or an accuracy more than
        WEAK_GAP points below the mean of the classes'."""
        matrix = self.final.confusion_matrix
        counts = self.data.class_counts or {}
        totals = [sum(row) for row in matrix]
        accuracy = [100 * row[i] / total if total else None for i, (row, total) in enumerate(zip(matrix, totals))]
        known = [a for a in accuracy if a is not None]
        mean = sum(known) / len(known) if known else None
        images = [sum(counts[split][i] for split in counts) for i in range(len(matrix))] if counts else None
        every = sum(images) if images else 0
        out = []
        for i, name in enumerate(self.label_names):
            share = 100 * images[i] / every if every else None
            why = []
            if share is not None and share < RARE_SHARE:
                why.append(f"{share:.2f}% of the images")
            if accuracy[i] is not None and mean is not None and accuracy[i] < mean - WEAK_GAP:
                why.append(f"{accuracy[i]:.2f}% test accuracy against a mean of {mean:.2f}% over the classes")
            out.append(ClassFigures(name, counts["train"][i] if "train" in counts else None, totals[i],
                                    matrix[i][i], accuracy[i], share, "; ".join(why) or None))
        return out

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
    if isinstance(d.get("recipe"), dict):  # typed as the configuration it ran with, before the rest is read
        d = {**d, "recipe": typed_recipe(d["recipe"], where, model=d["model"])}
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
    except RecursionError as e:
        raise RunRecordError(f"{file} nests deeper than any results.json; it is not one tinyhub wrote.") from e
    return parse_record(d, str(file))
