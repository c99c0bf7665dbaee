"""scripts/evaluate.py on every kind of MODEL, exact counts, the HTML report in Chromium, run comparison."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SAFETY_TIMEOUT, hub_client, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
PROBE = ("<script>window.addEventListener('load', () => { const imgs = [...document.images]; "
         "document.body.setAttribute('data-images-ok', imgs.filter(i => i.complete && i.naturalWidth > 0).length "
         "+ '/' + imgs.length); });</script>")


def _eval(*args, **kw):
    return run_cli("evaluate", *args, "--cpu", **kw)


def _saved(path):
    """An evaluation file, read through its record type (which refuses a field it does not know)."""
    from tinyhub.trainer.record import EvaluationRecord

    return EvaluationRecord.load(path).as_dict()


@pytest.mark.e2e
def test_run_directory_reproduces_recorded_accuracy_exactly(tiny_runs):
    run = tiny_runs[0]
    r = _eval(str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    ev = _saved(run / "eval" / "eval_test.json")
    assert ev["correct"] == results["final"]["test_correct"] and ev["total"] == 10_000
    assert sum(ev["per_class_total"]) == 10_000 and sum(ev["per_class_correct"]) == ev["correct"]
    assert [sum(row) for row in ev["confusion_matrix"]] == ev["per_class_total"]
    assert [ev["confusion_matrix"][i][i] for i in range(10)] == ev["per_class_correct"]
    assert ev["confusion_matrix"] == results["final"]["confusion_matrix"]
    assert (run / "eval" / "misclassified_test.png").stat().st_size > 1000
    assert f"{100 * ev['accuracy']:.2f}%" in r.stdout


@pytest.mark.e2e
def test_recorded_figures_do_not_depend_on_the_evaluation_batch(tiny_runs, tmp_path):
    """Training evaluates 250 images per pass (fast on a CPU); a user evaluating 1000 at a time gets the same."""
    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run)
    r = _eval(str(run), "--batch-size", "1000")
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads((run / "results.json").read_text())
    final = record["final"]
    assert record["recipe"]["data"]["eval_batch_size"] == 250
    ev = _saved(run / "eval" / "eval_test.json")
    assert (ev["correct"], ev["confusion_matrix"]) == (final["test_correct"], final["confusion_matrix"])
    assert ev["loss"] == pytest.approx(final["test_loss"], rel=1e-6)


@pytest.mark.e2e
def test_saved_folder_with_data_dir_and_train_split(tiny_runs, mnist_dir, tmp_path):
    folder = tmp_path / "saved"
    shutil.copytree(tiny_runs[0] / "model", folder)
    r = _eval(str(folder), "--data-dir", str(mnist_dir), "--split", "train", "--batch-size", "777")
    assert r.returncode == 0, r.stderr[-2000:]
    ev = _saved(folder / "eval" / "eval_train.json")
    assert ev["split"] == "train" and ev["total"] == sum(ev["per_class_total"]) > 1000


@pytest.mark.e2e
def test_tta_and_two_processes_count_every_image_once(tiny_runs, tmp_path):
    run = tiny_runs[1]
    single = _eval(str(run), "--output-dir", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        "29533", str(REPO / "scripts" / "evaluate.py"), str(run), "--cpu", "--output-dir",
                        str(tmp_path / "two"), "--batch-size", "333"], cwd=REPO, capture_output=True, text=True,
                       timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = _saved(tmp_path / "one" / "eval_test.json"), _saved(tmp_path / "two" / "eval_test.json")
    assert two["num_processes"] == 2 and two["total"] == 10_000
    assert two["correct"] == one["correct"] and two["per_class_total"] == one["per_class_total"]
    tta = _eval(str(run), "--tta", "--output-dir", str(tmp_path / "tta"))
    assert tta.returncode == 0, tta.stderr[-2000:]
    t = _saved(tmp_path / "tta" / "eval_test_tta.json")
    assert t["tta"] is True and t["total"] == 10_000


@pytest.mark.e2e
def test_missing_and_corrupt_models_are_clear_errors(tiny_runs, tmp_path):
    # Missing or unreadable files are run-time failures (exit 1), reported in one line without a traceback.
    r = _eval(str(tmp_path / "nope" / "model"))
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    broken = tmp_path / "broken"
    shutil.copytree(tiny_runs[0] / "model", broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 40)
    r = _eval(str(broken))
    assert r.returncode == 1 and "cannot load the model" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _eval(str(empty))
    assert r.returncode == 1 and "neither a tinyhub run" in r.stderr
    # A batch size that cannot work is a usage error (exit 2), said before anything loads.
    r = _eval(str(tiny_runs[0]), "--batch-size", "0")
    assert r.returncode == 2 and "--batch-size must be at least 1, got 0" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.e2e
def test_pushed_model_re_evaluates_to_its_card(hub, tiny_runs, mnist_dir, tmp_path):
    repo = "tester/evaluated"
    assert hub_client(hub, tmp_path, "push", str(tiny_runs[0]), "--repo-id", repo, "--tag", "v1").returncode == 0
    readme = hub.read_file(repo, "README.md", "v1").decode()
    r = hub_client(hub, tmp_path, "evaluate", f"{repo}@v1", "--data-dir", str(mnist_dir), "--cpu",
                   "--output-dir", str(tmp_path / "ev"))
    assert r.returncode == 0, r.stderr[-2000:]
    ev = _saved(tmp_path / "ev" / "eval_test.json")
    from huggingface_hub import ModelCard

    card_value = ModelCard(readme).data.to_dict()["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert round(100 * ev["accuracy"], 4) == card_value


def _render(html_file, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed here (.ci/run installs Debian's chromium when it can)")
    probe = tmp_path / "probe.html"
    probe.write_text(html_file.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", "--dump-dom",
           probe.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.e2e
def test_html_report_renders_in_chromium(tiny_runs, tmp_path):
    report = tiny_runs[0] / "report.html"
    dom = _render(report, tmp_path)
    assert 'data-images-ok="2/2"' in dom  # both embedded images decoded
    results = json.loads((tiny_runs[0] / "results.json").read_text())
    assert f"{results['final']['test_accuracy']:.2f}%" in dom
    assert dom.count("<tr>") >= len(results["epochs"]) + len(results["summary"]["layers"])
    assert "src=\"http" not in report.read_text()  # self-contained: nothing fetched


@pytest.mark.e2e
def test_compare_two_runs(tiny_runs, tmp_path):
    r = run_cli("compare", str(tiny_runs[0]), str(tiny_runs[1].parent / "opt6k-s*"), "--out",
                   str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr[-2000:]
    md = (tmp_path / "cmp" / "comparison.md").read_text().splitlines()
    assert md[0].startswith("| run | model | parameters | epochs | batch size | learning rate | dropout |")
    body = [line for line in md[2:] if line.startswith("| opt6k-s")]
    assert len(body) == 3  # the first run twice (by path and by glob) and the second
    acc = [json.loads((t / "results.json").read_text())["final"]["test_accuracy"] for t in tiny_runs]
    assert f"| {acc[0]:.2f} |" in md[2] and f"| {acc[1]:.2f} |" in "\n".join(md)
    dom = _render(tmp_path / "cmp" / "comparison.html", tmp_path)
    assert 'data-images-ok="1/1"' in dom and "opt6k-s1" in dom
    bad = run_cli("compare", str(tmp_path / "missing"))
    assert bad.returncode == 1 and "not a finished run" in bad.stderr and "Traceback" not in bad.stderr


def test_one_computation_of_accuracy_and_the_confusion_matrix():
    """trainer.scores is what training, `tinyhub evaluate` and the `evaluate` modules count with: the same numbers
    from each, on a case small enough to check by hand."""
    import evaluate
    import torch

    from tinyhub.trainer.evaluation import compute_metrics
    from tinyhub.trainer.scores import classification_scores

    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 2, 0, 2])
    scores = classification_scores(pred, labels, 4)
    assert scores.confusion == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert (scores.correct, scores.total, round(scores.accuracy, 4)) == (4, 6, 66.6667)
    assert scores.per_class_correct == [1, 1, 2, 0] and scores.per_class_total == [2, 1, 3, 0]
    log_probs = torch.nn.functional.one_hot(pred, 4).float().mul(5).log_softmax(1)
    metrics = compute_metrics(log_probs, labels, 4)
    assert metrics["confusion_matrix"] == scores.confusion and metrics["per_class_accuracy"][3] is None
    assert metrics["accuracy"] == 4 / 6 and metrics["per_class_correct"] == scores.per_class_correct
    from tinyhub.trainer import evaluation

    modules = Path(evaluation.__file__).parent / "metrics"
    assert evaluate.load(str(modules / "confusion_matrix")).compute(
        predictions=pred.tolist(), references=labels.tolist(), num_classes=4)["confusion_matrix"] == scores.confusion
    assert evaluate.load(str(modules / "accuracy")).compute(
        predictions=pred.tolist(), references=labels.tolist())["correct"] == 4
