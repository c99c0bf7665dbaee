"""The README, the documentation site and the code cannot drift apart. In README.md and every page of docs/, every
command of a bash block is parsed by the real command (options, subcommands, Hydra keys, extras, make targets,
scripts), every YAML recipe composes, and every Python block runs; other blocks are output (`text`). The site builds
with `mkdocs build --strict` (a broken link, anchor or API reference fails it), and the generated tables are the
records' and the benchmarks' own."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, SAFETY_TIMEOUT, hub_client, run_cli

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

README = (REPO / "README.md").read_text()
#: The pages users read: the README and the documentation site's own pages (the experiment logs of
#: results/experiments/, which the site also shows, record what ran and are not instructions).
PAGES = {p.relative_to(REPO).as_posix(): p.read_text()
         for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]}
LANGUAGES = ("bash", "python", "yaml", "text")


def _blocks(lang: str, text: str | None = None) -> list[str]:
    texts = [text] if text is not None else list(PAGES.values())
    return [b for t in texts for b in re.findall(rf"^```{lang}\n(.*?)^```", t, re.S | re.M)]


def _commands() -> list[tuple[str, str]]:
    lines = []
    for page, text in PAGES.items():
        for block in _blocks("bash", text):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip():
                    lines.append((page, line.strip()))
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
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words = words[1:]
    if not words:
        return
    if words[0] in ("python", "bash") and len(words) > 1 and words[1].startswith("results/"):  # a repo script
        assert (REPO / words[1]).is_file(), f"`{line}` runs {words[1]}, which does not exist"
        return
    if words[0] == "make":
        phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
        assert words[1] in phony, f"make target {words[1]!r} of `{line}` is not in the Makefile"
        dry = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True,
                             timeout=SAFETY_TIMEOUT)
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
    from tinyhub.trainer import compose as load_config

    overrides = translate_shared_options(args)
    if "--config-dir" in overrides:  # a recipe folder of the user's: check the flags, not the files
        assert "--config-name" in overrides, line
        return
    try:
        load_config(overrides, config_name="train" if name == "train" else "sweep")
    except Exception as e:  # noqa: BLE001 - any composition failure is drift
        pytest.fail(f"`{line}`: the overrides do not compose: {e}")


@pytest.mark.parametrize("page,line", _commands())
def test_documented_command_matches_the_cli(page, line):
    check_command(line)


def test_every_code_block_is_a_checked_kind():
    for page, text in PAGES.items():
        for lang in re.findall(r"^```(\S*)$", text, re.M)[::2]:  # opening fences (closing ones alternate)
            assert lang in LANGUAGES, f"{page}: a ```{lang} block is checked by nothing; use one of {LANGUAGES}"


def test_the_checker_catches_drift():
    for stale in ("tinyhub train --data-dri x", "tinyhub evaluate RUN --no-such-flag", "tinyhub trian",
                  "tinyhub train training.epochz=3", 'pip install "tinyhub[training]"', "make install",
                  "python scripts/train.py data.dirr=x", "some-other-tool --flag", "python results/no_such.py",
                  "X=1 make no-such-target"):
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check_command(stale)


def test_recipe_examples_compose(tmp_path):
    from tinyhub.trainer import compose as load_config

    blocks = _blocks("yaml")
    assert blocks
    for yaml in blocks:
        name = re.search(r"# my_recipes/(\w+)\.yaml", yaml).group(1)
        (tmp_path / f"{name}.yaml").write_text(yaml)
        cfg = load_config([], config_name=name, config_dir=tmp_path)
        assert cfg.model.name == "net24k" and cfg.training.epochs == 3


def test_python_blocks_run(hub, tiny_runs, mnist_dir, tmp_path):
    """Each Python block runs as written, in a fresh process; the Hub repo it names is served by the local Hub
    (a run pushed there under that id's name), and a run directory it reads is a real finished run."""
    blocks = _blocks("python")
    assert blocks
    for run in set(re.findall(r'load_run\("(runs/[\w.-]+)"\)', "\n".join(blocks))):
        shutil.copytree(tiny_runs[0], tmp_path / run)
    named = sorted(set(re.findall(r'(?:from_pretrained|hf_hub_download)\("([\w-]+/[\w.-]+)",(?: "[\w./]+",)? '
                                  r'revision="(\w+)"\)', "\n".join(blocks))))
    # a repo whose ONNX files a block downloads is pushed from an exported copy of the run
    onnx_repos = set(re.findall(r'hf_hub_download\("([\w-]+/[\w.-]+)", "onnx/', "\n".join(blocks)))
    exported = tmp_path / "exported-run"
    if onnx_repos:
        shutil.copytree(tiny_runs[0], exported)
        r = run_cli("export", str(exported))
        assert r.returncode in (0, 1) and (exported / "onnx" / "model.onnx").is_file(), r.stderr[-2000:]
    # Blocks that name the same repo under different namespaces read one local repo: the exported run, if any of
    # them downloads its ONNX files (a tag names one commit, so one run per repo and tag).
    pushes = {}
    for repo, revision in named:
        local = f"tester/{repo.split('/')[1]}"
        if repo in onnx_repos or (local, revision) not in pushes:
            pushes[(local, revision)] = exported if repo in onnx_repos else tiny_runs[0]
    for (local, revision), run in pushes.items():
        r = hub_client(hub, tmp_path, "push", str(run), "--repo-id", local, "--tag", revision)
        assert r.returncode == 0, r.stderr[-2000:]
    for block in blocks:
        code = block
        for repo, _ in named:
            code = code.replace(f'"{repo}"', f'"tester/{repo.split("/")[1]}"')
        code = code.replace('"/path/to/mnist"', json.dumps(str(mnist_dir)))  # a block that trains reads real data
        env = hub.client_env(tmp_path / "hf_home", token=None)
        env.update({k: v for k, v in os.environ.items() if k in ("TINYHUB_DATA_NAME", "TINYHUB_CACHE")})
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=SAFETY_TIMEOUT)
        assert r.returncode == 0, f"this block failed:\n{block}\n{r.stderr[-2000:]}"


