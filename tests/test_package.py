"""tinyhub as an installed library: the wheel, the light core install, the `tinyhub` command, one namespace that
other packages cannot shadow, and a card snippet that works for someone who never cloned the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import FAST, REPO, SAFETY_TIMEOUT, TINYHUB, hub_client, run_cli, run_cli_many
from tinyhub import modeling

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

#: What only the training extras install. Importing tinyhub or tinyhub.modeling must touch none of them.
TRAINING_ONLY = ("accelerate", "hydra", "omegaconf", "datasets", "evaluate", "matplotlib", "tensorboard", "jinja2",
                 "ray", "optuna", "wandb", "torchvision")
#: Put first on sys.path by `-c` code: makes every training-only package unimportable, as in a core install.
CORE_ONLY = f"""
import sys
BLOCKED = {TRAINING_ONLY!r}
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in a core install)", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _tracked_tree(dest: Path) -> Path:
    """The project's files as a fresh clone has them (tracked and new, never ignored build outputs)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """A wheel built from a clean copy of the sources by the PEP 517 backend, and everything the build printed."""
    src = _tracked_tree(tmp_path_factory.mktemp("src"))
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; "
                            f"print(build_meta.build_wheel({str(dist)!r}))"],
                           cwd=src, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (whl,) = dist.glob("tinyhub-*.whl")
    return whl, build.stdout + build.stderr


@pytest.fixture(scope="module")
def core_site(wheel, tmp_path_factory) -> Path:
    """The wheel installed on its own (no dependencies pulled) into a folder used as PYTHONPATH."""
    site = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site),
                        str(wheel[0])], capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    return site


def _core_python(site: Path, code: str, cwd: Path, base_env: dict | None = None, timeout: int = SAFETY_TIMEOUT,
                 blocked: tuple[str, ...] = TRAINING_ONLY):
    """Run `code` in a fresh interpreter that sees the installed wheel first and no training extras (`blocked`)."""
    import os

    env = {**(base_env if base_env is not None else os.environ), "PYTHONPATH": str(site)}
    prelude = CORE_ONLY.replace(f"BLOCKED = {TRAINING_ONLY!r}", f"BLOCKED = {blocked!r}")
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def tinyhub_version() -> str:
    import tinyhub

    return tinyhub.__version__


# ---------------------------------------------------------------------------------------------------------
# The wheel and the light install
# ---------------------------------------------------------------------------------------------------------
def test_wheel_builds_without_warnings_and_holds_one_namespace(wheel):
    whl, log = wheel
    warnings = [line for line in log.splitlines() if re.search(r"warn|would be ignored|deprecat", line, re.I)
                and "byte-compiling is disabled" not in line]
    assert not warnings, "\n".join(warnings[:40])
    names = zipfile.ZipFile(whl).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("tinyhub-")}
    assert top == {"tinyhub"}, top  # no top-level modeling/trainer/cards to clash with other packages
    for needed in ("tinyhub/modeling/model4.py", "tinyhub/trainer/engine.py", "tinyhub/cards/card.py",
                   "tinyhub/cli.py", "tinyhub/trainer/recipes/train.yaml", "tinyhub/trainer/recipes/model/gap8k.yaml",
                   "tinyhub/trainer/templates/report.html.j2", "tinyhub/trainer/metrics/accuracy/accuracy.py",
                   "tinyhub/cards/templates/model_card.md"):
        assert needed in names, needed
    meta = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    core = sorted(re.split(r"[<>=!; ]", line.split(":", 1)[1].strip())[0].lower().replace("_", "-")
                  for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line)
    assert core == ["huggingface-hub", "numpy", "safetensors", "torch"], core
    extras = set(re.findall(r"^Provides-Extra: (\S+)", meta, re.M))
    assert {"train", "hpo", "bench", "tracking", "wandb", "test", "all", "export", "demo"} <= extras
    entry_points = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "tinyhub = tinyhub.cli:run" in entry_points


def test_core_install_imports_and_builds_models_without_training_packages(core_site, tmp_path):
    code = ("import tinyhub, tinyhub.modeling\n"
            "m = tinyhub.create_model('model4'); print(tinyhub.summary(m).total_params)\n"
            "print(tinyhub.__file__); print(tinyhub.__version__); print(sorted(tinyhub.list_models()))\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {TRAINING_ONLY!r}))\n")
    r = _core_python(core_site, code, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    params, where, version, names, loaded = r.stdout.strip().splitlines()[-5:]
    assert params == "7194" and where.startswith(str(core_site)) and version == tinyhub_version()
    assert "gap20k" in names and loaded == "[]"


def test_importing_tinyhub_never_imports_training_packages_even_when_installed():
    code = ("import sys, tinyhub, tinyhub.modeling\n"
            "tinyhub.from_pretrained  # the everyday surface\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {TRAINING_ONLY!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]


def test_training_command_without_the_extra_says_what_to_install(core_site, tmp_path):
    r = _core_python(core_site, "from tinyhub.cli import main\nsys.exit(main(['train', 'model=opt6k']))", tmp_path)
    assert r.returncode == 1, r.stderr
    assert 'pip install "tinyhub[train]"' in r.stderr and "accelerate" in r.stderr and "Traceback" not in r.stderr
    sweep = _core_python(core_site, "from tinyhub.cli import main\nsys.exit(main(['sweep']))", tmp_path)
    assert sweep.returncode == 1 and 'pip install "tinyhub[train,hpo]"' in sweep.stderr
    listed = _core_python(core_site, "from tinyhub.cli import main\nsys.exit(main(['list-models']))", tmp_path)
    assert listed.returncode == 0 and "model4" in listed.stdout and "7,194" in listed.stdout


def test_export_and_demo_without_their_extras_say_what_to_install(tmp_path):
    blocker = CORE_ONLY.replace(f"BLOCKED = {TRAINING_ONLY!r}", "BLOCKED = ('onnx', 'onnxruntime', 'onnxscript', 'gradio')")
    for command, extra, module in (("export", "export", "onnxruntime"), ("demo", "demo", "gradio")):
        code = blocker + f"from tinyhub.cli import main\nsys.exit(main([{command!r}, 'runs/x']))"
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           timeout=SAFETY_TIMEOUT)
        assert r.returncode == 1 and f'pip install "tinyhub[{extra}]"' in r.stderr and module in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_the_demo_app_runs_on_the_light_install_and_gradio(core_site, tmp_path):
    """What a Space installs: tinyhub's light install (requirements.txt) and Gradio (the Space's SDK)."""
    from importlib import metadata

    gradio_needs = {re.split(r"[\s<>=!;\[(~]", r)[0].lower() for r in metadata.requires("gradio") or []}
    blocked = tuple(m for m in TRAINING_ONLY if m not in gradio_needs)  # Jinja2 comes with Gradio
    code = ("import numpy as np, tinyhub\nfrom tinyhub.demo import build_demo, classify\n"
            "model = tinyhub.create_model('opt6k').eval()\n"
            "print(type(build_demo(model)).__name__)\n"
            "print(sorted(classify(model, np.zeros((50, 50, 3), np.uint8))))\n"
            f"print(sorted(k for k in sys.modules if k.split('.')[0] in {blocked!r}))\n")
    r = _core_python(core_site, code, tmp_path,
                     blocked=blocked)
    assert r.returncode == 0, r.stderr[-3000:]
    blocks, classes, loaded = r.stdout.strip().splitlines()[-3:]
    assert blocks == "Blocks" and classes == str(sorted(str(i) for i in range(10))) and loaded == "[]"


def test_card_snippet_runs_as_printed_for_a_stranger(hub, tiny_runs, core_site, tmp_path):
    """Push a run to the local Hub, take the "How to use" code from the card exactly as published, and run it
    where only the core install exists: it loads the model by repo id and revision and predicts real images."""
    repo = "tester/snippet-opt6k"
    r = hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo, "--tag", "v1")
    assert r.returncode == 0, r.stderr[-3000:]
    card = hub.read_file(repo, "README.md", "v1").decode()
    how_to = card.split("## How to use", 1)[1].split("\n## ", 1)[0]
    assert "```bash\npip install tinyhub\n```" in how_to
    snippet = re.search(r"```python\n(.*?)```", how_to, re.S).group(1)
    assert f'tinyhub.from_pretrained("{repo}", revision="v1")' in snippet
    env = hub.client_env(tmp_path / "hf_home", token=None)
    probe = "\nimport json, tinyhub as _t\nprint(_t.__file__)\nprint(json.dumps(logits.tolist()))\n"
    run = _core_python(core_site, snippet + probe, tmp_path, base_env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout.strip().splitlines()
    assert out[-2].startswith(str(core_site))  # the wheel's tinyhub, not the checkout
    predicted, true = out[-4], out[-3]
    assert predicted.startswith("predicted: [") and true.startswith("true:      [")
    examples = load_file(tiny_runs[0] / "examples.safetensors")
    model = modeling.from_pretrained(tiny_runs[0] / "model")
    with torch.no_grad():
        expected = model(model.normalize(examples["images"]))
    assert torch.allclose(torch.tensor(json.loads(out[-1])), expected, rtol=0, atol=1e-5)
    assert true == "true:      " + str([model.id2label[str(i)] for i in examples["labels"].tolist()])


# ---------------------------------------------------------------------------------------------------------
# The `tinyhub` command
# ---------------------------------------------------------------------------------------------------------
def test_every_command_has_help_through_the_entry_point():
    from tinyhub.cli import COMMANDS

    top, *helps = run_cli_many(["--help"], *([name, "--help"] for name in COMMANDS))
    assert top.returncode == 0 and all(name in top.stdout for name in COMMANDS)
    for name, r in zip(COMMANDS, helps):
        assert r.returncode == 0, (name, r.stderr[-2000:])
        assert "usage" in r.stdout.lower() or "tinyhub " + name in r.stdout, (name, r.stdout[:500])
    as_module = subprocess.run([sys.executable, "-m", "tinyhub", "--version"], capture_output=True, text=True)
    assert as_module.returncode == 0 and as_module.stdout.strip() == f"tinyhub {tinyhub_version()}"
    unknown = run_cli("trian")
    assert unknown.returncode == 2 and "(did you mean train?)" in unknown.stderr


def test_commands_run_for_real_with_one_spelling_and_honest_exit_codes(mnist_dir, tmp_path):
    run = tmp_path / "run"
    # --data-dir and --batch-size: spelled as on every other command
    r = run_cli("train", "model=opt6k", *FAST, "--data-dir", str(mnist_dir), "--batch-size", "32",
                "training.epochs=1", "data.subset=300", f"run.dir={run}", "progress=auto", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["batch_size_per_process"] == 32 and results["data"]["dir"] == str(mnist_dir.resolve())
    assert "after 1 epoch |" in r.stdout  # not "1 epochs"
    assert "\r" not in r.stderr and "it/s" not in r.stderr  # no progress bars in redirected output
    log = (run / "train.log").read_text()  # the run's own log, beside the console output
    assert "epoch   1/1 | loss" in log and "Done: opt6k" in log
    listed, ev, cmp, dry, table = run_cli_many(
        ["list-models", "--names"],
        ["evaluate", str(run), "--cpu", "--batch-size", "500", "--data-dir", str(mnist_dir)],
        ["compare", str(run), "--out", str(tmp_path / "cmp")],
        ["push", str(run), "--repo-id", "me/opt6k", "--dry-run", str(tmp_path / "up")],
        ["reproduce", "--table-only", "--out", str(tmp_path / "results"), "--results-md", str(tmp_path / "RESULTS.md"),
         "--readme", str(tmp_path / "README.md")])
    assert listed.returncode == 0 and listed.stdout.split() == modeling.list_models()
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert f"({results['final']['test_correct']}/10000)" in ev.stdout
    assert cmp.returncode == 0 and (tmp_path / "cmp" / "comparison.md").is_file(), cmp.stderr[-2000:]
    assert dry.returncode == 0 and (tmp_path / "up" / "README.md").is_file(), dry.stderr[-2000:]
    assert table.returncode == 0 and (tmp_path / "RESULTS.md").is_file(), table.stderr[-2000:]
    # exit status: 2 for what the user asked wrongly, 1 for what failed at run time; no traceback for either
    *usage, missing_model, missing_data = run_cli_many(
        ["train", "model=nosuchmodel"], ["train", "training.epochz=3"], ["push", str(run), "--repo-id", "not a repo"],
        ["evaluate", "--no-such-option"], ["train", "--data-dir"],
        ["evaluate", str(tmp_path / "missing")],
        ["train", "--data-dir", str(tmp_path / "nothing"), f"run.dir={tmp_path / 'r2'}"])
    for u in usage:
        assert u.returncode == 2 and "Traceback" not in u.stderr, (u.args, u.stderr[-1500:])
    for f in (missing_model, missing_data):
        assert f.returncode == 1 and f.stderr.startswith("error: ") and "Traceback" not in f.stderr, f.stderr


def test_accelerate_launch_runs_the_module(mnist_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
                        "-m", "tinyhub", "train", "model=opt6k", *FAST, "--data-dir", str(mnist_dir),
                        "training.epochs=1", "data.subset=300", f"run.dir={tmp_path / 'acc'}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "acc" / "results.json").read_text())["final"]["test_total"] > 0


# ---------------------------------------------------------------------------------------------------------
# One namespace: packages named trainer / cards / modeling elsewhere cannot break tinyhub
# ---------------------------------------------------------------------------------------------------------
def test_clashing_top_level_packages_do_not_shadow_tinyhub(mnist_dir, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for name in ("trainer", "cards", "modeling"):  # as `pip install trainer` / `cards` would put them
        (shadow / f"{name}.py").write_text(f"raise ImportError('this is the unrelated PyPI package {name}')\n")
    code = f"""
