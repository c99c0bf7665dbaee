"""Every number of the configuration is checked before anything runs: a value that is not finite or is out of its
range is one ConfigError (exit 2 on the command line) naming the key and what is allowed, never a traceback from
torch after the data have loaded."""

import dataclasses
import math
import typing

import pytest
from omegaconf import OmegaConf

from conftest import FAST, REPO
from tinyhub import trainer
from tinyhub.trainer import schema
from tinyhub.trainer.record import load_run

RECIPE_MODELS = REPO / "trainer" / "recipes" / "model"


def _numeric_keys(cls, prefix=""):
    """The dotted keys of `cls` whose values are numbers, or lists of numbers."""
    found = {}
    for key in schema.setting_keys(cls):
        kind = schema._setting(cls, key)[0]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Union:
            kind, args = args[0], list(typing.get_args(args[0]))
        element = args[0] if typing.get_origin(kind) in (list, typing.List) else kind
        if element in (int, float) and kind is not bool:
            found[key] = (typing.get_origin(kind) in (list, typing.List), element)
    return found


def test_every_numeric_setting_has_a_limit():
    train = _numeric_keys(schema.TrainConfig)
    assert set(train) == {limit.key for limit in schema.TRAIN_LIMITS}
    hpo = {k: v for k, v in _numeric_keys(schema.SweepConfig).items() if k.startswith("hpo.")}
    assert set(hpo) == {limit.key for limit in schema.SWEEP_LIMITS}


def _bad_numbers(limit, element):
    values = [math.nan, math.inf, -math.inf] + ([2.5] if element is int else [])
    if limit.low is not None:
        values.append(limit.low if limit.low_open else limit.low - 1)
    if limit.high is not None:
        values.append(limit.high if limit.high_open else limit.high + 1)
    return values


def _cases():
    numeric = _numeric_keys(schema.TrainConfig)
    for limit in schema.TRAIN_LIMITS:
        is_list, element = numeric[limit.key]
        for bad in _bad_numbers(limit, element):
            if not is_list:
                yield limit.key, bad
            elif limit.key == "seeds":
                yield limit.key, [0, bad]
            else:
                yield limit.key, [bad, 0.5 if limit.high in (None, 1) or limit.high > 0.5 else limit.high]
                yield limit.key, [0.5, bad]
        if is_list and limit.key != "seeds":
            yield limit.key, [0.5]  # not two numbers
        if limit.ordered:
            yield limit.key, [0.6, 0.4]  # high below low


CASES = list(_cases())


@pytest.fixture(scope="module")
def base(mnist_dir, tmp_path_factory):
    cfg = trainer.load_config([*FAST, "model=model4", "training.epochs=1", "data.subset=64", f"data.dir={mnist_dir}"])
    return cfg, tmp_path_factory.mktemp("bad-values")


def test_the_generator_covers_every_limit():
    assert {key for key, _ in CASES} == {limit.key for limit in schema.TRAIN_LIMITS} and len(CASES) > 150


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_a_bad_number_is_refused_before_anything_runs(base, key, value):
    """A TrainConfig changed after it was checked (here by schema.with_values, as a sweep trial's is) is checked
    again by train(), before anything is written."""
    run_dir = base[1] / f"run-{abs(hash((key, str(value))))}"
    cfg = schema.with_values(base[0], {key: value, "run.dir": str(run_dir)})
    with pytest.raises(trainer.ConfigError, match=rf"^{key}"):
        trainer.train(cfg)
    assert not run_dir.exists()


@pytest.mark.parametrize("model, argument, value", [
    ("model4", "dropout", math.nan), ("model4", "dropout", 1.5), ("model4", "dropout", -0.1),
    ("minimobilenet", "width", math.nan), ("minimobilenet", "width", -1.0),
    ("gap8k", "stem", 0), ("gap8k", "width", -4),
])
def test_an_architecture_argument_it_cannot_take_is_refused_before_anything_runs(base, model, argument, value):
    root = base[1]
    cfg = dataclasses.replace(base[0], model={"name": model, "param_budget": None, argument: value},
                              run=schema.RunConfig(dir=str(root / f"model-{model}-{argument}-{value}")))
    with pytest.raises(trainer.ConfigError, match=rf"model.{argument}="):
        trainer.train(cfg)
    assert not (root / f"model-{model}-{argument}-{value}").exists()


