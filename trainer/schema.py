"""The configuration's types and defaults, said once: dataclasses registered with Hydra's ConfigStore as the schema
of train.yaml and sweep.yaml. Recipes stay YAML; composing one checks it against these types, so a misspelt key
or a value of the wrong type fails before anything runs, naming the key:

    tinyhub train training.epochs=ten  -> error: training.epochs=ten: must be a whole number (e.g. training.epochs=15).
    tinyhub train training.epochz=3    -> error: training.epochz is not a setting (did you mean training.epochs?); ...

The meaning of each setting is documented beside it in train.yaml and sweep.yaml, which users read. `model` is
the one open section: its keys beyond `name` and `param_budget` are the architecture's own arguments (dropout,
width, ...), checked against that architecture's signature when it is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from tinyhub.errors import UsageError
from tinyhub.registry import DATA_SOURCES, OPTIMIZERS, SCHEDULERS, TRACKERS, Registry, choice_text


class ConfigError(UsageError, ValueError):
    """The resolved configuration cannot be trained."""


# ---- how a setting is declared: its type and default as a dataclass field, everything else in its metadata ----
@dataclass(frozen=True)
class Setting:
    """What tinyhub knows of a setting beyond its type and default, declared on its field with `setting(...)`.
    Validation, the ignored-setting rule, error messages, the sweep's checks and the configuration reference are
    derived from these (`declared`), never kept in tables of their own."""

    help: str = ""  # what it means, as the configuration reference prints it
    # the values a number may take (a list of two numbers: each of them; `ordered`: a [low,high] range)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low end itself is not allowed
    high_open: bool = False
    ordered: bool = False
    note: str = ""  # what the number is, in the words of an error line ("degrees either way")
    choices: tuple | Registry | None = None  # the names it takes, or the registry that lists them
    choice_note: str = ""
    # Under which of its section's `name` choices the setting acts (None: all); any other choice ignores it.
    read_by: tuple[str, ...] | None = None
    # Names of the learning-rate schedule that set this value themselves, and why (it is then refused if given).
    replaced_by_schedules: tuple[str, ...] = ()
    replaced_why: str = ""
    machine: bool = False  # where this machine keeps things or how it prints, not what is trained
    resumable: bool = False  # a resumed run may change it: it never changes what is computed
    not_searched: str = ""  # why a sweep may not search it
    option: str = ""  # the option every command spells it as (--data-dir)

    @property
    def range_text(self) -> str:
        """" from 0 below 1": the limits in words, as error lines and the configuration reference say them."""
        return Limit("", self.low, self.high, self.low_open, self.high_open).range_text


_UNSET = object()


def setting(default=_UNSET, *, factory=None, **facts):
    """A dataclass field with its Setting: `epochs: int = setting(15, low=1, help="...")`."""
    metadata = {"tinyhub": Setting(**facts)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


_SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


@dataclass
class RecipeConfig:
    target_accuracy: Optional[float] = setting(
        None, low=0, high=100, note="% of the test split",
        help="% on the test split, final epoch, mean of seeds (never used to select)")
    target_dataset: Optional[str] = setting(None, help="the dataset the target is for (mnist, or a Hub id / name)")
    design: str = setting("", help="where the recipe comes from, in words (shown on the card)")
    purpose: str = setting("accuracy", choices=("accuracy", "speed"),
                           help="accuracy: the best model for its budget | speed: the target soonest (its card "
                                "records the time and machine)")


@dataclass
class SplitsConfig:
    train: str = setting("train", help="the Hub dataset's split to train on")
    validation: str = setting("validation", help="used for validation when the dataset has it")
    test: str = setting("test", help="evaluated after every epoch and reported, never used to choose")


@dataclass
class DataConfig:
    source: str = setting("auto", choices=("auto", DATA_SOURCES),
                          help="where the dataset is read from; auto = local if data.dir / TINYHUB_DATA_DIR is set, "
                               "else hub")
    dir: Optional[str] = setting(
        None, machine=True, option="--data-dir",
        help="folder with four IDX files named like MNIST's (.gz or raw; torchvision MNIST/raw too), or the folder "
             "or file a plugin source reads")
    path: Optional[str] = setting(
        None, machine=True,
        help="what data.source=folder, csv or npz reads: a folder of class folders; a CSV file of pixels, or a "
             "folder with train.csv and test.csv; an .npz file")
    image_size: int = setting(0, low=0, high=1024, note="0 = as the data is",
                              help="resize every image to NxN: area when shrinking, bilinear when enlarging "
                                   "(folder, csv, npz)")
    channels: int = setting(0, low=0, high=3, note="0, 1 or 3",
                            help="1 converts to grayscale, 3 to RGB; 0 = as the data is (grayscale when every "
                                 "image is)")
    non_square: str = setting("pad", choices=("pad", "resize"),
                              help="an image that is not square: padded to one (centred, on data.background) or "
                                   "stretched")
    background: int = setting(0, low=0, high=255,
                              help="grey level that transparent pixels and padding become (0 black, 255 white)")
    test_size: float = setting(0.2, low=0, note="a share below 1, else a number of images",
                               help="when the data has no test split: the training images carved into one, the "
                                    "same share of every class")
    split_seed: int = setting(0, low=0, high=_SEED_MAX,
                              help="the seed of that carving (its own: the training seed does not move it)")
    skip_bad: bool = setting(False, help="leave out unreadable image files, links out of the folder and empty "
                                         "class folders (and say how many) instead of stopping")
    label_column: Optional[str] = setting(None, help="csv: the label column; None = one named label, else the "
                                                     "first")
    split_column: Optional[str] = setting(None, help="csv: a column saying train, test or val per row; None = one "
                                                     "named split, if any")
    image_shape: Optional[List[int]] = setting(None, low=1, note="[H, W] or [H, W, C]",
                                               help="csv: the shape of a row's pixels; None = a square inferred "
                                                    "from their count")
    layout: str = setting("auto", choices=("auto", "nhwc", "nchw"),
                          help="npz: the image arrays' axes; auto = where the 1- or 3-long axis is")
    dataset: str = setting("ylecun/mnist", help="Hub dataset id (or a folder saved with DatasetDict.save_to_disk), "
                                                "source=hub")
    revision: Optional[str] = setting(None, help="the Hub dataset's revision (a commit pins it)")
    name: Optional[str] = setting(None, help="the dataset's name; None = $TINYHUB_DATA_NAME, else decided from the "
                                             "data itself")
    verify: bool = setting(True, help="IDX files without data.name must be canonical MNIST; false trains them "
                                      "unidentified")
    label_names: Optional[List[str]] = setting(None, help="class names in label order; None = labels.txt / "
                                                          "ClassLabel / indices")
    splits: SplitsConfig = setting(factory=SplitsConfig, help="which splits of a Hub dataset play which part")
    cache_dir: Optional[str] = setting(None, machine=True,
                                       help="default: $TINYHUB_CACHE/datasets or ~/.cache/tinyhub/datasets")
    val_size: int = setting(0, low=0, note="0 = no validation split",
                            not_searched="every trial must be scored on the same validation split; set hpo.val_size "
                                         "instead",
                            help="images carved from train for validation when the data has no validation split")
    subset: int = setting(0, low=0, note="0 = every training image",
                          help="first N training images only (smoke tests); 0 = all")
    batch_size: int = setting(128, low=1, note="images per process and step", option="--batch-size",
                              help="per process")
    eval_batch_size: int = setting(250, low=1, resumable=True,
                                   help="per forward pass; 1000 was 2-4x slower on a CPU (docs: Speed)")


@dataclass
class AugmentSchema:
    """Per-sample, on the device, in one batched op (trainer/augment.py)."""

    rotation: float = setting(0.0, low=0, high=180, note="degrees either way", help="degrees")
    translate: List[float] = setting(factory=lambda: [0.0, 0.0], low=0, high=1, high_open=True,
                                     note="fractions of the width and of the height",
                                     help="fraction of width, height")
    scale: List[float] = setting(factory=lambda: [1.0, 1.0], low=0, high=10, low_open=True, ordered=True,
                                 note="the zoom range [low,high]", help="the zoom range [low,high]")
    shear: float = setting(0.0, low=0, high=90, high_open=True, note="degrees either way", help="degrees")
    center_crop_size: int = setting(0, low=0, note="pixels; 0 = off",
                                    help="seeds' RandomApply(CenterCrop(k), p) + resize back; 0 = off")
    center_crop_p: float = setting(0.0, low=0, high=1, note="a probability")
    erase_p: float = setting(0.0, low=0, high=1, note="a probability", help="random erasing")
    erase_area: List[float] = setting(factory=lambda: [0.02, 0.15], low=0, high=1, low_open=True, ordered=True,
                                      note="fractions of the image area [low,high]")
    erase_ratio: List[float] = setting(factory=lambda: [0.3, 3.3], low=0, high=100, low_open=True, ordered=True,
                                       note="aspect ratios [low,high]")


_SGD, _ADAM = ("sgd",), ("adam", "adamw")


@dataclass
class OptimizerConfig:
    name: str = setting("sgd", choices=OPTIMIZERS, help="the optimizer")
    lr: float = setting(0.01, low=0, note="the learning rate", replaced_by_schedules=("onecycle",),
                        replaced_why="the schedule sets the learning rate: its peak is training.scheduler.max_lr",
                        help="the learning rate (under onecycle, scheduler.max_lr sets the peak instead)")
    momentum: float = setting(0.9, low=0, high=1, high_open=True, read_by=_SGD, help="SGD's momentum")
    nesterov: bool = setting(False, read_by=_SGD, help="Nesterov momentum")
    weight_decay: float = setting(0.0, low=0)
    betas: List[float] = setting(factory=lambda: [0.9, 0.999], low=0, high=1, high_open=True, read_by=_ADAM,
                                 note="Adam's two decay rates", help="Adam's two decay rates (beta1, beta2)")
    implementation: str = setting("auto", choices=("auto", "forloop", "foreach", "fused"),
                                  help="the update's kernels: auto (fused on a GPU, the for-loop on the CPU) | "
                                       "forloop | foreach | fused. The same arithmetic, rounded in a different "
                                       "order: a run records the one it used.")


@dataclass
class SchedulerConfig:
    name: str = setting("none", choices=SCHEDULERS, help="the learning-rate schedule")
    step_size: int = setting(7, low=1, read_by=("step",), note="epochs between decays",
                             help="step: epochs between decays")
    gamma: float = setting(0.1, low=0, high=1, low_open=True, high_open=True, read_by=("step", "plateau"),
                           note="the decay factor", help="step / plateau: decay factor")
    max_lr: float = setting(0.1, low=0, read_by=("onecycle",), note="the peak learning rate",
                            help="onecycle: peak learning rate (per step schedule)")
    pct_start: float = setting(0.25, low=0, high=1, low_open=True, high_open=True, read_by=("onecycle",),
                               note="the share of the steps that warm up",
                               help="onecycle: fraction of steps warming up")
    patience: int = setting(1, low=0, read_by=("plateau",), note="epochs without improvement",
                            help="plateau: epochs without improvement (on validation accuracy, else train accuracy)")
    min_lr: float = setting(1.0e-6, low=0, read_by=("cosine", "plateau"), note="the floor of the learning rate",
                            help="plateau / cosine floor")


@dataclass
class DistillConfig:
    """Knowledge distillation, off while teacher is None."""

    teacher: Any = setting(None, help="run dir | saved model folder | Hub repo id[@revision]; or a list: an averaged "
                                      "ensemble")
    temperature: float = setting(4.0, low=0.05, note="the softening temperature",
                                 help="softens both distributions; the soft-target loss is scaled by temperature^2")
    weight: float = setting(0.5, low=0, high=1, note="the soft-target share of the loss",
                            help="share of the loss from the teachers' soft targets (the rest: cross-entropy on "
                                 "labels)")


@dataclass
class TrainingConfig:
    epochs: int = setting(15, low=1, high=10_000, help="the recorded accuracy is the last epoch's",
                          not_searched="training.epochs is the sweep's epoch budget (ASHA's max_t); set it, do not "
                                       "search it")
    eval_every: int = setting(
        1, low=0, note="epochs between evaluations; 0 = after the last epoch only",
        help="epochs between evaluations of the validation and test splits; 0 = after the last epoch only. The last "
             "epoch is always evaluated: it is the run's result. Speed recipes skip the evaluations no one reads.")
    optimizer: OptimizerConfig = setting(factory=OptimizerConfig)
    scheduler: SchedulerConfig = setting(factory=SchedulerConfig)
    label_smoothing: float = setting(0.0, low=0, high=1, high_open=True,
                                     help="of the cross-entropy on labels, 0 to <1")
    distill: DistillConfig = setting(factory=DistillConfig)
    grad_clip: float = setting(0.0, low=0, note="the largest gradient norm; 0 = off", help="max grad norm; 0 = off")
    ema: float = setting(0.0, low=0, high=1, high_open=True, note="the EMA decay; 0 = off",
                         help="EMA decay of weights (e.g. 0.999); 0 = off. The EMA weights are evaluated and saved.")
    mixed_precision: str = setting("no", choices=("no", "bf16", "fp16"), help="no | fp16 (GPU) | bf16")
    device: str = setting("auto", choices=("auto", "cpu"),
                          choice_note="auto: a GPU when there is one; several with accelerate launch",
                          help="auto | cpu")
    compile: bool = setting(False, help="torch.compile the model")
    # Hydra hands true and false over as booleans, hence Any.
    cuda_graphs: Any = setting(
        "auto", choices=("auto", "true", "false"),
        help="replay the step's forward and backward from a CUDA graph (trainer/cuda_graph.py): auto = on a GPU "
             "when the recipe allows it (else the run says why and trains eagerly) | true (the same, and a reason "
             "is a warning) | false")
    channels_last: bool = setting(False, help="compute in the channels-last memory layout (a stack always does)")
    deterministic: bool = setting(False, help="torch.use_deterministic_algorithms; needed for bit-exact resume")
    threads: int = setting(0, low=0, note="0 = torch's default", machine=True,
                           help="torch CPU threads; 0 = torch's default")
    keep_freed_memory: bool = setting(True, machine=True, help="CPU, glibc: keep freed blocks for the next step "
                                                               "(trainer/host_memory.py)")
    checkpoint_every: int = setting(1, low=0, note="epochs; 0 = no checkpoints", resumable=True,
                                    help="epochs; 0 = no checkpoints")
    keep_checkpoints: int = setting(2, low=1, resumable=True, help="the newest N complete checkpoints are kept")
    resume: Optional[str] = setting(None, machine=True, not_searched="trials always start fresh",
                                    help="None | auto (latest complete checkpoint in run.dir) | path to a checkpoint")


@dataclass
class RunConfig:
    root: str = setting("runs", help="new runs go to <root>/<model>-s<seed>-<timestamp>")
    dir: Optional[str] = setting(None, help="or exactly here")
    name: Optional[str] = setting(None, help="the run directory's name under run.root (default "
                                             "<model>-s<seed>-<timestamp>)")


@dataclass
class TrainConfig:
    seed: int = setting(0, low=0, high=_SEED_MAX, note="seeds every random stream",
                        help="every random stream (init, order, augmentation, dropout) derives from it")
    seeds: Optional[List[int]] = setting(
        None, low=0, high=_SEED_MAX, note="one seed per model of the stack",
        help="several seeds trained together in one process (trainer/stack.py), each exactly as its own run would "
             "sample it, each ending as its own run directory <run.dir>/seed_<s>; None = the one run of `seed`")
    report_to: str = setting("tensorboard", choices=TRACKERS, resumable=True,
                             not_searched="use hpo.wandb to log trials to Weights & Biases",
                             help="the experiment tracker the run logs to (Accelerate's trackers)")
    tracker_project: str = setting("tinyhub", resumable=True, help="project name for the tracker (W&B / trackio "
                                                                   "project, TensorBoard subfolder)")
    progress: Any = setting("auto", choices=("auto", "true", "false"), machine=True,
                            not_searched="trials never draw progress bars",
                            help="tqdm bars on the main process: auto = only on a terminal | true | false")
    model: Dict[str, Any] = setting(
        factory=lambda: {"name": MISSING, "param_budget": None},
        help="name: any name from modeling.list_models(), set by the recipe; param_budget: building a model over it "
             "is an error (None = the family's own budget); any other key is an argument of the architecture.")
    recipe: RecipeConfig = setting(factory=RecipeConfig)
    data: DataConfig = setting(factory=DataConfig)
    augment: AugmentSchema = setting(factory=AugmentSchema)
    training: TrainingConfig = setting(factory=TrainingConfig)
    run: RunConfig = setting(factory=RunConfig, machine=True)

    @property
    def model_name(self) -> str:
        return self.model["name"]

    @property
    def model_arguments(self) -> dict:
        """The architecture's own arguments: the model section without name and param_budget."""
        return {k: v for k, v in self.model.items() if k not in ("name", "param_budget")}