import sys
sys.path.insert(0, {str(shadow)!r})
import tinyhub
from tinyhub import trainer, cards
run = trainer.train(trainer.load_config({[*FAST, "model=opt6k", "training.epochs=1", "data.subset=300",
                                           f"data.dir={mnist_dir}", f"run.dir={tmp_path / 'run'}"]!r}))
model = tinyhub.from_pretrained(run / "model")
card = cards.build_card(run, repo_id="me/opt6k")
print("OK", type(model).__name__)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "OK Opt6k"


def test_no_module_imports_the_bare_folder_names():
    bare = re.compile(r"^\s*(import|from)\s+(modeling|trainer|cards)(\s|\.|$)", re.M)
    offenders = []
    for path in [*REPO.glob("*/**/*.py"), *REPO.glob("*.py")]:
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for m in bare.finditer(path.read_text()):
            offenders.append(f"{path.relative_to(REPO)}: {m.group(0).strip()}")
    assert not offenders, offenders


def test_save_pretrained_writes_no_generic_card_and_push_to_hub_points_at_tinyhub_push(tmp_path):
    model = modeling.create_model("model4")
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    with pytest.raises(modeling.PushRefusedError, match="tinyhub push RUN_DIR"):
        model.push_to_hub("me/model4")
    with pytest.raises(modeling.PushRefusedError):
        model.save_pretrained(tmp_path / "again", push_to_hub=True)
    assert not (tmp_path / "again").exists()


