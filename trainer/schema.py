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
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from tinyhub.errors import UsageError


class ConfigError(UsageError, ValueError):
    """The resolved configuration cannot be trained."""


@dataclass
class RecipeConfig:
    target_accuracy: Optional[float] = None  # % on the test split, final epoch, mean of seeds (never used to select)
    target_dataset: Optional[str] = None  # the dataset the target is for (mnist, or a Hub id / name)
    design: str = ""  # where the recipe comes from, in words (shown on the card)
    # accuracy: the best model for its budget | speed: the target soonest (its card records the time and machine)
    purpose: str = "accuracy"


@dataclass
class SplitsConfig:
    train: str = "train"  # the Hub dataset's split to train on
    validation: str = "validation"  # used for validation when the dataset has it
    test: str = "test"  # evaluated after every epoch and reported, never used to choose


@dataclass
class DataConfig:
    source: str = "auto"  # auto (local if data.dir / TINYHUB_DATA_DIR is set, else hub) | local | hub
    dir: Optional[str] = None  # folder with four IDX files named like MNIST's (.gz or raw; torchvision MNIST/raw too)
    dataset: str = "ylecun/mnist"  # Hub dataset id (or a folder saved with DatasetDict.save_to_disk), source=hub
    revision: Optional[str] = None  # the Hub dataset's revision (a commit pins it)
    name: Optional[str] = None  # the dataset's name; None = $TINYHUB_DATA_NAME, else decided from the data itself
    verify: bool = True  # IDX files without data.name must be canonical MNIST; false trains them unidentified
    label_names: Optional[List[str]] = None  # class names in label order; None = labels.txt / ClassLabel / indices
    splits: SplitsConfig = field(default_factory=SplitsConfig)  # which splits of a Hub dataset play which part
    cache_dir: Optional[str] = None  # default: $TINYHUB_CACHE/datasets or ~/.cache/tinyhub/datasets
    val_size: int = 0  # images carved from train for validation when the data has no validation split
    subset: int = 0  # first N training images only (smoke tests); 0 = all
    batch_size: int = 128  # per process
    eval_batch_size: int = 250  # per forward pass; 1000 was 2-4x slower on a CPU (docs: Speed)


@dataclass
class AugmentSchema:
    """Per-sample, on the device, in one batched op (trainer/augment.py)."""

    rotation: float = 0.0  # degrees
    translate: List[float] = field(default_factory=lambda: [0.0, 0.0])  # fraction of width, height
    scale: List[float] = field(default_factory=lambda: [1.0, 1.0])
    shear: float = 0.0  # degrees
    center_crop_size: int = 0  # seeds' RandomApply(CenterCrop(k), p) + resize back; 0 = off
    center_crop_p: float = 0.0
    erase_p: float = 0.0  # random erasing
    erase_area: List[float] = field(default_factory=lambda: [0.02, 0.15])
    erase_ratio: List[float] = field(default_factory=lambda: [0.3, 3.3])


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.01  # the learning rate (under onecycle, scheduler.max_lr sets the peak instead)
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adam / adamw
    # The update's kernels: auto (fused on a GPU, the for-loop on the CPU) | forloop | foreach | fused. The same
    # arithmetic, rounded in a different order: a run records the one it used.
    implementation: str = "auto"


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | step | onecycle | cosine | plateau
    step_size: int = 7  # step: epochs between decays
    gamma: float = 0.1  # step / plateau: decay factor
    max_lr: float = 0.1  # onecycle: peak learning rate (per step schedule)
    pct_start: float = 0.25  # onecycle: fraction of steps warming up
    patience: int = 1  # plateau: epochs without improvement (on validation accuracy, else train accuracy)
    min_lr: float = 1.0e-6  # plateau / cosine floor


@dataclass
class DistillConfig:
    """Knowledge distillation, off while teacher is None."""

    teacher: Any = None  # run dir | saved model folder | Hub repo id[@revision]; or a list: an averaged ensemble
    temperature: float = 4.0  # softens both distributions; the soft-target loss is scaled by temperature^2
    weight: float = 0.5  # share of the loss from the teachers' soft targets (the rest: cross-entropy on labels)


