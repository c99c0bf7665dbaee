"""Compose a training configuration in Python, exactly as `tinyhub train` would from the command line."""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

from omegaconf import DictConfig

from . import schema as schema_module  # registers the configuration schema with Hydra's ConfigStore
from .schema import ConfigError, override_text


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train",
            config_dir: str | Path | None = None) -> DictConfig:
    """Hydra's composition of a recipe with `overrides`, exactly as the command line composes it: the DictConfig
    that load_config types and checks.

    With `config_dir` (like `--config-dir` on the command line) the recipe is looked up there first and can build
    on the packaged ones: `defaults: [train, {override /model: net24k}, _self_]`.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module

    overrides = list(overrides)
    if config_dir is not None:
        ctx = initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None)
        overrides.append("hydra.searchpath=[pkg://tinyhub.trainer.recipes]")
    else:
        ctx = initialize_config_module("tinyhub.trainer.recipes", version_base=None)
    with ctx:
        return hydra_compose(config_name=config_name, overrides=overrides)


def load_config(recipe: str | list[str] | tuple[str, ...] = (), *overrides: str, config_name: str = "train",
                config_dir: str | Path | None = None, **sections) -> schema_module.TrainConfig:
    """A recipe as the TrainConfig that `train` takes, composed once and checked once:

        load_config("model4", training={"epochs": 2}, data={"subset": 2000})
        load_config("model4", "training.epochs=2", "data.subset=2000")       # overrides as on the command line
        load_config(["model=model4", "training.epochs=2"])                    # a list of them

    `recipe` names a packaged (or --config-dir) model recipe; `sections` set any key of a section, nested as the
    configuration is. With config_name="sweep" the result is a SweepConfig (the training recipe and `hpo`).
    A problem is a ConfigError naming the key and the fix.
    """
    given = [f"model={recipe}"] if isinstance(recipe, str) else list(recipe)
    given += [*overrides, *_section_overrides(sections)]
    composed = compose(given, config_name=config_name, config_dir=config_dir)
    if "hpo" in composed:
        from omegaconf import OmegaConf

        from .sweep import SweepConfigError

        values = OmegaConf.to_container(composed, resolve=True)
        values.pop("hydra", None)
        return schema_module.checked(schema_module.SweepConfig, values, error=SweepConfigError)
    return schema_module.typed_config(composed)


def _section_overrides(sections: dict, prefix: str = "") -> list[str]:
    """{"training": {"epochs": 2}} -> ["++training.epochs=2"] (++: set, or add in the open model section)."""
    out = []
    for key, value in sections.items():
        if isinstance(value, dict) and value:
            out += _section_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"++{prefix}{key}={override_text(value)}")
    return out


def model_group(model_name: str) -> str | None:
    """The packaged recipe (trainer/recipes/model/<name>.yaml) of a model, if it has one."""
    from . import recipes

    folder = Path(recipes.__file__).resolve().parent / "model"
    return model_name if (folder / f"{model_name}.yaml").is_file() else None


def compose_baseline(group: str | None) -> dict:
    """train.yaml + model/<group>.yaml, as a recipe's defaults list composes them: what a run's recorded
    overrides are the difference from. Worked out once per process and recipe (a stack's seeds, a notebook's
    runs), handed out as a copy."""
    import copy

    return copy.deepcopy(_baseline(group))


@functools.lru_cache(maxsize=None)
def _baseline(group: str | None) -> dict:
    # Merged here rather than composed by Hydra a second time: train.yaml's defaults list is the schema, its own
    # body, then one `@package _global_` model file, which is what these merges do (a test holds the two equal for
    # every packaged recipe), in a fiftieth of a composition.
    from omegaconf import OmegaConf

    from . import recipes

    folder = Path(recipes.__file__).resolve().parent
    train = OmegaConf.load(folder / "train.yaml")
    defaults = [entry for entry in train.pop("defaults") if isinstance(entry, DictConfig) and "model" in entry]
    train.pop("hydra", None)
    model = OmegaConf.load(folder / "model" / f"{group or defaults[0].model}.yaml")
    merged = OmegaConf.merge(OmegaConf.structured(schema_module.TrainConfig), train, model)
    return OmegaConf.to_container(merged, resolve=True)


#: Keys that say where this machine keeps things or how it printed, not what was trained (declared `machine`).
MACHINE_KEYS = (*schema_module.keys_where(schema_module.TrainConfig, "machine"), "hydra")


def recipe_overrides(cfg: dict) -> list[str]:
    """The Hydra overrides that turn the packaged recipe of `cfg`'s model into `cfg`, machine paths left out:
    `tinyhub train model=<name> <these>` trains the same recipe anywhere."""
    typed = schema_module.typed_config(cfg, validate=False)
    group = model_group(typed.model_name)
    out = [f"model={group}" if group else f"model.name={typed.model_name}", f"seed={typed.seed}"]  # always said
    # `seeds` (trained beside other seeds, trainer/stack.py) is left out: seed=N alone trains the same model. The
    # settings its optimizer and schedule ignore are not in the record, and need no override either way.
    inert = tuple(schema_module.inert_settings(typed))
    for key, ours, base in differences(cfg, compose_baseline(group),
                                       ignore=(*MACHINE_KEYS, "model.name", "seed", "seeds", *inert)):
        if ours is _ABSENT:
            out.append(f"~{key}")
        else:
            out.append(f"{'+' if base is _ABSENT else ''}{key}={override_text(ours)}")
    return out


#: What may change when a run is resumed: where things are and how it reports, never what it computes (declared
#: `machine` or `resumable`).
RESUME_MAY_CHANGE = (*MACHINE_KEYS, *schema_module.keys_where(schema_module.TrainConfig, "resumable"))
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
    return "(absent)" if value is _ABSENT else override_text(value)


# ---------------------------------------------------------------------------------------------------------
# A configuration Hydra cannot compose, said in one line with the fix
# ---------------------------------------------------------------------------------------------------------
def check_composes(overrides: list[str], *, config_name: str = "train", config_dir: str | None = None,
                   schema: type | None = None):
    """Compose the configuration as the command line gives it, once, and return (the composition, its training
    recipe as a checked TrainConfig); or raise ConfigError (one line, with the fix) when Hydra cannot compose it
    (an unknown recipe, key or section, a value of the wrong type, an override it cannot read) or when a value is
    out of range, a choice unknown, or a setting would be ignored (schema.check_values)."""
    groups = [value for key, value in map(_split_override, overrides) if key.lstrip("+~") == "model"]
    if len(groups) > 1:  # Hydra would train the last one without a word
        raise ConfigError(f"model= is given {len(groups)} times ({', '.join(groups)}): give one recipe.")
    if config_dir is not None and not Path(config_dir).is_dir():
        raise ConfigError(f"--config-dir {config_dir!r} is not a folder: give the folder that holds your recipe "
                          "(the .yaml file named by --config-name).")
    try:
        composed = compose(overrides, config_name=config_name, config_dir=config_dir)
    except Exception as e:  # noqa: BLE001 - every composition failure is the user's configuration
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        if not isinstance(e, (HydraException, OmegaConfBaseException)):
            raise
        error = explain_composition_error(e, overrides, schema or schema_module.TrainConfig)
        key = _failing_key(e)
        if key and not any(_split_override(o)[0] == key for o in overrides):  # it is in a recipe file, not typed
            error = ConfigError(f"the recipe {config_name!r}{f' in {config_dir}' if config_dir else ''}: {error}")
        raise error from e
    if "hpo" in composed:  # a sweep: its own settings first (the training part may take its values from them)
        from omegaconf import OmegaConf

        hpo = schema_module.checked(schema_module.HpoConfig, OmegaConf.to_container(composed.hpo, resolve=True), "hpo.")
        schema_module.check_hpo(hpo)
    return composed, schema_module.typed_config(composed)  # every value and relation, checked as it is composed


def explain_composition_error(error: BaseException, overrides: list[str], schema: type) -> ConfigError:
    """Hydra's multi-line report of a failed composition as tinyhub's one line: what is wrong, and the fix."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    given = dict(_split_override(o) for o in overrides)
    if isinstance(error, MissingConfigException):
        group, _, option = (error.missing_cfg_file or "").rpartition("/")
        if not group:
            return ConfigError(f"no recipe named {option!r} (--config-name): the packaged ones are train and sweep; "
                               "a recipe of your own goes in a folder named with --config-dir.")
        options = list(error.options or _group_options(group))
        close = difflib.get_close_matches(option.lower(), options, n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(f'{group}={c}' for c in close)}?)" if close else ""
        also = (" model.name=NAME trains any architecture of `tinyhub list-models` with the default recipe."
                if group == "model" else "")
        return ConfigError(f"{group}={given.get(group, option)}: there is no such recipe{hint}; the {group} recipes "
                           f"are {', '.join(options)}.{also}")
    if isinstance(error, OverrideParseException):
        bad = _unreadable_override(overrides)
        what = f"the override {bad!r}" if bad else "the overrides"
        return ConfigError(f"cannot read {what} ({str(error).splitlines()[0]}): write key=value, with a list as "
                           "[a,b] and a value holding spaces or brackets in quotes: key='a b'.")
    cause = _omegaconf_cause(error)
    key = _failing_key(error)
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and key:
        if key.startswith("model."):
            return _unknown_model_argument(key, given)
        section = schema_module.open_section(schema, key)
        if section:  # a section of the user's own keys: adding one is what `+` is for
            return ConfigError(f"{key}: the recipe sets no {key.removeprefix(section + '.')} under {section}; add "
                               f"it with +{key}={given.get(key, 'VALUE')}.")
        return ConfigError(schema_module.unknown_setting_message(key, schema))
    if isinstance(cause, ValidationError) and key:
        return ConfigError(schema_module.wrong_value_message(key, given.get(key, "?"), schema))
    text = str(error)
    appended = re.match(r"Could not append to config\. An item is already at '([^']+)'", text)
    if appended:
        key = appended.group(1)
        return ConfigError(f"+{key}: the recipe already sets {key}; write {key}={given.get(key, 'VALUE')} "
                           "(without the +).")
    if text.startswith("Ambiguous value for argument"):
        bad = text.split("'")[1] if "'" in text else "key=a,b"
        return ConfigError(f"{bad}: one value per setting; write a list as [a,b] (to try several values, run "
                           "`tinyhub sweep`).")
    return ConfigError(" ".join(text.split("\n\n")[0].split()))


