"""timm-style registry: `register_model`, `create_model(name, **kwargs)`, `list_models()`."""

from __future__ import annotations

import difflib
import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinyhub.errors import UsageError

from .catalog import CATALOG

if TYPE_CHECKING:  # only a type here: the base class imports this module, never the other way round
    from ._base import TinyClassifier


class UnknownModelError(UsageError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ModelArgumentError(UsageError, TypeError):
    """A model was given an argument its architecture does not take, or a value out of the argument's range
    (then `argument` names it and the message starts "<argument>=<value>:")."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument


class ParameterBudgetError(UsageError, ValueError):
    """A model has more parameters than its declared budget."""


@dataclass(frozen=True)
class _Entry:
    cls: type[TinyClassifier]
    param_budget: int | None
    design: str  # where the design comes from, for cards and docs


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, param_budget: int | None = None, design: str = ""):
    """Class decorator: make `cls` available as `create_model(name)`. A packaged architecture's budget and design
    come from modeling/catalog.py; a model of your own gives them here."""
    if name in CATALOG:
        if param_budget is not None or design:
            raise ValueError(f"model {name!r} is packaged: its budget and design are in modeling/catalog.py")
        param_budget, design = CATALOG[name].param_budget, CATALOG[name].design

    def wrap(cls: type[TinyClassifier]) -> type[TinyClassifier]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        cls.architecture = name
        _REGISTRY[name] = _Entry(cls, param_budget, design)
        return cls

    return wrap


def list_models() -> list[str]:
    """The registered architectures' names, sorted: what `create_model` and `model=<name>` accept."""
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[TinyClassifier]:
    return _entry(name).cls


def model_info(name: str) -> dict:
    """A registered architecture's name, class name, parameter budget and design (where it comes from)."""
    entry = _entry(name)
    return {"name": name, "class": entry.cls.__name__, "param_budget": entry.param_budget, "design": entry.design}


def model_arguments(name: str) -> list[str]:
    """The keyword arguments an architecture takes (its own, then the ones every TinyClassifier takes): what
    `create_model(name, **kwargs)` and a recipe's `model.<key>` accept besides `name` and `param_budget`."""
    found: list[str] = []
    for cls in _entry(name).cls.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None or cls is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in found:
                found.append(p.name)
    return found


#: The families' shared size and regularisation arguments: (smallest, largest or None, the largest excluded?,
#: whole number?). The layers would take some bad values silently (a NaN or negative dropout turns it off).
_ARGUMENT_LIMITS = {"dropout": (0.0, 1.0, True, False), "width": (0.0, None, False, False),
                    "stem": (1, None, False, True)}


def check_model_arguments(name: str, kwargs: dict) -> None:
    """ModelArgumentError naming the first of `kwargs` that architecture `name` does not take (with the nearest),
    or the first shared argument (dropout, width, stem) out of its range ("dropout=1.5: must be ...")."""
    known = model_arguments(name)
    for key, value in kwargs.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ModelArgumentError(f"{name} takes no argument {key!r}{hint}; it takes: {', '.join(known)}.")
        if key in _ARGUMENT_LIMITS:
            low, high, high_open, whole = _ARGUMENT_LIMITS[key]
            ok = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value >= low and (value > low or key != "width")
            ok = ok and (high is None or (value < high if high_open else value <= high))
            if not ok:
                bounds = f"from {low:g}" if key != "width" else "above 0"
                bounds += f" {'below' if high_open else 'up to'} {high:g}" if high is not None else ""
                raise ModelArgumentError(f"{key}={value!r}: {name} needs {'a whole number' if whole else 'a number'}"
                                         f" {bounds}.", argument=key)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownModelError(f"Unknown model {name!r}. Available models: {', '.join(list_models())}.{hint}")
    return _REGISTRY[name]


def create_model(name: str, *, param_budget: int | None = None, **kwargs) -> TinyClassifier:
    """Build a registered model.

    `param_budget` (or the budget the family registered) caps the parameter count: a model over it raises
    ParameterBudgetError instead of silently training something bigger than intended.
    """
    entry = _entry(name)
    check_model_arguments(name, {k: v for k, v in kwargs.items() if k not in ("mean", "std", "id2label")})
    model = entry.cls(**kwargs)
    budget = param_budget if param_budget is not None else entry.param_budget
    n = model.num_parameters()
    shape = "x".join(str(v) for v in model.expected_input_shape)
    model_args = {k: v for k, v in kwargs.items() if k not in ("mean", "std", "id2label")}
    if budget is not None and n > budget:
        raise ParameterBudgetError(
            f"{name} with {model_args or 'default arguments'} at input {shape} has {n:,} parameters, over its budget "
            f"of {budget:,}. Reduce its width/channels, or raise the budget (model.param_budget={n})."
        )
    return model
