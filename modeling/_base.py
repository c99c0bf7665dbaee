"""The base class every tinyhub architecture inherits: Hub mixin, strict safetensors loading, input checks."""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download, list_repo_files
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import load_file, save_file
from torch import nn

from tinyhub.errors import TinyhubError, UsageError
from tinyhub.utils.files import atomic_path, write_json_atomic
from tinyhub.utils.hub_http import use_hub_timeouts

from ._registry import model_info

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


#: Ceilings on what a config.json may describe, checked before anything is allocated.
MAX_INPUT_SIZE = 1024
MAX_CHANNELS = 4
MAX_CLASSES = 10_000


class WeightsMismatchError(TinyhubError, RuntimeError):
    """Saved weights do not fit the architecture described by config.json."""


class PickleRefusedError(TinyhubError, RuntimeError):
    """A folder or repo holds only pickled weights, which tinyhub never loads."""


class ModelConfigError(TinyhubError, ValueError):
    """A saved model's config.json cannot be trusted as it is: unknown keys, wrong types, or too large."""


class InputShapeError(UsageError, ValueError):
    """An architecture cannot be built for the requested input shape; the message names the shapes it supports."""


class PushRefusedError(UsageError, NotImplementedError):
    """A bare model is never pushed on its own: tinyhub publishes runs, with their card and verification."""


#: Whether torch.export is tracing (torch 2.6 and later say so; before, nothing to tell it by).
_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)