def _omegaconf_cause(error: BaseException):
    """The OmegaConf error under Hydra's, which names the key."""
    from omegaconf.errors import OmegaConfBaseException

    while error is not None and not isinstance(error, OmegaConfBaseException):
        error = error.__cause__ or error.__context__
    return error


def _failing_key(error: BaseException) -> str:
    return str(getattr(_omegaconf_cause(error), "full_key", "") or "")


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _group_options(group: str) -> list[str]:
    from . import recipes

    folder = Path(recipes.__file__).resolve().parent / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _unreadable_override(overrides: list[str]) -> str | None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception:  # noqa: BLE001 - the one Hydra cannot parse
            return override
    return None


def _unknown_model_argument(key: str, given: dict) -> ConfigError:
    """`model.<key>=` that the recipe does not set: an argument of the architecture may be added with `+`, anything
    else is named with the arguments it does take."""
    from tinyhub.modeling import UnknownModelError, model_arguments

    group = given.get("model")
    name = given.get("model.name") or (compose([f"model={group}"] if group else []).model.name)
    argument = key.split(".", 1)[1]
    try:
        known = model_arguments(name)
    except UnknownModelError as e:
        return ConfigError(str(e))
    if argument in known:
        return ConfigError(f"{key}: the {name} recipe does not set {argument}; add it with "
                           f"+{key}={given.get(key, 'VALUE')}.")
    close = difflib.get_close_matches(argument, known, n=1)
    hint = f" (did you mean model.{close[0]}?)" if close else ""
    return ConfigError(f"{key}: {name} takes no argument {argument!r}{hint}; it takes: {', '.join(known)}.")