@pytest.mark.parametrize("limit", schema.SWEEP_LIMITS, ids=[limit.key for limit in schema.SWEEP_LIMITS])
def test_a_bad_sweep_number_is_refused_before_ray_starts(limit, monkeypatch, tmp_path):
    import sys

    from tinyhub.trainer import sweep

    monkeypatch.setitem(sys.modules, "ray", None)  # nothing may start a trial
    element = float if limit.key in ("hpo.scheduler.reduction_factor", "hpo.resources.cpu", "hpo.resources.gpu") \
        else int
    from tinyhub.trainer.config import check_composes

    for bad in _bad_numbers(limit, element):
        overrides = [f"{limit.key}={bad}", f"hpo.dir={tmp_path / 's'}"]
        with pytest.raises(trainer.ConfigError) as refused:  # as `tinyhub sweep` composes and checks it
            check_composes(overrides, config_name="sweep", schema=schema.SweepConfig)
            sweep.prepare_sweep(trainer.load_config(overrides, config_name="sweep"))
        assert refused.value.exit_code == 2 and limit.key in str(refused.value), str(refused.value)


def test_a_sweep_refuses_a_bad_training_number_before_ray_starts(monkeypatch, tmp_path):
    import sys

    from tinyhub.trainer import sweep

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(trainer.ConfigError, match=r"training.optimizer.momentum=1.5"):
        sweep.prepare_sweep(trainer.load_config(["training.optimizer.momentum=1.5", f"hpo.dir={tmp_path / 's'}"],
                                                config_name="sweep"))


def test_settings_the_schedule_ignores_are_never_recorded_or_carded(tiny_runs):
    """Under onecycle the optimizer's lr does nothing: it is refused when set, left out of config.yaml, checkpoints
    and results.json, and the card states the schedule's peak instead; other ignored settings are noted and left
    out the same way."""
    import dataclasses

    from tinyhub.cards.card import _hyperparameters
    from tinyhub.trainer.record import load_run

    cfg = schema.typed_config(trainer.load_config(["model=model4"]))
    assert "training.optimizer.lr" in schema.inert_settings(cfg)
    recorded = schema.config_dict(cfg)
    assert "lr" not in recorded["training"]["optimizer"] and recorded["training"]["scheduler"]["max_lr"] == 0.24
    assert "step_size" not in recorded["training"]["scheduler"]  # onecycle does not read it either
    record = dataclasses.replace(load_run(tiny_runs[0]), recipe=cfg)
    rows = dict(_hyperparameters(record))
    assert "lr" not in rows["optimizer"].replace("max_lr", "") and "max_lr 0.24" in rows["scheduler"], rows
    with pytest.raises(schema.ConfigError, match="training.optimizer.lr=0.3 has no effect"):
        schema.typed_config(trainer.load_config(["model=model4", "training.optimizer.lr=0.3"]))
    adam = schema.typed_config(trainer.load_config(["model=model4", "training.optimizer.name=adam",
                                                    "training.scheduler.name=none"]))
    assert "training.optimizer.nesterov" in schema.ignored_settings(adam)  # the recipe's, noted by the run
    assert "nesterov" not in schema.config_dict(adam)["training"]["optimizer"]
    assert "lr 0.01" in schema.optimizer_text(adam) and "nesterov" not in schema.optimizer_text(adam)


