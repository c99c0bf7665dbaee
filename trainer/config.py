"""Compose a training configuration in Python, exactly as `tinyhub train` would from the command line."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from . import schema  # noqa: F401 - registers the configuration schema with Hydra's ConfigStore


def load_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train",
                config_dir: str | Path | None = None) -> DictConfig:
    """`load_config(["model=opt6k", "training.epochs=3"])` -> the resolved recipe as a DictConfig.

    With `config_dir` (like `--config-dir` on the command line) the recipe is looked up there first and can build
    on the packaged ones: `defaults: [train, {override /model: net24k}, _self_]`.
    """
    from hydra import compose, initialize_config_dir, initialize_config_module

    overrides = list(overrides)
    if config_dir is not None:
        ctx = initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None)
        overrides.append("hydra.searchpath=[pkg://tinyhub.trainer.recipes]")
    else:
        ctx = initialize_config_module("tinyhub.trainer.recipes", version_base=None)
    with ctx:
        return compose(config_name=config_name, overrides=overrides)


def model_group(model_name: str) -> str | None:
    """The packaged recipe (trainer/recipes/model/<name>.yaml) of a model, if it has one."""
    from . import recipes

    folder = Path(recipes.__file__).resolve().parent / "model"
    return model_name if (folder / f"{model_name}.yaml").is_file() else None


def compose_baseline(group: str | None) -> dict:
    """train.yaml + model/<group>.yaml, composed by Hydra exactly as a recipe's defaults list would be."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    overrides = [f"model={group}"] if group else []
    if GlobalHydra.instance().is_initialized():  # inside @hydra.main (tinyhub train/sweep): reuse its search path
        from hydra import compose

        cfg = compose(config_name="train", overrides=overrides)
    else:
        cfg = load_config(overrides)
    out = OmegaConf.to_container(cfg, resolve=True)
    out.pop("hydra", None)
    return out


#: Keys that say where this machine keeps things or how it printed, not what was trained.
MACHINE_KEYS = ("run", "progress", "data.dir", "data.cache_dir", "training.threads", "training.keep_freed_memory",
                "training.resume", "hydra")


def recipe_overrides(cfg: dict) -> list[str]:
    """The Hydra overrides that turn the packaged recipe of `cfg`'s model into `cfg`, machine paths left out:
    `tinyhub train model=<name> <these>` trains the same recipe anywhere."""
    name = cfg["model"]["name"]
    group = model_group(name)
    out = [f"model={group}" if group else f"model.name={name}", f"seed={cfg['seed']}"]  # always said
    # `seeds` (trained beside other seeds, trainer/stack.py) is left out: seed=N alone trains the same model.
    for key, ours, base in differences(cfg, compose_baseline(group),
                                       ignore=(*MACHINE_KEYS, "model.name", "seed", "seeds")):
        if ours is _ABSENT:
            out.append(f"~{key}")
        else:
            out.append(f"{'+' if base is _ABSENT else ''}{key}={_hydra_value(ours)}")
    return out


#: What may change when a run is resumed: where things are and how it reports, never what it computes.
RESUME_MAY_CHANGE = (*MACHINE_KEYS, "report_to", "tracker_project", "training.checkpoint_every",
                     "training.keep_checkpoints", "data.eval_batch_size")
_ABSENT = object()


def differences(a: dict, b: dict, *, ignore: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
    """(dotted key, value in a, value in b) wherever two configurations differ; a key that one of them lacks has
    the value `_ABSENT` there. A key in `ignore` is skipped with everything below it."""
    found = []

    def walk(prefix: str, x: dict, y: dict) -> None:
        for key in sorted(set(x) | set(y), key=str):
            dotted = f"{prefix}{key}"
            if dotted in ignore:
                continue
            xv, yv = x.get(key, _ABSENT), y.get(key, _ABSENT)
            if isinstance(xv, dict) and isinstance(yv, dict):
                walk(dotted + ".", xv, yv)
            elif xv != yv:
                found.append((dotted, xv, yv))

    walk("", a, b)
    return found


def set_dotted(cfg: dict, key: str, value) -> None:
    """cfg["a"]["b"]["c"] = value for key "a.b.c", creating the sections on the way."""
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def plain_value(value):
    """A sampled value as plain Python (Ray and numpy hand out numpy scalars; YAML and OmegaConf want builtins)."""
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value.item() if hasattr(value, "item") and not isinstance(value, dict) else value


def trial_config(base: dict, sampled: dict) -> dict:
    """The training config of one sweep trial: the sweep's config with the sampled values (dotted keys) written
    over it."""
    import copy

    cfg = copy.deepcopy(base)
    for key, value in sampled.items():
        set_dotted(cfg, key, plain_value(value))
    return cfg


def overridden(cfg: dict, baseline: dict, *, ignore: tuple[str, ...] = ()) -> dict:
    """The part of `cfg` that differs from `baseline`, as a nested dict (what a recipe on top of it must say)."""
    out: dict = {}
    for key, ours, _ in differences(cfg, baseline, ignore=ignore):
        if ours is not _ABSENT:
            set_dotted(out, key, ours)
    return out


def describe_value(value) -> str:
    return "(absent)" if value is _ABSENT else _hydra_value(value)


def _hydra_value(value) -> str:
    import json

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and not value.replace("_", "").replace("-", "").replace(".", "").isalnum():
        return json.dumps(value)
    return str(value)
