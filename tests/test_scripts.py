"""The long-run scripts in their smoke modes: they run and print their figures (timings are not asserted)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from conftest import REPO, SAFETY_TIMEOUT, run_cli


ROW = r"\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d,]+)"


@pytest.mark.e2e
def test_bench_times_the_engine_itself_side_by_side_with_the_seeds(tiny_runs, mnist_dir, tmp_path):
    # tinyhub's rows are `tinyhub.trainer.train` runs: their figures are the ones the engine recorded.
    r = run_cli("bench", "--quick", "--epochs", "1", "--model", "opt6k", "--data-dir", str(mnist_dir),
                "--keep-runs", str(tmp_path), "--time-to-target", str(tiny_runs[0]), "--teacher", str(tiny_runs[1]),
                "--profile", timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    seeds = re.search(r"seeds' pipeline \(DataLoader \+ PIL\)" + ROW, r.stdout)
    ours = re.search(r"\ntinyhub \(tinyhub.trainer.train\)" + ROW, r.stdout)
    taught = re.search(r"tinyhub \+ distillation from opt6k-s1" + ROW, r.stdout)  # what a teacher costs
    assert seeds and ours and taught, r.stdout
    assert seeds.group(5) == "1.00"
    runs = sorted(tmp_path.glob("bench-opt6k-*"))
    assert len(runs) == 2
    plain, distilled = (json.loads((run / "results.json").read_text()) for run in runs)
    assert f"{plain['epochs'][-1]['images_per_second']:,.0f}" == ours.group(1)
    assert f"{plain['epochs'][-1]['epoch_seconds']:.1f}" == ours.group(2)
    assert plain["data"]["train_size"] == 2048 and plain["recipe"]["training"]["optimizer"]["name"] == "sgd"
    assert distilled["distillation"]["teachers"][0]["architecture"] == "opt6k"
    assert "opt6k: target 99.4% not reached in 2 epochs" in r.stdout
    # The profile's bound: the seeds' epoch (the table's, one round) against the engine's step alone.
    assert "where tinyhub's epoch goes" in r.stdout and "forward + backward + optimizer step" in r.stdout
    bound = re.search(r"bound: the step alone takes ([\d.]+) s an epoch and the seeds' epoch ([\d.]+) s, so with the "
                      r"same step no pipeline gets past ([\d.]+)x", r.stdout)
    assert bound, r.stdout
    step, seeds_epoch, ratio = map(float, bound.groups())
    assert abs(seeds_epoch - float(seeds.group(4))) <= 0.05 + 1e-9  # 2 decimals against the table's 1
    assert abs(seeds_epoch / step / ratio - 1) < 0.05  # as printed, to the rounding of two decimals


def _gpu_figures():
    spec = importlib.util.spec_from_file_location("gpu_figures", REPO / "results" / "gpu" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_bench_stack_trains_k_models_together_and_the_gpu_figures_read_its_table(mnist_dir, tmp_path):
    # The stack's table is what the GPU proof reports for K = 1..16: each K one stacked run, its images/s the
    # K models' sum, and results/gpu/figures.py reads the same figures back out of the printed table.
    r = run_cli("bench", "--quick", "--epochs", "1", "--model", "gap2k", "--stack", "1", "2", "--data-dir",
                str(mnist_dir), "--keep-runs", str(tmp_path / "runs"), "training.threads=1", timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    log = tmp_path / "prove.log"
    log.write_text(r.stdout)
    tables = _gpu_figures().tables(log)
    assert tables["bench_devices"] == ["cpu"]  # what keeps these figures out of the Speed page's GPU table
    stack = tables["stack"]
    assert [row["models"] for row in stack] == [1, 2], r.stdout
    one, two = stack
    assert one["vs_one"] == 1.0 and one["per_model"] == one["images_per_second"]
    assert abs(two["per_model"] * 2 - two["images_per_second"]) <= 1  # per model: the sum over K, rounded
    assert abs(two["images_per_second"] / one["images_per_second"] - two["vs_one"]) <= 0.01
    stacked = sorted((tmp_path / "runs").glob("bench-gap2k-stack2-*"))
    assert len(stacked) == 1
    members = [json.loads((stacked[0] / f"seed_{s}" / "results.json").read_text()) for s in (0, 1)]
    assert [m["seed"] for m in members] == [0, 1]
    assert f"{members[0]['epochs'][-1]['images_per_second'] * 2:,.0f}" == f"{two['images_per_second']:,.0f}"


@pytest.mark.e2e
def test_bench_times_the_recipe_with_its_overrides(mnist_dir, tmp_path):
    # A candidate recipe is timed before it is adopted: the override reaches both sides; a misspelt key stops
    # with a clear error instead of timing the unchanged recipe.
    # With --rounds, the rows run in turn and the table is the round of the median ratio, every round listed.
    r = run_cli("bench", "--quick", "--epochs", "1", "--rounds", "2", "--model", "minimobilenet", "--data-dir",
                str(mnist_dir), "--keep-runs", str(tmp_path), "model.dropout=0.1", "data.batch_size=128")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "'dropout': 0.1" in r.stdout and "3,114 params" in r.stdout and "batch 128" in r.stdout
    assert "channels_last True" in r.stdout  # the recipe's own setting, kept
    runs = sorted(tmp_path.glob("bench-minimobilenet-*"))
    assert len(runs) == 2  # one tinyhub run per round
    for run in runs:
        recipe = json.loads((run / "results.json").read_text())["recipe"]
        assert recipe["model"]["dropout"] == 0.1 and recipe["data"]["batch_size"] == 128
        assert recipe["training"]["channels_last"] is True
    rounds = re.search(r"2 rounds, [^:]+: ([\d.]+) / ([\d.]+) = ([\d.]+)x, ([\d.]+) / ([\d.]+) = ([\d.]+)x; "
                       r"the table is round (\d)", r.stdout)
    assert rounds, r.stdout
    shown = re.search(r"\ntinyhub \(tinyhub.trainer.train\)" + ROW, r.stdout).group(5)
    ratios = sorted([rounds.group(3), rounds.group(6)], key=float)
    assert shown == ratios[0] == rounds.group(3 * int(rounds.group(7)))  # of two rounds, the lower is the median
    zero = run_cli("bench", "--quick", "--rounds", "0", "--data-dir", str(mnist_dir))
    assert zero.returncode == 2 and "--rounds must be at least 1" in zero.stderr
    bad = run_cli("bench", "--quick", "--model", "minimobilenet", "--data-dir", str(mnist_dir), "model.dropuot=0")
    assert bad.returncode == 2
    assert "bad recipe override" in bad.stderr and "model.dropuot" in bad.stderr
    missing = run_cli("bench", "--quick", "--model", "opt6k", "--data-dir", str(mnist_dir), "--time-to-target",
                      str(tmp_path / "no-such-run"))
    assert missing.returncode == 2
    assert "needs finished run directories" in missing.stderr and "no-such-run" in missing.stderr
    assert "Traceback" not in missing.stderr and "images/s" not in missing.stdout


@pytest.mark.e2e
def test_bench_to_times_whole_runs_of_both_pipelines_to_a_target(mnist_dir, tmp_path):
    # The time-to-target measurement in its smoke mode (2,048 training images): each seed of each pipeline is a
    # process of its own, timed to its saved model; the table's accuracy and times are the runs' own, and the
    # records of tinyhub's runs land in the results layout.
    r = run_cli("bench", "--to", "99.0", "--seeds", "2", "--seeds-epochs", "1", "--quick", "--profile",
                "--data-dir", str(mnist_dir), "--keep-runs", str(tmp_path / "runs"), "--record",
                str(tmp_path / "results"), timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    row = r"\s+(\S+) \((\w+)\)\s+(\d+)\s+(\d+)\s+([\d.]+)% ± ([\d.]+)\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)x\s+(yes|no)"
    ours = re.search(r"\n\s+tinyhub" + row, r.stdout)
    seeds = re.search(r"seeds' pipeline \(DataLoader \+ PIL\)" + row, r.stdout)
    assert ours and seeds, r.stdout
    from tinyhub import trainer

    epochs = str(trainer.load_config(["model=fast99"]).training.epochs)
    assert ours.group(1, 2, 3, 4) == ("fast99", "fast24k", epochs, "2") and seeds.group(1, 3, 4) == ("model4", "1", "2")
    assert seeds.group(9) == "1.00"
    records = sorted((tmp_path / "results" / "fast99").glob("seed_*.json"))
    assert [f.name for f in records] == ["seed_0.json", "seed_1.json"]
    accuracies = [json.loads(f.read_text())["test_accuracy"] for f in records]
    assert f"{sum(accuracies) / 2:.2f}" == ours.group(5) and f"{min(accuracies):.2f}" == ours.group(7)
    seeds_results = [json.loads((tmp_path / "runs" / "99.0" / f"model4-s{k}" / "result.json").read_text())
                     for k in (0, 1)]
    assert f"{min(x['test_accuracy'] for x in seeds_results):.2f}" == seeds.group(7)
    assert all((tmp_path / "runs" / "99.0" / f"model4-s{k}" / "model.safetensors").is_file() for k in (0, 1))
    assert re.search(r"fast99: [\d.]+ TFLOP .* matmul peak \([\d,]+ GFLOP/s\) [\d.]+ s, \d+% of the median run",
                     r.stdout)
    assert "where a fast99 run's" in r.stdout and "start-up (interpreter, imports, configuration)" in r.stdout
    assert "where a model4 run's" in r.stdout
    # The Speed page's table is parsed from this very output: the same figures, phase by phase.
    spec = importlib.util.spec_from_file_location("speed_table", REPO / "results" / "speed" / "table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    (target, (parsed_ours, parsed_seeds)), = table.parse_time_to_target(r.stdout)["targets"]
    assert target == "99.0" and parsed_ours["recipe"] == "fast99" and parsed_seeds["recipe"] == "model4"
    assert parsed_ours["mean"] == ours.group(5) and parsed_seeds["median"] == seeds.group(8)
    assert set(parsed_ours["phases"]) == set(table._TTT_PHASES) == set(parsed_seeds["phases"])
    unknown = run_cli("bench", "--to", "98.7", "--data-dir", str(mnist_dir))
    assert unknown.returncode == 2 and "no packaged speed recipe for 98.7%" in unknown.stderr
    assert "--recipe NAME" in unknown.stderr
    silly = run_cli("bench", "--to", "150", "--data-dir", str(mnist_dir))
    assert silly.returncode == 2 and "--to 150: give a test accuracy in %" in silly.stderr


@pytest.mark.e2e
def test_reproduce_records_runs_and_writes_tables(tiny_runs, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:begin -->\nold\n<!-- results:end -->\nrest\n")
    r = run_cli("reproduce", "--models", "opt6k", "--seeds", "0", "1", "--runs-dir", str(tiny_runs[0].parent),
                   "--out", str(tmp_path / "results"), "--results-md", str(tmp_path / "RESULTS.md"),
                   "--readme", str(readme))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "already finished" in r.stdout  # reused, not retrained
    acc = [json.loads((t / "results.json").read_text())["final"]["test_accuracy"] for t in tiny_runs]
    seed1 = json.loads((tmp_path / "results" / "opt6k" / "seed_1.json").read_text())
    assert seed1["test_accuracy"] == acc[1] and seed1["epochs"] == 2
    mean = sum(acc) / 2
    row = next(line for line in (tmp_path / "RESULTS.md").read_text().splitlines() if line.startswith("| opt6k"))
    printed = float(re.search(r"\| 2 \| ([0-9.]+)% ±", row).group(1))
    assert abs(printed - mean) <= 0.005 + 1e-9  # 68.675 may print as 68.67 or 68.68: the mean, to 2 decimals
    assert f"{min(acc):.2f}%" in row and row.endswith("| no |")
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro") and text.endswith("rest\n")
    summary = next(line for line in text.splitlines() if line.startswith("| `opt6k`"))  # the README's short row
    assert f"{printed:.2f}% ± " in summary and "(2)" in summary and summary.endswith("| no |")


@pytest.mark.e2e
def test_reproduce_rerun_retrains_a_recorded_seed_and_compares(tiny_runs, tmp_path, mnist_dir):
    from conftest import FAST

    common = ["--models", "opt6k", "--seeds", "0", "--out", str(tmp_path / "results"),
              "--results-md", str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md")]
    r = run_cli("reproduce", *common, "--runs-dir", str(tiny_runs[0].parent))  # records seed 0
    assert r.returncode == 0, r.stderr[-3000:]
    runs_dir = tmp_path / "runs" / "reproduce"
    r = run_cli("reproduce", *common, "--runs-dir", str(runs_dir), "--rerun", *FAST, "training.epochs=2",
                   "data.subset=1000", f"data.dir={mnist_dir}", timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    recorded = json.loads((tiny_runs[0] / "results.json").read_text())["final"]["test_accuracy"]
    (entry,) = json.loads((tmp_path / "results" / "reruns.json").read_text())
    assert entry["model"] == "opt6k" and entry["seed"] == 0 and entry["recorded_accuracy"] == recorded
    again = json.loads((Path(entry["run_dir"]) / "results.json").read_text())["final"]["test_accuracy"]
    assert Path(entry["run_dir"]).parent.parent == runs_dir.parent  # a fresh folder, not the recorded run
    assert entry["rerun_accuracy"] == again and abs(entry["difference"] - (again - recorded)) < 1e-6
    assert abs(entry["difference"]) < 3.0, entry  # same recipe and seed: the same model up to kernel noise
    assert f"recorded {recorded:.2f}%, rerun {again:.2f}%" in r.stdout
    assert "## Reruns" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.e2e
def test_results_table_compares_the_exact_mean_with_the_target(tmp_path):
    def write(counts):
        for seed, correct in enumerate(counts):
            rec = {"model": "opt6k", "seed": seed, "parameters": 6132, "target_accuracy": 99.4,
                   "test_accuracy": correct / 100, "test_correct": correct, "test_total": 10_000, "epochs": 15,
                   "train_seconds": 1.0, "hardware": "CPU test", "recipe": {"model": {"param_budget": 8000}}}
            out = tmp_path / "results" / "opt6k" / f"seed_{seed}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rec))
        r = run_cli("reproduce", "--table-only", "--out", str(tmp_path / "results"),
                       "--results-md", str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md"))
        assert r.returncode == 0, r.stderr[-3000:]
        return next(line for line in r.stdout.splitlines() if line.startswith("| opt6k"))

    # 29,820 of 30,000 is exactly 99.40%; the float mean of 99.45, 99.42, 99.33 is 99.39999999999999.
    assert write([9945, 9942, 9933]).endswith("| yes |")
    assert write([9945, 9942, 9932]).endswith("| no |")


@pytest.mark.e2e
def test_a_labelled_variant_gets_its_own_row_and_a_place_on_the_frontier(tmp_path):
    for label, teacher in (("gap5k", None), ("gap5k-kd", "gap20k (18,720 params, 99.50%)")):
        for seed, correct in enumerate((9941, 9939)):
            rec = {"model": "gap5k", "label": label, "seed": seed, "parameters": 4836, "target_accuracy": 99.4,
                   "distilled_from": teacher, "test_accuracy": correct / 100, "test_correct": correct,
                   "test_total": 10_000, "epochs": 15, "train_seconds": 1.0, "hardware": "CPU test",
                   "recipe": {"model": {"param_budget": 5000}}}
            out = tmp_path / "results" / label / f"seed_{seed}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rec))
    r = run_cli("reproduce", "--table-only", "--out", str(tmp_path / "results"),
                "--results-md", str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md"))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| gap5k")]
    assert rows == ["| gap5k | 4,836 | <5,000 | 99.4% | — | 2 | 99.40% ± 0.01 | 99.39% | 15 | 1 s | CPU test "
                    "| yes |",
                    "| gap5k-kd (gap5k) | 4,836 | <5,000 | 99.4% | gap20k (18,720 params, 99.50%) | 2 | 99.40% ± 0.01 "
                    "| 99.39% | 15 | 1 s | CPU test | yes |"]
    assert "| 4,836 | 99.40% (mean of 2) | 15 | tinyhub `gap5k-kd`, distilled from gap20k" in r.stdout
    assert "| 4,862 | 99.07% | 50 | published:" in r.stdout  # the public figures sit beside tinyhub's


def test_the_engine_and_the_bench_profile_run_the_same_step_and_input_path(mnist_dir, tmp_path, monkeypatch):
    """The bench times what trains: one assembly of the step (trainer/step.py) and one input path
    (trainer/inputs.py) for both."""
    from conftest import FAST
    from tinyhub import trainer
    from tinyhub.commands.bench import _profile
    from tinyhub.trainer import cuda_graph, inputs, step

    calls, original = [], step.TrainStep.__call__
    assembled, inputs_made = [], []
    build_optimizer, scaled = step.build_optimizer, inputs.scaled

    def counted(self, x, y, x01):
        calls.append(len(y))
        return original(self, x, y, x01)

    monkeypatch.setattr(step.TrainStep, "__call__", counted)
    monkeypatch.setattr(step, "build_optimizer", lambda *a, **k: assembled.append(1) or build_optimizer(*a, **k))
    monkeypatch.setattr(inputs, "scaled", lambda images: inputs_made.append(len(images)) or scaled(images))
    cfg = trainer.load_config([*FAST, "model=gap2k", f"data.dir={mnist_dir}", "data.subset=128",
                               "training.epochs=1", "training.ema=0.9", f"run.dir={tmp_path / 'run'}"])
    trainer.train(cfg)
    assert calls == [64, 64] and assembled == [1]
    assert inputs_made[:2] == [64, 64]  # the training batches, then evaluation's through the same path
    calls.clear(), assembled.clear(), inputs_made.clear()
    profile = _profile(cfg, threads=1, batches=3)
    # a warm-up (up to where a GPU's step is captured: all three batches here), then the three timed
    warm_up = min(cuda_graph.WARMUP_STEPS + 1, 3)
    assert calls == [64] * (warm_up + 3) and profile["step"] > 0 and profile["augment"] > 0
    assert assembled == [1] and inputs_made == [64] * (warm_up + 3)


def test_the_gpu_table_is_written_from_a_gpu_proofs_figures_and_never_from_a_rehearsal(tmp_path):
    # results/gpu/figures.py docs: the Speed page's GPU table comes only from figures measured on a GPU (the
    # machine named as setup.sh printed it); a rehearsal's CPU figures are refused and the page is left as it was.
    gpu = _gpu_figures()
    page = tmp_path / "speed.md"
    page.write_text((REPO / "docs" / "speed.md").read_text())
    before = page.read_text()
    run = dict(rc=0, wall_seconds=8.4, train_seconds=5.25, last_epoch_seconds=0.31, last_eval_seconds=0.052,
               test_accuracy=99.21, epochs=15, device="cuda:0", cuda_graphs=True, optimizer="fused")
    found = {"model4-recipe": run, "model4-eager": dict(run, epochs=3, cuda_graphs=False, last_epoch_seconds=0.93),
             "model4-evalbatch": dict(run, epochs=1, last_eval_seconds=0.0134),
             **{f"fast99-s{s}": dict(run, epochs=4, train_seconds=0.8 + s / 50, test_accuracy=98.9 + s / 25)
                for s in range(10)},
             "stack": [dict(models=k, images_per_second=60000.0 * k ** 0.9, vs_one=round(k ** 0.9, 2))
                       for k in (1, 2, 4, 8, 16)],
             "pipelines": [dict(pipeline="seeds' pipeline (DataLoader + PIL)", epoch_seconds=30.0,
                                images_per_second=2000.0, vs_seeds=1.0),
                           dict(pipeline="tinyhub (tinyhub.trainer.train)", epoch_seconds=2.5,
                                images_per_second=150000.0, vs_seeds=12.0)],
             "zoo": {"job_seconds": {"gap2k seeds [0, 1, 2] together": 20}, "stage_seconds": 22}}
    rehearsal, benched, proof = tmp_path / "rehearsal", tmp_path / "benched", tmp_path / "proof"
    for out, figures in ((rehearsal, {"model4-recipe": dict(run, device="cpu")}),
                         (benched, {"stack": found["stack"], "bench_devices": ["cpu"]}), (proof, found)):
        out.mkdir()
        (out / "figures.json").write_text(json.dumps(figures))
    (proof / "machine.txt").write_text(
        "NVIDIA H200, 580.159.04, 143771 MiB, 1980 MHz, 1980 MHz\n"
        "python 3.12.3 | torch 2.14.1+cu130 cuda 13.0 | accelerate 1.16.0 | hub 2.4.0 | datasets 5.2.0 "
        "| gpu NVIDIA H200 | cpus 16\n")

    for refused in ([rehearsal], [proof, rehearsal], [proof, benched]):  # CPU figures, alone or beside a GPU's
        try:
            gpu.write_docs(refused, page)
        except gpu.NotGpuFigures as e:
            assert "cpu" in str(e)
        else:
            raise AssertionError("CPU figures were written into the GPU table")
        assert page.read_text() == before

    verdicts = gpu.write_docs([proof], page)
    text = page.read_text()
    block = text[text.index(gpu.BEGIN):text.index(gpu.END)]
    assert text.replace(block, "") == before.replace(before[before.index(gpu.BEGIN):before.index(gpu.END)], "")
    assert "On one NVIDIA H200 (driver 580.159.04, torch 2.14.1+cu130, CUDA 13.0, 16 CPU cores)" in block
    assert "| model4's recipe, 15 epochs | 8.4 s | 5.2 s | 99.21% | CUDA graph, fused optimizer |" in block
    # ten seeds: the mean accuracy (98.9 + 0.04 * 4.5 = 99.08) and the median training time ((0.88 + 0.9) / 2)
    assert "| fast99, 10 seeds (mean accuracy, median times) | 8.4 s | 0.89 s | 99.08% |" in block
    assert "0.31 s with its step replayed from a CUDA graph, 0.93 s eager" in block
    assert "0.052 s at 250 images per forward (`data.eval_batch_size`'s default), 0.013 s at 10,000." in block
    assert "| against K=1 | 1.00x | 1.87x | 3.48x | 6.50x | 12.13x |" in block
    assert "| tinyhub (tinyhub.trainer.train) | 2.5 s | 150,000 | 12.00x |" in block
    assert "1 recipes in 22 s, each job gap2k 20 s." in block
    assert verdicts == ["model4's recipe in <= 10 s wall: 8.4 s, met",
                        "99.0% (mean of 10 seeds) in <= 1 s of training: 99.08% in a median 0.89 s, met",
                        "K = 8 stacked >= 5x one model's images/s: 6.50x, met",
                        ">= 10x the seeds' pipeline, whole epochs: 12.00x, met"]
    gpu.write_docs([proof], page)  # written again from the same figures: the same page
    assert page.read_text() == text