def _between(text: str, begin: str, end: str) -> str:
    return text[text.index(begin) + len(begin):text.index(end)]


def test_the_results_tables_are_the_committed_records():
    # The README's and RESULTS.md's numbers are the records' numbers (regenerated by `tinyhub reproduce
    # --table-only`), and every record keeps the per-epoch history that shows its accuracy is the last epoch's.
    from tinyhub.commands.reproduce import README_BEGIN, README_END, summary_table, tables_text
    from tinyhub.trainer.record import SeedRecord

    hint = "run `tinyhub reproduce --table-only`"
    assert _between(README, README_BEGIN, README_END) == "\n" + summary_table(REPO / "results"), hint
    assert tables_text(REPO / "results") in (REPO / "RESULTS.md").read_text(), hint
    files = sorted((REPO / "results").glob("*/seed_*.json"))
    assert len(files) >= 30
    for f in files:
        assert SeedRecord.load(f).final_is_last_epoch is True, f"{f}: no history, or not the last epoch's"


def _speed_table():
    spec = importlib.util.spec_from_file_location("speed_table", REPO / "results" / "speed" / "table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_speed_block_is_the_benchmarks_table():
    table = _speed_table()
    block = _between(README, table.SPEED_BEGIN, table.SPEED_END)
    assert block == "\n" + table.summary_table(), "run `python results/speed/table.py --write README.md`"
    assert block.count("\n| `") == len(table.MODELS), "every packaged recipe has its bench output"


def test_the_time_to_target_block_is_the_benchmarks_table():
    # The README and the Speed page show what `tinyhub bench --to 99.0 99.4` printed, parsed from its saved output,
    # which covers both targets with the seeds the field asks for.
    table = _speed_table()
    parsed = table.parse_time_to_target(table.TTT_FILE.read_text())
    assert parsed is not None, "results/speed/time-to-target.txt is incomplete: run results/speed/time_to_target.sh"
    assert [t for t, _ in parsed["targets"]] == ["99.0", "99.4"]
    for (target, rows), least in zip(parsed["targets"], (10, 5)):
        assert [r["recipe"] for r in rows] == [{"99.0": "fast99", "99.4": "fast994"}[target], "model4"]
        assert all(int(r["seeds"]) >= least for r in rows)
    block = _between(README, table.TTT_BEGIN, table.TTT_END)
    assert block == "\n" + table.time_to_target_table(), "run `python results/speed/table.py --write README.md`"
    assert "<!-- generated: time-to-target -->" in (REPO / "docs" / "speed.md").read_text()


def test_the_readme_is_a_product_page():
    assert len(README.splitlines()) <= 300
    for page, text in {**PAGES, "RESULTS.md": (REPO / "RESULTS.md").read_text()}.items():
        found = re.findall(r"issue #\d+|\blease|\blent\b|\bborrowed\b", text, re.I)
        assert not found, f"{page} speaks of how the work was organised: {found}"
    nav = (REPO / "mkdocs.yml").read_text()
    for page in (REPO / "docs").rglob("*.md"):  # every page is in the site's navigation
        assert f": {page.relative_to(REPO / 'docs').as_posix()}\n" in nav, f"{page} is not in mkdocs.yml's nav"


def test_the_documentation_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, an API reference that does not resolve, or a warning of
    any kind fails it; the generated parts are filled in from the code."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    def page(path: str) -> str:
        return (site / path / "index.html").read_text()

    html = "".join(p.read_text() for p in site.rglob("*.html"))
    assert "<!-- generated:" not in html
    from tinyhub.cli import COMMANDS

    cli = page("reference/cli")
    for name in COMMANDS:
        assert f"tinyhub {name}" in cli
    assert "--repo-id" in cli and "--time-to-target" in cli  # argparse's own help, not a copy
    config = page("reference/configuration")
    for key in ("training.epochs", "training.distill.temperature", "data.eval_batch_size", "hpo.scheduler.name"):
        assert key in config, key
    assert "final.test_accuracy" in page("reference/results-json")
    api = page("reference/api")
    assert "tinyhub.from_pretrained" in api and "revision" in api and "load_run" in api
    results = page("results")
    assert "ruslangrimov/mnist-minimal-model" in results and "gap5k-kd" in results
    for name in (p.parent.name for p in (REPO / "results" / "experiments").glob("*/README.md")):
        assert f"experiments/{name}/" in results, f"the Results page does not link the experiment {name}"
        assert (site / "experiments" / name / "index.html").is_file()
    assert "gap20k" in page("speed")


def test_every_experiment_says_what_it_asked_decided_and_ran():
    folders = sorted(p for p in (REPO / "results" / "experiments").iterdir() if p.is_dir())
    assert folders
    for folder in folders:
        readme = folder / "README.md"
        assert readme.is_file(), f"{folder} has no README"
        headings = re.findall(r"^## (\w+)", readme.read_text(), re.M)
        for section in ("Question", "Rule", "Commands", "Outcome", "Commit"):
            assert section in headings, f"{readme} lacks its {section} section"
    listed = (REPO / "results" / "README.md").read_text()
    for folder in folders:
        assert f"experiments/{folder.name}/" in listed, f"results/README.md does not map {folder.name}"


def test_every_packaged_recipe_has_verified_exports_and_the_readme_says_so():
    # results/exports/ holds what `bash results/exports/export_all.sh` measured for seed 0 of each recipe.
    import importlib.util

    spec = importlib.util.spec_from_file_location("exports_table", REPO / "results" / "exports" / "table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    recipes = {p.stem for p in (REPO / "trainer" / "recipes" / "model").glob("*.yaml")}
    records = table.records()
    assert set(records) == recipes, "run `bash results/exports/export_all.sh RUNS_DIR`"
    for recipe, record in records.items():
        assert [f["format"] for f in record["formats"]] == ["onnx", "int8"], recipe
        assert record["test_total"] == 10_000 and all(f["test_total"] == 10_000 for f in record["formats"]), recipe
    block = _between(README, table.EXPORTS_BEGIN, table.EXPORTS_END)
    assert block == "\n" + table.exports_summary(), "run `python results/exports/table.py --readme README.md`"
    assert "<!-- generated: exports -->" in (REPO / "docs" / "deploy.md").read_text()