# ---- the sweep: everything above, and what to search ----
@dataclass
class HpoSchedulerConfig:
    name: str = setting("asha", choices=("asha", "none"),
                        help="asha | none (every trial runs all training.epochs)")
    grace_period: int = setting(2, low=1, note="epochs", help="epochs every trial runs before it can be stopped")
    reduction_factor: float = setting(2, low=1, low_open=True, help="keep the best 1/reduction_factor at each rung; "
                                                                    "max_t = training.epochs")


@dataclass
class ResourcesConfig:
    cpu: float = setting(1, low=0, low_open=True, help="CPUs per trial (also torch threads when training.threads=0)")
    gpu: float = setting(0, low=0, help="GPUs per trial; fractions share one GPU (0.25 = four trials per GPU)")


def _default_space() -> dict:
    # `lr` is the effective learning rate: training.scheduler.max_lr under onecycle, training.optimizer.lr otherwise.
    return {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "data": {"batch_size": {"type": "choice", "values": [32, 64, 128]}}}


@dataclass
class HpoConfig:
    """What a sweep searches and how (sweep.yaml explains the search space's format)."""

    name: Optional[str] = setting(None, help="default: <model>-<timestamp>")
    dir: Optional[str] = setting(None, help="sweep output folder; default: sweeps/<name> (keep it out of the runs "
                                            "folder)")
    num_samples: int = setting(8, low=1, help="trials (with `grid` parameters: samples per grid point)")
    metric: str = setting("val_accuracy", choices=("val_accuracy", "val_loss"),
                          choice_note="a sweep selects on the validation split only; the test split is never used "
                                      "to choose",
                          help="val_accuracy | val_loss (validation split); never a test metric")
    mode: str = setting("max", choices=("max", "min"), help="max | min")
    val_size: int = setting(5000, low=0, note="training images held out for validation when data.val_size is 0",
                            help="training images held out for validation (must be > 0)")
    seed: Optional[int] = setting(None, low=0, high=_SEED_MAX,
                                  help="seed of the search algorithm (reproducible sampling); None = random")
    space: Optional[Dict[str, Any]] = setting(factory=_default_space, help="the parameters searched (sweep.yaml "
                                                                           "explains the format)")
    search: str = setting("random", choices=("random", "optuna"),
                          help="random | optuna (ray.tune.search.optuna.OptunaSearch, TPE)")
    scheduler: HpoSchedulerConfig = setting(factory=HpoSchedulerConfig)
    max_concurrent: Optional[int] = setting(None, low=1, help="trials at once; None = as many as the resources "
                                                              "allow")
    resources: ResourcesConfig = setting(factory=ResourcesConfig)
    address: Optional[str] = setting(None, help="None = $RAY_ADDRESS or a new local Ray; auto | ray://head:10001 | "
                                                "local")
    num_cpus: Optional[int] = setting(None, low=1, note="CPUs of a new local Ray instance",
                                      help="CPUs of a new local Ray instance (None = all); ignored on a cluster")
    env: Dict[str, str] = setting(factory=dict, help="extra environment variables for the trial processes")
    wandb: bool = setting(False, help="each trial logs to Weights & Biases (report_to=wandb), grouped by sweep name")
    project: str = setting("tinyhub", help="W&B project of the trials (sets tracker_project for each trial)")
    resume: bool = setting(False, help="continue the interrupted sweep in hpo.dir: finish its missing trials only")


