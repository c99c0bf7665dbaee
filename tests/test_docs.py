"""The README and the code cannot drift apart: every command in its bash blocks is parsed by the real command
(options, subcommands, Hydra keys, extras, make targets), its YAML recipe composes, and its Python blocks run."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, hub_client

README = (REPO / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                lines.append(line.strip())
    return lines


def _extras() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return set(cfg["options.extras_require"])


def _tinyhub_invocation(words: list[str]) -> tuple[str, list[str]] | None:
    """(subcommand, its arguments) for every way the README starts tinyhub; None for other programs."""
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if words[:1] == ["tinyhub"]:
        return words[1], words[2:]
    if words[:3] == ["python", "-m", "tinyhub"]:
        return words[3], words[4:]
    if words[:1] in (["python"], ["accelerate"], ["torchrun"]):
        for i, w in enumerate(words):
            if w == "-m" and words[i + 1] == "tinyhub":
                return words[i + 2], words[i + 3:]
            if w.startswith("scripts/") and w.endswith(".py"):
                return w[len("scripts/"):-3], words[i + 1:]
    return None


def check_command(line: str) -> None:
    words = shlex.split(line, comments=True)
    if not words:
        return
    if words[0] == "make":
        phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
        assert words[1] in phony, f"make target {words[1]!r} of `{line}` is not in the Makefile"
        dry = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, f"`make -n {' '.join(words[1:])}` fails: {dry.stderr[-500:]}"
        if words[1] == "train":  # the Quickstart's training runs the installed command with the shared option
            assert "/bin/tinyhub train" in dry.stdout and ("--data-dir" in dry.stdout or "DATA_DIR=" in line)
        return
    if words[:2] == ["pip", "install"]:
        for spec in words[2:]:
            m = re.search(r"\[([\w,-]+)\]", spec)
            if m:
                unknown = set(m.group(1).split(",")) - _extras()
                assert not unknown, f"`{line}` names extras that setup.cfg lacks: {unknown}"
        return
    if words[0] in ("export", "ray"):  # the shell's and Ray's own commands
        return
    invocation = _tinyhub_invocation(words)
    assert invocation is not None, f"the README command `{line}` is not checked by this test; teach it how"
    name, args = invocation
    from tinyhub.cli import COMMANDS

    assert name in COMMANDS, f"`{line}`: no tinyhub command {name!r}"
    if name in ("train", "sweep"):
        _check_hydra(name, args, line)
        return
    import importlib

    module = importlib.import_module(f"tinyhub.commands.{COMMANDS[name][0]}")
    try:
        module.parser(f"tinyhub {name}").parse_args(args)
    except SystemExit as e:
        pytest.fail(f"`{line}`: tinyhub {name} rejects these options (exit {e.code})")


def _check_hydra(name: str, args: list[str], line: str) -> None:
    from tinyhub.commands._common import translate_shared_options
    from tinyhub.trainer import load_config

    overrides = translate_shared_options(args)
    if "--config-dir" in overrides:  # a recipe folder of the user's: check the flags, not the files
        assert "--config-name" in overrides, line
        return
    try:
        load_config(overrides, config_name="train" if name == "train" else "sweep")
    except Exception as e:  # noqa: BLE001 - any composition failure is drift
        pytest.fail(f"`{line}`: the overrides do not compose: {e}")


@pytest.mark.parametrize("line", _commands())
def test_readme_command_matches_the_cli(line):
    check_command(line)


def test_the_checker_catches_drift():
    for stale in ("tinyhub train --data-dri x", "tinyhub evaluate RUN --no-such-flag", "tinyhub trian",
                  "tinyhub train training.epochz=3", 'pip install "tinyhub[training]"', "make install",
                  "python scripts/train.py data.dirr=x", "some-other-tool --flag"):
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check_command(stale)


def test_readme_recipe_example_composes(tmp_path):
    from tinyhub.trainer import load_config

    (yaml,) = _blocks("yaml")
    name = re.search(r"# my_recipes/(\w+)\.yaml", yaml).group(1)
    (tmp_path / f"{name}.yaml").write_text(yaml)
    cfg = load_config([], config_name=name, config_dir=tmp_path)
    assert cfg.model.name == "net24k" and cfg.training.epochs == 3


def test_readme_python_blocks_run(hub, tiny_runs, tmp_path):
    """Each Python block runs as written, in a fresh process; the Hub repo it names is served by the local Hub
    (a run pushed there under that id's name), and a run directory it reads is a real finished run."""
    blocks = _blocks("python")
    assert blocks
    for run in set(re.findall(r'load_run\("(runs/[\w.-]+)"\)', "\n".join(blocks))):
        shutil.copytree(tiny_runs[0], tmp_path / run)
    named = sorted(set(re.findall(r'from_pretrained\("([\w-]+/[\w.-]+)", revision="(\w+)"\)', "\n".join(blocks))))
    for repo, revision in named:
        local = f"tester/{repo.split('/')[1]}"
        r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", local, "--tag", revision)
        assert r.returncode == 0, r.stderr[-2000:]
    for block in blocks:
        code = block
        for repo, _ in named:
            code = code.replace(f'"{repo}"', f'"tester/{repo.split("/")[1]}"')
        env = hub.client_env(tmp_path / "hf_home", token=None)
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"README block failed:\n{block}\n{r.stderr[-2000:]}"


def test_the_results_block_is_the_committed_records():
    # The README's numbers are the records' numbers (regenerated by `tinyhub reproduce --table-only`), and every
    # record keeps the per-epoch history that shows its accuracy is the last epoch's, not the best.
    from tinyhub.commands.reproduce import README_BEGIN, README_END, tables_text
    from tinyhub.trainer.record import SeedRecord

    block = README[README.index(README_BEGIN) + len(README_BEGIN):README.index(README_END)]
    assert block == "\n" + tables_text(REPO / "results"), "run `tinyhub reproduce --table-only`"
    files = sorted((REPO / "results").glob("*/seed_*.json"))
    assert len(files) >= 30
    for f in files:
        assert SeedRecord.load(f).final_is_last_epoch is True, f"{f}: no history, or not the last epoch's"