def test_entry_point_is_the_installed_console_script():
    assert Path(TINYHUB).is_file(), "the tinyhub console script is not installed in this environment"


def test_the_package_and_its_configuration_import_without_torch():
    """`tinyhub --help`, `list-models`, a configuration mistake and the record types answer without torch."""
    code = ("import sys, tinyhub, tinyhub.errors, tinyhub.modeling, tinyhub.modeling.catalog, tinyhub.trainer, "
            "tinyhub.trainer.schema, tinyhub.trainer.config, tinyhub.trainer.record, tinyhub.cli\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] == 'torch')[:3])\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] != "tinyhub":
        parts.insert(0, "tinyhub")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_time_edges(path: Path, name: str, known: set[str]) -> set[str]:
    """The tinyhub modules `path` imports when it is imported: top-level statements, TYPE_CHECKING blocks left out."""
    import ast

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            targets = []
            if isinstance(inner, ast.Import):
                targets = [a.name for a in inner.names]
            elif isinstance(inner, ast.ImportFrom):
                base = inner.module or ""
                if inner.level:
                    up = package.split(".")[: len(package.split(".")) - (inner.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in inner.names]
            found |= {t for t in targets if t in known and t != name}
    return found


def test_no_module_of_tinyhub_imports_one_that_imports_it_back():
    """No circle of import-time imports anywhere in the package (modeling's base class and registry included)."""
    files = [p for folder in ("tinyhub", "modeling", "trainer", "cards") for p in (REPO / folder).rglob("*.py")]
    names = {_module_name(p): p for p in files}
    graph = {name: _import_time_edges(path, name, set(names)) for name, path in names.items()}
    circles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circle = trail[trail.index(nxt):] + [node, nxt] if nxt in trail else [node, nxt]
                circles.append(" -> ".join(circle))
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert graph["tinyhub.modeling._base"] and graph["tinyhub.trainer.engine"]  # the walk sees real imports
    assert not circles, circles


def test_the_engine_reads_top_to_bottom_in_short_functions():
    """No function in trainer/ over 100 lines, and the training function, which names the stages of a run, under 80."""
    import ast

    lengths = {}
    for path in (REPO / "trainer").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert lengths["engine.py:_train"] <= 80 and lengths["engine.py:_set_up"] <= 80
    assert max(lengths.values()) <= 100, sorted(lengths.items(), key=lambda kv: kv[1])[-3:]


def test_no_configuration_is_read_by_dotted_string():
    """The typed configuration is read by attribute in the engine, the cards and the commands, never as
    cfg["training"]["epochs"] or recipe.get("data")."""
    sections = "training|data|model|augment|run|recipe|seeds"
    pattern = re.compile(rf"""(recipe|cfg|config|base)(\.get\(|\[)["']({sections})["']""")
    offenders = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
                 for folder in ("trainer", "cards", "tinyhub/commands") for p in (REPO / folder).glob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