def test_one_tinyhub_train_composes_the_configuration_once(mnist_dir, tmp_path, monkeypatch):
    """The command line composes and checks the configuration once and hands the engine that TrainConfig; the
    packaged recipe the run's record is a difference from is merged, not composed again."""
    import hydra

    from tinyhub.commands import train as train_command
    from tinyhub.trainer import config as config_module

    composed, checked = [], []
    real_compose, real_check = hydra.compose, schema.check_values
    monkeypatch.setattr(hydra, "compose", lambda **kw: composed.append(kw["overrides"]) or real_compose(**kw))
    monkeypatch.setattr(schema, "check_values", lambda cfg: checked.append(1) or real_check(cfg))
    config_module._baseline.cache_clear()
    for run in ("a", "b"):
        code = train_command.main([*FAST, "model=gap2k", "training.epochs=1", "data.subset=128",
                                   f"--data-dir={mnist_dir}", f"run.dir={tmp_path / run}",
                                   "training.checkpoint_every=0"])
        assert code == 0 and (tmp_path / run / "results.json").is_file()
    users = [o for o in composed if f"run.dir={tmp_path / 'a'}" in o]
    assert len(users) == 1 and len(checked) == 2  # each run: composed once, checked once
    assert len(composed) == 2  # one composition per `tinyhub train`, and nothing else composed
    assert "model=gap2k" in load_run(tmp_path / "a").overrides


@pytest.mark.parametrize("group", [None, *sorted(p.stem for p in RECIPE_MODELS.glob("*.yaml"))])
def test_the_recorded_overrides_baseline_is_what_hydra_composes(group):
    """The packaged recipe a run's overrides are a difference from, merged without Hydra, is exactly Hydra's
    composition of it: a new default, a recipe's new key or a change to train.yaml's defaults list shows here."""

    from tinyhub.trainer import config as config_module

    hydra_composed = OmegaConf.to_container(trainer.compose([f"model={group}"] if group else []), resolve=True)
    hydra_composed.pop("hydra", None)
    assert config_module.compose_baseline(group) == hydra_composed


@pytest.fixture
def schema_with_a_new_setting():
    """A new setting, declared once: its type, default, meaning and limits on its field, and nothing else."""
    from dataclasses import dataclass

    @dataclass
    class WarmupConfig:
        steps: int = schema.setting(0, low=0, note="steps of linear warm-up",
                                    help="steps of linear warm-up before the schedule")
        shape: str = schema.setting("linear", choices=("linear", "cosine"), help="the warm-up's curve")

    @dataclass
    class ExtendedConfig(schema.TrainConfig):
        warmup: WarmupConfig = schema.setting(factory=WarmupConfig)

    return ExtendedConfig, WarmupConfig


def test_a_setting_declared_once_is_validated_documented_and_recorded(schema_with_a_new_setting, mnist_dir):
    import sys

    extended, warmup = schema_with_a_new_setting
    cfg = extended(model={"name": "gap2k", "param_budget": None}, warmup=warmup(steps=-5))
    with pytest.raises(schema.ConfigError, match=r"^warmup.steps=-5: must be a whole number from 0 "
                                                   r"\(steps of linear warm-up\)\.$"):
        schema.check_values(cfg)
    with pytest.raises(schema.ConfigError, match=r"^warmup.shape='square': choose linear or cosine\.$"):
        schema.check_values(schema.with_values(cfg, {"warmup.steps": 5, "warmup.shape": "square"}))
    with pytest.raises(schema.ConfigError, match=r"warmup.stepz is not a setting \(did you mean warmup.steps\?\)"):
        schema.checked(extended, {"model": {"name": "gap2k"}, "warmup": {"stepz": 3}})
    good = schema.with_values(cfg, {"warmup.steps": 5})
    schema.check_values(good)
    assert schema.config_dict(good)["warmup"] == {"steps": 5, "shape": "linear"}  # recorded as it acted
    assert "warmup.steps" in [limit.key for limit in schema.limits_of(extended)]
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(REPO / "docs"))
    page = "\n".join(hooks._schema_tables(extended))
    assert ("| `warmup.steps` | `int` | `0` | steps of linear warm-up before the schedule. Allowed: from 0. |"
            in page)
    assert "| `warmup.shape` | `str` | `\"linear\"` | the warm-up's curve. One of: linear, cosine. |" in page