@dataclass
class SweepConfig(TrainConfig):
    hpo: HpoConfig = setting(factory=HpoConfig)


#: Sections of a composed configuration that are not the training recipe.
NOT_TRAINING = ("hydra", "hpo")


def checked(schema: type, values: dict, prefix: str = "", error: type = None):
    """`values` as an instance of the dataclass `schema`, or `error` (ConfigError) naming the key that is unknown
    or of the wrong type, with the closest known key. Catches what Hydra's `+key=value` lets through."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as e:
        key = f"{prefix}{e.full_key}" if getattr(e, "full_key", None) else prefix.rstrip(".")
        if isinstance(e, (ConfigKeyError, ConfigAttributeError)):
            raise (error or ConfigError)(unknown_setting_message(key, schema, prefix)) from e
        value = _dotted_get(values, str(getattr(e, "full_key", "")))
        raise (error or ConfigError)(wrong_value_message(key, value, schema, prefix)) from e


# ---- what each number may be: every numeric setting has a limit here (a test checks that none is missing) ----
@dataclass(frozen=True)
class Limit:
    """The values a numeric setting may take. A list setting (translate, betas, ...) holds two numbers, each within
    the limit; `ordered` ones are (low, high) ranges with low <= high."""

    key: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low end itself is not allowed
    high_open: bool = False
    meaning: str = ""
    ordered: bool = False

    @property
    def range_text(self) -> str:
        """" from 0 below 1": the bounds in words, as the error line and the configuration reference say them."""
        low = "" if self.low is None else f" {'above' if self.low_open else 'from'} {_number_text(self.low)}"
        high = "" if self.high is None else f" {'below' if self.high_open else 'up to'} {_number_text(self.high)}"
        return low + high


def _number_text(value: float) -> str:
    """4,294,967,295 or 0.05: a bound as the schema writes it, never in exponent notation."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