@dataclass
class TrainingConfig:
    epochs: int = 15  # the recorded accuracy is the last epoch's
    # Epochs between evaluations of the validation and test splits; 0 = after the last epoch only. The last epoch is
    # always evaluated: it is the run's result. Speed recipes skip the evaluations no one reads.
    eval_every: int = 1
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    label_smoothing: float = 0.0  # of the cross-entropy on labels, 0 to <1
    distill: DistillConfig = field(default_factory=DistillConfig)
    grad_clip: float = 0.0  # max grad norm; 0 = off
    ema: float = 0.0  # EMA decay of weights (e.g. 0.999); 0 = off. The EMA weights are evaluated and saved.
    mixed_precision: str = "no"  # no | fp16 (GPU) | bf16
    device: str = "auto"  # auto | cpu
    compile: bool = False  # torch.compile the model
    # Replay the step's forward and backward from a CUDA graph (trainer/cuda_graph.py): auto = on a GPU when the
    # recipe allows it (else the run says why and trains eagerly) | true (the same, and a reason is a warning) | false
    cuda_graphs: Any = "auto"
    channels_last: bool = False  # compute in the channels-last memory layout (a stack always does)
    deterministic: bool = False  # torch.use_deterministic_algorithms; needed for bit-exact resume
    threads: int = 0  # torch CPU threads; 0 = torch's default
    keep_freed_memory: bool = True  # CPU, glibc: keep freed blocks for the next step (trainer/host_memory.py)
    checkpoint_every: int = 1  # epochs; 0 = no checkpoints
    keep_checkpoints: int = 2  # the newest N complete checkpoints are kept
    resume: Optional[str] = None  # None | auto (latest complete checkpoint in run.dir) | path to a checkpoint


@dataclass
class RunConfig:
    root: str = "runs"  # new runs go to <root>/<model>-s<seed>-<timestamp>
    dir: Optional[str] = None  # or exactly here
    name: Optional[str] = None  # the run directory's name under run.root (default <model>-s<seed>-<timestamp>)


@dataclass
class TrainConfig:
    seed: int = 0  # every random stream (init, order, augmentation, dropout) derives from it
    # Several seeds trained together in one process (trainer/stack.py), each exactly as its own run would sample
    # it, each ending as its own run directory <run.dir>/seed_<s>; None = the one run of `seed`.
    seeds: Optional[List[int]] = None
    report_to: str = "tensorboard"  # tensorboard | wandb | trackio | none  (Accelerate trackers)
    tracker_project: str = "tinyhub"  # project name for the tracker (W&B / trackio project, TensorBoard subfolder)
    progress: Any = "auto"  # tqdm bars on the main process: auto = only on a terminal | true | false
    # name: any name from modeling.list_models(), set by the recipe; param_budget: building a model over it is an
    # error (None = the family's own budget); any other key is an argument of the architecture.
    model: Dict[str, Any] = field(default_factory=lambda: {"name": MISSING, "param_budget": None})
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentSchema = field(default_factory=AugmentSchema)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    run: RunConfig = field(default_factory=RunConfig)

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
    name: str = "asha"  # asha | none (every trial runs all training.epochs)
    grace_period: int = 2  # epochs every trial runs before it can be stopped
    reduction_factor: float = 2  # keep the best 1/reduction_factor at each rung; max_t = training.epochs


@dataclass
class ResourcesConfig:
    cpu: float = 1  # CPUs per trial (also torch threads when training.threads=0)
    gpu: float = 0  # GPUs per trial; fractions share one GPU (0.25 = four trials per GPU)