def test_an_optimizer_schedule_and_tracker_registered_at_run_time_train_a_run(mnist_dir, tmp_path):
    """The registries are the extension points: a name registered (here at run time; a package does it through
    its entry points) is a choice the configuration accepts, and the run builds and logs with it."""
    import torch
    from accelerate.tracking import GeneralTracker

    from tinyhub.registry import OPTIMIZERS, SCHEDULERS, TRACKERS

    built, logged = [], []

    def plain_sgd(params, opt, kernels):
        """SGD without momentum."""
        built.append("optimizer")
        return torch.optim.SGD(params, lr=opt.lr)

    def halving(optimizer, sch, epochs, steps_per_epoch):
        """Halves the rate every epoch."""
        built.append("schedule")
        return torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5), "epoch"

    class MemoryTracker(GeneralTracker):
        name, requires_logging_directory = "memory", False

        def __init__(self, run_name, logging_dir):
            super().__init__()
            self.run_name = run_name

        @property
        def tracker(self):
            return logged

        def store_init_configuration(self, values):
            logged.append(("config", self.run_name))

        def log(self, values, step=None, **kwargs):
            logged.append(("log", step, dict(values)))

    OPTIMIZERS.register("plain_sgd", plain_sgd)
    SCHEDULERS.register("halving", halving)
    TRACKERS.register("memory", MemoryTracker)
    try:
        with pytest.raises(schema.ConfigError, match="training.optimizer.name='plain_sgdd': choose sgd, adam, adamw or "
                                                     "plain_sgd"):
            trainer.load_config(["model=gap2k", "training.optimizer.name=plain_sgdd"])
        cfg = trainer.load_config(["model=gap2k", f"data.dir={mnist_dir}", "data.subset=256", "training.epochs=2",
                                   "training.optimizer.name=plain_sgd", "training.optimizer.lr=0.05",
                                   "training.scheduler.name=halving", "report_to=memory", "progress=false",
                                   f"run.dir={tmp_path / 'run'}", "training.checkpoint_every=0"])
        record = trainer.load_run(trainer.train(cfg))
    finally:
        OPTIMIZERS.unregister("plain_sgd")
        SCHEDULERS.unregister("halving")
        TRACKERS.unregister("memory")
    assert built == ["optimizer", "schedule"]
    assert [round(e.lr, 6) for e in record.epochs] == [0.05, 0.025]  # the rate each epoch ended with
    assert ("config", "tinyhub") in logged and sum(1 for entry in logged if entry[0] == "log") >= 2


@pytest.mark.parametrize("argv,said", [
    (["model=model4", "model=fast99"], "model= is given 2 times (model4, fast99): give one recipe"),
    (["--config-dir", "/no/such/recipes", "--config-name", "mine"], "--config-dir '/no/such/recipes' is not a folder"),
    (["model=gap2k", "data.subset=5"], "data.subset=5 is less than one batch (data.batch_size=128)"),
    (["model=gap2k", "training.epochs=100000000"], "training.epochs=100000000"),
])
def test_everyday_mistakes_are_one_line_and_nothing_written(argv, said, tmp_path, capsys):
    from tinyhub.commands import train as train_command

    code = train_command.main([*argv, f"run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and said in err[0], err
    assert not (tmp_path / "run").exists()


def test_wandb_without_a_login_is_refused_before_the_run_folder_exists(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    from tinyhub.commands import train as train_command

    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    code = train_command.main(["model=gap2k", "report_to=wandb", f"run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "wandb login" in err[0] and not (tmp_path / "run").exists()
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password " + "0" * 40 + "\n")
    (tmp_path / "netrc").chmod(0o600)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert trainer.load_config(["model=gap2k", "report_to=wandb"]).report_to == "wandb"  # logged in: accepted