# ---- what is derived from the declarations ----
@dataclass(frozen=True)
class Declared:
    """One setting of a schema: its dotted key, field, declared facts and type."""

    key: str
    field: dataclasses.Field
    facts: Setting
    kind: Any  # the field's type

    @property
    def limit(self) -> Limit | None:
        f = self.facts
        if f.low is None and f.high is None:
            return None
        return Limit(self.key, f.low, f.high, f.low_open, f.high_open, f.note, f.ordered)


@functools.lru_cache(maxsize=None)
def declared(schema: type, prefix: str = "") -> tuple[Declared, ...]:
    """Every setting of `schema` (a dataclass), sections and their settings, depth first, with its dotted key
    (worked out once per schema: the checks ask for it several times a run)."""
    out = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        kind = hints[f.name]
        out.append(Declared(prefix + f.name, f, f.metadata.get("tinyhub", Setting()), kind))
        if dataclasses.is_dataclass(kind):
            out += declared(kind, f"{prefix}{f.name}.")
    return tuple(out)


def limits_of(schema: type, prefix: str = "") -> tuple[Limit, ...]:
    """The numeric limits declared in `schema`, keyed as a configuration writes them."""
    return tuple(d.limit for d in declared(schema, prefix) if d.limit is not None)


def described_choices(facts: Setting) -> list[str]:
    """Each name a choice setting takes, with a registry's one-line help: "sgd (SGD, with momentum ...)"."""
    given = facts.choices if isinstance(facts.choices, tuple) else (facts.choices,)
    out = []
    for c in given:
        if isinstance(c, Registry):
            out += [f"{name} ({c.help(name)})" if c.help(name) else name for name in c.names()]
        else:
            out.append(c)
    return out


