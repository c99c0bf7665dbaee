"""What a new user meets from a fresh clone to a published model: one `error:` line with the fix for every mistake,
nothing printed where nothing is wrong, folders tinyhub wrote that never break another command, and reports and
cards that say what a user can use."""

import html
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import FAST, REPO, SAFETY_TIMEOUT, TINYHUB, run_cli, run_cli_many

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

# (arguments, exit status, what the one error line must say: the fix or the allowed values)
MISTAKES = [
    (["train", "model=model5"], 2, "did you mean model=model4?"),
    (["train", "model=Model4"], 2, "did you mean model=model4?"),
    (["train", "model=mobilenet"], 2, "model=minimobilenet"),
    (["train", "training.epohcs=3"], 2, "did you mean training.epochs?"),
    (["train", "training.epochs=-3"], 2, "training.epochs=-3: must be a whole number from 1"),
    (["train", "model=model4", "training.optimizer.lr=0.3"], 2, "the schedule sets the learning rate"),
    (["train", "+training.epohcs=3"], 2, "did you mean training.epochs?"),
    (["train", "epochs=3"], 2, "did you mean training.epochs?"),
    (["train", "data.batchsize=64"], 2, "did you mean data.batch_size"),
    (["train", "augment.rotate=10"], 2, "did you mean augment.rotation?"),
    (["train", "training.optimizer.learning_rate=0.1"], 2, "did you mean training.optimizer.lr?"),
    (["train", "model.dropuot=0.1"], 2, "did you mean model.dropout?"),
    (["train", "model=net24k", "model.dropout=0.1"], 2, "net24k takes no argument 'dropout'"),
    (["train", "model=gap8k", "+model.dropuot=0.1"], 2, "did you mean dropout?"),
    (["train", "training.epochs=abc"], 2, "training.epochs=abc: must be a whole number"),
    (["train", "training.epochs=[3]"], 2, "must be a whole number"),
    (["train", "training.optimizer.lr=fast"], 2, "must be a number"),
    (["train", "training.compile=maybe"], 2, "must be true or false"),
    (["train", "training.optimizer.betas=0.9"], 2, "must be a list of numbers"),
    (["train", "training.epochs=-3"], 2, "must be a whole number from 1"),
    (["train", "training.optimizer.betas=[nan,0.999]"], 2, "betas=[nan,0.999]: each must be a number from 0 below 1"),
    (["train", "model.dropout=1.5"], 2, "model.dropout=1.5: model4 needs a number from 0 below 1"),
    (["train", "training.mixed_precision=fp8"], 2, "choose no, bf16 or fp16"),
    (["train", "training.optimizer.name=adamm"], 2, "choose sgd, adam or adamw"),
    (["train", "training.scheduler.name=cosin"], 2, "choose none, step, onecycle, cosine or plateau"),
    (["train", "training.device=gpu"], 2, "choose auto or cpu"),
    (["train", "training.epochs=[3"], 2, "cannot read the override 'training.epochs=[3'"),
    (["train", "training.epochs=1,2"], 2, "write a list as [a,b]"),
    (["train", "+training.epochs=3"], 2, "write training.epochs=3 (without the +)"),
    (["train", "--data-dir"], 2, "--data-dir needs a value"),
    (["train", "--epochs", "3"], 2, "unknown option '--epochs'"),
    (["train", "--config-name", "nope"], 2, "no recipe named 'nope'"),
    (["trian"], 2, "did you mean train?"),
    (["train", "--data-dir", "/no/such/folder"], 1, "is not a directory"),
    (["compare", "/no/such/run"], 1, "not a finished run"),
    (["evaluate", "./no-such-run"], 1, "does not exist"),
    (["evaluate", "runs/no-such-run"], 1, "runs/no-such-run does not exist"),  # ./runs exists: a typo'd folder
    (["push", "/no/such/run", "--repo-id", "not a repo id", "--dry-run", "out"], 2, "repo id"),
    (["push", "/no/such/run", "--repo-id", "me/model4", "--dry-run", "out"], 1, "/no/such/run"),
    (["evaluate", "runs/x", "--split", "tset"], 2, "invalid choice: 'tset'"),
    (["sweep", "hpo.num_sample=3"], 2, "did you mean hpo.num_samples?"),
    (["push", ".", "--repo-id", "me/model4"], 1, "is not a tinyhub run: it has no results.json"),
    (["push", ".", "--repo-id", "me/model4", "--dataset-id", "digits"], 2, "--dataset-id 'digits' must be NAMESPACE/NAME"),
    (["train", "model=model4", "model=fast99"], 2, "model= is given 2 times"),
    (["train", "data.subset=5"], 2, "less than one batch"),
    (["train", "training.epochs=100000000"], 2, "training.epochs=100000000"),
    (["train", "--config-dir", "/no/such/recipes", "--config-name", "mine"], 2, "is not a folder"),
]