def clean_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the `module.` (DDP) and `_orig_mod.` (torch.compile) segments wrappers add to keys."""
    cleaned = {}
    for key, tensor in state_dict.items():
        parts = [p for p in key.split(".") if p not in ("module", "_orig_mod")]
        cleaned[".".join(parts)] = tensor
    return cleaned


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the bare model inside DDP / torch.compile wrappers (any nesting)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel) or type(model).__name__ == "DataParallel":
            model = model.module
        else:
            return model


def _default_id2label(num_classes: int) -> dict[str, str]:
    return {str(i): str(i) for i in range(num_classes)}


class TinyClassifier(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="tinyhub",
    tags=["image-classification", "tinyhub"],
    license="mit",
    pipeline_tag="image-classification",
):
    """Common behaviour of every registered architecture.

    Subclasses set `architecture` (the registry name) and build their layers after calling
    `super().__init__(num_classes=..., in_chans=..., input_size=..., mean=..., std=..., id2label=...)`.
    The Hub mixin records every constructor argument in config.json; `save_pretrained` adds the
    architecture name so that `modeling.from_pretrained` can rebuild the right class from the config alone.
    """

    architecture: str = ""
    #: The smallest square input the layers can take (pooling and unpadded convolutions shrink it); any larger
    #: size works, the head adapting to it. Families set their own.
    min_input_size: int = 4

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        input_size: int = 28,
        mean: tuple[float, ...] = MNIST_MEAN,
        std: tuple[float, ...] = MNIST_STD,
        id2label: dict[str, str] | None = None,
    ):
        super().__init__()
        if not (isinstance(input_size, int) and input_size >= self.min_input_size):
            raise InputShapeError(
                f"{self.architecture or type(self).__name__} takes square inputs of at least {self.min_input_size}x"
                f"{self.min_input_size} pixels (any channel count); got input_size={input_size!r}. Choose another "
                "architecture for smaller images, or upscale them (data.image_size=N when training).")
        if input_size > MAX_INPUT_SIZE:  # a stranger's config.json: refused before any tensor of that size exists
            raise InputShapeError(f"input_size={input_size:,}: tinyhub models take at most {MAX_INPUT_SIZE:,}x"
                                  f"{MAX_INPUT_SIZE:,} pixels; resize the images (data.image_size=N).")
        if not (isinstance(in_chans, int) and 1 <= in_chans <= MAX_CHANNELS):
            raise InputShapeError(f"in_chans must be a number of channels from 1 to {MAX_CHANNELS}, not {in_chans!r}.")
        if not (isinstance(num_classes, int) and 1 <= num_classes <= MAX_CLASSES):
            raise InputShapeError(f"num_classes must be from 1 to {MAX_CLASSES:,}, not {num_classes!r}.")
        if len(tuple(mean)) != in_chans or len(tuple(std)) != in_chans:
            raise InputShapeError(f"mean {tuple(mean)} and std {tuple(std)} need one value per channel ({in_chans}).")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = input_size
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.id2label = dict(id2label) if id2label else _default_id2label(num_classes)
        if len(self.id2label) != num_classes:
            raise ValueError(f"id2label has {len(self.id2label)} entries but num_classes is {num_classes}")

    # ---- input checks -------------------------------------------------------------------------------
    @property
    def expected_input_shape(self) -> tuple[int, int, int]:
        return (self.in_chans, self.input_size, self.input_size)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.expected_input_shape:
            c, h, w = self.expected_input_shape
            raise ValueError(
                f"{self.architecture} expects input of shape (batch, {c}, {h}, {w}) "
                f"(normalised with mean={self.mean}, std={self.std}); got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_features(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, C, H, W) in 0..255 -> the float input this model was trained on."""
        return self.normalize01(images_uint8.float() / 255.0)

    def normalize01(self, images01: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] (augmented, shifted) -> the model's input: the one normalisation that training,
        evaluation, distillation and `normalize` share. Its constants are built once per device, so a training
        step copies nothing from the host."""
        # torch.export (tinyhub export, torch.onnx) runs this on fake tensors: none of them may stay in the cache.
        cache = {} if _is_exporting() else self.__dict__.setdefault("_normalization", {})
        key = images01.device
        if key not in cache:
            shape = (1, len(self.mean), 1, 1)
            cache[key] = (torch.tensor(self.mean, device=key).view(shape),
                          torch.tensor(self.std, device=key).view(shape))
        mean, std = cache[key]
        return (images01 - mean) / std

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- saving -------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *, config=None, push_to_hub: bool = False, **kwargs):
        """Write config.json and model.safetensors into `save_directory`, and nothing else: the model card of a
        published model is written by `tinyhub push` from the run's results, never a generic placeholder."""
        if push_to_hub:
            self.push_to_hub()
        config = dict(config if config is not None else (self._hub_mixin_config or {}))
        # Families take the shared arguments through **common, so the mixin only records those passed
        # explicitly: write the full set from the instance so config.json always describes the model.
        config.update(
            architecture=self.architecture,
            num_classes=self.num_classes,
            in_chans=self.in_chans,
            input_size=self.input_size,
            mean=list(self.mean),
            std=list(self.std),
            id2label=self.id2label,
            num_parameters=self.num_parameters(),
        )
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(save_directory)
        target = save_directory / CONFIG_NAME
        write_json_atomic(target, config, sort_keys=True, indent=2)
        return None

    def push_to_hub(self, *args, **kwargs):
        raise PushRefusedError(
            "tinyhub models are published from their run, with the generated model card, the results and a "
            "verification of what the Hub serves: `tinyhub push RUN_DIR --repo-id NAMESPACE/NAME`. For a model "
            "built by hand, save_pretrained(folder) and upload that folder with huggingface_hub.upload_folder."
        )

    def _save_pretrained(self, save_directory: Path) -> None:
        state = clean_state_dict(unwrap_model(self).state_dict())
        # fp32 always, contiguous, detached copies: mixed-precision or channels_last training never leaks in.
        state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
                 for k, v in state.items()}
        target = Path(save_directory) / WEIGHTS_NAME
        # One metadata key only: safetensors writes a metadata map in hash order, which differs between processes,
        # and identical weights must give identical bytes (hashes compare runs; an unchanged push uploads nothing).
        with atomic_path(target) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
            os.chmod(tmp, 0o644)

    # ---- loading ------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, revision: str | None = None, cache_dir=None,
                        force_download: bool = False, local_files_only: bool = False, token=None,
                        **model_kwargs):
        """Load a saved model of this class from a folder or a Hub repo.

        config.json is data from whoever published the model: only this architecture's own declared arguments
        are taken from it, each checked for its type; the size it implies is checked against the family's
        parameter budget, and the weights file's names, shapes and dtypes against the architecture, all before
        any tensor is allocated. Loading is always strict, always on the CPU (move the model with `.to()`)."""
        model_id = str(pretrained_model_name_or_path)
        download = {"revision": revision, "cache_dir": cache_dir, "force_download": force_download,
                    "local_files_only": local_files_only, "token": token}
        config = read_config(model_id, **download)
        return cls._from_config(model_id, config, download, model_kwargs)

    @classmethod
    def _from_config(cls, model_id: str, config, download: dict, model_kwargs: dict):
        where = f"config.json of {model_id!r}"
        arguments = checked_arguments(cls, config, where=where)
        arguments.update(checked_arguments(cls, model_kwargs, where="the from_pretrained arguments"))
        _check_sizes(cls.architecture, arguments, where)  # before anything proportional to them is built
        weights_file = _resolve_weights(model_id, **download)
        with torch.device("meta"):  # the architecture the config describes, without allocating it
            try:
                skeleton = cls(**arguments)
            except (ValueError, TypeError, OverflowError, RuntimeError) as e:  # RuntimeError: torch's size overflow
                raise ModelConfigError(f"{where} describes no valid {cls.architecture}: {e}") from e
        _check_budget(cls.architecture, skeleton.num_parameters(), where)
        _check_weights_header(skeleton, weights_file)
        model = cls(**arguments)
        load_weights(model, weights_file)
        model.eval()
        return model