def choices_of(facts: Setting) -> tuple[str, ...]:
    """The names a choice setting takes now: its own, and those of its registry (built-ins and plugins)."""
    given = facts.choices if isinstance(facts.choices, tuple) else (facts.choices,)
    return tuple(n for c in given for n in (c.names() if isinstance(c, Registry) else (c,)))


def keys_where(schema: type, flag: str) -> tuple[str, ...]:
    """The dotted keys whose declaration sets `flag` (machine, resumable, ...); a flagged section covers all below."""
    return tuple(d.key for d in declared(schema) if getattr(d.facts, flag))


#: Every numeric setting of a training configuration, and those a sweep adds.
TRAIN_LIMITS = limits_of(TrainConfig)
SWEEP_LIMITS = limits_of(HpoConfig, "hpo.")


def check_limits(cfg, limits: tuple[Limit, ...], schema: type, error: type | None = None) -> None:
    """Raise ConfigError (or `error`) naming the first setting of `cfg` (a typed config) outside its limit: the
    key, the value and what is allowed. A setting that is None (optional, unset) passes."""
    for limit in limits:
        value = cfg
        for part in limit.key.split("."):
            value = getattr(value, part)
        if value is None:
            continue
        kind = _setting(schema, limit.key)[0]
        problem = _outside(limit, value, _element_type(kind))
        if problem:
            raise (error or ConfigError)(f"{limit.key}={override_text(value)}: {problem}"
                                         + (f" ({limit.meaning})" if limit.meaning else "") + ".")


def _unwrapped(kind):
    """X of Optional[X]; any other type as it is."""
    if typing.get_origin(kind) is typing.Union:
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _element_type(kind):
    kind = _unwrapped(kind)
    if typing.get_origin(kind) in (list, List):
        return list, typing.get_args(kind)[0]
    return None, kind