def _default_space() -> dict:
    # `lr` is the effective learning rate: training.scheduler.max_lr under onecycle, training.optimizer.lr otherwise.
    return {"lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "data": {"batch_size": {"type": "choice", "values": [32, 64, 128]}}}


@dataclass
class HpoConfig:
    """What a sweep searches and how (sweep.yaml explains the search space's format)."""

    name: Optional[str] = None  # default: <model>-<timestamp>
    dir: Optional[str] = None  # sweep output folder; default: sweeps/<name> (keep it out of the runs folder)
    num_samples: int = 8  # trials (with `grid` parameters: samples per grid point)
    metric: str = "val_accuracy"  # val_accuracy | val_loss (validation split); never a test metric
    mode: str = "max"  # max | min
    val_size: int = 5000  # training images held out for validation (must be > 0)
    seed: Optional[int] = None  # seed of the search algorithm (reproducible sampling); None = random
    space: Optional[Dict[str, Any]] = field(default_factory=_default_space)
    search: str = "random"  # random | optuna (ray.tune.search.optuna.OptunaSearch, TPE)
    scheduler: HpoSchedulerConfig = field(default_factory=HpoSchedulerConfig)
    max_concurrent: Optional[int] = None  # trials at once; None = as many as the resources allow
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    address: Optional[str] = None  # None = $RAY_ADDRESS or a new local Ray; auto | ray://head:10001 | local
    num_cpus: Optional[int] = None  # CPUs of a new local Ray instance (None = all); ignored on a cluster
    env: Dict[str, str] = field(default_factory=dict)  # extra environment variables for the trial processes
    wandb: bool = False  # each trial logs to Weights & Biases (report_to=wandb), grouped by sweep name
    project: str = "tinyhub"  # W&B project of the trials (sets tracker_project for each trial)
    resume: bool = False  # continue the interrupted sweep in hpo.dir: finish its missing trials only


@dataclass
class SweepConfig(TrainConfig):
    hpo: HpoConfig = field(default_factory=HpoConfig)


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
        low = "" if self.low is None else f" {'above' if self.low_open else 'from'} {self.low:g}"
        high = "" if self.high is None else f" {'below' if self.high_open else 'up to'} {self.high:g}"
        return low + high


_SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit

#: Every numeric setting of TrainConfig. Values outside are refused before anything runs, with this meaning.
TRAIN_LIMITS = (
    Limit("seed", 0, _SEED_MAX, meaning="seeds every random stream"),
    Limit("seeds", 0, _SEED_MAX, meaning="one seed per model of the stack"),
    Limit("recipe.target_accuracy", 0, 100, meaning="% of the test split"),
    Limit("data.val_size", 0, meaning="0 = no validation split"),
    Limit("data.subset", 0, meaning="0 = every training image"),
    Limit("data.batch_size", 1, meaning="images per process and step"),
    Limit("data.eval_batch_size", 1),
    Limit("augment.rotation", 0, 180, meaning="degrees either way"),
    Limit("augment.translate", 0, 1, high_open=True, meaning="fractions of the width and of the height"),
    Limit("augment.scale", 0, 10, low_open=True, meaning="the zoom range [low,high]", ordered=True),
    Limit("augment.shear", 0, 90, high_open=True, meaning="degrees either way"),
    Limit("augment.center_crop_size", 0, meaning="pixels; 0 = off"),
    Limit("augment.center_crop_p", 0, 1, meaning="a probability"),
    Limit("augment.erase_p", 0, 1, meaning="a probability"),
    Limit("augment.erase_area", 0, 1, low_open=True, meaning="fractions of the image area [low,high]",
          ordered=True),
    Limit("augment.erase_ratio", 0, 100, low_open=True, meaning="aspect ratios [low,high]", ordered=True),
    Limit("training.epochs", 1),
    Limit("training.eval_every", 0, meaning="epochs between evaluations; 0 = after the last epoch only"),
    Limit("training.optimizer.lr", 0, meaning="the learning rate"),
    Limit("training.optimizer.momentum", 0, 1, high_open=True),
    Limit("training.optimizer.weight_decay", 0),
    Limit("training.optimizer.betas", 0, 1, high_open=True, meaning="Adam's two decay rates"),
    Limit("training.scheduler.step_size", 1, meaning="epochs between decays"),
    Limit("training.scheduler.gamma", 0, 1, low_open=True, high_open=True, meaning="the decay factor"),
    Limit("training.scheduler.max_lr", 0, meaning="the peak learning rate"),
    Limit("training.scheduler.pct_start", 0, 1, low_open=True, high_open=True,
          meaning="the share of the steps that warm up"),
    Limit("training.scheduler.patience", 0, meaning="epochs without improvement"),
    Limit("training.scheduler.min_lr", 0, meaning="the floor of the learning rate"),
    Limit("training.label_smoothing", 0, 1, high_open=True),
    Limit("training.distill.temperature", 0.05, meaning="the softening temperature"),
    Limit("training.distill.weight", 0, 1, meaning="the soft-target share of the loss"),
    Limit("training.grad_clip", 0, meaning="the largest gradient norm; 0 = off"),
    Limit("training.ema", 0, 1, high_open=True, meaning="the EMA decay; 0 = off"),
    Limit("training.threads", 0, meaning="0 = torch's default"),
    Limit("training.checkpoint_every", 0, meaning="epochs; 0 = no checkpoints"),
    Limit("training.keep_checkpoints", 1),
)

#: The numeric settings a sweep adds (hpo.*).
SWEEP_LIMITS = (
    Limit("hpo.num_samples", 1),
    Limit("hpo.val_size", 0, meaning="training images held out for validation when data.val_size is 0"),
    Limit("hpo.seed", 0, _SEED_MAX),
    Limit("hpo.scheduler.grace_period", 1, meaning="epochs"),
    Limit("hpo.scheduler.reduction_factor", 1, low_open=True),
    Limit("hpo.max_concurrent", 1),
    Limit("hpo.num_cpus", 1, meaning="CPUs of a new local Ray instance"),
    Limit("hpo.resources.cpu", 0, low_open=True),
    Limit("hpo.resources.gpu", 0),
)


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


def typed_config(cfg: DictConfig | dict, *, validate: bool = True) -> TrainConfig:
    """A composed configuration, or a plain dict (a sweep trial, a notebook), as the TrainConfig everything reads by
    attribute, checked once: types and unknown keys against the schema, then (`validate`) every value and relation
    (`check_values`). A problem raises ConfigError naming the key and the fix. Records of finished runs are read
    with validate=False: what ran, ran."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    typed = checked(TrainConfig, {k: v for k, v in cfg.items() if k not in NOT_TRAINING})
    if validate:
        check_values(typed)
    return typed


def config_dict(cfg: TrainConfig) -> dict:
    """The plain dict of a TrainConfig as config.yaml, checkpoints and results.json record it: every setting that
    acts, and none that the chosen optimizer or schedule ignores (`inert_settings`), so nothing is recorded or
    carded as if it had acted."""
    out = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    for key in inert_settings(cfg):
        *sections, leaf = key.split(".")
        node = out
        for part in sections:
            node = node[part]
        node.pop(leaf, None)
    return out


# ---- values and relations: checked once, when a configuration becomes a TrainConfig ----
#: Names each choice setting takes.
#: training.cuda_graphs (Hydra hands true and false over as booleans, so it is checked apart from CHOICES)
CUDA_GRAPHS = ("auto", "true", "false")
CHOICES = {
    "training.device": ("auto", "cpu"),
    "data.source": ("auto", "local", "hub"),
    "training.optimizer.name": ("sgd", "adam", "adamw"),
    "training.optimizer.implementation": ("auto", "forloop", "foreach", "fused"),
    "training.scheduler.name": ("none", "step", "onecycle", "cosine", "plateau"),
    "training.mixed_precision": ("no", "bf16", "fp16"),
    "report_to": ("none", "tensorboard", "wandb", "trackio"),
    "recipe.purpose": ("accuracy", "speed"),
}
_CHOICE_MEANING = {"training.device": "auto: a GPU when there is one; several with accelerate launch"}

#: What each optimizer and schedule reads; every other setting of its section is inert under it.
_ACTS = {
    "training.optimizer": {"sgd": ("lr", "momentum", "nesterov", "weight_decay"),
                           "adam": ("lr", "weight_decay", "betas"), "adamw": ("lr", "weight_decay", "betas")},
    "training.scheduler": {"none": (), "step": ("step_size", "gamma"), "onecycle": ("max_lr", "pct_start"),
                           "cosine": ("min_lr",), "plateau": ("gamma", "patience", "min_lr")},
}
_WHY_INERT = {"training.optimizer.lr": "the schedule sets the learning rate: its peak is training.scheduler.max_lr"}


def inert_settings(cfg: TrainConfig) -> list[str]:
    """The settings the chosen optimizer and schedule ignore: under onecycle, training.optimizer.lr (max_lr sets
    the rate); under adam, momentum; under cosine, gamma; ..."""
    tr = cfg.training
    inert = []
    for section, chosen in (("training.optimizer", tr.optimizer), ("training.scheduler", tr.scheduler)):
        acts = _ACTS[section].get(str(chosen.name).lower())
        if acts is None:  # an unknown name is refused by check_values
            continue
        inert += [f"{section}.{f.name}" for f in dataclasses.fields(chosen)
                  if f.name not in (*acts, "name", "implementation")]  # every optimizer has kernels
    if str(tr.scheduler.name).lower() == "onecycle":
        inert.append("training.optimizer.lr")
    return inert


def optimizer_text(cfg: TrainConfig) -> str:
    """"sgd (weight decay 0.0001, momentum 0.9, nesterov true)": the optimizer with the settings that act."""
    opt, inert = cfg.training.optimizer, set(inert_settings(cfg))
    acts = _ACTS["training.optimizer"].get(str(opt.name).lower(), ())
    shown = [f"{k.replace('_', ' ')} {override_text(getattr(opt, k))}" for k in acts
             if f"training.optimizer.{k}" not in inert]
    return f"{opt.name} ({', '.join(shown)})" if shown else str(opt.name)


def schedule_text(cfg: TrainConfig) -> str:
    """"onecycle (max_lr 0.24, pct_start 0.2)": the schedule with the settings that act."""
    sch = cfg.training.scheduler
    acts = _ACTS["training.scheduler"].get(str(sch.name).lower(), ())
    shown = [f"{k} {override_text(getattr(sch, k))}" for k in acts]
    return f"{sch.name} ({', '.join(shown)})" if shown else str(sch.name)


def learning_rate_text(cfg: TrainConfig) -> str:
    """The learning rate that acted: the optimizer's, or the schedule's peak under onecycle."""
    tr = cfg.training
    if str(tr.scheduler.name).lower() == "onecycle":
        return f"max {tr.scheduler.max_lr:g}"
    return f"{tr.optimizer.lr:g}"


def ignored_settings(cfg: TrainConfig) -> dict[str, str]:
    """The inert settings given a value other than the schema's default, each with a line saying so. The run
    leaves them out of its record and says that line (a learning rate under onecycle is refused instead)."""
    defaults, notes = TrainConfig(), {}
    for key in inert_settings(cfg):
        value = _get(cfg, key)
        if value != _get(defaults, key):
            section = key.rpartition(".")[0]
            chosen = "training.scheduler" if key in _WHY_INERT else section
            why = _WHY_INERT.get(key, f"it does not read {key.rpartition('.')[2]}")
            notes[key] = (f"{key}={override_text(value)} has no effect with {chosen}.name={_get(cfg, chosen).name} "
                          f"({why})")
    return notes


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_values(cfg: TrainConfig) -> None:
    """Every value the run reads, with its meaning: limits (TRAIN_LIMITS), choices, relations between settings,
    and no setting that would be silently ignored. ConfigError names the first problem and its fix."""
    check_limits(cfg, TRAIN_LIMITS, TrainConfig)
    for key, choices in CHOICES.items():
        value = _get(cfg, key)
        if not (isinstance(value, str) and value.lower() in choices):
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            meaning = _CHOICE_MEANING.get(key)
            raise ConfigError(f"{key}={value!r}: choose {listed}" + (f" ({meaning})" if meaning else "") + ".")
    if str(cfg.training.cuda_graphs).lower() not in CUDA_GRAPHS:
        raise ConfigError(f"training.cuda_graphs={cfg.training.cuda_graphs!r}: choose auto, true or false.")
    if not (isinstance(cfg.progress, bool) or str(cfg.progress).lower() == "auto"):
        raise ConfigError(f"progress={cfg.progress!r}: choose auto, true or false.")
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
    for key, note in ignored_settings(cfg).items():
        if key in _WHY_INERT:  # a learning rate that looks set but is not: refused, not just noted
            raise ConfigError(f"{note}; remove it, or set the learning rate the schedule uses.")
    if cfg.training.mixed_precision == "fp16" and (cfg.training.device == "cpu" or not _cuda_available()):
        raise ConfigError("training.mixed_precision=fp16 needs a CUDA GPU (fp16 autocast with loss scaling); on "
                          "the CPU use training.mixed_precision=bf16, or no.")
    _check_tracker(cfg.report_to)


def _cuda_available() -> bool:
    import torch  # only asked for fp16, which needs it anyway

    return torch.cuda.is_available()


def _check_tracker(report_to: str) -> None:
    """Accelerate only warns when a tracker is missing; a user who asked for one should know it is not logging."""
    import importlib.util

    module = None if report_to == "none" else report_to
    if module is not None and importlib.util.find_spec(module) is None:
        raise ConfigError(f"report_to={report_to} needs the {module} package: pip install {module} "
                          "(or `pip install tinyhub[tracking]`), or choose report_to=tensorboard|none.")


def register() -> None:
    """Make the schemas known to Hydra (idempotent); train.yaml and sweep.yaml name them in their defaults."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sweep_schema", node=SweepConfig)


register()
