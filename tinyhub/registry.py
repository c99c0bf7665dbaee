"""tinyhub's extension points, kept as timm keeps its models: one registry per kind of thing, name -> implementation.

    OPTIMIZERS, SCHEDULERS   the training step's (tinyhub.trainer.step)
    TRACKERS                 what `report_to` logs to (Accelerate's trackers)
    DATA_SOURCES             where `data.source` reads a dataset (tinyhub.trainer.data)
    EXPORT_FORMATS           what `tinyhub export --formats` writes (tinyhub.cards.export)

A name's implementation is written "module:attribute" and imported when the name is first used, so validating a
configuration, listing choices or printing --help imports nothing heavy. The configuration's choices, its
validation, the reference pages and the card text all read the names and their help from here.

A package adds its own from outside tinyhub with an entry point in the registry's group, e.g. in its setup.cfg:

    [options.entry_points]
    tinyhub.data_sources =
        parquet = my_package.sources:load_parquet
    tinyhub.export_formats =
        coreml = my_package.exports:export_coreml

Built-in names win over an entry point of the same name (a plugin cannot replace a built-in by accident).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib import metadata

from tinyhub.errors import UsageError


class UnknownNameError(UsageError, ValueError):
    """A name that no built-in and no installed plugin registers."""


@dataclass(frozen=True)
class Entry:
    name: str
    target: object  # "module:attribute", or the object itself
    help: str = ""  # one line: what it is, as the reference and --help print it
    origin: str = "tinyhub"  # the distribution that registers it

    def load(self):
        if not isinstance(self.target, str):
            return self.target
        module, _, attribute = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attribute.split(".") if attribute else ():
            obj = getattr(obj, part)
        return obj


class Registry:
    def __init__(self, kind: str, group: str, builtins: dict[str, tuple[str, str]] | None = None):
        self.kind = kind  # "data source": how messages name one
        self.group = group  # the entry-point group plugins declare theirs in
        self._builtin = {name: Entry(name, target, text) for name, (target, text) in (builtins or {}).items()}
        self._added: dict[str, Entry] = {}
        self._installed: dict[str, Entry] | None = None  # the plugins' entry points, read once per process

    def register(self, name: str, target=None, *, help: str = ""):
        """Add `name` at run time (a notebook, a test); used bare, it is a decorator of the implementation."""
        def add(obj):
            self._added[name] = Entry(name, obj, help or _first_line(obj), "registered at run time")
            return obj

        return add if target is None else add(target)

    def unregister(self, name: str) -> None:
        self._added.pop(name, None)

    def entries(self) -> dict[str, Entry]:
        """Every name: the built-ins, then those added at run time, then the installed plugins'."""
        out = dict(self._builtin)
        for name, entry in self._added.items():
            out.setdefault(name, entry)
        if self._installed is None:  # reading every distribution's metadata costs milliseconds: once is enough
            self._installed = {ep.name: Entry(ep.name, ep.value, "", getattr(ep.dist, "name", None) or "a plugin")
                               for ep in metadata.entry_points(group=self.group)}
        for name, entry in self._installed.items():
            out.setdefault(name, entry)
        return out

    def names(self) -> tuple[str, ...]:
        return tuple(self.entries())

    def get(self, name: str):
        """The implementation of `name`, imported now; an unknown name is an error that lists the known ones."""
        entries = self.entries()
        if name not in entries:
            close = difflib.get_close_matches(str(name), list(entries), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UnknownNameError(f"{name!r} is not a {self.kind}{hint}: choose {choice_text(entries)}. A package "
                                   f"adds one through the entry-point group {self.group!r}.")
        return entries[name].load()

    def help(self, name: str) -> str:
        entry = self.entries()[name]
        return entry.help or _first_line(entry.load())


def choice_text(names) -> str:
    """"a, b or c"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"


def _first_line(obj) -> str:
    """An implementation's own `help` text, else the first line of its docstring."""
    own = getattr(obj, "help", None)
    if isinstance(own, str) and own:
        return own
    return ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]


OPTIMIZERS = Registry("optimizer", "tinyhub.optimizers", {
    "sgd": ("tinyhub.trainer.step:sgd", "SGD, with momentum and optional Nesterov"),
    "adam": ("tinyhub.trainer.step:adam", "Adam"),
    "adamw": ("tinyhub.trainer.step:adamw", "AdamW (decoupled weight decay)"),
})
SCHEDULERS = Registry("learning-rate schedule", "tinyhub.schedulers", {
    "none": ("tinyhub.trainer.step:constant", "a constant learning rate"),
    "step": ("tinyhub.trainer.step:step_decay", "decays by gamma every step_size epochs"),
    "onecycle": ("tinyhub.trainer.step:one_cycle", "warms up to max_lr, then anneals (every step)"),
    "cosine": ("tinyhub.trainer.step:cosine", "cosine from the optimizer's rate down to min_lr (every step)"),
    "plateau": ("tinyhub.trainer.step:plateau", "decays by gamma when validation accuracy stalls"),
})
TRACKERS = Registry("tracker", "tinyhub.trackers", {
    "none": ("", "no experiment tracker"),
    "tensorboard": ("tensorboard", "TensorBoard event files in the run directory"),
    "wandb": ("wandb", "Weights & Biases"),
    "trackio": ("trackio", "trackio, local-first"),
})
DATA_SOURCES = Registry("data source", "tinyhub.data_sources", {
    "local": ("tinyhub.trainer.data.idx:idx_source", "four IDX files named like MNIST's in data.dir"),
    "hub": ("tinyhub.trainer.data.hub:hub_source",
            "a Hub dataset (data.dataset), or a folder saved with DatasetDict.save_to_disk"),
    "folder": ("tinyhub.trainer.data.folder:folder_source",
               "image files in one folder per class (data.path), or train/ and test/ folders above them"),
    "csv": ("tinyhub.trainer.data.arrays:csv_source",
            "a CSV of pixels, label first (data.path: one file, or a folder with train.csv and test.csv)"),
    "npz": ("tinyhub.trainer.data.arrays:npz_source", "NumPy arrays x_train, y_train, x_test, y_test (data.path)"),
})
EXPORT_FORMATS = Registry("export format", "tinyhub.export_formats", {
    "onnx": ("tinyhub.cards.export:export_onnx_float", "ONNX float32"),
    "int8": ("tinyhub.cards.export:export_onnx_int8", "ONNX int8 (static, QDQ)"),
})