def _outside(limit: Limit, value, kind) -> str | None:
    container, element = kind
    if container is list:
        if not isinstance(value, (list, tuple)) or (limit.key != "seeds" and len(value) != 2):
            return "must be two numbers in brackets, [a,b]" if limit.key != "seeds" else "must be a list of seeds"
        for v in value:
            problem = _outside(limit, v, (None, element))
            if problem:
                return problem.replace("must be", "each must be", 1)
        if limit.ordered and value[0] > value[1]:
            return "must be [low,high] with low <= high"
        return None
    integer = element is int
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    if ok and limit.low is not None:
        ok = value > limit.low if limit.low_open else value >= limit.low
    if ok and limit.high is not None:
        ok = value < limit.high if limit.high_open else value <= limit.high
    if ok:
        return None
    return f"must be {'a whole number' if integer else 'a number'}{limit.range_text}"


# ---- what the user reads when a setting is unknown or its value has the wrong type ----
def setting_keys(schema: type, prefix: str = "") -> list[str]:
    """Every dotted key of `schema`, sections included: training, training.epochs, training.optimizer, ..."""
    keys = []
    for name, kind in typing.get_type_hints(schema).items():
        keys.append(prefix + name)
        if dataclasses.is_dataclass(kind):
            keys += setting_keys(kind, f"{prefix}{name}.")
    return keys


def _setting(schema: type, dotted: str):
    """(type, default) of a dotted key of `schema`, or None when it has none (unknown, or inside an open section)."""
    node, kind, default = schema, None, None
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return None
        f = fields[part]
        kind = typing.get_type_hints(node)[part]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        node = kind
    return kind, default


def open_section(schema: type, dotted: str) -> str | None:
    """The section above `dotted` that takes keys of the user's choosing (model, hpo.space, hpo.env), if any."""
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        found = _setting(schema, ".".join(parts[:i]))
        if found is None:
            return None
        kind = _unwrapped(found[0])
        if kind is Any or typing.get_origin(kind) is dict:
            return ".".join(parts[:i])
    return None


def _dotted_get(values, dotted: str):
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


#: Names from other trainers that the schema spells differently.
_SYNONYMS = {"learning_rate": "lr", "epoch": "epochs", "bs": "batch_size", "wd": "weight_decay"}


def unknown_setting_message(key: str, schema: type, prefix: str = "") -> str:
    """`key` is not a setting of `schema` (under `prefix`): the nearest real keys, and where the list is."""
    known = setting_keys(schema, prefix)
    section, _, leaf = key.rpartition(".")
    leaf = _SYNONYMS.get(leaf, leaf)
    leaves = {k: k.rpartition(".")[2] for k in known}
    same_leaf = [k for k in known if leaves[k] == leaf]  # the right name in the wrong section
    close_leaf = [k for k in known if k.rpartition(".")[0] == section
                  and leaves[k] in difflib.get_close_matches(leaf, [leaves[k]], cutoff=0.7)]
    close = same_leaf or [*close_leaf, *difflib.get_close_matches(key, known, n=2, cutoff=0.8)]
    close = list(dict.fromkeys(close))[:2]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"{key} is not a setting{hint}; the command's --help lists every setting with its default."


def wrong_value_message(key: str, value, schema: type, prefix: str = "") -> str:
    """`key=value` has the wrong type: what the key takes, with the recipe's default as an example."""
    found = _setting(schema, key[len(prefix):] if prefix and key.startswith(prefix) else key)
    shown = value if isinstance(value, str) else override_text(value)
    if found is None:
        return f"{key}={shown}: not a value this setting takes."
    kind, default = found
    if dataclasses.is_dataclass(kind):
        return (f"{key} is a section, not a value: set its keys one by one, e.g. "
                f"{key}.{dataclasses.fields(kind)[0].name}=...")
    example = f" (e.g. {key}={override_text(default)})" if default not in (None, [], {}) else ""
    return f"{key}={shown}: must be {_describe_type(kind)}{example}."


def _describe_type(kind) -> str:
    if _unwrapped(kind) is not kind:
        return f"{_describe_type(_unwrapped(kind))}, or null"
    args = typing.get_args(kind)
    origin = typing.get_origin(kind)
    if origin in (list, List):
        return f"a list of {_describe_type(args[0]).replace('a ', '', 1)}s in brackets" if args else "a list"
    if origin in (dict, Dict):
        return "a mapping in braces ({key: value, ...})"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(kind, "a value")


def override_text(value) -> str:
    """A value as it is written in a Hydra override (null, true, [a,b], {k:v}, a string quoted when it must be)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        return json.dumps(value)
    return str(value)


def typed_config(cfg: DictConfig | dict | TrainConfig, *, validate: bool = True) -> TrainConfig:
    """A composed configuration, or a plain dict (a record's, a notebook's), as the TrainConfig everything reads by
    attribute, checked once: types and unknown keys against the schema, then (`validate`) every value and relation
    (`check_values`). A problem raises ConfigError naming the key and the fix. Records of finished runs are read
    with validate=False: what ran, ran. A TrainConfig is returned as it is (checked if it was not yet)."""
    if isinstance(cfg, TrainConfig):
        return validated(cfg) if validate else cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    typed = checked(TrainConfig, {k: v for k, v in cfg.items() if k not in NOT_TRAINING})
    return validated(typed) if validate else typed


_CHECKED_AS = "_tinyhub_checked_as"


def validated(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with every value and relation checked (check_values), once: a TrainConfig checked and unchanged since
    is not checked again (a changed one, or one made by dataclasses.replace, is)."""
    if getattr(cfg, _CHECKED_AS, None) != repr(cfg):
        check_values(cfg)
        object.__setattr__(cfg, _CHECKED_AS, repr(cfg))
    return cfg


