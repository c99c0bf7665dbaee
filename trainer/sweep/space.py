"""`hpo.space`: the parameters a sweep searches, checked against the training configuration, and Tune's domains.

    hpo:
      space:
        lr: {type: loguniform, low: 0.01, high: 0.3}          # the learning rate that drives training
        model.dropout: {type: choice, values: [0.0, 0.05]}
        augment: {rotation: {type: uniform, low: 0, high: 15}}  # nested sections name dotted keys too

Every check runs without Ray and names the entry and the fix: an unknown type or field, a key the recipe lacks
(with the closest keys), a section instead of a value, an option the sweep fixes, a learning rate that has no
effect under the schedule, a key named twice.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..config import plain_value
from ..schema import ConfigError, TrainConfig, declared, typed_config

#: Parameter types of `hpo.space` and the fields each one takes.
SPACE_TYPES = {"loguniform": ("low", "high"), "uniform": ("low", "high"), "randint": ("low", "high"),
               "choice": ("values",), "grid": ("values",)}
#: `lr` in the space means the learning rate that actually drives training (see `_resolve_alias`).
LR_ALIAS = "lr"
#: Options a sweep fixes for every trial (declared `not_searched`, with why); searching them would make trials
#: incomparable or break the sweep.
NOT_SEARCHABLE = {d.key: d.facts.not_searched for d in declared(TrainConfig) if d.facts.not_searched}
#: The optimizer's learning rate: the setting a schedule may replace (declared `replaced_by_schedules`).
_OPTIMIZER_LR = next(d.key for d in declared(TrainConfig) if d.facts.replaced_by_schedules)
NOT_SEARCHABLE_SECTIONS = ("hpo", "run", "hydra")


class SweepConfigError(ConfigError):
    """The sweep configuration (the `hpo` section or what it asks of the training config) is unusable."""


@dataclass
class Param:
    """One searched config key."""

    key: str                      # dotted config key the sampled value is written to
    type: str                     # loguniform | uniform | randint | choice | grid
    low: float | int | None = None
    high: float | int | None = None
    values: list | None = None
    alias: str | None = None      # "lr" when written as the alias

    def as_dict(self) -> dict:
        out = {"type": self.type, **({"values": self.values} if self.values is not None else
                                     {"low": self.low, "high": self.high})}
        return {**out, "alias": self.alias} if self.alias else out


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    return [k for key, v in node.items() for k in
            (_leaf_keys(v, f"{prefix}{key}.") if isinstance(v, dict) else [f"{prefix}{key}"])]


def _lookup(cfg: dict, key: str):
    """(found, value) of a dotted key in a nested dict."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _flatten_space(space, prefix: str = "") -> list[tuple[str, dict]]:
    """hpo.space -> [(dotted key, spec)]. A spec is a mapping with `type`; null entries are switched off."""
    out = []
    for k, v in space.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and "type" in v:
            out.append((key, v))
        elif isinstance(v, dict):
            out += _flatten_space(v, key + ".")
        elif v is not None:
            raise SweepConfigError(f"hpo.space.{key}={v!r}: a searched parameter is a mapping such as "
                                   f"{{type: choice, values: [32, 64]}} (null switches it off).")
    return out


def _parse_param(key: str, spec: dict) -> Param:
    where, kind = f"hpo.space.{key}", spec.get("type")
    if kind not in SPACE_TYPES:
        raise SweepConfigError(f"{where}: unknown type {kind!r}; choose one of {', '.join(SPACE_TYPES)}.")
    extra = sorted(set(spec) - set(SPACE_TYPES[kind]) - {"type"})
    if extra:
        raise SweepConfigError(f"{where}: {kind} takes {', '.join(SPACE_TYPES[kind])}, not {', '.join(extra)}.")
    missing = [f for f in SPACE_TYPES[kind] if spec.get(f) is None]
    if missing:
        raise SweepConfigError(f"{where}: {kind} needs {', '.join(missing)}.")
    if kind in ("choice", "grid"):
        if not isinstance(spec["values"], (list, tuple)) or not spec["values"]:
            raise SweepConfigError(f"{where}: {kind} needs a non-empty list of values, got {spec['values']!r}.")
        return Param(key, kind, values=[plain_value(v) for v in spec["values"]])
    low, high = spec["low"], spec["high"]
    kinds = (int,) if kind == "randint" else (int, float)
    if not all(isinstance(v, kinds) and not isinstance(v, bool) for v in (low, high)):
        what = "integers" if kind == "randint" else "numbers"
        raise SweepConfigError(f"{where}: low and high must be {what}, got low={low!r} high={high!r}.")
    if not low < high:
        raise SweepConfigError(f"{where}: low={low} must be less than high={high}.")
    if kind == "loguniform" and low <= 0:
        raise SweepConfigError(f"{where}: loguniform needs 0 < low (got low={low}); use uniform for ranges "
                               "that include zero.")
    return Param(key, kind, low=low, high=high)