def _hide_ray(folder):
    """A site hook that makes `ray` unimportable, as on an install without the hpo extra."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _NoRay())\n")
    return folder


def test_every_mistake_is_one_error_line_with_its_fix(tmp_path):
    assert len(MISTAKES) >= 20
    # outside any git checkout, no data folder configured, no network: as a newcomer's laptop on a train would be
    (tmp_path / "runs" / "model4-s0").mkdir(parents=True)
    offline = {"TINYHUB_DATA_DIR": "", "HF_ENDPOINT": "https://hub.tinyhub-test.invalid"}
    results = run_cli_many(*(args for args, _, _ in MISTAKES), cwd=tmp_path, env_extra=offline)
    no_ray = subprocess.run([TINYHUB, "sweep"], cwd=tmp_path, capture_output=True, text=True, timeout=SAFETY_TIMEOUT,
                            env={**__import__("os").environ, "PYTHONPATH": str(_hide_ray(tmp_path / "site"))})
    cases = [*MISTAKES, (["sweep", "(without the hpo extra)"], 1, 'pip install "tinyhub[hpo]"')]
    wrong = []
    for (args, code, fix), r in zip(cases, [*results, no_ray]):
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        if not (r.returncode == code and len(lines) == 1 and lines[0].startswith("error: ") and fix in lines[0]
                and "Traceback" not in r.stderr + r.stdout):  # one line with the fix, nothing of Hydra's
            wrong.append((args, r.returncode, r.stderr[-1500:]))
    assert not wrong, "\n".join(map(str, wrong))


def test_verbose_shows_hydras_own_report(tmp_path):
    r = run_cli("train", "training.epohcs=3", "--verbose", cwd=tmp_path)
    assert r.returncode == 2 and "Could not override 'training.epohcs'" in r.stderr, r.stderr[-1500:]


# ---------------------------------------------------------------------------------------------------------
# Quiet when all is well
# ---------------------------------------------------------------------------------------------------------
def test_commands_outside_a_checkout_print_no_git_errors(tiny_runs, mnist_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run, ignore=shutil.ignore_patterns("eval", "hub_upload"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ev, cmp, dry = run_cli_many(
        ["evaluate", str(run), "--cpu", "--batch-size", "1000", "--data-dir", str(mnist_dir)],
        ["compare", str(run), "--out", str(outside / "cmp")],
        ["push", str(run), "--repo-id", "me/opt6k", "--dry-run", str(outside / "up")], cwd=outside)
    for r in (ev, cmp, dry):
        assert r.returncode == 0, r.stderr[-2000:]
        assert "fatal:" not in r.stdout + r.stderr and "not a git repository" not in r.stdout + r.stderr
    saved = json.loads((run / "eval" / "eval_test.json").read_text())
    assert saved["correct"] == json.loads((run / "results.json").read_text())["final"]["test_correct"]
    assert {"_timestamp", "_evaluate_version", "_python_version"} <= set(saved)


def test_the_documented_accelerate_launch_prints_no_notice_of_defaults(mnist_dir, tmp_path):
    line = next(line for line in (REPO / "docs" / "training.md").read_text().replace("\\\n", " ").splitlines()
                if line.startswith("accelerate launch --num_processes 1"))
    words = shlex.split(line, comments=True)
    args = [sys.executable, "-m", "accelerate.commands.launch", *words[2:]]
    args += [*FAST, "training.epochs=1", "data.subset=300", f"data.dir={mnist_dir}", f"run.dir={tmp_path / 'acc'}"]
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "were not passed to `accelerate launch`" not in r.stderr, r.stderr[-3000:]
    assert (tmp_path / "acc" / "results.json").is_file()


# ---------------------------------------------------------------------------------------------------------
# Folders tinyhub writes stay out of each other's way
# ---------------------------------------------------------------------------------------------------------
def test_globs_of_runs_skip_the_folders_tinyhub_wrote_beside_them(tiny_runs, tmp_path):
    runs = tmp_path / "runs"
    for r in tiny_runs:
        shutil.copytree(r, runs / r.name, ignore=shutil.ignore_patterns("eval", "hub_upload"))
    sweep = runs / "sweep-old"  # a sweep folder from before the marker: its trials are runs of their own
    shutil.copytree(tiny_runs[0], sweep / "trials" / "t0", ignore=shutil.ignore_patterns("eval", "hub_upload"))
    (sweep / "sweep_config.yaml").write_text("hpo: {}\n")
    one, = run_cli_many(["push", str(runs / tiny_runs[0].name), "--repo-id", "me/opt6k", "--dry-run",
                         str(runs / "upload-one")])
    first, = run_cli_many(["push", "--all", str(runs), "--namespace", "me", "--dry-run"])
    cmp, = run_cli_many(["compare", str(runs / "*"), "--out", str(runs / "cmp")])
    assert one.returncode == 0 and first.returncode == 0 and cmp.returncode == 0, (one.stderr, first.stderr,
                                                                                 cmp.stderr)
    # every kind now lies beside the runs: an upload folder, the --all upload folders, a comparison, a sweep
    again, cmp2 = run_cli_many(["push", "--all", str(runs), "--namespace", "me", "--dry-run",
                                str(tmp_path / "up2")],
                               ["compare", str(runs / "*"), "--out", str(tmp_path / "cmp2")])
    assert again.returncode == 0 and cmp2.returncode == 0, (again.stderr[-2000:], cmp2.stderr[-2000:])
    for kind in ("upload-one", "hub_upload", "sweep-old"):
        assert f"skipped {runs / kind}" in again.stdout + again.stderr, (kind, again.stdout, again.stderr)
    for kind in ("upload-one", "hub_upload", "cmp", "sweep-old"):
        assert f"note: skipped {runs / kind}" in cmp2.stderr, (kind, cmp2.stderr)
    table = (tmp_path / "cmp2" / "comparison.md").read_text()
    assert table.count("| opt6k-s") == 2  # the two runs, nothing else
    zoo = [p for p in (tmp_path / "up2").iterdir() if p.is_dir()]
    assert len(zoo) == 1 and "n_seeds: 2" in (zoo[0] / "README.md").read_text()  # the sweep's trial is not a seed
    # reproduce looks for finished seeds in its runs folder the same way
    (runs / "opt6k-s5-1").mkdir()
    shutil.copytree(runs / "upload-one", runs / "opt6k-s5-1" / "seed_5")
    from tinyhub.commands.reproduce import finished_run

    assert finished_run(runs, "opt6k", 5) is None and finished_run(runs, "opt6k", 0) == runs / "opt6k-s0"


# ---------------------------------------------------------------------------------------------------------
# Reports and cards show what a user can use
# ---------------------------------------------------------------------------------------------------------
def test_the_reports_command_trains_the_same_recipe_again(tiny_runs, tmp_path):
    report = (tiny_runs[0] / "report.html").read_text()
    command = html.unescape(re.search(r'<code id="command">(.*?)</code>', report).group(1))
    words = shlex.split(command)
    assert words[:2] == ["tinyhub", "train"] and "--data-dir" in words  # runnable here, with this machine's data
    r = subprocess.run([TINYHUB, *words[1:], "progress=false"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-2000:]
    again = json.loads(next((tmp_path / "runs").glob("*/results.json")).read_text())
    first = json.loads((tiny_runs[0] / "results.json").read_text())
    assert again["overrides"] == first["overrides"] and again["parameters"] == first["parameters"]
    assert len(again["epochs"]) == len(first["epochs"])


def test_the_report_shows_the_target_and_the_speed_of_the_time(tiny_runs):
    first = json.loads((tiny_runs[0] / "results.json").read_text())
    report = (tiny_runs[0] / "report.html").read_text()
    target = first["target_accuracy"]
    if target is not None:
        met = "met" if first["final"]["test_accuracy"] >= target else "not met"
        assert re.search(rf'id="target">target<b>≥ {target}%</b>{met} ', report)
    assert re.search(r"<td>training time</td><td>[\d.]+ s training at [\d,]+ images/s on CPU ", report)


def test_epoch_ticks_are_whole_numbers_even_for_one_epoch():
    import matplotlib.pyplot as plt

    from tinyhub.trainer.report import epoch_axis

    for n in (1, 2, 3, 15):
        fig, ax = plt.subplots()
        ax.plot(range(1, n + 1), range(n), "o-")
        epoch_axis(ax, n)
        fig.canvas.draw()
        low, high = ax.get_xlim()
        shown = [t for t in ax.get_xticks() if low <= t <= high]
        plt.close(fig)
        assert shown and all(float(t).is_integer() for t in shown), (n, shown)


def test_card_prose_has_no_nested_brackets_and_the_time_says_its_speed(tiny_runs, tmp_path):
    from tinyhub import cards, list_models
    from tinyhub.trainer.config import load_config, model_group

    card = cards.build_card(tiny_runs[0], repo_id="me/opt6k").content
    intro = card.split("\n# ", 1)[1].split("\n\n", 2)[1]
    assert "Design: Opt-2 from seed 004" in intro
    row = next(line for line in card.splitlines() if line.startswith("| Training time |"))
    assert re.search(r"s training at [\d,]+ images/s on CPU .*wall\)", row), row
    # every packaged recipe's design reads in the card's sentence with one level of brackets at most
    for name in list_models():
        group = model_group(name)
        design = load_config([f"model={group}"]).recipe.design if group else name
        depth = deepest = 0
        for ch in f"trained with tinyhub. Design: {design}.":
            depth += {"(": 1, ")": -1}.get(ch, 0)
            deepest = max(deepest, depth)
        assert deepest <= 1, (name, design)


def test_a_multi_process_run_is_reproduced_with_a_launcher_that_starts_them(tiny_runs):
    from tinyhub.utils.launch import train_command
    from tinyhub.trainer.record import load_run

    record = load_run(tiny_runs[0])
    record.world_size, record.device = 2, "cpu"
    assert train_command(record).startswith("torchrun --nproc_per_node 2 -m tinyhub train model=opt6k ")
    record.device = "cuda"
    gpu = train_command(record)
    assert gpu.startswith("accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision ")
    assert "--dynamo_backend no -m tinyhub train model=opt6k " in gpu