#: config.json keys tinyhub writes for readers that are not constructor arguments.
RECORD_ONLY_KEYS = ("architecture", "num_parameters")
#: How each annotated constructor argument is checked, and the type named in the error.
_ARGUMENT_TYPES = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
    "tuple[float, ...]": ("a list of numbers", lambda v: isinstance(v, (list, tuple)) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)),
    "dict[str, str] | None": ("an object of strings (or null)", lambda v: v is None or (
        isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()))),
}


def declared_arguments(cls) -> dict[str, str]:
    """The constructor arguments of a family, with their annotations: its own and the shared ones."""
    arguments = {}
    for klass in (TinyClassifier, cls):
        for name, p in inspect.signature(klass.__init__).parameters.items():
            if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                arguments[name] = p.annotation if isinstance(p.annotation, str) else getattr(
                    p.annotation, "__name__", str(p.annotation))
    return arguments


def checked_arguments(cls, config, *, where: str) -> dict:
    """The constructor arguments in `config`, each one declared by `cls` and of its declared type."""
    if not isinstance(config, dict):
        raise ModelConfigError(f"{where} must be a JSON object of constructor arguments, not {type(config).__name__}.")
    declared = declared_arguments(cls)
    if config.get("architecture", cls.architecture) != cls.architecture:
        raise ModelConfigError(f"{where} is for architecture {config['architecture']!r}, not {cls.architecture!r}; "
                               "load it with tinyhub.from_pretrained, which picks the class from config.json.")
    arguments = {}
    for key, value in config.items():
        if key in RECORD_ONLY_KEYS:
            continue
        if key not in declared:
            raise ModelConfigError(
                f"{where} has the key {key!r}, which is not an argument of {cls.architecture} (its arguments: "
                f"{', '.join(sorted(declared))}). tinyhub passes nothing else on; remove the key.")
        what, ok = _ARGUMENT_TYPES[declared[key]]
        if not ok(value):
            raise ModelConfigError(f"{where}: {key!r} must be {what}, not {json.dumps(value)[:60]}.")
        if declared[key] == "int" and value < 1:
            raise ModelConfigError(f"{where}: {key!r} must be at least 1, not {value}.")
        arguments[key] = value
    return arguments


#: A saved model may exceed its family's budget (more channels, larger inputs and more classes grow the first layer
#: and the head), but not by more than this factor: a config.json describing far more is refused unbuilt.
LOAD_BUDGET_FACTOR = 4


def _check_budget(architecture: str, n_params: int, where: str) -> None:
    budget = model_info(architecture)["param_budget"]
    if budget is not None and n_params > LOAD_BUDGET_FACTOR * budget:
        raise ModelConfigError(f"{where} describes a {architecture} with {n_params:,} parameters, over "
                               f"{LOAD_BUDGET_FACTOR}x the family's budget of {budget:,}; refusing to build it.")