def _resolve_alias(param: Param, base: dict) -> Param:
    """`lr` -> the learning rate that drives training; and refuse a learning rate that would have no effect."""
    onecycle = typed_config(base, validate=False).training.scheduler.name.lower() == "onecycle"
    if param.key == LR_ALIAS:
        param.alias = LR_ALIAS
        param.key = "training.scheduler.max_lr" if onecycle else _OPTIMIZER_LR
    elif param.key == _OPTIMIZER_LR and onecycle:
        raise SweepConfigError(
            "hpo.space.training.optimizer.lr has no effect with training.scheduler.name=onecycle (OneCycleLR sets "
            "the learning rate from training.scheduler.max_lr). Search `lr` (the effective learning rate) or "
            "training.scheduler.max_lr instead, or choose another schedule.")
    return param


def _check_key(param: Param, base: dict) -> None:
    key, where = param.key, f"hpo.space.{param.alias or param.key}"
    if key.split(".")[0] in NOT_SEARCHABLE_SECTIONS:
        raise SweepConfigError(f"{where}: the {key.split('.')[0]} section configures the sweep itself and "
                               "cannot be searched.")
    if key in NOT_SEARCHABLE:
        raise SweepConfigError(f"{where}: cannot be searched: {NOT_SEARCHABLE[key]}.")
    found, value = _lookup(base, key)
    if not found:
        close = difflib.get_close_matches(key, _leaf_keys(base), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise SweepConfigError(
            f"{where}: {key!r} is not a key of the training configuration "
            f"(model={typed_config(base, validate=False).model_name}).{hint} "
            f"Keys the recipe lacks can be added first, e.g. +{key}=VALUE.")
    if isinstance(value, dict):
        raise SweepConfigError(f"{where}: {key!r} is a config section, not a value; search one of its keys "
                               f"({', '.join(list(value)[:6])}).")


def parse_space(space, base: dict) -> list[Param]:
    """Validate `hpo.space` against the composed training config; returns the parameters in order."""
    if not space:
        raise SweepConfigError(
            "hpo.space is empty: nothing to search. Add parameters, e.g. "
            "'+hpo.space.training.optimizer.lr={type:loguniform,low:1e-4,high:1e-2}'.")
    entries = _flatten_space(space)
    if not entries:
        raise SweepConfigError("hpo.space is empty: every parameter is switched off (null). Add at least one, "
                               "e.g. '+hpo.space.model.dropout={type:uniform,low:0,high:0.3}'.")
    params, seen = [], {}
    for key, spec in entries:
        param = _resolve_alias(_parse_param(key, spec), base)
        _check_key(param, base)
        if param.key in seen:
            raise SweepConfigError(f"hpo.space names {param.key!r} twice (as {seen[param.key]!r} and {key!r}).")
        seen[param.key] = key
        params.append(param)
    return params


def tune_space(params: list[Param]) -> dict:
    """Tune's search space: one domain per parameter, keyed by its dotted config key."""
    from ray import tune

    make = {"loguniform": lambda p: tune.loguniform(p.low, p.high), "uniform": lambda p: tune.uniform(p.low, p.high),
            "randint": lambda p: tune.randint(p.low, p.high + 1),  # Ray's upper bound is exclusive; ours is not
            "choice": lambda p: tune.choice(list(p.values)), "grid": lambda p: tune.grid_search(list(p.values))}
    return {p.key: make[p.type](p) for p in params}