def with_values(cfg: TrainConfig, values: dict) -> TrainConfig:
    """A new TrainConfig: `cfg` with `values` (dotted key -> value, e.g. a sweep trial's sampled ones) written over
    it through dataclasses.replace, section by section; `model` (an open section) takes any key. Not checked:
    `validated` (or engine.train) does that."""
    nested: dict = {}
    for key, value in values.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return _replaced(cfg, nested, "")


def _replaced(node, changes: dict, prefix: str):
    if isinstance(node, dict):
        return {**node, **changes}
    known = {f.name for f in dataclasses.fields(node)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(unknown_setting_message(prefix + unknown[0], type(node), prefix))
    return dataclasses.replace(node, **{
        k: _replaced(getattr(node, k), v, f"{prefix}{k}.")
        if isinstance(v, dict) and (dataclasses.is_dataclass(getattr(node, k)) or isinstance(getattr(node, k), dict))
        else v for k, v in changes.items()})


def plain_config(cfg: TrainConfig) -> dict:
    """Every setting of a TrainConfig as a plain dict (nested as the YAML recipes are)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def config_dict(cfg: TrainConfig) -> dict:
    """The plain dict of a TrainConfig as config.yaml, checkpoints and results.json record it: every setting that
    acts, and none that the chosen optimizer or schedule ignores (`inert_settings`), so nothing is recorded or
    carded as if it had acted."""
    out = plain_config(cfg)
    for key in inert_settings(cfg):
        *sections, leaf = key.split(".")
        node = out
        for part in sections:
            node = node[part]
        node.pop(leaf, None)
    return out


# ---- values and relations: checked once, when a configuration becomes a TrainConfig ----
def _section_choice(cfg, section_key: str) -> str:
    return str(_get(cfg, section_key).name).lower()


def inert_settings(cfg) -> list[str]:
    """The settings the chosen optimizer and schedule ignore: under onecycle, training.optimizer.lr (max_lr sets
    the rate); under adam, momentum; under cosine, gamma; ... (each field's `read_by` and `replaced_by_schedules`)."""
    inert = []
    for d in declared(type(cfg)):
        section = d.key.rpartition(".")[0]
        if d.facts.read_by is not None and _section_choice(cfg, section) not in d.facts.read_by:
            inert.append(d.key)
        elif d.facts.replaced_by_schedules and _schedule_name(cfg) in d.facts.replaced_by_schedules:
            inert.append(d.key)
    return inert


def _schedule_name(cfg) -> str:
    return str(cfg.training.scheduler.name).lower()


def _acting(cfg, section) -> list[str]:
    """The fields of a chosen section (the optimizer, the schedule) that act, in declaration order."""
    inert = set(inert_settings(cfg))
    prefix = _path_of(cfg, section)
    return [f.name for f in dataclasses.fields(section)
            if f.name not in ("name", "implementation") and f"{prefix}.{f.name}" not in inert]


def _path_of(cfg, section) -> str:
    return next(d.key for d in declared(type(cfg)) if _get(cfg, d.key) is section)


def optimizer_text(cfg: TrainConfig) -> str:
    """"sgd (weight decay 0.0001, momentum 0.9, nesterov true)": the optimizer with the settings that act."""
    opt = cfg.training.optimizer
    shown = [f"{k.replace('_', ' ')} {override_text(getattr(opt, k))}" for k in _acting(cfg, opt)]
    return f"{opt.name} ({', '.join(shown)})" if shown else str(opt.name)


def schedule_text(cfg: TrainConfig) -> str:
    """"onecycle (max_lr 0.24, pct_start 0.2)": the schedule with the settings that act."""
    sch = cfg.training.scheduler
    shown = [f"{k} {override_text(getattr(sch, k))}" for k in _acting(cfg, sch)]
    return f"{sch.name} ({', '.join(shown)})" if shown else str(sch.name)


def learning_rate_text(cfg: TrainConfig) -> str:
    """The learning rate that acted: the optimizer's, or the schedule's peak under onecycle."""
    tr = cfg.training
    if _schedule_name(cfg) in _facts(OptimizerConfig, "lr").replaced_by_schedules:
        return f"max {tr.scheduler.max_lr:g}"
    return f"{tr.optimizer.lr:g}"


def _facts(schema: type, name: str) -> Setting:
    return next(f for f in dataclasses.fields(schema) if f.name == name).metadata["tinyhub"]


def ignored_settings(cfg: TrainConfig) -> dict[str, str]:
    """The inert settings given a value other than the schema's default, each with a line saying so. The run
    leaves them out of its record and says that line (a value the schedule replaces is refused instead)."""
    defaults, notes = type(cfg)(), {}
    facts = {d.key: d.facts for d in declared(type(cfg))}
    for key in inert_settings(cfg):
        value = _get(cfg, key)
        if value != _get(defaults, key):
            replaced = facts[key].replaced_why
            chosen = _path_of(cfg, cfg.training.scheduler) if replaced else key.rpartition(".")[0]
            why = replaced or f"it does not read {key.rpartition('.')[2]}"
            notes[key] = (f"{key}={override_text(value)} has no effect with {chosen}.name={_get(cfg, chosen).name} "
                          f"({why})")
    return notes


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_choices(cfg, schema: type, prefix: str = "", error: type | None = None) -> None:
    """Raise ConfigError (or `error`) naming the first choice setting of `cfg` whose value is not one of its
    declared names (a registry's include the installed plugins')."""
    for d in declared(schema):
        if d.facts.choices is None:
            continue
        value = _get(cfg, d.key)
        text = override_text(value) if isinstance(value, bool) else value  # Hydra reads true/false as booleans
        choices = choices_of(d.facts)
        if not (isinstance(text, str) and text.lower() in choices):
            note = f" ({d.facts.choice_note})" if d.facts.choice_note else ""
            raise (error or ConfigError)(f"{prefix}{d.key}={value!r}: choose {choice_text(choices)}{note}.")


def check_hpo(hpo: HpoConfig, error: type | None = None) -> None:
    """The sweep's own settings (the `hpo` section, typed): their declared limits and choices."""
    from types import SimpleNamespace

    check_limits(SimpleNamespace(hpo=hpo), SWEEP_LIMITS, SweepConfig, error)
    check_choices(hpo, HpoConfig, "hpo.", error)


def check_values(cfg: TrainConfig) -> None:
    """Every value the run reads, with its meaning: the declared limits and choices, relations between settings,
    and no setting that would be silently ignored. ConfigError names the first problem and its fix."""
    check_limits(cfg, limits_of(type(cfg)), type(cfg))
    check_choices(cfg, type(cfg))
    if cfg.seeds is not None:
        if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
            raise ConfigError(f"seeds={list(cfg.seeds)}: give distinct seeds, e.g. seeds=[0,1,2] (or seed=N for one "
                              "run).")
        if cfg.training.scheduler.name == "plateau":
            raise ConfigError("training.scheduler.name=plateau lowers the learning rate when one run's accuracy "
                              "stalls, and the seeds of a stack share one schedule; train them one at a time "
                              "(seed=N), or choose step, onecycle or cosine.")
    if cfg.training.scheduler.name == "plateau" and cfg.training.eval_every != 1:
        raise ConfigError(f"training.eval_every={cfg.training.eval_every}: the plateau schedule reads the accuracy "
                          "after every epoch; set training.eval_every=1, or choose step, onecycle or cosine.")
    facts = {d.key: d.facts for d in declared(type(cfg))}
    for key, note in ignored_settings(cfg).items():
        if facts[key].replaced_why:  # a value that looks set but is the schedule's: refused, not just noted
            raise ConfigError(f"{note}; remove it, or set the learning rate the schedule uses.")
    if cfg.training.mixed_precision == "fp16" and (cfg.training.device == "cpu" or not _cuda_available()):
        raise ConfigError("training.mixed_precision=fp16 needs a CUDA GPU (fp16 autocast with loss scaling); on "
                          "the CPU use training.mixed_precision=bf16, or no.")
    if 0 < cfg.data.subset < cfg.data.batch_size:
        raise ConfigError(f"data.subset={cfg.data.subset} is less than one batch (data.batch_size="
                          f"{cfg.data.batch_size}): train on at least {cfg.data.batch_size} images, or lower "
                          "data.batch_size.")
    if cfg.data.channels == 2:
        raise ConfigError("data.channels=2: choose 1 (grayscale), 3 (RGB), or 0 to keep the data's own.")
    if cfg.data.image_shape is not None and len(cfg.data.image_shape) not in (2, 3):
        raise ConfigError(f"data.image_shape={list(cfg.data.image_shape)}: give [H, W] or [H, W, C].")
    _check_tracker(cfg.report_to)


def _cuda_available() -> bool:
    import torch  # only asked for fp16, which needs it anyway

    return torch.cuda.is_available()


def _check_tracker(report_to: str) -> None:
    """Accelerate only warns when a tracker is missing; a user who asked for one should know it is not logging."""
    import importlib.util

    entry = TRACKERS.entries()[report_to]
    module = entry.target if entry.origin == "tinyhub" else None  # a plugin's tracker is its own package
    if module and importlib.util.find_spec(module) is None:
        raise ConfigError(f"report_to={report_to} needs the {module} package: pip install {module} "
                          "(or `pip install tinyhub[tracking]`), or choose report_to=tensorboard|none.")
    if report_to == "wandb" and not _wandb_can_log():  # said before the run folder exists, not by wandb mid-run
        raise ConfigError("report_to=wandb needs a Weights & Biases login: run `wandb login` (or set WANDB_API_KEY), "
                          "or set WANDB_MODE=offline to log locally; or choose report_to=tensorboard|none.")


def _wandb_can_log() -> bool:
    """A W&B key in the environment or in ~/.netrc (where `wandb login` keeps it), or a mode that needs none."""
    import netrc
    import os
    from urllib.parse import urlparse

    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled",
                                                                                       "dryrun"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def register() -> None:
    """Make the schemas known to Hydra (idempotent); train.yaml and sweep.yaml name them in their defaults."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sweep_schema", node=SweepConfig)


register()