def _check_sizes(architecture: str, arguments: dict, where: str) -> None:
    """Every integer argument (classes, channels, widths, input size) and the label table within what a model of
    the family's budget can hold: each class, channel or unit costs at least one parameter, so no value above
    LOAD_BUDGET_FACTOR x the budget describes a model that would pass the budget check. Checked on the numbers,
    before a label table or a layer proportional to them exists."""
    budget = model_info(architecture)["param_budget"]
    if budget is None:
        return
    limit = LOAD_BUDGET_FACTOR * budget
    sizes = {k: v for k, v in arguments.items() if isinstance(v, int) and not isinstance(v, bool)}
    if isinstance(arguments.get("id2label"), dict):
        sizes["id2label (entries)"] = len(arguments["id2label"])
    for key, value in sizes.items():
        if value > limit:
            raise ModelConfigError(f"{where}: {key} = {value:,} cannot fit a {architecture} within {limit:,} "
                                   f"parameters ({LOAD_BUDGET_FACTOR}x the family's budget of {budget:,}); "
                                   "refusing to build it.")


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                       torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def _check_weights_header(model: nn.Module, weights_file: str) -> None:
    """Names, shapes and dtypes in the safetensors header against the model, before reading any tensor."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(weights_file, framework="pt") as f:
            found = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
    except SafetensorError as e:
        raise WeightsMismatchError(f"{weights_file} is not a readable safetensors file: {e}") from e
    expected = {k: (_SAFETENSORS_DTYPES.get(v.dtype, str(v.dtype)), tuple(v.shape))
                for k, v in model.state_dict().items()}
    _raise_on_mismatch(type(model).__name__, weights_file, found, expected)


def _raise_on_mismatch(model_name: str, weights_file: str, found: dict, expected: dict) -> None:
    """found/expected: name -> (dtype, shape). Names every missing, unexpected, mis-shaped or mis-typed key."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    common = sorted(set(found) & set(expected))
    shapes = [f"{k}: file {found[k][1]} vs model {expected[k][1]}" for k in common if found[k][1] != expected[k][1]]
    dtypes = [f"{k}: file {found[k][0]} vs model {expected[k][0]}" for k in common if found[k][0] != expected[k][0]]
    def some(items: list) -> str:  # a stranger's header may name a million tensors: a few, and how many
        shown = ", ".join(str(i)[:80] for i in items[:3])
        return f"{shown}" + (f" and {len(items) - 3:,} more" if len(items) > 3 else "")

    problems = []
    if missing:
        problems.append(f"missing keys: {some(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {some(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {some(shapes)}")
    if dtypes:
        problems.append(f"dtype mismatches: {some(dtypes)}")
    if problems:
        raise WeightsMismatchError(
            f"Weights in {weights_file} do not match {model_name}: " + "; ".join(problems)
            + ". Check that config.json and model.safetensors come from the same save_pretrained call."
        )


def load_weights(model: nn.Module, weights_file: str) -> None:
    """Load a safetensors file into `model` strictly, naming every missing, unexpected, mis-shaped or mis-typed key."""
    state = load_file(weights_file, device="cpu")
    expected = model.state_dict()
    _raise_on_mismatch(type(model).__name__, weights_file,
                       {k: (v.dtype, tuple(v.shape)) for k, v in state.items()},
                       {k: (v.dtype, tuple(v.shape)) for k, v in expected.items()})
    model.load_state_dict(state, strict=True)


def _refuse_pickles(files: list[str], where: str) -> None:
    pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise PickleRefusedError(
            f"{where} has no {WEIGHTS_NAME}, only pickled weights {pickles}. tinyhub never loads pickles: "
            "unpickling runs arbitrary code. Ask the owner to re-save with save_pretrained (safetensors), or "
            "convert a file you trust yourself with safetensors.torch.save_file."
        )
    raise FileNotFoundError(f"{where} has no {WEIGHTS_NAME}; files present: {sorted(files)}")


def _resolve_weights(model_id: str, *, revision, cache_dir, force_download, local_files_only, token) -> str:
    if os.path.isdir(model_id):
        path = os.path.join(model_id, WEIGHTS_NAME)
        if not os.path.isfile(path):
            _refuse_pickles(os.listdir(model_id), f"Folder {model_id!r}")
        return path
    use_hub_timeouts()
    try:
        return hf_hub_download(
            repo_id=model_id, filename=WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
            force_download=force_download, token=token, local_files_only=local_files_only,
        )
    except EntryNotFoundError:
        files = list_repo_files(model_id, revision=revision, token=token)
        _refuse_pickles(files, f"Repo {model_id!r} (revision {revision or 'main'})")
        raise


def read_config(model_id: str, *, revision=None, cache_dir=None, force_download=False,
                local_files_only=False, token=None) -> dict:
    """config.json of a local folder or a Hub repo, as a dict."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Folder {model_id!r} has no {CONFIG_NAME}; save models with save_pretrained (or pass a run "
                "directory's model/ folder)."
            )
    else:
        use_hub_timeouts()
        path = hf_hub_download(
            repo_id=model_id, filename=CONFIG_NAME, revision=revision, cache_dir=cache_dir,
            force_download=force_download, token=token, local_files_only=local_files_only,
        )
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ModelConfigError(f"{path} is not valid JSON ({e}); re-save the model with save_pretrained.") from e
        except RecursionError as e:  # a stranger's file nested thousands deep: one line, not a 44-line traceback
            raise ModelConfigError(f"{path} nests deeper than any model's config.json; it is not one (re-save the "
                                   "model with save_pretrained).") from e
